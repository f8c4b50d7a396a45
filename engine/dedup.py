"""Temporal dedup: candidates from the binary index, verification by time alignment, groups.

1. **Candidates.** Every quality keyframe of the clips to check is range-searched in the region's
   binary index; clip pairs sharing at least ``min_candidate_matches`` keyframes within
   ``candidate_radius`` become candidates. Queries go in blocks, so memory stays bounded and
   nothing N x N is ever built.
2. **Verification.** The two keyframe sequences (sampled at a fixed rate in seconds) are aligned
   by the :func:`kernels.align_keyframe_pairs` kernel: the shift that maximises matching keyframes.
   A pair is a ``duplicate`` when the matched span covers most of *each* clip, ``partial`` when it
   covers a long enough span of both but not most of each (trims, pre/post roll, splices), else
   nothing. Two clips of the same drive whose recorded times do not overlap are never duplicates.
3. **Groups.** Union-find over ``duplicate`` pairs only; partial pairs never merge groups (a splice
   of two drives does not make the drives duplicates). One representative per group: best quality,
   then longest, then earliest.

Incremental: only clips ingested since the last dedup are queried (against the whole region); old
pairs are kept; groups are recomputed from all stored pairs, which is cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import kernels

from .index import QUALITY_FLOOR, ensure_indexes
from .store import ClipTable, RegionStore


@dataclass(frozen=True)
class DedupParams:
    candidate_radius: int = 40  # Hamming bits of 256 for a keyframe to be a candidate match
    match_radius: int = 40  # Hamming bits of 256 for aligned keyframes to count as matched
    min_candidate_matches: int = 2  # shared keyframes for a clip pair to be verified
    min_matches: int = 3  # matched keyframes for any relation
    min_match_fraction: float = 0.6  # matched keyframes / keyframes in the matched span
    whole_coverage: float = 0.8  # a duplicate's matched span covers this much of each clip
    keyframe_hz: float = 2.0
    query_block: int = 32768  # keyframes per range-search block
    same_drive_tolerance_s: float = 1.0


@dataclass
class Pair:
    a: int  # clip row, a < b
    b: int
    relation: str  # "duplicate" | "partial"
    offset_s: float  # b's t=0 lies at a's time offset_s
    a_span: tuple[float, float]
    b_span: tuple[float, float]
    matches: int
    overlap: int
    mean_dist: float

    def as_row(self) -> tuple:
        return (self.a, self.b, self.relation, self.offset_s, *self.a_span, *self.b_span,
                self.matches, self.overlap, self.mean_dist)

    @classmethod
    def from_row(cls, r: tuple) -> Pair:
        return cls(int(r[0]), int(r[1]), r[2], float(r[3]), (r[4], r[5]), (r[6], r[7]), int(r[8]),
                   int(r[9]), float(r[10]))


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


def _union_find(n_rows: int, edges: list[tuple[int, int]]) -> dict[int, list[int]]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comps: dict[int, list[int]] = {}
    for x in parent:
        comps.setdefault(find(x), []).append(x)
    return {k: sorted(v) for k, v in comps.items() if len(v) > 1}


def elect_representatives(groups: dict[int, list[int]], table: ClipTable) -> dict[int, list[int]]:
    """Re-key each group by its representative: best quality, then longest, then earliest."""
    pos = table.position()
    out = {}
    for members in groups.values():
        def key(r: int) -> tuple:
            i = pos[r]
            st = table.start_time[i]
            return (-round(float(table.quality_mean[i]), 1), -round(float(table.duration_s[i]), 1),
                    st if np.isfinite(st) else np.inf, r)

        rep = min(members, key=key)
        out[rep] = members
    return out


def candidate_pairs(store: RegionStore, table: ClipTable, hashes: np.ndarray, valid: np.ndarray,
                    query_clips: np.ndarray, params: DedupParams) -> np.ndarray:
    """Candidate clip-row pairs ``int64[p, 2]`` (a < b), from the binary index."""
    kf_index, _ = ensure_indexes(store)
    kf_clip = np.full(len(hashes), -1, np.int64)
    for r, s, n in zip(table.rows, table.kf_start, table.kf_count, strict=True):
        kf_clip[s : s + n] = r
    pos = table.position()
    q_rows = np.concatenate(
        [np.arange(table.kf_start[pos[int(c)]], table.kf_start[pos[int(c)]] + table.kf_count[pos[int(c)]])
         for c in query_clips]
    ) if len(query_clips) else np.zeros(0, np.int64)
    q_rows = q_rows[valid[q_rows]] if len(q_rows) else q_rows
    keys_all = []
    for lo in range(0, len(q_rows), params.query_block):
        block = q_rows[lo : lo + params.query_block]
        lims, _, ids = kf_index.range_search(np.ascontiguousarray(hashes[block]), params.candidate_radius)
        counts = np.diff(lims)
        q_clip = np.repeat(kf_clip[block], counts)
        hit_clip = kf_clip[ids]
        q_kf = np.repeat(block, counts)
        keep = (hit_clip >= 0) & (hit_clip != q_clip)
        a = np.minimum(q_clip[keep], hit_clip[keep])
        b = np.maximum(q_clip[keep], hit_clip[keep])
        # one vote per (query keyframe, clip pair): a keyframe matching many frames of one clip
        # (a static scene) counts once
        keys_all.append(np.unique(np.stack([a, b, q_kf[keep]], axis=1), axis=0)[:, :2])
    if not keys_all:
        return np.zeros((0, 2), np.int64)
    votes = np.concatenate(keys_all)
    if len(votes) == 0:
        return np.zeros((0, 2), np.int64)
    pairs, n = np.unique(votes, axis=0, return_counts=True)
    return pairs[n >= params.min_candidate_matches]


def verify_pairs(pairs: np.ndarray, table: ClipTable, hashes: np.ndarray, valid: np.ndarray,
                 params: DedupParams) -> list[Pair]:
    if len(pairs) == 0:
        return []
    pos = table.position()
    ia = np.array([pos[int(a)] for a in pairs[:, 0]], np.int64)
    ib = np.array([pos[int(b)] for b in pairs[:, 1]], np.int64)
    al = kernels.align_keyframe_pairs(hashes, valid, table.kf_start, table.kf_count, ia, ib,
                                      params.match_radius, -1)
    step = 1.0 / params.keyframe_hz
    out: list[Pair] = []
    for p in range(len(pairs)):
        m, o = int(al.matches[p]), int(al.overlap[p])
        span_len = int(al.last_a[p]) - int(al.first_a[p]) + 1
        # density inside the matched span, not over the whole overlap: a splice or a trim
        # matches one contiguous stretch and nothing outside it
        if m < params.min_matches or m / span_len < params.min_match_fraction:
            continue
        a, b = int(pairs[p, 0]), int(pairs[p, 1])
        i, j = ia[p], ib[p]
        na, nb = int(table.kf_count[i]), int(table.kf_count[j])
        s = int(al.shift[p])
        fa, la = int(al.first_a[p]), int(al.last_a[p])
        fb, lb = fa - s, la - s
        if table.drive_ids[i] and table.drive_ids[i] == table.drive_ids[j]:
            sa, sb = table.start_time[i], table.start_time[j]
            if np.isfinite(sa) and np.isfinite(sb):
                tol = params.same_drive_tolerance_s
                if sa + table.duration_s[i] <= sb + tol or sb + table.duration_s[j] <= sa + tol:
                    continue  # same car, disjoint times: never the same footage
        cov_a, cov_b = span_len / na, span_len / nb
        relation = "duplicate" if cov_a >= params.whole_coverage and cov_b >= params.whole_coverage else "partial"
        out.append(Pair(a, b, relation, s * step, (fa * step, la * step), (fb * step, lb * step), m, o,
                        float(al.mean_dist[p])))
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
    kf = store.keyframes(snap)
    hashes, quality = kf["hashes"], kf["quality"]
    valid = quality >= QUALITY_FLOOR
    stages["load"] = time.perf_counter() - t0
    done_end = 0 if full else int(store.meta("dedup_clip_end", "0"))
    query_clips = table.rows[table.rows >= done_end]
    if progress:
        progress(f"candidates for {len(query_clips)} clips")
    t = time.perf_counter()
    cand = candidate_pairs(store, table, hashes, valid, query_clips, params)
    stages["candidates"] = time.perf_counter() - t
    if progress:
        progress(f"verifying {len(cand)} candidate pairs")
    t = time.perf_counter()
    new_pairs = verify_pairs(cand, table, hashes, valid, params)
    stages["verify"] = time.perf_counter() - t
    active = set(table.rows.tolist())
    old = [] if full else [Pair.from_row(r) for r in store.pairs()]
    by_key = {(p.a, p.b): p for p in old if p.a in active and p.b in active}
    for p in new_pairs:
        by_key[(p.a, p.b)] = p
    all_pairs = sorted(by_key.values(), key=lambda p: (p.a, p.b))
    groups = elect_representatives(
        _union_find(len(table), [(p.a, p.b) for p in all_pairs if p.relation == "duplicate"]), table
    )
    group_rows = [(m, rep, rep) for rep, members in groups.items() for m in members]
    with store.writer("clipdex dedup"):
        store.replace_dedup([p.as_row() for p in all_pairs], group_rows, incremental=False,
                            clip_end=snap.clip_end)
    return DedupResult(store.region.name, len(table), len(query_clips), len(cand), all_pairs, groups,
                       len(new_pairs), time.perf_counter() - t0, stages)


def load_dedup(store: RegionStore) -> tuple[list[Pair], dict[int, list[int]]]:
    """Stored pairs and groups (representative -> members)."""
    pairs = [Pair.from_row(r) for r in store.pairs()]
    groups: dict[int, list[int]] = {}
    for row, (_, rep) in store.groups().items():
        groups.setdefault(rep, []).append(row)
    return pairs, {k: sorted(v) for k, v in groups.items()}
