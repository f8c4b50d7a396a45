"""Float FAISS index of clip embeddings (ids = clip rows), inner product = cosine.

Which index, by region size (``n`` = clips in the index):

* ``n <= EXACT_MAX``: exact search (``IndexFlatIP``). Recall 1; ~2 ms a query at 100k, so exact
  stays the choice while it is fast enough and needs no training.
* ``n > EXACT_MAX``: an inverted file with exact vectors (``IndexIVFFlat``), ``nlist`` = the
  power of two nearest ``4 * sqrt(n)`` (4096 at 1M), k-means trained on a seeded sample of
  ``IVF_TRAIN_PER_LIST * nlist`` vectors, searched with ``nprobe = IVF_NPROBE`` lists.
  Measured on 1M synthetic clustered 128-d embeddings (``python benchmarks/query_scale.py``):
  recall@10 against exact search and single-thread latency are in the README table.

Why IVF and not HNSW: an IVF index's inverted lists are **memory-mapped** when the index is
current (``IO_FLAG_MMAP``), so a one-shot ``clipdex query`` on a 1M-clip region opens it in tens
of milliseconds and pages in only the ``nprobe`` lists it scans; ``IndexHNSWFlat`` cannot be
memory-mapped (reading a 1M HNSW32 file copies ~800 MB: seconds). HNSW also builds ~10x slower
on 128-d data here (200k random vectors: 210 s on the shared 2-core box vs ~150 s for a 1M IVF).
An index trained for ``n0`` clips serves appends up to ``IVF_REBUILD_GROWTH * n0`` clips and is
rebuilt beyond that (lists grow too long) or when the region falls back under ``EXACT_MAX``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np

from ._check import check_array as _check

#: regions with at most this many clips are searched exactly
EXACT_MAX = 50_000
#: IVF lists ~ IVF_LISTS_PER_SQRT * sqrt(n), a power of two in [IVF_MIN_LISTS, IVF_MAX_LISTS]
IVF_LISTS_PER_SQRT = 4.0
IVF_MIN_LISTS = 256
IVF_MAX_LISTS = 16384
#: k-means training sample: this many vectors per list (FAISS warns below 39)
IVF_TRAIN_PER_LIST = 40
IVF_TRAIN_SEED = 0
#: lists scanned per query: recall@10 >= 0.95 on the 1M benchmark (see README)
IVF_NPROBE = 32
#: an IVF index trained on n0 clips is rebuilt once the region holds more than this x n0
IVF_REBUILD_GROWTH = 4.0
#: kinds whose saved file may be memory-mapped when no appends are pending
MMAP_KINDS = ("flat-ip", "ivf-flat")

# kept for older imports: the size above which an approximate index is used
HNSW_THRESHOLD = EXACT_MAX


def ivf_lists(n: int) -> int:
    """Number of IVF lists for ``n`` vectors."""
    target = IVF_LISTS_PER_SQRT * math.sqrt(max(n, 1))
    return int(min(IVF_MAX_LISTS, max(IVF_MIN_LISTS, 2 ** round(math.log2(target)))))


@dataclass
class EmbeddingIndex:
    index: faiss.Index
    meta: dict

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, meta: dict) -> EmbeddingIndex:
        _check("vectors", vectors, np.float32, 2)
        _check("ids", ids, np.int64, 1)
        if len(vectors) != len(ids):
            raise ValueError(f"vectors ({len(vectors)}) and ids ({len(ids)}) must have the same length")
        d = vectors.shape[1]
        n = len(ids)
        extra: dict = {}
        if n > EXACT_MAX:
            nlist = ivf_lists(n)
            quantizer = faiss.IndexFlatIP(d)
            inner = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            inner.own_fields = True
            quantizer.this.disown()
            inner.cp.seed = IVF_TRAIN_SEED
            rng = np.random.default_rng(IVF_TRAIN_SEED)
            m = min(n, IVF_TRAIN_PER_LIST * nlist)
            sample = np.sort(rng.choice(n, m, replace=False)) if m < n else np.arange(n)
            inner.train(np.ascontiguousarray(vectors[sample]))
            inner.nprobe = IVF_NPROBE
            kind = "ivf-flat"
            extra = {"nlist": nlist, "nprobe": IVF_NPROBE, "trained_n": n}
        else:
            inner = faiss.IndexFlatIP(d)
            kind = "flat-ip"
        index = faiss.IndexIDMap2(inner)
        if n:
            index.add_with_ids(np.ascontiguousarray(vectors), ids)
        return cls(index, {**meta, "kind": kind, "dim": d, "ntotal": int(index.ntotal), **extra})

    @staticmethod
    def fits(meta: dict, n: int) -> bool:
        """Whether an index described by ``meta`` is the right kind for ``n`` clips (else rebuild)."""
        kind = meta.get("kind")
        if kind == "flat-ip":
            return n <= EXACT_MAX
        if kind == "ivf-flat":
            return EXACT_MAX < n <= IVF_REBUILD_GROWTH * max(int(meta.get("trained_n", 0)), 1)
        return False

    @staticmethod
    def mmappable(meta: dict) -> bool:
        return meta.get("kind") in MMAP_KINDS

    def _ivf(self):
        inner = faiss.downcast_index(self.index.index) if isinstance(self.index, faiss.IndexIDMap2) else None
        return inner if isinstance(inner, faiss.IndexIVF) else None

    def __post_init__(self) -> None:
        ivf = self._ivf()
        if ivf is not None:
            ivf.nprobe = int(self.meta.get("nprobe", IVF_NPROBE))

    def set_nprobe(self, nprobe: int) -> None:
        """Lists scanned per query (IVF only; exact indexes ignore it)."""
        ivf = self._ivf()
        if ivf is not None:
            ivf.nprobe = int(nprobe)

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
