"""Per-region FAISS indexes: the only package that touches FAISS.

Two indexes per region, both derived data rebuilt from ``features.zarr`` whenever needed:

* ``keyframes``: a binary index of the 256-bit keyframe hashes (ids = keyframe rows), holding
  only keyframes whose quality reaches the floor (black, flat or covered-lens frames never match);
* ``embeddings``: a float index of the L2-normalised clip embeddings (ids = clip rows), searched
  by inner product (= cosine similarity).

Each index file is written to a temporary name and renamed, next to a JSON sidecar naming the
catalog version, committed ends and parameters it reflects. :func:`ensure_indexes` compares that
with the catalog: an index that is current is loaded (memory-mapped where FAISS allows), one that
only lacks appended clips is brought up to date, anything else is rebuilt from the features.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import faiss
import numpy as np

from ..errors import StoreError
from ..store import RegionStore, Snapshot
from .embeddings import HNSW_THRESHOLD, EmbeddingIndex
from .keyframes import KeyframeIndex

__all__ = ["EmbeddingIndex", "KeyframeIndex", "QUALITY_FLOOR", "drop_indexes", "ensure_indexes"]

#: keyframes below this PDQ quality (0-100) are never indexed nor matched
QUALITY_FLOOR = 20
INDEX_FORMAT = 1


# ---------------------------------------------------------------------- persistence
def _paths(store: RegionStore, name: str) -> tuple[Path, Path]:
    return store.index_dir / f"{name}.faiss", store.index_dir / f"{name}.json"


def _save(store: RegionStore, name: str, obj, binary: bool) -> None:
    store.index_dir.mkdir(parents=True, exist_ok=True)
    path, meta_path = _paths(store, name)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    (faiss.write_index_binary if binary else faiss.write_index)(obj.index, str(tmp))
    os.replace(tmp, path)
    tmp_meta = meta_path.with_suffix(f".tmp{os.getpid()}")
    tmp_meta.write_text(json.dumps(obj.meta), encoding="utf-8")
    os.replace(tmp_meta, meta_path)


def _load(store: RegionStore, name: str, binary: bool, snap: Snapshot):
    path, meta_path = _paths(store, name)
    if not path.exists() or not meta_path.exists():
        return None, "missing"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if binary:
            index = faiss.read_index_binary(str(path))
        else:
            # memory-map a current exact index: a one-shot query pays no load time
            current = meta.get("catalog_version") == snap.version
            flags = faiss.IO_FLAG_MMAP if current and meta.get("kind") == "flat-ip" else 0
            index = faiss.read_index(str(path), flags)
    except Exception as err:  # corrupt file: derived data, so rebuild
        return None, f"unreadable ({type(err).__name__})"
    if int(index.ntotal) != int(meta.get("ntotal", -1)):
        return None, "size disagrees with its metadata"
    return (KeyframeIndex if binary else EmbeddingIndex)(index, meta), ""


def _forgotten_count(store: RegionStore) -> int:
    return store.db.execute("SELECT COUNT(*) FROM clips WHERE status!='active'").fetchone()[0]


def _active_keyframe_rows(store: RegionStore, clip_lo: int, clip_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(keyframe rows, clip rows) of active clips with row in [clip_lo, clip_hi)."""
    spans = store.db.execute(
        "SELECT row, kf_start, kf_count FROM clips WHERE status='active' AND row>=? AND row<? ORDER BY row",
        (clip_lo, clip_hi),
    ).fetchall()
    if not spans:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = np.concatenate([np.arange(s, s + n, dtype=np.int64) for _, s, n in spans])
    clips = np.concatenate([np.full(n, r, dtype=np.int64) for r, _, n in spans])
    return rows, clips


def _index_meta(store: RegionStore, snap: Snapshot) -> dict:
    return {
        "format": INDEX_FORMAT,
        "catalog_version": snap.version,
        "kf_end": snap.kf_end,
        "clip_end": snap.clip_end,
        "forgotten": _forgotten_count(store),
        "quality_floor": QUALITY_FLOOR,
        "built_at": time.time(),
    }


def _keyframe_data(store: RegionStore, clip_lo: int, clip_hi: int) -> tuple[np.ndarray, np.ndarray]:
    kf_rows, _ = _active_keyframe_rows(store, clip_lo, clip_hi)
    if len(kf_rows) == 0:
        return np.zeros((0, 32), np.uint8), kf_rows
    lo, hi = int(kf_rows.min()), int(kf_rows.max()) + 1
    hashes = store.read_rows("keyframe_hashes", lo, hi)
    quality = store.read_rows("keyframe_quality", lo, hi)
    keep = quality[kf_rows - lo] >= QUALITY_FLOOR
    kf_rows = kf_rows[keep]
    return np.ascontiguousarray(hashes[kf_rows - lo]), kf_rows


def _embedding_data(store: RegionStore, clip_lo: int, clip_hi: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(
        [r for (r,) in store.db.execute(
            "SELECT row FROM clips WHERE status='active' AND row>=? AND row<? ORDER BY row", (clip_lo, clip_hi)
        )],
        dtype=np.int64,
    )
    if len(rows) == 0:
        return np.zeros((0, store.embedding_dim), np.float32), rows
    vecs = store.read_rows("clip_embeddings", int(rows.min()), int(rows.max()) + 1)
    return np.ascontiguousarray(vecs[rows - rows.min()]), rows


def ensure_indexes(store: RegionStore, *, save: bool = True) -> tuple[KeyframeIndex, EmbeddingIndex]:
    """Load the region's indexes, bringing them up to date with the catalog if needed.

    Saving needs no writer lock: index files are derived, written atomically, and any process may
    refresh a stale one; two processes refreshing at once write identical content.
    """
    snap = store.snapshot()
    fresh_meta = _index_meta(store, snap)
    out = []
    reasons = []
    for name, binary, builder, data in (
        ("keyframes", True, KeyframeIndex, _keyframe_data),
        ("embeddings", False, EmbeddingIndex, _embedding_data),
    ):
        obj, why = _load(store, name, binary, snap)
        if obj is not None:
            m = obj.meta
            if m.get("format") != INDEX_FORMAT or m.get("quality_floor", QUALITY_FLOOR) != QUALITY_FLOOR:
                obj, why = None, "built with other parameters"
            elif m["catalog_version"] == snap.version and m["clip_end"] == snap.clip_end:
                out.append(obj)
                continue
            elif m["forgotten"] == fresh_meta["forgotten"] and m["clip_end"] <= snap.clip_end and not (
                not binary and m.get("kind") == "flat-ip" and snap.clip_end > HNSW_THRESHOLD
            ):
                vecs, ids = data(store, int(m["clip_end"]), snap.clip_end)
                obj.add(vecs, ids)
                obj.meta.update(fresh_meta)
                if save:
                    _save(store, name, obj, binary)
                out.append(obj)
                continue
            else:
                why = "clips were forgotten since it was built" if m["forgotten"] != fresh_meta["forgotten"] else "stale"
        vecs, ids = data(store, 0, snap.clip_end)
        obj = builder.build(vecs, ids, fresh_meta)
        if save:
            _save(store, name, obj, binary)
        reasons.append(f"{name}: {why}")
        out.append(obj)
    if reasons and save and snap.clip_end > 0:
        try:
            store.set_meta(index_rebuilt_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                           index_rebuild_reason="; ".join(reasons))
        except Exception:  # a read-only catalog must not stop a query
            pass
    return out[0], out[1]


def drop_indexes(store: RegionStore) -> None:
    for name in ("keyframes", "embeddings"):
        for p in _paths(store, name):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                raise StoreError(f"cannot remove index file {p}: {err}") from err
