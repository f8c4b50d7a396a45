"""End to end on the demo fleet: every stage, scored against the fixture's ground truth."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from engine.surfaces.cli import app
from engine.surfaces.demo import run_demo


@pytest.fixture(scope="module")
def demo_summary(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo-home")
    return run_demo(home, seed=7)


def test_demo_dedup_quality(demo_summary):
    """Regression guard on the demo fleet: every planted duplicate found, at most one look-alike."""
    for region, s in demo_summary["regions"].items():
        d = s["dedup"]
        assert d["recall"] == 1.0, (region, d["missed"])
        assert d["precision"] >= 0.95, (region, d["false"])
        assert d["hard_negatives_merged"] <= 1, region
        if d["offset_error_max_s"] is not None:
            assert d["offset_error_max_s"] <= 0.5, region
        assert s["failed"] == 0
    assert demo_summary["errors"] == 0


def test_demo_rarity_meets_target(demo_summary):
    """Issue 2's target: rare recall@k >= 0.8 in every region of the default demo fleet (seed 7;
    measured 0.81 / 0.90, docs/quality.md)."""
    for region, s in demo_summary["regions"].items():
        assert s["rarity"]["recall_at_k"] >= 0.8, (region, s["rarity"])


def test_demo_rarity_beats_chance(demo_summary):
    """Rarity must rank rare clips above chance (k/N): a regression guard, not the target."""
    for region, s in demo_summary["regions"].items():
        chance = s["rarity"]["rare_clips"] / s["ingested"]
        assert s["rarity"]["recall_at_k"] >= 1.5 * chance, (region, s["rarity"])


def test_manifest_is_explained_and_split_by_drive(demo_summary):
    for s in demo_summary["regions"].values():
        lines = [json.loads(x) for x in open(s["manifest"], encoding="utf-8")]
        assert lines and all(r["reason"] in {"rare", "diverse", "random", "forced"} for r in lines)
        assert len({r["clip_id"] for r in lines}) == len(lines)
        sides: dict[str, set] = {}
        for r in lines:
            sides.setdefault(r["drive_id"], set()).add(r["split"])
        assert all(len(v) == 1 for v in sides.values())


def test_cli_commands_on_demo_home(demo_summary):
    runner = CliRunner()
    home = demo_summary["home"]
    region = sorted(demo_summary["regions"])[0]
    res = runner.invoke(app, ["rare", "--region", region, "--home", home, "--top", "5", "--json"])
    assert res.exit_code == 0, res.output
    top = json.loads(res.stdout)
    assert len(top) == 5 and top[0]["percentile"] == 100.0
    assert all("event_support_units" in t for t in top)
    res = runner.invoke(app, ["rare", "--region", region, "--home", home, "--top", "5", "--density-only", "--json"])
    assert res.exit_code == 0, res.output
    dens = json.loads(res.stdout)
    assert len(dens) == 5 and all(t["event_support_units"] is None for t in dens)
    # ranked by distinct recording (a duplicate group once, at its sharpest copy's density)
    assert [t["percentile"] for t in dens] == sorted((t["percentile"] for t in dens), reverse=True)
    res = runner.invoke(app, ["rare", "--region", region, "--home", home, "--top", "5"])
    assert res.exit_code == 0 and "alike" in res.output and "copies" in res.output, res.output
    assert "older" not in res.stderr
    # a clip whose triggers an older clipdex computed: rare says so (stderr), and still ranks
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    with RegionStore.open(Home.open(home).region(region)) as store, store.writer():
        with store.transaction() as db:
            db.execute("UPDATE clips SET meta = json_remove(meta, '$.triggers_version') WHERE row = "
                       "(SELECT MIN(row) FROM clips)")
    res = runner.invoke(app, ["rare", "--region", region, "--home", home, "--top", "5", "--json"])
    assert res.exit_code == 0 and len(json.loads(res.stdout)) == 5
    assert "1 clip(s)" in res.stderr and "older" in res.stderr, res.stderr
    res = runner.invoke(app, ["query", "--region", region, "--home", home, "--clip", top[0]["clip_id"], "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert len(hits) == 3 and all(h["clip_id"] != top[0]["clip_id"] for h in hits)
    res = runner.invoke(app, ["dedup", "--region", region, "--home", home, "--pairs", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["pairs"] >= 1
    # the report stays inside the region (writing it elsewhere needs the policy: egress)
    report = Home.open(home).region(region).path / "report" / "rare-1.html"
    res = runner.invoke(app, ["report", "--region", region, "--home", home])
    assert res.exit_code == 0, res.output
    page = open(report, encoding="utf-8").read()
    assert "Rarest recordings" in page and "copies" in page  # one card per duplicate group
    res = runner.invoke(app, ["stats", "--region", region, "--home", home, "--json"])
    assert json.loads(res.stdout)["clips"] == demo_summary["regions"][region]["ingested"]
    # a second ingest of the same store is a no-op
    fleet = f"{home}/demo/fleet/{region}/clips.zarr"
    res = runner.invoke(app, ["ingest", fleet, "--region", region, "--home", home, "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["ingested"] == 0 and rep["skipped"] == demo_summary["regions"][region]["ingested"]
    # a clip whose metadata names another region is refused
    other = sorted(demo_summary["regions"])[1]
    res = runner.invoke(app, ["ingest", f"{home}/demo/fleet/{other}/clips.zarr", "--region", region, "--home", home, "--json"])
    assert res.exit_code == 1
    assert "names region" in res.stdout
