"""Diversity geometry: picks that cover a set of embedding vectors well.

Pure functions over NumPy arrays (positions into one ``float32[n, d]`` table, seeds and an
``allowed`` mask); no store, catalog or policy. :func:`diverse_picks` is the entry point the
selection policy (:mod:`engine.curation.select`) calls:

* :func:`coverage_picks` (default) minimises the *mean* distance of every candidate to its
  nearest pick: exact greedy k-median (:func:`kmedian_picks`) on small pools, D-sampling and
  Lloyd rounds inside coarse cells on large ones;
* :class:`KCentre` is greedy farthest point (minimises the *largest* distance) on a random
  sample of candidates, with the Numba kernel ``kernels.greedy_kcentre``.

Both are seeded with vectors already chosen, so they cover what those leave uncovered. The
reasons for the method and its constants are in ``docs/design.md`` (Diversity).
"""

from __future__ import annotations

import numpy as np

from engine.errors import InputError

#: what diverse_picks may run: mean coverage (coverage_picks) or farthest point (KCentre)
DIVERSITY_METHODS = ("coverage", "kcentre")

#: k-centre runs on a random sample of this many candidates per pick (cost O(n_pick^2 d) instead
#: of O(n_pick n d)); coverage_picks runs the exact traversal when the pool has at most this many
#: candidates per pick
SAMPLE_PER_PICK = 4


def _sq_distances_to(vectors: np.ndarray, centres: np.ndarray, block: int = 16384,
                     self_offset: int | None = None) -> np.ndarray:
    """float32[n]: squared distance of each vector to its nearest centre (BLAS, in blocks).

    With ``self_offset``, vector i is centre ``self_offset + i`` and is skipped (nearest *other*)."""
    out = np.full(len(vectors), np.inf, np.float32)
    if len(centres) == 0:
        return out
    c_sq = (centres.astype(np.float32) ** 2).sum(axis=1)
    for lo in range(0, len(vectors), block):
        v = vectors[lo:lo + block]
        best = np.full(len(v), np.inf, np.float32)
        for clo in range(0, len(centres), block):
            d = c_sq[clo:clo + block][None, :] - 2.0 * (v @ centres[clo:clo + block].T)
            if self_offset is not None:
                rows = np.arange(len(v))
                cols = self_offset + lo + rows - clo
                ok = (cols >= 0) & (cols < d.shape[1])
                d[rows[ok], cols[ok]] = np.inf
            np.minimum(best, d.min(axis=1), out=best)
        out[lo:lo + block] = np.maximum(best + (v * v).sum(axis=1), 0.0)
    return out


def _nearest_centre(vectors: np.ndarray, centres: np.ndarray, block: int = 16384) -> np.ndarray:
    c_sq = (centres ** 2).sum(axis=1)
    out = np.empty(len(vectors), np.int32)
    for lo in range(0, len(vectors), block):
        out[lo:lo + block] = np.argmin(c_sq[None, :] - 2.0 * (vectors[lo:lo + block] @ centres.T), axis=1)
    return out


def _nearest_centre_dist(vectors: np.ndarray, centres: np.ndarray, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each vector and the distance to it (BLAS, in blocks)."""
    c_sq = (centres ** 2).sum(axis=1)
    idx = np.empty(len(vectors), np.int32)
    dist = np.empty(len(vectors), np.float32)
    for lo in range(0, len(vectors), block):
        v = vectors[lo:lo + block]
        d = c_sq[None, :] - 2.0 * (v @ centres.T)
        i = np.argmin(d, axis=1)
        idx[lo:lo + block] = i
        dist[lo:lo + block] = np.sqrt(np.maximum(d[np.arange(len(v)), i] + (v * v).sum(axis=1), 0.0))
    return idx, dist


class KCentre:
    """Greedy k-centre (farthest point) over candidate positions, seeded with chosen vectors.

    The traversal runs on a random sample of ``SAMPLE_PER_PICK * n_pick`` candidates (all of them when there are fewer; ``sample=`` overrides), so its cost is
    ``O(n_pick^2 d)``, not ``O(n_pick n d)``; seeds are folded in exactly. The kernel prunes with
    cells around pivots (same picks, less work when the embeddings cluster).
    """

    def __init__(self, vectors: np.ndarray, candidates: np.ndarray, seeds: np.ndarray,
                 rng: np.random.Generator, *, n_pick: int, sample: int | None = None):
        import kernels

        self._kernels = kernels
        candidates = np.asarray(candidates, np.int64)
        limit = sample if sample is not None else SAMPLE_PER_PICK * n_pick
        if limit < len(candidates):
            candidates = np.sort(rng.choice(candidates, limit, replace=False))
        self.positions = candidates
        self.vectors = np.ascontiguousarray(vectors[candidates], dtype=np.float32)
        self.min_sq = _sq_distances_to(self.vectors, np.ascontiguousarray(vectors[seeds], dtype=np.float32))
        self.live = np.ones(len(candidates), bool)
        self.rng = rng
        self.cell, self.pivots = self._cells()

    def _cells(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        m = len(self.vectors)
        if m < 4096:
            return None, None
        n_cells = int(min(1024, max(16, np.sqrt(m) / 2)))
        sub = np.sort(self.rng.choice(m, min(m, 16 * n_cells), replace=False))
        sub_vecs = np.ascontiguousarray(self.vectors[sub])
        picks, _, _ = self._kernels.greedy_kcentre(
            sub_vecs, n_cells, np.full(len(sub), np.inf, np.float32), np.ones(len(sub), bool))
        pivots = np.ascontiguousarray(sub_vecs[picks])
        return _nearest_centre(self.vectors, pivots), pivots

    def block(self, positions: np.ndarray) -> None:
        """Never pick these (positions in the full table)."""
        self.live[np.isin(self.positions, positions)] = False

    def add_centres(self, vectors: np.ndarray) -> None:
        if len(vectors):
            np.minimum(self.min_sq, _sq_distances_to(self.vectors, np.ascontiguousarray(vectors, np.float32)),
                       out=self.min_sq)

    def pick(self, n_pick: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n_pick`` positions (in the full table) and their distances when picked."""
        if n_pick <= 0 or not self.live.any():
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if np.isinf(self.min_sq[self.live]).all():  # nothing chosen yet: start at random
            first = int(self.rng.choice(np.flatnonzero(self.live)))
            self.live[first] = False
            self.add_centres(self.vectors[first:first + 1])
            rest, dists = self.pick(n_pick - 1)
            return (np.concatenate([[self.positions[first]], rest]),
                    np.concatenate([[np.float32(np.inf)], dists]).astype(np.float32))
        picks, dists, self.min_sq = self._kernels.greedy_kcentre(
            self.vectors, n_pick, self.min_sq, self.live, self.cell, self.pivots)
        self.live[picks] = False
        return self.positions[picks], dists


def diverse_picks(vectors: np.ndarray, n_pick: int, seeds: np.ndarray, allowed: np.ndarray,
                  rng: np.random.Generator, *, sample: int | None = None,
                  method: str = "coverage") -> tuple[np.ndarray, np.ndarray]:
    """Diverse picks among ``allowed`` positions, seeded with ``seeds`` positions.

    ``method="coverage"`` (default): :func:`coverage_picks`. ``method="kcentre"`` or any
    ``sample=``: greedy k-centre (farthest point) on a random sample of ``sample`` candidates
    (``sample=len(vectors)``: the exact traversal). Returns positions and, per pick, a distance to
    the nearest other chosen clip (see the two functions).
    """
    if method not in DIVERSITY_METHODS:
        raise InputError(f"unknown diversity method {method!r}; use coverage or kcentre")
    if method == "coverage" and sample is None:
        return coverage_picks(vectors, n_pick, seeds, allowed, rng)
    kc = KCentre(vectors, np.flatnonzero(allowed), np.asarray(seeds, np.int64), rng, n_pick=n_pick,
                 sample=sample)
    return kc.pick(n_pick)


#: coverage_picks: picks per coarse cell, candidates sampled per pick inside a cell, Lloyd rounds
PICKS_PER_CELL = 16
CELL_SAMPLE_PER_PICK = 64
REFINE_ROUNDS = 6
#: rounds of the final refinement over *every* candidate (not a sample), each pick moving to its
#: members' medoid; a point looks for its nearest pick among the picks of the NEIGHBOUR_CELLS
#: cells nearest its own, so a round costs O(n * NEIGHBOUR_CELLS * PICKS_PER_CELL * d)
GLOBAL_REFINE_ROUNDS = 2
#: picks per cell grow as spread^ALLOCATION_EXPONENT: m/(m+1) for cells of intrinsic dimension
#: m; 0.9 assumes m ~ 9 (embeddings of real scenes vary along more than a few directions; the
#: benchmark's 4-d clusters would prefer 0.8: +15.4 % vs +15.3 % at 0.9 and +15.0 % at 1.0)
ALLOCATION_EXPONENT = 0.9
NEIGHBOUR_CELLS = 4
MEDOID_CANDIDATES = 8


#: exact greedy k-median when candidates^2 * picks stays below this (~1 s of NumPy) and the
#: pool below KMEDIAN_MAX_POOL (its distance matrix: 72 MB at 3,000)
KMEDIAN_MAX_WORK = 400_000_000
KMEDIAN_MAX_POOL = 3_000
KMEDIAN_SWAP_ROUNDS = 3
#: rounds of single swaps after the medoid rounds (:func:`_swap_rounds`), each ~ the greedy's cost
KMEDIAN_EXCHANGE_ROUNDS = 2


def _swap_rounds(d: np.ndarray, chosen: np.ndarray, seed_near: np.ndarray, rounds: int) -> np.ndarray:
    """Local search on the k-median objective (PAM's swap step, evaluated as in FastPAM): for each
    pick in turn, the candidate that would lower the summed distance of all candidates to their
    nearest chosen clip the most if it replaced that pick takes its place, if it lowers it at
    all. Seeds (``seed_near``: each candidate's distance to the nearest seed) stay. Medoid moves
    only shuffle a pick inside its own members; a swap can move it across the space, to where
    coverage is thin. Each pick costs O(n^2): a round costs about what the greedy did."""
    n, k = len(d), len(chosen)
    chosen = chosen.copy()
    ar = np.arange(n)
    for _ in range(max(0, rounds)):
        moved = False
        for m in range(k):
            dc = d[:, chosen]
            if k > 1:
                two = np.argpartition(dc, 1, axis=1)[:, :2]
                a0, a1 = dc[ar, two[:, 0]], dc[ar, two[:, 1]]
                first = np.where(a1 < a0, two[:, 1], two[:, 0])
                d1, d2 = np.minimum(a0, a1), np.maximum(a0, a1)
            else:
                first, d1, d2 = np.zeros(n, np.int64), dc[:, 0], np.full(n, np.inf)
            near = np.minimum(d1, seed_near)
            owner = np.where(d1 <= seed_near, first, -1)
            # where a candidate's nearest pick is m: its distance once m is gone
            second = np.minimum(d2, seed_near)
            gain = np.minimum(d - near[:, None], 0.0).sum(axis=0)  # x added, nobody removed
            mine = owner == m
            dm = d[mine]
            lost = (np.minimum(dm, second[mine, None]) - near[mine, None]
                    - np.minimum(dm - near[mine, None], 0.0)).sum(axis=0)
            delta = gain + lost
            delta[chosen] = np.inf
            x = int(np.argmin(delta))
            if delta[x] < -1e-9 * max(1.0, float(near.sum())):
                chosen[m] = x
                moved = True
        if not moved:
            break
    return chosen


def kmedian_picks(vectors: np.ndarray, cand: np.ndarray, seeds: np.ndarray,
                  n_pick: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact greedy k-median over a small pool: each pick is the candidate that lowers the summed
    distance of all candidates to their nearest chosen clip (seeds included) the most, then
    ``KMEDIAN_SWAP_ROUNDS`` rounds move each pick to its members' medoid and
    ``KMEDIAN_EXCHANGE_ROUNDS`` rounds of swaps (:func:`_swap_rounds`). This is the objective
    coverage measures (mean distance to the nearest pick); farthest-point would spend the
    budget on outliers (on the 400-clip regions of the quality fleet: +2-3 % better than
    random, against +14-17 % here). Deterministic. Returns positions ordered by decreasing
    distance to the nearest *other* chosen clip, and those distances."""
    x = np.ascontiguousarray(vectors[cand], dtype=np.float64)
    sq = (x * x).sum(axis=1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0))
    np.fill_diagonal(d, 0.0)
    seed_near = np.full(len(cand), np.inf)
    if len(seeds):
        seed_near = np.sqrt(_sq_distances_to(
            x.astype(np.float32), np.ascontiguousarray(vectors[seeds], dtype=np.float32))).astype(np.float64)
    # nothing covers a clip yet: any pick would (the gain of a first pick is the pool's spread)
    near = np.minimum(seed_near, float(d.max()) + 1.0)
    n_pick = min(n_pick, len(cand))
    picks: list[int] = []
    for _ in range(n_pick):
        gain = np.maximum(near[:, None] - d, 0.0).sum(axis=0)
        gain[picks] = -1.0
        c = int(np.argmax(gain))
        picks.append(c)
        np.minimum(near, d[:, c], out=near)
    chosen = np.array(picks, np.int64)
    for _ in range(KMEDIAN_SWAP_ROUNDS):
        owner = np.argmin(d[:, chosen], axis=1)
        covered_by_seed = seed_near < d[np.arange(len(cand)), chosen[owner]]
        moved = False
        for k in range(len(chosen)):
            members = np.flatnonzero((owner == k) & ~covered_by_seed)
            if len(members) < 2:
                continue
            medoid = int(members[np.argmin(d[np.ix_(members, members)].sum(axis=0))])
            if medoid != chosen[k] and medoid not in chosen:
                chosen[k] = medoid
                moved = True
        if not moved:
            break
    chosen = _swap_rounds(d, chosen, seed_near, KMEDIAN_EXCHANGE_ROUNDS)
    # distance of each pick to the nearest other chosen clip (seeds and the other picks)
    dd = d[np.ix_(chosen, chosen)].copy()
    np.fill_diagonal(dd, np.inf)
    other = dd.min(axis=1) if len(chosen) > 1 else np.full(len(chosen), np.inf)
    other = np.minimum(other, seed_near[chosen])
    order = np.argsort(-other, kind="stable")
    return cand[chosen[order]], other[order].astype(np.float32)


def coverage_picks(vectors: np.ndarray, n_pick: int, seeds: np.ndarray, allowed: np.ndarray,
                   rng: np.random.Generator, *, refine: int = REFINE_ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """Picks that cover the candidates well *on average* (mean distance to the nearest pick).

    Greedy farthest-point minimises the largest distance and spends picks on outliers; random
    picks follow the density but clump. This keeps the density and removes the clumps:

    1. coarse cells: ``n_pick / PICKS_PER_CELL`` centres by D-sampling (k-means++ with distance
       weights) on a sample, every candidate assigned to its nearest centre (BLAS, in blocks);
    2. each cell gets picks in proportion to its spread (sum over its candidates of the distance
       to the cell centre or to the nearest seed in the cell, whichever is smaller);
    3. inside a cell: D-sampling on a sample of ``CELL_SAMPLE_PER_PICK`` candidates per pick,
       seeded with the cell's seeds (already chosen clips, a previous training set), then
       ``refine`` Lloyd rounds (each pick moves to the sampled candidate nearest its members'
       mean; seeds stay).

    Cost ``O(n * n_cells * d)`` for the assignment plus ``O(n_pick * sample * d)``; no
    ``O(n_pick * n * d)`` traversal. Small pools (``n <= KMEDIAN_MAX_POOL`` and
    ``n^2 * n_pick <= KMEDIAN_MAX_WORK``, e.g. 400
    clips and 100 picks) get the exact greedy k-median instead (:func:`kmedian_picks`); pools
    with at most ``SAMPLE_PER_PICK`` candidates per pick above that size, the exact
    farthest-point traversal. Returns positions
    ordered by decreasing distance to the nearest *other* chosen clip (seeds and picks), and
    those distances (``inf`` when nothing else is chosen).
    """
    cand = np.flatnonzero(allowed)
    seeds = np.unique(np.asarray(seeds, np.int64))
    cand = cand[~np.isin(cand, seeds)]
    if n_pick <= 0 or not len(cand):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if len(cand) <= KMEDIAN_MAX_POOL and len(cand) ** 2 * min(n_pick, len(cand)) <= KMEDIAN_MAX_WORK:
        return kmedian_picks(vectors, cand, seeds, n_pick)
    if len(cand) <= SAMPLE_PER_PICK * n_pick:
        kc = KCentre(vectors, cand, seeds, rng, n_pick=n_pick)
        return kc.pick(n_pick)
    n_cells = int(np.clip(n_pick // PICKS_PER_CELL, 1, 1024))
    cand_vecs = np.ascontiguousarray(vectors[cand], dtype=np.float32)
    seed_vecs = np.ascontiguousarray(vectors[seeds], dtype=np.float32)
    centres, cell, cdist, seed_cell = _coarse_cells(cand_vecs, seed_vecs, n_cells, rng)
    order = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[order], np.arange(n_cells + 1))
    seed_order = np.argsort(seed_cell, kind="stable")
    seed_bounds = np.searchsorted(seed_cell[seed_order], np.arange(n_cells + 1))
    spread = np.zeros(n_cells)
    for c in range(n_cells):
        members = order[bounds[c]:bounds[c + 1]]
        d = cdist[members]
        cs = seed_order[seed_bounds[c]:seed_bounds[c + 1]]
        if len(cs) and len(members):
            d = np.minimum(d, np.sqrt(_sq_distances_to(cand_vecs[members], seed_vecs[cs])))
        spread[c] = float(d.sum())
    # a cell of intrinsic dimension m covered by k picks has mean distance ~ spread * k^(-1/m),
    # so the total is smallest with k proportional to spread^(m/(m+1)): ALLOCATION_EXPONENT
    quota = _allocate(spread ** ALLOCATION_EXPONENT, np.diff(bounds), n_pick)
    picks: list[np.ndarray] = []
    for c in np.flatnonzero(quota):
        members = order[bounds[c]:bounds[c + 1]]
        m = min(len(members), max(CELL_SAMPLE_PER_PICK * int(quota[c]), 256))
        if m < len(members):
            members = np.sort(rng.choice(members, m, replace=False))
        cs = seed_order[seed_bounds[c]:seed_bounds[c + 1]]
        local = _local_picks(cand_vecs[members], seed_vecs[cs], int(quota[c]), rng, refine)
        picks.append(members[local])
    chosen = np.concatenate(picks) if picks else np.zeros(0, np.int64)
    if n_cells > 1 and len(chosen):
        chosen = _global_refine(cand_vecs, seed_vecs, centres, cell, seed_cell, chosen,
                                GLOBAL_REFINE_ROUNDS)
    # distance of each pick to the nearest other chosen clip (seeds and the other picks)
    others = np.concatenate([seed_vecs, cand_vecs[chosen]])
    dist = np.sqrt(_sq_distances_to(cand_vecs[chosen], others, self_offset=len(seeds)))
    by = np.lexsort((cand[chosen], -dist))
    return cand[chosen][by], dist[by].astype(np.float32)


def _coarse_cells(cand_vecs: np.ndarray, seed_vecs: np.ndarray, n_cells: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step 1 of :func:`coverage_picks`: ``n_cells`` centres by D-sampling on a sample of the
    candidates (one cell: their mean), the cell of every candidate and its distance to the
    centre, and the cell of every seed."""
    if n_cells > 1:
        sub = rng.choice(len(cand_vecs), min(len(cand_vecs), 64 * n_cells), replace=False)
        centres = cand_vecs[np.sort(sub)][_d_sample(cand_vecs[np.sort(sub)], n_cells, None, rng)]
        cell, cdist = _nearest_centre_dist(cand_vecs, centres)
        seed_cell = _nearest_centre_dist(seed_vecs, centres)[0] if len(seed_vecs) else np.zeros(0, np.int32)
    else:
        centres = cand_vecs.mean(axis=0, keepdims=True)
        cell, cdist = np.zeros(len(cand_vecs), np.int32), np.sqrt(_sq_distances_to(cand_vecs, centres))
        seed_cell = np.zeros(len(seed_vecs), np.int32)
    return centres, cell, cdist, seed_cell


def _global_refine(vecs: np.ndarray, seed_vecs: np.ndarray, centres: np.ndarray, cell: np.ndarray,
                   seed_cell: np.ndarray, chosen: np.ndarray, rounds: int) -> np.ndarray:
    """Medoid rounds over all candidates: every candidate is assigned to its nearest pick or seed
    among those of the cells nearest its own, then each pick moves to the member (of the
    ``MEDOID_CANDIDATES`` nearest its members' mean) with the least summed distance to them --
    the medoid, which minimises the *mean* distance the coverage measures (a mean minimises the
    squared one). Seeds stay; picks stay distinct (members are disjoint)."""
    n_cells = len(centres)
    m = min(NEIGHBOUR_CELLS, n_cells)
    sims = centres @ centres.T
    neighbours = np.argsort(-sims, axis=1, kind="stable")[:, :m]
    members_of = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[members_of], np.arange(n_cells + 1))
    for _ in range(max(0, rounds)):
        k = len(chosen)
        pick_cell = cell[chosen]
        owner = np.full(len(vecs), -1, np.int64)
        for c in range(n_cells):
            pts = members_of[bounds[c]:bounds[c + 1]]
            if not len(pts):
                continue
            near = np.isin(pick_cell, neighbours[c])
            cand = np.flatnonzero(near)
            seeds = np.flatnonzero(np.isin(seed_cell, neighbours[c])) if len(seed_vecs) else cand[:0]
            if not len(cand):
                continue
            centres_c = vecs[chosen[cand]]
            if len(seeds):
                centres_c = np.concatenate([centres_c, seed_vecs[seeds]])
            best = _nearest_centre(vecs[pts], centres_c)
            mine = best < len(cand)  # else a seed covers it
            owner[pts[mine]] = cand[best[mine]]
        order = np.argsort(owner, kind="stable")
        ob = np.searchsorted(owner[order], np.arange(-1, k + 1))
        new = chosen.copy()
        for j in range(k):
            mem = order[ob[j + 1]:ob[j + 2]]
            if len(mem) < 3:
                continue
            x = vecs[mem]
            d2 = ((x - x.mean(axis=0)) ** 2).sum(axis=1)
            top = mem[np.argsort(d2, kind="stable")[:MEDOID_CANDIDATES]]
            cv = vecs[top]
            sq = np.maximum((cv * cv).sum(axis=1)[:, None] - 2.0 * (cv @ x.T) + (x * x).sum(axis=1)[None, :], 0.0)
            new[j] = top[int(np.argmin(np.sqrt(sq).sum(axis=1)))]
        if np.array_equal(new, chosen):
            break
        chosen = new
    return chosen


def _allocate(weight: np.ndarray, capacity: np.ndarray, total: int) -> np.ndarray:
    """Integers <= capacity summing to min(total, capacity.sum()), proportional to weight:
    cells whose share exceeds their capacity get their capacity, the rest share what is left
    by largest remainder (ties to the lower index)."""
    capacity = np.asarray(capacity, np.int64)
    total = int(min(total, capacity.sum()))
    weight = np.where(capacity > 0, np.maximum(np.asarray(weight, np.float64), 1e-12), 0.0)
    full = np.zeros(len(weight), bool)
    while True:
        left = total - int(capacity[full].sum())
        w = np.where(full, 0.0, weight)
        share = w / w.sum() * left if w.sum() > 0 else np.zeros(len(w))
        over = ~full & (share > capacity)
        if not over.any():
            break
        full |= over
    out = np.where(full, capacity, np.floor(share).astype(np.int64))
    rem = np.where(full | (weight == 0) | (out >= capacity), -1.0, share - np.floor(share))
    for c in np.argsort(-rem, kind="stable")[:total - int(out.sum())]:
        out[c] += 1
    return out


def _d_sample(vecs: np.ndarray, k: int, seed_vecs: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """k positions of ``vecs`` by D-sampling (probability proportional to the distance to the
    nearest seed or earlier pick; the first uniformly when there is no seed)."""
    n = len(vecs)
    k = min(k, n)
    dist = np.full(n, np.inf, np.float32)
    if seed_vecs is not None and len(seed_vecs):
        dist = np.sqrt(_sq_distances_to(vecs, seed_vecs))
    sq_norm = (vecs * vecs).sum(axis=1)
    out = np.empty(k, np.int64)
    for j in range(k):
        if np.isinf(dist).all():
            i = int(rng.integers(n))
        else:
            w = np.cumsum(dist, dtype=np.float64)
            if w[-1] <= 0:
                i = int(rng.integers(n))
            else:
                i = min(int(np.searchsorted(w, rng.random() * w[-1], side="right")), n - 1)
        out[j] = i
        d = np.sqrt(np.maximum(sq_norm - 2.0 * (vecs @ vecs[i]) + sq_norm[i], 0.0))
        np.minimum(dist, d, out=dist)
        dist[i] = 0.0
    return out


def _local_picks(vecs: np.ndarray, seed_vecs: np.ndarray, k: int, rng: np.random.Generator,
                 refine: int) -> np.ndarray:
    """k positions of ``vecs``: D-sampling seeded with ``seed_vecs``, then Lloyd rounds."""
    picks = _d_sample(vecs, k, seed_vecs, rng)
    n_seeds = len(seed_vecs)
    for _ in range(refine):
        centres = np.concatenate([seed_vecs, vecs[picks]]) if n_seeds else vecs[picks]
        owner = _nearest_centre(vecs, centres) - n_seeds  # < 0: a seed covers the point
        used = np.zeros(len(vecs), bool)
        new = picks.copy()
        onehot = (owner[:, None] == np.arange(k)[None, :]).astype(np.float32)
        counts = onehot.sum(axis=0).astype(np.int64)
        sums = onehot.T @ vecs  # members' sums per pick (BLAS; np.add.at is ~20x slower)
        for j in np.argsort(-counts, kind="stable"):
            members = np.flatnonzero(owner == j)
            if not len(members):
                used[new[j]] = True
                continue
            mean = (sums[j] / counts[j]).astype(np.float32)
            best = members[np.argsort(((vecs[members] - mean) ** 2).sum(axis=1), kind="stable")]
            best = best[~used[best]]
            if len(best):
                new[j] = best[0]
            used[new[j]] = True
        if np.array_equal(new, picks):
            break
        picks = new
    return picks
