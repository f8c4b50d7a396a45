from __future__ import annotations

import json

from typer.testing import CliRunner

from engine.cli import app

runner = CliRunner()


def test_help_lists_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("demo", "ingest", "dedup", "rare", "query", "select", "regions", "stats"):
        assert cmd in res.output


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
