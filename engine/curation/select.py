"""Training-set selection policy: budgeted, duplicate-free, rare-first, diverse, leak-free, explained.

Order of filling the budget:

1. ``force`` clips (always in, reason ``forced``);
2. ``quotas``: per trigger, diverse picks among the clips carrying it (reason ``quota``);
3. ``rare`` share: the rarest clips (reason ``rare`` with score and percentile), breadth first
   over recording units (:func:`engine.matching.relations.recording_units`): the rarest clip of each unit
   before a second clip of any;
4. ``random`` share (reason ``random``), from ``np.random.default_rng(seed)``: an unbiased
   sample of what the region holds;
5. ``diverse`` share and whatever the others left of the budget: picks that cover the embedding
   space on average (:func:`engine.curation.diversity.diverse_picks`), seeded with everything already
   chosen and with a previous training set if given, so they cover what the forced, quota, rare
   and random picks leave uncovered (reason ``diverse`` with the distance to the nearest other
   chosen clip). Without a diverse share, or when its pool runs out, the rest of the budget is
   filled at random.

Only one clip of a duplicate group is a candidate (its representative), and a clip is redundant
once the clips already chosen cover most of its duration through partial overlaps. The split into
train/validation is by connected drive: drives linked by any duplicate or partial pair fall on the
same side, so neither a drive nor a duplicate group appears in both.

The geometry of the diverse picks lives in :mod:`engine.curation.diversity`, the manifest a selection is
written to in :mod:`engine.curation.manifest` (its names are importable from here too: a selection is
usually written right after it is made).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.curation.diversity import DIVERSITY_METHODS, diverse_picks
from engine.curation.manifest import Selected, Selection, read_manifest, write_manifest
from engine.errors import InputError
from engine.matching.dedup import load_dedup
from engine.matching.relations import drive_codes, recording_units, relative_components
from engine.scenes.rarity import load_rarity
from engine.store.region import ClipTable, RegionStore

__all__ = ["DEFAULT_MIX", "STRATEGIES", "Selected", "Selection", "diverse_picks", "parse_mix",
           "read_manifest", "select_clips", "write_manifest"]

#: a clip is redundant once the chosen clips cover this fraction of its duration
REDUNDANT_COVERAGE = 0.8
#: the shares a mix may name, and the mix used when none is given
STRATEGIES = ("rare", "diverse", "random")
DEFAULT_MIX = {"rare": 0.3, "diverse": 0.6, "random": 0.1}


def parse_mix(text: str) -> dict[str, float]:
    """``"rare=0.3,diverse=0.6,random=0.1"`` -> shares of the budget summing to 1.

    The text form of a mix, as the CLI and the web app's selection form take it."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, val = part.partition("=")
        name = name.strip()
        if name not in STRATEGIES:
            raise InputError(f"unknown strategy {name!r} in mix {text!r}; use rare, diverse, random")
        try:
            mix[name] = float(val)
        except ValueError:
            raise InputError(f"mix {text!r}: {part!r} needs a number, e.g. rare=0.3") from None
    total = _mix_total(mix, repr(text))
    return {k: v / total for k, v in mix.items()}


def _mix_total(mix: Mapping[str, float], shown: str) -> float:
    """Sum of the shares of ``mix`` once each is known to be a finite number >= 0 of a known
    strategy and their sum > 0 (``shown``: the mix as the caller gave it, for messages)."""
    for name, share in mix.items():
        if name not in STRATEGIES:
            raise InputError(f"unknown strategy {name!r} in mix {shown}; use rare, diverse, random")
        if not math.isfinite(share) or share < 0:
            raise InputError(f"mix {shown}: share of {name} must be >= 0")
    total = sum(mix.values())
    if total <= 0:
        raise InputError(f"mix {shown}: shares must add up to more than 0")
    return total


def _check_request(budget: int, mix: Mapping[str, float], val_fraction: float, method: str,
                   quotas: Mapping[str, int]) -> None:
    """Refuse values select_clips cannot honour, naming the value and what it may be."""
    if budget < 1:
        raise InputError(f"budget {budget} must be >= 1 clip")
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"validation fraction {val_fraction} must be in [0, 1)")
    if method not in DIVERSITY_METHODS:
        raise InputError(f"diversity method {method!r} is unknown; use coverage or kcentre")
    total = _mix_total(mix, repr(dict(mix)))
    if abs(total - 1.0) > 1e-6:
        raise InputError(f"mix {dict(mix)!r}: shares add up to {total:g}; give fractions of the budget "
                         "that add up to 1 (parse_mix scales a text mix)")
    for name, count in quotas.items():
        if not name or isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
            raise InputError(f"quota {name!r}: {count!r} clips; give a trigger name and a whole number "
                             ">= 0 of clips carrying it")


def select_clips(
    store: RegionStore,
    budget: int,
    *,
    mix: Mapping[str, float] | None = None,
    seed: int = 0,
    val_fraction: float = 0.0,
    exclude: Sequence[str] = (),
    force: Sequence[str] = (),
    previous: Sequence[str] = (),
    quotas: Mapping[str, int] | None = None,
    sample: int | None = None,
    space: str | None = None,
    method: str = "coverage",
) -> Selection:
    """Fill ``budget`` clips: forced, quotas per trigger, rare, random, diverse (see module doc).

    ``mix``: shares of the budget left after forced and quota clips, adding up to 1
    (``DEFAULT_MIX`` when not given). ``previous`` is a previous training set (clip ids): its
    clips seed the diverse picks and are not selected again, so a new selection adds what the old
    one misses; ids no longer in the region are ignored (counted in
    ``Selection.previous_missing``). ``method``, ``sample``: see
    :func:`engine.curation.diversity.diverse_picks`. ``space``: an imported embedding space
    (:mod:`engine.scenes.spaces`) for rarity and diversity instead of clipdex's own embeddings.
    """
    mix = dict(DEFAULT_MIX if mix is None else mix)
    quotas = dict(quotas or {})
    _check_request(budget, mix, val_fraction, method, quotas)
    pool = _pool(store, exclude=exclude, force=force, previous=previous, space=space)
    fill = _Fill(pool, budget, np.random.default_rng(seed), sample=sample, method=method)
    for cid in force:
        fill.take(pool.id_pos[cid], "forced", {})
    quota_report = _fill_quotas(fill, store, quotas) if quotas else {}
    share = {k: int(round(v * fill.left)) for k, v in mix.items()}
    if share.get("rare"):
        _fill_rare(fill, load_rarity(store, space=space), share["rare"])
    # the random share before the diverse one: diverse picks are seeded with everything taken,
    # so they cover what the forced, quota, rare and random picks leave uncovered
    if share.get("random"):
        fill.random(len(fill.chosen) + share["random"])
    if share.get("diverse") and fill.left > 0:  # its share, and what the others left
        fill.diverse(pool.candidate & ~fill.taken, fill.left, "diverse", {})
    if fill.left > 0:  # no diverse share, or a pool too small for it: fill at random
        fill.random(budget)
    return _selection(store, pool, fill, quota_report, val_fraction, seed)


@dataclass
class _Pool:
    """What a selection picks from: the region's clips in table order (positions), which of them
    may be chosen, how they relate and where they lie in the embedding space."""

    table: ClipTable
    pos: dict[int, int]  # catalog row -> position
    id_pos: dict[str, int]  # clip id -> position
    units: np.ndarray  # recording unit per position
    non_rep: np.ndarray  # bool: a duplicate of its group's representative
    candidate: np.ndarray  # bool: may be chosen
    prev_pos: np.ndarray  # positions of the previous training set
    previous_missing: int  # its clips no longer in the region
    partial_cover: dict[int, list[tuple[int, float, float]]]  # position -> (other, span start, end)
    vectors: np.ndarray  # float32[n, d] embeddings by position


def _pool(store: RegionStore, *, exclude: Sequence[str], force: Sequence[str], previous: Sequence[str],
          space: str | None) -> _Pool:
    """The candidates of ``store``: one representative per duplicate group, without the excluded
    clips, the previous training set and the duplicates of its clips."""
    table = store.clip_table()
    n = len(table)
    pos = table.position()
    id_pos = {cid: i for i, cid in enumerate(table.clip_ids)}
    for what, ids in (("to exclude", exclude), ("to force", force)):
        for cid in ids:
            if cid not in id_pos:
                raise InputError(f"clip {cid!r} ({what}) is not in region {store.region.name!r}")
    prev_pos = np.array(sorted({id_pos[c] for c in previous if c in id_pos}), np.int64)
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
    return _Pool(table, pos, id_pos, units, non_rep, candidate, prev_pos,
                 len(set(previous)) - len(prev_pos), partial_cover, _vectors(store, table, space))


def _vectors(store: RegionStore, table: ClipTable, space: str | None) -> np.ndarray:
    """Embeddings by table position: clipdex's own, or those of an imported ``space``."""
    if not len(table):
        return np.zeros((0, 1), np.float32)
    if space is not None:
        from engine.scenes.spaces import space_matrix

        return space_matrix(store, space, table)
    return np.ascontiguousarray(store.embeddings(table.snapshot)[table.rows])


class _Fill:
    """The growing selection: positions taken in order with reason and detail, within the budget.

    A clip is refused when already taken (the previous training set counts as taken), when the
    budget is full, or when taken clips already cover most of its duration (:meth:`redundant`).
    """

    def __init__(self, pool: _Pool, budget: int, rng: np.random.Generator, *, sample: int | None,
                 method: str):
        self.pool, self.budget, self.rng = pool, budget, rng
        self.sample, self.method = sample, method
        self.chosen: list[tuple[int, str, dict]] = []
        self.taken = np.zeros(len(pool.table), bool)
        self.taken[pool.prev_pos] = True  # covers partial overlaps like chosen clips do

    @property
    def left(self) -> int:
        """Clips the budget still has room for."""
        return self.budget - len(self.chosen)

    def redundant(self, i: int) -> bool:
        """Whether taken clips that partially overlap clip ``i`` cover most of its duration."""
        cover = [(s, e) for j, s, e in self.pool.partial_cover.get(i, ()) if self.taken[j]]
        if not cover:
            return False
        covered = _union_length(cover) + 0.5  # spans are keyframe times; add one sample period
        return covered >= REDUNDANT_COVERAGE * self.pool.table.duration_s[i]

    def take(self, i: int, reason: str, detail: dict) -> bool:
        """Choose position ``i`` unless it is refused; returns whether it was taken."""
        if self.taken[i] or len(self.chosen) >= self.budget or self.redundant(i):
            return False
        self.taken[i] = True
        self.chosen.append((i, reason, detail))
        return True

    def diverse(self, allowed: np.ndarray, target: int, reason: str, extra: dict) -> int:
        """Up to ``target`` diverse picks among ``allowed`` positions, seeded with everything
        taken; picks refused as redundant are replaced in another round. Returns clips taken."""
        if target <= 0 or not allowed.any():
            return 0
        left = allowed.copy()
        got = 0
        while got < target and left.any():
            picks, dists = diverse_picks(self.pool.vectors, target - got, np.flatnonzero(self.taken), left,
                                         self.rng, sample=self.sample, method=self.method)
            if not len(picks):
                break
            for i, d in zip(picks.tolist(), dists.tolist(), strict=True):
                detail = {**extra, "distance": None if not np.isfinite(d) else round(d, 5)}
                if self.take(i, reason, detail):
                    got += 1
            left[picks] = False
        return got

    def random(self, upto: int) -> None:
        """Random candidates not yet taken, until ``upto`` clips (at most the budget) are chosen."""
        limit = min(upto, self.budget)
        for i in self.rng.permutation(np.flatnonzero(self.pool.candidate & ~self.taken)):
            if len(self.chosen) >= limit:
                break
            self.take(int(i), "random", {})


def _fill_quotas(fill: _Fill, store: RegionStore, quotas: Mapping[str, int]) -> dict[str, dict]:
    """Per trigger, diverse picks among the candidates carrying it until ``count`` chosen clips
    (the previous training set not counted) carry it. Returns per trigger what was wanted, what
    the clips chosen before had, what was added and what was available."""
    pool = fill.pool
    trigger_rows: dict[str, set[int]] = {}
    for row, name, *_ in store.triggers():
        trigger_rows.setdefault(name, set()).add(int(row))
    report: dict[str, dict] = {}
    for name, count in quotas.items():
        if name not in trigger_rows:
            known = ", ".join(sorted(trigger_rows)) or "none in this region"
            raise InputError(f"quota {name}={count}: no clip in region {store.region.name!r} has "
                             f"trigger {name!r} (known: {known})")
        has = np.zeros(len(pool.table), bool)
        has[[pool.pos[r] for r in trigger_rows[name] if r in pool.pos]] = True
        already = int((has & fill.taken).sum()) - int(has[pool.prev_pos].sum())
        got = fill.diverse(has & pool.candidate & ~fill.taken, count - already, "quota", {"quota": name})
        report[name] = {"wanted": count, "had": already, "added": got,
                        "available": int((has & pool.candidate).sum())}
    return report


def _fill_rare(fill: _Fill, rarity: dict[int, tuple[float, float]], count: int) -> None:
    """Take up to ``count`` of the rarest candidates (``rarity``: catalog row -> (score,
    percentile)) in :func:`_rare_order`."""
    got = 0
    for i in _rare_order(fill.pool, rarity):
        if got >= count:
            break
        score, pct = rarity[int(fill.pool.table.rows[i])]
        got += fill.take(i, "rare", {"rarity": round(score, 5), "percentile": round(pct, 2)})


def _rare_order(pool: _Pool, rarity: dict[int, tuple[float, float]]) -> list[int]:
    """Candidates with a rarity score, rarest first, breadth first over recording units (a drive
    with every copy of its clips): the rarest clip of every unit, in rarity order, before a second
    clip of any unit -- ten rare events before the fifth clip of one long one."""
    rows = pool.table.rows
    order = sorted((i for i in range(len(pool.table)) if pool.candidate[i] and int(rows[i]) in rarity),
                   key=lambda i: (-rarity[int(rows[i])][1], -rarity[int(rows[i])][0], i))
    seen: dict[int, int] = {}
    rounds = {}
    for i in order:
        u = int(pool.units[i])
        rounds[i] = seen.get(u, 0)
        seen[u] = rounds[i] + 1
    return sorted(order, key=lambda i: rounds[i])  # stable: rarity order within a round


def _selection(store: RegionStore, pool: _Pool, fill: _Fill, quota_report: dict[str, dict],
               val_fraction: float, seed: int) -> Selection:
    """The chosen positions as a :class:`Selection`, each clip with its split."""
    table = pool.table
    splits = _split_by_drive(table, pool.units, [i for i, _, _ in fill.chosen], val_fraction, seed)
    chosen = [
        Selected(table.clip_ids[i], store.region.name, reason, detail, table.sources[i],
                 float(table.source_offset_s[i]), float(table.duration_s[i]), table.drive_ids[i],
                 splits[i])
        for i, reason, detail in fill.chosen
    ]
    counts: dict[str, int] = {}
    for sel in chosen:
        counts[sel.reason] = counts.get(sel.reason, 0) + 1
    return Selection(store.region.name, fill.budget, chosen, int(pool.candidate.sum()),
                     int(pool.non_rep.sum()), counts, quota_report, len(pool.prev_pos),
                     pool.previous_missing, store.region)


def _union_length(spans: list[tuple[float, float]]) -> float:
    """Total length covered by ``spans`` (overlaps counted once)."""
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


def _split_by_drive(table: ClipTable, units: np.ndarray, chosen_pos: list[int], val_fraction: float,
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
