"""Similarity queries: "more clips like this one" by clip id, by an un-ingested source, or by a
saved embedding, with filters by trigger, vehicle and time range."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .index import ensure_indexes
from .store import RegionStore


@dataclass
class Hit:
    rank: int
    clip_id: str
    region: str
    score: float  # cosine similarity, 1 = identical
    drive_id: str
    vehicle_id: str
    duration_s: float
    relation: str = ""  # "duplicate"/"partial" when the hit is a known duplicate of the query clip
    span: tuple[float, float] | None = None  # matched span in the hit clip (s), when known

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["score"] = round(self.score, 6)
        d["span"] = list(self.span) if self.span else None
        return d


@dataclass
class Filters:
    trigger: str | None = None
    vehicle: str | None = None
    after: float | None = None  # epoch seconds
    before: float | None = None

    def active(self) -> bool:
        return any(v is not None for v in (self.trigger, self.vehicle, self.after, self.before))


def _allowed_rows(store: RegionStore, f: Filters) -> set[int] | None:
    if not f.active():
        return None
    sql = "SELECT row FROM clips WHERE status='active'"
    args: list = []
    if f.vehicle is not None:
        sql += " AND vehicle_id=?"
        args.append(f.vehicle)
    if f.after is not None:
        sql += " AND start_time>=?"
        args.append(f.after)
    if f.before is not None:
        sql += " AND start_time<?"
        args.append(f.before)
    if f.trigger is not None:
        sql += " AND row IN (SELECT clip_row FROM triggers WHERE name=?)"
        args.append(f.trigger)
    return {r for (r,) in store.db.execute(sql, args)}


def search_vector(store: RegionStore, vector: np.ndarray, k: int = 10, *, exclude: set[int] = frozenset(),
                  filters: Filters | None = None) -> list[Hit]:
    """Top-k clips of the region most similar to ``vector`` (float32[d], L2-normalised)."""
    if not isinstance(vector, np.ndarray) or vector.dtype != np.float32 or vector.ndim != 1:
        raise TypeError("query vector must be float32[d]; convert with np.asarray(v, dtype=np.float32)")
    if vector.shape[0] != store.embedding_dim:
        raise InputError(
            f"query vector has {vector.shape[0]} dimensions but region {store.region.name!r} "
            f"holds {store.embedding_dim}-d embeddings; use a vector of the same embedding space"
        )
    if k < 1:
        raise InputError(f"k={k} must be >= 1")
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise InputError("query vector is zero or not finite; it cannot be compared")
    q = (vector / norm).astype(np.float32)[None, :]
    _, emb_index = ensure_indexes(store)
    allowed = _allowed_rows(store, filters or Filters())
    n = emb_index.ntotal
    kk = min(n, k + len(exclude) + (4 * k if allowed is not None else 0))
    while True:
        sims, ids = emb_index.search(q, max(kk, 1))
        chosen = [(float(s), int(i)) for s, i in zip(sims[0], ids[0], strict=True)
                  if i >= 0 and int(i) not in exclude and (allowed is None or int(i) in allowed)]
        if len(chosen) >= k or kk >= n:
            break
        kk = min(n, kk * 4)
    chosen = chosen[:k]
    if not chosen:
        return []
    rows = [r for _, r in chosen]
    info = {r: rest for r, *rest in store.db.execute(
        f"SELECT row, clip_id, drive_id, vehicle_id, duration_s FROM clips WHERE row IN ({','.join('?' * len(rows))})",
        rows)}
    return [Hit(i + 1, info[r][0], store.region.name, s, info[r][1], info[r][2], float(info[r][3]))
            for i, (s, r) in enumerate(chosen)]


def search_clip(store: RegionStore, clip_id: str, k: int = 10, *, filters: Filters | None = None) -> list[Hit]:
    """Clips most similar to an ingested clip (the clip itself excluded); known duplicates of
    it are labelled with their relation and matched span."""
    row = store.clip_row(clip_id)
    vec = store.read_rows("clip_embeddings", row, row + 1)[0]
    hits = search_vector(store, np.ascontiguousarray(vec), k, exclude={row}, filters=filters)
    rel = {}
    for a, b, relation, _off, a0, a1, b0, b1 in store.db.execute(
        "SELECT a, b, relation, offset_s, a_start, a_end, b_start, b_end FROM pairs WHERE a=? OR b=?", (row, row)
    ):
        other, span = (b, (b0, b1)) if a == row else (a, (a0, a1))
        rel[other] = (relation, span)
    if rel:
        ids = {cid: r for r, cid in store.db.execute(
            f"SELECT row, clip_id FROM clips WHERE row IN ({','.join('?' * len(rel))})", list(rel))}
        for h in hits:
            r = ids.get(h.clip_id)
            if r is not None:
                h.relation, h.span = rel[r]
    return hits


def embed_source(path: str | Path, *, keyframe_hz: float = 2.0) -> np.ndarray:
    """Embedding of a video file or zarr clip that is not ingested (nothing is written)."""
    from .features import query_features
    from .sources import discover, iter_clips

    items = [i for i in discover([Path(path)]) if i.kind != "error"]
    if not items:
        raise InputError(f"{path}: not a video file, image folder or zarr clip; check the path")
    for got in iter_clips(items[0], keyframe_hz=keyframe_hz):
        if isinstance(got, Exception):
            raise got
        return query_features(got)[2]
    raise InputError(f"{path}: no clip could be read from it")


def load_vector(path: str | Path) -> np.ndarray:
    """A saved query embedding (.npy, one vector)."""
    try:
        v = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read a .npy vector ({err}); save it with np.save") from err
    v = np.asarray(v).reshape(-1) if v.ndim == 2 and v.shape[0] == 1 else v
    if v.ndim != 1 or not np.issubdtype(v.dtype, np.floating):
        raise InputError(f"{path}: expected one float vector, got {v.dtype}{list(v.shape)}")
    return np.ascontiguousarray(v, dtype=np.float32)
