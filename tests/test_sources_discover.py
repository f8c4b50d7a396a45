"""Discovery: kinds, sidecars, clip ids, globs, hidden files, symlinks and loops."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import SourceError
from engine.sources import discover, iter_clips
from engine.sources.discover import MAX_BASE_LEN, clip_id_from_relative


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "fleet"
    touch(root / "drive1" / "front.mp4")
    touch(root / "drive1" / "front.csv")
    touch(root / "drive1" / "rear.MKV")
    touch(root / "drive1" / "rear.telemetry.csv")
    touch(root / "drive2" / "cam 0" / "000001.jpg")
    touch(root / "drive2" / "cam 0" / "000002.jpg")
    touch(root / "drive2" / "cam 0" / "telemetry.csv")
    touch(root / "drive2" / "cam 0" / "sub" / "x.png")
    touch(root / "drive3" / "clips.zarr" / "zarr.json")
    touch(root / "drive3" / "clips.zarr" / "inner" / "a.mp4")  # never descended into
    touch(root / "drive3" / "notes.txt")
    touch(root / ".hidden" / "secret.mp4")
    touch(root / "drive1" / ".trash.mp4")
    touch(root / "mixed" / "v.webm")
    touch(root / "mixed" / "thumb.jpg")  # a folder with a video is not an image sequence
    return root


def by_id(items):
    return {item.clip_id_base: item for item in items}


def test_kinds_ids_and_sidecars(tree):
    items = discover([tree])
    found = {(i.kind, i.clip_id_base) for i in items}
    assert found == {
        ("video", "drive1__front"),
        ("video", "drive1__rear"),
        ("images", "drive2__cam_0"),
        ("images", "drive2__cam_0__sub"),
        ("zarr", "drive3__clips"),
        ("video", "mixed__v"),
    }
    ids = by_id(items)
    assert ids["drive1__front"].telemetry == tree / "drive1" / "front.csv"
    assert ids["drive1__rear"].telemetry == tree / "drive1" / "rear.telemetry.csv"
    assert ids["drive2__cam_0"].telemetry == tree / "drive2" / "cam 0" / "telemetry.csv"
    assert ids["mixed__v"].telemetry is None
    assert discover([tree]) == items  # deterministic


def test_root_files_and_globs(tree):
    items = discover([tree / "drive1" / "front.mp4"], root=tree)
    assert [i.clip_id_base for i in items] == ["drive1__front"]
    assert [i.clip_id_base for i in discover([tree / "drive1" / "front.mp4"])] == ["front"]
    globbed = discover([str(tree / "**" / "*.mp4")])
    assert {i.clip_id_base for i in globbed} == {"drive1__front"}
    none = discover([str(tree / "*.avi")])
    assert none[0].kind == "error" and "matches nothing" in none[0].message


def test_errors_are_items(tree):
    items = discover([tree / "missing.mp4", tree / "drive3" / "notes.txt",
                      tree / "drive2" / "cam 0" / "000001.jpg"])
    assert [i.kind for i in items] == ["error"] * 3
    assert "does not exist" in items[0].message
    assert "not a video" in items[1].message
    assert "single image" in items[2].message
    with pytest.raises(SourceError, match="does not exist"):
        iter_clips(items[0])


def test_symlink_leaving_the_tree_is_an_error_item(tmp_path, tree):
    outside = touch(tmp_path / "outside" / "stolen.mp4")
    os.symlink(outside, tree / "drive1" / "link.mp4")
    os.symlink(tmp_path / "outside", tree / "drive1" / "linkdir")
    os.symlink(tmp_path / "nowhere", tree / "drive1" / "broken.mp4")
    for follow in (False, True):
        items = discover([tree], follow_symlinks=follow)
        errors = {i.path.name: i.message for i in items if i.kind == "error"}
        assert "leaves the source tree" in errors["link.mp4"]
        assert "leaves the source tree" in errors["linkdir"]
        assert "broken symlink" in errors["broken.mp4"]
        assert not any("stolen" in str(i.path) for i in items if i.kind != "error")


def test_directory_loop_is_reported_followed_or_not(tree):
    os.symlink(tree / "drive1", tree / "drive1" / "again")
    os.symlink(tree / "drive1" / "front.mp4", tree / "drive1" / "alias.mp4")
    for follow in (False, True):
        skipped: list = []
        items = discover([tree], follow_symlinks=follow, skipped=skipped)
        loops = [i for i in items if i.kind == "error"]
        assert len(loops) == 1 and "directory symlink loop" in loops[0].message
        assert loops[0].path.name == "again" and "remove the link" in loops[0].message
        videos = [i for i in items if i.kind == "video"]
        assert len(videos) == len({os.path.realpath(i.path) for i in videos})  # each file once
        reasons = {p.name: why for p, why in skipped}
        assert ("alias.mp4" in reasons) == (not follow)  # a link not followed is listed, with why
        if not follow:
            assert "symlink inside the source tree" in reasons["alias.mp4"]


def test_every_skipped_path_is_listed_with_its_reason(tree):
    touch(tree / "drive1" / "...mp4")
    skipped: list = []
    items = discover([tree], skipped=skipped)
    reasons = {str(p.relative_to(tree)): why for p, why in skipped}
    assert "hidden name" in reasons["drive1/...mp4"] and "clip.mp4" in reasons["drive1/...mp4"]
    assert "hidden name" in reasons["drive1/.trash.mp4"] and "trash.mp4" in reasons["drive1/.trash.mp4"]
    assert "not a video" in reasons["drive3/notes.txt"]
    assert "beside videos" in reasons["mixed"]
    assert not any(k.endswith(".csv") for k in reasons)  # sidecars are read, not skipped
    assert ".hidden" not in reasons  # a hidden folder is passed over without a word
    assert discover([tree]) == items  # the list is optional


def test_clip_id_sanitising_truncation_and_collisions(tmp_path):
    root = tmp_path / "r"
    touch(root / "a_b.mp4")
    touch(root / "a b.mp4")
    touch(root / "a?b.mkv")
    long_name = "n" * 200 + ".mp4"
    touch(root / long_name)
    items = discover([root])
    ids = [i.clip_id_base for i in items]
    assert len(set(ids)) == len(ids) == 4
    assert by_id(items)["a_b"].path.name == "a_b.mp4"  # the exact name keeps the plain id
    others = [i for i in ids if i.startswith("a_b-")]
    assert len(others) == 2 and all(len(i) == 12 for i in others)
    long_id = next(i for i in ids if i.startswith("nnn"))
    assert len(long_id) == MAX_BASE_LEN
    assert discover([root])[0].clip_id_base == items[0].clip_id_base  # stable
    assert clip_id_from_relative("x/../y") == "x__..__y"
    assert clip_id_from_relative("..") == "__"
