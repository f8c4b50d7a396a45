"""Video decoding: codecs, containers, frame rates, time-based sampling and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError, SourceError
from engine.sources import discover, iter_clips, sample_times
from engine.sources import video as video_module
from engine.sources.sampling import BLEND_MAX_HZ, blend_keyframes, blend_mask, tent_weights
from engine.sources.video import iter_video_clips
from tests.test_sources_helpers import scene, write_audio_only, write_video

QUIET_X265 = {"x265-params": "log-level=error"}


def clips(path, **kwargs):
    kwargs.setdefault("strategy", "all")  # the exact tent filter (every frame); the others:
    return list(iter_video_clips(path, clip_id_base="clip", **kwargs))  # test_decode_modes.py


def one(path, **kwargs):
    (clip,) = clips(path, **kwargs)
    return clip


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def reference(frame_times: np.ndarray, size=(160, 96), start: float = 0.0) -> np.ndarray:
    return np.stack([scene(start + t, *size) for t in frame_times])


def tent_reference(frame_times, hz=2.0, size=(160, 96), start=0.0) -> np.ndarray:
    """What zarr clips give for the same frames: tent_weights + blend_keyframes."""
    frame_times = np.asarray(frame_times, dtype=np.float64)
    targets = sample_times(frame_times[-1], hz)
    return blend_keyframes(reference(frame_times, size, start),
                           tent_weights(frame_times, targets, 1.0 / hz))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="module")
def h264_10(media):
    return write_video(media / "h264_10.mp4", fps=10, seconds=4)


@pytest.fixture(scope="module")
def h264_30(media):
    return write_video(media / "h264_30.mp4", fps=30, seconds=4)


CODECS = [
    ("h264.mp4", dict(codec="libx264", fps=25)),
    ("hevc.mkv", dict(codec="libx265", fps=25, options=QUIET_X265)),
    ("vp9.webm", dict(codec="libvpx-vp9", fps=15)),
    ("mjpeg.avi", dict(codec="mjpeg", fps=10, pix_fmt="yuvj420p")),
    ("mpeg4.mp4", dict(codec="mpeg4", fps=30, bit_rate=800_000)),
    ("fullrange.mp4", dict(codec="libx264", fps=15, pix_fmt="yuvj420p")),
    ("yuv444.mp4", dict(codec="libx264", fps=10, pix_fmt="yuv444p")),
    ("10bit.mkv", dict(codec="libx264", fps=10, pix_fmt="yuv420p10le")),
    ("audio_video.mp4", dict(codec="libx264", fps=25, audio=True)),
    ("rotated.mp4", dict(codec="libx264", fps=10, rotation=90)),
    ("rotated_cw.mp4", dict(codec="libx264", fps=10, rotation=-90)),
]


@pytest.mark.parametrize("name,kwargs", CODECS, ids=[c[0] for c in CODECS])
def test_codecs_and_containers_sample_by_time(media, name, kwargs):
    path = write_video(media / name, seconds=3, **kwargs)
    clip = one(path)
    fps = kwargs["fps"]
    assert clip.clip_id == "clip"
    assert clip.fps == pytest.approx(fps, rel=1e-3)
    assert clip.duration_s == pytest.approx(3.0, abs=2e-3)
    true_times = np.arange(round(3 * fps)) / fps
    np.testing.assert_array_equal(clip.keyframe_times, sample_times(true_times[-1], 2.0))
    assert clip.keyframes.dtype == np.uint8 and clip.keyframes.flags.c_contiguous
    assert clip.keyframes.shape == (6, 96, 160, 3)  # rotated files come out upright
    # every frame strictly within +-0.5 s of 0.5 s, at most BLEND_MAX_HZ of them a second
    inside = np.abs(true_times - 0.5) < 0.5
    assert clip.meta["window_frames"][1] == int((inside & blend_mask(true_times)).sum())
    assert clip.meta["window_frames"][1] == (fps - 1 if fps <= BLEND_MAX_HZ else {25: 12, 30: 14}[fps])
    assert mae(clip.keyframes, tent_reference(true_times)) < 9.0  # range/rotation errors: > 30
    assert clip.meta["warnings"] == []
    assert len(clip.digest) == 32


def test_full_range_levels_survive(media):
    def flat(t, width, height):
        image = np.full((height, width, 3), 20, np.uint8)
        image[:, width // 2:] = 235
        return image

    clip = one(write_video(media / "levels.mp4", pix_fmt="yuvj420p", content=flat, seconds=1))
    assert abs(float(clip.keyframes[0, :, :60].mean()) - 20) < 3
    assert abs(float(clip.keyframes[0, :, 100:].mean()) - 235) < 3


def test_same_content_other_fps_and_codec_gives_same_keyframes(media, h264_10, h264_30):
    hevc = write_video(media / "hevc_30.mkv", codec="libx265", fps=30, seconds=4,
                       options=QUIET_X265)
    a, b, c = one(h264_10), one(h264_30), one(hevc)
    np.testing.assert_array_equal(a.keyframe_times, b.keyframe_times)
    np.testing.assert_array_equal(a.keyframe_times, c.keyframe_times)
    assert a.duration_s == b.duration_s == pytest.approx(4.0)
    assert mae(a.keyframes, b.keyframes) < 6.0
    assert mae(b.keyframes, c.keyframes) < 6.0
    # a shifted sampling is clearly worse: the check above has teeth
    assert mae(a.keyframes[1:], b.keyframes[:-1]) > 2 * mae(a.keyframes, b.keyframes)
    assert a.digest != b.digest


def test_trimmed_copy_matches_source_shifted(media):
    source = one(write_video(media / "long.mp4", fps=10, seconds=6), keyframe_hz=10.0)
    trimmed = one(write_video(media / "trim.mp4", fps=10, seconds=4, start=1.3))
    # keyframe j of the trim is at source time 1.3 + j/2 = source keyframe 13 + 5j (10 Hz)
    interior = slice(1, None)  # the trim's first window is cut at its start
    aligned = mae(trimmed.keyframes[interior], source.keyframes[13 + 5 * np.arange(1, 8)])
    unaligned = mae(trimmed.keyframes[interior], source.keyframes[10 + 5 * np.arange(1, 8)])
    assert unaligned > 1.5 * aligned


def test_vfr_uses_presentation_times(media):
    times = [0.0, 0.03, 0.1, 0.25, 0.3, 0.62, 0.7, 1.1, 1.15, 1.6, 1.62, 2.3]
    clip = one(write_video(media / "vfr.mp4", times=times, fps=10))
    np.testing.assert_array_equal(clip.keyframe_times, sample_times(2.3, 2.0))
    assert mae(clip.keyframes, tent_reference(times)) < 8.0


def test_gap_longer_than_the_window_takes_the_nearest_frame(media):
    times = [0.0, 0.1, 0.2, 2.0, 2.1]  # no frame within 0.5 s of 1.0 s
    clip = one(write_video(media / "gap.mp4", times=times, fps=10))
    assert clip.meta["window_frames"][2] == 1
    assert mae(clip.keyframes[2:3], reference([0.2])) < 6.0  # 0.2 is nearer 1.0 than 2.0


def test_first_pts_not_zero_is_rebased(media):
    clip = one(write_video(media / "offset.mp4", fps=10, seconds=2, pts_offset=13))
    assert clip.keyframe_times[0] == 0.0
    assert clip.duration_s == pytest.approx(2.0)
    assert mae(clip.keyframes, tent_reference(np.arange(20) / 10)) < 8.0


def test_missing_duration_decodes_to_the_end(media):
    path = write_video(media / "raw.h264", fps=25, seconds=2, container_format="h264")
    clip = one(path)
    assert clip.duration_s == pytest.approx(2.0, abs=0.05)  # raw H.264 plays at 25 fps
    assert clip.keyframes.shape[0] == 4  # 0, 0.5, 1.0, 1.5 (last frame at 1.96 s)


def test_large_frames_are_area_averaged_to_the_working_size(media):
    big = write_video(media / "big.mp4", fps=10, seconds=2, size=(1024, 576))
    clip = one(big)
    assert clip.keyframes.shape == (4, 144, 256, 3)  # factor 4: longest side <= 480
    assert (clip.meta["width"], clip.meta["height"]) == (1024, 576)
    expected = tent_reference(np.arange(20) / 10, size=(1024, 576))
    expected = expected.reshape(4, 144, 4, 256, 4, 3).mean(axis=(2, 4))
    assert mae(clip.keyframes, expected) < 6.0


@pytest.mark.parametrize("strategy", ["targeted", "all"])
def test_targeted_strategy_gives_the_same_keyframes_as_all(media, h264_30, strategy):
    vfr = write_video(media / "vfr_b.mp4", fps=30,
                      times=[i / 30 + (0.012 if i % 7 == 3 else 0.0) for i in range(120)])
    for path in (h264_30, vfr):
        reference_clip = one(path, strategy="all", keyframe_hz=3.0)
        clip = one(path, strategy=strategy, keyframe_hz=3.0)
        np.testing.assert_array_equal(clip.keyframes, reference_clip.keyframes)


@pytest.mark.parametrize("strategy", ["nonref", "nonkey"])
def test_skipping_strategies_keep_the_sample_times(h264_30, strategy):
    exact = one(h264_30, strategy="all")
    clip = one(h264_30, strategy=strategy)
    np.testing.assert_array_equal(clip.keyframe_times, exact.keyframe_times)
    if strategy == "nonref":  # fewer frames per window, same picture on this slow scene
        assert mae(clip.keyframes, exact.keyframes) < 6.0


def test_threads_do_not_change_the_result(h264_30):
    a, b = one(h264_30, threads=1), one(h264_30, threads=2)
    np.testing.assert_array_equal(a.keyframes, b.keyframes)


@pytest.mark.parametrize("ahead", [0, 1, 4])
def test_decode_ahead_thread_does_not_change_the_result(h264_30, media, monkeypatch, ahead):
    split = write_video(media / "split_ahead.mkv", fps=25, seconds=5) \
        if not (media / "split_ahead.mkv").exists() else media / "split_ahead.mkv"
    monkeypatch.setattr(video_module, "DECODE_AHEAD", 0)
    want = [one(h264_30)] + clips(split, clip_seconds=2.0)
    monkeypatch.setattr(video_module, "DECODE_AHEAD", ahead)
    got = [one(h264_30)] + clips(split, clip_seconds=2.0)
    assert [c.clip_id for c in got] == [c.clip_id for c in want]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.keyframes, b.keyframes)
        assert (a.duration_s, a.meta["window_frames"]) == (b.duration_s, b.meta["window_frames"])


def test_decode_ahead_thread_stops_when_the_consumer_stops(media):
    import threading

    long_video = write_video(media / "long_ahead.mp4", fps=30, seconds=6)
    before = {t for t in threading.enumerate() if t.name == "clipdex-decode"}
    gen = iter_video_clips(long_video, clip_id_base="c", clip_seconds=1.0)
    first = next(gen)  # the decoder thread is running ahead now
    assert first.clip_id == "c-0000"
    gen.close()
    assert {t for t in threading.enumerate() if t.name == "clipdex-decode"} == before


def test_split_into_clips_with_offsets_and_telemetry(media):
    path = write_video(media / "drive.mp4", fps=10, seconds=6)
    sidecar = media / "drive.csv"
    rows = "\n".join(f"{t / 10:.1f},{t},0,0,0" for t in range(60))
    sidecar.write_text("time,speed,accel,yaw_rate,steering\n" + rows + "\n")
    parts = clips(path, clip_seconds=2.5, telemetry=sidecar)
    assert [c.clip_id for c in parts] == ["clip-0000", "clip-0001", "clip-0002"]
    assert [c.source_offset_s for c in parts] == [0.0, 2.5, 5.0]
    assert [c.duration_s for c in parts] == pytest.approx([2.5, 2.5, 1.0])
    assert [len(c.keyframe_times) for c in parts] == [5, 5, 2]  # last frame at 5.9 s
    whole = one(path)
    np.testing.assert_array_equal(parts[1].keyframes, whole.keyframes[5:10])
    assert len({c.digest for c in parts}) == 3
    tel = parts[1].telemetry
    assert tel.time[0] == pytest.approx(0.0) and tel.time[-1] == pytest.approx(2.4)
    assert tel.channel("speed")[0] == pytest.approx(25.0)
    # a last piece shorter than 1 s is dropped
    assert [c.clip_id for c in clips(path, clip_seconds=2.8)] == ["clip-0000", "clip-0001"]


def test_one_frame_video_is_refused(media):
    with pytest.raises(SourceError, match=r"single.mp4: only 1 video frame.*at least 2"):
        one(write_video(media / "single.mp4", fps=10, seconds=0.1))


def test_frame_size_guard(h264_10, monkeypatch):
    with pytest.raises(SourceError, match=r"160x96 exceeds the limit.*max_side"):
        one(h264_10, max_side=100)
    monkeypatch.setattr(video_module, "MAX_PIXELS", 10_000)
    with pytest.raises(SourceError, match="h264_10.mp4"):
        one(h264_10)


def test_bad_arguments(h264_10):
    with pytest.raises(InputError, match="strategy"):
        one(h264_10, strategy="fastest")
    with pytest.raises(InputError, match="clip_seconds"):
        one(h264_10, clip_seconds=0)


@pytest.fixture(scope="module")
def bad_files(media):
    folder = media / "mixed"
    folder.mkdir()
    good = [write_video(folder / "good_a.mp4", fps=10, seconds=2),
            write_video(folder / "good_b.webm", codec="libvpx-vp9", fps=10, seconds=2)]
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is not a video\n" * 20)
    write_audio_only(folder / "audio_only.mp4")
    data = (media / "h264_full.mp4").read_bytes() if (media / "h264_full.mp4").exists() else \
        write_video(media / "h264_full.mp4", fps=10, seconds=4).read_bytes()
    (folder / "cut_mp4.mp4").write_bytes(data[: len(data) // 2])  # index at the end: unreadable
    mkv = write_video(media / "full.mkv", fps=10, seconds=4, options={"g": "10"}).read_bytes()
    (folder / "cut_mkv.mkv").write_bytes(mkv[: len(mkv) // 2])  # streamable: first half decodes
    return folder, good


@pytest.mark.parametrize(
    "name,message",
    [
        ("empty.mp4", "empty .0 bytes"),
        ("notes.mp4", "not a readable video"),
        ("audio_only.mp4", "no video stream .streams: audio"),
        ("cut_mp4.mp4", "truncated"),
    ],
)
def test_bad_file_raises_source_error_naming_the_file(bad_files, name, message):
    folder, _ = bad_files
    with pytest.raises(SourceError, match=message) as info:
        clips(folder / name)
    assert name in str(info.value)


def test_truncated_streamable_file_yields_what_decoded_with_warning(bad_files):
    folder, _ = bad_files
    clip = one(folder / "cut_mkv.mkv")
    assert 0.5 < clip.duration_s < 3.5
    assert any("truncated" in w for w in clip.meta["warnings"])


def test_mixed_folder_good_files_yield_bad_files_fail_alone(bad_files):
    folder, good = bad_files
    items = discover([folder])
    assert {i.kind for i in items} == {"video"}
    results, failures = {}, {}
    for item in items:
        try:
            results[item.path.name] = list(iter_clips(item, keyframe_hz=2.0))
        except SourceError as err:
            failures[item.path.name] = str(err)
    assert set(results) >= {p.name for p in good}
    assert {"empty.mp4", "notes.mp4", "audio_only.mp4", "cut_mp4.mp4"} <= set(failures)
    for name, message in failures.items():
        assert name in message
    assert results["good_a.mp4"][0].clip_id == "good_a"
