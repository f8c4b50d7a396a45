"""Image-sequence folders: timing, picking, bad frames and telemetry."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from engine.errors import SourceError
from engine.sources import discover, iter_clips, sample_times
from engine.sources.images import iter_image_clips
from engine.sources.sampling import blend_keyframes, tent_weights
from tests.test_sources_helpers import scene


def make_folder(folder, count=30, fps=10.0, size=(64, 48), ext="png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(scene(i / fps, *size)).save(folder / f"frame{i}.{ext}")
    return folder


def one(folder, **kwargs):
    (clip,) = iter_image_clips(folder, clip_id_base="imgs", **kwargs)
    return clip


def tent_reference(frame_times, size=(64, 48), content_times=None, hz=2.0):
    frame_times = np.asarray(frame_times, dtype=np.float64)
    content_times = frame_times if content_times is None else content_times
    frames = np.stack([scene(t, *size) for t in content_times])
    return blend_keyframes(frames, tent_weights(frame_times, sample_times(frame_times[-1], hz),
                                                1.0 / hz))


def test_fixed_rate_natural_order(tmp_path):
    folder = make_folder(tmp_path / "seq")
    clip = one(folder)
    np.testing.assert_array_equal(clip.keyframe_times, np.arange(6) / 2.0)  # last image 2.9 s
    assert clip.duration_s == pytest.approx(3.0)
    # png is lossless: exactly what a zarr clip of the same frames gives (frame10 > frame9)
    expected = tent_reference(np.arange(30) / 10.0)
    assert np.abs(clip.keyframes.astype(int) - expected).max() <= 1
    assert clip.fps == pytest.approx(10.0)
    assert one(folder, fps=5.0).duration_s == pytest.approx(6.0)


def test_index_csv_and_frames_json(tmp_path):
    folder = make_folder(tmp_path / "seq", count=6)
    times = [100.0, 100.25, 100.5, 101.4, 101.5, 102.0]
    (folder / "index.csv").write_text(
        "file,time\n" + "".join(f"frame{i}.png,{t}\n" for i, t in enumerate(times)))
    clip = one(folder)
    np.testing.assert_array_equal(clip.keyframe_times, np.arange(5) / 2.0)
    rebased = np.array(times) - 100.0
    expected = tent_reference(rebased, content_times=np.arange(6) / 10)
    assert np.abs(clip.keyframes.astype(int) - expected).max() <= 1
    (folder / "index.csv").unlink()
    (folder / "frames.json").write_text(json.dumps({"fps": 2.0}))
    assert one(folder).duration_s == pytest.approx(3.0)


def test_corrupt_frames(tmp_path):
    folder = make_folder(tmp_path / "seq", ext="jpg")
    (folder / "frame3.jpg").write_bytes(b"not a jpeg at all")  # unreadable header: dropped
    data = (folder / "frame5.jpg").read_bytes()
    (folder / "frame5.jpg").write_bytes(data[:-200])  # header ok, pixels cut
    clip = one(folder)
    warnings = " | ".join(clip.meta["warnings"])
    assert "unreadable images skipped: frame3.jpg" in warnings
    assert "corrupt image frame5.jpg skipped" in warnings
    assert clip.keyframes.shape == (6, 48, 64, 3)
    assert clip.meta["frames"] == 30
    assert clip.duration_s == pytest.approx(3.0)  # a dropped frame does not shift the timeline
    good = [i for i in range(30) if i not in (3, 5)]  # renormalised over the images that decode
    expected = tent_reference(np.array(good) / 10.0)
    assert np.abs(clip.keyframes.astype(int) - expected).mean() < 4.0  # jpeg


def test_corrupt_window_without_neighbour_raises(tmp_path):
    folder = make_folder(tmp_path / "seq", count=3, fps=1.0, ext="jpg")
    data = (folder / "frame1.jpg").read_bytes()
    (folder / "frame1.jpg").write_bytes(data[:200])
    with pytest.raises(SourceError, match="frame1.jpg.*no neighbour"):
        one(folder, fps=1.0)


def test_single_image_folder_is_refused(tmp_path):
    folder = make_folder(tmp_path / "seq", count=1)
    with pytest.raises(SourceError, match="at least 2 frames"):
        one(folder)


def test_odd_size_raises_naming_the_file(tmp_path):
    folder = make_folder(tmp_path / "seq", count=5)
    Image.fromarray(scene(0, 32, 32)).save(folder / "frame2.png")
    with pytest.raises(SourceError, match="frame2.png: size 32x32"):
        one(folder)


def test_large_images_are_area_averaged_to_the_working_size(tmp_path):
    folder = make_folder(tmp_path / "seq", count=6, size=(1000, 500), ext="png")
    clip = one(folder)
    assert clip.keyframes.shape == (2, 125, 250, 3)  # factor 4: longest side <= 480
    assert (clip.meta["width"], clip.meta["height"]) == (1000, 500)
    expected = tent_reference(np.arange(6) / 10.0, size=(1000, 500))
    expected = expected.reshape(2, 125, 4, 250, 4, 3).mean(axis=(2, 4))
    assert np.abs(clip.keyframes - expected).mean() < 1.0
    reduced = one(make_folder(tmp_path / "jpg", count=6, size=(1000, 500), ext="jpg"),
                  reduced=True)
    assert reduced.keyframes.shape == clip.keyframes.shape and reduced.meta["reduced"] is True
    assert np.abs(reduced.keyframes.astype(int) - clip.keyframes).mean() < 6.0


def test_discovered_folder_with_telemetry(tmp_path):
    folder = make_folder(tmp_path / "root" / "drive" / "cam", count=20)
    (folder / "telemetry.csv").write_text(
        "time,speed\n" + "".join(f"{i / 10},{i}\n" for i in range(30)))
    (item,) = discover([tmp_path / "root"])
    (clip,) = iter_clips(item, image_fps=10.0)
    assert clip.clip_id == "drive__cam"
    assert clip.telemetry.time.size == 20  # sliced to the clip's 2 s


def test_several_cameras_in_one_folder_are_refused_with_the_fix(tmp_path):
    folder = tmp_path / "IMG"
    folder.mkdir()
    for cam in ("center", "left", "right"):
        for i in range(3):
            Image.fromarray(scene(i / 10, 64, 48)).save(folder / f"{cam}_2016_12_01_13_30_48_{i:03d}.jpg")
    with pytest.raises(SourceError) as err:
        one(folder)
    msg = str(err.value)
    assert "3 cameras" in msg and "center_*: 3" in msg and "mkdir -p $c" in msg
    assert "for c in center left right" in msg
    # one camera named by prefix, or plain numbered frames: one clip as before
    single = make_folder(tmp_path / "plain")
    assert one(single).clip_id == "imgs"


def test_clip_seconds_splits_an_image_folder_like_a_video(tmp_path):
    folder = make_folder(tmp_path / "seq", count=50)  # 5.0 s at 10 fps
    whole = one(folder)
    clips = list(iter_image_clips(folder, clip_id_base="imgs", clip_seconds=2.0))
    assert [c.clip_id for c in clips] == ["imgs-0000", "imgs-0001", "imgs-0002"]
    assert [c.source_offset_s for c in clips] == [0.0, 2.0, 4.0]
    assert [c.duration_s for c in clips] == pytest.approx([2.0, 2.0, 1.0])
    assert len({c.digest for c in clips}) == 3 and {c.recording_id for c in clips} == {whole.digest}
    np.testing.assert_array_equal(clips[1].keyframe_times, [0.0, 0.5, 1.0, 1.5])
    # the pieces' keyframes are the whole clip's keyframes at the same absolute times
    np.testing.assert_array_equal(np.concatenate([c.keyframes for c in clips]), whole.keyframes)
    # through iter_clips, as ingest calls it
    (item,) = discover([folder])
    assert len(list(iter_clips(item, clip_seconds=2.0))) == 3
