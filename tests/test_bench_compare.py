"""The regression check of the benchmark suite: a slowed kernel fails the comparison."""

from __future__ import annotations

import json

import pytest

from benchmarks import suite
from benchmarks.__main__ import main as benchmarks_main
from benchmarks.compare import regressions


def _record(kernels: dict) -> dict:
    return {"mode": "quick", "headline": suite._kernels_headline(kernels)}


def _phash_run() -> dict:
    return _record(suite.kernel_timings("quick", names=["phash64"], repeats=9, peers=False))


@pytest.fixture
def counted_clock(monkeypatch):
    """Kernel timings on a clock that counts kernel calls: 1 ms per call of the raw phash64
    kernel plus 1 ms per timed call, so the comparison is exact on a machine of any load."""
    import kernels.registry as registry

    calls = [0]
    spec = registry.BY_NAME["phash64"]
    raw = spec.kernel

    def counting(*args, **kwargs):
        calls[0] += 1
        return raw(*args, **kwargs)

    counted = spec._replace(kernel=registry._slowable("phash64", counting))
    monkeypatch.setattr(registry, "REGISTRY", tuple(counted if s.name == "phash64" else s
                                                    for s in registry.REGISTRY))

    def timed(fn, args, repeats):
        times = []
        for _ in range(repeats):
            before = calls[0]
            fn(*args)
            times.append((calls[0] - before + 1) * 1e-3)
        return times

    monkeypatch.setattr(suite, "_timed", timed)


def test_slowed_kernel_fails_the_comparison(tmp_path, monkeypatch, counted_clock):
    monkeypatch.delenv("CLIPDEX_SLOW_KERNEL", raising=False)
    baseline = _phash_run()
    monkeypatch.setenv("CLIPDEX_SLOW_KERNEL", "phash64:4")
    slowed = _phash_run()
    regressed, compared = regressions(baseline, slowed, threshold=0.2)
    names = {r["metric"]: r for r in regressed}
    # the cost over the calibration loop and the share of the read limit both regress
    assert set(names) == {"kernels.phash64.cost_vs_calibration",
                          "kernels.phash64.share_of_read_limit"}
    # 2 ms per timed call before, 5 ms after: the cost rises by 150 %
    assert names["kernels.phash64.cost_vs_calibration"]["change"] == pytest.approx(1.5)
    base_path, run_path = tmp_path / "base.json", tmp_path / "run.json"
    base_path.write_text(json.dumps(baseline))
    run_path.write_text(json.dumps(slowed))
    assert benchmarks_main(["compare", str(base_path), str(run_path)]) == 1
    assert benchmarks_main(["compare", str(base_path), str(base_path)]) == 0


def test_slow_switch_names_one_kernel(monkeypatch):
    """The switch repeats the named kernel FACTOR times per call and leaves the others alone."""
    import kernels.registry as registry

    calls = []
    monkeypatch.setenv("CLIPDEX_SLOW_KERNEL", "phash64:3")
    counted = registry._slowable("phash64", lambda *a: calls.append(a))
    counted(1)
    assert len(calls) == 3
    other = registry._slowable("pdq256", lambda *a: calls.append(a))
    other(1)
    assert len(calls) == 4


@pytest.mark.parametrize("better, base, run, regressed", [
    ("higher", 10.0, 7.9, True),   # 21 % slower
    ("higher", 10.0, 8.1, False),  # 19 %: within the threshold
    ("higher", 10.0, 30.0, False),  # faster is never a regression
    ("lower", 1.0, 1.25, True),
    ("lower", 1.0, 0.5, False),
])
def test_threshold_and_direction(better, base, run, regressed):
    def rec(value):
        return {"headline": {"m": {"value": value, "better": better, "unit": "x"}}}

    found, compared = regressions(rec(base), rec(run), threshold=0.2)
    assert len(compared) == 1 and bool(found) is regressed


def test_runs_of_different_modes_are_not_compared(tmp_path):
    quick = {"mode": "quick", "headline": {"m": {"value": 1.0, "better": "higher", "unit": "x"}}}
    full = {**quick, "mode": "full"}
    (tmp_path / "q.json").write_text(json.dumps(quick))
    (tmp_path / "f.json").write_text(json.dumps(full))
    assert benchmarks_main(["compare", str(tmp_path / "q.json"), str(tmp_path / "f.json")]) == 2


def test_absolute_times_only_with_all():
    base = {"headline": {"t": {"value": 1.0, "better": "lower", "unit": "s"}}}
    run = {"headline": {"t": {"value": 5.0, "better": "lower", "unit": "s"}}}
    assert regressions(base, run)[1] == []
    assert len(regressions(base, run, include_absolute=True)[0]) == 1
