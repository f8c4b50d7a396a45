"""Greedy k-centre (farthest-point) selection over float32 vectors.

The kernel keeps a running array of squared distances from every live point to its nearest
centre. Each step picks the live point farthest from all centres, then folds the new centre into
the running minimum. One step streams the vectors once, in parallel over fixed blocks of points;
each block reports its own farthest point and the blocks are reduced in order, so the picks are
identical at any thread count (ties go to the lowest index).

Distances are Euclidean (not cosine): vectors need not be normalised. Cost is
``O(n_pick * n * d)``; callers that must scale past that run it on a candidate sample
(``engine.curation.diversity``).
"""

import math

import numba
import numpy as np

from ._config import FLOAT_JIT, PARALLEL
from ._validate import check_array, check_int

__all__ = ["POINTS_PER_BLOCK", "greedy_kcentre", "min_sq_distances"]

#: points per parallel work item; fixed, so results do not depend on the thread count
POINTS_PER_BLOCK = 2048


@numba.njit(**FLOAT_JIT)
def _sq_dist(vectors, i, centre):
    acc = np.float32(0.0)
    for k in range(vectors.shape[1]):
        diff = vectors[i, k] - centre[k]
        acc += diff * diff
    return acc


@numba.njit(**FLOAT_JIT)
def _nearer(vectors, i, centre, min_sq):
    """Point ``i``'s squared distance to its nearest chosen centre, with ``centre`` chosen."""
    d = _sq_dist(vectors, i, centre)
    if d < min_sq[i]:
        min_sq[i] = d
    return min_sq[i]


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _greedy_kcentre(vectors, n_pick, min_sq, live):
    n = vectors.shape[0]
    n_blocks = (n + POINTS_PER_BLOCK - 1) // POINTS_PER_BLOCK
    best_val = np.full(n_blocks, -1.0, np.float32)
    best_idx = np.full(n_blocks, -1, np.int64)
    picks = np.empty(n_pick, np.int64)
    dists = np.empty(n_pick, np.float32)
    centre = np.empty(vectors.shape[1], np.float32)
    n_done = 0
    for step in range(n_pick + 1):
        # step 0 only scans; later steps fold in the centre picked before them
        for b in numba.prange(n_blocks):
            lo = b * POINTS_PER_BLOCK
            hi = min(n, lo + POINTS_PER_BLOCK)
            bv = np.float32(-1.0)
            bi = -1
            for i in range(lo, hi):
                if not live[i]:
                    continue
                m = _nearer(vectors, i, centre, min_sq) if step > 0 else min_sq[i]
                if m > bv:
                    bv = m
                    bi = i
            best_val[b] = bv
            best_idx[b] = bi
        if step == n_pick:
            break
        gv = np.float32(-1.0)
        gi = -1
        for b in range(n_blocks):  # in order: lowest index wins ties
            if best_val[b] > gv:
                gv = best_val[b]
                gi = best_idx[b]
        if gi < 0:
            break
        picks[step] = gi
        dists[step] = math.sqrt(gv) if gv < np.inf else np.inf
        live[gi] = False
        min_sq[gi] = 0.0
        for k in range(vectors.shape[1]):
            centre[k] = vectors[gi, k]
        n_done += 1
    return picks[:n_done], dists[:n_done]


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _greedy_kcentre_cells(vectors, n_pick, min_sq, live, cell, pivots):
    """As :func:`_greedy_kcentre`, skipping work the triangle inequality proves useless.

    Points are grouped by ``cell``; ``dp[p]`` is the distance of p to its cell's pivot and
    ``radius[c]`` the largest of them. For a new centre z, every point p of cell c has
    ``d(p, z) >= |d(z, pivot_c) - dp[p]|`` and so ``>= d(z, pivot_c) - radius[c]``: a cell whose
    bound exceeds its largest running distance is skipped whole, a point whose bound exceeds its
    own running distance skips the full distance. Bounds carry a slack, so a skipped point is
    one whose running distance could not have changed: the picks equal the unpruned kernel's.
    """
    n, dim = vectors.shape
    n_cells = pivots.shape[0]
    order = np.argsort(cell, kind="mergesort")  # by cell, then by index
    start = np.zeros(n_cells + 1, np.int64)
    for i in range(n):
        start[cell[i] + 1] += 1
    for c in range(n_cells):
        start[c + 1] += start[c]
    dp = np.empty(n, np.float32)
    radius = np.zeros(n_cells, np.float32)
    for c in numba.prange(n_cells):
        r = np.float32(0.0)
        for j in range(start[c], start[c + 1]):
            i = order[j]
            dp[j] = math.sqrt(_sq_dist(vectors, i, pivots[c]))
            if live[i] and dp[j] > r:
                r = dp[j]
        radius[c] = r
    best_val = np.full(n_cells, -1.0, np.float32)
    best_idx = np.full(n_cells, -1, np.int64)
    picks = np.empty(n_pick, np.int64)
    dists = np.empty(n_pick, np.float32)
    centre = np.empty(dim, np.float32)
    n_done = 0
    for step in range(n_pick + 1):
        for c in numba.prange(n_cells):
            if start[c] == start[c + 1]:
                continue
            dz = np.float32(0.0)
            if step > 0:
                dz = math.sqrt(_sq_dist(pivots, c, centre))
                gap = np.float64(dz) - np.float64(radius[c])
                if gap > 0 and gap * gap > np.float64(best_val[c]) * 1.0001 + 1e-6:
                    continue  # no point of this cell can come closer to the new centre
            bv = np.float32(-1.0)
            bi = -1
            for j in range(start[c], start[c + 1]):
                i = order[j]
                if not live[i]:
                    continue
                m = min_sq[i]
                if step > 0:
                    lb = np.float64(dz) - np.float64(dp[j])
                    if lb * lb <= np.float64(m) * 1.0001 + 1e-6:  # the centre may be nearer
                        m = _nearer(vectors, i, centre, min_sq)
                if m > bv:
                    bv = m
                    bi = i
            best_val[c] = bv
            best_idx[c] = bi
        if step == n_pick:
            break
        gv = np.float32(-1.0)
        gi = -1
        for c in range(n_cells):  # largest distance; ties to the lowest point index
            if best_idx[c] >= 0 and (best_val[c] > gv or (best_val[c] == gv and best_idx[c] < gi)):
                gv = best_val[c]
                gi = best_idx[c]
        if gi < 0:
            break
        picks[step] = gi
        dists[step] = math.sqrt(gv)
        live[gi] = False
        min_sq[gi] = 0.0
        for k in range(dim):
            centre[k] = vectors[gi, k]
        n_done += 1
        # the picked point's cell must be rescanned next step: force it
        best_val[cell[gi]] = np.inf
    return picks[:n_done], dists[:n_done]


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _min_sq_distances(vectors, centres):
    n = vectors.shape[0]
    out = np.empty(n, np.float32)
    for i in numba.prange(n):
        best = np.float32(np.inf)
        for c in range(centres.shape[0]):
            d = _sq_dist(vectors, i, centres[c])
            if d < best:
                best = d
        out[i] = best
    return out


def greedy_kcentre(vectors, n_pick, min_sq, allowed, cell=None, pivots=None):
    """Pick up to ``n_pick`` points of ``allowed`` by farthest-point traversal.

    With ``cell`` (int32[n], values in ``[0, m)``) and ``pivots`` (float32[m, d]) the kernel
    skips the distances the triangle inequality rules out (any partition works; points grouped
    around nearby pivots prune best). The picks are the same with or without cells.

    Parameters
    ----------
    vectors : float32[n, d] C-contiguous
    n_pick : int >= 0
    min_sq : float32[n]
        Squared distance of each point to its nearest existing centre (``inf`` where none).
    allowed : bool[n]
        Points that may be picked (others are neither picked nor updated).

    Returns
    -------
    picks : int64[k], k <= n_pick (fewer when ``allowed`` runs out)
    dists : float32[k]
        Distance of each pick to its nearest centre at the time it was picked (``inf`` for the
        first pick when there were no centres).
    min_sq : float32[n]
        The updated squared distances (a new array; the input is not modified). Entries of
        points outside ``allowed`` are returned unchanged.
    """
    check_array("vectors", vectors, np.float32, 2, "float32[n,d]")
    n_pick = check_int("n_pick", n_pick, 0)
    check_array("min_sq", min_sq, np.float32, 1, "float32[n]")
    check_array("allowed", allowed, np.bool_, 1, "bool[n]")
    if len(min_sq) != len(vectors) or len(allowed) != len(vectors):
        raise ValueError(
            f"min_sq ({len(min_sq)}) and allowed ({len(allowed)}) must have one entry per vector "
            f"({len(vectors)})"
        )
    out_sq = min_sq.copy()
    if cell is None and pivots is None:
        picks, dists = _greedy_kcentre(vectors, n_pick, out_sq, allowed.copy())
        return picks, dists, out_sq
    check_array("cell", cell, np.int32, 1, "int32[n]")
    check_array("pivots", pivots, np.float32, 2, "float32[m,d]")
    if len(cell) != len(vectors):
        raise ValueError(f"cell ({len(cell)}) must have one entry per vector ({len(vectors)})")
    if pivots.shape[1] != vectors.shape[1] or len(pivots) == 0:
        raise ValueError(
            f"pivots must be float32[m>=1, {vectors.shape[1]}]; got shape {pivots.shape}"
        )
    if len(cell) and (int(cell.min()) < 0 or int(cell.max()) >= len(pivots)):
        raise ValueError(
            f"cell values must lie in [0, {len(pivots)}) (one per pivot); got "
            f"[{int(cell.min())}, {int(cell.max())}]"
        )
    picks, dists = _greedy_kcentre_cells(vectors, n_pick, out_sq, allowed.copy(), cell, pivots)
    return picks, dists, out_sq


def min_sq_distances(vectors, centres):
    """``float32[n]``: squared distance of each vector to its nearest row of ``centres``.

    ``inf`` everywhere when ``centres`` is empty. ``vectors`` float32[n, d], ``centres``
    float32[m, d], both C-contiguous.
    """
    check_array("vectors", vectors, np.float32, 2, "float32[n,d]")
    check_array("centres", centres, np.float32, 2, "float32[m,d]")
    if centres.shape[1] != vectors.shape[1]:
        raise ValueError(
            f"centres have {centres.shape[1]} dimensions, vectors {vectors.shape[1]}; use the same "
            "embedding for both"
        )
    return _min_sq_distances(vectors, centres)
