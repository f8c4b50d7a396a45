"""Selection at scale: synthetic clustered embeddings, timing and coverage of the diverse picks.

``python -m benchmarks.select_scale --n 1000000 --budget 10000`` prints one JSON line per method:
seconds, coverage (mean distance of every clip to its nearest selected clip; lower is better),
rare-cluster inclusion, against random picks and (where ``--exact`` and feasible) exact greedy
k-centre on the same data. "diverse (auto)" is what ``clipdex select`` runs
(``engine.curation.diversity.coverage_picks``); ``--kcentre`` adds k-centre on 4 sampled candidates per pick. ``benchmarks/test_bench_select.py`` runs the same code under pytest.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def clustered_embeddings(n: int, d: int = 128, *, n_clusters: int = 300, n_rare: int = 20,
                         rare_size: int = 25, intrinsic_dim: int = 4,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised float32[n, d] vectors and int32 labels (label < 0: a rare cluster).

    Common clusters have Zipf-like sizes, each a low-dimensional (``intrinsic_dim``) spread around a random
    centre plus small isotropic noise, like embeddings on a manifold; the big clusters are tight
    (the many near-identical clips of common driving), the small ones wider. Rare clusters
    are ``n_rare`` tight groups of ``rare_size`` clips at far-out centres.
    """
    rng = np.random.default_rng(seed)
    n_common = n - n_rare * rare_size
    weights = 1.0 / np.arange(1, n_clusters + 1) ** 0.9
    sizes = rng.multinomial(n_common, weights / weights.sum())
    out = np.empty((n, d), np.float32)
    labels = np.empty(n, np.int32)
    lo = 0
    for c, size in enumerate(sizes.tolist() + [rare_size] * n_rare):
        rare = c >= n_clusters
        centre = rng.standard_normal(d).astype(np.float32)
        centre *= (1.6 if rare else 1.0) / np.linalg.norm(centre)
        basis = rng.standard_normal((intrinsic_dim, d)).astype(np.float32) / np.sqrt(d)
        scale = 0.02 if rare else 0.03 + 0.22 * (c / n_clusters) ** 0.5 * rng.uniform(0.7, 1.0)
        z = rng.standard_normal((size, intrinsic_dim)).astype(np.float32) * scale
        pts = centre + z @ basis + rng.standard_normal((size, d)).astype(np.float32) * (0.03 / np.sqrt(d))
        out[lo:lo + size] = pts
        labels[lo:lo + size] = -(c - n_clusters + 1) if rare else c
        lo += size
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    perm = rng.permutation(n)
    return np.ascontiguousarray(out[perm]), labels[perm]


def coverage(vectors: np.ndarray, chosen: np.ndarray) -> float:
    from engine.surfaces.evaluate import coverage as _coverage

    return _coverage(vectors, chosen)


def rare_included(labels: np.ndarray, chosen: np.ndarray) -> float:
    """Fraction of the rare clusters with at least one selected clip."""
    rare = np.unique(labels[labels < 0])
    got = np.unique(labels[chosen][labels[chosen] < 0])
    return len(got) / len(rare) if len(rare) else 1.0


def run(n: int, budget: int, *, exact: bool, seed: int = 0, d: int = 128,
        sample: int | None = None, n_clusters: int = 300, sampled_kcentre: bool = False) -> list[dict]:
    from engine.curation.diversity import diverse_picks

    vectors, labels = clustered_embeddings(n, d, n_clusters=n_clusters, seed=seed)
    allowed = np.ones(n, bool)
    rows = []

    def record(method, chosen, seconds):
        chosen = np.asarray(chosen, np.int64)
        rows.append({"method": method, "n": n, "budget": budget, "picked": len(chosen),
                     "seconds": round(seconds, 3), "coverage": round(coverage(vectors, chosen), 5),
                     "rare_included": round(rare_included(labels, chosen), 4)})

    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    record("random", rng.choice(n, budget, replace=False), time.perf_counter() - t)
    t = time.perf_counter()
    picks, _ = diverse_picks(vectors, budget, np.zeros(0, np.int64), allowed,
                             np.random.default_rng(seed), sample=sample)
    record("diverse (auto)", picks, time.perf_counter() - t)
    if sampled_kcentre:
        t = time.perf_counter()
        picks, _ = diverse_picks(vectors, budget, np.zeros(0, np.int64), allowed,
                                 np.random.default_rng(seed), method="kcentre")
        record("kcentre (sampled)", picks, time.perf_counter() - t)
    if exact:
        t = time.perf_counter()
        picks, _ = diverse_picks(vectors, budget, np.zeros(0, np.int64), allowed,
                                 np.random.default_rng(seed), sample=n)
        record("diverse (exact)", picks, time.perf_counter() - t)
    base = {r["method"]: r["coverage"] for r in rows}
    for r in rows:
        r["vs_random"] = round(1.0 - r["coverage"] / base["random"], 4)
        if "diverse (exact)" in base:
            r["vs_exact"] = round(r["coverage"] / base["diverse (exact)"] - 1.0, 4)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--budget", type=int, default=1_000)
    ap.add_argument("--exact", action="store_true", help="also run exact greedy k-centre")
    ap.add_argument("--sample", type=int, default=None,
                    help="run k-centre on this many sampled candidates instead of the coverage method")
    ap.add_argument("--kcentre", action="store_true", help="also run sampled k-centre (the old default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for row in run(args.n, args.budget, exact=args.exact, seed=args.seed, sample=args.sample,
                   sampled_kcentre=args.kcentre):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
