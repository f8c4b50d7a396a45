from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from engine.errors import InputError
from engine.surfaces.cli import app

runner = CliRunner()


def test_help_lists_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("demo", "ingest", "dedup", "rare", "query", "select", "regions", "stats"):
        assert cmd in res.output


def test_help_is_plain_text_that_fits_80_columns():
    """Help texts are not markup: install extras and shapes keep their brackets; the command
    lists show whole one-line summaries within 80 columns."""
    assert "clipdex[s3]" in " ".join(runner.invoke(app, ["ingest", "--help"], terminal_width=80).output.split())
    assert "[n, d]" in runner.invoke(app, ["embeddings", "import", "--help"], terminal_width=80).output
    for group in ([], ["regions"], ["embeddings"], ["clips"]):
        res = runner.invoke(app, [*group, "--help"], terminal_width=80)
        assert res.exit_code == 0
        listing = res.output.split("Commands:")[1].splitlines()
        assert all(len(line) <= 80 and not line.endswith("...") for line in listing), res.output


def test_regions_add_list_show(tmp_path):
    home = str(tmp_path / "h")
    res = runner.invoke(app, ["regions", "add", "us-west", "--home", home, "--jurisdiction", "US",
                              "--export", "ids,scores", "--to", "*"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["regions", "list", "--home", home, "--json"])
    assert res.exit_code == 0
    rows = json.loads(res.stdout)
    assert rows[0]["region"] == "us-west" and rows[0]["export_fields"] == ["ids", "scores"]
    res = runner.invoke(app, ["regions", "show", "us-west", "--home", home, "--json"])
    assert json.loads(res.stdout)["jurisdiction"] == "US"


def test_missing_home_unknown_region_bad_clip_id(tmp_path):
    res = runner.invoke(app, ["stats", "--region", "us-west", "--home", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no clipdex home" in res.output
    home = str(tmp_path / "h")
    runner.invoke(app, ["regions", "add", "us-west", "--home", home])
    res = runner.invoke(app, ["ingest", str(tmp_path), "--region", "mars", "--home", home])
    assert res.exit_code == 2 and "unknown region 'mars'" in res.output
    res = runner.invoke(app, ["query", "--region", "us-west", "--home", home, "--clip", "../etc/passwd"])
    assert res.exit_code == 2
    assert "invalid clip id" in res.output or "no store" in res.output


def test_query_needs_exactly_one_target(tmp_path):
    home = str(tmp_path / "h")
    runner.invoke(app, ["regions", "add", "us-west", "--home", home])
    res = runner.invoke(app, ["query", "--region", "us-west", "--home", home])
    assert res.exit_code == 2


def test_regions_set_policy(tmp_path):
    home = str(tmp_path / "h")
    runner.invoke(app, ["regions", "add", "us-west", "--home", home])
    res = runner.invoke(app, ["regions", "set-policy", "us-west", "--export", "ids,scores", "--to", "*",
                              "--home", home])
    assert res.exit_code == 0, res.output
    assert "now exports ids,scores to *" in res.output and "was nothing" in res.output
    shown = json.loads(runner.invoke(app, ["regions", "show", "us-west", "--home", home, "--json"]).stdout)
    assert shown["export_fields"] == ["ids", "scores"] and shown["export_to"] == ["*"]
    res = runner.invoke(app, ["regions", "set-policy", "us-west", "--export", "ids,bogus", "--to", "*", "--home", home])
    assert res.exit_code == 2 and "unknown export field 'bogus'" in res.output
    res = runner.invoke(app, ["regions", "set-policy", "us-west", "--export", "ids", "--home", home])
    assert res.exit_code == 2 and "needs --to" in res.output
    res = runner.invoke(app, ["regions", "set-policy", "us-west", "--export", "none", "--home", home])
    assert res.exit_code == 0 and "now exports nothing" in res.output


def test_export_size_default_and_parse():
    from engine.curation.export import fit_size, parse_size

    assert parse_size("640") == 640 and parse_size("320x180") == (320, 180)
    assert parse_size("source") is None and parse_size(None) is None
    assert fit_size(1920, 1080, 640) == (640, 360)
    assert fit_size(320, 160, 640) == (320, 160)  # never enlarged
    assert fit_size(1920, 1080, (224, 224)) == (224, 224)
    with pytest.raises(InputError, match="longest side"):
        parse_size("4")


def test_tables_fit_80_columns_and_keep_short_ids_whole(monkeypatch, capsys):
    from engine.surfaces.cli import _signed, _summary, _table

    monkeypatch.setenv("COLUMNS", "80")
    cols = ["a", "b", "relation", "offset s", "a span", "b span", "matches/overlap"]
    _table("pairs", cols, [["x" * 38, "y" * 38, "duplicate", "+0.0", "0.0-8.0", "0.0-8.0", "16/16"]])
    wide = capsys.readouterr().out
    assert max(len(line) for line in wide.splitlines()) <= 80
    assert wide.count("x") == 38 and "16/16" in wide  # folded, nothing cropped
    _table("pairs", cols, [["c001", "c002", "duplicate", "+0.0", "0.0-8.0", "0.0-8.0", "16/16"]])
    assert "c001" in capsys.readouterr().out
    # the dedup pair table stacks a pair's ids: each stays whole within 80 columns
    ids = ("s02_israel_hwy_frames_lanes_000", "v27_kitti_depth_ours_gif_0001")
    _table("verified pairs", ["a / b", "span s", "relation", "offset s", "matched"],
           [["\n".join(ids), "0.0-36.0\n0.0-36.0", "partial x0.50 mirrored", _signed(-0.04), "73/73"]])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert all(i in out for i in ids) and "+0.0" in out and "-0.0" not in out
    # long words beside whole ids fold rather than crop the table's right edge
    _table("rare", ["rank", "clip", "pct", "basis", "triggers", "alike", "copies"],
           [["1", "S01_marcelsheeny_zed_left", "100.0", "appearance", "glare, low_visibility", "0", "3"]])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "S01_marcelsheeny_zed_left" in out and "copies" in out and out.rstrip().endswith("┘")
    _summary("summary", {f"column_{i}": i for i in range(12)} | {"nested": {"rare": 1, "diverse": 2}})
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "column_11" in out and "nested.diverse" in out  # keys whole, one per row


def test_select_quota_flags_are_parsed_by_the_cli(tmp_path):
    from engine.surfaces.cli import _parse_quotas

    assert _parse_quotas(["hard_brake=50", " low_light=0"]) == {"hard_brake": 50, "low_light": 0}
    home = str(tmp_path / "h")
    runner.invoke(app, ["regions", "add", "us-west", "--home", home])
    for bad, message in (("hard_brake", "use NAME=COUNT"), ("=3", "needs a trigger name"),
                         ("hard_brake=-2", "a count >= 0")):
        res = runner.invoke(app, ["select", "--region", "us-west", "--home", home, "--budget", "5",
                                  "--quota", bad, "--out", str(tmp_path / "m.jsonl")])
        assert res.exit_code == 2 and f"--quota {bad!r}" in res.output and message in res.output
