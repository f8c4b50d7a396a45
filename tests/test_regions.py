from __future__ import annotations

import pytest

from engine.errors import InputError, RegionError
from engine.ids import validate_clip_id, validate_region_name
from engine.sovereignty.regions import Home


def test_home_roundtrip_and_policy(tmp_path):
    h = Home.open(tmp_path, create=True)
    h.add_region("us-west", jurisdiction="US", export_fields=("ids", "scores"), export_to=("eu-central",))
    h.add_region("cn-east", jurisdiction="CN")
    again = Home.open(tmp_path)
    assert set(again.regions) == {"us-west", "cn-east"}
    us = again.region("us-west")
    assert us.path == (tmp_path / "regions" / "us-west").resolve()
    assert us.allows("ids", "eu-central") and not us.allows("embeddings", "eu-central")
    assert not us.allows("ids", "cn-east")
    assert not again.region("cn-east").allows("ids", "us-west")  # no policy = nothing leaves


def test_unknown_region_names_fix(tmp_path):
    h = Home.open(tmp_path, create=True)
    with pytest.raises(RegionError, match="clipdex regions add mars"):
        h.region("mars")


def test_missing_home_is_an_error(tmp_path):
    with pytest.raises(RegionError, match="no clipdex home"):
        Home.open(tmp_path / "nope")


@pytest.mark.parametrize("bad", ["", "..", ".", "a/b", "../etc", "/abs", "a b", "x" * 129, "a\x00b", "é"])
def test_hostile_clip_ids_refused(bad):
    with pytest.raises(InputError, match="clip id"):
        validate_clip_id(bad)


@pytest.mark.parametrize("bad", ["", "US-West", "../x", "a/b", "-x", "a" * 64])
def test_bad_region_names(bad):
    with pytest.raises(RegionError):
        validate_region_name(bad)


def test_overlapping_region_folders_refused(tmp_path):
    h = Home.open(tmp_path, create=True)
    h.add_region("a", path=tmp_path / "data")
    with pytest.raises(RegionError, match="overlaps"):
        h.add_region("b", path=tmp_path / "data" / "inner")


def test_invalid_policy_file(tmp_path):
    (tmp_path / "regions.toml").write_text('[regions.x]\npath = "x"\nexport_fields = ["everything"]\n')
    with pytest.raises(RegionError, match="invalid export_fields"):
        Home.open(tmp_path)
    (tmp_path / "regions.toml").write_text("not toml [")
    with pytest.raises(RegionError, match="not valid TOML"):
        Home.open(tmp_path)
