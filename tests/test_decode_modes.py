"""Decode strategies (engine.sources.video.DECODE_STRATEGIES) against decoding every frame.

Tolerances are mean absolute differences of the uint8 keyframes from those of ``"all"`` on a
smooth scene that pans 4 px a frame (640x360, 30 fps, an intra frame a second): strategies that
decode every frame (deblocking skipped, slice threads, reduced size) stay within
:data:`EVERY_FRAME_TOL` grey levels, those that drop non-reference frames from the tent windows
within :data:`DROPPED_FRAMES_TOL`; intra-only keyframes at intra-frame times within
:data:`INTRA_TOL` (one frame against the mean of a second of panning).
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from engine.errors import InputError
from engine.ingest.pipeline import IngestOptions
from engine.sources.video import DECODE_STRATEGIES, iter_video_clips

FPS = 30
EVERY_FRAME_TOL = 1.0
DROPPED_FRAMES_TOL = 2.0
INTRA_TOL = 8.0


def scene(frames: int, height: int = 360, width: int = 640) -> np.ndarray:
    """``uint8[frames, height, width, 3]``: smooth blobs and bars panning 4 px a frame."""
    rng = np.random.default_rng(7)
    span = width + 4 * frames
    x = np.arange(span)[None, :]
    y = np.arange(height)[:, None]
    image = np.zeros((height, span, 3), np.float64)
    for channel in range(3):
        for _ in range(6):
            fx, fy = rng.uniform(0.005, 0.03, 2)
            phase = rng.uniform(0, 2 * np.pi)
            image[:, :, channel] += np.sin(fx * x + phase) * np.cos(fy * y + phase)
    image = 128 + 110 * image / np.abs(image).max()
    return np.stack([image[:, 4 * i:4 * i + width] for i in range(frames)]).astype(np.uint8)


def encode(path, frames: np.ndarray, codec: str = "libx264", gop: int = 250) -> str:
    """``frames`` at 30 fps with an intra frame every ``gop`` frames (no scene cuts)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "threads": "1", "bf": "2",
                              "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        stream.codec_context.time_base = Fraction(1, FPS)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return str(path)


def keyframes(path: str, strategy: str) -> tuple[np.ndarray, dict]:
    (clip,) = iter_video_clips(path, clip_id_base="c", strategy=strategy, threads=2)
    return clip.keyframes.astype(np.float64), clip.meta


@pytest.fixture(scope="module")
def h264(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("decode") / "pan.mp4", scene(90), gop=30)


@pytest.mark.parametrize("strategy", sorted(DECODE_STRATEGIES))
def test_each_strategy_gives_keyframes_close_to_every_frame(h264, strategy):
    exact, _ = keyframes(h264, "all")
    got, meta = keyframes(h264, strategy)
    assert got.shape == exact.shape
    assert meta["decode"] == strategy
    spec = DECODE_STRATEGIES[strategy]
    if spec.skip_frame == "NONKEY":  # keyframes at intra-frame times (0, 1, 2 s)
        assert np.abs(got[::2] - exact[::2]).mean() <= INTRA_TOL
    else:
        tol = EVERY_FRAME_TOL if spec.every_frame else DROPPED_FRAMES_TOL
        assert np.abs(got - exact).mean() <= tol
    if spec.every_frame:
        assert meta["frames_decoded"] == 90


def test_skipping_frames_decodes_fewer(h264):
    assert keyframes(h264, "nonref")[1]["frames_decoded"] < 90  # the encoder's B frames
    assert keyframes(h264, "keyframes")[1]["frames_decoded"] == 3  # gop 30 of 90 frames


def test_lowres_decodes_mpeg4_at_reduced_size_close_to_every_frame(tmp_path):
    path = encode(tmp_path / "pan.mp4", scene(30), codec="mpeg4")
    exact, exact_meta = keyframes(path, "all")
    got, meta = keyframes(path, "lowres")
    assert got.shape == exact.shape == (2, 180, 320, 3)
    assert (meta["width"], meta["height"]) == (exact_meta["width"], exact_meta["height"])
    assert np.abs(got - exact).mean() <= 2 * EVERY_FRAME_TOL  # 1.2 measured


@pytest.mark.parametrize("gop", [30, 60])
def test_keyframes_mode_follows_the_gop(tmp_path, gop):
    """With a GOP of 1 s or more every window holds at most one intra frame: each keyframe
    shows the intra frame nearest its time (ties to the earlier one)."""
    path = encode(tmp_path / "pan.mp4", scene(120), gop=gop)
    got, meta = keyframes(path, "keyframes")
    exact, _ = keyframes(path, "all")
    intra_frames = 120 // gop
    assert meta["frames_decoded"] == intra_frames
    gop_s = gop / FPS
    times = np.arange(len(got)) / 2.0
    nearest = np.minimum(np.ceil(times / gop_s - 0.5).astype(int), intra_frames - 1)
    for j, intra in enumerate(nearest):
        first = int(np.argmax(nearest == intra))
        assert (got[j] == got[first]).all()  # one intra frame repeated across its keyframes
        if times[j] == intra * gop_s:  # at the intra frame's own time: close to the tent mean
            assert np.abs(got[j] - exact[j]).mean() <= INTRA_TOL
    assert np.abs(got[0] - got[-1]).mean() > 5  # later GOPs show later pictures


def test_unknown_strategy_names_the_choices(h264):
    with pytest.raises(InputError, match=r"'fastest'.*all, noloop.*keyframes"):
        keyframes(h264, "fastest")
    with pytest.raises(InputError, match=r"'fastest'.*keyframes"):
        IngestOptions(decode="fastest")
