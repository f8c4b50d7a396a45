"""Erasure: ``clipdex forget`` and ``clipdex compact``.

``forget`` tombstones clips at once: they disappear from the catalog's active set (so from every
query, rarity, dedup, selection, report and export), from the FAISS indexes (rebuilt on the next
read, since the catalog version and the forgotten count changed), from dedup pairs and groups
(a group that loses its representative elects a new one), and their thumbnails are zeroed right
away. ``compact`` then overwrites every forgotten clip's feature rows with zeros, so the data is
gone from disk and its chunks shrink to almost nothing. A forgotten source is refused at ingest
unless ``--force`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import NotFoundError
from .ids import validate_clip_id
from .store import THUMB_SHAPE, RegionStore


@dataclass
class ForgetReport:
    region: str
    forgotten: list[str]
    unknown: list[str]
    regrouped: int

    def as_dict(self) -> dict:
        return {"region": self.region, "forgotten": self.forgotten, "unknown": self.unknown,
                "groups_changed": self.regrouped}


def regroup(store: RegionStore) -> int:
    """Recompute duplicate groups and representatives from the stored pairs of active clips."""
    from .dedup import _union_find, elect_representatives, load_dedup

    pairs, old = load_dedup(store)
    table = store.clip_table()
    groups = elect_representatives(
        _union_find(len(table), [(p.a, p.b) for p in pairs if p.relation == "duplicate"]), table)
    rows = [(m, rep, rep) for rep, members in groups.items() for m in members]
    changed = len(set(old) ^ set(groups))
    with store.writer("clipdex forget (regroup)"):
        with store.transaction() as db:
            db.execute("DELETE FROM groups")
            db.executemany("INSERT INTO groups(clip_row, group_id, representative) VALUES(?,?,?)", rows)
    return changed


def forget(store: RegionStore, clip_ids: Sequence[str], *, reason: str = "erasure request") -> ForgetReport:
    ids = [validate_clip_id(c) for c in clip_ids]
    rows, unknown, known = [], [], []
    for cid in ids:
        try:
            rows.append(store.clip_row(cid))
            known.append(cid)
        except NotFoundError:
            unknown.append(cid)
    with store.writer("clipdex forget"):
        store.tombstone(rows, reason)
        zero = np.zeros((1, *THUMB_SHAPE), np.uint8)
        for r in rows:  # thumbnails are pictures: erase them now, not at compaction
            store._write_rows("thumbnails", r, zero)
        changed = regroup(store) if rows else 0
    return ForgetReport(store.region.name, known, unknown, changed)


def compact(store: RegionStore) -> dict:
    from .index import ensure_indexes

    with store.writer("clipdex compact"):
        out = store.compact_forgotten()
    ensure_indexes(store)
    return {"region": store.region.name, **out}
