"""Sample times, nearest-frame picking and clip-id validation."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.sources import pick_nearest, sample_times, validate_clip_id
from engine.sources.sampling import tent_weights


def naive_pick(frame_times, targets):
    out = []
    for target in targets:
        distances = [abs(f - target) for f in frame_times]
        out.append(distances.index(min(distances)))  # first minimum = earlier on ties
    return np.array(out, dtype=np.int64)


def test_sample_times_grid():
    np.testing.assert_array_equal(sample_times(4.0, 2.0), np.arange(9) / 2.0)
    np.testing.assert_array_equal(sample_times(0.0, 2.0), [0.0])
    np.testing.assert_array_equal(sample_times(0.49, 2.0), [0.0])
    assert sample_times(3.9996, 2.0)[-1] == 4.0  # timestamp rounding (Matroska ms) tolerated
    assert sample_times(3.99, 2.0)[-1] == 3.5
    assert sample_times(10.0, 3.0).dtype == np.float64


@pytest.mark.parametrize("duration,hz", [(-1.0, 2.0), (float("nan"), 2.0), (1.0, 0.0),
                                         (1.0, -2.0), (1.0, float("inf"))])
def test_sample_times_rejects_bad_input(duration, hz):
    with pytest.raises(InputError):
        sample_times(duration, hz)


def test_pick_nearest_matches_naive_reference():
    rng = np.random.default_rng(7)
    for _ in range(50):
        frame_times = np.sort(rng.uniform(0, 5, rng.integers(1, 40)))
        targets = rng.uniform(-1, 6, 20)
        np.testing.assert_array_equal(pick_nearest(frame_times, targets),
                                      naive_pick(frame_times, targets))


def test_pick_nearest_ties_go_to_the_earlier_frame():
    frame_times = np.arange(0, 2, 0.2)  # 0.0, 0.2, ... targets at 0.1, 0.5 ... are ties
    targets = np.array([0.1, 0.5, 0.3])
    np.testing.assert_array_equal(pick_nearest(np.array([0.0, 1.0]), np.array([0.5])), [0])
    assert pick_nearest(frame_times, targets).dtype == np.int64


def test_pick_nearest_type_and_order_checks():
    with pytest.raises(TypeError, match="float64"):
        pick_nearest(np.arange(3), np.array([0.5]))
    with pytest.raises(InputError, match="presentation order"):
        pick_nearest(np.array([0.0, 2.0, 1.0]), np.array([0.5]))
    with pytest.raises(InputError, match="no frame"):
        pick_nearest(np.array([], dtype=np.float64), np.array([0.5]))


@pytest.mark.parametrize("good", ["a", "drive_1__cam-0.mp4", "x" * 128, "A.b-c_d"])
def test_valid_clip_ids(good):
    assert validate_clip_id(good) == good


@pytest.mark.parametrize(
    "bad,match",
    [("", "empty"), ("..", "path component"), (".", "path component"), ("a/b", "'/'"),
     ("/abs/path", "'/'"), ("nul\0x", "NUL"), ("x" * 129, "129 characters"), ("a b", "' '"),
     (5, "int")],
)
def test_invalid_clip_ids_name_the_rule_and_fix(bad, match):
    with pytest.raises(InputError, match=match) as info:
        validate_clip_id(bad)
    assert "[A-Za-z0-9._-]" in str(info.value)


def test_blend_mask_caps_the_blended_frame_rate():
    from engine.sources.sampling import BLEND_MAX_HZ, BlendGate, blend_mask

    assert BLEND_MAX_HZ == 15.0
    for fps, step in ((10, 1), (15, 1), (30, 2), (60, 4), (25, 2), (24, 2)):
        t = np.arange(3 * fps) / fps
        keep = blend_mask(t)
        assert keep.tolist() == [i % step == 0 for i in range(len(t))], fps
    # 15 fps stored with 1 ms timestamps (Matroska/WebM): still every frame
    t = np.round(np.arange(45) / 15, 3)
    assert blend_mask(t).all()
    # the streaming gate gives the same answers frame by frame
    t = np.sort(np.random.default_rng(0).uniform(0, 3, 200))
    gate = BlendGate()
    assert [gate.take(x) for x in t] == blend_mask(t).tolist()


def test_tent_weights_skip_frames_past_the_blend_rate():
    t = np.arange(60) / 30.0  # 30 fps, 2 s
    windows = tent_weights(t, np.array([1.0]), 0.5)
    a, b, w = windows[0]
    assert np.all(w[(np.arange(a, b) % 2) == 1] == 0)  # odd frames: decoded, not blended
    assert w.sum() == pytest.approx(1.0)
