"""Rarity: how empty the embedding space is around a clip.

The score is the mean distance to the ``k`` nearest clips of the region, skipping the clip's
*relatives*: its duplicate group and partial-overlap partners (a rare event uploaded five times
stays rare) and the other clips of its drive (a rare event filmed over five consecutive clips
stays rare). Distances are Euclidean between L2-normalised embeddings (0..2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .dedup import load_dedup
from .index import ensure_embedding_index
from .store import ClipTable, RegionStore

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


def relative_components(table: ClipTable, pairs) -> np.ndarray:
    """Per table position, a component id shared by clips linked by any verified pair."""
    pos = table.position()
    parent = np.arange(len(table))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        if p.a in pos and p.b in pos:
            ra, rb = find(pos[p.a]), find(pos[p.b])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(len(table))], dtype=np.int64)


def drive_codes(table: ClipTable) -> np.ndarray:
    """Per table position, an int code of its drive; clips without a drive get unique codes."""
    codes: dict[str, int] = {}
    out = np.empty(len(table), np.int64)
    for i, d in enumerate(table.drive_ids):
        out[i] = codes.setdefault(d, len(codes)) if d else -(i + 1)
    return out


def knn_excluding(vectors: np.ndarray, emb_index, table: ClipTable, comp: np.ndarray,
                  drives: np.ndarray, k: int, query_pos: np.ndarray | None = None,
                  near_duplicate: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distances ``float32[n,k]`` and table positions ``int64[n,k]`` of the k nearest non-relatives.

    Searches ``k + slack`` neighbours and widens the search only for the clips whose relatives
    crowd out their k nearest (big drives, big duplicate groups). Missing neighbours are inf/-1.
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
        if near_duplicate is not None:
            bad |= sims >= near_duplicate
        good_count = (~bad).sum(axis=1)
        enough = (good_count >= k) | (kk >= n_all)
        with np.errstate(over="ignore", invalid="ignore"):  # padded results carry -inf/-FLT_MAX sims
            d = np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, None)).astype(np.float32)
        d[bad] = np.inf
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        take = np.take_along_axis(d, order, axis=1)
        tpos = np.take_along_axis(np.where(bad, -1, cand), order, axis=1)
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
        for v in (table.rows, table.clip_ids, table.drive_ids, table.vehicle_ids, table.start_time,
                  table.duration_s, table.kf_start, table.kf_count, table.quality_mean, table.sources,
                  table.source_offset_s)])


def embedding_inputs(store: RegionStore, table: ClipTable, space: str | None = None):
    """(table, vectors float32[n, d] in table order, index) of the default clip embeddings or of an
    imported ``space`` (then only the clips that have a vector in it)."""
    if space is None:
        emb_index = ensure_embedding_index(store)
        vectors = np.ascontiguousarray(store.embeddings(table.snapshot)[table.rows])
        return table, vectors, emb_index
    emb_index = ensure_embedding_index(store, space=space)
    rows, vecs = store.space_vectors(space)
    keep = np.isin(table.rows, rows)
    table = _subset(table, keep) if not keep.all() else table
    vectors = np.ascontiguousarray(vecs[np.searchsorted(rows, table.rows)])
    return table, vectors, emb_index


def compute_rarity(store: RegionStore, k: int = 10, *, space: str | None = None) -> RarityResult:
    t0 = time.perf_counter()
    full = store.clip_table()
    if len(full) == 0:
        return RarityResult(store.region.name, np.zeros(0, np.int64), [], np.zeros(0), np.zeros(0), k, 0.0)
    table, vectors, emb_index = embedding_inputs(store, full, space)
    if len(table) == 0:
        return RarityResult(store.region.name, np.zeros(0, np.int64), [], np.zeros(0), np.zeros(0), k, 0.0)
    pairs, _ = load_dedup(store, full)
    comp = relative_components(table, pairs)
    drives = drive_codes(table)
    # the near-duplicate threshold is calibrated for clipdex's own embedding, not imported spaces
    near = NEAR_DUPLICATE_SIMILARITY if space is None else None
    dist, _ = knn_excluding(vectors, emb_index, table, comp, drives, k, near_duplicate=near)
    finite = np.where(np.isfinite(dist), dist, np.nan)
    with np.errstate(all="ignore"):
        scores = np.nanmean(finite, axis=1)
    scores = np.where(np.isfinite(scores), scores, 2.0).astype(np.float64)  # no neighbour: rarest
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), np.float64)
    ranks[order] = np.arange(len(scores))
    percentiles = 100.0 * (1.0 - ranks / max(1, len(scores) - 1)) if len(scores) > 1 else np.full(1, 100.0)
    # a cache, written without the writer lock (an ingest starting now must not fail because of
    # a reader); a read-only or busy catalog just skips it
    store.cache_rarity(table.rows, scores, percentiles, table.snapshot.version, space=space, k=k)
    return RarityResult(store.region.name, table.rows[order], [table.clip_ids[i] for i in order],
                        scores[order], percentiles[order], k, time.perf_counter() - t0)


def load_rarity(store: RegionStore, *, recompute_if_stale: bool = True, k: int = 10,
                space: str | None = None) -> dict[int, tuple[float, float]]:
    """clip row -> (score, percentile), recomputed when the catalog changed since or when the
    cached scores were computed with another ``k``."""
    suffix = "" if space is None else f":{space}"
    stale = int(store.meta(f"rarity_version{suffix}", "-1")) != store.snapshot().version
    cached_k = store.meta(f"rarity_k{suffix}", "")
    stale = stale or (cached_k != "" and int(cached_k) != k)
    if space is not None and not stale:  # a re-import of the space since the scores
        stale = not store.rarity(space)
    if stale and recompute_if_stale:
        return _as_dict(compute_rarity(store, k, space=space))
    return store.rarity(space)


def _as_dict(res: RarityResult) -> dict[int, tuple[float, float]]:
    return {int(r): (float(s), float(p)) for r, s, p in zip(res.rows, res.scores, res.percentiles, strict=True)}
