"""The quality benchmark as a test.

With ``--benchmark-disable`` (the default run) it builds the tiny fleet (~60 clips, a few seconds
of rendering) through the same path as ``python -m benchmarks.quality`` and checks that every
figure is there and sane. With ``--benchmark-enable`` it runs the demo-size fleet once and puts
the figures in ``extra_info``; the full 1,200-clip figures come from ``python -m
benchmarks.quality`` (about 20-30 min on 2 cores), quoted in docs/quality.md.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import quality


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    base = tmp_path_factory.mktemp("quality")
    out = base / "results.json"
    result = quality.run("tiny", seed=3, out=str(out), home=str(base / "home"), quiet=True)
    return result, out


def test_quality_benchmark_reports_every_figure(tiny_result):
    result, out = tiny_result
    assert json.loads(out.read_text())["fleet"]["clips"] == result["fleet"]["clips"]
    o = result["overall"]
    d = o["dedup"]
    assert result["fleet"]["clips"] >= 60 and len(result["regions"]) == 2
    assert sum(r["ingested"] for k, r in result["ingest"].items() if k != "render_s") == result["fleet"]["clips"]
    assert d["true_pairs"] == sum(r["dedup"]["true_pairs"] for r in result["regions"].values())
    assert d["true_pairs"] > 10 and d["hard_negatives"] > 0
    # the engine finds most planted duplicates even on 96x54 clips, and merges no hard negative
    assert d["precision"] >= 0.9 and d["recall"] >= 0.8, d
    assert d["hard_negatives_merged"] == 0
    assert {"trim", "reencode", "exact"} <= set(d["per_transform"])
    assert 0.0 <= o["rarity"]["recall_at_k"] <= 1.0 and o["rarity"]["rare_clips"] > 0
    assert o["query"]["precision_at_k"] is not None and o["query"]["queries"] > 0
    assert o["selection"]["coverage"] < o["selection"]["random_coverage"]
    assert o["selection_diverse"]["coverage"] < o["selection_diverse"]["random_coverage"]
    # the scaled design (forced LSH candidates) verifies the same pairs on this fleet
    assert result["scaled"]["pairs_only_exact"] == 0 and result["scaled"]["pairs_only_scaled"] == 0
    assert all(r["dedup_scaled"]["f1"] == r["dedup"]["f1"] for r in result["regions"].values())
    rows = quality.table_rows(result)
    assert any(r[0] == "dedup F1" for r in rows)
    assert any("scaled design" in r[0] for r in rows)


def test_quality_benchmark_demo_fleet(benchmark, tmp_path):
    if benchmark.disabled:
        pytest.skip("runs with --benchmark-enable (the tiny fleet covers the code path)")
    result = benchmark.pedantic(quality.run, args=("demo",), kwargs={"seed": 7, "out": str(tmp_path / "q.json"),
                                                                     "quiet": True}, rounds=1, iterations=1)
    o = result["overall"]
    benchmark.extra_info.update({"dedup_f1": o["dedup"]["f1"], "rare_recall_at_k": o["rarity"]["recall_at_k"],
                                 "query_p10": o["query"]["precision_at_k"],
                                 "selection_improvement": o["selection"]["improvement"]})
    assert o["dedup"]["hard_negatives_merged"] == 0


def test_rarity_diagnostics_agree_with_the_quality_figures(tiny_result):
    """The diagnostics' recall@k at the default k is the quality benchmark's, and every scenario
    of the region shows up with its drives and percentiles."""
    from benchmarks import rarity_diagnostics
    from fixtures.fleet import plan_fleet

    result, out = tiny_result
    gt = plan_fleet(quality.fleet_spec("tiny", None, 3)).ground_truth
    diag = rarity_diagnostics.diagnose(out.parent / "home", gt)
    assert set(diag) == set(result["regions"])
    for region, d in diag.items():
        assert d["recall_at_k"]["10"] == result["regions"][region]["rarity"]["recall_at_k"]
        assert set(d["recall_at_k"]) == {str(k) for k in rarity_diagnostics.K_VALUES}
        assert 0.0 <= d["recall_density_only"] <= 1.0 and 0.0 <= d["recall_scenario_oracle"] <= 1.0
        scen = {c["scenario"] for c in gt["clips"] if c["region"] == region}
        assert set(d["scenarios"]) == scen
        for s in d["scenarios"].values():
            assert 0.0 <= s["pct_min"] <= s["pct_median"] <= s["pct_max"] <= 100.0 and s["clips"] >= 1
            assert all(0.0 < v <= 1.0 for v in s["trigger_share"].values())
    assert rarity_diagnostics.main(["--home", str(out.parent / "missing")]) == 2


def test_scenario_oracle_recall_counts_other_drives():
    """The oracle ranks by how many other drives filmed a clip's scenario; copies count with
    their source's drive, so five uploads of one rare clip stay one drive."""
    from benchmarks.rarity_diagnostics import scenario_oracle_recall

    def clip(cid, scen, rare, drive, src=None):
        return cid, {"clip_id": cid, "scenario": scen, "rare": rare, "drive_id": drive, "source_clip": src}

    info = dict([clip(f"c{i}", "cruise", False, f"d{i}") for i in range(6)]
                + [clip("r0", "fog", True, "f0")]
                + [clip(f"u{i}", "fog", True, f"upload{i}", "r0") for i in range(4)])
    assert scenario_oracle_recall(list(info), info) == 1.0
    # a "rare" scenario filmed by more drives than a common one: no ranking by frequency finds it
    info.update(dict([clip(f"s{i}", "snow", True, f"s{i}") for i in range(8)]))
    assert scenario_oracle_recall(list(info), info) < 1.0
