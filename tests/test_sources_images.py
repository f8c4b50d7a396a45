"""Image-sequence folders: timing, picking, bad frames and telemetry."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from engine.errors import SourceError
from engine.sources import discover, iter_clips, pick_nearest
from engine.sources.images import iter_image_clips
from tests.test_sources_helpers import scene


def make_folder(folder, count=30, fps=10.0, size=(64, 48), ext="png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(scene(i / fps, *size)).save(folder / f"frame{i}.{ext}")
    return folder


def one(folder, **kwargs):
    (clip,) = iter_image_clips(folder, clip_id_base="imgs", **kwargs)
    return clip


def test_fixed_rate_natural_order(tmp_path):
    folder = make_folder(tmp_path / "seq")
    clip = one(folder)
    np.testing.assert_array_equal(clip.keyframe_times, np.arange(7) / 2.0)
    assert clip.duration_s == pytest.approx(3.0)
    frame_times = np.arange(30) / 10.0
    picked = frame_times[pick_nearest(frame_times, clip.keyframe_times)]  # 3.0 s -> last frame
    expected = np.stack([scene(t, 64, 48) for t in picked])
    np.testing.assert_array_equal(clip.keyframes, expected)  # png is lossless; frame10 > frame9
    assert clip.fps == pytest.approx(10.0)
    assert one(folder, fps=5.0).duration_s == pytest.approx(6.0)


def test_index_csv_and_frames_json(tmp_path):
    folder = make_folder(tmp_path / "seq", count=6)
    times = [100.0, 100.25, 100.5, 101.4, 101.5, 102.0]
    (folder / "index.csv").write_text(
        "file,time\n" + "".join(f"frame{i}.png,{t}\n" for i, t in enumerate(times)))
    clip = one(folder)
    np.testing.assert_array_equal(clip.keyframe_times, np.arange(5) / 2.0)
    # re-based times 0, .25, .5, 1.4, 1.5, 2.0; targets 0, .5, 1 (1.4 is nearer than .5), 1.5, 2
    picks = [0, 2, 3, 4, 5]
    np.testing.assert_array_equal(clip.keyframes,
                                  np.stack([scene(i / 10, 64, 48) for i in picks]))
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
    assert "corrupt image frame5.jpg" in warnings and "0.500 s taken from a neighbour" in warnings
    assert clip.keyframes.shape == (7, 48, 64, 3)
    assert clip.meta["frames"] == 30
    assert clip.duration_s == pytest.approx(3.0)  # a dropped frame does not shift the timeline


def test_corrupt_picked_frame_without_neighbour_raises(tmp_path):
    folder = make_folder(tmp_path / "seq", count=3, fps=1.0, ext="jpg")
    data = (folder / "frame1.jpg").read_bytes()
    (folder / "frame1.jpg").write_bytes(data[:200])
    with pytest.raises(SourceError, match="frame1.jpg.*no neighbour"):
        one(folder, fps=1.0)


def test_odd_size_raises_naming_the_file(tmp_path):
    folder = make_folder(tmp_path / "seq", count=5)
    Image.fromarray(scene(0, 32, 32)).save(folder / "frame2.png")
    with pytest.raises(SourceError, match="frame2.png: size 32x32"):
        one(folder)


def test_reduced_decode(tmp_path):
    folder = make_folder(tmp_path / "seq", count=4, size=(128, 96), ext="jpg")
    clip = one(folder, reduced=True)
    assert clip.keyframes.shape[1:] == (24, 32, 3)
    assert clip.meta["reduced"] is True


def test_discovered_folder_with_telemetry(tmp_path):
    folder = make_folder(tmp_path / "root" / "drive" / "cam", count=20)
    (folder / "telemetry.csv").write_text(
        "time,speed\n" + "".join(f"{i / 10},{i}\n" for i in range(30)))
    (item,) = discover([tmp_path / "root"])
    (clip,) = iter_clips(item, image_fps=10.0)
    assert clip.clip_id == "drive__cam"
    assert clip.telemetry.time.size == 20  # sliced to the clip's 2 s
