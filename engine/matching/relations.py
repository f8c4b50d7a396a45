"""Clip relations: verified pairs become duplicate groups, components and recording units.

Every consumer (dedup, rarity, selection, erasure, the report) builds these from the same pairs
with the same union-find, so a group in ``clipdex dedup`` is the group ``select`` and ``rare``
see. Functions over rows and pairs (anything with ``a``, ``b`` and ``relation``).

- :func:`duplicate_groups`: union-find over ``duplicate`` pairs only; partial pairs never merge
  groups (a splice of two drives does not make the drives duplicates);
- :func:`elect_representatives`: one clip per group, the one selection trains on;
- :func:`relative_components`: clips linked by any verified pair (duplicate or partial);
- :func:`recording_units`: clips linked by a drive or by a relation, closed transitively;
- :func:`shown_view`: the stored pairs as users see them (unexplained partials dropped, offsets
  refined through shared sources, partials extended through whole copies) and the groups,
  computed once per read snapshot.

The shown view reads the store; it never writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # types only: the shown view takes the store, table and dedup parameters given
    from engine.matching.dedup import DedupParams
    from engine.store.region import ClipTable, RegionStore


def components(n: int, edges: Iterable[tuple[int, int]]) -> np.ndarray:
    """Per position 0..n-1, the smallest position of its connected component under ``edges``."""
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def linked_groups(edges: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """Connected components of clip rows linked by ``edges``, two clips or more each, keyed by
    their smallest row, members ascending."""
    edges = [(int(a), int(b)) for a, b in edges]
    rows = np.unique(np.asarray(edges, np.int64).reshape(-1)) if edges else np.zeros(0, np.int64)
    at = {int(r): i for i, r in enumerate(rows.tolist())}
    comp = components(len(rows), ((at[a], at[b]) for a, b in edges))
    out: dict[int, list[int]] = {}
    for i, c in enumerate(comp.tolist()):
        out.setdefault(int(rows[c]), []).append(int(rows[i]))
    return {k: v for k, v in out.items() if len(v) > 1}


def duplicate_groups(pairs: Iterable) -> dict[int, list[int]]:
    """Groups of whole duplicates (``relation == "duplicate"``), keyed by their smallest row."""
    return linked_groups((p.a, p.b) for p in pairs if p.relation == "duplicate")


def elect_representatives(groups: dict[int, list[int]], table) -> dict[int, list[int]]:
    """Re-key each group by its representative: best quality, then longest, then earliest."""
    pos = table.position()
    out = {}
    for members in groups.values():
        def key(r: int) -> tuple:
            i = pos[r]
            st = table.start_time[i]
            return (-round(float(table.quality_mean[i]), 1), -round(float(table.duration_s[i]), 1),
                    st if np.isfinite(st) else float("inf"), r)

        out[min(members, key=key)] = sorted(members)
    return out


def group_rows(groups: dict[int, list[int]]) -> list[tuple[int, int, int]]:
    """The stored form of ``groups`` (representative -> members): (clip_row, group_id,
    representative) per member, the group id being its representative."""
    return [(m, rep, rep) for rep, members in groups.items() for m in members]


def relative_components(table, pairs) -> np.ndarray:
    """Per table position, a component id shared by clips linked by any verified pair."""
    pos = table.position()
    return components(len(table), ((pos[p.a], pos[p.b]) for p in pairs if p.a in pos and p.b in pos))


def drive_codes(table) -> np.ndarray:
    """Per table position, an int code of its drive; a clip without a drive counts as a drive of
    its recording (the pieces of one recording are one drive, never each other's "others")."""
    codes: dict[str, int] = {}
    out = np.empty(len(table), np.int64)
    for i, d in enumerate(table.drive_keys()):
        out[i] = codes.setdefault(d, len(codes))
    return out


def recording_units(comp: np.ndarray, drives: np.ndarray) -> np.ndarray:
    """Per clip, its *recording unit*: clips linked by a drive or by a duplicate relation, closed
    transitively (an upload of a drive's clip, with its own upload id, belongs to that drive)."""
    first: dict[tuple[str, int], int] = {}
    edges = []
    for i in range(len(comp)):
        for key in (("c", int(comp[i])), ("d", int(drives[i]))):
            j = first.setdefault(key, i)
            if j != i:
                edges.append((i, j))
    return components(len(comp), edges)


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
    # re-timing: b's time t shows a's footage at offset_s + rate * t (1: same speed; 0.5: b plays
    # a at half speed, a slow-motion copy; 0.83: 30 fps frames written at 25 fps)
    rate: float = 1.0
    # b shows a's footage mirrored left to right (found only with DedupParams.mirror)
    mirrored: bool = False

    def as_row(self) -> tuple:
        return (self.a, self.b, self.relation, self.offset_s, *self.a_span, *self.b_span,
                self.matches, self.overlap, self.mean_dist, self.rate, int(self.mirrored))

    @classmethod
    def from_row(cls, r: tuple) -> Pair:
        rate = float(r[11]) if len(r) > 11 and r[11] is not None else 1.0
        mirrored = bool(r[12]) if len(r) > 12 and r[12] is not None else False
        return cls(int(r[0]), int(r[1]), r[2], float(r[3]), (r[4], r[5]), (r[6], r[7]), int(r[8]),
                   int(r[9]), float(r[10]), rate, mirrored)


def recording_codes(table: ClipTable) -> np.ndarray:
    """Per table position, an int code of the clip's recording."""
    return np.unique(np.asarray(table.recording_ids, dtype=object).astype(str),
                     return_inverse=True)[1].astype(np.int64)


def has_recorded_time(start) -> np.ndarray:
    """Vectorised: the clip carries a recorded start time (NaN or 0 mean unknown)."""
    start = np.asarray(start, np.float64)
    return np.isfinite(start) & (start > 0)


def recorded_far_apart(sa, da, sb, db, params: DedupParams):
    """Vectorised: both start times known and the recorded ranges more than
    ``params.max_recorded_gap_s`` apart (False everywhere when the rule is off)."""
    sa, da, sb, db = (np.asarray(v, np.float64) for v in (sa, da, sb, db))
    if params.max_recorded_gap_s <= 0:
        return np.zeros(np.broadcast(sa, sb).shape, bool)
    with np.errstate(invalid="ignore"):
        gap = np.maximum(sa, sb) - np.minimum(sa + da, sb + db)
        return np.isfinite(gap) & (gap > params.max_recorded_gap_s)


def recorded_contradicts(sa, da, sb, db, offset, params: DedupParams):
    """Vectorised: both start times known and the match (B's t=0 at A's time ``offset``) at odds
    with them: recorded more than ``max_recorded_gap_s`` apart, or B's recorded start differs from
    A's start + offset by more than ``recorded_time_tolerance_s`` beyond a whole number of
    ``recorded_zone_step_s`` (a time-zone mistake)."""
    far = recorded_far_apart(sa, da, sb, db, params)
    if params.max_recorded_gap_s <= 0 or params.recorded_time_tolerance_s <= 0:
        return far
    sa, sb, offset = (np.asarray(v, np.float64) for v in (sa, sb, offset))
    known = has_recorded_time(sa) & has_recorded_time(sb)
    with np.errstate(invalid="ignore"):
        residual = (sb - sa) - offset
        step = params.recorded_zone_step_s
        zone = residual - np.round(residual / step) * step if step > 0 else residual
        return far | (known & (np.abs(zone) > params.recorded_time_tolerance_s))


def explained_partials(pairs: list[Pair], table: ClipTable, params: DedupParams) -> list[Pair]:
    """Drop partial pairs between clips whose recorded times contradict the match
    (:func:`recorded_contradicts`: days apart, or apart by other than the match's offset) that no
    edit explains.

    Footage recorded at other times can only be shared through an edit: a splice carries the
    recorded start time of its *first* part, so its second part matches a source recorded at
    another time. Such a partial (A, B) is kept when A or B also shares a *different* part of
    itself (spans overlapping by at most ``edit_overlap_s`` and by less than half of the suspect
    span) with a clip recorded at a consistent
    time -- the edit's other source. That consistent part must be the edit's *first* part
    (beginning within ``edit_first_part_s`` of its start) and the suspect span must lie after it:
    a splice carries its first part's recorded time, while the *source* of a splice's first part
    shares a stretch from its middle with it and is no edit itself. Without that, two clips
    recorded days apart that match over a stretch are the same place on another day (a car
    waiting at the same red light), not the same footage.

    One stretch of an edit is one piece of footage: where several kept suspects cover the same
    stretch of the edit (more than half of the shorter span), the best-supported one stands,
    and the others stay only when related to its partner (paired with it, or in its duplicate
    group); an unrelated one is a look-alike of the true source from another day. Pairs are
    stored unfiltered and filtered when read, so an explanation that is ingested later makes the
    pair appear.
    """
    if params.max_recorded_gap_s <= 0 or not pairs:
        return pairs
    pos = table.position()
    start, dur = table.start_time, table.duration_s

    def far(p: Pair) -> bool:
        i, j = pos.get(p.a), pos.get(p.b)
        if i is None or j is None:
            return False
        return bool(recorded_contradicts(start[i], dur[i], start[j], dur[j], p.offset_s, params))

    suspects = [p for p in pairs if p.relation == "partial" and far(p)]
    if not suspects:
        return pairs
    by_clip: dict[int, list[Pair]] = {}
    for p in pairs:
        by_clip.setdefault(p.a, []).append(p)
        by_clip.setdefault(p.b, []).append(p)

    def span(p: Pair, x: int) -> tuple[float, float]:
        return p.a_span if x == p.a else p.b_span

    def explained(p: Pair, x: int) -> bool:
        s = span(p, x)
        for q in by_clip[x]:
            if q is p or far(q):
                continue
            t = span(q, x)
            if t[0] > params.edit_first_part_s + 1e-9 or s[0] < t[0]:
                continue  # not x's first part, or the suspect is not after it: x is no edit
            shared = min(s[1], t[1]) - max(s[0], t[0])
            # a *different* part: barely overlapping, and most of the suspect span outside it (a
            # 3-keyframe span is only 1 s long, within edit_overlap_s of anything)
            if shared <= params.edit_overlap_s + 1e-9 and shared < 0.5 * (s[1] - s[0]):
                return True
        return False

    drop = set()
    edits: dict[int, list[Pair]] = {}  # edit clip -> the suspects its edit explains
    for p in suspects:
        xs = [x for x in (p.a, p.b) if explained(p, x)]
        if not xs:
            drop.add(id(p))
        for x in xs:
            edits.setdefault(x, []).append(p)
    drop |= _lookalikes(edits, pairs, span)
    return [p for p in pairs if id(p) not in drop] if drop else pairs


def _lookalikes(edits: dict[int, list[Pair]], pairs: list[Pair], span) -> set[int]:
    """ids of suspects that cover the same stretch of an edit as a better-supported suspect
    whose partner they are not related to (see :func:`explained_partials`)."""
    if not any(len(v) > 1 for v in edits.values()):
        return set()
    linked = {(p.a, p.b) for p in pairs} | {(p.b, p.a) for p in pairs}
    group_of = {m: g for g, members in duplicate_groups(pairs).items()
                for m in members}

    def root(x: int) -> int:
        return group_of.get(x, x)

    out = set()
    for x, ps in edits.items():
        ps = sorted(ps, key=lambda p: (-p.matches, p.a, p.b))
        for i, p in enumerate(ps):
            s, other = span(p, x), (p.b if x == p.a else p.a)
            for q in ps[:i]:
                if id(q) in out:
                    continue
                t, partner = span(q, x), (q.b if x == q.a else q.a)
                shared = min(s[1], t[1]) - max(s[0], t[0])
                if shared <= 0.5 * min(s[1] - s[0], t[1] - t[0]):
                    continue
                if (other, partner) not in linked and root(other) != root(partner):
                    out.add(id(p))
                    break
    return out


def group_consistent(pairs: list[Pair], groups: dict[int, list[int]], table: ClipTable,
                      params: DedupParams) -> list[Pair]:
    """Drop partial pairs contradicted by a duplicate of either clip.

    Whole duplicates are the same footage, so a relation must hold for every member of a group:
    when clip A and some duplicate of clip B come from the same drive at disjoint recorded times
    (e.g. B is another uploader's re-encode of the clip *after* A, and A and B only look alike
    where the drive continues), A and B cannot share footage either."""
    members: dict[int, list[int]] = {}
    for ms in groups.values():
        for m in ms:
            members[m] = ms
    pos = table.position()
    tol = params.same_drive_tolerance_s

    rec = recording_codes(table)

    def disjoint_same_drive(x: int, y: int) -> bool:
        i, j = pos[x], pos[y]
        if rec[i] == rec[j]:
            oi, oj = table.source_offset_s[i], table.source_offset_s[j]
            return bool(oi + table.duration_s[i] <= oj + 1e-6 or oj + table.duration_s[j] <= oi + 1e-6)
        d = table.drive_ids[i]
        if not d or d != table.drive_ids[j]:
            return False
        sa, sb = table.start_time[i], table.start_time[j]
        if not (np.isfinite(sa) and np.isfinite(sb)):
            return False
        return bool(sa + table.duration_s[i] <= sb + tol or sb + table.duration_s[j] <= sa + tol)

    out = []
    for p in pairs:
        if p.relation == "partial" and (p.a in members or p.b in members):
            xs, ys = members.get(p.a, [p.a]), members.get(p.b, [p.b])
            if any(disjoint_same_drive(x, y) for x in xs for y in ys):
                continue
        out.append(p)
    return out


def refine_offsets(pairs: list[Pair], table: ClipTable, params: DedupParams) -> list[Pair]:
    """Partial pairs get the offset of their best-supported path through a third clip.

    A short partial match in a scene that barely changes fits several keyframe shifts (a trim of
    a clip against a splice of the same clip: 4 keyframes, 1 s off). When both clips share longer
    matches with a third clip C (the source both were cut from), the offset through C is
    ``offset(A, C) + offset(C, B)``. It replaces the direct one when the weaker of the two legs
    has more matched keyframes than the direct match, the two stretches of C overlap (the same
    footage), and it lies within ``offset_refine_max_s`` of the direct offset (the same
    alignment, only sharper). Offsets already taken from agreeing recorded start times are
    exact and stay. Spans stay the matched keyframes. One hop; pairs are not modified in place.

    Recorded times confirmed through C: when both legs are exact (their offsets are their
    recorded start-time differences) and A and B's own recorded times differ by exactly the
    composed offset, three clocks agree on how the footage lines up, and that offset replaces
    the direct one however far the keyframe alignment was (a splice and a trim of one source,
    matched over 3.5 s of a scene where every shift within 2 s looked alike, were 1.8 s off).
    """
    if params.offset_refine_max_s <= 0 or not pairs:
        return pairs
    pos = table.position()
    start = table.start_time
    nbrs: dict[int, list[tuple[int, float, tuple[float, float], int]]] = {}
    for p in pairs:
        if p.rate != 1.0:  # a re-timed copy's offsets do not compose
            continue
        # (other clip, other's t=0 in this clip's time, this pair's stretch of the *other* clip, matches)
        nbrs.setdefault(p.a, []).append((p.b, p.offset_s, p.b_span, p.matches))
        nbrs.setdefault(p.b, []).append((p.a, -p.offset_s, p.a_span, p.matches))

    def exact(p: Pair) -> bool:
        i, j = pos.get(p.a), pos.get(p.b)
        if i is None or j is None or not (has_recorded_time(start[i]) and has_recorded_time(start[j])):
            return False
        return abs((start[j] - start[i]) - p.offset_s) <= 1e-3

    exact_leg = {(p.a, p.b) for p in pairs if exact(p)}
    exact_leg |= {(b, a) for a, b in exact_leg}
    out = []
    for p in pairs:
        if p.relation != "partial" or p.rate != 1.0 or (p.a, p.b) in exact_leg:
            out.append(p)
            continue
        b_side = {c: (off, span, m) for c, off, span, m in nbrs.get(p.b, ())}
        confirmed = _confirmed_through(p, nbrs.get(p.a, ()), b_side, exact_leg, pos, start)
        if confirmed is not None:
            out.append(replace(p, offset_s=confirmed))
            continue
        best = None
        for c, off_ac, span_c_from_a, m_ac in nbrs.get(p.a, ()):
            if c == p.b or c not in b_side:
                continue
            off_bc, span_c_from_b, m_bc = b_side[c]
            support = min(m_ac, m_bc)
            if support <= p.matches or (best is not None and support <= best[0]):
                continue
            if min(span_c_from_a[1], span_c_from_b[1]) < max(span_c_from_a[0], span_c_from_b[0]):
                continue  # the two matches use different parts of C: not the same footage
            composed = off_ac - off_bc  # B's t=0 in A's time: C's t=0 in A's, less C's in B's
            if abs(composed - p.offset_s) <= params.offset_refine_max_s:
                best = (support, composed)
        out.append(p if best is None else replace(p, offset_s=float(best[1])))
    return out


def _confirmed_through(p: Pair, a_side, b_side: dict, exact_leg: set, pos: dict, start) -> float | None:
    """The recorded offset of ``p`` where a third clip confirms it (see :func:`refine_offsets`)."""
    i, j = pos.get(p.a), pos.get(p.b)
    if i is None or j is None or not (has_recorded_time(start[i]) and has_recorded_time(start[j])):
        return None
    recorded = float(start[j] - start[i])
    for c, off_ac, span_c_from_a, _ in a_side:
        if c == p.b or c not in b_side or (p.a, c) not in exact_leg or (p.b, c) not in exact_leg:
            continue
        off_bc, span_c_from_b, _ = b_side[c]
        if min(span_c_from_a[1], span_c_from_b[1]) < max(span_c_from_a[0], span_c_from_b[0]):
            continue
        if abs((off_ac - off_bc) - recorded) <= 1e-3:
            return recorded
    return None


#: see :func:`partials_through_copies`
MAX_COPIES_PRODUCT = 4096


def partials_through_copies(pairs: list[Pair]) -> list[Pair]:
    """``pairs`` plus the partial overlaps their whole duplicates imply.

    A whole duplicate holds all of its source's footage, so a clip that partially overlaps the
    source overlaps every whole copy of it the same way: a splice of a source overlaps a
    crop-and-rescale copy of that source, which a keyframe match cannot show (cropping moves
    the 256-bit hash as far as unrelated footage; the crop is linked to its source by the
    same-recording rule, which a splice with its own start time does not meet). For each partial
    pair (A, B) and each clip A' that whole duplicates link to A (transitively, offsets composed
    along the links), the pair (A', B) is added with the composed offset, A's span shifted into
    A' and the partial's matches, unless A' and B are already paired or in one duplicate group;
    likewise on B's side and on both. A partial between two groups whose sizes multiply to more
    than :data:`MAX_COPIES_PRODUCT` is shown as matched only (a group of thousands of uploads
    would otherwise multiply every partial of it). Pairs are not modified in place.
    """
    dup_nbrs: dict[int, list[tuple[int, float]]] = {}
    for p in pairs:
        # (other clip, other's t=0 in this clip's time); a re-timed copy's clock differs, so its
        # offsets do not compose
        if p.relation == "duplicate" and p.rate == 1.0:
            dup_nbrs.setdefault(p.a, []).append((p.b, p.offset_s))
            dup_nbrs.setdefault(p.b, []).append((p.a, -p.offset_s))
    if not dup_nbrs or not any(p.relation == "partial" for p in pairs):
        return pairs

    cache: dict[int, dict[int, float]] = {}

    def copies(x: int) -> dict[int, float]:
        """Every clip duplicate-linked to x -> x's t=0 in that clip's time (x itself: 0)."""
        if x in cache:
            return cache[x]
        seen = cache[x] = {x: 0.0}
        todo = [x]
        while todo:
            c = todo.pop()
            for d, off_cd in dup_nbrs.get(c, ()):
                if d not in seen:  # x's t=0 in d's time: x's in c's, less d's t=0 in c's time
                    seen[d] = seen[c] - off_cd
                    todo.append(d)
        return seen

    known = {(p.a, p.b) for p in pairs}
    group_of: dict[int, int] = {}
    for x in dup_nbrs:
        if x not in group_of:
            for c in copies(x):
                group_of[c] = x
    out = list(pairs)
    for p in pairs:
        if p.relation != "partial" or p.rate != 1.0 or (p.a not in dup_nbrs and p.b not in dup_nbrs):
            continue
        a_side, b_side = copies(p.a), copies(p.b)
        if len(a_side) * len(b_side) > MAX_COPIES_PRODUCT:
            continue
        for a2, shift_a in a_side.items():  # p.a's t=0 in a2's time
            for b2, shift_b in b_side.items():  # p.b's t=0 in b2's time
                if a2 == p.a and b2 == p.b:
                    continue
                key = (min(a2, b2), max(a2, b2))
                if a2 == b2 or key in known or (a2 in group_of and group_of.get(b2) == group_of[a2]):
                    continue
                off = shift_a + p.offset_s - shift_b  # b2's t=0 in a2's time
                span_a = (p.a_span[0] + shift_a, p.a_span[1] + shift_a)
                span_b = (p.b_span[0] + shift_b, p.b_span[1] + shift_b)
                if a2 < b2:
                    q = Pair(a2, b2, "partial", float(off), span_a, span_b, p.matches, p.overlap, p.mean_dist)
                else:
                    q = Pair(b2, a2, "partial", float(-off), span_b, span_a, p.matches, p.overlap, p.mean_dist)
                known.add(key)
                out.append(q)
    return out


def shown_pairs(pairs: list[Pair], table: ClipTable, params: DedupParams) -> list[Pair]:
    """Stored pairs as shown: unexplained partials dropped, offsets refined through shared sources,
    partial overlaps extended to whole duplicates (:func:`partials_through_copies`)."""
    shown = refine_offsets(explained_partials(pairs, table, params), table, params)
    return partials_through_copies(shown) if params.partials_through_copies else shown


def shown_view(store: RegionStore, table: ClipTable | None, params: DedupParams
               ) -> tuple[list[Pair], dict[int, list[int]]]:
    """Stored pairs as shown (:func:`shown_pairs`) and groups (representative -> members), once
    per read snapshot: the catalog version, the last dedup and regroup, the parameters. Callers
    get their own lists."""
    key = (str(store.catalog_path), store.snapshot().version, store.meta("dedup_at"),
           store.meta("groups_at"), repr(params))
    if key not in _SHOWN:
        pairs = [Pair.from_row(r) for r in store.pairs()]
        if any(p.relation == "partial" for p in pairs):
            pairs = shown_pairs(pairs, table if table is not None else store.clip_table(), params)
        groups: dict[int, list[int]] = {}
        for row, (_, rep) in store.groups().items():
            groups.setdefault(rep, []).append(row)
        if len(_SHOWN) >= 4:
            _SHOWN.pop(next(iter(_SHOWN)))
        _SHOWN[key] = (pairs, {k: sorted(v) for k, v in groups.items()})
    pairs, groups = _SHOWN[key]
    return list(pairs), {k: list(v) for k, v in groups.items()}


#: shown views of the last few read snapshots
_SHOWN: dict[tuple, tuple[list[Pair], dict[int, list[int]]]] = {}
