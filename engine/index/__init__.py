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

import contextlib
import json
import os
import threading
import time
from pathlib import Path

import faiss
import numpy as np

from engine.errors import StoreError
from engine.index.embeddings import EmbeddingIndex, L2Index
from engine.index.keyframes import KeyframeIndex
from engine.store.region import RegionStore, Snapshot, fault_point, span_rows

__all__ = ["EmbeddingIndex", "KeyframeIndex", "L2Index", "QUALITY_FLOOR", "drop_indexes", "ensure_embedding_index", "ensure_indexes",
           "inspect_indexes", "rebuild_indexes", "temp_files"]

#: keyframes below this PDQ quality (0-100) are never indexed nor matched
QUALITY_FLOOR = 20
INDEX_FORMAT = 1


# ---------------------------------------------------------------------- persistence
def _paths(store: RegionStore, name: str) -> tuple[Path, Path]:
    return store.index_dir / f"{name}.faiss", store.index_dir / f"{name}.json"


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _save(store: RegionStore, name: str, obj, binary: bool) -> None:
    """Write the index and its sidecar, each to a private temp name then renamed into place.

    The sidecar carries the index file's stamp (inode, size, mtime), so a reader that catches a
    concurrent refresh between the two renames (or a crash between them) sees the pair disagree
    and reads again or rebuilds, never trusting one file's metadata for the other's content.
    """
    store.index_dir.mkdir(parents=True, exist_ok=True)
    path, meta_path = _paths(store, name)
    tag = f".tmp-{os.getpid()}-{threading.get_ident()}"
    tmp, tmp_meta = path.with_name(path.name + tag), meta_path.with_name(meta_path.name + tag)
    try:
        (faiss.write_index_binary if binary else faiss.write_index)(obj.index, str(tmp))
        fault_point("index_save")
        tmp_meta.write_text(json.dumps({**obj.meta, "file_stamp": _stamp(os.stat(tmp))}), encoding="utf-8")
        os.replace(tmp, path)
        fault_point("index_save")
        os.replace(tmp_meta, meta_path)
    finally:
        for t in (tmp, tmp_meta):
            with contextlib.suppress(OSError):
                t.unlink()
    _sweep_temp_files(store)


def _try_save(store: RegionStore, name: str, obj, binary: bool) -> None:
    """Save, but a store that cannot be written (read-only mount, disk full) must not stop a
    reader: the index is derived data, used from memory now and rebuilt next time."""
    try:
        _save(store, name, obj, binary)
    except (OSError, RuntimeError) as err:  # FAISS reports I/O failures as RuntimeError
        store.index_save_error = f"{name} index not saved ({err})"


def _sweep_temp_files(store: RegionStore) -> None:
    """Remove temp files left by index saves of processes that died (or older than an hour)."""
    for t in store.index_dir.glob("*.tmp-*"):
        try:
            pid = int(t.name.rsplit(".tmp-", 1)[1].split("-")[0])
            os.kill(pid, 0)
            alive = True
        except (ValueError, IndexError, ProcessLookupError):
            alive = False
        except PermissionError:
            alive = True
        with contextlib.suppress(OSError):
            if not alive or time.time() - t.stat().st_mtime > 3600:
                t.unlink()


def _load(store: RegionStore, name: str, binary: bool, snap: Snapshot):
    path, meta_path = _paths(store, name)
    for attempt in range(6):
        if attempt:
            time.sleep(0.05 * attempt)  # a concurrent refresh is swapping the pair: read again
        if not path.exists() or not meta_path.exists():
            return None, "missing"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            before = _stamp(os.stat(path))
            stamp = meta.get("file_stamp")
            if stamp is not None and stamp != before:
                continue
            if binary:
                index = faiss.read_index_binary(str(path))
            else:
                # memory-map a current index (the approximate kind: its float re-rank store): a
                # one-shot query pays no load time. A stale one is read into memory to be appended
                # to. An imported space's index is never appended to (rebuilt instead): always mapped.
                current = meta.get("catalog_version") == snap.version or bool(meta.get("space"))
                flags = EmbeddingIndex.read_flags(meta) if current and EmbeddingIndex.mmappable(meta) else 0
                index = faiss.read_index(str(path), flags)
            if stamp is not None and _stamp(os.stat(path)) != stamp:
                continue
        except FileNotFoundError:
            continue
        except Exception as err:  # corrupt file: derived data, so rebuild
            return None, f"unreadable ({type(err).__name__})"
        break
    else:
        try:  # the pair disagrees for good: a damaged file, or a save that died between renames
            (faiss.read_index_binary if binary else faiss.read_index)(str(path))
        except Exception as err:
            return None, f"unreadable ({type(err).__name__})"
        return None, "index file and its metadata disagree (interrupted save)"
    if int(index.ntotal) != int(meta.get("ntotal", -1)):
        return None, "size disagrees with its metadata"
    return (KeyframeIndex if binary else EmbeddingIndex)(index, meta), ""


def _forgotten_count(store: RegionStore) -> int:
    return store.forgotten_count()


def _active_keyframe_rows(store: RegionStore, clip_lo: int, clip_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(keyframe rows, clip rows) of active clips with row in [clip_lo, clip_hi)."""
    spans = store.keyframe_spans(lo=clip_lo, hi=clip_hi)
    if not spans:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    clip_rows, starts, counts = (np.asarray(c, np.int64) for c in zip(*spans, strict=True))
    rows = span_rows(starts, counts)
    clips = np.repeat(clip_rows, counts)
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
    store.check_embedding_version()  # an index never mixes embedding versions
    rows = np.asarray(store.active_rows(lo=clip_lo, hi=clip_hi), dtype=np.int64)
    if len(rows) == 0:
        return np.zeros((0, store.embedding_dim), np.float32), rows
    lo, hi = int(rows.min()), int(rows.max()) + 1
    vecs = store.read_rows("clip_embeddings", lo, hi)
    if hi - lo == len(rows):  # no clip forgotten in between: the read itself, not a second copy
        return np.ascontiguousarray(vecs), rows
    return np.ascontiguousarray(vecs[rows - lo]), rows


def _sidecar_version(store: RegionStore, name: str) -> int:
    try:
        return int(json.loads(_paths(store, name)[1].read_text(encoding="utf-8"))["catalog_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def ensure_indexes(store: RegionStore, *, save: bool = True) -> tuple[KeyframeIndex, EmbeddingIndex]:
    """Load the region's indexes, bringing them up to date with the catalog if needed.

    Saving needs no writer lock: index files are derived, written atomically, and any process may
    refresh a stale one; two processes refreshing at once write identical content.
    """
    kf, emb = _ensure(store, _SPECS, save=save)
    return kf, emb


def ensure_embedding_index(store: RegionStore, *, space: str | None = None, save: bool = True) -> EmbeddingIndex:
    """Only the clip-embedding index (what a query or rarity needs; the keyframe index of a large
    region is big and not memory-mappable), or the index of an imported embedding ``space``."""
    if space is not None:
        return _ensure_space(store, space, save=save)
    return _ensure(store, _SPECS[1:], save=save)[0]


_SPECS = (
    ("keyframes", True, KeyframeIndex, _keyframe_data),
    ("embeddings", False, EmbeddingIndex, _embedding_data),
)


def _ensure(store: RegionStore, specs, *, save: bool) -> list:
    snap = store.snapshot()
    if any(_sidecar_version(store, spec[0]) > snap.version for spec in specs):
        snap = store.snapshot()  # a writer committed and saved since: read at its snapshot
    cache: dict = {}

    def fresh() -> dict:
        # counts the forgotten clips, a scan of the catalog: done only when an index must be
        # appended to or rebuilt, not to use a current one (~0.1 s of a 1M-clip one-shot query)
        if not cache:
            cache.update(_index_meta(store, snap))
        return cache

    out = []
    reasons = []
    for name, binary, builder, data in specs:
        obj, why = _load(store, name, binary, snap)
        if obj is not None:
            m = obj.meta
            if m.get("format") != INDEX_FORMAT or m.get("quality_floor", QUALITY_FLOOR) != QUALITY_FLOOR \
                    or not (binary or EmbeddingIndex.known_kind(m)):  # e.g. an older ivf-flat index
                obj, why = None, "built with other parameters"
            elif m["catalog_version"] == snap.version and m["clip_end"] == snap.clip_end:
                out.append(obj)
                continue
            elif m["forgotten"] == fresh()["forgotten"] and m["clip_end"] <= snap.clip_end and (
                binary or EmbeddingIndex.fits(m, snap.clip_end)  # else exact -> IVF, or IVF outgrown
            ):
                vecs, ids = data(store, int(m["clip_end"]), snap.clip_end)
                obj.add(vecs, ids)
                obj.meta.update(fresh())
                if save:
                    _try_save(store, name, obj, binary)
                out.append(obj)
                continue
            else:
                why = "clips were forgotten since it was built" if m["forgotten"] != fresh()["forgotten"] else "stale"
        vecs, ids = data(store, 0, snap.clip_end)
        obj = builder.build(vecs, ids, fresh())
        if save:
            _try_save(store, name, obj, binary)
        reasons.append(f"{name}: {why}")
        out.append(obj)
    if reasons and save and snap.clip_end > 0:
        try:
            store.set_meta(index_rebuilt_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                           index_rebuild_reason="; ".join(reasons))
        except Exception:  # a read-only catalog must not stop a query
            pass
    return out


def _space_index_name(space: str) -> str:
    return f"space-{space}"


def _ensure_space(store: RegionStore, space: str, *, save: bool) -> EmbeddingIndex:
    """Index of an imported embedding space: current while the space's import version and the
    forgotten-clip count are those it was built from; otherwise rebuilt from the space's arrays."""
    info = store.space_info(space)  # NotFoundError naming the known spaces
    snap = store.snapshot()
    name = _space_index_name(space)
    fresh = {**_index_meta(store, snap), "space": space, "space_version": int(info["version"])}
    obj, _ = _load(store, name, False, snap)
    if obj is not None and obj.meta.get("format") == INDEX_FORMAT and obj.meta.get("space") == space \
            and obj.meta.get("space_version") == fresh["space_version"] \
            and obj.meta.get("forgotten") == fresh["forgotten"] and EmbeddingIndex.fits(obj.meta, obj.ntotal):
        return obj
    ids, vecs = store.space_vectors(space)
    obj = EmbeddingIndex.build(vecs, ids, fresh)
    if save:
        _try_save(store, name, obj, False)
    return obj


def inspect_indexes(store: RegionStore) -> dict[str, dict]:
    """What each saved index holds, for ``clipdex verify``: state ("ok", "missing" or why it
    cannot be used), its sidecar's catalog version and clip end, and the ids it holds."""
    out = {}
    for name, binary in (("keyframes", True), ("embeddings", False)):
        obj, why = _load(store, name, binary, Snapshot(-1, 0, 0))  # version -1: never memory-map
        if obj is None:
            out[name] = {"state": why or "missing", "path": str(_paths(store, name)[0])}
            continue
        ids = _index_ids(obj.index)
        out[name] = {"state": "ok", "path": str(_paths(store, name)[0]),
                     "catalog_version": int(obj.meta.get("catalog_version", -1)),
                     "clip_end": int(obj.meta.get("clip_end", -1)),
                     "ntotal": int(obj.index.ntotal), "ids": ids}
    return out


def _index_ids(index) -> np.ndarray | None:
    """The ids an index holds (IDMap or inverted lists); None for a kind that does not say."""
    if hasattr(index, "id_map"):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
             for i in range(ivf.nlist) if lists.list_size(i)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def temp_files(store: RegionStore) -> list[Path]:
    """Temp files of index saves that never finished (harmless; swept by the next save)."""
    return sorted(store.index_dir.glob("*.tmp-*")) if store.index_dir.exists() else []


def rebuild_indexes(store: RegionStore, reason: str) -> tuple[KeyframeIndex, EmbeddingIndex]:
    """Drop and rebuild both indexes from the features; recorded in the store's meta."""
    drop_indexes(store)
    for t in temp_files(store):
        with contextlib.suppress(OSError):
            t.unlink()
    out = ensure_indexes(store)
    store.set_meta(index_rebuilt_at=time.strftime("%Y-%m-%d %H:%M:%S"), index_rebuild_reason=reason)
    return out


def drop_indexes(store: RegionStore) -> None:
    for name in ("keyframes", "embeddings"):
        for p in _paths(store, name):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                raise StoreError(f"cannot remove index file {p}: {err}") from err
