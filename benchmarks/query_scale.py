"""Similarity query and rarity at fleet scale: synthetic clustered 128-d clip embeddings.

``python -m benchmarks.query_scale --sizes 100000,1000000 [--json out.json] [--cli] [--rarity]``

For each size it builds the region's embedding index the way a region does
(:meth:`engine.index.EmbeddingIndex.build`: exact up to ``EXACT_MAX``, IVF fast-scan PQ with an
exact re-rank above) and prints:

* index kind, build time, index bytes and the process RSS growth during the build;
* single-query latency p50/p99 (k=10, **one thread**, each query alone, after one warm-up pass)
  (wall; p99 also in thread CPU time, which preemption by other processes does not inflate)
  and recall@10 against exact search (``IndexFlatIP``) on 1,000 held-out queries, for the
  default ``nprobe`` and a sweep of others (the re-rank factor stays the default);
* with ``--cli``: a real region store of that many clips (one keyframe each, written with
  ``RegionStore.append_clips``), its indexes saved, then a **cold** ``clipdex query --clip ID -k 10
  --json`` in a fresh process (wall time of the subprocess, median of 3; the files are in the page
  cache, the process is new);
* with ``--rarity``: :func:`engine.scenes.rarity.compute_rarity` on that store (all clips, k=10).

The embeddings: ``n // 500`` cluster centres (Gaussian), each clip = centre + Gaussian noise with
a per-cluster spread drawn in [1.0, 2.0] x the centre scale, L2-normalised. Clusters overlap
heavily (a spread of [0.5, 1.1] gave recall 1.0 at any nprobe: too easy; [1.5, 3.0] is close to
structureless noise, where IVF needs nprobe >> 64); queries are fresh draws from the same mixture,
not copies of indexed vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 128
N_QUERIES = 1000


def clustered_embeddings(n: int, seed: int = 0, *, dim: int = DIM, n_queries: int = N_QUERIES,
                         per_cluster: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(database float32[n, dim], queries float32[n_queries, dim]), L2-normalised, seeded."""
    rng = np.random.default_rng(seed)
    n_clusters = max(8, n // per_cluster)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    spread = rng.uniform(1.0, 2.0, n_clusters).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, dim), np.float32)
        for lo in range(0, m, 65536):
            hi = min(m, lo + 65536)
            lab = rng.integers(0, n_clusters, hi - lo)
            out[lo:hi] = centres[lab] + spread[lab, None] * rng.standard_normal((hi - lo, dim), dtype=np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    return draw(n), draw(n_queries)


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    import faiss

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    return flat.search(queries, k)[1]


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(found, truth, strict=True)]))


def single_query_latency(index, queries: np.ndarray, k: int = 10, *,
                         cpu: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-query wall seconds (one query per call, after a warm-up pass) and the ids found; with
    ``cpu`` (float[len(queries)]), also each query's thread CPU seconds: on a shared box a query
    preempted by another process has a long wall time but not a long CPU time."""
    found = np.empty((len(queries), k), np.int64)
    for i in range(len(queries)):  # warm-up: page in the lists, settle caches
        index.search(queries[i:i + 1], k)
    lat = np.empty(len(queries))
    for i in range(len(queries)):
        c = time.thread_time()
        t = time.perf_counter()
        _, ids = index.search(queries[i:i + 1], k)
        lat[i] = time.perf_counter() - t
        if cpu is not None:
            cpu[i] = time.thread_time() - c
        found[i] = ids[0]
    return lat, found


def measure_index(n: int, seed: int = 0, nprobes: tuple[int, ...] = (64, 128, 160, 192, 256),
                  k: int = 10) -> dict:
    import faiss

    from engine.index.embeddings import EmbeddingIndex

    vectors, queries = clustered_embeddings(n, seed)
    ids = np.arange(n, dtype=np.int64)
    t = time.perf_counter()
    truth = exact_topk(vectors, queries, k)
    exact_s = time.perf_counter() - t
    rss0 = _rss_bytes()
    t = time.perf_counter()
    emb = EmbeddingIndex.build(vectors, ids, {})
    build_s = time.perf_counter() - t
    rss_growth = _rss_bytes() - rss0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "e.faiss")
        faiss.write_index(emb.index, path)
        index_bytes = os.path.getsize(path)
        rss1 = _rss_bytes()
        t = time.perf_counter()
        mm = faiss.read_index(path, EmbeddingIndex.read_flags(emb.meta))  # as a current index opens
        mmap_open_s = time.perf_counter() - t
        open_rss = _rss_bytes() - rss1
        del mm
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        default = emb.meta.get("nprobe")
        rows = []
        for nprobe in (nprobes if emb.meta.get("nlist") else (None,)):
            if nprobe is not None:
                emb.set_nprobe(nprobe)
            cpu = np.empty(len(queries))
            lat, found = single_query_latency(emb, queries, k, cpu=cpu)
            rows.append({"nprobe": nprobe, "p50_ms": float(np.percentile(lat, 50) * 1e3),
                         "p99_ms": float(np.percentile(lat, 99) * 1e3),
                         "p99_cpu_ms": float(np.percentile(cpu, 99) * 1e3),
                         "slow_5ms": int((lat > 5e-3).sum()), "recall_at_10": recall_at(found, truth),
                         "default": nprobe == default})
        emb.set_nprobe(default or 1)
    finally:
        faiss.omp_set_num_threads(threads)
    best = next(r for r in rows if r["default"] or r["nprobe"] is None)
    return {"n": n, "kind": emb.meta["kind"], "nlist": emb.meta.get("nlist"), "nprobe": default,
            "k_factor": emb.meta.get("k_factor"),
            "build_s": build_s, "index_bytes": index_bytes, "rss_growth_bytes": rss_growth,
            "mmap_open_s": mmap_open_s, "open_rss_bytes": open_rss, "exact_batch_s_per_query": exact_s / len(queries),
            "p50_ms": best["p50_ms"], "p99_ms": best["p99_ms"], "p99_cpu_ms": best["p99_cpu_ms"],
            "slow_5ms": best["slow_5ms"], "recall_at_10": best["recall_at_10"], "load_average": os.getloadavg()[0],
            "sweep": rows}


def write_region(home: Path, n: int, seed: int = 0, batch: int = 20000) -> tuple[object, np.ndarray]:
    """A region store of ``n`` clips (one keyframe each) with clustered embeddings."""
    from engine.sovereignty.regions import Home
    from engine.store.region import THUMB_SHAPE, NewClip, RegionStore

    h = Home.open(home, create=True)
    region = h.add_region("bench", jurisdiction="XX")
    vectors, _ = clustered_embeddings(n, seed, n_queries=1)
    rng = np.random.default_rng(seed + 1)
    thumb = np.zeros(THUMB_SHAPE, np.uint8)
    # telemetry statistics for the dynamics view of rarity (column 0: "has telemetry")
    stats = rng.standard_normal((n, 16)).astype(np.float32)
    stats[:, 0] = 1.0
    store = RegionStore.open(region, create=True)
    with store.writer("query_scale"):
        for lo in range(0, n, batch):
            hi = min(n, lo + batch)
            hashes = rng.integers(0, 256, (hi - lo, 1, 32), dtype=np.uint8)
            clips = [NewClip(clip_id=f"c{i:07d}", digest=f"d{i}", source=f"/bench/{i}", duration_s=0.5,
                             keyframe_hashes=hashes[i - lo], keyframe_phash=np.zeros((1, 8), np.uint8),
                             keyframe_quality=np.full(1, 80, np.uint8), keyframe_times=np.zeros(1, np.float32),
                             embedding=vectors[i], thumbnail=thumb, drive_id=f"drive{i // 8}",
                             vehicle_id=f"veh{i % 97}", start_time=1.7e9 + i, telemetry_stats=stats[i])
                     for i in range(lo, hi)]
            store.append_clips(clips)
    return store, vectors


def measure_store(n: int, seed: int = 0, *, cli: bool = True, rarity: bool = True) -> dict:
    from engine.index import ensure_indexes

    out: dict = {"n": n}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        t = time.perf_counter()
        store, _ = write_region(home, n, seed)
        out["write_store_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ensure_indexes(store)
        out["index_build_s"] = time.perf_counter() - t
        if cli:
            exe = [sys.executable, "-m", "engine.surfaces.cli"] if not _has_console_script() else ["clipdex"]
            cmd = [*exe, "query", "--home", str(home), "--region", "bench", "--clip", f"c{n // 2:07d}",
                   "-k", "10", "--json"]
            walls, cpus = [], []
            for _ in range(3):
                t = time.perf_counter()
                c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                walls.append(time.perf_counter() - t)
                c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append(c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime)
                if res.returncode != 0:
                    raise RuntimeError(f"cold query failed: {res.stderr[-2000:]}")
                hits = json.loads(res.stdout)
                assert len(hits) == 10, hits
            out["cold_cli_query_s"] = statistics.median(walls)
            out["cold_cli_query_all_s"] = walls
            out["cold_cli_query_cpu_s"] = statistics.median(cpus)  # what it costs without contention
            out["load_average"] = os.getloadavg()[0]
            t = time.perf_counter()
            subprocess.run([*exe, "--help"], capture_output=True, check=True)
            out["cli_help_s"] = time.perf_counter() - t
        if rarity:
            from engine.scenes.rarity import compute_rarity

            t = time.perf_counter()
            res = compute_rarity(store, k=10)
            out["rarity_s"] = time.perf_counter() - t
            out["rarity_clips"] = len(res.rows)
            # the batch search is lighter than a query's (EmbeddingIndex.lighter_search): how
            # much the density scores move against the query settings
            t = time.perf_counter()
            full = compute_rarity(store, k=10, light_search=False)
            out["rarity_full_search_s"] = time.perf_counter() - t
            out.update(rarity_agreement(res, full))
        store.close()
    return out


def rarity_agreement(light, full) -> dict:
    """How far the density scores of ``light`` are from ``full`` (two RarityResults of one store):
    rank correlation, share of the top 5 % both put there, mean relative score difference."""
    a = dict(zip(full.rows.tolist(), full.scores.tolist(), strict=True))
    b = dict(zip(light.rows.tolist(), light.scores.tolist(), strict=True))
    rows = sorted(a)
    x, y = np.array([a[r] for r in rows]), np.array([b[r] for r in rows])
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    top = max(1, len(rows) // 20)
    both = len(set(np.argsort(-x)[:top].tolist()) & set(np.argsort(-y)[:top].tolist()))
    return {"rarity_rank_correlation": float(np.corrcoef(rx, ry)[0, 1]),
            "rarity_top5_overlap": both / top,
            "rarity_mean_rel_diff": float(np.mean(np.abs(y - x) / np.maximum(x, 1e-12)))}


def _has_console_script() -> bool:
    import shutil

    return shutil.which("clipdex") is not None


def _fmt_table(index_rows: list[dict], store_rows: list[dict]) -> str:
    lines = ["| clips | index | build s | index MB | build RSS +MB | p50 ms | p99 ms | recall@10 | open ms | "
             "open RSS +MB |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in index_rows:
        kind = r["kind"] + (f" nlist={r['nlist']} nprobe={r['nprobe']}" if r["nlist"] else "") + \
            (f" x{r['k_factor']} re-rank" if r.get("k_factor") else "")
        lines.append(f"| {r['n']:,} | {kind} | {r['build_s']:.1f} | {r['index_bytes'] / 1e6:.0f} | "
                     f"{r['rss_growth_bytes'] / 1e6:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                     f"{r['recall_at_10']:.4f} | {r['mmap_open_s'] * 1e3:.1f} | {r['open_rss_bytes'] / 1e6:.0f} |")
    for r in index_rows:
        if len(r["sweep"]) > 1:
            lines.append(f"\nnprobe sweep at {r['n']:,} (one thread, k=10):")
            lines.append("| nprobe | p50 ms | p99 ms | p99 CPU ms | queries > 5 ms | recall@10 |")
            lines.append("|---:|---:|---:|---:|---:|---:|")
            for s in r["sweep"]:
                lines.append(f"| {s['nprobe']}{' (default)' if s['default'] else ''} | {s['p50_ms']:.3f} | "
                             f"{s['p99_ms']:.3f} | {s['p99_cpu_ms']:.3f} | {s['slow_5ms']} | {s['recall_at_10']:.4f} |")
    if store_rows:
        lines.append("\n| clips | write store s | index build s | cold `clipdex query` wall s | its CPU s | "
                     "`clipdex --help` s | rarity s | rarity s, query-grade search | rank corr. | top-5 % kept | "
                     "load avg |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in store_rows:
            lines.append(f"| {r['n']:,} | {r['write_store_s']:.1f} | {r['index_build_s']:.1f} | "
                         f"{r.get('cold_cli_query_s', float('nan')):.2f} | {r.get('cold_cli_query_cpu_s', float('nan')):.2f} | "
                         f"{r.get('cli_help_s', float('nan')):.2f} | {r.get('rarity_s', float('nan')):.1f} | "
                         f"{r.get('rarity_full_search_s', float('nan')):.1f} | "
                         f"{r.get('rarity_rank_correlation', float('nan')):.4f} | "
                         f"{r.get('rarity_top5_overlap', float('nan')):.3f} | "
                         f"{r.get('load_average', float('nan')):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cli", action="store_true", help="also time a cold `clipdex query` on a real store")
    ap.add_argument("--rarity", action="store_true", help="also time compute_rarity on a real store")
    ap.add_argument("--store-sizes", default=None, help="sizes for --cli/--rarity (default: --sizes)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    index_rows = []
    for n in sizes:
        r = measure_index(n, args.seed)
        index_rows.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "sweep"}), file=sys.stderr, flush=True)
    store_rows = []
    if args.cli or args.rarity:
        for n in [int(s) for s in (args.store_sizes or args.sizes).split(",") if s]:
            r = measure_store(n, args.seed, cli=args.cli, rarity=args.rarity)
            store_rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    print(_fmt_table(index_rows, store_rows))
    result = {"index": index_rows, "store": store_rows,
              "machine": f"{os.cpu_count()} CPUs, {os.uname().machine}"}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
