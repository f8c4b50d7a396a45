"""content_box's fast profile reductions equal NumPy's max/mean over (keyframes, channels)."""

import numpy as np
import pytest

from engine.features import content_box


def _slow_content_box(keyframes):
    from engine.features import _bar_length

    _, h, w, _ = keyframes.shape
    mx = keyframes.max(axis=(0, 3))
    mean = keyframes.mean(axis=(0, 3), dtype=np.float32)
    rmax, rmean, cmax, cmean = mx.max(axis=1), mean.mean(axis=1), mx.max(axis=0), mean.mean(axis=0)
    return (_bar_length(rmax, rmean), h - _bar_length(rmax[::-1], rmean[::-1]),
            _bar_length(cmax, cmean), w - _bar_length(cmax[::-1], cmean[::-1]))


@pytest.mark.parametrize("k", [1, 3, 21])
def test_content_box_matches_numpy_reductions_with_bars(k):
    rng = np.random.default_rng(k)
    frames = rng.integers(40, 256, (k, 60, 80, 3), dtype=np.uint8)
    frames[:, :9] = rng.integers(0, 20, (k, 9, 80, 3), dtype=np.uint8)  # letterbox top
    frames[:, :, 70:] = 0  # pillarbox right
    box = content_box(frames)
    assert box == _slow_content_box(frames)
    assert box == (9, 60, 0, 70)
