"""Export of a selection manifest to a zarr dataset: readable, equal to the source, resumable after
a kill, refused outside the region and for forgotten or foreign clips; video sources split by time."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import zarr

from engine.curation.export import (
    ExportedDataset,
    check_destination,
    export_manifest,
    iter_dataset,
    parse_size,
)
from engine.curation.manifest import read_manifest, write_manifest
from engine.curation.select import select_clips
from engine.errors import InputError, PolicyError
from engine.ingest.pipeline import IngestOptions, ingest
from engine.sovereignty.forget import forget
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore
from fixtures import FleetSpec, write_fleet

REGION = "us-west"
BUDGET = 100


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One region with ~120 tiny fixture clips, a 100-clip manifest (train/val), a video region."""
    root = tmp_path_factory.mktemp("export")
    spec = dataclasses.replace(FleetSpec.tiny(seed=5), n_clips=120, regions=(REGION,),
                               cross_region_duplicates=0)
    write_fleet(root / "fleet", spec)
    home = Home.open(root / "home", create=True)
    home.add_region(REGION, jurisdiction="US", export_fields=("ids", "scores"), export_to=("*",))
    home.add_region("cn-east", jurisdiction="CN")
    rep = ingest(home, REGION, [root / "fleet" / REGION / "clips.zarr"])
    assert rep.ok, rep.failed
    with RegionStore.open(home.region(REGION)) as store:
        n = len(store.clip_table())
        sel = select_clips(store, BUDGET, mix={"diverse": 0.5, "random": 0.5}, val_fraction=0.25, seed=3)
    assert n > BUDGET and len(sel.chosen) == BUDGET
    manifest = write_manifest(sel, home.region(REGION).path / "manifests" / "train.jsonl")
    return {"root": root, "home": home, "manifest": manifest, "fleet": root / "fleet" / REGION / "clips.zarr"}


def _source_clip(fleet, clip_id):
    g = zarr.open_group(fleet, mode="r")[clip_id]
    return np.asarray(g["frames"][:]), np.asarray(g["frame_times"][:]), np.asarray(g["telemetry"]["speed"][:])


def test_export_is_readable_and_equals_the_source(world):
    home, manifest = world["home"], world["manifest"]
    report = export_manifest(home, manifest)
    assert report.ok and len(report.written) == BUDGET and not report.skipped
    out = home.region(REGION).path / "exports" / "train"  # default: inside the region
    assert report.out == str(out)
    records = {r["clip_id"]: r for r in read_manifest(manifest)}
    clips = list(iter_dataset(out))
    assert sorted(c.clip_id for c in clips) == sorted(records)
    for clip in clips[::7]:
        frames, times, speed = _source_clip(world["fleet"], clip.clip_id)
        assert clip.frames.dtype == np.uint8 and clip.frames.shape == frames.shape
        assert np.array_equal(clip.frames, frames)
        np.testing.assert_allclose(clip.frame_times, times - times[0])
        np.testing.assert_allclose(clip.telemetry["speed"], speed)
        assert set(clip.telemetry) == {"time", "speed", "accel", "yaw_rate", "steering"}
        rec = records[clip.clip_id]
        assert clip.meta["split"] == rec["split"] and clip.meta["reason"] == rec["reason"]
        assert clip.meta["region"] == REGION and clip.meta["span"] == rec["span"]
        assert clip.meta["source"] == rec["source"]
    val = ExportedDataset(out, split="val")
    assert len(val) == sum(r["split"] == "val" for r in records.values()) > 0
    assert all(c.meta["split"] == "val" for c in val)


def test_keyframes_mode_and_resize(world):
    home, manifest = world["home"], world["manifest"]
    out = home.region(REGION).path / "exports" / "kf"
    first = read_manifest(manifest)[:3]
    small = out.parent / "kf.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in first))
    report = export_manifest(home, small, out=out, frames="keyframes", size=parse_size("48x28"))
    assert report.ok and len(report.written) == 3
    with RegionStore.open(home.region(REGION)) as store:
        for clip in iter_dataset(out):
            (ks, kn), = store.db.execute("SELECT kf_start, kf_count FROM clips WHERE clip_id=?", (clip.clip_id,))
            kf_times = store.read_rows("keyframe_times", ks, ks + kn)
            assert clip.frames.shape == (kn, 28, 48, 3)
            # the nearest source frame to each keyframe time (10 fps source, 2 Hz keyframes)
            np.testing.assert_allclose(clip.frame_times, kf_times, atol=0.051)
    with pytest.raises(InputError, match="WIDTHxHEIGHT"):
        parse_size("48by28")


def _mtimes(path):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(path) for f in files}


def test_interrupted_export_resumes_without_rewriting(world):
    home, manifest = world["home"], world["manifest"]
    out = home.region(REGION).path / "exports" / "resume"
    env = {**os.environ, "CLIPDEX_FAULT": "export_frames:5"}  # SIGKILL after clip 5's frames
    proc = subprocess.run([sys.executable, "-m", "engine.surfaces.cli", "export", "--manifest", str(manifest),
                           "--home", str(home.path), "--out", str(out), "--frames", "all",
                           "--size", "source", "--json"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr
    ids = [r["clip_id"] for r in read_manifest(manifest)]
    root = zarr.open_group(out, mode="r")
    complete = [c for c in ids if c in root.group_keys() and root[c].attrs.get("complete") is True]
    assert complete == ids[:4]
    assert ids[4] in root.group_keys() and "complete" not in root[ids[4]].attrs  # partial clip
    assert len(ExportedDataset(out)) == 4  # the reader never lists a partial clip
    before = {c: _mtimes(out / c) for c in complete}
    report = export_manifest(home, manifest, out=out)
    assert report.ok
    assert report.skipped == ids[:4] and report.written == ids[4:]
    for c in complete:
        assert _mtimes(out / c) == before[c], f"{c} was rewritten"
    ds = ExportedDataset(out)
    assert len(ds) == BUDGET
    frames, _, _ = _source_clip(world["fleet"], ids[4])
    assert np.array_equal(ds[ds.clip_ids.index(ids[4])].frames, frames)
    again = export_manifest(home, manifest, out=out)  # a finished export: nothing to do
    assert len(again.skipped) == BUDGET and not again.written
    with pytest.raises(InputError, match="other settings"):
        export_manifest(home, manifest, out=out, frames="keyframes")


def test_out_of_region_destination_refused(world, tmp_path):
    home, manifest = world["home"], world["manifest"]
    with pytest.raises(PolicyError, match="does not let 'frames' leave"):
        export_manifest(home, manifest, out=tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(PolicyError, match="region 'cn-east'"):
        export_manifest(home, manifest, out=home.region("cn-east").path / "x")
    region = home.region(REGION)
    assert check_destination(home, region, region.path / "exports" / "a") is None
    opened = dataclasses.replace(region, export_fields=("frames", "telemetry"), export_to=("*",))
    assert check_destination(home, opened, tmp_path / "elsewhere") == "*"
    no_frames = dataclasses.replace(region, export_fields=("telemetry",), export_to=("*",))
    with pytest.raises(PolicyError, match="'frames'"):
        check_destination(home, no_frames, tmp_path / "elsewhere")
    # the CLI: exit 2 with the reason
    proc = subprocess.run([sys.executable, "-m", "engine.surfaces.cli", "export", "--manifest", str(manifest),
                           "--home", str(home.path), "--out", str(tmp_path / "cli")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "policy" in proc.stderr


def test_forgotten_foreign_and_unknown_clips_refused_per_clip(world):
    home, manifest = world["home"], world["manifest"]
    records = read_manifest(manifest)
    chosen = {r["clip_id"] for r in records}
    region = home.region(REGION)
    with RegionStore.open(region) as store:
        outside = [c for c in store.clip_table().clip_ids if c not in chosen]
        with store.writer():
            forget(store, [outside[0]])
    good = records[0]
    rows = [good, {**good, "clip_id": outside[0]}, {**good, "clip_id": "cn-east-0001", "region": "cn-east"},
            {**good, "clip_id": "no-such-clip"}, {**good, "clip_id": "../escape"}]
    path = region.path / "manifests" / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = export_manifest(home, path, region=REGION)
    assert report.written == [good["clip_id"]]
    reasons = dict(report.failed)
    assert "forgotten" in reasons[outside[0]]
    assert "belongs to region 'cn-east'" in reasons["cn-east-0001"]
    assert "not in region" in reasons["no-such-clip"]
    assert "../escape" in reasons
    out = region.path / "exports" / "mixed"
    assert [c.clip_id for c in iter_dataset(out)] == [good["clip_id"]]
    assert not (out.parent / "escape").exists()


def test_video_source_split_by_time(world, tmp_path):
    av = pytest.importorskip("av")
    from fixtures.video import write_telemetry_csv, write_video

    # 4 s at 10 fps from the first chosen clip that long (trimmed copies are shorter)
    long_enough = (f for f in (_source_clip(world["fleet"], r["clip_id"])[0]
                               for r in read_manifest(world["manifest"])) if len(f) >= 40)
    frames = next(long_enough)[:40]
    video = tmp_path / "drive.mp4"
    write_video(video, frames, 10.0)
    t = np.arange(80) / 20.0
    write_telemetry_csv(tmp_path / "drive.csv", {"time": t, "speed": t * 2, "accel": t * 0,
                                                 "yaw_rate": t * 0, "steering": t * 0})
    home = Home.open(tmp_path / "home", create=True)
    home.add_region("eu", jurisdiction="EU")
    assert ingest(home, "eu", [video], IngestOptions(clip_seconds=2.0)).ok
    with RegionStore.open(home.region("eu")) as store:
        sel = select_clips(store, 2, mix={"random": 1.0})
    manifest = write_manifest(sel, home.region("eu").path / "m.jsonl")
    report = export_manifest(home, manifest)
    assert report.ok and len(report.written) == 2, report.failed
    with av.open(str(video)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == 40
    by_id = {c.clip_id: c for c in iter_dataset(home.region("eu").path / "exports" / "m")}
    for k, cid in enumerate(sorted(by_id)):
        clip = by_id[cid]
        assert clip.frames.shape[0] == 20
        assert np.array_equal(clip.frames, np.stack(decoded[20 * k:20 * k + 20]))
        np.testing.assert_allclose(clip.frame_times, np.arange(20) / 10.0, atol=1e-6)
        assert clip.telemetry["time"].min() >= 0 and clip.telemetry["time"].max() < 2.0
        np.testing.assert_allclose(clip.telemetry["speed"], (clip.telemetry["time"] + 2.0 * k) * 2, atol=1e-4)
