"""What ingest records and says: absolute sources, warnings in the report, frequent commits."""

from __future__ import annotations

import json
import os

import numpy as np
from typer.testing import CliRunner

from engine.ingest.pipeline import IngestOptions, ingest
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore
from engine.surfaces.cli import app
from fixtures.video import write_video


def _frames(seed: int, seconds: float, fps: int = 10) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (14, 22 + int(seconds * fps), 3)).astype(np.uint8)
    wide = np.kron(small, np.ones((8, 8, 1), np.uint8))
    return np.stack([wide[:96, 8 * i: 8 * i + 160] for i in range(int(seconds * fps))])


def _home(tmp_path) -> Home:
    h = Home.open(tmp_path / "home", create=True)
    h.add_region("r", jurisdiction="XX", export_fields=("ids",), export_to=("*",))
    return h


def test_relative_sources_are_stored_absolute(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    write_video(tmp_path / "data" / "a.mp4", _frames(0, 2.0), 10)
    h = _home(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert ingest(h, "r", ["data/a.mp4"], IngestOptions()).ok
    with RegionStore.open(h.region("r")) as store:
        (rec,) = store.clip_records()
    assert rec["source"] == str((tmp_path / "data" / "a.mp4").resolve())
    assert os.path.isabs(rec["source"])


def test_ingest_warnings_reach_the_table_and_json(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_video(src / "a.mp4", _frames(1, 4.0), 10)
    (src / "a.csv").write_text("time,speed,accel\n0,1,\n0.5,nan,0\n1.0,2,0\n")  # a NaN: repaired
    h = _home(tmp_path)
    r = CliRunner().invoke(app, ["ingest", str(src), "--region", "r", "--home", str(h.path), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["warned"] >= 1
    assert any("telemetry" in w["warning"] and w["item"].endswith("a.mp4") for w in out["warnings"])
    write_video(src / "b.mp4", _frames(2, 3.0), 10)
    r = CliRunner().invoke(app, ["ingest", str(src), "--region", "r", "--home", str(h.path)])
    assert r.exit_code == 0 and "warnings" in r.output  # the table of warnings is printed


def test_commits_come_at_least_every_commit_interval(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_video(src / "long.mp4", _frames(3, 6.0), 10)
    h = _home(tmp_path)
    rep = ingest(h, "r", [src], IngestOptions(clip_seconds=1.5, batch_size=64, commit_every_s=0.0))
    assert rep.ok and len(rep.ingested) == 4
    with RegionStore.open(h.region("r")) as store:
        # one commit per clip (interval 0), although the batch would hold them all
        assert store.snapshot().version >= 4


def test_animated_gif_is_a_video_source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_video(src / "a.gif", _frames(4, 2.0), 10, codec="gif", pix_fmt="rgb8")
    h = _home(tmp_path)
    rep = ingest(h, "r", [src], IngestOptions())
    assert rep.ok and rep.ingested == ["a"]
    with RegionStore.open(h.region("r")) as store:
        (rec,) = store.clip_records()
    assert abs(rec["duration_s"] - 2.0) < 0.2


def test_ingest_says_what_bound_it(tmp_path):
    """The writer thread's seconds (waiting for decoded clips, computing features, committing)
    are in the report and its JSON, with the stage that limited the job in the table."""
    (tmp_path / "data").mkdir()
    for i in range(2):
        write_video(tmp_path / "data" / f"v{i}.mp4", _frames(i, 3.0), 10)
    h = _home(tmp_path)
    report = ingest(h, "r", [str(tmp_path / "data")], IngestOptions())
    assert report.ok and report.keyframes > 0
    assert set(report.stages) == {"waiting", "features", "store"}
    assert all(v >= 0 for v in report.stages.values()) and report.stages["features"] > 0
    assert report.stages["store"] > 0
    assert report.bound in {"decode", "features", "store"}
    out = CliRunner().invoke(app, ["ingest", str(tmp_path / "data"), "--region", "r", "--home",
                                   str(h.path), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["bound"] == "-"  # nothing new was read: nothing bound it


def test_bound_names_the_stage_that_limited_the_job():
    from engine.ingest.pipeline import IngestReport

    r = IngestReport("r", "j", keyframes=10)
    r.stages.update(waiting=6.0, features=3.0, store=1.0)
    assert r.bound == "decode"
    r.executor = "dask"
    assert r.bound == "workers"
    r.stages.update(waiting=1.0)
    assert r.bound == "features"
    r.stages.update(store=5.0)
    assert r.bound == "store"
    assert IngestReport("r", "j").bound == "-"
