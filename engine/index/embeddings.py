"""Float FAISS index of clip embeddings (ids = clip rows), inner product = cosine."""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from ._check import check_array as _check

HNSW_THRESHOLD = 200_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


@dataclass
class EmbeddingIndex:
    index: faiss.Index
    meta: dict

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, meta: dict) -> EmbeddingIndex:
        _check("vectors", vectors, np.float32, 2)
        _check("ids", ids, np.int64, 1)
        d = vectors.shape[1]
        if len(ids) > HNSW_THRESHOLD:
            inner = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
            kind = f"hnsw{HNSW_M}"
        else:
            inner = faiss.IndexFlatIP(d)
            kind = "flat-ip"
        index = faiss.IndexIDMap2(inner)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors), ids)
        return cls(index, {**meta, "kind": kind, "dim": d, "ntotal": int(index.ntotal)})

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        _check("vectors", vectors, np.float32, 2)
        _check("ids", ids, np.int64, 1)
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors), ids)
        self.meta["ntotal"] = int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by cosine similarity: ``(similarities float32[n,k], ids int64[n,k])``; -1 pads."""
        _check("queries", queries, np.float32, 2)
        if self.index.ntotal == 0:
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        return self.index.search(np.ascontiguousarray(queries), k)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)
