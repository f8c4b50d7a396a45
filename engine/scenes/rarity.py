"""Rarity: how empty the embedding space is around a clip, and how rare its events are.

Two views of the same question, both blind to the clip's *relatives*: its duplicate group and
partial-overlap partners (a rare event uploaded five times stays rare) and the other clips of its
drive (a rare event filmed over five consecutive clips stays rare).

* **Density**: the mean distance to the ``k`` nearest non-relative clips of the region, Euclidean
  between L2-normalised embeddings (0..2), the "score".
* **Events**: the clip's *event signature*, the set of situation triggers that fired on it (hard
  brake, high jerk, sharp turn, stop-and-go, low light, dusk, low visibility, snow, glare, tunnel;
  data-quality flags are not situations), shared by its whole-duplicate group (telemetry
  triggers of every copy, picture triggers of the representative: see
  :func:`event_signatures`), and with the
  situations a partial partner recorded in their shared footage. Its *support* is
  the number of other *recording units* of the region carrying the same signature; a unit is a
  drive together with every copy of its clips, closed transitively (five uploads of one event,
  each with its own upload id, are one unit). A signature carried by fewer than ``event_share``
  of the region's units is rare: the clip gets the event percentile ``100 * (1 - support /
  units)`` (>= 95 at the default 5 %), otherwise 0. Clips without situation triggers get 0.

* **Dynamics**: the same density in the space of the clip's telemetry statistics (speed,
  acceleration, yaw, jerk, braking and standing shares, :func:`dynamics_scores`), blind to the
  clip's recording unit: how unusually the car *drove*, which the picture-dominated embedding
  averages away.

Clips with a rare event signature come first (the fewest other units first, ties broken by
density), then every other clip by the larger of its appearance and dynamics density percentiles;
the order of *distinct recordings* (a whole-duplicate group once, :func:`_rank_distinct`) is
stored as the percentile (100 = rarest). Why events and densities: an
embedding summarises what a clip *looks* like, and a hard brake on a cut-in differs from
ordinary following in a second of telemetry, which pooled features average away; a trigger
names it. Why events first: a named event that few recordings share is direct evidence of a
rare situation, while an empty neighbourhood is also what an ordinary clip under an unusual
light, or an unusual camera, looks like (on the quality fleet 5-8 common clips a region sit at
the 97th-100th density percentile). The measured effect on the fixture fleets is in
docs/quality.md; ``events=False`` (``clipdex rare --density-only``) gives the density alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from engine.index import L2Index, ensure_embedding_index
from engine.matching.dedup import load_dedup
from engine.matching.relations import drive_codes, recording_units, relative_components
from engine.store.region import ClipTable, RegionStore

#: triggers that describe the driving situation; data-quality flags (black frames, frozen camera,
#: telemetry gaps) say nothing about the scenario and stay out of event signatures
#: (the scene type, ``urban``, is not a situation: a city street is rare only in a fleet that
#: drives elsewhere, and density already sees it)
SITUATION_TRIGGERS = frozenset({"hard_brake", "high_jerk", "sharp_turn", "stop_and_go", "low_light",
                                "dusk", "low_visibility", "snow", "glare", "tunnel"})
#: the situation triggers judged from pictures (the rest come from telemetry)
FRAME_TRIGGERS = frozenset({"low_light", "dusk", "low_visibility", "snow", "glare", "tunnel"})
#: picture conditions judged over a whole clip (the other triggers mark moments, with spans)
CONDITION_TRIGGERS = frozenset({"low_light", "dusk", "low_visibility", "snow"})
#: a partial copy shares a partner's picture condition when their shared footage is at least this
#: share of its own duration (the share of keyframes a condition needs, engine.ingest.triggers), or at
#: least SHARED_CONDITION_MIN_S long (a splice with 4 s of a snowy road shows snow)
SHARED_CONDITION_SHARE = 0.5
SHARED_CONDITION_MIN_S = 3.0
#: ... and a partner's event when the event's middle lies within the shared footage (+- this)
SHARED_EVENT_TOLERANCE_S = 0.5
#: an event signature carried by fewer than this share of the region's recording units is rare
RARE_EVENT_SHARE = 0.05

#: names of the ranking bases (RarityResult.basis)
BASES = ("event", "appearance", "dynamics")

#: cosine similarity above which a neighbour is treated as a copy of the clip (median between
#: whole duplicates on the demo fleet: 0.987; unrelated clips exceed 0.97 in < 0.1 % of pairs)
NEAR_DUPLICATE_SIMILARITY = 0.97


@dataclass
class RarityResult:
    region: str
    rows: np.ndarray  # clip rows, rarest first
    clip_ids: list[str]
    scores: np.ndarray
    percentiles: np.ndarray  # 100 = rarest
    k: int
    seconds: float
    #: per listed clip: its event signature ("" without situation triggers) and the number of other
    #: recording units sharing it; None with ``events=False``
    signatures: list[str] | None = None
    support: np.ndarray | None = None
    #: per listed clip: the row of its whole-duplicate group's representative (its own row when
    #: alone or the representative) and how many clips its group has in the listing
    head_rows: np.ndarray | None = None
    group_size: np.ndarray | None = None
    #: per listed clip: the dynamics score (:func:`dynamics_scores`, NaN without telemetry or with
    #: ``dynamics=False``) and what ranked it: "event", "appearance" or "dynamics" (:data:`BASES`)
    dynamics: np.ndarray | None = None
    basis: list[str] | None = None


def knn_excluding(vectors: np.ndarray, emb_index, table: ClipTable, comp: np.ndarray,
                  drives: np.ndarray, k: int, query_pos: np.ndarray | None = None,
                  near_duplicate: float | None = None, metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """Distances ``float32[n,k]`` and table positions ``int64[n,k]`` of the k nearest non-relatives.

    Searches ``k + slack`` neighbours and widens the search only for the clips whose relatives
    crowd out their k nearest (big drives, big duplicate groups). Missing neighbours are inf/-1.
    ``metric="cosine"``: ``emb_index`` returns inner products of unit vectors (distance
    ``sqrt(2 - 2 sim)``); ``"l2"``: squared Euclidean distances (``near_duplicate`` unused).
    """
    n_all = len(table)
    query_pos = np.arange(n_all) if query_pos is None else query_pos
    n = len(query_pos)
    dist = np.full((n, k), np.inf, np.float32)
    nbr = np.full((n, k), -1, np.int64)
    # an index refreshed by a concurrent writer may hold rows newer than the table: they map to -1
    size = max(int(table.rows.max()) + 1 if n_all else 0, int(getattr(emb_index, "meta", {}).get("clip_end", 0)))
    pos_of_row = np.full(size, -1, np.int64)
    pos_of_row[table.rows] = np.arange(n_all)
    todo = np.arange(n)
    kk = min(n_all, k + 32)
    while len(todo) and kk > 0:
        q = query_pos[todo]
        sims, ids = emb_index.search(np.ascontiguousarray(vectors[q]), kk)
        cand = np.where(ids >= 0, pos_of_row[np.clip(ids, 0, None)], -1)
        bad = (cand < 0) | (cand == q[:, None])
        safe = np.clip(cand, 0, None)
        bad |= comp[safe] == comp[q][:, None]
        bad |= drives[safe] == drives[q][:, None]
        # a near-identical embedding is a duplicate dedup missed (a zoomed or heavily edited
        # copy): count it as a relative, so one missed copy cannot make a rare clip common
        if near_duplicate is not None and metric == "cosine":
            bad |= sims >= near_duplicate
        good_count = (~bad).sum(axis=1)
        enough = (good_count >= k) | (kk >= n_all)
        with np.errstate(over="ignore", invalid="ignore"):  # padded results carry -inf/-FLT_MAX sims
            if metric == "cosine":
                d = np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, None)).astype(np.float32)
            else:
                d = np.sqrt(np.clip(sims, 0.0, None)).astype(np.float32)
        d[bad] = np.inf
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        take = np.take_along_axis(d, order, axis=1)
        tpos = np.take_along_axis(np.where(bad, -1, cand), order, axis=1)
        if take.shape[1] < k:  # a region of k clips or fewer: the missing neighbours are inf/-1
            pad = ((0, 0), (0, k - take.shape[1]))
            take = np.pad(take, pad, constant_values=np.inf)
            tpos = np.pad(tpos, pad, constant_values=-1)
        fill = todo[enough]
        dist[fill] = take[enough]
        nbr[fill] = tpos[enough]
        todo = todo[~enough]
        kk = min(n_all, kk * 4)
    return dist, nbr


def _subset(table: ClipTable, keep: np.ndarray) -> ClipTable:
    """The table's clips at boolean mask ``keep``."""
    idx = np.flatnonzero(keep)
    return ClipTable(table.snapshot, *[
        [v[i] for i in idx] if isinstance(v, list) else v[idx]
        for v in (getattr(table, f.name) for f in dataclasses.fields(table)[1:])])


def embedding_inputs(store: RegionStore, table: ClipTable, space: str | None = None, *,
                     save: bool = False):
    """(table, vectors float32[n, d] in table order, index) of the default clip embeddings or of an
    imported ``space`` (then only the clips that have a vector in it); ``save``: write a refreshed
    index back (an explicit step), else refresh it in memory only."""
    if space is None:
        emb_index = ensure_embedding_index(store, save=save)
        vectors = np.ascontiguousarray(store.embeddings(table.snapshot)[table.rows])
        return table, vectors, emb_index
    emb_index = ensure_embedding_index(store, space=space, save=save)
    rows, vecs = store.space_vectors(space)
    keep = np.isin(table.rows, rows)
    table = _subset(table, keep) if not keep.all() else table
    vectors = np.ascontiguousarray(vecs[np.searchsorted(rows, table.rows)])
    return table, vectors, emb_index


def group_heads(table: ClipTable, groups: dict[int, list[int]] | None) -> np.ndarray:
    """Per table position, the position of its whole-duplicate group's representative (itself
    when alone). ``groups`` maps the representative dedup elected (best quality, then longest,
    then earliest: the clip ``select`` trains on) to the members; where the representative is
    not in ``table`` (a clip without a vector in an imported space) the best-quality member
    present stands in."""
    pos = {int(r): i for i, r in enumerate(table.rows)}
    head = np.arange(len(table))
    quality = np.nan_to_num(np.asarray(table.quality_mean, np.float64), nan=-1.0)
    for rep, members in (groups or {}).items():
        idx = [pos[int(r)] for r in members if int(r) in pos]
        if len(idx) < 2:
            continue
        best = pos[int(rep)] if int(rep) in pos else max(idx, key=lambda i: (quality[i], -i))
        head[idx] = best
    return head


def _through_overlaps(names: list[set[str]], spans: list[list[tuple[str, float, float]]],
                      table: ClipTable, pairs) -> None:
    """Give each clip of a partial pair the situations its partner recorded in the footage they
    share: an event (hard brake, glare, ...) whose middle lies in the shared span, and a picture
    condition (low light, fog, snow) when the shared footage is at least
    ``SHARED_CONDITION_SHARE`` of the clip or ``SHARED_CONDITION_MIN_S`` long. A trim that keeps
    half of a snow drive shows snow, whether or not its own keyframes tipped the trigger's
    keyframe share."""
    pos = {int(r): i for i, r in enumerate(table.rows)}
    own = [set(n) for n in names]  # partners' own triggers only: no chains through a third clip
    duration = np.asarray(table.duration_s, np.float64)
    for p in pairs or ():
        if p.relation != "partial" or p.a not in pos or p.b not in pos:
            continue
        ia, ib = pos[p.a], pos[p.b]
        for src, dst, src_span, dst_span in ((ia, ib, p.a_span, p.b_span), (ib, ia, p.b_span, p.a_span)):
            if src_span[0] is None or dst_span[0] is None:
                continue
            shared = float(dst_span[1]) - float(dst_span[0])
            for name, t0, t1 in spans[src]:
                if name in own[dst]:
                    continue
                if name in CONDITION_TRIGGERS:
                    hit = shared >= min(SHARED_CONDITION_SHARE * duration[dst], SHARED_CONDITION_MIN_S)
                else:
                    mid = 0.5 * (t0 + t1)
                    hit = src_span[0] - SHARED_EVENT_TOLERANCE_S <= mid <= src_span[1] + SHARED_EVENT_TOLERANCE_S
                if hit:
                    names[dst].add(name)


def event_signatures(store: RegionStore, table: ClipTable,
                     groups: dict[int, list[int]] | None = None, pairs=None) -> list[str]:
    """Per table position, its situation triggers joined with ``+`` in name order ("" for none).

    With ``pairs`` (verified pairs, :func:`engine.matching.dedup.load_dedup`), a partial copy also takes
    the situations its partner recorded in their shared footage (:func:`_through_overlaps`).

    With ``groups`` (whole-duplicate groups, representative -> member rows) every member gets the
    group's signature: the telemetry triggers of all members (a re-upload without telemetry
    shows the same event) and the picture triggers of its representative (the best-quality
    copy, :func:`group_heads`). Transforms both hide and fake picture conditions: a
    contrast-reduced copy looks foggy, a brightened one is no longer dark, a blurred one loses
    glare; the sharpest copy is the best witness of what the camera saw."""
    pos = {int(r): i for i, r in enumerate(table.rows)}
    names: list[set[str]] = [set() for _ in range(len(table))]
    spans: list[list[tuple[str, float, float]]] = [[] for _ in range(len(table))]
    for row, name, t0, t1, _ in store.triggers(table.rows.tolist()):
        i = pos.get(int(row))
        if i is not None and name in SITUATION_TRIGGERS:
            names[i].add(name)
            spans[i].append((name, float(t0), float(t1)))
    if pairs:
        _through_overlaps(names, spans, table, pairs)
    head = group_heads(table, groups)
    members: dict[int, list[int]] = {}
    for i in np.flatnonzero(head != np.arange(len(table))).tolist():
        members.setdefault(int(head[i]), [int(head[i])]).append(i)
    for h, idx in members.items():
        signature = {n for i in idx for n in names[i] - FRAME_TRIGGERS} | (names[h] & FRAME_TRIGGERS)
        for i in idx:
            names[i] = signature
    return ["+".join(sorted(n)) for n in names]


def event_support(signatures: list[str], units: np.ndarray) -> np.ndarray:
    """Per clip, how many recording units other than its own carry its signature (-1 for clips
    without a signature)."""
    support = np.full(len(signatures), -1, np.int64)
    carriers: dict[str, set[int]] = {}
    for i, sig in enumerate(signatures):
        if sig:
            carriers.setdefault(sig, set()).add(int(units[i]))
    for i, sig in enumerate(signatures):
        if sig:
            support[i] = len(carriers[sig]) - 1
    return support


def event_percentiles(support: np.ndarray, n_units: int, share: float = RARE_EVENT_SHARE) -> np.ndarray:
    """``100 * (1 - support / n_units)`` where a signature is rarer than ``share`` of the units, else 0."""
    frac = support / max(1, n_units)
    return np.where((support >= 0) & (frac < share), 100.0 * (1.0 - frac), 0.0)


def dynamics_scores(stats: np.ndarray, table: ClipTable, units: np.ndarray, k: int) -> np.ndarray:
    """Per table position, how unusual the clip's *driving* is: the mean Euclidean distance to the
    ``k`` nearest clips of other recording units in the space of its telemetry statistics
    (``kernels.telemetry_stats``: speed, acceleration, yaw rate, jerk, braking and standing
    shares), each statistic standardised over the region's clips. NaN for clips without
    telemetry (they are neither scored nor anyone's neighbour).

    Why a second view: the clip embedding is mostly pictures (the 16 statistics are one block of
    six), so a deer that makes the car brake from rural speed on an ordinary-looking road has
    ordinary neighbours in it; among drives, braking to a stand from 20 m/s on an empty road is
    what few recordings do."""
    n = len(table)
    out = np.full(n, np.nan)
    have = np.isfinite(stats).all(axis=1) & (np.nan_to_num(stats[:, 0]) > 0) if len(stats) else np.zeros(0, bool)
    idx = np.flatnonzero(have)
    if len(idx) <= k:
        return out
    x = stats[idx].astype(np.float64)
    sd = x.std(axis=0)
    x = ((x - x.mean(axis=0)) / np.where(sd > 1e-9, sd, 1.0)).astype(np.float32)
    index = L2Index(x, table.rows[idx])
    full = np.zeros((n, x.shape[1]), np.float32)
    full[idx] = x
    dist, _ = knn_excluding(full, index, table, units, units, k, query_pos=idx, metric="l2")
    out[idx] = _mean_finite(dist)
    return out


def _mean_finite(dist: np.ndarray) -> np.ndarray:
    """Row means of the finite distances (as ``np.nanmean`` computes them, in the distances'
    dtype); NaN for a row without any (no neighbour at all), without nanmean's warning."""
    finite = np.isfinite(dist)
    count = finite.sum(axis=1)
    total = np.where(finite, dist, dist.dtype.type(0)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (total / count).astype(dist.dtype)
    return np.where(count > 0, mean, np.nan)


def _head_percentiles(values: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Per table position, the percentile (0..100, 100 = largest) of its value among the finite
    values at ``heads``; 0 where the value is not finite."""
    out = np.zeros(len(values))
    h = heads[np.isfinite(values[heads])]
    if len(h) == 1:
        out[h] = 100.0
    elif len(h) > 1:
        rank = np.empty(len(h))
        rank[np.argsort(values[h], kind="stable")] = np.arange(len(h))
        out[h] = 100.0 * rank / (len(h) - 1)
    return out


def _rank_distinct(head: np.ndarray, scores: np.ndarray, event_pct: np.ndarray,
                   dynamics: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clip order rarest first, percentile per table position, basis per table position),
    ranking *distinct recordings*: a whole-duplicate group takes one rank, that of its
    representative (``head``, from :func:`group_heads`: the best-quality copy, the best witness
    as for picture triggers), and all its members share it.

    Five uploads of one rare event are one rare recording, not five clips that push each other
    and the next rare recordings down the list; and a grayscale or cropped copy of a common clip,
    far from every colour clip in embedding space, does not lift its group.

    Rare events first; then the larger of the two density percentiles among representatives:
    appearance (``scores``) and, with ``dynamics`` (per position; a group's value is its
    representative's, else its largest member's), driving. The basis names what ranked each
    clip: 0 event, 1 appearance, 2 dynamics."""
    n = len(head)
    heads = np.flatnonzero(head == np.arange(n))
    key = _head_percentiles(scores, heads)
    basis = np.where(event_pct > 0, 0, 1)
    if dynamics is not None:
        dyn = np.asarray(dynamics, np.float64).copy()
        members = np.flatnonzero(head != np.arange(n))
        np.fmax.at(dyn, head[members], dyn[members])  # fmax: NaN (no telemetry) never wins
        dyn_pct = _head_percentiles(dyn, heads)
        basis = np.where((basis == 1) & (dyn_pct > key), 2, basis)
        key = np.maximum(key, dyn_pct)
    basis = basis[head]
    head_order = heads[np.lexsort((heads, -scores[heads], -key[heads], -event_pct[heads]))]
    rank = np.empty(n, np.int64)
    rank[head_order] = np.arange(len(head_order))
    rank = rank[head]
    m = len(head_order)
    percentiles = 100.0 * (1.0 - rank / max(1, m - 1)) if m > 1 else np.full(n, 100.0)
    # within a group its representative first, then the other copies by density
    order = np.lexsort((np.arange(n), -scores, head != np.arange(n), rank))
    return order, percentiles.astype(np.float64), basis


def compute_rarity(store: RegionStore, k: int = 10, *, space: str | None = None, events: bool = True,
                   event_share: float = RARE_EVENT_SHARE, dynamics: bool | None = None,
                   light_search: bool = True, cache: bool = True) -> RarityResult:
    """Rank the region's clips by rarity (see the module doc); with ``cache`` (the explicit
    rarity step: ``clipdex rare``, the demo) store the scores and refresh the embedding index,
    without it (a read, e.g. :func:`load_rarity`) write nothing.

    ``events=False`` ranks by the embedding density alone; ``dynamics`` (default: with events)
    adds the density of the telemetry statistics (:func:`dynamics_scores`). ``light_search``:
    an approximate index scans fewer lists for the batch of neighbourhoods
    (``EmbeddingIndex.lighter_search``; 3x faster at 100k, the same ranking within noise)."""
    dynamics = events if dynamics is None else dynamics
    t0 = time.perf_counter()
    full = store.clip_table()
    if len(full) == 0:
        return RarityResult(store.region.name, np.zeros(0, np.int64), [], np.zeros(0), np.zeros(0), k, 0.0)
    table, vectors, emb_index = embedding_inputs(store, full, space, save=cache)
    if len(table) == 0:
        return RarityResult(store.region.name, np.zeros(0, np.int64), [], np.zeros(0), np.zeros(0), k, 0.0)
    pairs, groups = load_dedup(store, full)
    comp = relative_components(table, pairs)
    drives = drive_codes(table)
    # the near-duplicate threshold is calibrated for clipdex's own embedding, not imported spaces
    near = NEAR_DUPLICATE_SIMILARITY if space is None else None
    lighter = getattr(emb_index, "lighter_search", None) if light_search else None
    with lighter() if lighter is not None else contextlib.nullcontext():
        dist, _ = knn_excluding(vectors, emb_index, table, comp, drives, k, near_duplicate=near)
    scores = _mean_finite(dist)
    scores = np.where(np.isfinite(scores), scores, 2.0).astype(np.float64)  # no neighbour: rarest
    signatures: list[str] = []
    support = np.zeros(0, np.int64)
    head = group_heads(table, groups)
    units = recording_units(comp, drives) if events or dynamics else None
    dyn = None
    if dynamics:
        dyn = dynamics_scores(store.telemetry_stats(table.snapshot)[table.rows], table, units, k)
    event_pct = np.zeros(len(table))
    if events:
        signatures = event_signatures(store, table, groups, pairs)
        support = event_support(signatures, units)
        # a rare named event outranks an empty neighbourhood: rare events first (fewest other
        # units first), then every other clip by density
        event_pct = event_percentiles(support, len(np.unique(units)), event_share)
    order, percentiles, basis = _rank_distinct(head, scores, event_pct, dyn)
    # a cache, written without the writer lock (an ingest starting now must not fail because of
    # a reader); a read-only or busy catalog just skips it
    if cache:
        store.cache_rarity(table.rows, scores, percentiles, table.snapshot.version, space=space,
                           k=rarity_stamp(k, events, event_share, dynamics))
    size = np.bincount(head, minlength=len(table))[head]
    return RarityResult(store.region.name, table.rows[order], [table.clip_ids[i] for i in order],
                        scores[order], percentiles[order], k, time.perf_counter() - t0,
                        [signatures[i] for i in order] if events else None,
                        support[order] if events else None,
                        table.rows[head][order], size[order],
                        dyn[order] if dyn is not None else np.full(len(order), np.nan),
                        [BASES[int(b)] for b in basis[order]])


def rarity_stamp(k: int, events: bool = True, event_share: float = RARE_EVENT_SHARE,
                 dynamics: bool | None = None) -> str:
    """What cached scores were computed with: k and the method (a cache of another is stale)."""
    dynamics = events if dynamics is None else dynamics
    stamp = f"{int(k)}:events{event_share:g}" if events else f"{int(k)}:density"
    return stamp + ":dynamics" if dynamics else stamp


def load_rarity(store: RegionStore, *, recompute_if_stale: bool = True, k: int = 10,
                space: str | None = None, events: bool = True) -> dict[int, tuple[float, float]]:
    """clip row -> (density score, percentile), recomputed when the catalog changed since, or when
    the cached scores were computed with another ``k`` or method (scores of older versions,
    stamped with k alone, count as another method)."""
    suffix = "" if space is None else f":{space}"
    stale = int(store.meta(f"rarity_version{suffix}", "-1")) != store.snapshot().version
    stamp = store.meta(f"rarity_k{suffix}", "")  # "" = scores stored from elsewhere: valid for any k
    stale = stale or (stamp != "" and stamp != rarity_stamp(k, events))
    if space is not None and not stale:  # a re-import of the space since the scores
        stale = not store.rarity(space)
    if stale and recompute_if_stale:
        return _as_dict(compute_rarity(store, k, space=space, events=events, cache=False))
    return store.rarity(space)


def _as_dict(res: RarityResult) -> dict[int, tuple[float, float]]:
    return {int(r): (float(s), float(p)) for r, s, p in zip(res.rows, res.scores, res.percentiles, strict=True)}
