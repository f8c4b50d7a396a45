"""Temporal alignment of keyframe-hash sequences for batches of clip pairs.

For a pair (A, B) with ``na`` and ``nb`` keyframes, shift ``s`` aligns keyframe ``j`` of B with
keyframe ``i = j + s`` of A, for every integer ``s`` in ``[-(nb-1), na-1]`` with ``|s| <=
max_shift`` (``max_shift < 0``: unlimited). At shift ``s``:

* ``overlap(s)``: aligned positions (i, j) where both keyframes are valid;
* ``matches(s)``: those with ``hamming(A[i], B[j]) <= radius``.

Matching is strict (exact shift, no +-1 keyframe jitter tolerance): the engine handles jitter by
its sampling. The best shift has the most matches; ties go to the smaller mean distance over the
matches (compared exactly as integer cross-products), then the smaller ``|s|``, then the smaller
``s``. A pair with no match at all therefore reports the allowed shift closest to 0 (0 itself
when both clips have keyframes), its overlap, ``first_a = last_a = -1`` and ``mean_dist = 0``.
A pair where a clip has no keyframes reports shift 0 and zeros. ``first_a``/``last_a`` are A's
indices (within the clip) of the first and last matched position; B's are ``first_a - shift``
and ``last_a - shift``.
"""

from typing import NamedTuple

import numba
import numpy as np

from ._config import INT_JIT, PARALLEL
from ._validate import check_clip_pairs, check_int
from .hamming import popcount64

__all__ = ["Alignment", "align_keyframe_pairs"]

#: pairs per parallel work item (each item owns its distance scratch)
PAIRS_PER_BLOCK = 64


class Alignment(NamedTuple):
    """Best alignment of each pair (arrays of length P)."""

    shift: np.ndarray  # int32: i_A = j_B + shift
    matches: np.ndarray  # int32: matched positions at the best shift
    overlap: np.ndarray  # int32: positions where both keyframes are valid
    first_a: np.ndarray  # int32: A index of the first matched position, -1 if none
    last_a: np.ndarray  # int32: A index of the last matched position, -1 if none
    mean_dist: np.ndarray  # float32: mean Hamming distance over the matches, 0 if none


@numba.njit(**INT_JIT)
def _better(m1, sum1, s1, m2, sum2, s2):
    """Is (m1 matches, distance sum1, shift s1) better than the current (m2, sum2, s2)?"""
    if m1 != m2:
        return m1 > m2
    # smaller mean distance: sum1/m1 < sum2/m2  <=>  sum1*m2 < sum2*m1 (both m > 0 here)
    if m1 > 0 and sum1 * m2 != sum2 * m1:
        return sum1 * m2 < sum2 * m1
    if abs(s1) != abs(s2):
        return abs(s1) < abs(s2)
    return s1 < s2


@numba.njit(**INT_JIT, **PARALLEL)
def _align(words, valid, clip_start, clip_count, pair_a, pair_b, radius, max_shift):
    n_pairs = pair_a.shape[0]
    n_words = words.shape[1]
    shift = np.zeros(n_pairs, np.int32)
    matches = np.zeros(n_pairs, np.int32)
    overlap = np.zeros(n_pairs, np.int32)
    first_a = np.full(n_pairs, -1, np.int32)
    last_a = np.full(n_pairs, -1, np.int32)
    mean_dist = np.zeros(n_pairs, np.float32)
    max_len = 0
    for c in range(clip_count.shape[0]):
        max_len = max(max_len, clip_count[c])
    n_blocks = (n_pairs + PAIRS_PER_BLOCK - 1) // PAIRS_PER_BLOCK
    for blk in numba.prange(n_blocks):
        dist = np.empty(max_len * max_len, np.int64)  # -1: an invalid keyframe on either side
        for p in range(blk * PAIRS_PER_BLOCK, min(n_pairs, (blk + 1) * PAIRS_PER_BLOCK)):
            a0, na = clip_start[pair_a[p]], clip_count[pair_a[p]]
            b0, nb = clip_start[pair_b[p]], clip_count[pair_b[p]]
            if na == 0 or nb == 0:
                continue
            for i in range(na):
                for j in range(nb):
                    if valid[a0 + i] and valid[b0 + j]:
                        d = np.uint64(0)
                        for w in range(n_words):
                            d += popcount64(words[a0 + i, w] ^ words[b0 + j, w])
                        dist[i * nb + j] = np.int64(d)
                    else:
                        dist[i * nb + j] = -1
            lo, hi = -(nb - 1), na - 1
            if max_shift >= 0:
                lo, hi = max(lo, -max_shift), min(hi, max_shift)
            best_m, best_sum, best_s, best_ov, best_first, best_last = -1, 0, 0, 0, -1, -1
            for s in range(lo, hi + 1):
                j_lo, j_hi = max(0, -s), min(nb, na - s)
                ov, m, dsum, first, last = 0, 0, 0, -1, -1
                for j in range(j_lo, j_hi):
                    d = dist[(j + s) * nb + j]
                    if d >= 0:
                        ov += 1
                        if d <= radius:
                            m += 1
                            dsum += d
                            if first < 0:
                                first = j + s
                            last = j + s
                if best_m < 0 or _better(m, dsum, s, best_m, best_sum, best_s):
                    best_m, best_sum, best_s = m, dsum, s
                    best_ov, best_first, best_last = ov, first, last
            if best_m < 0:  # no allowed shift (cannot happen with max_shift >= 0)
                continue
            shift[p] = best_s
            matches[p] = best_m
            overlap[p] = best_ov
            first_a[p] = best_first
            last_a[p] = best_last
            mean_dist[p] = best_sum / best_m if best_m > 0 else 0.0
    return shift, matches, overlap, first_a, last_a, mean_dist


def align_keyframe_pairs(hashes: np.ndarray, valid: np.ndarray, clip_start: np.ndarray,
                         clip_count: np.ndarray, pair_a: np.ndarray, pair_b: np.ndarray,
                         radius: int, max_shift: int) -> Alignment:
    """Best temporal shift of each clip pair (see the module doc for the exact rules)."""
    check_clip_pairs(hashes, valid, clip_start, clip_count, pair_a, pair_b)
    radius = check_int("radius", radius)
    max_shift = check_int("max_shift", max_shift)
    return Alignment(*_align(hashes.view(np.uint64), valid, clip_start, clip_count, pair_a,
                             pair_b, radius, max_shift))
