"""Recordings and drives: where clips come from, and how dedup, query, rarity and the split use it."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.curation.select import select_clips
from engine.ingest.clips import list_clips, set_metadata
from engine.ingest.drives import plan_drives
from engine.ingest.pipeline import IngestOptions, ingest
from engine.matching.dedup import DedupParams, recording_pairs, run_dedup
from engine.scenes.query import search_clip
from engine.sources.metadata import (
    MetadataResolver,
    MetadataTable,
    compile_patterns,
    from_name,
    parse_timezone,
)
from engine.store.region import RegionStore
from engine.surfaces.cli import app
from fixtures.video import write_video

UTC = dt.UTC


def _epoch(*args) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random RGB picture (blocky noise upsampled), uint8[h, w, 3]."""
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    big = np.kron(small, np.ones((8, 8, 1), np.float32))
    return np.clip(big[:h, :w], 0, 255).astype(np.uint8)


def _moving(rng, seconds: float, fps: int = 10, h: int = 96, w: int = 160) -> np.ndarray:
    """A scene that pans: every second looks different from the others."""
    wide = _texture(rng, h, w + int(seconds * fps) * 6 + 8)
    return np.stack([wide[:, 6 * i: 6 * i + w] for i in range(int(seconds * fps))])


def _static(rng, seconds: float, fps: int = 10, h: int = 96, w: int = 160) -> np.ndarray:
    """A scene that barely changes (a queue, a red light): every moment looks like every other."""
    base = _texture(rng, h, w).astype(np.int16)
    frames = [np.clip(base + rng.integers(-2, 3, base.shape), 0, 255) for _ in range(int(seconds * fps))]
    return np.stack(frames).astype(np.uint8)


def _region(tmp_path, name: str = "r"):
    from engine.sovereignty.regions import Home

    h = Home.open(tmp_path / "home", create=True)
    h.add_region(name, jurisdiction="XX", export_fields=("ids", "scores"), export_to=("*",))
    return h


# ------------------------------------------------------------------ names, tables, resolution
@pytest.mark.parametrize("name, start, camera", [
    ("20240501_143012_F.MP4", (2024, 5, 1, 14, 30, 12), "F"),
    ("2024_0501_143012_001.MOV", (2024, 5, 1, 14, 30, 12), ""),
    ("VID_20240501_143012.mp4", (2024, 5, 1, 14, 30, 12), ""),
    ("20240501-143012.mp4", (2024, 5, 1, 14, 30, 12), ""),
    ("NO20240501-143012-000123F.MP4", (2024, 5, 1, 14, 30, 12), ""),
])
def test_default_name_patterns_read_dashcam_and_phone_names(name, start, camera):
    got = from_name(name, compile_patterns(None), UTC)
    assert got["start_time"] == _epoch(*start)
    assert got.get("camera", "") == camera


def test_names_without_a_date_give_nothing_and_timezone_applies():
    pats = compile_patterns(None)
    assert from_name("s04_nuscenes_singapore_kf_1542799608112460.mp4", pats, UTC) == {}
    assert from_name("clip_20241301_250000.mp4", pats, UTC) == {}  # month 13: not a date
    berlin = from_name("20240501_143012.mp4", pats, parse_timezone("+02:00"))
    assert berlin["start_time"] == _epoch(2024, 5, 1, 12, 30, 12)


def test_user_pattern_with_vehicle_and_camera_wins_over_defaults():
    pats = compile_patterns([r"(?P<vehicle>car\d+)_(?P<camera>front|rear)_(?P<epoch>\d{10})"])
    got = from_name("car17_rear_1714573812.mp4", pats, UTC)
    assert got == {"start_time": 1714573812.0, "vehicle_id": "car17", "camera": "rear"}


def test_metadata_table_rows_warnings_and_precedence(tmp_path):
    (tmp_path / "a").mkdir()
    table = tmp_path / "meta.csv"
    table.write_text(
        "source,drive,vehicle,start_time,colour,tag_weather\n"
        "a/20240501_143012_F.mp4,D1,veh-9,2024-05-01T14:30:00Z,red,rain\n"
        "a/*.mp4,D-glob,veh-glob,,,\n"
        "a/other.mp4,D2,,yesterday,,\n"
        "missing/x.mp4,D3,,,,\n")
    t = MetadataTable.load(table)
    assert any("unknown columns ['colour']" in w for w in t.warnings)
    assert any("row 3" in w and "yesterday" in w for w in t.warnings)
    res = MetadataResolver(t, compile_patterns(None), UTC)
    md = res.resolve(tmp_path / "a" / "20240501_143012_F.mp4")
    # the table's exact row wins over its glob row and over the name; the name still gives camera
    assert (md.drive_id, md.vehicle_id, md.camera) == ("D1", "veh-9", "F")
    assert md.start_time == _epoch(2024, 5, 1, 14, 30, 0)
    assert md.provenance == {"drive_id": "metadata", "vehicle_id": "metadata",
                             "start_time": "metadata", "camera": "name"}
    assert md.tags == {"weather": "rain"}
    assert any("differ by 12.0 s" in w for w in md.warnings)  # table vs name, reported
    glob_only = res.resolve(tmp_path / "a" / "b.mp4")
    assert glob_only.drive_id == "D-glob" and glob_only.provenance["drive_id"] == "metadata"
    unused = t.unused_rows()
    assert len(unused) == 2 and any("row 4" in w for w in unused)  # other.mp4 was never asked


def test_metadata_table_formats_and_refusals(tmp_path):
    jl = tmp_path / "m.jsonl"
    jl.write_text(json.dumps({"source": "x.mp4", "drive_id": "D", "start_time": 1714573812}) + "\n")
    md = MetadataResolver(MetadataTable.load(jl)).resolve(tmp_path / "x.mp4")
    assert md.drive_id == "D" and md.start_time == 1714573812.0
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": ["x.mp4"], "camera": ["rear"]}), tmp_path / "m.parquet")
    assert MetadataResolver(MetadataTable.load(tmp_path / "m.parquet")).resolve(tmp_path / "x.mp4").camera == "rear"
    bad = tmp_path / "bad.csv"
    bad.write_text("drive,vehicle\nD,V\n")
    with pytest.raises(Exception, match="no 'source' column"):
        MetadataTable.load(bad)


def test_plan_drives_chains_consecutive_recordings_of_one_device():
    t0 = _epoch(2024, 5, 1, 14, 0, 0)

    def rec(i, folder, start, dur=60.0, camera="F", drive="", prov=None):
        return {"row": i, "recording_id": f"r{i}", "source": f"/{folder}/f{i}.mp4", "source_offset_s": 0.0,
                "duration_s": dur, "drive_id": drive, "vehicle_id": "", "camera": camera,
                "start_time": start, "meta": {"provenance": prov or {"start_time": "name"}}}

    records = [rec(0, "card", t0), rec(1, "card", t0 + 61), rec(2, "card", t0 + 122),
               rec(3, "card", t0 + 600),  # a gap: a new drive
               rec(4, "card", t0 + 61, camera="R"),  # the rear camera is another device
               rec(5, "other", t0 + 61),  # another folder: another device
               rec(6, "card", t0 + 662, drive="given", prov={"drive_id": "metadata"}),
               rec(7, "card", None),
               rec(8, "card", t0 + 663, prov={"start_time": "container"})]
    plan = plan_drives(records, gap_s=10)
    assert plan["r0"] == plan["r1"] == plan["r2"] != plan["r3"]
    assert plan["r4"] != plan["r1"] and plan["r5"] != plan["r1"]
    assert "r6" not in plan  # a given drive is kept
    assert plan["r7"] == "" and plan["r8"] == ""  # no (trusted) start time: no drive
    assert plan["r0"].endswith("-F-20240501T140000")


# ------------------------------------------------------------------ end to end on video files
@pytest.fixture(scope="module")
def dashcam_folder(tmp_path_factory):
    """3 drives x 4 consecutive 2-s files named by start time, the third with a 5-min gap after
    its second file (so it is two drives)."""
    root = tmp_path_factory.mktemp("dashcam")
    rng = np.random.default_rng(0)
    starts = {}
    for d, base in enumerate([(2024, 5, 1, 8, 0, 0), (2024, 5, 1, 12, 0, 0), (2024, 5, 2, 9, 0, 0)]):
        t = _epoch(*base)
        for f in range(4):
            if d == 2 and f == 2:
                t += 300
            name = dt.datetime.fromtimestamp(t, UTC).strftime("%Y%m%d_%H%M%S") + "_F.mp4"
            write_video(root / name, _moving(rng, 2.0), 10)
            starts[name[:-4]] = (d if not (d == 2 and f >= 2) else 3, t)
            t += 2
    return root, starts


def test_dashcam_files_become_drives_with_start_times(tmp_path, dashcam_folder):
    root, starts = dashcam_folder
    h = _region(tmp_path)
    rep = ingest(h, "r", [root], IngestOptions())
    assert rep.ok and len(rep.ingested) == 12
    with RegionStore.open(h.region("r")) as store:
        clips = {c["clip_id"]: c for c in list_clips(store)}
    drives: dict[int, set[str]] = {}
    for cid, (d, t) in starts.items():
        c = clips[cid]
        assert c["start_time"] == dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert c["camera"] == "F"
        assert c["provenance"]["start_time"] == "name" and c["provenance"]["drive_id"] == "chain"
        drives.setdefault(d, set()).add(c["drive_id"])
    assert all(len(v) == 1 for v in drives.values())  # one drive id per planned drive
    assert len(set.union(*drives.values())) == 4  # and four different ones (the gap splits)


def test_metadata_table_overrides_names_and_corrects_without_decoding(tmp_path, dashcam_folder):
    root, starts = dashcam_folder
    h = _region(tmp_path)
    assert ingest(h, "r", [root], IngestOptions()).ok
    first = sorted(starts)[0]
    table = tmp_path / "meta.csv"
    table.write_text(f"source,drive,vehicle,start_time\n{root}/{first}.mp4,D-fixed,veh-1,"
                     "2030-01-01T00:00:00Z\n/nowhere/x.mp4,D9,,\n")
    rep = ingest(h, "r", [root], IngestOptions(metadata=table))
    assert rep.ingested == [] and rep.metadata_updated == 1
    assert all("nothing decoded" in why for _, why in rep.skipped)
    assert any("/nowhere/x.mp4 matches no ingested file" in w for _, w in rep.warnings)
    with RegionStore.open(h.region("r")) as store:
        c = {c["clip_id"]: c for c in list_clips(store)}[first]
    assert (c["drive_id"], c["vehicle_id"]) == ("D-fixed", "veh-1")
    assert c["start_time"].startswith("2030-01-01T00:00:00")
    assert c["provenance"]["drive_id"] == "metadata"


def test_split_recording_pieces_are_never_matched_and_overlaps_come_from_spans(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    src.mkdir()
    write_video(src / "queue.mp4", _static(rng, 12.0), 10)  # every 3-s piece looks like the others
    write_video(src / "pan.mp4", _moving(rng, 12.0), 10)
    h = _region(tmp_path)
    rep = ingest(h, "r", [src], IngestOptions(clip_seconds=3))
    assert rep.ok and len(rep.ingested) == 8
    with RegionStore.open(h.region("r")) as store:
        res = run_dedup(store)
        assert res.pairs == [] and res.groups == {}
        # the same recording cut again with another split: overlaps, with exact offsets
        rep2 = ingest(h, "r", [src / "pan.mp4"], IngestOptions(clip_seconds=5))
        assert len(rep2.ingested) == 3
        res = run_dedup(store)
        table = store.clip_table()
        ids = dict(zip(table.rows.tolist(), table.clip_ids, strict=True))
        got = {(ids[p.a], ids[p.b]): (p.relation, p.offset_s) for p in res.pairs}
    assert got, "overlapping pieces of one recording must be paired"
    assert all(r == "partial" for r, _ in got.values())
    # the second split's ids are its own; pan-0001 (3-6 s) and pan-0000-split5s (0-5 s): B's t=0
    # lies at A's time -3; the queue's look-alike pieces stay unpaired
    assert got[("pan-0001", "pan-0000-split5s")] == ("partial", -3.0)
    assert got[("pan-0000", "pan-0000-split5s")] == ("partial", 0.0)
    assert all(a.startswith("pan") and b.startswith("pan") for a, b in got)


def test_recording_pairs_unit():
    from engine.store.region import ClipTable, Snapshot

    n = 4
    table = ClipTable(Snapshot(1, 0, n), np.arange(n), [f"c{i}" for i in range(n)], [""] * n, [""] * n,
                      np.full(n, np.nan), np.array([5.0, 5.0, 8.0, 5.0]), np.zeros(n, np.int64),
                      np.full(n, 10), np.ones(n), ["s"] * n, np.array([0.0, 5.0, 3.0, 0.0]),
                      ["r1", "r1", "r1", "r2"], [""] * n)
    pairs = recording_pairs(table, np.arange(n), DedupParams())
    got = {(p.a, p.b): p for p in pairs}
    assert set(got) == {(0, 2), (1, 2)}  # 0 and 1 are disjoint; 3 is another recording
    assert got[(0, 2)].offset_s == 3.0 and got[(0, 2)].a_span == (3.0, 5.0)
    assert got[(1, 2)].offset_s == -2.0 and got[(1, 2)].b_span == (2.0, 7.0)


def test_query_leaves_out_the_own_recording_and_split_never_leaks(tmp_path):
    rng = np.random.default_rng(2)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        write_video(src / f"rec{i}.mp4", _moving(rng, 9.0), 10)
    h = _region(tmp_path)
    assert ingest(h, "r", [src], IngestOptions(clip_seconds=3)).ok
    with RegionStore.open(h.region("r")) as store:
        run_dedup(store)
        left: list[str] = []
        hits = search_clip(store, "rec0-0001", k=10, excluded=left)
        assert sorted(left) == ["rec0-0000", "rec0-0002"]
        assert hits and not any(h.clip_id.startswith("rec0-") for h in hits)
        kept = search_clip(store, "rec0-0001", k=11, same_recording=True)
        assert {"rec0-0000", "rec0-0002"} <= {h.clip_id for h in kept}
        sel = select_clips(store, budget=12, val_fraction=0.5, seed=3)
    sides: dict[str, set[str]] = {}
    for s in sel.chosen:
        sides.setdefault(s.clip_id.split("-")[0], set()).add(s.split)
    assert all(len(v) == 1 for v in sides.values()), sides


def test_cli_clips_list_and_set(tmp_path, dashcam_folder):
    root, starts = dashcam_folder
    h = _region(tmp_path)
    runner = CliRunner()
    home = ["--home", str(h.path)]
    r = runner.invoke(app, ["ingest", str(root), "--region", "r", *home, "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["clips", "--region", "r", *home])
    assert r.exit_code == 0 and "12 clips" in r.output and "name/chain" in r.output
    first = sorted(starts)[0]
    r = runner.invoke(app, ["clips", "set", "--region", "r", *home, "--clip", first,
                            "--drive", "D-user", "--start", "2031-02-03T04:05:06", "--timezone", "+01:00",
                            "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["clips"] == 1
    r = runner.invoke(app, ["clips", "--region", "r", *home, "--drive", "D-user", "--json"])
    rows = json.loads(r.stdout)
    assert [c["clip_id"] for c in rows] == [first]
    assert rows[0]["start_time"] == "2031-02-03T03:05:06.000Z"
    assert rows[0]["provenance"]["drive_id"] == "user"
    r = runner.invoke(app, ["clips", "set", "--region", "r", *home, "--clip", first])
    assert r.exit_code == 2 and "nothing to set" in r.output
    r = runner.invoke(app, ["clips", *home])
    assert r.exit_code == 2 and "--region" in r.output


def test_set_metadata_refuses_unknown_recording(tmp_path):
    h = _region(tmp_path)
    rng = np.random.default_rng(4)
    write_video(tmp_path / "a.mp4", _moving(rng, 2.0), 10)
    assert ingest(h, "r", [tmp_path / "a.mp4"], IngestOptions()).ok
    with RegionStore.open(h.region("r")) as store, store.writer():
        with pytest.raises(Exception, match="has no clips"):
            set_metadata(store, recording="nope", drive_id="x")
        with pytest.raises(Exception, match="cannot be read"):
            set_metadata(store, clip_id="a", start_time="soon")
        assert math.isnan(float("nan"))
