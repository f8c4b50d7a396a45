"""Bring-your-own embeddings: vectors computed elsewhere (e.g. a neural video model) imported as a
named *embedding space* of a region, usable by ``rare --space``, ``query --space`` and selection.

An import is a ``.npy`` file of ``float[n, d]`` vectors plus the ``n`` clip ids they belong to
(a ``.txt`` file, one id a line, or a ``.npy`` array of ids), in the same order. The import is
all-or-nothing and refuses, naming the bad value and the fix:

* a file that is not a 2-D float array, ``n == 0`` or ``d == 0``;
* a count mismatch between vectors and ids;
* NaN, inf or all-zero vectors (they cannot be normalised);
* duplicate ids, and ids that are not active clips of the region;
* a dimension other than the space's current one, unless ``replace=True``.

Vectors are stored L2-normalised as float32 (``features.zarr/spaces/NAME/vN``), the id mapping
in the catalog (``space_vectors``). Re-importing a name replaces the space. Clips ingested after
an import have no vector in the space: ``rare``/``query`` in that space cover the imported clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InputError, NotFoundError
from engine.ids import validate_clip_id
from engine.store.region import SPACE_NAME_RE, RegionStore

#: the built-in clip embedding: not a name an import may take
DEFAULT_SPACE = "default"
#: the current learned space (engine.scenes.learned.space_name()): not a name an import may take
LEARNED_SPACE = "learned"


@dataclass
class ImportReport:
    region: str
    space: str
    count: int
    dim: int
    version: int
    replaced: bool

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def check_space_name(name: str) -> str:
    if not isinstance(name, str) or not SPACE_NAME_RE.fullmatch(name) or name in (DEFAULT_SPACE, LEARNED_SPACE):
        raise InputError(f"space name {name!r} is invalid; use 1-64 characters of [A-Za-z0-9._-] "
                         f"other than {DEFAULT_SPACE!r} and {LEARNED_SPACE!r}, e.g. --name videomae-v2")
    return name


def resolve_space(space: str | None) -> str | None:
    """``None``/``"default"`` -> the built-in embeddings (None); ``"learned"`` -> the current
    learned space's name; else a checked space name."""
    if space is None or space == DEFAULT_SPACE:
        return None
    if space == LEARNED_SPACE:
        from engine.scenes.learned import space_name

        return space_name()
    return check_space_name(space)


def load_vectors(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read a .npy array ({err}); save the vectors with np.save") from err
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{path}: expected a 2-D float array [n, d] of vectors, got {arr.dtype}{list(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{path}: holds no vectors (shape {list(arr.shape)})")
    return np.asarray(arr, dtype=np.float32)


def load_ids(path: str | Path) -> list[str]:
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"{path}: cannot read a .npy array of ids ({err}); save a str or int array "
                             "with np.save, or write one id a line to a .txt file") from err
        if arr.ndim != 1 or arr.dtype.kind not in "UiuS":
            raise InputError(f"{path}: expected a 1-D array of clip ids (str or int), got {arr.dtype}{list(arr.shape)}")
        return [x.decode() if isinstance(x, bytes) else str(x) for x in arr.tolist()]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the ids file ({err}); write one clip id a line (UTF-8)") from err
    return [line.strip() for line in text.splitlines() if line.strip()]


def normalise(vectors: np.ndarray, ids: list[str]) -> np.ndarray:
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InputError(f"{len(bad)} vectors hold NaN or inf (first: row {bad[0]}, clip {ids[bad[0]]!r}); "
                         "fix or drop them before importing")
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    if (norms == 0).any():
        bad = np.flatnonzero(norms == 0)
        raise InputError(f"{len(bad)} vectors are all zeros (first: row {bad[0]}, clip {ids[bad[0]]!r}); "
                         "they cannot be normalised: drop them")
    return np.ascontiguousarray((vectors / norms[:, None]).astype(np.float32))


def import_space(store: RegionStore, name: str, vectors: np.ndarray, ids: list[str], *,
                 source: str = "", replace: bool = False) -> ImportReport:
    """Validate and store ``vectors`` (float[n, d]) for clip ``ids`` as space ``name``."""
    check_space_name(name)
    if not isinstance(vectors, np.ndarray) or vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating):
        raise TypeError("vectors must be a float array [n, d]; convert with np.asarray(v, dtype=np.float32)")
    n, d = vectors.shape
    if len(ids) != n:
        raise InputError(f"{n} vectors but {len(ids)} ids; give exactly one clip id per vector, in the same order")
    if n == 0 or d == 0:
        raise InputError(f"nothing to import (vectors shape {[n, d]})")
    for cid in ids:
        validate_clip_id(cid)
    seen: dict[str, int] = {}
    dups = []
    for i, cid in enumerate(ids):
        if cid in seen:
            dups.append((cid, seen[cid], i))
        seen.setdefault(cid, i)
    if dups:
        cid, a, b = dups[0]
        raise InputError(f"{len(dups)} duplicate ids (first: {cid!r} at rows {a} and {b}); each clip may "
                         "have one vector in a space")
    vectors = normalise(vectors, ids)
    replaced = False
    try:
        info = store.space_info(name)
        replaced = True
        if int(info["dim"]) != d and not replace:
            raise InputError(f"space {name!r} holds {info['dim']}-d vectors but the file has {d}-d; import "
                             f"under another --name, or pass --replace to replace the space")
    except NotFoundError:
        pass
    table = store.clip_table()
    pos = {c: int(r) for r, c in zip(table.rows.tolist(), table.clip_ids, strict=True)}
    unknown = [c for c in ids if c not in pos]
    if unknown:
        raise InputError(f"{len(unknown)} ids are not clips of region {store.region.name!r} (first: "
                         f"{', '.join(repr(c) for c in unknown[:5])}); ingest those clips first or drop them")
    rows = np.asarray([pos[c] for c in ids], dtype=np.int64)
    with store.writer(f"clipdex embeddings import --name {name}"):
        version = store.import_space(name, rows, vectors, source)
        from engine.index import ensure_embedding_index

        ensure_embedding_index(store, space=name)  # the import's last step: the space's index
    return ImportReport(store.region.name, name, n, d, version, replaced)


def import_files(store: RegionStore, name: str, vectors_path: str | Path, ids_path: str | Path, *,
                 replace: bool = False) -> ImportReport:
    """``clipdex embeddings import``: read the files, then :func:`import_space`."""
    ids = load_ids(ids_path)
    vectors = load_vectors(vectors_path)
    return import_space(store, name, vectors, ids, source=str(Path(vectors_path).resolve()), replace=replace)


def space_vector_of(store: RegionStore, space: str, clip_row: int, clip_id: str) -> np.ndarray:
    """The vector of one clip in an imported space (InputError when the clip has none)."""
    vec = store.space_vector(space, clip_row)
    if vec is None:
        raise InputError(f"clip {clip_id!r} has no vector in space {space!r}; import one for it, or "
                         "query the default space")
    return vec


def space_matrix(store: RegionStore, space: str, table) -> np.ndarray:
    """Vectors of every clip of ``table`` (a ClipTable) in ``space``, in table order; InputError
    naming the first clip without a vector (selection needs one per candidate clip)."""
    rows, vectors = store.space_vectors(space)
    i = np.searchsorted(rows, table.rows)
    ok = (i < len(rows)) & (rows[np.minimum(i, max(len(rows) - 1, 0))] == table.rows) if len(rows) else \
        np.zeros(len(table), bool)
    if not ok.all():
        first = table.clip_ids[int(np.flatnonzero(~ok)[0])]
        raise InputError(f"space {space!r} has no vector for {int((~ok).sum())} of region "
                         f"{store.region.name!r}'s clips (first: {first!r}); import vectors for every clip, "
                         "or select in the default space")
    return np.ascontiguousarray(vectors[i])
