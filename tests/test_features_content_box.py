"""content_box's fast profile reductions equal NumPy's max/mean over (keyframes, channels)."""

import numpy as np
import pytest

from engine.ingest.features import content_box


def _slow_content_box(keyframes):
    from engine.ingest.features import _bar_length, paired_bars

    _, h, w, _ = keyframes.shape
    mx = keyframes.max(axis=(0, 3))
    mean = keyframes.mean(axis=(0, 3), dtype=np.float32)
    rmax, rmean, cmax, cmean = mx.max(axis=1), mean.mean(axis=1), mx.max(axis=0), mean.mean(axis=0)
    top, bottom = paired_bars(_bar_length(rmax, rmean), _bar_length(rmax[::-1], rmean[::-1]))
    left, right = paired_bars(_bar_length(cmax, cmean), _bar_length(cmax[::-1], cmean[::-1]))
    return top, h - bottom, left, w - right


@pytest.mark.parametrize("k", [1, 3, 21])
def test_content_box_matches_numpy_reductions_with_bars(k):
    rng = np.random.default_rng(k)
    frames = rng.integers(40, 256, (k, 60, 80, 3), dtype=np.uint8)
    frames[:, :9] = rng.integers(0, 20, (k, 9, 80, 3), dtype=np.uint8)  # letterbox top ...
    frames[:, -8:] = rng.integers(0, 20, (k, 8, 80, 3), dtype=np.uint8)  # ... and bottom
    frames[:, :, :10] = 0  # pillarbox left and right
    frames[:, :, 70:] = 0
    box = content_box(frames)
    assert box == _slow_content_box(frames)
    assert box == (9, 52, 10, 70)


def test_dark_band_on_one_side_is_picture_not_a_bar():
    """Night footage: a dark sky along the top or a dark verge along one side (no brighter than
    a bar in every keyframe, ending in a step into the lit road) has no partner on the other
    side, so it stays picture: a copy with other keyframes is framed the same."""
    rng = np.random.default_rng(2)
    frames = rng.integers(40, 256, (6, 90, 160, 3), dtype=np.uint8)
    frames[:, :20] = rng.integers(0, 20, (6, 20, 160, 3), dtype=np.uint8)  # dark sky
    frames[:, :, 125:] = rng.integers(0, 20, (6, 90, 35, 3), dtype=np.uint8)  # dark right side
    assert content_box(frames) == (0, 90, 0, 160)


def _scene(k=4, h=180, w=320, seed=0):
    return np.random.default_rng(seed).integers(60, 200, (k, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("bar_frac", [0.06, 0.09, 0.12, 0.16])
def test_timestamp_bar_is_an_overlay_not_a_letterbox(bar_frac):
    """A burned-in timestamp bar (dark band with text, clean rows below the text) keeps the
    frame's geometry: the view is the source's view, cut at the bar where it reaches past the
    safe margin -- not a re-framed picture, which would move every hash of the copy."""
    from engine.ingest.features import view_box
    from fixtures.transforms import apply_pixel_transform

    frames = _scene()
    plain = view_box(frames)
    copy = apply_pixel_transform("timestamp_bar", frames,
                                 {"bar_frac": bar_frac, "epoch": 1.7e9, "logo_rgb": [200, 50, 50]})
    bar = max(6, int(round(180 * bar_frac)))
    top, bottom, left, right = view_box(copy)
    assert (top, left, right) == (plain[0], plain[2], plain[3])
    assert bottom == min(plain[1], 180 - bar - 1) or bottom == min(plain[1], 180 - bar)


def test_overlay_bar_at_the_top_and_letterbox_unchanged():
    from engine.ingest.features import view_box

    frames = _scene()
    plain = view_box(frames)
    over = frames.copy()
    over[:, :30] = 0
    over[:, 8:20, 10:120:3] = 255  # text in the band (sparse strokes, ~12 % of the row)
    assert view_box(over) == (30, plain[1], plain[2], plain[3])
    box = frames.copy()
    box[:, :20] = 0
    box[:, -20:] = 0  # a clean letterbox: margins of the picture inside it
    assert view_box(box) == (20 + 14, 160 - 14, plain[2], plain[3])


def test_letterbox_of_a_letterbox_keeps_letterbox_geometry():
    """A dark picture next to a letterbox bar (a night road with a few dim lights) extends the
    dark band past the clean bar; with no text in it, it must not pass for an overlay. (A blurred
    row at a double letterbox's inner edge once did, and moved the copy's view off its source's.)"""
    from engine.ingest.features import SAFE_MARGIN, view_box
    from fixtures.transforms import apply_pixel_transform

    scene = _scene(h=108, w=192)
    rng = np.random.default_rng(5)
    for rows in (slice(0, 8), slice(-8, None)):  # a dark picture next to the bars (night road)
        scene[:, rows] = rng.integers(0, 19, scene[:, rows].shape, dtype=np.uint8)
        scene[:, rows, ::10] = 90  # a few dim lights: not a clean bar, not text either
    once = apply_pixel_transform("letterbox", scene, {"bar_frac": 0.08})
    twice = apply_pixel_transform("letterbox", once, {"bar_frac": 0.06})
    top, bottom, left, right = content_box(twice)
    mh, mw = round((bottom - top) * SAFE_MARGIN[0]), round((right - left) * SAFE_MARGIN[1])
    assert top > 9 and view_box(twice) == (top + mh, bottom - mh, left + mw, right - mw)
