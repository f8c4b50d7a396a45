"""Similarity queries: "more clips like this one" by clip id, by an un-ingested source, or by a
saved embedding, with filters by trigger, vehicle and time range, in the default embedding space
or an imported one (``space=``).

Each hit carries its clip id, region, cosine score and, for a clip or source query, the *matched
span* in the hit clip: the stretch (seconds from the hit's start) whose keyframes line up with the
query's, found by the same temporal alignment dedup uses (:func:`kernels.align_keyframe_pairs`)
when the two share at least ``DedupParams.min_matches`` keyframes; ``None`` otherwise (similar but
different footage). Known duplicates of an ingested query clip are labelled with their relation.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.index import QUALITY_FLOOR, ensure_embedding_index
from engine.store.region import RegionStore


@dataclass
class Hit:
    rank: int
    clip_id: str
    region: str
    score: float  # cosine similarity, 1 = identical
    drive_id: str
    vehicle_id: str
    duration_s: float
    relation: str = ""  # "duplicate"/"partial": a known duplicate of the query clip, or for a query
    # that is not ingested, judged from the aligned keyframes
    span: tuple[float, float] | None = None  # matched span in the hit clip (s), when known

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["score"] = round(self.score, 6)
        d["span"] = [round(float(x), 3) for x in self.span] if self.span else None
        return d


@dataclass
class Filters:
    trigger: str | None = None
    vehicle: str | None = None
    after: float | None = None  # epoch seconds: clips starting at or after
    before: float | None = None  # epoch seconds: clips starting before

    def active(self) -> bool:
        return any(v is not None for v in (self.trigger, self.vehicle, self.after, self.before))


def parse_time(text: str | float | None) -> float | None:
    """``--after/--before``: epoch seconds, or an ISO date/datetime (UTC unless it says otherwise)."""
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    s = str(text).strip()
    try:
        v = float(s)
        if math.isfinite(v):
            return v
    except ValueError:
        pass
    try:
        t = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"time {text!r} is neither epoch seconds nor an ISO date; use e.g. "
                         "2024-05-01, 2024-05-01T13:00:00+02:00 or 1714521600") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t.timestamp()


def _allowed_rows(store: RegionStore, f: Filters) -> set[int] | None:
    if not f.active():
        return None
    return set(store.active_rows(vehicle=f.vehicle, after=f.after, before=f.before,
                                 trigger=f.trigger))


def _space_dim(store: RegionStore, space: str | None) -> int:
    return store.embedding_dim if space is None else int(store.space_info(space)["dim"])


def search_vector(store: RegionStore, vector: np.ndarray, k: int = 10, *, exclude: set[int] = frozenset(),
                  filters: Filters | None = None, space: str | None = None) -> list[Hit]:
    """Top-k clips of the region most similar to ``vector`` (float32[d]; normalised here)."""
    if not isinstance(vector, np.ndarray) or vector.dtype != np.float32 or vector.ndim != 1:
        raise TypeError("query vector must be float32[d]; convert with np.asarray(v, dtype=np.float32)")
    dim = _space_dim(store, space)
    if vector.shape[0] != dim:
        where = "the default space" if space is None else f"space {space!r}"
        raise InputError(
            f"query vector has {vector.shape[0]} dimensions but {where} of region {store.region.name!r} "
            f"holds {dim}-d embeddings; use a vector of the same embedding space"
        )
    if k < 1:
        raise InputError(f"k={k} must be >= 1")
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise InputError("query vector is zero or not finite; it cannot be compared")
    q = (vector / norm).astype(np.float32)[None, :]
    if space is None:
        store.check_embedding_version()  # clipdex's own vectors: one embedding version only
    emb_index = ensure_embedding_index(store, space=space, save=False)  # a read writes nothing
    allowed = _allowed_rows(store, filters or Filters())
    n = emb_index.ntotal
    if n == 0 or (allowed is not None and not allowed):
        return []
    kk = min(n, k + len(exclude) + (4 * k if allowed is not None else 0))
    while True:
        sims, ids = emb_index.search(q, max(kk, 1))
        chosen = [(float(s), int(i)) for s, i in zip(sims[0], ids[0], strict=True)
                  if i >= 0 and int(i) not in exclude and (allowed is None or int(i) in allowed)]
        if len(chosen) >= k or kk >= n:
            break
        kk = min(n, kk * 4)
    if len(chosen) < k and allowed is not None and len(allowed) <= 4 * max(k, 256):
        # an approximate index may miss a few filtered-in clips: score the (few) allowed exactly
        chosen = _exact_among(store, q[0], allowed - set(exclude), space)
    chosen = chosen[:k]
    if not chosen:
        return []
    rows = [r for _, r in chosen]
    info = {c["row"]: (c["clip_id"], c["drive_id"], c["vehicle_id"], c["duration_s"])
            for c in store.clip_records(rows)}
    return [Hit(i + 1, info[r][0], store.region.name, s, info[r][1], info[r][2], float(info[r][3]))
            for i, (s, r) in enumerate(chosen) if r in info]


def _exact_among(store: RegionStore, q: np.ndarray, rows: set[int], space: str | None) -> list[tuple[float, int]]:
    rows_arr = np.asarray(sorted(rows), dtype=np.int64)
    if space is None:
        vecs = np.zeros((len(rows_arr), len(q)), np.float32)
        block = 4096  # read each stored chunk of rows once
        for c in np.unique(rows_arr // block).tolist():
            sel = (rows_arr // block) == c
            chunk = store.read_rows("clip_embeddings", c * block, min((c + 1) * block, store.snapshot().clip_end))
            vecs[sel] = chunk[rows_arr[sel] - c * block]
    else:
        got = [(r, store.space_vector(space, int(r))) for r in rows_arr]
        got = [(r, v) for r, v in got if v is not None]
        rows_arr = np.asarray([r for r, _ in got], dtype=np.int64)
        vecs = np.stack([v for _, v in got]) if got else np.zeros((0, len(q)), np.float32)
    sims = vecs @ q
    order = np.argsort(-sims, kind="stable")
    return [(float(sims[i]), int(rows_arr[i])) for i in order]


# ------------------------------------------------------------------------- matched spans
def _clip_keyframes(store: RegionStore, rows: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """clip row -> (hashes uint8[k,32], quality uint8[k], times float32[k]), in batched reads."""
    if not rows:
        return {}
    spans = store.keyframe_spans(rows)
    kf = np.concatenate([np.arange(ks, ks + n, dtype=np.int64) for _, ks, n in spans]) if spans else \
        np.zeros(0, np.int64)
    hashes = store.read_rows_at("keyframe_hashes", kf)
    quality = store.read_rows_at("keyframe_quality", kf)
    times = store.read_rows_at("keyframe_times", kf)
    out, at = {}, 0
    for r, _, n in spans:
        out[r] = (hashes[at:at + n], quality[at:at + n], times[at:at + n])
        at += n
    return out


def _could_align(query: np.ndarray, qvalid: np.ndarray, hashes: np.ndarray, valid: np.ndarray,
                 radius: int, min_matches: int) -> bool:
    """Cheap NumPy test: do at least ``min_matches`` query keyframes match some keyframe of the
    clip? If not, no alignment can reach ``min_matches`` and the kernel is not needed."""
    if not qvalid.any() or not valid.any():
        return False
    a = query[qvalid].view(np.uint64)
    b = hashes[valid].view(np.uint64)
    dist = np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2)
    return int((dist.min(axis=1) <= radius).sum()) >= min_matches


def matched_spans(query: tuple[np.ndarray, np.ndarray], hits: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
                  relations: dict[int, str] | None = None) -> dict[int, tuple[float, float] | None]:
    """Per hit row, the span (s, from the hit's start) aligned with the query's keyframes, or None.

    ``query`` = (hashes uint8[k,32], quality uint8[k]); ``hits`` as from :func:`_clip_keyframes`.
    Hits that share too few keyframes with the query are ruled out in NumPy first, so the
    alignment kernel (and its compile-cache load in a fresh process) runs only when some hit
    can align. ``relations``, if given, receives dedup's picture verdict for each aligned hit:
    ``duplicate`` when the alignment covers both clips whole, ``partial`` otherwise, except a
    short partial whose matched stretch does not change (any moment of a wait matches as well:
    it keeps its span but gets no relation).
    """
    from engine.matching.dedup import DedupParams

    params = DedupParams()
    out: dict[int, tuple[float, float] | None] = dict.fromkeys(hits)
    qh = np.ascontiguousarray(query[0], dtype=np.uint8)
    qvalid = np.asarray(query[1]) >= QUALITY_FLOOR
    order = [r for r in hits if len(qh) and _could_align(
        qh, qvalid, np.ascontiguousarray(hits[r][0]), np.asarray(hits[r][1]) >= QUALITY_FLOOR,
        params.match_radius, params.min_matches)]
    if not order:
        return out
    import kernels

    blocks = [qh] + [hits[r][0] for r in order]
    quals = [query[1]] + [hits[r][1] for r in order]
    counts = np.asarray([len(b) for b in blocks], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    hashes = np.ascontiguousarray(np.concatenate(blocks), dtype=np.uint8)
    valid = np.concatenate(quals) >= QUALITY_FLOOR
    pair_a = np.zeros(len(order), np.int64)
    pair_b = np.arange(1, len(order) + 1, dtype=np.int64)
    al = kernels.align_keyframe_pairs(hashes, valid, starts, counts, pair_a, pair_b, params.match_radius, -1)
    for p, r in enumerate(order):
        m, fa, la, s = int(al.matches[p]), int(al.first_a[p]), int(al.last_a[p]), int(al.shift[p])
        span_len = max(la - fa + 1, 1)
        if m < params.min_matches or m / span_len < params.min_match_fraction:
            continue
        times = hits[r][2]
        fb, lb = fa - s, la - s
        out[r] = (float(times[fb]), float(times[lb])) if 0 <= fb <= lb < len(times) else None
        if relations is not None and out[r] is not None:
            whole = bool(params.is_whole(fa, la, s, len(qh), len(times)))
            if not params.not_specific(whole, span_len, np.bitwise_count(qh[fa] ^ qh[la]).sum()):
                relations[r] = "duplicate" if whole else "partial"
    return out


def _label_spans(store: RegionStore, hits: list[Hit], query_kf: tuple[np.ndarray, np.ndarray],
                 relations: bool = False) -> None:
    """Give hits without a span the one aligned with the query's keyframes; with ``relations``
    (a query that is not ingested, so dedup never judged it) their relation too."""
    todo = {h.clip_id: h for h in hits if h.span is None}
    if not todo:
        return
    rows = {r: cid for cid, r in store.rows_of_ids(list(todo)).items()}
    found: dict[int, str] | None = {} if relations else None
    spans = matched_spans(query_kf, _clip_keyframes(store, list(rows)), found)
    for r, span in spans.items():
        todo[rows[r]].span = span
        if found and r in found:
            todo[rows[r]].relation = found[r]


def same_source_rows(store: RegionStore, row: int, *, recording: bool = True,
                     drive: bool = False) -> set[int]:
    """Rows of the clips cut from ``row``'s recording (``recording``) and of its drive
    (``drive``), ``row`` itself included."""
    (rec,) = store.clip_records([row]) or [None]
    if rec is None:
        return {row}
    out = {row}
    if recording:
        out |= {int(c["row"]) for c in store.clip_records(recording=rec["recording_id"])}
    if drive and rec["drive_id"]:
        out |= {int(c["row"]) for c in store.clip_records(drive=rec["drive_id"])}
    return out


def search_clip(store: RegionStore, clip_id: str, k: int = 10, *, filters: Filters | None = None,
                space: str | None = None, same_recording: bool = False,
                same_drive: bool = True, excluded: list | None = None) -> list[Hit]:
    """Clips most similar to an ingested clip (the clip itself excluded, and by default the
    other pieces of its recording: ``same_recording=True`` keeps them; ``same_drive=False``
    drops its drive's other recordings too); known duplicates of it are labelled with their
    relation and matched span; other hits get a span by alignment. ``excluded``, if given, is
    extended with the ids of the clips left out besides the query."""
    row = store.clip_row(clip_id)
    exclude = same_source_rows(store, row, recording=not same_recording, drive=not same_drive)
    if excluded is not None:
        excluded += [c["clip_id"] for c in store.clip_records(sorted(exclude - {row}))]
    if space is None:
        vec = store.read_rows("clip_embeddings", row, row + 1)[0]
    else:
        from engine.scenes.spaces import space_vector_of

        vec = space_vector_of(store, space, row, clip_id)
    hits = search_vector(store, np.ascontiguousarray(vec), k, exclude=exclude, filters=filters, space=space)
    rel = {}
    for a, b, relation, _off, a0, a1, b0, b1 in store.pairs_of(row):
        other, span = (b, (b0, b1)) if a == row else (a, (a0, a1))
        rel[other] = (relation, span)
    if rel:
        ids = {c["clip_id"]: c["row"] for c in store.clip_records(list(rel))}
        for h in hits:
            r = ids.get(h.clip_id)
            if r is not None:
                h.relation, h.span = rel[r]
    own = _clip_keyframes(store, [row])[row]
    _label_spans(store, hits, (own[0], own[1]))
    return hits


def search_source(store: RegionStore, path: str | Path, k: int = 10, *, filters: Filters | None = None,
                  keyframe_hz: float = 2.0) -> list[Hit]:
    """Clips most similar to a video file or zarr clip that is not ingested (nothing is written),
    with the span of each hit that lines up with the source's keyframes and, judged from the
    pictures as dedup judges them, whether the hit is a ``duplicate`` of the source or a
    ``partial`` overlap."""
    from engine.ingest.features import query_features

    sample = _read_source(path, keyframe_hz)
    hashes, quality, emb = query_features(sample)
    hits = search_vector(store, np.ascontiguousarray(emb, dtype=np.float32), k, filters=filters)
    _label_spans(store, hits, (hashes, quality), relations=True)
    return hits


def _read_source(path: str | Path, keyframe_hz: float):
    from engine.sources import discover, iter_clips

    items = [i for i in discover([Path(path)]) if i.kind != "error"]
    if not items:
        raise InputError(f"{path}: not a video file, image folder or zarr clip; check the path")
    for got in iter_clips(items[0], keyframe_hz=keyframe_hz):
        if isinstance(got, Exception):
            raise got
        return got
    raise InputError(f"{path}: no clip could be read from it")


def embed_source(path: str | Path, *, keyframe_hz: float = 2.0) -> np.ndarray:
    """Embedding of a video file or zarr clip that is not ingested (nothing is written)."""
    from engine.ingest.features import query_features

    return query_features(_read_source(path, keyframe_hz))[2]


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
