"""Similarity query benchmarks: single-query latency and recall@10 of the region's embedding index
against exact search. With ``--benchmark-disable`` (the default run) sizes shrink so this passes
quickly as a test; ``--benchmark-enable`` runs 100k and 1M clips and asserts the issue's targets
at 1M (p50 <= 1 ms, p99 <= 5 ms, recall@10 >= 0.95). The full table, cold CLI query and rarity
time come from ``python -m benchmarks.query_scale``."""

from __future__ import annotations

import numpy as np
import pytest

import engine.index.embeddings as emb_mod
from benchmarks.query_scale import clustered_embeddings, exact_topk, recall_at, single_query_latency


@pytest.fixture
def full_size(request) -> bool:
    return not request.config.getoption("benchmark_disable")


@pytest.mark.parametrize("n", [100_000, 1_000_000], ids=["100k", "1M"])
def test_bench_query_latency_recall(benchmark, full_size, monkeypatch, n):
    import faiss

    if not full_size:
        n = n // 200  # 500 / 5,000 clips: exact and (with a small EXACT_MAX) IVF, in a second
        monkeypatch.setattr(emb_mod, "EXACT_MAX", 1_000)
    vectors, queries = clustered_embeddings(n, seed=0, n_queries=200 if not full_size else 1000,
                                            per_cluster=500 if full_size else 50)
    truth = exact_topk(vectors, queries, 10)
    index = emb_mod.EmbeddingIndex.build(vectors, np.arange(n, dtype=np.int64), {})
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        lat, found = single_query_latency(index, queries, 10)
        benchmark.pedantic(lambda: index.search(queries[:1], 10), rounds=200 if full_size else 5, iterations=1)
    finally:
        faiss.omp_set_num_threads(threads)
    recall = recall_at(found, truth)
    p50, p99 = np.percentile(lat, 50) * 1e3, np.percentile(lat, 99) * 1e3
    benchmark.extra_info.update(kind=index.meta["kind"], recall_at_10=recall, p50_ms=p50, p99_ms=p99)
    assert recall >= (0.95 if index.meta["kind"] == emb_mod.IVF_KIND else 0.9999)
    if full_size and n == 1_000_000:
        assert p50 <= 1.0 and p99 <= 5.0, (p50, p99)
