"""Re-timed line search between keyframe-hash sequences, for batches of clip pairs.

For a pair (A, B) with ``na`` and ``nb`` keyframes, a *line* of rate ``rates[r]`` and integer
intercept ``c`` maps keyframe ``j`` of B to keyframe ``rint(c + rates[r] * j)`` of A. The
search, per pair:

* **Matches**: positions (i, j) with both keyframes valid and ``hamming(A[i], B[j]) <= radius``.
  A pair with fewer than ``min_matches`` matches has no line (``n_matches`` says how many).
* **Hough vote**: each match votes, at every rate, for intercept ``rint(i - rates[r] * j)``
  (one vote per B keyframe: for a fixed rate and ``j`` each ``i`` gives its own intercept).
  Intercepts run from the smallest to the largest voted over every rate and match.
* **Proposals**: per rate, the 3 best-voted intercepts, ties to the smaller intercept (the
  first 3 of a stable sort by votes, descending), kept when they hold ``min_matches`` votes.
* **Judging**: a line's *mapped* keyframes are the valid B keyframes it maps inside A onto a
  valid A keyframe; its mean distance is their mean Hamming distance, matched or not, and it
  counts when ``mapped >= max(min_matches, 1)``. Among a set of rates, the best line is the
  first of the smallest mean distance in rate order, then proposal order.

Reported per pair: the number of matches, the best line's mean distance at rate index ``one``
(``inf``: none), and the best line over the rates flagged in ``other``: its mean distance
(``inf``: none), mapped and matched keyframe counts, rate index and intercept (-1 and 0: none).
"""

from typing import NamedTuple

import numba
import numpy as np

from ._config import INT_JIT, PARALLEL
from ._validate import check_array, check_clip_pairs, check_int
from .hamming import popcount64

__all__ = ["RetimeLines", "retime_lines"]

#: pairs per parallel work item (each item owns its scratch)
PAIRS_PER_BLOCK = 64

#: best-voted intercepts proposed per rate
PROPOSALS_PER_RATE = 3


class RetimeLines(NamedTuple):
    """Best re-timed line of each pair (arrays of length P)."""

    n_matches: np.ndarray  # int32: matching keyframe positions
    mean_one: np.ndarray  # float64: best line's mean distance at rate ``one`` (inf: none)
    mean: np.ndarray  # float64: best line's mean distance over the ``other`` rates (inf: none)
    mapped: np.ndarray  # int32: B keyframes that line maps onto valid A keyframes
    matched: np.ndarray  # int32: ... of which within the radius
    rate: np.ndarray  # int32: that line's rate index (-1: none)
    intercept: np.ndarray  # int64: that line's intercept


@numba.njit(**INT_JIT)
def _best_line(dist, votes, width, lo, valid, a0, na, b0, nb, rates, rate_on, radius, min_matches):
    """(mean, mapped, matched, rate index, intercept) of the best proposed line over the rates
    flagged in ``rate_on`` (see the module doc); mean ``inf`` and rate -1 when none counts."""
    best_mean, best_mapped, best_matched, best_r, best_c = np.inf, 0, 0, -1, 0
    need = max(min_matches, 1)
    top = np.empty(PROPOSALS_PER_RATE, np.int64)
    for r in range(rates.shape[0]):
        if not rate_on[r]:
            continue
        row = r * width
        n_top = 0
        for k in range(width):  # the best-voted intercepts, ties to the smaller one
            v = votes[row + k]
            at = n_top
            while at > 0 and votes[row + top[at - 1]] < v:
                at -= 1
            if at < PROPOSALS_PER_RATE:
                for m in range(min(n_top, PROPOSALS_PER_RATE - 1), at, -1):
                    top[m] = top[m - 1]
                top[at] = k
                n_top = min(n_top + 1, PROPOSALS_PER_RATE)
        for t in range(n_top):
            k = top[t]
            if votes[row + k] < min_matches:
                continue
            c = lo + k
            mapped, total, matched = 0, 0, 0
            for j in range(nb):
                if not valid[b0 + j]:
                    continue
                i = np.int64(np.rint(c + rates[r] * j))
                if i < 0 or i >= na or not valid[a0 + i]:
                    continue
                d = dist[i * nb + j]
                mapped += 1
                total += d
                if d <= radius:
                    matched += 1
            if mapped < need:
                continue
            mean = total / mapped
            if mean < best_mean:
                best_mean, best_mapped, best_matched, best_r, best_c = mean, mapped, matched, r, c
    return best_mean, best_mapped, best_matched, best_r, best_c


@numba.njit(**INT_JIT, **PARALLEL)
def _lines(words, valid, clip_start, clip_count, pair_a, pair_b, rates, one, other, radius,
           min_matches):
    n_pairs = pair_a.shape[0]
    n_words = words.shape[1]
    n_rates = rates.shape[0]
    n_matches = np.zeros(n_pairs, np.int32)
    mean_one = np.full(n_pairs, np.inf)
    mean = np.full(n_pairs, np.inf)
    mapped = np.zeros(n_pairs, np.int32)
    matched = np.zeros(n_pairs, np.int32)
    rate = np.full(n_pairs, -1, np.int32)
    intercept = np.zeros(n_pairs, np.int64)
    only_one = np.zeros(n_rates, np.bool_)
    only_one[one] = True
    n_blocks = (n_pairs + PAIRS_PER_BLOCK - 1) // PAIRS_PER_BLOCK
    for blk in numba.prange(n_blocks):
        first, end = blk * PAIRS_PER_BLOCK, min(n_pairs, (blk + 1) * PAIRS_PER_BLOCK)
        size = 0  # the block's largest distance matrix (a long clip costs only its own block)
        for p in range(first, end):
            size = max(size, clip_count[pair_a[p]] * clip_count[pair_b[p]])
        dist = np.empty(size, np.int64)
        for p in range(first, end):
            a0, na = clip_start[pair_a[p]], clip_count[pair_a[p]]
            b0, nb = clip_start[pair_b[p]], clip_count[pair_b[p]]
            if na == 0 or nb == 0:
                continue
            n_m = 0
            for i in range(na):
                for j in range(nb):
                    d = np.uint64(0)
                    for w in range(n_words):
                        d += popcount64(words[a0 + i, w] ^ words[b0 + j, w])
                    di = np.int64(d)
                    dist[i * nb + j] = di
                    if di <= radius and valid[a0 + i] and valid[b0 + j]:
                        n_m += 1
            n_matches[p] = n_m
            if n_m < min_matches or n_m == 0:
                continue
            lo, hi = np.int64(1) << 62, -(np.int64(1) << 62)
            for i in range(na):
                for j in range(nb):
                    if dist[i * nb + j] <= radius and valid[a0 + i] and valid[b0 + j]:
                        for r in range(n_rates):
                            c = np.int64(np.rint(i - rates[r] * j))
                            lo = min(lo, c)
                            hi = max(hi, c)
            width = hi - lo + 1
            votes = np.zeros(n_rates * width, np.int64)
            for i in range(na):
                for j in range(nb):
                    if dist[i * nb + j] <= radius and valid[a0 + i] and valid[b0 + j]:
                        for r in range(n_rates):
                            votes[r * width + np.int64(np.rint(i - rates[r] * j)) - lo] += 1
            mean_one[p] = _best_line(dist, votes, width, lo, valid, a0, na, b0, nb, rates,
                                     only_one, radius, min_matches)[0]
            m, mp, mt, r, c = _best_line(dist, votes, width, lo, valid, a0, na, b0, nb, rates,
                                         other, radius, min_matches)
            mean[p], mapped[p], matched[p], rate[p], intercept[p] = m, mp, mt, r, c
    return n_matches, mean_one, mean, mapped, matched, rate, intercept


def retime_lines(hashes: np.ndarray, valid: np.ndarray, clip_start: np.ndarray,
                 clip_count: np.ndarray, pair_a: np.ndarray, pair_b: np.ndarray,
                 rates: np.ndarray, one: int, other: np.ndarray, radius: int,
                 min_matches: int) -> RetimeLines:
    """Best re-timed line of each clip pair (see the module doc for the exact rules)."""
    check_clip_pairs(hashes, valid, clip_start, clip_count, pair_a, pair_b)
    check_array("rates", rates, np.float64, 1, "float64[R]")
    if not rates.size or not np.all(np.isfinite(rates)) or rates.min() <= 0:
        raise ValueError("rates must be finite and positive, at least one — e.g. "
                         "np.exp(np.arange(np.log(0.5), np.log(2.0), np.log(1.02)))")
    check_array("other", other, np.bool_, 1, "bool[R]")
    if other.shape != rates.shape:
        raise ValueError(f"other must flag each of the {rates.shape[0]} rates; got {other.shape[0]}")
    one = check_int("one", one)
    if not 0 <= one < rates.shape[0]:
        raise ValueError(f"one must index rates (0..{rates.shape[0] - 1}); got {one}")
    radius = check_int("radius", radius)
    min_matches = check_int("min_matches", min_matches)
    return RetimeLines(*_lines(hashes.view(np.uint64), valid, clip_start, clip_count, pair_a,
                               pair_b, rates, one, other, radius, min_matches))
