"""The first hour of a new user, scripted: the demo in its own regions, then one's own video
(a folder of dashcam files with a bad file and a telemetry sidecar) from ingest to an exported
training set, every command through the CLI at 80 columns: exit codes, messages, no traceback."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.surfaces.cli import app
from fixtures import FleetSpec, iter_fleet_clips
from fixtures.video import write_telemetry_csv, write_video

runner = CliRunner()
SPEC = dataclasses.replace(FleetSpec.tiny(), width=96, height=54, clip_seconds=4.0)


def cli(*args: str, ok: tuple[int, ...] = (0,)):
    """Run clipdex at 80 columns; assert the exit code and that no traceback escaped."""
    res = runner.invoke(app, list(args), env={"COLUMNS": "80"})
    out = res.output
    assert "Traceback" not in out, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code in ok, (args, res.exit_code, out)
    return res


def fits_80(text: str) -> bool:
    return max((len(line) for line in text.splitlines()), default=0) <= 80


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dashcam(tmp_path_factory) -> Path:
    """3 H.264 clips of different drives (the first with a telemetry sidecar), a file that is no
    video, a hidden-named video and a note."""
    folder = tmp_path_factory.mktemp("dashcam")
    drives: set[str] = set()
    for clip in iter_fleet_clips(SPEC):
        if clip.attrs["drive_id"] in drives:
            continue
        drives.add(clip.attrs["drive_id"])
        n = len(drives) - 1
        write_video(folder / f"cam{n}.mp4", clip.frames, SPEC.fps)
        if n == 0:
            write_telemetry_csv(folder / "cam0.csv", clip.telemetry)
        if n == 2:
            break
    (folder / "broken.mp4").write_bytes(b"not a video\n" * 20)
    (folder / "...mp4").write_bytes((folder / "cam1.mp4").read_bytes())
    (folder / "notes.txt").write_text("trip notes\n")
    return folder


def test_demo_never_writes_into_a_user_region(tmp_path):
    home = tmp_path / "home"
    cli("regions", "add", "us-west", "--home", str(home), "--jurisdiction", "US")
    region = home / "regions" / "us-west"
    (region / "mine.txt").write_text("the user's own data\n")
    before = tree_digest(region)
    toml_before = (home / "regions.toml").read_text()
    res = cli("demo", "--home", str(home), "--clips", "24", ok=(0, 1))
    assert tree_digest(region) == before  # byte-identical
    assert toml_before.split("[regions.us-west]")[1].split("[")[0] in (home / "regions.toml").read_text()
    assert "demo-us-west" in res.output and "the demo's own" in res.output and str(home) in res.output
    assert "clipdex ingest /path/to/dashcam" in res.output  # what to run next on one's own video
    shown = json.loads(cli("regions", "list", "--home", str(home), "--json").stdout)
    assert {r["region"] for r in shown} == {"us-west", "demo-us-west", "demo-cn-east"}
    # a rerun replaces the demo's own regions, still leaving the user's alone
    cli("demo", "--home", str(home), "--clips", "24", "--json", ok=(0, 1))
    assert tree_digest(region) == before


def test_demo_refuses_a_user_region_with_its_name_before_writing(tmp_path):
    from engine.errors import InputError
    from engine.surfaces.demo import claim_regions

    home = tmp_path / "home"
    cli("regions", "add", "us-west", "--home", str(home))
    cli("regions", "add", "demo-us-west", "--home", str(home))
    toml = (home / "regions.toml").read_text()
    with pytest.raises(InputError, match="did not create"):
        claim_regions(home, ("us-west", "cn-east"))
    assert (home / "regions.toml").read_text() == toml and not (home / "demo").exists()
    res = cli("demo", "--home", str(home), "--clips", "24", ok=(2,))
    assert "demo-us-west" in res.output and "clipdex demo --home NEW_FOLDER" in res.output


def test_demo_home_is_its_own_by_default():
    """The demo's --home ignores CLIPDEX_HOME: without --home it makes a home of its own."""
    import typer.main

    demo = typer.main.get_command(app).commands["demo"]
    (home,) = [p for p in demo.params if p.name == "home"]
    assert not home.envvar


def test_first_hour_with_own_video(tmp_path, monkeypatch, dashcam):
    home = str(tmp_path / "home")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cli("regions", "add", "my-fleet", "--home", home, "--jurisdiction", "US", "--export", "ids", "--to", "*")

    # ingest: the good files go in; the bad one fails with its reason; skipped paths are listed
    res = cli("ingest", str(dashcam), "--region", "my-fleet", "--home", home, "--json", ok=(1,))
    rep = json.loads(res.stdout)
    assert rep["ingested"] == 3 and len(rep["failures"]) == 1
    assert "broken.mp4" in rep["failures"][0]["item"] and "not a readable video" in rep["failures"][0]["error"]
    skips = {Path(s["clip_id"]).name: s["reason"] for s in rep["skips"]}
    assert "hidden name" in skips["...mp4"] and "not a video" in skips["notes.txt"]

    res = cli("dedup", "--region", "my-fleet", "--home", home)
    assert fits_80(res.stdout) and "redundant_clips" in res.stdout  # headers whole, not in pieces
    dedup_pairs = json.loads(cli("dedup", "--region", "my-fleet", "--home", home, "--json").stdout)["summary"]["pairs"]

    # rare with fewer clips than k: a result and a note, no traceback
    res = cli("rare", "--region", "my-fleet", "--home", home)
    assert "holds 3 clips" in res.output and "rank: clips with a rare event" in res.stdout
    assert fits_80(res.stdout)
    ranked = json.loads(cli("rare", "--region", "my-fleet", "--home", home, "--json").stdout)
    assert len(ranked) == 3 and {r["basis"] for r in ranked} <= {"event", "appearance", "dynamics"}
    cli("report", "--region", "my-fleet", "--home", home)

    hits = json.loads(cli("query", "--region", "my-fleet", "--home", home, "--clip", "cam0", "-k", "10",
                          "--json").stdout)
    assert 1 <= len(hits) <= 2 and all(h["clip_id"] != "cam0" for h in hits)

    res = cli("select", "--region", "my-fleet", "--home", home, "--budget", "10", "--out", "train.jsonl")
    assert fits_80(res.stdout)
    manifest = work / "train.jsonl"
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert 1 <= len(lines) <= 3

    # export from another directory: an estimate first, keyframes at a modest size by default
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = cli("export", "--manifest", str(manifest), "--region", "my-fleet", "--home", home)
    assert "export:" in res.stderr and "MB before compression" in res.stderr and "(keyframes)" in res.stderr
    assert fits_80(res.stdout)
    out = json.loads(cli("export", "--manifest", str(manifest), "--region", "my-fleet", "--home", home,
                         "--json").stdout)
    assert out["failed"] == [] or out.get("failures") in (None, [])
    assert out["estimate"]["frames"] > 0

    res = cli("verify", "--region", "my-fleet", "--home", home)
    assert "ok" in res.stdout and "past the committed ends" not in res.stdout

    res = cli("stats", "--region", "my-fleet", "--home", home)
    assert fits_80(res.stdout) and "UTC" in res.stdout and "running" not in res.stdout
    stats = json.loads(cli("stats", "--region", "my-fleet", "--home", home, "--json").stdout)
    assert stats["clips"] == 3 and stats["pairs"] == dedup_pairs
