"""The curator's report at scale (see report_scale.py).

Disabled (the default run): a 3,000-clip synthetic region, its report written and measured in a
few seconds. Enabled (``pytest benchmarks/test_bench_report.py --benchmark-enable``): the issue's
target at 100,000 clips, under 60 s and under 20 MB.
"""

from __future__ import annotations

import pytest

from benchmarks.report_scale import TARGET_BYTES, TARGET_S, run_synthetic


@pytest.fixture
def full_size(benchmark):
    return not benchmark.disabled


def test_report_of_a_synthetic_region(full_size):
    n = 100_000 if full_size else 3_000
    got = run_synthetic(n, seed=1, say=lambda *_: None)
    rep = got["report"]
    assert rep["pages"] >= 6 and rep["images"] >= 50
    assert rep["bytes"] < TARGET_BYTES, rep
    if full_size:
        assert rep["seconds"] < TARGET_S, rep
