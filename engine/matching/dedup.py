"""Temporal dedup: candidates from keyframe hashes, verification by time alignment, groups.

1. **Candidates.** Matching keyframe pairs (different clips, both of quality, at least one in a
   clip to check, within ``candidate_radius`` bits) are found by one of two structures, chosen by
   region size (:func:`candidate_method`):

   * ``exact`` (up to ``exact_max_keyframes`` = 50,000 quality keyframes, ~2,500 clips): range
     search of the query keyframes in the region's FAISS binary flat index, in blocks;
   * ``lsh`` (above): the banded bit-sampling LSH kernel :func:`kernels.band_collisions`, with
     ``lsh_bands`` = 48 bands of ``b = ceil(log2(quality keyframes))`` random bits (16..28: 21 at
     2M keyframes), so that random band collisions stay about linear in the region size. Each
     band's hash space is split into parts of about ``block_keyframes`` query keyframes
     (:mod:`engine.matching.blocks`: memory bounded by the part, the same candidates at any
     size); band ranges run in threads here or as Dask tasks (``workers``, ``scheduler``). A
     keyframe pair at distance ``d`` is found with probability ``kernels.band_recall(d, 48, b)``:
     at b = 21, 0.995 at 25 bits, 0.96 at 30, 0.86 at 35, 0.69 at 40. A clip pair needs only
     ``min_candidate_matches`` = 2 of its ~20 matching keyframe pairs, so clip-level recall
     stays >= 0.99 (measured: ``benchmarks/dedup_scale.py``).

   Clip pairs with at least ``min_candidate_matches`` distinct matching keyframe pairs become
   candidates. Nothing N x N is ever built.
2. **Verification.** The two keyframe sequences (sampled at a fixed rate in seconds) are aligned
   by the :func:`kernels.align_keyframe_pairs` kernel: the shift that maximises matching keyframes.
   A pair is a ``duplicate`` when the matched span covers most of *each* clip, ``partial`` when it
   covers a long enough span of both but not most of each (trims, pre/post roll, splices), else
   nothing. Two clips of the same drive whose recorded times do not overlap are never duplicates.
   The rules are applied to all candidates at once with NumPy.
   **Same recording, reframed** (:func:`same_recording_pairs`): an off-centre crop-and-rescale
   moves every 256-bit hash as far as unrelated footage, so hashes cannot find it. Clips that
   carry recorded start times within ``same_recording_s`` (sorted start times: a few candidates
   a clip at any scale), with near-identical clip embeddings and low-frequency pHashes that agree
   keyframe by keyframe, are whole duplicates too. All three must hold: two cars of a fleet do
   record at the same second, and look-alike footage exists, but not both at once.
3. **Groups.** Union-find over ``duplicate`` pairs only; partial pairs never merge groups (a splice
   of two drives does not make the drives duplicates). One representative per group: best quality,
   then longest, then earliest.

Incremental: only clips ingested since the last dedup are queried (against the whole region);
old pairs are kept as stored and only the new ones are written; groups are recomputed from all
stored pairs, which is cheap, so a new clip that joins or links groups leaves them consistent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

import kernels
from engine.index import QUALITY_FLOOR, ensure_embedding_index, ensure_indexes
from engine.ingest.features import CROP_VIEW_POSITIONS, N_CROP_VIEWS
from engine.matching import blocks
from engine.matching.relations import (
    MAX_COPIES_PRODUCT,
    Pair,
    duplicate_groups,
    elect_representatives,
    explained_partials,
    group_consistent,
    group_rows,
    has_recorded_time,
    partials_through_copies,
    recorded_contradicts,
    recorded_far_apart,
    recording_codes,
    refine_offsets,
    shown_pairs,
    shown_view,
)
from engine.store.region import ClipTable, RegionStore, span_rows


@dataclass(frozen=True)
class DedupParams:
    candidate_radius: int = 40  # Hamming bits of 256 for a keyframe to be a candidate match
    match_radius: int = 40  # Hamming bits of 256 for aligned keyframes to count as matched
    min_candidate_matches: int = 2  # distinct matching keyframe pairs for a clip pair to be verified
    min_matches: int = 3  # matched keyframes for any relation
    min_match_fraction: float = 0.6  # matched keyframes / keyframes in the matched span
    # a "duplicate" (whole clip) leaves at most this much of either clip outside the matched
    # span: max(whole_slack_s, (1 - whole_coverage) x its duration); anything shorter is "partial"
    # (a copy trimmed by 1.3 s is a partial overlap with an offset, not the same clip)
    whole_coverage: float = 0.95
    whole_slack_s: float = 1.0

    def is_whole(self, first_a, last_a, shift, count_a, count_b):
        """Vectorised duplicate test on keyframe indices of the matched span."""
        step = 1.0 / self.keyframe_hz
        out_a = (first_a + (count_a - 1 - last_a)) * step
        first_b, last_b = first_a - shift, last_a - shift
        out_b = (first_b + (count_b - 1 - last_b)) * step
        slack_a = np.maximum(self.whole_slack_s, (1 - self.whole_coverage) * count_a * step)
        slack_b = np.maximum(self.whole_slack_s, (1 - self.whole_coverage) * count_b * step)
        return (out_a <= slack_a + 1e-9) & (out_b <= slack_b + 1e-9)

    def not_specific(self, whole, span_keyframes, change_bits):
        """Vectorised: a partial match shorter than ``specific_span_keyframes`` whose first and
        last matched keyframes differ by fewer than ``specific_change_bits`` bits. Its stretch
        barely changes (a car waiting at a light), so any other moment of it matches as well."""
        return (~np.asarray(whole, bool) & (np.asarray(span_keyframes) < self.specific_span_keyframes)
                & (np.asarray(change_bits) < self.specific_change_bits))
    keyframe_hz: float = 2.0
    query_block: int = 32768  # keyframes per range-search block (exact candidates)
    same_drive_tolerance_s: float = 1.0
    # a pair's offset comes from the recorded start times when they agree with the aligned
    # keyframe shift within this (exact, not quantised to the keyframe step; 0 turns it off)
    recorded_offset_tolerance_s: float = 1.0
    # two clips whose recorded time ranges lie further apart than this cannot be whole duplicates,
    # whatever their drive or vehicle (the same route driven on another day looks alike frame by
    # frame), and a partial overlap between them needs an edit to explain it (see
    # explained_partials); only clips that both carry a recorded start time; 0 turns it off
    max_recorded_gap_s: float = 6 * 3600.0
    # within that gap, recorded times must also agree with the match itself: the same footage has
    # B's recorded start at A's start + offset, up to a clock error (this tolerance) plus a time
    # zone mistake (a multiple of recorded_zone_step_s: every UTC offset is a multiple of 15 min).
    # Two drives of one route 11 min apart, or the next clip of the same drive (10 s on), match
    # frame by frame at night or on an empty road but not in time; 0 turns this part off
    recorded_time_tolerance_s: float = 2.0
    recorded_zone_step_s: float = 900.0
    # an edit's parts: spans of one clip matched to two sources overlap by at most this much
    edit_overlap_s: float = 1.0
    # ... and the part recorded at the edit's own time is its first (a splice carries the start
    # time of its first part): it begins within this of the edit's start
    edit_first_part_s: float = 1.0
    # a partial pair's offset from a short, ambiguous match (a scene that barely changes) is
    # replaced by the offset through a third clip both share better-supported matches with, when
    # the two agree within this (refine_offsets); 0 turns it off
    offset_refine_max_s: float = 1.5
    # a partial overlap with a clip is one with each of its whole duplicates too (a crop of the
    # source overlaps a splice of it as the source does); False shows only matched pairs
    partials_through_copies: bool = True
    # partial matches shorter than this many keyframes must show change across the matched
    # stretch (first vs last matched keyframe of A at least this many bits apart)
    specific_span_keyframes: int = 6
    specific_change_bits: int = 24
    # candidate structure by region size: exact FAISS range search up to this many quality
    # keyframes (about 2,500 clips of 20 keyframes), banded LSH above it (module doc)
    exact_max_keyframes: int = 50_000
    lsh_bands: int = 48  # bands of random bit positions
    lsh_band_bits: int = 0  # bits per band; 0: ceil(log2(quality keyframes)), clamped to 16..28
    lsh_seed: int = 0  # seed of the band masks
    threads: int = 0  # threads over LSH bands; 0: all cores
    # each LSH band's hash space is split into parts of about this many query keyframes
    # (engine.matching.blocks): kernel scratch per band thread is 8 bytes a keyframe plus ~8 (24
    # with old clips to probe) a keyframe of a part; any part size gives the same candidates
    block_keyframes: int = 1 << 26
    # ... and the band ranges run as tasks of a Dask cluster: ``workers`` local worker processes, or
    # the declared ``scheduler`` (engine.ingest.executors.DaskExecutor); 0 and "": in this process
    workers: int = 0
    scheduler: str = ""
    # same recording, reframed: two clips recorded at the same moment (start times within
    # same_recording_s, durations within whole_slack_s) whose clip embeddings agree (cosine >=
    # same_recording_cosine) and whose aligned keyframes agree in their low-frequency pHash
    # (mean <= same_recording_phash_bits of 64, and same_recording_coverage of the keyframes
    # each within it) are duplicates even when the 256-bit hash moved
    # (an off-centre crop-and-rescale moves PDQ 60-100 bits, pHash-64 0-16); 0 turns it off
    same_recording_s: float = 1.0
    same_recording_cosine: float = 0.92
    same_recording_phash_bits: float = 20.0
    same_recording_coverage: float = 0.9  # of the aligned keyframes within that many bits

    # reframed copies (crops, zooms, picture-in-picture, overlays) that the 256-bit hashes miss
    # (reframed_pairs): candidates are each query clip's reframed_neighbours nearest clips by
    # embedding (cosine >= reframed_min_cosine) and the hash candidates that did not verify;
    # keyframes match when a crop view's 64-bit pHash lies within reframed_radius bits of the
    # other clip's whole view (or of the same view of it); a relation needs reframed_min_matches
    # keyframes at one shift and at least reframed_min_fraction of the matched span
    reframed_neighbours: int = 24  # 0 turns the stage off
    # mirrored copies (left and right swapped): the reframed stage also aligns each clip's
    # mirrored whole view against the other's whole view; off by default (a road filmed the
    # other way round is not footage anyone mirrored), pairs found carry ``mirrored``
    mirror: bool = False
    # regions of up to this many clips are searched exhaustively (reframed_candidates); larger
    # ones rely on the embedding neighbours and the hash candidates alone
    reframed_exhaustive_max_clips: int = 500
    reframed_probe_keyframes: int = 4  # per query clip, spread over it, for the exhaustive search
    reframed_min_cosine: float = 0.3
    reframed_radius: int = 12
    reframed_min_matches: int = 4
    reframed_min_fraction: float = 0.7
    # ... and the match must be specific in time: at any shift reframed_shift_gap keyframes or
    # more away, the aligned keyframes lie at least reframed_shift_margin_bits further apart on
    # average (a slow or dark scene matches a moment later as well as it matches its copy)
    reframed_shift_gap: int = 4
    reframed_shift_margin_bits: float = 1.0
    # a view that matches its own clip's whole view (at any shift) as often as this share of
    # their aligned keyframes is ambiguous and never used: night or fog where every crop looks
    # like the frame, or driving straight on where a crop looks like the frame a moment later
    reframed_self_fraction: float = 0.5
    # matched keyframes of a reframed match lie this close on average (bits of 64): a true view
    # differs by its grid step and the copy's coding noise, chance matches spread up to the radius
    reframed_max_mean_bits: float = 8.0
    # ... and a view matched against the same view of the other clip (an inset or a logo in a
    # corner) has no grid step between the two: only coding noise
    reframed_same_view_mean_bits: float = 6.0
    # matched keyframes / keyframes aligned at the best shift: a copy matches nearly everywhere
    # it overlaps, a look-alike in stretches
    reframed_min_overlap_fraction: float = 0.8

    # re-timed copies (the same frames written at another rate: 30 fps frames at 25 fps, a GIF
    # at half speed): for hash candidates that are not dense whole duplicates, lines A's index =
    # c + rate x B's index (rates from retime_rate_range in 2 % steps, proposed by a Hough vote
    # over matching keyframe pairs) are judged by the mean distance of every B keyframe they map
    # inside A; a rate at least retime_min_change from 1 whose line is retime_margin times
    # closer than the best rate-1 line, within retime_max_mean_bits, with retime_min_fraction of
    # its keyframes matched, makes the pair re-timed, with that rate
    retime_rate_range: tuple[float, float] = (0.4, 2.5)
    retime_min_change: float = 0.05
    retime_margin: float = 1.3  # the rate-1 line's mean distance / the re-timed line's, at least
    retime_min_fraction: float = 0.6  # of the keyframes mapped inside A, matched
    # mean distance along the re-timed line, at most: its keyframes match on average (the copy's
    # keyframes fall between the source's, up to half a keyframe from the nearest one)
    retime_max_mean_bits: float = 40.0
    # a rate is measured over at least this many keyframes, and its line must part from rate 1
    # by at least retime_min_drift keyframes across them (a short trim fits 1.05 as well as 1)
    retime_min_keyframes: int = 12
    retime_min_drift: float = 2.0

    def band_bits_for(self, n_keyframes: int) -> int:
        if self.lsh_band_bits:
            return int(self.lsh_band_bits)
        return int(min(28, max(16, int(max(n_keyframes, 2) - 1).bit_length())))


#: names of the pair model and shown view that callers import from here
__all__ = ["MAX_COPIES_PRODUCT", "Pair", "explained_partials", "partials_through_copies",
           "recorded_contradicts", "recorded_far_apart", "refine_offsets", "shown_pairs"]


@dataclass
class DedupResult:
    region: str
    clips: int
    checked: int  # clips queried in this run
    candidates: int
    pairs: list[Pair]  # all verified pairs in the region (old + new)
    groups: dict[int, list[int]]  # representative row -> member rows (size >= 2)
    new_pairs: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    method: str = ""  # candidate search: "exact" or "lsh"
    keyframe_pairs: int = 0  # matching keyframe pairs behind the candidates
    # the hash candidate search: blocks, and each Dask worker's peak RSS in MB (engine.matching.blocks)
    candidate_stats: dict = field(default_factory=dict)


def keyframe_clips(table: ClipTable, n_keyframes: int) -> np.ndarray:
    """Clip row of every keyframe row (``-1`` for rows of no active clip), without a Python loop."""
    kf_clip = np.full(n_keyframes, -1, np.int64)
    kf_clip[span_rows(table.kf_start, table.kf_count)] = np.repeat(table.rows, table.kf_count)
    return kf_clip


def candidate_method(n_quality_keyframes: int, params: DedupParams) -> str:
    """``"exact"`` (FAISS flat range search) or ``"lsh"`` (banded LSH kernel) for a region."""
    return "exact" if n_quality_keyframes <= params.exact_max_keyframes else "lsh"


def keyframe_pairs(store: RegionStore | None, hashes: np.ndarray, valid: np.ndarray,
                   is_query: np.ndarray, kf_clip: np.ndarray, params: DedupParams,
                   method: str) -> tuple[np.ndarray, np.ndarray]:
    """Matching keyframe pairs ``(i, j)``, ``i < j``, each once: different clips, both valid, at
    least one a query, within ``candidate_radius`` (exactly for ``"exact"``; for ``"lsh"``, the
    pairs that collide in at least one band)."""
    if method == "lsh":
        n_bits = params.band_bits_for(int(valid.sum()))
        masks = kernels.band_masks(params.lsh_bands, n_bits, hashes.shape[1] * 8, params.lsh_seed)
        threads = params.threads or os.cpu_count() or 1
        step = max(1, -(-params.lsh_bands // (4 * threads)))  # a few chunks per thread
        ranges = [range(t, min(t + step, params.lsh_bands)) for t in range(0, params.lsh_bands, step)]

        def work(r: range):
            return kernels.band_collisions(hashes, valid, is_query, kf_clip, masks,
                                           params.candidate_radius, bands=r)

        if threads > 1 and len(ranges) > 1:
            with ThreadPoolExecutor(threads) as pool:  # the kernels hold no GIL
                parts = list(pool.map(work, ranges))
        else:
            parts = [work(r) for r in ranges]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if method != "exact":
        raise ValueError(f"candidate method must be 'exact' or 'lsh'; got {method!r}")
    kf_index, _ = ensure_indexes(store)
    q_rows = np.flatnonzero(valid & is_query)
    out_i, out_j = [], []
    for lo in range(0, len(q_rows), params.query_block):
        block = q_rows[lo : lo + params.query_block]
        lims, _, ids = kf_index.range_search(np.ascontiguousarray(hashes[block]), params.candidate_radius)
        q = np.repeat(block, np.diff(lims))
        keep = (ids >= 0) & (ids < len(kf_clip))
        q, ids = q[keep], ids[keep]
        keep = valid[ids] & (kf_clip[ids] >= 0) & (kf_clip[ids] != kf_clip[q])
        # a pair of two queries is found from both sides: keep it once
        keep &= ~is_query[ids] | (q < ids)
        q, ids = q[keep], ids[keep]
        out_i.append(np.minimum(q, ids))
        out_j.append(np.maximum(q, ids))
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j)


def candidate_pairs(store: RegionStore | None, table: ClipTable, hashes: np.ndarray, valid: np.ndarray,
                    query_clips: np.ndarray, params: DedupParams, method: str | None = None,
                    stats: dict | None = None) -> np.ndarray:
    """Candidate clip-row pairs ``int64[p, 2]`` (a < b, sorted): clip pairs with at least
    ``min_candidate_matches`` distinct matching keyframe pairs, at least one clip in
    ``query_clips``. ``method`` (default: by region size) picks exact or LSH search."""
    kf_clip = keyframe_clips(table, len(hashes))
    valid = valid & (kf_clip >= 0)
    query = np.zeros(int(table.rows.max()) + 1 if len(table) else 0, bool)
    query[np.asarray(query_clips, np.int64)] = True
    is_query = np.zeros(len(hashes), bool)
    on = kf_clip >= 0
    is_query[on] = query[kf_clip[on]]
    method = method or candidate_method(int(valid.sum()), params)
    n_rows = int(table.rows.max()) + 1 if len(table) else 1
    if method == "lsh":  # in query blocks, here or on a Dask cluster (engine.matching.blocks)
        if stats is not None:
            stats.update(method=method, query_keyframes=int((valid & is_query).sum()))
        del is_query
        keys, n_pairs = _lsh_block_keys(store, table, hashes, valid, query_clips, params, stats)
        if stats is not None:
            stats.update(keyframe_pairs=int(n_pairs))
        return blocks.keys_to_pairs(keys, n_rows)
    i, j = keyframe_pairs(store, hashes, valid, is_query, kf_clip, params, method)
    if stats is not None:
        stats.update(method=method, keyframe_pairs=int(len(i)), query_keyframes=int((valid & is_query).sum()))
    if len(i) == 0:
        return np.zeros((0, 2), np.int64)
    ca, cb = kf_clip[i], kf_clip[j]
    keys = np.minimum(ca, cb) * n_rows + np.maximum(ca, cb)
    keys, n = np.unique(keys, return_counts=True)
    keys = keys[n >= params.min_candidate_matches]
    return np.stack([keys // n_rows, keys % n_rows], axis=1)


def _lsh_block_keys(store: RegionStore | None, table: ClipTable, hashes: np.ndarray, valid: np.ndarray,
                    query_clips: np.ndarray, params: DedupParams, stats: dict | None) -> tuple[np.ndarray, int]:
    """Candidate clip-pair keys and keyframe pairs of the banded LSH, block by block, in this
    process or as tasks of the Dask cluster that ``params`` names."""
    masks = kernels.band_masks(params.lsh_bands, params.band_bits_for(int(valid.sum())),
                               hashes.shape[1] * 8, params.lsh_seed)
    layout = blocks.plan_blocks(table.rows, table.kf_start, table.kf_count, query_clips, valid,
                                params.block_keyframes)
    if stats is not None:
        stats["blocks"] = layout.n_blocks
    if not (params.workers or params.scheduler):
        return blocks.local_block_keys(hashes, valid, layout, masks, params.candidate_radius,
                                       params.min_candidate_matches, params.threads)
    if store is None:
        raise ValueError("candidate search on a Dask cluster needs the region store (its workers "
                         "read the hashes from it); pass store=")
    from engine.ingest.executors import DaskExecutor

    snap = table.snapshot
    with DaskExecutor.start(store.region, scheduler=params.scheduler or None,
                            workers=params.workers) as executor:
        return blocks.dask_block_keys(executor, store.region, (snap.version, snap.kf_end), layout,
                                      masks, params.candidate_radius, params.min_candidate_matches,
                                      stats)


def verify_pairs(pairs: np.ndarray, table: ClipTable, hashes: np.ndarray, valid: np.ndarray,
                 params: DedupParams) -> list[Pair]:
    if len(pairs) == 0:
        return []
    ia = np.searchsorted(table.rows, pairs[:, 0]).astype(np.int64)
    ib = np.searchsorted(table.rows, pairs[:, 1]).astype(np.int64)
    al = kernels.align_keyframe_pairs(hashes, valid, table.kf_start, table.kf_count, ia, ib,
                                      params.match_radius, -1)
    seqs = (hashes, valid, table.kf_start[ia], table.kf_count[ia], table.kf_start[ib], table.kf_count[ib])
    return _relations(pairs, ia, ib, al, table, hashes, params, seqs=seqs)


def subkeyframe_shift(codes: np.ndarray, valid: np.ndarray, a_start: np.ndarray, a_count: np.ndarray,
                      b_start: np.ndarray, b_count: np.ndarray, shift: np.ndarray, first_a: np.ndarray,
                      last_a: np.ndarray) -> np.ndarray:
    """Per aligned pair of keyframe sequences (B's keyframe j against A's j + ``shift``), the
    fraction of a keyframe step, in [-0.5, 0.5], to add to ``shift`` for B's true position.

    Keyframes are sampled at a fixed rate from each clip's own first frame, so a copy's footage
    lies between two of the source's keyframes: the aligned shift is only the nearest one. The
    mean distance of the matched span's keyframes at shifts ``shift - 1``, ``shift``,
    ``shift + 1`` (the keyframes inside A and valid at all three) grows about linearly with the
    time between the frames compared (keyframes are tent-weighted means over one step either
    side), so the V through the three means puts its apex at the true position."""
    n = len(shift)
    out = np.zeros(n, np.float64)
    length = np.maximum(np.asarray(last_a, np.int64) - np.asarray(first_a, np.int64) + 1, 0)
    if n == 0 or not length.any():
        return out
    pair = np.repeat(np.arange(n), length)
    shift = np.asarray(shift, np.int64)
    j = (np.repeat(np.asarray(first_a, np.int64) - shift, length)
         + np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length))
    a_start, a_count = np.asarray(a_start, np.int64)[pair], np.asarray(a_count, np.int64)[pair]
    b_row = np.asarray(b_start, np.int64)[pair] + j
    ok = (j >= 0) & (j < np.asarray(b_count, np.int64)[pair])
    ok[ok] &= valid[b_row[ok]]
    for delta in (-1, 0, 1):  # inside A and valid at all three shifts
        i = j + shift[pair] + delta
        inside = ok & (i >= 0) & (i < a_count)
        inside[inside] &= valid[a_start[inside] + i[inside]]
        ok = inside
    dists = []
    rows = np.flatnonzero(ok)
    for delta in (-1, 0, 1):
        a_row = a_start[rows] + j[rows] + shift[pair[rows]] + delta
        dists.append(np.bitwise_count(codes[a_row] ^ codes[b_row[rows]]).sum(axis=1))
    count = np.bincount(pair[rows], minlength=n)
    dm, d0, dp = (np.bincount(pair[rows], weights=d, minlength=n) / np.maximum(count, 1) for d in dists)
    return _v_apex(dm, d0, dp, count > 0)


def _v_apex(dm: np.ndarray, d0: np.ndarray, dp: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Where the V through distances ``dm``, ``d0``, ``dp`` at positions -1, 0, +1 has its
    apex, in [-0.5, 0.5]; 0 where ``ok`` is false or the V is flat."""
    denom = 2.0 * (np.maximum(dm, dp) - d0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok & (denom > 0), np.clip((dm - dp) / denom, -0.5, 0.5), 0.0)


def _relations(pairs: np.ndarray, ia: np.ndarray, ib: np.ndarray, al: kernels.Alignment,
               table: ClipTable, hashes: np.ndarray, params: DedupParams,
               min_matches: int | None = None, min_fraction: float | None = None,
               seqs: tuple | None = None) -> list[Pair]:
    """The relation (duplicate, partial or none) of each aligned clip pair, by the rules of the
    module doc. ``hashes`` are A's keyframe codes for the change test of short matches;
    ``seqs`` (codes, valid, A's start and count, B's start and count, per pair) are the aligned
    sequences, for the offset between keyframes (:func:`subkeyframe_shift`)."""
    min_matches = params.min_matches if min_matches is None else min_matches
    min_fraction = params.min_match_fraction if min_fraction is None else min_fraction
    step = 1.0 / params.keyframe_hz
    m = al.matches.astype(np.int64)
    fa, la, s = al.first_a.astype(np.int64), al.last_a.astype(np.int64), al.shift.astype(np.int64)
    span_len = np.maximum(la - fa + 1, 1)
    # density inside the matched span, not over the whole overlap: a splice or a trim
    # matches one contiguous stretch and nothing outside it
    # a clip shorter than min_matches keyframes (0.5-1 s at 2 Hz) matches with every one of its
    # keyframes, and at least two
    shortest = np.minimum(table.kf_count[ia], table.kf_count[ib])
    need = np.where(shortest < min_matches, np.maximum(2, shortest), min_matches)
    ok = (m >= need) & (m / span_len >= min_fraction)
    ok &= ~never_same_footage(table, ia, ib, params)
    sa, sb = table.start_time[ia], table.start_time[ib]
    na, nb = table.kf_count[ia], table.kf_count[ib]
    whole = params.is_whole(fa, la, s, na, nb)
    # recorded on different days, or at times the match contradicts: never the same whole clip,
    # whoever recorded it (partials between such clips need an edit: explained_partials)
    ok &= ~(whole & recorded_contradicts(sa, table.duration_s[ia], sb, table.duration_s[ib],
                                         s / params.keyframe_hz, params))
    # a short partial match must be temporally specific: if the matched stretch of A barely
    # changes (a car waiting at a light), any other moment of that wait matches as well, e.g.
    # the end of the previous clip of the same drive; require its first and last matched
    # keyframes to differ
    short = ok & ~whole & (span_len < params.specific_span_keyframes)
    if short.any():
        first = hashes[table.kf_start[ia[short]] + np.maximum(fa[short], 0)]
        last = hashes[table.kf_start[ia[short]] + np.maximum(la[short], 0)]
        change = np.bitwise_count(first ^ last).sum(axis=1)
        ok[np.flatnonzero(short)[params.not_specific(whole[short], span_len[short], change)]] = False
    # the offset: the aligned shift, placed between keyframes by the distances at the shifts
    # either side (subkeyframe_shift); in a scene that does not change, any nearby shift matches
    # as well, so where both clips carry recorded start times that agree with it (within
    # recorded_offset_tolerance_s), those give the offset exactly
    offset = s * step
    if seqs is not None and ok.any():
        at = np.flatnonzero(ok)
        codes, seq_valid, a0, an, b0, bn = seqs
        offset = offset.astype(np.float64)
        offset[at] += step * subkeyframe_shift(codes, seq_valid, a0[at], an[at], b0[at], bn[at], s[at],
                                               fa[at], la[at])
    recorded = sb - sa
    agree = (has_recorded_time(sa) & has_recorded_time(sb)
             & (np.abs(recorded - offset) <= params.recorded_offset_tolerance_s))
    offset = np.where(agree, recorded, offset)
    out: list[Pair] = []
    for p in np.flatnonzero(ok).tolist():
        out.append(Pair(int(pairs[p, 0]), int(pairs[p, 1]), "duplicate" if whole[p] else "partial",
                        float(offset[p]), (float(fa[p] * step), float(la[p] * step)),
                        (float((fa[p] - s[p]) * step), float((la[p] - s[p]) * step)), int(m[p]),
                        int(al.overlap[p]), float(al.mean_dist[p])))
    return out


def retime_rates(params: DedupParams) -> np.ndarray:
    """The rates tried for re-timed copies: 2 % geometric steps over ``retime_rate_range``,
    and exactly 1."""
    lo, hi = params.retime_rate_range
    steps = np.exp(np.arange(np.log(lo), np.log(hi) + 1e-9, np.log(1.02)))
    return np.unique(np.concatenate([steps, [1.0]]))


def never_same_footage(table: ClipTable, ia: np.ndarray, ib: np.ndarray,
                       params: DedupParams) -> np.ndarray:
    """Per pair of table positions, can the two clips not share footage whatever their pictures
    say: pieces of one recording (related by their spans, never by matching:
    :func:`recording_pairs`), or one car's clips at disjoint recorded times."""
    rec = recording_codes(table)
    drive_names, drive_code = np.unique(np.asarray(table.drive_ids, dtype=object).astype(str),
                                        return_inverse=True)
    drive_code = np.where(drive_names[drive_code] == "", -1, drive_code)
    sa, sb = table.start_time[ia], table.start_time[ib]
    tol = params.same_drive_tolerance_s
    disjoint = (sa + table.duration_s[ia] <= sb + tol) | (sb + table.duration_s[ib] <= sa + tol)
    same_car_apart = ((drive_code[ia] >= 0) & (drive_code[ia] == drive_code[ib]) & np.isfinite(sa)
                      & np.isfinite(sb) & disjoint)
    return (rec[ia] == rec[ib]) | same_car_apart


def retimed_pairs(candidates: np.ndarray, table: ClipTable, hashes: np.ndarray, valid: np.ndarray,
                  verified: dict[tuple[int, int], Pair], params: DedupParams) -> list[Pair]:
    """Re-timed copies among hash candidates: pairs whose matching keyframes line up at a rate
    other than 1 (see ``retime_*`` in :class:`DedupParams`), as :class:`Pair` with ``rate``.
    Candidates of footage that holds pictures (:func:`holds_pictures`) already verified densely
    at rate 1 (a whole duplicate, or a partial covering the shorter clip) are skipped; a pair
    found here replaces its rate-1 verification.

    Lines are proposed by a Hough vote over the matching keyframe pairs (distinct B keyframes
    per rate and intercept) and judged by the mean distance of *every* B keyframe the line maps
    inside A, matched or not (:func:`kernels.retime_lines`, all candidates in one parallel
    call): on footage that barely changes, or that repeats frames, a slanted line collects as
    many votes as the true one, but only the true line is close all along. A line is kept when
    its rate is at least ``retime_min_change`` from 1 and it is clearly closer than the best
    rate-1 line; its rate and intercept are then refined (:func:`_refine_line`)."""
    if len(candidates) == 0 or params.retime_margin <= 0:
        return []
    rates = retime_rates(params)
    one = int(np.argmin(np.abs(rates - 1.0)))
    hz = params.keyframe_hz
    pos_a = np.searchsorted(table.rows, candidates[:, 0])
    pos_b = np.searchsorted(table.rows, candidates[:, 1])
    never = never_same_footage(table, pos_a, pos_b, params)
    held = holds_pictures(table, hashes, valid)
    # a dense match at rate 1 of footage that holds pictures stays at rate 1: within a hold
    # every shift matches alike, so a slanted line through the holds fits as well as the true
    # one (a decoder that drops a frame of a 1-fps source lengthens one hold). Dense: a whole
    # duplicate, or a partial covering the shorter clip, with 90 % of its keyframes matched
    held_pair = held[pos_a] | held[pos_b]
    for k in np.flatnonzero(held_pair & ~never).tolist():
        done = verified.get((int(candidates[k, 0]), int(candidates[k, 1])))
        shorter = min(int(table.kf_count[pos_a[k]]), int(table.kf_count[pos_b[k]]))
        held_pair[k] = (done is not None and done.matches >= 0.9 * max(done.overlap, 1)
                        and (done.relation == "duplicate" or done.overlap >= 0.9 * shorter))
    todo = np.flatnonzero(~never & ~held_pair)
    if not len(todo):
        return []
    other = np.abs(np.log(rates)) >= np.log1p(params.retime_min_change)
    kf_start = np.ascontiguousarray(table.kf_start, dtype=np.int64)
    kf_count = np.ascontiguousarray(table.kf_count, dtype=np.int64)
    lines = kernels.retime_lines(hashes, valid, kf_start, kf_count, pos_a[todo].astype(np.int64),
                                 pos_b[todo].astype(np.int64), rates, one, other,
                                 int(params.match_radius), int(params.min_matches))
    r_ok = np.maximum(lines.rate, 0)
    keep = (np.isfinite(lines.mean)  # inf: too few matches, or no line of another rate counts
            & (lines.matched >= params.retime_min_fraction * lines.mapped)
            & (lines.mapped >= params.retime_min_keyframes)
            & (np.abs(rates[r_ok] - 1.0) * lines.mapped >= params.retime_min_drift)
            & (lines.mean <= params.retime_max_mean_bits)
            & (lines.mean * params.retime_margin <= lines.mean_one))
    out = []
    for k in np.flatnonzero(keep).tolist():
        t = int(todo[k])
        a, b = int(candidates[t, 0]), int(candidates[t, 1])
        i, j = int(pos_a[t]), int(pos_b[t])
        sa, na, sb, nb = int(kf_start[i]), int(kf_count[i]), int(kf_start[j]), int(kf_count[j])
        rate, c, first_b, last_b = _refine_line(hashes[sa:sa + na], valid[sa:sa + na],
                                                hashes[sb:sb + nb], valid[sb:sb + nb],
                                                float(rates[lines.rate[k]]), int(lines.intercept[k]),
                                                params)
        first_a, last_a = c + rate * first_b, c + rate * last_b
        slack_a = max(params.whole_slack_s, (1 - params.whole_coverage) * na / hz)
        slack_b = max(params.whole_slack_s, (1 - params.whole_coverage) * nb / hz)
        whole = ((first_b + (nb - 1 - last_b)) / hz <= slack_b + 1e-9
                 and (max(first_a, 0) + max(na - 1 - last_a, 0)) / hz <= slack_a + 1e-9)
        out.append(Pair(a, b, "duplicate" if whole else "partial", float(c / hz),
                        (float(first_a / hz), float(last_a / hz)), (float(first_b / hz), float(last_b / hz)),
                        int(lines.matched[k]), int(lines.mapped[k]), float(lines.mean[k]),
                        float(round(rate, 3))))
    return out


def holds_pictures(table: ClipTable, hashes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``bool[clips]`` by table position: does the clip show one picture on two consecutive
    valid keyframes (identical hashes: a source of fewer frames a second than keyframes, or one
    that repeats frames)?"""
    kf_clip = keyframe_clips(table, len(hashes))
    if len(hashes) < 2:
        return np.zeros(len(table), bool)
    same = np.zeros(len(hashes) - 1, bool)
    for lo in range(0, len(same), 1 << 20):  # bounded temporaries at any region size
        hi = min(lo + (1 << 20), len(same))
        same[lo:hi] = (hashes[lo + 1:hi + 1] == hashes[lo:hi]).all(axis=1)
    same &= (kf_clip[1:] == kf_clip[:-1]) & (kf_clip[1:] >= 0) & valid[1:] & valid[:-1]
    held_rows = np.unique(kf_clip[1:][same])
    return np.isin(table.rows, held_rows)


def _refine_line(ha: np.ndarray, va: np.ndarray, hb: np.ndarray, vb: np.ndarray, rate: float,
                 c0: int, params: DedupParams) -> tuple[float, float, int, int]:
    """A re-timed line ``A index = c0 + rate x B index`` found on the grid of rates, refined by
    least squares over its matched keyframes: (rate, intercept, first and last matched B index).

    Each matched keyframe is placed between A's keyframes by the V through its distances to A's
    keyframes either side of the line (as :func:`subkeyframe_shift` does for a whole
    alignment); where a clip holds one picture over several keyframes the V is flat and the
    position is the middle of the hold (:func:`_held_middle`), on either side."""
    na, nb = len(ha), len(hb)
    d = np.bitwise_count(ha[:, None, :] ^ hb[None, :, :]).sum(axis=2)
    jb = np.arange(nb)
    ia = np.rint(c0 + rate * jb).astype(np.int64)
    on = (ia >= 0) & (ia < na) & vb
    on[on] &= va[ia[on]] & (d[ia[on], jb[on]] <= params.match_radius)
    jj = jb[on]
    i_on = ia[on]
    x = i_on.astype(np.float64)
    inner = (i_on >= 1) & (i_on <= na - 2)
    i0, j0 = i_on[inner], jj[inner]
    dm, d0, dp = (d[i0 - 1, j0].astype(np.float64), d[i0, j0].astype(np.float64),
                  d[i0 + 1, j0].astype(np.float64))
    x[inner] += _v_apex(dm, d0, dp, va[i0 - 1] & va[i0 + 1])
    hold_a, x_held = _held_middle(ha, va, i_on)
    x[hold_a] = x_held[hold_a]
    _, y = _held_middle(hb, vb, jj)  # B's keyframes too: a held picture counts at its middle
    icept = float(np.mean(x - rate * y))
    if len(jj) >= 3:
        slope, fit_c = np.polyfit(y, x, 1)
        if abs(slope / rate - 1.0) <= 0.05:
            rate, icept = float(slope), float(fit_c)
    return rate, icept, int(jj.min()), int(jj.max())


#: identical keyframes either side of a matched one that are taken as one held picture
HOLD_MAX_KEYFRAMES = 4


def _held_middle(codes: np.ndarray, valid: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For keyframes ``idx`` of one clip: which lie in a run of identical keyframes (one picture
    held: a source of fewer frames a second than keyframes, or one that repeats frames), and
    the middle of each one's run (up to :data:`HOLD_MAX_KEYFRAMES` either side; ``idx``
    itself where there is none)."""
    n = len(codes)
    held = np.zeros((2, len(idx)), np.int64)  # identical keyframes before and after
    for side, sign in enumerate((-1, 1)):
        going = np.ones(len(idx), bool)
        for k in range(1, HOLD_MAX_KEYFRAMES + 1):
            at = idx + sign * k
            going &= (at >= 0) & (at < n)
            going[going] &= valid[at[going]] & (codes[at[going]] == codes[idx[going]]).all(axis=1)
            held[side] += going
    return held.sum(axis=0) > 0, idx + (held[1] - held[0]) / 2.0


#: query clips per embedding search and screen block of the reframed stage: the screen reads a
#: few keyframes' crop views of every clip of the block's candidate pairs (~10 kB a clip), so a
#: block of 2,048 clips and 24 neighbours holds at most ~0.5 GB of views
REFRAMED_QUERY_BLOCK = 2048


def _embedding_neighbours(emb_index, store: RegionStore, rows: np.ndarray, n_clips: int,
                          params: DedupParams) -> np.ndarray:
    """Pairs ``int64[p, 2]`` (a < b, unsorted) of each of ``rows`` with its ``reframed_neighbours``
    nearest clips by embedding (cosine >= ``reframed_min_cosine``), one batch search of clips
    that are in the index (``EmbeddingIndex.search_members``: a fixed number of codes scanned a
    query, whatever the region size)."""
    vecs = np.ascontiguousarray(store.read_rows_at("clip_embeddings", rows), dtype=np.float32)
    sims, ids = emb_index.search_members(vecs, rows, min(params.reframed_neighbours + 1, n_clips))
    qa = np.repeat(rows, ids.shape[1])
    ids, sims = ids.ravel(), sims.ravel()
    keep = (ids >= 0) & (ids != qa) & (sims >= params.reframed_min_cosine)
    return np.stack([np.minimum(qa[keep], ids[keep]), np.maximum(qa[keep], ids[keep])], axis=1)


def reframed_candidates(store: RegionStore, table: ClipTable, query_clips: np.ndarray,
                        params: DedupParams) -> np.ndarray:
    """Clip-row pairs ``int64[p, 2]`` (a < b, sorted, unique): each query clip with its
    ``reframed_neighbours`` nearest clips by embedding (cosine >= ``reframed_min_cosine``),
    searched in blocks of :data:`REFRAMED_QUERY_BLOCK` queries; a region of at most
    ``reframed_exhaustive_max_clips`` clips also by probing every clip's crop views."""
    k = params.reframed_neighbours
    if k <= 0 or len(query_clips) == 0 or len(table) < 2:
        return np.zeros((0, 2), np.int64)
    emb_index = ensure_embedding_index(store)
    rows = np.asarray(query_clips, np.int64)
    found = [_embedding_neighbours(emb_index, store, rows[lo:lo + REFRAMED_QUERY_BLOCK], len(table), params)
             for lo in range(0, len(rows), REFRAMED_QUERY_BLOCK)]
    if len(table) <= params.reframed_exhaustive_max_clips:
        found.append(_probe_views(store, table, rows, params))
    out = np.concatenate(found)
    return np.unique(out, axis=0) if len(out) else np.zeros((0, 2), np.int64)


def _pair_keys(pairs: np.ndarray, n_rows: int) -> np.ndarray:
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    return pairs[:, 0] * n_rows + pairs[:, 1]


def _usable_for_reframed(pairs: np.ndarray, table: ClipTable, rec: np.ndarray, known_keys: np.ndarray,
                         n_rows: int) -> np.ndarray:
    """Pairs not already related (``known_keys``, sorted) and not of one recording. Called
    once per query block with the region's known pairs: a binary search into them, not a
    set operation that would sort them again for every block."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if not len(pairs):
        return pairs
    keep = rec[np.searchsorted(table.rows, pairs[:, 0])] != rec[np.searchsorted(table.rows, pairs[:, 1])]
    if len(known_keys):
        keys = _pair_keys(pairs, n_rows)
        at = np.minimum(np.searchsorted(known_keys, keys), len(known_keys) - 1)
        keep &= known_keys[at] != keys
    return pairs[keep]


def screened_reframed_candidates(store: RegionStore, table: ClipTable, query_clips: np.ndarray,
                                 known: set[tuple[int, int]], params: DedupParams) -> np.ndarray:
    """The reframed candidates (:func:`reframed_candidates`) that are not in ``known``, not of
    one recording and pass the view screen (:func:`_screen_keys`): ``int64[p, 2]`` sorted,
    unique, the same pairs as :func:`reframed_pairs` screens. The embedding search runs one
    block of :data:`REFRAMED_QUERY_BLOCK` query clips at a time, keeping only each block's
    usable pairs as int64 keys (8 bytes a pair); the screen then reads every involved clip's
    views once, in row order."""
    if (params.reframed_neighbours <= 0 or len(query_clips) == 0 or len(table) < 2
            or not store.has_array("keyframe_view_phash")
            or store.read_rows("keyframe_view_phash", 0, 0).shape[1] != N_CROP_VIEWS):
        return np.zeros((0, 2), np.int64)
    rec = recording_codes(table)
    n_rows = int(table.rows.max()) + 1
    known_keys = np.unique(np.fromiter((a * n_rows + b for a, b in known if a < n_rows and b < n_rows),
                                       np.int64, count=-1)) if known else np.zeros(0, np.int64)
    rows = np.asarray(query_clips, np.int64)
    if len(table) <= params.reframed_exhaustive_max_clips:  # small: the exhaustive probe too
        found = iter([reframed_candidates(store, table, rows, params)])
    else:
        emb_index = ensure_embedding_index(store)
        step = REFRAMED_QUERY_BLOCK
        found = (_embedding_neighbours(emb_index, store, rows[lo:lo + step], len(table), params)
                 for lo in range(0, len(rows), step))
    keys = []
    for cands in found:  # lazily: one block's neighbours at a time
        keys.append(np.unique(_pair_keys(_usable_for_reframed(cands, table, rec, known_keys, n_rows), n_rows)))
    keys = _sorted_unique(keys)
    return blocks.keys_to_pairs(keys[_screen_keys(store, table, keys, n_rows, params)], n_rows)


def _sorted_unique(parts: list[np.ndarray]) -> np.ndarray:
    """The sorted unique values of int64 arrays ``parts`` (emptied), sorted in place: the
    concatenation, a byte a value and the result, where ``np.unique`` holds a sorted copy too."""
    if not parts:
        return np.zeros(0, np.int64)
    out = np.concatenate(parts)
    parts.clear()
    out.sort()
    if len(out) > 1:
        out = out[np.concatenate([[True], out[1:] != out[:-1]])]
    return out


def _probe_views(store: RegionStore, table: ClipTable, query_rows: np.ndarray,
                 params: DedupParams) -> np.ndarray:
    """Exhaustive reframed candidates of a small region: clip pairs where the crop views of at
    least two of ``reframed_probe_keyframes`` keyframes of one clip (a query) lie within
    ``reframed_radius`` of some keyframe's whole view of the other, in either direction."""
    snap = table.snapshot
    quality = store.read_rows("keyframe_quality", 0, snap.kf_end)
    whole = store.read_rows("keyframe_phash", 0, snap.kf_end)
    kf_clip = keyframe_clips(table, snap.kf_end)
    base_ok = (quality >= QUALITY_FLOOR) & (kf_clip >= 0) & whole.any(axis=1)
    base_rows = np.flatnonzero(base_ok)
    q_pos = np.searchsorted(table.rows, query_rows)
    probes = []
    for i in q_pos.tolist():
        start, count = int(table.kf_start[i]), int(table.kf_count[i])
        ok = np.flatnonzero(base_ok[start:start + count])
        if len(ok):
            pick = np.unique(ok[np.linspace(0, len(ok) - 1, min(len(ok), params.reframed_probe_keyframes)).round().astype(int)])
            probes.append(start + pick)
    if not probes:
        return np.zeros((0, 2), np.int64)
    probe_rows = np.concatenate(probes)
    views = store.read_rows_at("keyframe_view_phash", probe_rows)  # [p, V, 8]
    if params.mirror and store.has_array("keyframe_mirror_phash"):  # the mirrored whole view too
        views = np.concatenate([views, store.read_rows_at("keyframe_mirror_phash", probe_rows)[:, None]], axis=1)
    n_views = views.shape[1]
    queries = np.ascontiguousarray(views.reshape(-1, 8))
    q_kf = np.repeat(probe_rows, n_views)
    live = queries.any(axis=1)
    qi, bi, _ = kernels.hamming_within(np.ascontiguousarray(queries[live]), np.ascontiguousarray(whole[base_rows]),
                                       params.reframed_radius)
    if not len(qi):
        return np.zeros((0, 2), np.int64)
    src_kf = q_kf[live][qi]  # the probed keyframe (its view matched)
    ca, cb = kf_clip[src_kf], kf_clip[base_rows[bi]]
    other = ca != cb
    ca, cb, src_kf = ca[other], cb[other], src_kf[other]
    # at least two distinct probed keyframes of the viewing clip hit the other clip
    n_rows = int(table.rows.max()) + 1
    key = np.unique((ca * n_rows + cb) * snap.kf_end + src_kf)
    clip_key = key // snap.kf_end
    clip_key, hits = np.unique(clip_key, return_counts=True)
    clip_key = clip_key[hits >= 2]
    a, b = clip_key // n_rows, clip_key % n_rows
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)


def reframed_pairs(store: RegionStore, table: ClipTable, candidates: np.ndarray,
                   known: set[tuple[int, int]], params: DedupParams,
                   unscreened: np.ndarray | None = None) -> list[Pair]:
    """Copies reframed past what the 256-bit hash survives: crops and zooms of 60-95 % of the
    frame at any position, picture-in-picture insets and heavy overlays.

    Every keyframe stores the 64-bit pHash of 200 crop views (``engine.ingest.features.crop_view_boxes``:
    what a copy cropped to 60-95 % at each of 5x5 positions hashes). For each candidate pair
    (A, B) not in ``known`` and not of one recording, 426 sequences are aligned: each view of
    A against B's whole view (B is a crop of A), A's whole view against each view of B, and each
    of the smallest views against the same view of the other (a corner covered by an inset or a
    logo leaves the other corners intact), and the two whole views' pHashes. The best alignment
    is judged by the usual rules, stricter: see ``reframed_*`` in :class:`DedupParams`.

    ``candidates`` are first screened (:func:`_screen_views`: a few probe keyframes' views
    against a sample of the other clip's keyframes, a few thousand bit counts a pair), so only
    pairs with evidence pay for the alignments; ``unscreened`` pairs (the hash candidates that
    did not verify: an inset or a logo leaves them partly matching) skip the screen."""
    if (not store.has_array("keyframe_view_phash")
            or store.read_rows("keyframe_view_phash", 0, 0).shape[1] != N_CROP_VIEWS):
        return []  # views never computed, or laid out by another clipdex: never compared
    rec = recording_codes(table)

    n_rows = int(table.rows.max()) + 1 if len(table) else 1
    known_keys = np.array(sorted(a * n_rows + b for a, b in known if a < n_rows and b < n_rows), np.int64)

    def usable(pairs: np.ndarray) -> np.ndarray:
        pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        if not len(pairs):
            return pairs
        ia = np.searchsorted(table.rows, pairs[:, 0])
        ib = np.searchsorted(table.rows, pairs[:, 1])
        keep = rec[ia] != rec[ib]
        if len(known_keys):
            keep &= ~np.isin(pairs[:, 0] * n_rows + pairs[:, 1], known_keys)
        return pairs[keep]

    candidates = usable(candidates)
    if len(candidates):
        candidates = candidates[_screen_views(store, table, candidates, params)]
    extra = usable(unscreened if unscreened is not None else np.zeros((0, 2), np.int64))
    both = np.concatenate([candidates, extra])
    if len(both) == 0:
        return []
    candidates = np.unique(both, axis=0)
    found: list[Pair] = []
    for lo in range(0, len(candidates), REFRAMED_PAIR_BLOCK):  # bounded views in memory
        found += _reframed_block(store, table, candidates[lo:lo + REFRAMED_PAIR_BLOCK], params)
    return found


#: candidate pairs aligned at once by the reframed stage: their clips' keyframes are read with
#: all their crop views (1.6 kB a keyframe, about 32 kB a clip, laid out twice), so a block of
#: 2,048 pairs holds at most ~0.3 GB of views however many candidates a region has
REFRAMED_PAIR_BLOCK = 2048


def _reframed_block(store: RegionStore, table: ClipTable, candidates: np.ndarray,
                    params: DedupParams) -> list[Pair]:
    """:func:`reframed_pairs` for one block of usable, screened, unique candidate pairs:
    each pair is judged on its own, so blocks give the pairs all at once would."""
    snap = table.snapshot
    ia = np.searchsorted(table.rows, candidates[:, 0]).astype(np.int64)
    ib = np.searchsorted(table.rows, candidates[:, 1]).astype(np.int64)
    # only the keyframes of the clips involved, laid out view by view
    clips = np.unique(np.concatenate([ia, ib]))
    kf_rows = span_rows(table.kf_start[clips], table.kf_count[clips])
    n = len(kf_rows)
    local_start = np.concatenate([[0], np.cumsum(table.kf_count[clips])[:-1]]).astype(np.int64)
    whole = store.read_rows_at("keyframe_phash", kf_rows)
    views = store.read_rows_at("keyframe_view_phash", kf_rows)
    quality = store.read_rows_at("keyframe_quality", kf_rows)
    mirror = params.mirror and store.has_array("keyframe_mirror_phash")
    if mirror:  # the mirrored whole view, one more view after the crops
        views = np.concatenate([views, store.read_rows_at("keyframe_mirror_phash", kf_rows)[:, None]], axis=1)
    n_views = views.shape[1]
    codes = np.ascontiguousarray(np.concatenate([whole[None], views.transpose(1, 0, 2)]).reshape(-1, 8))
    valid = np.tile(quality >= QUALITY_FLOOR, n_views + 1) & codes.any(axis=1)
    slot = np.searchsorted(clips, np.arange(len(table)))  # position -> slot among ``clips``
    v_all = n_views + 1
    vstart = (np.arange(v_all)[None, :] * n + local_start[:, None]).ravel().astype(np.int64)
    vcount = np.repeat(table.kf_count[clips], v_all).astype(np.int64)
    sa, sb = slot[ia] * v_all, slot[ib] * v_all
    views_idx = np.arange(1, v_all)
    # same view on both sides: the smallest crops, whose corners leave out an inset or a logo
    same_idx = np.arange(1, N_CROP_VIEWS + 1)[-len(CROP_VIEW_POSITIONS) ** 2:]
    # ... and the whole views' pHashes, which survive a window found a pixel off (the 256-bit
    # hash of a screen recording's window moves ~60 bits for it)
    same_idx = np.concatenate([[0], same_idx])
    pa = np.concatenate([sa[:, None] + views_idx, np.repeat(sa[:, None], n_views, 1), sa[:, None] + same_idx], 1)
    pb = np.concatenate([np.repeat(sb[:, None], n_views, 1), sb[:, None] + views_idx, sb[:, None] + same_idx], 1)
    al = kernels.align_keyframe_pairs(codes, valid, vstart, vcount, pa.ravel().astype(np.int64),
                                      pb.ravel().astype(np.int64), params.reframed_radius, -1)
    per = pa.shape[1]
    matches = al.matches.reshape(-1, per).astype(np.int64)
    dist = al.mean_dist.reshape(-1, per)
    # views that match their own clip's whole view are ambiguous (see reframed_self_fraction)
    ambiguous = _ambiguous_views(codes, valid, vstart, vcount, len(clips), v_all, params)
    view_side = np.concatenate([np.repeat(sa[:, None], n_views, 1) + views_idx,
                                np.repeat(sb[:, None], n_views, 1) + views_idx,
                                sa[:, None] + same_idx], 1)
    overlap = al.overlap.reshape(-1, per)
    usable = (~ambiguous[view_side] & (dist <= params.reframed_max_mean_bits)
              & (matches >= params.reframed_min_overlap_fraction * overlap))
    # a same-view pair needs the view usable on both sides and, crop views, closer (whole views
    # keep the common limit: a window found a pixel off moves them a few bits)
    same_cap = np.where(same_idx == 0, params.reframed_max_mean_bits, params.reframed_same_view_mean_bits)
    usable[:, 2 * n_views:] &= ~ambiguous[sb[:, None] + same_idx] & (dist[:, 2 * n_views:] <= same_cap)
    matches = np.where(usable, matches, 0)
    best = _best_alignment(matches, dist)
    # the mirrored view is the last view: column n_views - 1 (A mirrored) or 2 n_views - 1 (B)
    mirrored = {(int(a), int(b)) for (a, b), col in zip(candidates.tolist(), best.tolist(), strict=True)
                if mirror and col in (n_views - 1, 2 * n_views - 1)}
    pick = np.arange(len(candidates)) * per + best
    chosen = kernels.Alignment(*(np.asarray(x)[pick] for x in al))
    # a moment that matches as well a few keyframes away is not a copy of that moment
    at, away = _shift_specificity(codes, valid, vstart, vcount, pa.ravel()[pick], pb.ravel()[pick],
                                  chosen.shift, params.reframed_shift_gap)
    with np.errstate(invalid="ignore"):  # inf - inf: no keyframe aligned at all
        specific = np.isfinite(at) & (np.isinf(away) | (away - at >= params.reframed_shift_margin_bits))
    chosen = chosen._replace(matches=np.where(specific, chosen.matches, 0).astype(chosen.matches.dtype))
    # the change test reads A's whole-view pHash, in table keyframe rows
    full_phash = np.zeros((snap.kf_end, 8), np.uint8)
    full_phash[kf_rows] = whole
    seq_a, seq_b = pa.ravel()[pick], pb.ravel()[pick]
    found = _relations(candidates, ia, ib, chosen, table, full_phash, params,
                       min_matches=params.reframed_min_matches,
                       min_fraction=params.reframed_min_fraction,
                       seqs=(codes, valid, vstart[seq_a], vcount[seq_a], vstart[seq_b], vcount[seq_b]))
    return [replace(p, mirrored=True) if (p.a, p.b) in mirrored else p for p in found]


N_VIEW_WORDS = N_CROP_VIEWS  # one 64-bit word per crop view


def _spread(start: np.ndarray, ok: np.ndarray, kf_start: np.ndarray, kf_count: np.ndarray,
            k: int) -> np.ndarray:
    """Per clip, up to ``k`` keyframe rows spread evenly over its valid keyframes (``ok`` is
    indexed by ``row - start``): ``int64[clips, k]``, -1 where the clip has fewer. Clips with
    the same number of valid keyframes share one pick, so the work is vectorised per count."""
    out = np.full((len(kf_start), k), -1, np.int64)
    if not len(kf_start):
        return out
    rows = span_rows(kf_start, kf_count)
    good = ok[rows - start]
    flat = rows[good]  # each clip's valid keyframe rows, clip after clip
    cum = np.concatenate([[0], np.cumsum(good, dtype=np.int64)])
    ends = np.cumsum(kf_count)
    n_valid = cum[ends] - cum[ends - kf_count]
    offset = np.cumsum(n_valid) - n_valid
    for m in np.unique(n_valid[n_valid > 0]).tolist():
        pick = np.unique(np.linspace(0, m - 1, min(m, k)).round().astype(np.int64))
        clips = np.flatnonzero(n_valid == m)
        out[clips[:, None], np.arange(len(pick))[None, :]] = flat[offset[clips][:, None] + pick[None, :]]
    return out


#: clips whose probe views are read at once by the screen (about 10 kB a clip)
SCREEN_CLIP_CHUNK = 8192


def _screen_views(store: RegionStore, table: ClipTable, pairs: np.ndarray, params: DedupParams,
                  probes: int = 6, sample: int = 24, chunk: int = 500) -> np.ndarray:
    """Which candidate pairs (``int64[p, 2]`` clip rows) show reframed evidence worth aligning:
    :func:`_screen_keys` on their keys, ``bool[p]`` in the pairs' order."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(0, bool)
    n_rows = int(max(int(table.rows.max()) + 1, int(pairs.max()) + 1))
    keys = _pair_keys(pairs, n_rows)
    order = np.argsort(keys, kind="stable")
    unique, inverse = np.unique(keys[order], return_inverse=True)
    ok = _screen_keys(store, table, unique, n_rows, params, probes, sample, chunk)
    out = np.empty(len(pairs), bool)
    out[order] = ok[inverse]
    return out


#: candidate pair keys decoded at once by the screen (16 bytes a pair while decoded)
SCREEN_KEY_SLICE = 1 << 22


def _screen_keys(store: RegionStore, table: ClipTable, keys: np.ndarray, n_rows: int,
                 params: DedupParams, probes: int = 6, sample: int = 24, chunk: int = 500) -> np.ndarray:
    """Which candidate pairs show reframed evidence worth aligning: in either direction, at
    least two of ``probes`` keyframes spread over one clip (all of them for a clip with fewer)
    have a crop view within ``reframed_radius`` of one of ``sample`` keyframes spread over the
    other clip. ``keys``: sorted unique pair keys ``a * n_rows + b`` (clip rows, a < b);
    returns ``bool[p]``.

    Reads stay sequential and bounded at any number of pairs: each involved clip's whole-view
    sample and first probe are read once, :data:`SCREEN_CLIP_CHUNK` clips at a time in row
    order; then, for each direction, the pairs are taken in the order of the viewing clip and
    that clip's probe views are read chunk by chunk (only clips that have views: a clip
    without them, views never computed or a picture too small, only looks one way, and a pair
    where neither has them is dropped unread). Memory a pair stays at its key, one byte of
    result and a 4- or 8-byte place in the order by the second clip: the two clips' rows are
    decoded from the keys a slice or a chunk at a time (a region of 10M clips and 24
    neighbours a clip screens ~200M pairs)."""
    keys = np.asarray(keys, np.int64)
    out = np.zeros(len(keys), bool)
    if not len(keys):
        return out
    n_clips = len(table)
    step = SCREEN_CLIP_CHUNK

    def positions(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # table positions of a, b
        a = k // n_rows
        return np.searchsorted(table.rows, a), np.searchsorted(table.rows, k - a * n_rows)

    involved = np.zeros(n_clips, bool)
    n_chunks = -(-n_clips // step)
    b_chunk = np.empty(len(keys), np.int32 if n_chunks < 2**31 else np.int64)
    for k0 in range(0, len(keys), SCREEN_KEY_SLICE):
        ia, ib = positions(keys[k0:k0 + SCREEN_KEY_SLICE])
        involved[ia] = involved[ib] = True
        b_chunk[k0:k0 + len(ib)] = ib // step
    # the pairs grouped by the chunk of their second clip (the first is the keys' own order)
    by_b = np.argsort(b_chunk, kind="stable").astype(np.int32 if len(keys) < 2**31 else np.int64)
    b_ends = np.searchsorted(b_chunk[by_b], np.arange(1, n_chunks + 1))
    del b_chunk
    probe_rows = np.full((n_clips, probes), -1, np.int64)
    whole = np.zeros((n_clips, sample), np.uint64)
    base_ok = np.zeros((n_clips, sample), bool)
    has_views = np.zeros(n_clips, bool)
    for lo in range(0, n_clips, step):  # per-clip summaries, in row order
        clips = lo + np.flatnonzero(involved[lo:lo + step])
        kf_rows = span_rows(table.kf_start[clips], table.kf_count[clips])
        if not len(kf_rows):
            continue
        r0, r1 = int(kf_rows.min()), int(kf_rows.max()) + 1
        ok = np.zeros(r1 - r0, bool)
        ok[kf_rows - r0] = store.read_rows_at("keyframe_quality", kf_rows) >= QUALITY_FLOOR
        probe_rows[clips] = _spread(r0, ok, table.kf_start[clips], table.kf_count[clips], probes)
        base = _spread(r0, ok, table.kf_start[clips], table.kf_count[clips], sample)
        have = base >= 0
        base_ok[clips] = have
        sampled = np.zeros(base.shape, np.uint64)
        sampled[have] = store.read_rows_at("keyframe_phash", base[have]).view(np.uint64)[:, 0]
        whole[clips] = sampled
        first = probe_rows[clips, 0]
        has_views[clips[first >= 0]] = store.read_rows_at("keyframe_view_phash", first[first >= 0]).any(axis=(1, 2))
    del involved
    n_probe = (probe_rows >= 0).sum(axis=1)
    need = np.minimum(2, np.maximum(n_probe, 1))
    mirror = params.mirror and store.has_array("keyframe_mirror_phash")
    for first_views in (True, False):  # the first clip's views against the second's keyframes, then back
        for c, lo in enumerate(range(0, n_clips, step)):
            if first_views:  # pairs whose first clip lies in this chunk: a run of the sorted keys
                hi_row = int(table.rows[min(lo + step, n_clips) - 1]) + 1
                e0, e1 = np.searchsorted(keys, [int(table.rows[lo]) * n_rows, hi_row * n_rows])
                at = np.arange(e0, e1)
            else:
                at = by_b[(b_ends[c - 1] if c else 0):b_ends[c]].astype(np.int64)
            if not len(at):
                continue
            ia, ib = positions(keys[at])
            xs, ys = (ia, ib) if first_views else (ib, ia)
            look = has_views[xs]
            at, xs, ys = at[look], xs[look], ys[look]
            if not len(at):
                continue
            sort = np.argsort(xs, kind="stable")
            at, xs, ys = at[sort], xs[sort], ys[sort]
            viewing = np.unique(xs)
            views = _probe_views_of(store, probe_rows[viewing], mirror)  # [clips, probes, V]
            vpos = np.searchsorted(viewing, xs)
            for c0 in range(0, len(at), chunk):
                xv, xm, ym = views[vpos[c0:c0 + chunk]], xs[c0:c0 + chunk], ys[c0:c0 + chunk]
                d = np.bitwise_count(xv[:, :, :, None] ^ whole[ym][:, None, None, :])
                hit = ((d <= params.reframed_radius) & (xv != 0)[:, :, :, None]
                       & base_ok[ym][:, None, None, :]).any(axis=(2, 3))
                out[at[c0:c0 + chunk]] |= hit.sum(axis=1) >= need[xm]
    return out


def _probe_views_of(store: RegionStore, probe_rows: np.ndarray, mirror: bool) -> np.ndarray:
    """``uint64[clips, probes, V]``: the crop views (and, with ``mirror``, the mirrored whole
    view) of each clip's probe keyframes; zeros where a clip has fewer probes."""
    n, probes = probe_rows.shape
    rows = probe_rows.ravel()
    at_rows = np.flatnonzero(rows >= 0)
    views = np.zeros((n * probes, N_VIEW_WORDS + int(mirror)), np.uint64)
    for r0 in range(0, len(at_rows), 16384):  # bounded reads
        part = at_rows[r0:r0 + 16384]
        views[part, :N_VIEW_WORDS] = store.read_rows_at("keyframe_view_phash", rows[part]).view(np.uint64)[..., 0]
        if mirror:  # the mirrored whole view too
            views[part, N_VIEW_WORDS] = store.read_rows_at("keyframe_mirror_phash", rows[part]).view(np.uint64)[:, 0]
    return views.reshape(n, probes, -1)


def _shift_specificity(codes: np.ndarray, valid: np.ndarray, vstart: np.ndarray, vcount: np.ndarray,
                       seq_a: np.ndarray, seq_b: np.ndarray, shift: np.ndarray,
                       gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of sequences: the mean distance of all keyframes aligned at ``shift`` (B's j
    against A's j + shift), and the least such mean at any shift at least ``gap`` keyframes
    away that aligns at least half as many keyframes (inf if none)."""
    at = np.full(len(seq_a), np.inf)
    away = np.full(len(seq_a), np.inf)
    for p in range(len(seq_a)):
        a0, na = int(vstart[seq_a[p]]), int(vcount[seq_a[p]])
        b0, nb = int(vstart[seq_b[p]]), int(vcount[seq_b[p]])
        if na == 0 or nb == 0:
            continue
        d = np.bitwise_count(codes[a0:a0 + na, None, :] ^ codes[None, b0:b0 + nb, :]).sum(axis=2)
        ok = valid[a0:a0 + na, None] & valid[None, b0:b0 + nb]
        i, j = np.nonzero(ok)
        if not len(i):
            continue
        k = i - j + nb - 1
        n = np.bincount(k, minlength=na + nb - 1)
        total = np.bincount(k, weights=d[i, j], minlength=na + nb - 1)
        mean = np.where(n > 0, total / np.maximum(n, 1), np.inf)
        shifts = np.arange(-(nb - 1), na)
        here = int(shift[p]) + nb - 1
        at[p] = mean[here]
        far = (np.abs(shifts - int(shift[p])) >= gap) & (n * 2 >= max(n[here], 1))
        if far.any():
            away[p] = mean[far].min()
    return at, away


def _ambiguous_views(codes: np.ndarray, valid: np.ndarray, vstart: np.ndarray, vcount: np.ndarray,
                     n_clips: int, v_all: int, params: DedupParams) -> np.ndarray:
    """Per virtual sequence (clip slot x view), is the view ambiguous: does it match its own
    clip's whole view at some shift for at least ``reframed_self_fraction`` of the aligned
    keyframes? Whole views (view 0) are never ambiguous."""
    base = np.repeat(np.arange(n_clips) * v_all, v_all - 1)
    view = base + np.tile(np.arange(1, v_all), n_clips)
    al = kernels.align_keyframe_pairs(codes, valid, vstart, vcount, view.astype(np.int64),
                                      base.astype(np.int64), params.reframed_radius, -1)
    out = np.zeros(n_clips * v_all, bool)
    out[view] = al.matches >= params.reframed_self_fraction * np.maximum(al.overlap, 1)
    out[view] &= al.matches > 0
    return out


def _best_alignment(matches: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Per row, the column with the most matches, ties to the smaller mean distance."""
    score = matches * 1000.0 - np.minimum(dist, 999.0)
    return np.argmax(score, axis=1)


def recording_pairs(table: ClipTable, query_clips: np.ndarray, params: DedupParams) -> list[Pair]:
    """Pairs known from the recording itself, not matched: clips of one recording whose spans
    overlap (cut with different splits, or with an overlap), with the exact offset. Disjoint
    spans of one recording are never paired. ``matches`` and ``overlap`` count the keyframe
    steps of the shared span; ``mean_dist`` is 0 (the same frames)."""
    if len(table) == 0 or len(query_clips) == 0:
        return []
    rec = recording_codes(table)
    start = np.asarray(table.source_offset_s, np.float64)
    end = start + np.asarray(table.duration_s, np.float64)
    is_query = np.isin(table.rows, np.asarray(query_clips, np.int64))
    order = np.lexsort((start, rec))
    step = 1.0 / params.keyframe_hz
    out: list[Pair] = []
    bounds = np.flatnonzero(np.diff(rec[order])) + 1
    for members in np.split(order, bounds):
        if len(members) < 2 or not is_query[members].any():
            continue
        for x, i in enumerate(members.tolist()):  # sorted by start: stop at the first that starts later
            for j in members[x + 1:].tolist():
                if start[j] >= end[i] - 1e-6:
                    break
                if not (is_query[i] or is_query[j]):
                    continue
                ra, rb = int(table.rows[i]), int(table.rows[j])
                a, b = (i, j) if ra < rb else (j, i)
                lo, hi = max(start[a], start[b]), min(end[a], end[b])
                if hi - lo < step:
                    continue
                same = abs(start[a] - start[b]) <= 1e-6 and abs(end[a] - end[b]) <= 1e-6
                n = int(round((hi - lo) * params.keyframe_hz))
                out.append(Pair(min(ra, rb), max(ra, rb), "duplicate" if same else "partial",
                                float(start[b] - start[a]),
                                (float(lo - start[a]), float(hi - start[a])),
                                (float(lo - start[b]), float(hi - start[b])), n, n, 0.0))
    return out


def same_recording_pairs(table: ClipTable, hashes: np.ndarray, load_phash: Callable[[], np.ndarray],
                         embeddings_of: Callable[[np.ndarray], np.ndarray], query_clips: np.ndarray,
                         known: set[tuple[int, int]], params: DedupParams) -> list[Pair]:
    """Whole duplicates that the 256-bit hashes miss: the same recording reframed.

    Only clips that carry a recorded start time take part. Candidates are pairs with a query
    clip whose start times lie within ``same_recording_s`` and whose durations agree (found by
    sorting start times: a few candidates per clip even at millions of clips); each must then
    agree in its clip embedding and, keyframe by keyframe at the offset the start times give,
    in its 64-bit pHash. ``load_phash()`` returns the region's keyframe pHashes (called only when
    some candidate passes the embedding test); ``embeddings_of(rows)`` reads the clip embeddings
    of sorted clip rows (only the candidates'); pairs in ``known`` are skipped. A pair's
    ``matches`` counts keyframes within the pHash limit; ``mean_dist`` is, as for every pair, the
    mean 256-bit distance of the aligned keyframes (large here: that is why the hashes missed it)."""
    if params.same_recording_s <= 0 or len(query_clips) == 0:
        return []
    start = np.asarray(table.start_time, np.float64)
    has = has_recorded_time(start)
    idx = np.flatnonzero(has)
    if len(idx) < 2:
        return []
    order = idx[np.argsort(start[idx], kind="stable")]
    sorted_start = start[order]
    q = np.searchsorted(table.rows, query_clips)
    q = q[has[q]]
    tol = params.same_recording_s
    lo = np.searchsorted(sorted_start, start[q] - tol, side="left")
    hi = np.searchsorted(sorted_start, start[q] + tol, side="right")
    counts = hi - lo
    qi = np.repeat(q, counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    cj = order[np.repeat(lo, counts) + within]
    keep = (qi != cj) & (np.abs(table.duration_s[qi] - table.duration_s[cj]) <= params.whole_slack_s)
    ia, ib = np.minimum(qi, cj)[keep], np.maximum(qi, cj)[keep]
    rec = recording_codes(table)
    keep = rec[ia] != rec[ib]  # one recording's pieces are related by their spans
    ia, ib = ia[keep], ib[keep]
    if len(ia) == 0:
        return []
    uniq = np.unique(np.stack([ia, ib], axis=1), axis=0)
    ia, ib = uniq[:, 0], uniq[:, 1]
    involved = np.unique(np.concatenate([ia, ib]))
    vec = embeddings_of(table.rows[involved])
    at = np.searchsorted(involved, ia), np.searchsorted(involved, ib)
    cos = np.einsum("ij,ij->i", vec[at[0]], vec[at[1]])
    step = 1.0 / params.keyframe_hz
    out: list[Pair] = []
    if not (cos >= params.same_recording_cosine).any():
        return out
    phash = load_phash()
    for a, b, c in zip(ia.tolist(), ib.tolist(), cos.tolist(), strict=True):
        ra, rb = int(table.rows[a]), int(table.rows[b])
        if c < params.same_recording_cosine or (ra, rb) in known:
            continue
        # b's t=0 lies at a's time start_b - start_a, known to the start times' precision:
        # try every keyframe shift that allows and keep the best
        delta = float(start[b] - start[a])
        ka, kb = int(table.kf_start[a]), int(table.kf_start[b])
        na, nb = int(table.kf_count[a]), int(table.kf_count[b])
        best = None
        for shift in range(int(np.floor((delta - tol) / step)), int(np.ceil((delta + tol) / step)) + 1):
            first_a, last_a = max(0, shift), min(na, nb + shift) - 1
            if last_a - first_a + 1 < params.min_matches:
                continue
            bits = np.bitwise_count(phash[ka + first_a: ka + last_a + 1]
                                    ^ phash[kb + first_a - shift: kb + last_a - shift + 1]).sum(axis=1)
            if best is None or bits.mean() < best[0].mean():
                best = (bits, shift, first_a, last_a)
        if best is None or best[0].mean() > params.same_recording_phash_bits:
            continue
        bits, shift, first_a, last_a = best
        matches = int((bits <= params.same_recording_phash_bits).sum())
        if matches < params.same_recording_coverage * len(bits):  # e.g. a splice: half of it
            continue
        pdq = np.bitwise_count(hashes[ka + first_a: ka + last_a + 1]
                               ^ hashes[kb + first_a - shift: kb + last_a - shift + 1]).sum(axis=1)
        # the offset: the recorded times' difference where it agrees with the aligned shift (as
        # for every pair, recorded_offset_tolerance_s), exact instead of quantised to a keyframe
        offset = delta if abs(delta - shift * step) <= params.recorded_offset_tolerance_s else shift * step
        out.append(Pair(ra, rb, "duplicate", offset, (first_a * step, last_a * step),
                        ((first_a - shift) * step, (last_a - shift) * step), matches,
                        last_a - first_a + 1, float(pdq.mean())))
    return out


def run_dedup(store: RegionStore, params: DedupParams | None = None, *, full: bool = False,
              progress: Callable[[str], None] | None = None) -> DedupResult:
    """Deduplicate the region (incrementally unless ``full``) and store pairs and groups."""
    params = params or DedupParams()
    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    table = store.clip_table()
    snap = table.snapshot
    if len(table) == 0:
        return DedupResult(store.region.name, 0, 0, 0, [], {}, 0, 0.0)
    hashes = store.read_rows("keyframe_hashes", 0, snap.kf_end)
    valid = store.read_rows("keyframe_quality", 0, snap.kf_end) >= QUALITY_FLOOR
    stages["load"] = time.perf_counter() - t0
    done_end = 0 if full else int(store.meta("dedup_clip_end", "0"))
    query_clips = table.rows[table.rows >= done_end]
    if progress:
        progress(f"candidates for {len(query_clips)} clips")
    t = time.perf_counter()
    info: dict = {}
    cand = candidate_pairs(store, table, hashes, valid, query_clips, params, stats=info)
    stages["candidates"] = time.perf_counter() - t
    if progress:
        progress(f"verifying {len(cand)} candidate pairs")
    t = time.perf_counter()
    new_pairs = verify_pairs(cand, table, hashes, valid, params)
    t_retime = time.perf_counter()
    verified_at_one = {(p.a, p.b): p for p in new_pairs}
    retimed = retimed_pairs(cand, table, hashes, valid, verified_at_one, params)
    if retimed:
        redone = {(p.a, p.b) for p in retimed}
        new_pairs = [p for p in new_pairs if (p.a, p.b) not in redone] + retimed
    stages["retime"] = time.perf_counter() - t_retime
    new_pairs += recording_pairs(table, query_clips, params)
    stages["verify"] = time.perf_counter() - t - stages["retime"]
    if params.reframed_neighbours > 0:
        t = time.perf_counter()
        if progress:
            progress("reframed copies")
        verified = {(p.a, p.b) for p in new_pairs}
        n_rows = int(table.rows.max()) + 1
        verified_keys = np.array(sorted(a * n_rows + b for a, b in verified), np.int64)
        failed = cand[~np.isin(_pair_keys(cand, n_rows), verified_keys)] if len(cand) else cand
        known = verified | ({(a, b) for a, b, *_ in store.pairs()} if not full else set())
        # embedding neighbours found and screened block by block; the hash candidates that did
        # not verify skip the screen (an inset or a logo leaves them partly matching)
        screened = screened_reframed_candidates(store, table, query_clips, known, params)
        new_pairs += reframed_pairs(store, table, np.zeros((0, 2), np.int64), known, params,
                                    unscreened=np.concatenate([screened, failed]))
        stages["reframed"] = time.perf_counter() - t
    old = [] if full else [Pair.from_row(r) for r in store.pairs()]
    if params.same_recording_s > 0:
        t = time.perf_counter()
        # pairs verified by hashes, in this run or earlier ones, keep their hash evidence
        known = {(p.a, p.b) for p in new_pairs} | {(p.a, p.b) for p in old}
        new_pairs += same_recording_pairs(table, hashes,
                                          lambda: store.read_rows("keyframe_phash", 0, snap.kf_end),
                                          lambda rows: store.read_rows_at("clip_embeddings", rows),
                                          query_clips, known, params)
        stages["same_recording"] = time.perf_counter() - t
    t = time.perf_counter()
    active = set(table.rows.tolist())
    rec, pos = recording_codes(table), table.position()
    off, dur = table.source_offset_s, table.duration_s

    def apart(p: Pair) -> bool:  # disjoint pieces of one recording (a pair stored by older rules)
        i, j = pos[p.a], pos[p.b]
        return bool(rec[i] == rec[j] and (off[i] + dur[i] <= off[j] + 1e-6 or off[j] + dur[j] <= off[i] + 1e-6))

    by_key = {(p.a, p.b): p for p in old if p.a in active and p.b in active and not apart(p)}
    for p in new_pairs:
        by_key[(p.a, p.b)] = p
    all_pairs = sorted(by_key.values(), key=lambda p: (p.a, p.b))
    groups = elect_representatives(
        duplicate_groups(all_pairs), table
    )
    all_pairs = group_consistent(all_pairs, groups, table, params)
    kept = {(p.a, p.b) for p in all_pairs}
    dropped_old = any((p.a, p.b) not in kept for p in old)
    new_pairs = [p for p in new_pairs if (p.a, p.b) in kept]
    # incremental: old pairs stay as stored, only the new ones are written; groups are rebuilt
    incremental = not full and done_end > 0 and not dropped_old
    with store.writer("clipdex dedup"):
        store.replace_dedup([p.as_row() for p in (new_pairs if incremental else all_pairs)], group_rows(groups),
                            incremental=incremental, clip_end=snap.clip_end)
    stages["groups_store"] = time.perf_counter() - t
    # stored unfiltered (a later ingest may bring the edit that explains a pair), shown filtered
    visible = shown_pairs(all_pairs, table, params)
    shown = {(p.a, p.b) for p in visible}
    return DedupResult(store.region.name, len(table), len(query_clips), len(cand), visible, groups,
                       sum((p.a, p.b) in shown for p in new_pairs), time.perf_counter() - t0, stages,
                       info.get("method", ""), info.get("keyframe_pairs", 0), info)


def load_dedup(store: RegionStore, table: ClipTable | None = None,
               params: DedupParams | None = None) -> tuple[list[Pair], dict[int, list[int]]]:
    """Stored pairs as shown and groups (representative -> members), once per read snapshot
    (:func:`engine.matching.relations.shown_view`)."""
    return shown_view(store, table, params or DedupParams())
