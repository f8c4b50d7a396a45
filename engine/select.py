"""Training-set selection: budgeted, duplicate-free, rare-first, diverse, leak-free, explained.

Order of filling the budget:

1. ``force`` clips (always in, reason ``forced``);
2. ``rare`` share: the rarest clips (reason ``rare`` with score and percentile), breadth first
   over recording units (:func:`engine.rarity.recording_units`): the rarest clip of each unit
   before a second clip of any;
3. ``random`` share (reason ``random``), from ``np.random.default_rng(seed)``: an unbiased
   sample of what the region holds;
4. ``diverse`` share and whatever the others left of the budget: picks that cover the embedding
   space on average (:func:`coverage_picks`: D-sampling + Lloyd rounds inside coarse cells; small
   pools and ``method="kcentre"`` use greedy k-centre, farthest point), seeded with everything
   already chosen and with a previous training set if given, so they cover what the forced,
   quota, rare and random picks leave uncovered (reason ``diverse`` with the distance to the
   nearest other chosen clip). Without a diverse share, or when its pool runs out, the rest of
   the budget is filled at random.

Only one clip of a duplicate group is a candidate (its representative), and a clip is redundant
once the clips already chosen cover most of its duration through partial overlaps. The split into
train/validation is by connected drive: drives linked by any duplicate or partial pair fall on the
same side, so neither a drive nor a duplicate group appears in both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dedup import load_dedup
from .errors import InputError, PolicyError
from .rarity import drive_codes, load_rarity, recording_units, relative_components
from .regions import Region
from .store import RegionStore

REDUNDANT_COVERAGE = 0.8


@dataclass
class Selected:
    clip_id: str
    region: str
    reason: str
    detail: dict
    source: str
    source_offset_s: float
    duration_s: float
    drive_id: str
    split: str = "train"

    def record(self) -> dict:
        return {
            "clip_id": self.clip_id,
            "region": self.region,
            "split": self.split,
            "reason": self.reason,
            **self.detail,
            "source": self.source,
            "span": [round(self.source_offset_s, 3), round(self.source_offset_s + self.duration_s, 3)],
            "duration_s": round(self.duration_s, 3),
            "drive_id": self.drive_id,
        }


@dataclass
class Selection:
    region: str
    budget: int
    chosen: list[Selected]
    candidates: int
    excluded_duplicates: int
    counts: dict[str, int] = field(default_factory=dict)
    quotas: dict[str, dict] = field(default_factory=dict)
    previous: int = 0  # clips of the previous training set found in the region (seeds)
    previous_missing: int = 0  # its clips no longer in the region
    #: the region the clips were selected in (its folder bounds where a manifest may go
    #: without a home's policy)
    origin: Region | None = field(default=None, repr=False, compare=False)


def parse_mix(text: str) -> dict[str, float]:
    """``"rare=0.3,diverse=0.6,random=0.1"`` -> shares summing to 1."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, val = part.partition("=")
        name = name.strip()
        if name not in ("rare", "diverse", "random"):
            raise InputError(f"unknown strategy {name!r} in --mix {text!r}; use rare, diverse, random")
        try:
            share = float(val)
        except ValueError:
            raise InputError(f"--mix {text!r}: {part!r} needs a number, e.g. rare=0.3") from None
        if not np.isfinite(share) or share < 0:
            raise InputError(f"--mix {text!r}: share of {name} must be >= 0")
        mix[name] = share
    total = sum(mix.values())
    if total <= 0:
        raise InputError(f"--mix {text!r}: shares must add up to more than 0")
    return {k: v / total for k, v in mix.items()}


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
    if method not in ("coverage", "kcentre"):
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
    if n_cells > 1:
        sub = rng.choice(len(cand), min(len(cand), 64 * n_cells), replace=False)
        centres = cand_vecs[np.sort(sub)][_d_sample(cand_vecs[np.sort(sub)], n_cells, None, rng)]
        cell, cdist = _nearest_centre_dist(cand_vecs, centres)
        seed_cell = _nearest_centre_dist(seed_vecs, centres)[0] if len(seeds) else np.zeros(0, np.int32)
    else:
        centres = cand_vecs.mean(axis=0, keepdims=True)
        cell, cdist = np.zeros(len(cand), np.int32), np.sqrt(_sq_distances_to(cand_vecs, centres))
        seed_cell = np.zeros(len(seeds), np.int32)
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


def parse_quotas(items: Sequence[str]) -> dict[str, int]:
    """``["hard_brake=50", "low_light=20"]`` -> {name: count}."""
    out: dict[str, int] = {}
    for item in items:
        name, _, val = item.partition("=")
        name = name.strip()
        try:
            count = int(val)
        except ValueError:
            raise InputError(f"--quota {item!r}: use NAME=COUNT, e.g. hard_brake=50") from None
        if not name or count < 0:
            raise InputError(f"--quota {item!r}: needs a trigger name and a count >= 0")
        out[name] = count
    return out


def read_manifest(path: str | Path) -> list[dict]:
    """Records of a manifest written by :func:`write_manifest` (.jsonl, .csv or .parquet)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest {path} does not exist; pass a file written by `clipdex select --out`")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import csv

            with path.open(encoding="utf-8", newline="") as f:
                return list(csv.DictReader(f))
        if suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError as err:
                raise InputError("reading a Parquet manifest needs pyarrow: pip install 'clipdex[parquet]'") from err
            return pq.read_table(path).to_pylist()
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"manifest {path} cannot be read ({err}); rewrite it with `clipdex select`") from err


def select_clips(
    store: RegionStore,
    budget: int,
    *,
    mix: dict[str, float] | None = None,
    seed: int = 0,
    val_fraction: float = 0.0,
    exclude: Sequence[str] = (),
    force: Sequence[str] = (),
    previous: Sequence[str] = (),
    quotas: dict[str, int] | None = None,
    sample: int | None = None,
    space: str | None = None,
    method: str = "coverage",
) -> Selection:
    """Fill ``budget`` clips: forced, quotas per trigger, rare, diverse, random (see module doc).

    ``previous`` is a previous training set (clip ids): its clips seed the k-centre and are not
    selected again, so a new selection adds what the old one misses; ids no longer in the region
    are ignored (counted in ``Selection.previous_missing``). ``method`` picks the diverse share:
    ``"coverage"`` (default, :func:`coverage_picks`) or ``"kcentre"`` (greedy farthest point).
    """
    if budget < 1:
        raise InputError(f"--budget {budget} must be >= 1")
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"--val-fraction {val_fraction} must be in [0, 1)")
    if method not in ("coverage", "kcentre"):
        raise InputError(f"--diversity {method!r}: use coverage or kcentre")
    mix = mix or {"rare": 0.3, "diverse": 0.6, "random": 0.1}
    quotas = dict(quotas or {})
    rng = np.random.default_rng(seed)
    table = store.clip_table()
    n = len(table)
    pos = table.position()
    id_pos = {cid: i for i, cid in enumerate(table.clip_ids)}
    for cid in (*exclude, *force):
        if cid not in id_pos:
            raise InputError(f"clip {cid!r} (in --exclude/--force) is not in region {store.region.name!r}")
    prev_pos = np.array(sorted({id_pos[c] for c in previous if c in id_pos}), np.int64)
    previous_missing = len(set(previous)) - len(prev_pos)
    pairs, groups = load_dedup(store, table)
    # recording units: drives linked by any duplicate or partial pair (the rare share goes breadth
    # first over them; the train/val split keeps each on one side)
    units = recording_units(relative_components(table, pairs), drive_codes(table))
    non_rep = np.zeros(n, bool)
    for rep, members in groups.items():
        for m in members:
            if m != rep and m in pos:
                non_rep[pos[m]] = True
    candidate = ~non_rep
    for cid in exclude:
        candidate[id_pos[cid]] = False
    candidate[prev_pos] = False
    if len(prev_pos):  # a previous clip's duplicates are already in the training set
        prev_rows = set(table.rows[prev_pos].tolist())
        for members in groups.values():
            if prev_rows & set(members):
                candidate[[pos[m] for m in members if m in pos]] = False
    partial_cover: dict[int, list[tuple[int, float, float]]] = {}
    for p in pairs:
        if p.a in pos and p.b in pos:
            partial_cover.setdefault(pos[p.a], []).append((pos[p.b], *p.a_span))
            partial_cover.setdefault(pos[p.b], []).append((pos[p.a], *p.b_span))
    vectors = np.ascontiguousarray(store.embeddings(table.snapshot)[table.rows]) if n else np.zeros((0, 1), np.float32)
    if space is not None and n:  # an imported embedding space (engine.spaces) for rarity and diversity
        from .spaces import space_matrix

        vectors = space_matrix(store, space, table)
    chosen: list[tuple[int, str, dict]] = []
    taken = np.zeros(n, bool)
    taken[prev_pos] = True  # covers partial overlaps like chosen clips do

    def redundant(i: int) -> bool:
        cover = [(s, e) for j, s, e in partial_cover.get(i, ()) if taken[j]]
        if not cover:
            return False
        covered = _union_length(cover) + 0.5  # spans are keyframe times; add one sample period
        return covered >= REDUNDANT_COVERAGE * table.duration_s[i]

    def take(i: int, reason: str, detail: dict) -> bool:
        if taken[i] or len(chosen) >= budget or redundant(i):
            return False
        taken[i] = True
        chosen.append((i, reason, detail))
        return True

    def fill_diverse(pool: np.ndarray, target: int, reason: str, extra: dict) -> int:
        """Diverse picks over ``pool`` seeded with everything taken; returns clips taken."""
        if target <= 0 or not pool.any():
            return 0
        left = pool.copy()
        got = 0
        while got < target and left.any():  # another round when redundant clips were refused
            picks, dists = diverse_picks(vectors, target - got, np.flatnonzero(taken), left, rng,
                                         sample=sample, method=method)
            if not len(picks):
                break
            for i, d in zip(picks.tolist(), dists.tolist(), strict=True):
                detail = {**extra, "distance": None if not np.isfinite(d) else round(d, 5)}
                if take(i, reason, detail):
                    got += 1
            left[picks] = False
        return got

    for cid in force:
        take(id_pos[cid], "forced", {})
    quota_report: dict[str, dict] = {}
    if quotas:
        trig_rows: dict[str, set[int]] = {}
        for row, name, *_ in store.triggers():
            trig_rows.setdefault(name, set()).add(int(row))
        for name, count in quotas.items():
            if name not in trig_rows:
                known = ", ".join(sorted(trig_rows)) or "none in this region"
                raise InputError(f"--quota {name}={count}: no clip in region {store.region.name!r} has "
                                 f"trigger {name!r} (known: {known})")
            has = np.zeros(n, bool)
            has[[pos[r] for r in trig_rows[name] if r in pos]] = True
            already = int((has & taken).sum()) - int(has[prev_pos].sum())
            got = fill_diverse(has & candidate & ~taken, count - already, "quota", {"quota": name})
            quota_report[name] = {"wanted": count, "had": already, "added": got,
                                  "available": int((has & candidate).sum())}
    remaining_budget = budget - len(chosen)
    share = {k: int(round(v * remaining_budget)) for k, v in mix.items()}
    if share.get("rare"):
        rar = load_rarity(store, space=space)
        order = sorted((i for i in range(n) if candidate[i] and int(table.rows[i]) in rar),
                       key=lambda i: (-rar[int(table.rows[i])][1], -rar[int(table.rows[i])][0], i))
        # breadth first over recording units (a drive with every copy of its clips): the rarest
        # clip of every unit, in rarity order, before a second clip of any unit -- ten rare events
        # before the fifth clip of one long one
        seen: dict[int, int] = {}
        rounds = {}
        for i in order:
            u = int(units[i])
            rounds[i] = seen.get(u, 0)
            seen[u] = rounds[i] + 1
        order = sorted(order, key=lambda i: rounds[i])  # stable: rarity order within a round
        got = 0
        for i in order:
            if got >= share["rare"]:
                break
            sc, pct = rar[int(table.rows[i])]
            got += take(i, "rare", {"rarity": round(sc, 5), "percentile": round(pct, 2)})
    # the random share before the diverse one: diverse picks are seeded with everything taken,
    # so they cover what the forced, quota, rare and random picks leave uncovered
    if share.get("random"):
        want = len(chosen) + share["random"]
        for i in rng.permutation(np.flatnonzero(candidate & ~taken)):
            if len(chosen) >= min(want, budget):
                break
            take(int(i), "random", {})
    if share.get("diverse") and budget > len(chosen):  # its share, and what the others left
        fill_diverse(candidate & ~taken, budget - len(chosen), "diverse", {})
    if budget > len(chosen):  # no diverse share, or a pool too small for it: fill at random
        for i in rng.permutation(np.flatnonzero(candidate & ~taken)):
            if len(chosen) >= budget:
                break
            take(int(i), "random", {})
    splits = _split_by_drive(table, units, [i for i, _, _ in chosen], val_fraction, seed)
    out = [
        Selected(table.clip_ids[i], store.region.name, reason, detail, table.sources[i],
                 float(table.source_offset_s[i]), float(table.duration_s[i]), table.drive_ids[i],
                 splits[i])
        for i, reason, detail in chosen
    ]
    counts: dict[str, int] = {}
    for sel in out:
        counts[sel.reason] = counts.get(sel.reason, 0) + 1
    return Selection(store.region.name, budget, out, int(candidate.sum()), int(non_rep.sum()), counts,
                     quota_report, len(prev_pos), previous_missing, store.region)


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(spans):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def _split_by_drive(table, units: np.ndarray, chosen_pos: list[int], val_fraction: float,
                    seed: int) -> dict[int, str]:
    """train/val per chosen clip, by recording unit (drives linked by any pair or duplicate group
    share a side); a unit is named by its smallest drive id, so the split of a unit does not move
    when unrelated clips arrive."""
    if val_fraction <= 0:
        return dict.fromkeys(chosen_pos, "train")
    name: dict[int, str] = {}
    keys = table.drive_keys()
    for i in range(len(table)):
        d = keys[i]
        u = int(units[i])
        if u not in name or d < name[u]:
            name[u] = d
    out = {}
    for i in chosen_pos:
        h = hashlib.blake2b(f"{seed}|{name[int(units[i])]}".encode(), digest_size=8).digest()
        u = int.from_bytes(h, "big") / 2**64
        out[i] = "val" if u < val_fraction else "train"
    return out


#: what a manifest carries: clip (and drive) ids always; scores and source paths when granted
MANIFEST_FIELDS = ("ids",)
MANIFEST_OPTIONAL = {"scores": ("rarity", "percentile", "distance"), "source_paths": ("source",)}


def write_manifest(selection: Selection, path: str | Path, fmt: str | None = None, *,
                   home=None) -> Path:
    """Write the manifest as JSON Lines (default), CSV, or Parquet (needs pyarrow).

    Every write passes the egress gate (:func:`engine.egress.open_target`). With ``home``: outside
    the region's folder it needs the policy to grant ``ids`` to that place (scores and source
    paths are left out unless granted) and is audited first. Without ``home`` only the region's
    own folder is allowed. Another region's folder is always refused.
    """
    from . import egress

    path = Path(path)
    fmt = fmt or {".csv": "csv", ".parquet": "parquet"}.get(path.suffix.lower(), "jsonl")
    records = [s.record() for s in selection.chosen]
    if home is not None:
        region = home.region(selection.region)
    elif selection.origin is not None and selection.origin.name == selection.region:
        region = selection.origin
    else:
        raise PolicyError(f"manifest {path}: the selection of region {selection.region!r} does not "
                          "name its region's folder; pass home= (the clipdex home) so the write "
                          "passes the region's policy")
    target = egress.open_target(home, region, path, operation="manifest", fields=MANIFEST_FIELDS,
                                optional=tuple(MANIFEST_OPTIONAL), records=len(records), kind="manifest")
    drop = [k for f, keys in MANIFEST_OPTIONAL.items() if not target.allows(f) for k in keys]
    records = [{k: v for k, v in r.items() if k not in drop} for r in records]
    path = target.path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "jsonl":
        with tmp.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, sort_keys=False) + "\n")
    elif fmt == "csv":
        import csv

        cols = ["clip_id", "region", "split", "reason", "rarity", "percentile", "distance", "quota", "source",
                "span_start", "span_end", "duration_s", "drive_id"]
        with tmp.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in records:
                w.writerow({**r, "span_start": r["span"][0], "span_end": r["span"][1]})
    elif fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:
            raise InputError("Parquet manifests need pyarrow: pip install 'clipdex[parquet]'") from err
        pq.write_table(pa.Table.from_pylist(records), tmp)
    else:
        raise InputError(f"unknown manifest format {fmt!r}; use jsonl, csv or parquet")
    tmp.replace(path)
    return path
