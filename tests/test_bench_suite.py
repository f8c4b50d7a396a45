"""The benchmark suite runner: one JSON with the machine, each task's time and peak memory,
and headline ratios; groups are chosen by name."""

from __future__ import annotations

import json

import pytest

from benchmarks import suite
from benchmarks.__main__ import main as benchmarks_main


def test_quick_cold_start_group_writes_machine_and_headline(tmp_path):
    out = tmp_path / "run.json"
    assert benchmarks_main(["run", "--quick", "--only", "cold-start", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    machine = record["machine"]
    for key in ("cpu_model", "cores", "memory_gib", "versions", "threads", "load_before",
                "load_after", "commit"):
        assert key in machine, key
    assert machine["versions"]["numpy"] and "numba_threads" in machine["threads"]
    task = record["tasks"]["cold_start"]
    assert task["rc"] == 0 and task["peak_rss_mb"] > 10 and task["wall_s"] > 0
    assert record["groups"] == ["cold-start"] and list(record["tasks"]) == ["cold_start"]
    help_s = record["headline"]["cold.help_s"]
    assert help_s["better"] == "lower" and 0 < help_s["value"] < 30


def test_every_group_has_a_task_and_unknown_groups_are_refused():
    assert {task.group for task in suite.TASKS} == set(suite.GROUPS)
    with pytest.raises(SystemExit, match="unknown group"):
        suite.run_suite("quick", ["kernel"])


def test_quick_commands_never_write_the_saved_results(tmp_path):
    """Module benchmarks get a JSON path of the suite's own, so a quick run leaves
    benchmarks/results/ (the figures' sources) alone."""
    for task in suite.TASKS:
        for mode in ("quick", "full"):
            argv = task.argv(mode, tmp_path / "result.json")
            if argv is None or task.stdout_json:
                continue
            assert str(tmp_path / "result.json") in argv, (task.name, mode)


def test_stdout_results_parse_as_one_document_or_lines():
    assert suite._parse_stdout_json('{\n  "a": 1\n}\n') == {"a": 1}
    assert suite._parse_stdout_json('noise\n{"n": 1}\n{"n": 2}\n') == [{"n": 1}, {"n": 2}]


def test_dedup_headline_reads_measured_sizes_and_skips_the_growth_fit():
    from benchmarks import suite

    rows = [{"clips": 1000, "full": {"wall_s": 2.0}, "quality": {"recall": 0.99}},
            {"growth": {"exponent": 1.2}}]
    got = suite._dedup_headline(rows)
    assert got["dedup.1000.us_per_clip"]["value"] == 2000.0
    assert got["dedup.1000.recall"]["value"] == 0.99


def test_dedup_growth_projects_each_stage_by_its_own_exponent():
    from benchmarks.dedup_scale import growth

    def row(n, stages, rss):
        return {"clips": n, "full": {"wall_s": sum(stages.values()) + n / 1e5, "peak_rss_mb": rss,
                                     "stages": stages}}

    small = row(1_000_000, {"candidates": 100.0, "reframed": 50.0, "load": 4.0}, 4000.0)
    big = row(4_000_000, {"candidates": 400.0, "reframed": 400.0, "load": 2.0}, 10000.0)
    fit = growth([big, small], target=16_000_000, machines=(1, 4))
    assert fit["stage_alpha"]["candidates"] == pytest.approx(1.0)
    assert fit["stage_alpha"]["reframed"] == pytest.approx(1.5)
    assert fit["stage_alpha"]["load"] == 1.0  # no stage gets cheaper a clip
    assert fit["target_stage_s"]["reframed"] == pytest.approx(3200.0)
    # the stages (1600 + 3200 + 8) and the time outside them, linearly (40 s x 4)
    assert fit["target_wall_s"] == pytest.approx(1600 + 3200 + 8 + 160)
    assert fit["machines"]["4"] == pytest.approx(fit["target_wall_s"] - 1600 + 400)
    assert fit["target_peak_rss_mb"] == pytest.approx(10000 + 2 * 12_000_000 / 1000)
    assert growth([small]) == {}
    # measured phase peaks: each projected linearly, the process peak is the largest
    small["full"]["phase_peak_rss_mb"] = {"candidates": 4000.0, "reframed+rest": 3000.0}
    big["full"]["phase_peak_rss_mb"] = {"candidates": 7000.0, "reframed+rest": 10000.0}
    fit = growth([big, small], target=16_000_000)
    assert fit["target_phase_peak_rss_mb"]["candidates"] == pytest.approx(7000 + 12_000)
    assert fit["target_peak_rss_mb"] == pytest.approx(10000 + 28_000)
    assert fit["index_build"] == {}  # no index step measured
    # the embedding index ingest builds: its own exponent, outside the dedup's time
    small["index"], big["index"] = {"wall_s": 10.0}, {"wall_s": 80.0}
    fit = growth([big, small], target=16_000_000)
    assert fit["index_build"]["alpha"] == pytest.approx(1.5)
    assert fit["index_build"]["target_s"] == pytest.approx(640.0)
    assert fit["target_wall_s"] == pytest.approx(1600 + 3200 + 8 + 160)
