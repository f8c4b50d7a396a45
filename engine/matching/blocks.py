"""Hash candidates at scale: the banded LSH with memory bounded by a budget, not the region.

Per band, :func:`kernels.band_collisions` sorts the query keyframes' band hashes once and finds
the other keyframes (those of clips that are no query: an incremental dedup's old clips) by one
pass over them; the work is linear in the region's keyframes per band, whatever the mix. Memory
is bounded by splitting each band's hash space into ``partitions`` parts handled one after the
other (:func:`plan_blocks`: about ``DedupParams.block_keyframes`` query keyframes a part), never
by cutting the queries into blocks that would each pass over the region again.

The work is cut into band ranges instead: in this process the ranges run in threads
(:func:`local_block_keys`), on a Dask cluster as tasks (:func:`dask_block_keys`). A keyframe pair
is reported by the first band it collides in, so the band ranges' keyframe pairs are disjoint: a
range returns its clip-pair keys with how many keyframe pairs each has, the counts are summed
over the ranges (:func:`merge_counts`) and the pairs with ``min_candidate_matches`` kept. The
result is the same at any band split and any partition count.

Memory per process: the region's keyframe hashes (32 bytes a keyframe), a clip row per keyframe
(8), and per band thread 8 bytes a keyframe (the band hashes) plus 8 bytes a query keyframe of a
partition (16 more for the slot table when other keyframes are probed), plus the range's
keyframe pairs. A Dask worker reads the hashes from the region store itself, once, and returns
only clip-pair keys and counts; the job's own process stays the region's single writer.
docs/design.md (dedup at scale) has the rationale and the measured growth.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

import kernels
from engine.store.region import span_rows


@dataclass(frozen=True)
class Layout:
    """Where each clip's keyframes are and which clips are queries: plain arrays that travel
    to Dask workers instead of the hashes."""

    rows: np.ndarray  # int64[C] clip rows, ascending
    kf_start: np.ndarray  # int64[C]
    kf_count: np.ndarray  # int64[C]
    query: np.ndarray  # bool[C]
    n_keyframes: int  # keyframe rows covered (the snapshot's kf_end)
    partitions: int  # parts of each band's hash space, handled one after the other

    @property
    def n_blocks(self) -> int:
        return self.partitions

    def keyframe_clips(self) -> np.ndarray:
        """Clip row of every keyframe row, ``-1`` for rows of no clip."""
        kf_clip = np.full(self.n_keyframes, -1, np.int64)
        kf_clip[span_rows(self.kf_start, self.kf_count)] = np.repeat(self.rows, self.kf_count)
        return kf_clip

    def query_flags(self) -> np.ndarray:
        """``bool`` per keyframe row: of a query clip."""
        is_query = np.zeros(self.n_keyframes, bool)
        q = np.flatnonzero(self.query)
        is_query[span_rows(self.kf_start[q], self.kf_count[q])] = True
        return is_query


#: more parts would not lower the peak: the band hashes of every keyframe (8 bytes each) stay
MAX_PARTITIONS = 64


def plan_blocks(rows: np.ndarray, kf_start: np.ndarray, kf_count: np.ndarray, query_clips: np.ndarray,
                valid: np.ndarray, block_keyframes: int) -> Layout:
    """The query clips and the partitions that keep about ``block_keyframes`` valid query
    keyframes in each part of a band (at most :data:`MAX_PARTITIONS`)."""
    if block_keyframes < 1:
        raise ValueError(f"block_keyframes must be >= 1; got {block_keyframes}")
    query = np.isin(rows, np.asarray(query_clips, np.int64))
    q = np.flatnonzero(query)
    n_query_kf = int(valid[span_rows(np.asarray(kf_start)[q], np.asarray(kf_count)[q])].sum()) if len(q) else 0
    partitions = min(MAX_PARTITIONS, max(1, -(-n_query_kf // int(block_keyframes))))
    return Layout(np.asarray(rows, np.int64), np.asarray(kf_start, np.int64),
                  np.asarray(kf_count, np.int64), query, int(len(valid)), int(partitions))


def band_ranges(n_bands: int, n_parts: int) -> list[range]:
    """``range(n_bands)`` cut into at most ``n_parts`` contiguous, near-equal ranges."""
    n_parts = max(1, min(int(n_parts), int(n_bands)))
    edges = np.linspace(0, n_bands, n_parts + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def range_keys(hashes: np.ndarray, valid: np.ndarray, is_query: np.ndarray, kf_clip: np.ndarray,
               layout: Layout, masks: np.ndarray, radius: int, bands: range) -> tuple[np.ndarray, np.ndarray, int]:
    """Clip-pair keys ``a * n_rows + b`` (a < b, sorted, unique) of band range ``bands``, the
    keyframe pairs behind each, and their total."""
    i, j, _ = kernels.band_collisions(hashes, valid, is_query, kf_clip, masks, radius, bands=bands,
                                      partitions=layout.partitions)
    n_rows = int(layout.rows.max()) + 1 if len(layout.rows) else 1
    ca, cb = kf_clip[i], kf_clip[j]
    n_pairs = len(i)
    del i, j
    keys, counts = np.unique(np.minimum(ca, cb) * n_rows + np.maximum(ca, cb), return_counts=True)
    return keys, counts.astype(np.int64), n_pairs


def merge_counts(parts: list[tuple[np.ndarray, np.ndarray]], min_matches: int) -> np.ndarray:
    """The keys, sorted, whose counts summed over ``parts`` reach ``min_matches``."""
    if not parts:
        return np.zeros(0, np.int64)
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    uniq, inv = np.unique(keys, return_inverse=True)
    total = np.bincount(inv, weights=counts, minlength=len(uniq))
    return uniq[total >= min_matches]


def keys_to_pairs(keys: np.ndarray, n_rows: int) -> np.ndarray:
    """Clip-pair keys to ``int64[p, 2]`` rows (a < b), sorted."""
    keys = np.sort(np.asarray(keys, np.int64))
    return np.stack([keys // n_rows, keys % n_rows], axis=1)


def local_block_keys(hashes: np.ndarray, valid: np.ndarray, layout: Layout, masks: np.ndarray,
                     radius: int, min_matches: int, threads: int = 0) -> tuple[np.ndarray, int]:
    """Every band in this process, band ranges in ``threads`` threads (the kernels hold no
    GIL): the candidate keys and the keyframe pairs behind them."""
    threads = threads or os.cpu_count() or 1
    kf_clip = layout.keyframe_clips()
    is_query = layout.query_flags()
    valid = valid & (kf_clip >= 0)

    def work(r: range):
        return range_keys(hashes, valid, is_query, kf_clip, layout, masks, radius, r)

    ranges = band_ranges(masks.shape[0], threads)
    if len(ranges) > 1:
        with ThreadPoolExecutor(len(ranges)) as pool:
            parts = list(pool.map(work, ranges))
    else:
        parts = [work(r) for r in ranges]
    n_pairs = sum(p[2] for p in parts)
    return merge_counts([(k, c) for k, c, _ in parts], min_matches), n_pairs


# ------------------------------------------------------------------------------ Dask
#: per worker process: the region's hashes, quality flags and keyframe clips of the last snapshot
#: read (a worker serves one dedup at a time, task after task)
_WORKER_STATE: dict = {}


def _worker_arrays(region, snapshot: tuple[int, int], layout: Layout):
    """The region's hashes and quality flags at ``snapshot`` (version, kf_end), read from its
    store by this worker process once, the clip row of every keyframe and the query flags."""
    from engine.index import QUALITY_FLOOR
    from engine.store.region import RegionStore

    key = (str(region.path), snapshot, len(layout.rows), int(layout.rows.sum()), int(layout.kf_count.sum()),
           int(layout.query.sum()))
    if _WORKER_STATE.get("key") != key:
        _WORKER_STATE.clear()
        kf_end = snapshot[1]
        with RegionStore.open(region) as store:
            hashes = store.read_rows("keyframe_hashes", 0, kf_end)
            valid = store.read_rows("keyframe_quality", 0, kf_end) >= QUALITY_FLOOR
        kf_clip = layout.keyframe_clips()
        _WORKER_STATE.update(key=key, arrays=(hashes, valid & (kf_clip >= 0), layout.query_flags(), kf_clip))
    return _WORKER_STATE["arrays"]


def _dask_task(region, snapshot: tuple[int, int], layout: Layout, bands: range, masks: np.ndarray,
               radius: int) -> tuple[np.ndarray, np.ndarray, int, float]:
    """A Dask task: band range ``bands``'s clip-pair keys and counts, keyframe pairs and the
    worker's peak RSS (MB)."""
    import numba

    numba.set_num_threads(1)
    hashes, valid, is_query, kf_clip = _worker_arrays(region, snapshot, layout)
    keys, counts, n = range_keys(hashes, valid, is_query, kf_clip, layout, masks, radius, bands)
    return keys, counts, n, peak_rss_mb()


def dask_block_keys(executor, region, snapshot: tuple[int, int], layout: Layout, masks: np.ndarray,
                    radius: int, min_matches: int, stats: dict | None = None) -> tuple[np.ndarray, int]:
    """Band ranges as Dask tasks on ``executor`` (``engine.ingest.executors.DaskExecutor``), a few
    per worker thread: only the layout (scattered once), band ranges and clip-pair keys with
    counts travel; each worker reads the hashes from the region store.
    ``stats['worker_peak_rss_mb']`` gets each worker's peak, ``stats['tasks']`` the task count."""
    client = executor.client
    n_threads = max(1, sum(client.nthreads().values()))
    shared = client.scatter(layout, broadcast=True)
    ranges = band_ranges(masks.shape[0], 2 * n_threads)
    futures = [client.submit(_dask_task, region, snapshot, shared, r, masks, radius, pure=False)
               for r in ranges]
    parts, n_pairs = [], 0
    for fut in futures:
        k, c, n, _ = fut.result()
        parts.append((k, c))
        n_pairs += n
    if stats is not None:
        stats["worker_peak_rss_mb"] = sorted(client.run(peak_rss_mb).values())
        stats["tasks"] = len(ranges)
    return merge_counts(parts, min_matches), n_pairs


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: ``VmHWM`` on Linux, its own address space only
    (``ru_maxrss`` also counts the parent's RSS at fork time, so a child of a process holding a
    large fleet would report the parent's memory); elsewhere ``ru_maxrss``."""
    import resource
    from pathlib import Path

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    scale = 2**20 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
