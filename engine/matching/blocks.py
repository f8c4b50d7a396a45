"""Hash candidates in query blocks: the banded LSH with memory bounded by the block, not the region.

The query clips (every clip for a full dedup, the new ones for an incremental one) are cut, in
clip-row order, into blocks of about ``DedupParams.block_keyframes`` quality keyframes
(:func:`plan_blocks`). Block ``b`` runs :func:`kernels.band_collisions` with its own keyframes as
the queries and, as the other codes, the keyframes of every clip that is not a query or sits in
an earlier block. So each matching keyframe pair is found in exactly one block (the later block
of its two clips), and so is every keyframe pair of a clip pair: a block turns its keyframe pairs
into clip pairs with counts and keeps those with ``min_candidate_matches`` on the spot. The
blocks' clip pairs are disjoint; concatenated and sorted they are the unblocked result exactly,
at any block size.

Memory per process: the region's keyframe hashes (32 bytes a keyframe), a clip row per keyframe
(8), about 80 bytes a query keyframe of the block per band thread, a fixed chunk of the other
codes (``kernels.bands.BASE_CHUNK``), and the block's keyframe pairs. Blocks run one after the
other here (bands in threads), or as Dask tasks (:func:`dask_block_keys`): a worker reads the
hashes from the region store itself, once, and returns only the block's clip-pair keys; the
job's own process stays the region's single writer. docs/design.md (dedup at scale) has the
rationale and the measured growth.
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
    """Where each clip's keyframes are and which block queries it: plain arrays that travel to
    Dask workers instead of the hashes. ``block[k] = -1``: clip k is no query (only matched)."""

    rows: np.ndarray  # int64[C] clip rows, ascending
    kf_start: np.ndarray  # int64[C]
    kf_count: np.ndarray  # int64[C]
    block: np.ndarray  # int32[C]
    n_keyframes: int  # keyframe rows covered (the snapshot's kf_end)

    @property
    def n_blocks(self) -> int:
        return int(self.block.max()) + 1 if len(self.block) else 0

    def keyframe_clips(self) -> np.ndarray:
        """Clip row of every keyframe row, ``-1`` for rows of no clip."""
        kf_clip = np.full(self.n_keyframes, -1, np.int64)
        kf_clip[span_rows(self.kf_start, self.kf_count)] = np.repeat(self.rows, self.kf_count)
        return kf_clip

    def keyframes_of(self, positions: np.ndarray) -> np.ndarray:
        """Keyframe rows of the clips at the given table positions."""
        return span_rows(self.kf_start[positions], self.kf_count[positions])


def plan_blocks(rows: np.ndarray, kf_start: np.ndarray, kf_count: np.ndarray, query_clips: np.ndarray,
                valid: np.ndarray, block_keyframes: int) -> Layout:
    """Cut the query clips, in row order, into blocks of about ``block_keyframes`` valid keyframes
    (a clip is never split; a clip larger than a block is a block of its own)."""
    if block_keyframes < 1:
        raise ValueError(f"block_keyframes must be >= 1; got {block_keyframes}")
    block = np.full(len(rows), -1, np.int32)
    q = np.flatnonzero(np.isin(rows, np.asarray(query_clips, np.int64)))
    if len(q):
        cum = np.concatenate([[0], np.cumsum(valid, dtype=np.int64)])
        ends = np.cumsum(cum[kf_start[q] + kf_count[q]] - cum[kf_start[q]])
        del cum
        begin = np.concatenate([[0], ends[:-1]])
        pos, b = 0, 0
        while pos < len(q):  # a block takes clips while its valid keyframes fit the budget
            nxt = max(pos + 1, int(np.searchsorted(ends, begin[pos] + block_keyframes, side="right")))
            block[q[pos:nxt]] = b
            pos, b = nxt, b + 1
    return Layout(np.asarray(rows, np.int64), np.asarray(kf_start, np.int64),
                  np.asarray(kf_count, np.int64), block, int(len(valid)))


def block_flags(layout: Layout, b: int, n_keyframes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(is_query, searched)`` per keyframe row for block ``b``: its own keyframes, and those
    of every clip it is matched against (no query, or in an earlier block) plus its own."""
    is_query = np.zeros(n_keyframes, bool)
    is_query[layout.keyframes_of(np.flatnonzero(layout.block == b))] = True
    searched = is_query.copy()
    searched[layout.keyframes_of(np.flatnonzero(layout.block < b))] = True
    return is_query, searched


def block_keys(hashes: np.ndarray, valid: np.ndarray, kf_clip: np.ndarray, layout: Layout, b: int,
               masks: np.ndarray, radius: int, min_matches: int, threads: int = 1) -> tuple[np.ndarray, int]:
    """Candidate clip pairs of block ``b`` as sorted keys ``a * n_rows + b`` (a < b), and the
    number of matching keyframe pairs behind them. Bands run in ``threads`` threads."""
    is_query, searched = block_flags(layout, b, len(hashes))
    searched &= valid
    n_bands = masks.shape[0]
    step = max(1, -(-n_bands // (4 * threads)))  # a few chunks per thread
    ranges = [range(t, min(t + step, n_bands)) for t in range(0, n_bands, step)]

    def work(r: range):
        i, j, _ = kernels.band_collisions(hashes, searched, is_query, kf_clip, masks, radius, bands=r)
        return i, j

    if threads > 1 and len(ranges) > 1:
        with ThreadPoolExecutor(threads) as pool:  # the kernels hold no GIL
            parts = list(pool.map(work, ranges))
    else:
        parts = [work(r) for r in ranges]
    n_pairs = sum(len(p[0]) for p in parts)
    n_rows = int(layout.rows.max()) + 1 if len(layout.rows) else 1
    keys = []
    for i, j in parts:  # clip-pair keys band range by band range: keyframe pairs never pile up
        ca, cb = kf_clip[i], kf_clip[j]
        keys.append(np.minimum(ca, cb) * n_rows + np.maximum(ca, cb))
    parts.clear()
    all_keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    keys.clear()
    uniq, n = np.unique(all_keys, return_counts=True)
    return uniq[n >= min_matches], n_pairs


def keys_to_pairs(keys: np.ndarray, n_rows: int) -> np.ndarray:
    """Clip-pair keys to ``int64[p, 2]`` rows (a < b), sorted."""
    keys = np.sort(np.asarray(keys, np.int64))
    return np.stack([keys // n_rows, keys % n_rows], axis=1)


def local_block_keys(hashes: np.ndarray, valid: np.ndarray, layout: Layout, masks: np.ndarray,
                     radius: int, min_matches: int, threads: int = 0) -> tuple[np.ndarray, int]:
    """Every block in this process, one after the other: all candidate keys and keyframe pairs."""
    threads = threads or os.cpu_count() or 1
    kf_clip = layout.keyframe_clips()
    keys, n_pairs = [], 0
    for b in range(layout.n_blocks):
        k, n = block_keys(hashes, valid, kf_clip, layout, b, masks, radius, min_matches, threads)
        keys.append(k)
        n_pairs += n
    return (np.concatenate(keys) if keys else np.zeros(0, np.int64)), n_pairs


# ------------------------------------------------------------------------------ Dask
#: per worker process: the region's hashes, quality flags and keyframe clips of the last snapshot
#: read (a worker serves one dedup at a time, block after block)
_WORKER_STATE: dict = {}


def _worker_arrays(region, snapshot: tuple[int, int], layout: Layout):
    """The region's hashes and quality flags at ``snapshot`` (version, kf_end), read from its
    store by this worker process once, and the clip row of every keyframe."""
    from engine.index import QUALITY_FLOOR
    from engine.store.region import RegionStore

    key = (str(region.path), snapshot, len(layout.rows), int(layout.rows.sum()), int(layout.kf_count.sum()))
    if _WORKER_STATE.get("key") != key:
        _WORKER_STATE.clear()
        kf_end = snapshot[1]
        with RegionStore.open(region) as store:
            hashes = store.read_rows("keyframe_hashes", 0, kf_end)
            valid = store.read_rows("keyframe_quality", 0, kf_end) >= QUALITY_FLOOR
        kf_clip = layout.keyframe_clips()
        _WORKER_STATE.update(key=key, arrays=(hashes, valid & (kf_clip >= 0), kf_clip))
    return _WORKER_STATE["arrays"]


def _dask_task(region, snapshot: tuple[int, int], layout: Layout, b: int, masks: np.ndarray,
               radius: int, min_matches: int) -> tuple[np.ndarray, int, float]:
    """A Dask task: block ``b``'s candidate keys, keyframe pairs and the worker's peak RSS (MB)."""
    import numba

    numba.set_num_threads(1)
    hashes, valid, kf_clip = _worker_arrays(region, snapshot, layout)
    keys, n = block_keys(hashes, valid, kf_clip, layout, b, masks, radius, min_matches, threads=1)
    return keys, n, peak_rss_mb()


def dask_block_keys(executor, region, snapshot: tuple[int, int], layout: Layout, masks: np.ndarray,
                    radius: int, min_matches: int, stats: dict | None = None) -> tuple[np.ndarray, int]:
    """Every block as a Dask task on ``executor`` (``engine.ingest.executors.DaskExecutor``): only the
    layout (scattered once), block numbers and clip-pair keys travel; each worker reads the
    hashes from the region store. ``stats['worker_peak_rss_mb']`` gets each worker's peak."""
    client = executor.client
    shared = client.scatter(layout, broadcast=True)
    futures = [client.submit(_dask_task, region, snapshot, shared, b, masks, radius, min_matches,
                             pure=False) for b in range(layout.n_blocks)]
    keys, n_pairs, peaks = [], 0, {}
    for fut in futures:
        k, n, _ = fut.result()
        keys.append(k)
        n_pairs += n
    if stats is not None:
        for addr, rss in client.run(peak_rss_mb).items():
            peaks[addr] = rss
        stats["worker_peak_rss_mb"] = sorted(peaks.values())
    return (np.concatenate(keys) if keys else np.zeros(0, np.int64)), n_pairs


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
