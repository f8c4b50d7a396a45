"""Binary FAISS index of keyframe hashes (ids = keyframe rows).

Exact (flat) range search: dedup uses it for regions up to ``DedupParams.exact_max_keyframes``
quality keyframes; above that, an all-pairs range search at radius 40 of 256 bits is too slow
(multi-index hashing does not help at such radii), so dedup switches to the banded LSH kernel
``kernels.band_collisions`` (see ``engine/matching/dedup.py``), which needs no persisted index.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from engine.index._check import check_array as _check


@dataclass
class KeyframeIndex:
    index: faiss.IndexBinary
    meta: dict

    @classmethod
    def build(cls, hashes: np.ndarray, ids: np.ndarray, meta: dict) -> KeyframeIndex:
        _check("hashes", hashes, np.uint8, 2)
        _check("ids", ids, np.int64, 1)
        index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(hashes.shape[1] * 8))
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(hashes), ids)
        return cls(index, {**meta, "kind": "binary-flat", "ntotal": int(index.ntotal)})

    def add(self, hashes: np.ndarray, ids: np.ndarray) -> None:
        _check("hashes", hashes, np.uint8, 2)
        _check("ids", ids, np.int64, 1)
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(hashes), ids)
        self.meta["ntotal"] = int(self.index.ntotal)

    def range_search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query, id, distance) with Hamming distance <= radius: ``lims, distances, ids``."""
        _check("queries", queries, np.uint8, 2)
        if self.index.ntotal == 0 or len(queries) == 0:
            return np.zeros(len(queries) + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
        # FAISS binary range search is strict (< radius)
        lims, dist, ids = self.index.range_search(np.ascontiguousarray(queries), int(radius) + 1)
        return lims.astype(np.int64), dist.astype(np.int32), ids.astype(np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _check("queries", queries, np.uint8, 2)
        if self.index.ntotal == 0:
            return np.full((len(queries), k), -1, np.int32), np.full((len(queries), k), -1, np.int64)
        return self.index.search(np.ascontiguousarray(queries), k)
