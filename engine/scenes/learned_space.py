"""``clipdex embeddings compute``: fill a region's learned embedding space
(:mod:`engine.scenes.learned`) for the clips that have no vector in it (``clipdex ingest
--learned`` fills it as it ingests; this fills what it did not).

The learned vectors need the pictures, which the store does not keep at the network's input
size, so the clips' sources are read again: each source a missing clip came from (for a clip of a
zarr clip store, the store) is discovered as ingest discovers it and cut the way its recording was
cut (the split the store recorded). A sample is the store's clip when its id is the clip's id or,
failing that, when it comes from the same file at the same offset (ids of sources ingested under
another root differ). Vectors are added to the space in batches (:class:`SpaceAdder`) and at the
end, so an interrupted run keeps most of what it did and a rerun does only the rest. A source
that cannot be read is recorded and the run goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import ClipdexError, InputError, NotFoundError
from engine.scenes.learned import clip_vectors, load_calibration, load_model, space_name
from engine.scenes.spaces import import_space
from engine.store.region import RegionStore

#: new vectors held, at least, before they are written to the space (each write rewrites the
#: space's array; see SpaceAdder)
SAVE_EVERY = 4096


@dataclass
class ComputeReport:
    region: str
    space: str
    computed: int = 0
    already: int = 0
    sources: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, error)
    unmatched: list[str] = field(default_factory=list)  # clip ids no source gave back
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _offset_key(source: str, offset: float) -> tuple[str, float]:
    return _resolved(source), round(float(offset), 3)


def _resolved(source: str) -> str:
    return source if "://" in source else str(Path(source).resolve())


def _read_target(source: str) -> str:
    """What to discover to read a clip's source again: the zarr store a clip entry lies in (the
    store is the source ingest discovered), else the source itself."""
    if "://" in source:
        return source
    path = Path(source)
    for parent in (path, *path.parents):
        if parent.name.lower().endswith(".zarr"):
            return str(parent)
    return source


def _existing(store: RegionStore, space: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return store.space_vectors(space)
    except NotFoundError:  # no vector computed yet
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)


def add_vectors(store: RegionStore, clip_ids: list[str], vectors: np.ndarray,
                source: str = "clipdex embeddings compute") -> None:
    """Add learned vectors of ``clip_ids`` to the region's learned space, keeping the vectors
    of its other active clips (a clip's new vector replaces its old one)."""
    space = space_name()
    rows, old = _existing(store, space)
    new = set(clip_ids)
    if len(rows):
        table = store.clip_table()
        id_of_row = dict(zip(table.rows.tolist(), table.clip_ids, strict=True))
        keep = [i for i, r in enumerate(rows.tolist()) if id_of_row.get(r) not in new and r in id_of_row]
        clip_ids = [id_of_row[int(rows[i])] for i in keep] + list(clip_ids)
        vectors = np.concatenate([old[keep], vectors]) if keep else vectors
    import_space(store, space, np.ascontiguousarray(vectors, np.float32), list(clip_ids),
                 source=source, replace=True)


class SpaceAdder:
    """Collects learned vectors and adds them to the space in batches of at least
    :data:`SAVE_EVERY` and at least as many as the space already holds: each addition rewrites
    the space, so batches that grow with it keep the writes of filling a region of n clips
    proportional to n (about log n rewrites), not to n squared."""

    def __init__(self, store: RegionStore, source: str):
        self.store, self.source = store, source
        try:
            self.size = int(store.space_info(space_name())["count"])
        except NotFoundError:
            self.size = 0
        self.ids: list[str] = []
        self.vectors: list[np.ndarray] = []

    def add(self, clip_id: str, vector: np.ndarray) -> None:
        self.ids.append(clip_id)
        self.vectors.append(vector)
        if len(self.ids) >= max(SAVE_EVERY, self.size):
            self.flush()

    def flush(self) -> None:
        if self.ids:
            add_vectors(self.store, self.ids, np.stack(self.vectors), source=self.source)
            self.size += len(self.ids)
            self.ids, self.vectors = [], []


def compute_learned_space(store: RegionStore, keyframe_hz: float = 2.0, image_fps: float = 10.0,
                          progress: Callable[[int, int, str], None] | None = None) -> ComputeReport:
    """Vectors of every active clip of ``store`` without one in :func:`space_name`'s space."""
    import time

    from engine.sources import discover, iter_clips

    t0 = time.perf_counter()
    load_model(), load_calibration()  # the missing extra or calibration is named before any decoding
    space = space_name()
    report = ComputeReport(store.region.name, space)
    table = store.clip_table()
    rows_done, _ = _existing(store, space)
    have = set(rows_done.tolist())
    report.already = sum(1 for r in table.rows.tolist() if r in have)
    todo = [i for i, r in enumerate(table.rows.tolist()) if r not in have]
    by_source: dict[str, list[int]] = {}
    for i in todo:
        by_source.setdefault(_read_target(table.sources[i]), []).append(i)
    splits = store.finished_sources()
    adder = SpaceAdder(store, "clipdex embeddings compute")
    for n, (source, idx) in enumerate(sorted(by_source.items())):
        if progress:
            progress(n, len(by_source), source)
        wanted_ids = {table.clip_ids[i]: i for i in idx}
        wanted_offsets = {_offset_key(table.sources[i], table.source_offset_s[i]): i for i in idx}
        split = next((v for i in idx for v in splits.get(_resolved(table.sources[i]), {}).values()), math.nan)
        found: dict[int, np.ndarray] = {}  # table position -> the clip's learned vector
        try:
            items = discover([source])
            for item in items:
                if item.kind == "error":
                    raise InputError(item.message)
                for sample in iter_clips(item, keyframe_hz=keyframe_hz, image_fps=image_fps,
                                         clip_seconds=None if math.isnan(split) else split):
                    i = wanted_ids.get(sample.clip_id)
                    if i is None:
                        i = wanted_offsets.get(_offset_key(sample.source, sample.source_offset_s))
                    if i is not None and i not in found:  # one clip's frames held at a time
                        found[i] = clip_vectors([sample.keyframes])[0]
        except (ClipdexError, OSError) as err:
            report.failed.append((source, str(err)))
            continue
        for i in sorted(found):
            adder.add(table.clip_ids[i], found[i])
        report.computed += len(found)
        report.unmatched += [table.clip_ids[i] for i in idx if i not in found]
        report.sources += 1
    adder.flush()
    if progress:
        progress(len(by_source), len(by_source), "")
    report.seconds = round(time.perf_counter() - t0, 1)
    return report
