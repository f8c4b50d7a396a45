"""Reframed copies: crop views, the crop-view pHash kernel, video-in-a-window, and dedup of
crops, zooms and screen recordings from pixels alone (no recorded times)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import kernels
from engine.ingest.features import (
    CROP_VIEW_SCALES,
    compute_features,
    crop_view_boxes,
    picture_box,
    view_box,
    window_box,
)
from engine.matching.dedup import DedupParams, load_dedup, run_dedup
from engine.store.region import N_CROP_VIEWS, RegionStore
from engine.types import ClipSample
from kernels import reference

K = 20  # keyframes: 10 s at 2 Hz
H, W = 180, 320


# ----------------------------------------------------------------------------- kernel
def test_phash64_boxes_matches_reference_and_phash64():
    rng = np.random.default_rng(0)
    luma = np.cumsum(rng.uniform(0, 9, (4, 96, 96)), axis=2).astype(np.float32)
    boxes = np.array([[0, 1, 0, 1], [0.1, 0.9, 0.05, 0.95], [0.13, 0.77, 0.21, 0.88],
                      [0.5, 0.5, 0, 1]], np.float64)
    got = kernels.phash64_boxes(luma, boxes)
    assert got.shape == (4, 4, 8)
    np.testing.assert_array_equal(got, reference.phash64_boxes(luma, boxes))
    assert not got[:, 3].any()  # an empty box hashes to zeros
    frames = np.repeat(np.clip(luma, 0, 255).astype(np.uint8)[..., None], 3, axis=3)
    whole = kernels.phash64_boxes(kernels.luma_area_downsample(frames, 96, 96), boxes[:1])[:, 0]
    np.testing.assert_array_equal(whole, kernels.phash64(frames))


def test_phash64_boxes_refuses_bad_input():
    luma = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(TypeError, match="float32"):
        kernels.phash64_boxes(luma.astype(np.float64), np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        kernels.phash64_boxes(luma, np.array([[0, 1.5, 0, 1]], np.float64))
    with pytest.raises(ValueError, match="b,4"):
        kernels.phash64_boxes(luma, np.zeros((2, 3)))


def test_crop_views_cover_scales_and_positions():
    boxes = crop_view_boxes()
    assert boxes.shape == (N_CROP_VIEWS, 4)
    heights, widths = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    scales = sorted(set(np.round(widths / 0.9, 4)))  # less 5 % side margins
    assert np.allclose(scales, sorted(CROP_VIEW_SCALES)) and min(scales) <= 0.65 and max(scales) >= 0.9
    assert np.allclose(heights / 0.8, widths / 0.9)  # crops keep the aspect ratio
    assert boxes.min() >= 0 and boxes.max() <= 1


# ----------------------------------------------------------------------------- pixels
def scene(seed: int, k: int = K) -> np.ndarray:
    """A drive-like clip: the camera pans slowly across a smooth random landscape while
    vehicles (blocks of their own colour) move on their own paths."""
    rng = np.random.default_rng(seed)
    big = rng.uniform(0, 255, (40, 70, 3)).astype(np.uint8)
    world = np.asarray(Image.fromarray(big).resize((1400, 800), Image.Resampling.BICUBIC))
    world = np.clip(world + rng.normal(0, 18, world.shape), 0, 255).astype(np.uint8)
    cars = [(rng.uniform(0, W), rng.uniform(0, H), rng.uniform(-14, 14), rng.uniform(-5, 5),
             rng.integers(20, 60), rng.integers(0, 256, 3)) for _ in range(6)]
    out = np.empty((k, H, W, 3), np.uint8)
    for i in range(k):
        cw, ch = int(900 / (1.0 + 0.01 * i)), int(506 / (1.0 + 0.01 * i))
        x0, y0 = 100 + 6 * i, 120 + 2 * i
        f = np.asarray(Image.fromarray(world[y0:y0 + ch, x0:x0 + cw]).resize((W, H), Image.Resampling.BILINEAR)).copy()
        for x, y, vx, vy, size, colour in cars:
            cx, cy = int((x + vx * i) % W), int((y + vy * i) % H)
            f[max(0, cy - size // 3):cy + size // 3, max(0, cx - size // 2):cx + size // 2] = colour
        out[i] = f
    return out


def crop_rescale(frames: np.ndarray, frac: float, cx: float, cy: float) -> np.ndarray:
    ch, cw = int(H * frac), int(W * frac)
    top = int(np.clip(cy * H - ch / 2, 0, H - ch))
    left = int(np.clip(cx * W - cw / 2, 0, W - cw))
    return np.stack([np.asarray(Image.fromarray(f[top:top + ch, left:left + cw]).resize((W, H), Image.Resampling.BILINEAR))
                     for f in frames])


def in_window(frames: np.ndarray, scale: float = 0.6) -> np.ndarray:
    """The clip playing in an application window: a light static interface around it."""
    sh, sw = int(H * 1.25), int(W * 1.25)
    vw, vh = int(sw * scale), int(sw * scale * H / W)
    out = np.full((len(frames), sh, sw, 3), 232, np.uint8)
    out[:, : int(sh * 0.06)] = (40, 44, 52)
    top, left = int(sh * 0.1), int(sw * 0.3)
    out[:, top:top + vh, left:left + vw] = np.stack(
        [np.asarray(Image.fromarray(f).resize((vw, vh), Image.Resampling.BILINEAR)) for f in frames])
    return out


def sample(cid: str, frames: np.ndarray) -> ClipSample:
    return ClipSample(clip_id=cid, source=f"/src/{cid}.mp4", digest=f"d-{cid}",
                      keyframes=np.ascontiguousarray(frames),
                      keyframe_times=np.arange(len(frames)) / 2.0, duration_s=len(frames) / 2.0)


def test_window_box_finds_a_video_inside_an_interface_and_nothing_in_plain_footage():
    frames = scene(1)
    assert window_box(frames) is None
    # a static dark sky and a static bonnet are part of the picture, not an interface
    dashcam = frames.copy()
    dashcam[:, :50] = 3
    dashcam[:, -30:] = 60
    assert window_box(dashcam) is None
    shown = in_window(frames)
    top, bottom, left, right = window_box(shown)
    sh, sw = shown.shape[1:3]
    assert abs(top - int(sh * 0.1)) <= 2 and abs(left - int(sw * 0.3)) <= 2
    assert abs((right - left) - int(sw * 0.6)) <= 2
    # the hashed view of the screen recording is the video's own view, scaled
    t, b, lo, r = view_box(shown)
    assert top < t < b < bottom and left < lo < r < right
    assert picture_box(shown) == (top, bottom, left, right)
    # a progress bar that fills under the window, a few rows below it, is left outside
    with_bar = shown.copy()
    y = bottom + 4
    for i in range(len(with_bar)):
        with_bar[i, y:y + 4, left:right] = 180
        with_bar[i, y:y + 4, left:left + (right - left) * (i + 1) // len(with_bar)] = (30, 120, 220)
    assert window_box(with_bar) == (top, bottom, left, right)


def _ingest(home, samples):
    clips = compute_features(samples)
    with RegionStore.open(home.region("us-west"), create=True) as store, store.writer():
        rows = dict(zip([c.clip_id for c in clips], store.append_clips(clips), strict=True))
    return rows


def _relations(home, params=None):
    with RegionStore.open(home.region("us-west")) as store:
        run_dedup(store, params or DedupParams(), full=True)
        pairs, _ = load_dedup(store)
    return {frozenset((p.a, p.b)): p for p in pairs}


def test_crops_zooms_and_screen_recordings_are_found_from_pixels_alone(home):
    src = scene(2)
    samples = [
        sample("src", src),
        sample("crop-centre", crop_rescale(src, 0.82, 0.5, 0.5)),
        sample("crop-corner", crop_rescale(src, 0.74, 0.37, 0.63)),
        sample("screen", in_window(src)),
        sample("other", scene(3)),
        sample("other-crop", crop_rescale(scene(4), 0.8, 0.5, 0.5)),
    ]
    rows = _ingest(home, samples)
    rel = _relations(home)
    for cid in ("crop-centre", "crop-corner", "screen"):
        p = rel.get(frozenset((rows["src"], rows[cid])))
        assert p is not None and p.relation == "duplicate", cid
        assert abs(p.offset_s) <= 0.5, cid
    for cid in ("other", "other-crop"):
        assert frozenset((rows["src"], rows[cid])) not in rel, cid
    # the stage off: the crops are not found by the 256-bit hashes alone
    with RegionStore.open(home.region("us-west")) as store:
        off = run_dedup(store, DedupParams(reframed_neighbours=0), full=True)
    off_pairs = {frozenset((p.a, p.b)) for p in off.pairs}
    assert frozenset((rows["src"], rows["crop-corner"])) not in off_pairs


def test_a_zoomed_trimmed_copy_is_a_partial_with_its_offset(home):
    src = scene(5, k=24)
    zoom = crop_rescale(src[6:16], 0.7, 0.5, 0.5)  # starts 3 s in, 5 s long
    rows = _ingest(home, [sample("src", src), sample("zoom", zoom)])
    p = _relations(home).get(frozenset((rows["src"], rows["zoom"])))
    assert p is not None and p.relation == "partial"
    assert p.offset_s == pytest.approx(3.0, abs=0.5)


def test_a_static_scene_is_not_matched_through_crop_views(home):
    """Crop views match a frozen scene at any moment: reframed matches must show change."""
    still = np.repeat(scene(6, k=1), K, axis=0)
    rows = _ingest(home, [sample("still", still), sample("still-crop", crop_rescale(still, 0.8, 0.5, 0.5))])
    assert frozenset((rows["still"], rows["still-crop"])) not in _relations(home)


# ----------------------------------------------------------------------------- CLI, video files
def test_cli_finds_a_cropped_copy_and_a_screen_recording_of_a_video_file(home, tmp_path):
    import json

    from typer.testing import CliRunner

    from engine.surfaces.cli import app
    from tests.test_sources_helpers import write_video

    frames = scene(7, k=K)

    def source(t: float, width: int, height: int) -> np.ndarray:  # 2 Hz scene, held between
        return frames[min(int(t * 2), K - 1)]

    def cropped(t: float, width: int, height: int) -> np.ndarray:
        return crop_rescale(source(t, width, height)[None], 0.78, 0.62, 0.4)[0]

    def shown(t: float, width: int, height: int) -> np.ndarray:
        return in_window(source(t, width, height)[None])[0, :height, :width]

    videos = tmp_path / "videos"
    videos.mkdir()
    good = {"crf": "20"}  # the quality of a screen recorder; heavy ringing moves the window's edge
    write_video(videos / "src.mp4", fps=10, seconds=K / 2, size=(W, H), content=source, options=good)
    write_video(videos / "crop.mp4", fps=10, seconds=K / 2, size=(W, H), content=cropped, options=good)
    write_video(videos / "screen.mp4", fps=10, seconds=K / 2, size=(int(W * 1.25) // 2 * 2, int(H * 1.25) // 2 * 2),
                content=shown, options=good)
    runner = CliRunner()
    args = ["--region", "us-west", "--home", str(home.path)]
    res = runner.invoke(app, ["ingest", str(videos), *args], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output

    def pairs(*extra: str) -> set[frozenset]:
        out = runner.invoke(app, ["dedup", *args, "--full", "--pairs", "--json", *extra], env={"COLUMNS": "80"})
        assert out.exit_code == 0, out.output
        ids = json.loads(out.output)
        return {frozenset((p["a"].split("-")[0], p["b"].split("-")[0])) for p in ids["pairs"]
                if p["relation"] == "duplicate"}

    found = pairs()
    assert frozenset(("src", "crop")) in found and frozenset(("src", "screen")) in found
    assert frozenset(("src", "crop")) not in pairs("--no-reframed")


def test_mirrored_copies_are_found_only_on_request_and_say_so(home):
    src = scene(8)
    rows = _ingest(home, [sample("src", src), sample("mirror", np.ascontiguousarray(src[:, :, ::-1])),
                          sample("other", scene(9))])
    key = frozenset((rows["src"], rows["mirror"]))
    assert key not in _relations(home)  # off by default
    found = _relations(home, DedupParams(mirror=True))
    assert found[key].mirrored and found[key].relation == "duplicate"
    assert frozenset((rows["src"], rows["other"])) not in found
    with RegionStore.open(home.region("us-west")) as store:
        (row,) = [r for r in store.pairs() if frozenset(r[:2]) == key]
        assert row[12] == 1  # stored


def test_cli_mirror_needs_the_crop_view_search(home):
    from typer.testing import CliRunner

    from engine.surfaces.cli import app

    res = CliRunner().invoke(app, ["dedup", "--region", "us-west", "--home", str(home.path), "--mirror",
                                   "--no-reframed"])
    assert res.exit_code == 2 and "--mirror needs" in res.output
