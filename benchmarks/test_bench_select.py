"""Selection at scale: time and coverage of the diverse picks vs random and vs exact k-centre.

Quick runs (``--benchmark-disable``, the default) use 20,000 clips and a budget of 200. Run for
real with ``pytest benchmarks/test_bench_select.py --benchmark-enable``: 100,000 clips (where the
exact greedy k-centre is compared) and 1,000,000 clips with a budget of 10,000; the figures land in
``extra_info`` (and ``python -m benchmarks.select_scale`` prints the same rows).
"""

import numpy as np
import pytest

from benchmarks.select_scale import clustered_embeddings, coverage, rare_included, run
from engine.curation.diversity import diverse_picks


@pytest.fixture
def full_size(benchmark):
    return not benchmark.disabled


def test_coverage_vs_exact_and_random(benchmark, full_size):
    n, budget = (100_000, 1_000) if full_size else (20_000, 200)
    rows = benchmark.pedantic(run, args=(n, budget), kwargs={"exact": True, "d": 128 if full_size else 64,
                                                          "n_clusters": 300 if full_size else 100},
                              rounds=1, iterations=1)
    by = {r["method"]: r for r in rows}
    benchmark.extra_info.update(rows=rows)
    auto, exact = by["diverse (auto)"], by["diverse (exact)"]
    assert auto["coverage"] <= 1.05 * exact["coverage"]  # within 5% of exact (or better)
    assert auto["vs_random"] >= 0.15  # >= 15% better than random at the same budget


def test_select_million(benchmark, full_size):
    n, budget = (1_000_000, 10_000) if full_size else (20_000, 200)
    vectors, labels = clustered_embeddings(n, 128, n_clusters=300 if full_size else 100, seed=1)
    allowed = np.ones(n, bool)
    seeds = np.zeros(0, np.int64)

    def pick():
        return diverse_picks(vectors, budget, seeds, allowed, np.random.default_rng(0))[0]

    picks = benchmark.pedantic(pick, rounds=1, iterations=1)
    assert len(np.unique(picks)) == budget
    ours = coverage(vectors, picks)
    rand = coverage(vectors, np.random.default_rng(0).choice(n, budget, replace=False))
    benchmark.extra_info.update(n=n, budget=budget, coverage=ours, random_coverage=rand,
                                vs_random=1 - ours / rand, rare_included=rare_included(labels, picks))
    assert ours <= 0.85 * rand
    if full_size:
        assert benchmark.stats.stats.max <= 60.0
