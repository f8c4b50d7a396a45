"""Float FAISS index of clip embeddings (ids = clip rows), inner product = cosine.

Which index, by region size (``n`` = clips in the index):

* ``n <= EXACT_MAX``: exact search (``IndexFlatIP``). Recall 1; ~2 ms a query at 100k, so exact
  stays the choice while it is fast enough and needs no training.
* ``n > EXACT_MAX`` (kind ``ivf-pqfs-refine``): an inverted file of 4-bit fast-scan PQ codes
  (``IndexIVFPQFastScan``, ``d/2`` sub-quantizers: 32 bytes a 128-d clip) whose top
  ``k * REFINE_K_FACTOR`` candidates are re-ranked exactly against the float embeddings
  (``IndexRefineFlat``), so the scores returned are exact cosines. ``nlist`` = the power of two
  nearest ``4 * sqrt(n)`` (4096 at 1M), k-means (``IVF_TRAIN_ITERATIONS``) trained on a seeded
  sample of ``IVF_TRAIN_PER_LIST * nlist`` vectors, searched with ``nprobe = IVF_NPROBE`` lists.
  The fast-scan codes are ~16x smaller than float vectors and scanned with SIMD look-up tables,
  so a query can afford to scan 192 lists (~47k clips at 1M) in about the time IVF-flat scans 32;
  the exact re-rank of 200 candidates then recovers what the coarse codes blur.
  Measured on 1M synthetic clustered 128-d embeddings (``python -m benchmarks.query_scale``),
  one thread, k=10: recall@10 0.969 at p50 0.49 ms / p99 0.62 ms, where IVF4096-flat reached
  0.933 at nprobe 32 (p50 0.53 ms) and 0.949 at nprobe 64 (0.97 ms); docs/design.md has the comparison.

Loading: the saved file is read with ``IO_FLAG_MMAP_IFC``, which maps the exact float vectors
(the re-rank store, 512 MB at 1M) in place instead of copying them; only the PQ lists and id map
are read (+94 MB RSS at 1M), so a one-shot ``clipdex query`` opens a 1M-clip index in 20-55 ms
and pages in only the ~200 vectors it re-ranks. ``IndexHNSWFlat`` cannot be memory-mapped (reading a
1M HNSW32 file copies ~800 MB: seconds) and builds ~10x slower on 128-d data here (200k random
vectors: 210 s on the shared 2-core box vs ~80 s for this 1M index); a finer partition (nlist
8192) trained ~2x slower and needed more lists for the same recall (0.952 at 256 lists, 0.74 ms).
An index trained for ``n0`` clips serves appends up to ``IVF_REBUILD_GROWTH * n0`` clips and is
rebuilt beyond that (lists grow too long) or when the region falls back under ``EXACT_MAX``.
Indexes of an older kind (``ivf-flat``, saved before the change) are rebuilt on first use.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import faiss
import numpy as np

from engine.index._check import check_array as _check

#: regions with at most this many clips are searched exactly
EXACT_MAX = 50_000
#: IVF lists ~ IVF_LISTS_PER_SQRT * sqrt(n), a power of two in [IVF_MIN_LISTS, IVF_MAX_LISTS]
IVF_LISTS_PER_SQRT = 4.0
IVF_MIN_LISTS = 256
IVF_MAX_LISTS = 16384
#: k-means training sample: this many vectors per list (FAISS warns below 39)
IVF_TRAIN_PER_LIST = 40
IVF_TRAIN_SEED = 0
#: k-means iterations of the coarse quantizer (FAISS's default is 25): the training costs
#: sample x lists x iterations, 16x the 1M-clip cost at 10M clips; 10 iterations give the same
#: recall@10 on the 1M benchmark (``python -m benchmarks.query_scale``) at ~0.55x the time
IVF_TRAIN_ITERATIONS = 10
#: lists scanned per query: recall@10 0.969 on the 1M benchmark (docs/performance.md)
IVF_NPROBE = 192
#: PQ fast-scan candidates re-ranked exactly per result wanted (k=10: 200 candidates)
REFINE_K_FACTOR = 20
#: bits per PQ sub-quantizer (fast scan needs 4)
PQ_NBITS = 4
#: an IVF index trained on n0 clips is rebuilt once the region holds more than this x n0
IVF_REBUILD_GROWTH = 4.0
#: the approximate kind built above EXACT_MAX
IVF_KIND = "ivf-pqfs-refine"
#: kinds this code builds; a saved index of any other kind (``ivf-flat``: older) is rebuilt
KINDS = ("flat-ip", IVF_KIND)
#: batch searches over every clip (rarity: the mean distance to the 10 nearest, not the nearest
#: clip) scan fewer lists and re-rank fewer candidates: at 100k clips (``python -m
#: benchmarks.query_scale --rarity``) the search takes 6.5 s instead of 20.5 s, the rarity scores
#: move by 0.01 % on average, their rank correlation stays 1.0000 and 97 % of the top 5 % stay
BATCH_NPROBE = 64
BATCH_K_FACTOR = 4.0
#: codes scanned per query by :meth:`EmbeddingIndex.search_members` (64 lists of a 1M-clip index):
#: fewer lists a query as lists grow past that, so the work per query stays fixed
MEMBER_SCAN_CODES = 16_384
#: searches of at most this many queries run on one thread (no OpenMP team start-up or spinning
#: for a single query; FAISS parallelises over queries, so a lone query cannot use more anyway)
SINGLE_THREAD_MAX_QUERIES = 4

# kept for older imports: the size above which an approximate index is used
HNSW_THRESHOLD = EXACT_MAX


@contextlib.contextmanager
def _faiss_threads(n: int):
    """At most ``n`` FAISS (OpenMP) threads inside the block."""
    before = faiss.omp_get_max_threads()
    if before <= n:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def ivf_lists(n: int) -> int:
    """Number of IVF lists for ``n`` vectors."""
    target = IVF_LISTS_PER_SQRT * math.sqrt(max(n, 1))
    return int(min(IVF_MAX_LISTS, max(IVF_MIN_LISTS, 2 ** round(math.log2(target)))))


def pq_subquantizers(d: int) -> int:
    """PQ sub-quantizers for ``d`` dims: two dims each (one each for odd ``d``)."""
    return d // 2 if d % 2 == 0 else d


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
            m_pq = pq_subquantizers(d)
            quantizer = faiss.IndexFlatIP(d)
            ivf = faiss.IndexIVFPQFastScan(quantizer, d, nlist, m_pq, PQ_NBITS, faiss.METRIC_INNER_PRODUCT)
            ivf.own_fields = True
            quantizer.this.disown()
            ivf.cp.seed = IVF_TRAIN_SEED
            ivf.cp.niter = IVF_TRAIN_ITERATIONS
            rng = np.random.default_rng(IVF_TRAIN_SEED)
            m = min(n, IVF_TRAIN_PER_LIST * nlist)
            sample = np.sort(rng.choice(n, m, replace=False)) if m < n else np.arange(n)
            train = np.ascontiguousarray(vectors[sample])
            # the coarse k-means on every thread, as IndexIVF.train would run it (spherical for
            # inner product); then IndexIVF.train finds the quantizer trained and fits only the
            # PQ on residuals, on one thread: FAISS's threaded PQ training of 4-bit fast-scan
            # codes spins (100k clips: 21.7 s on two threads of this box, 0.3 s on one)
            faiss.Clustering(d, nlist, ivf.cp).train(train, quantizer)
            with _faiss_threads(1):
                ivf.train(train)
            ivf.nprobe = IVF_NPROBE
            inner = faiss.IndexRefineFlat(ivf)
            inner.own_fields = True
            ivf.this.disown()
            inner.k_factor = float(REFINE_K_FACTOR)
            index = faiss.IndexIDMap(inner)  # no reverse map to rebuild on every load (IDMap2)
            kind = IVF_KIND
            extra = {"nlist": nlist, "nprobe": IVF_NPROBE, "pq_m": m_pq, "pq_nbits": PQ_NBITS,
                     "k_factor": REFINE_K_FACTOR, "trained_n": n}
        else:
            inner = faiss.IndexFlatIP(d)
            index = faiss.IndexIDMap2(inner)
            kind = "flat-ip"
        index.own_fields = True
        inner.this.disown()
        if n:
            index.add_with_ids(np.ascontiguousarray(vectors), ids)
        return cls(index, {**meta, "kind": kind, "dim": d, "ntotal": int(index.ntotal), **extra})

    @staticmethod
    def fits(meta: dict, n: int) -> bool:
        """Whether an index described by ``meta`` is the right kind for ``n`` clips (else rebuild)."""
        kind = meta.get("kind")
        if kind == "flat-ip":
            return n <= EXACT_MAX
        if kind == IVF_KIND:
            return EXACT_MAX < n <= IVF_REBUILD_GROWTH * max(int(meta.get("trained_n", 0)), 1)
        return False

    @staticmethod
    def known_kind(meta: dict) -> bool:
        """Whether a saved index is of a kind this code builds (else rebuild it, even if current)."""
        return meta.get("kind") in KINDS

    @staticmethod
    def mmappable(meta: dict) -> bool:
        return meta.get("kind") in KINDS

    @staticmethod
    def read_flags(meta: dict) -> int:
        """FAISS read flags for a current saved index: the approximate kind maps its float
        re-rank store in place (``IO_FLAG_MMAP_IFC``); the exact kind is read (<= 25 MB)."""
        return faiss.IO_FLAG_MMAP_IFC if meta.get("kind") == IVF_KIND else faiss.IO_FLAG_MMAP

    def _ivf(self):
        try:
            return faiss.extract_index_ivf(self.index)
        except RuntimeError:  # exact index
            return None

    def _refine(self):
        inner = faiss.downcast_index(self.index.index) if hasattr(self.index, "id_map") else None
        return inner if isinstance(inner, faiss.IndexRefine) else None

    def __post_init__(self) -> None:
        ivf = self._ivf()
        if ivf is not None:
            ivf.nprobe = int(self.meta.get("nprobe", IVF_NPROBE))
        refine = self._refine()
        if refine is not None:
            refine.k_factor = float(self.meta.get("k_factor", REFINE_K_FACTOR))

    def set_nprobe(self, nprobe: int) -> None:
        """Lists scanned per query (IVF only; exact indexes ignore it)."""
        ivf = self._ivf()
        if ivf is not None:
            ivf.nprobe = int(nprobe)

    def set_k_factor(self, k_factor: float) -> None:
        """Candidates re-ranked exactly per result wanted (approximate kind only)."""
        refine = self._refine()
        if refine is not None:
            refine.k_factor = float(k_factor)

    @contextlib.contextmanager
    def lighter_search(self, nprobe: int = BATCH_NPROBE, k_factor: float = BATCH_K_FACTOR):
        """Within the block, scan at most ``nprobe`` lists and re-rank at most ``k_factor``
        candidates per result (approximate kind only; exact indexes are untouched). For batch
        jobs that search every clip and need neighbourhoods, not the very nearest clip: the
        rarity density (module doc: recall figures)."""
        ivf, refine = self._ivf(), self._refine()
        before = (ivf.nprobe if ivf is not None else None, refine.k_factor if refine is not None else None)
        try:
            if ivf is not None:
                ivf.nprobe = min(int(ivf.nprobe), int(nprobe))
            if refine is not None:
                refine.k_factor = min(float(refine.k_factor), float(k_factor))
            yield self
        finally:
            if ivf is not None:
                ivf.nprobe = before[0]
            if refine is not None:
                refine.k_factor = before[1]

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        _check("vectors", vectors, np.float32, 2)
        _check("ids", ids, np.int64, 1)
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors), ids)
            self.__dict__.pop("_member_cache", None)
        self.meta["ntotal"] = int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by cosine similarity: ``(similarities float32[n,k], ids int64[n,k])``; -1 pads."""
        _check("queries", queries, np.float32, 2)
        if self.index.ntotal == 0:
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        queries = np.ascontiguousarray(queries)
        if len(queries) > SINGLE_THREAD_MAX_QUERIES:
            return self.index.search(queries, k)
        with _faiss_threads(1):
            return self.index.search(queries, k)

    def search_members(self, queries: np.ndarray, ids: np.ndarray, k: int,
                       scan_codes: int = MEMBER_SCAN_CODES) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by cosine of vectors that are themselves in the index (``ids``: their ids; a
        batch job's "neighbours of every clip"), as :meth:`search` returns them.

        An approximate index scans, for each query, the lists whose centroids lie nearest to
        the centroid of the query's own list (those of every list are found once, by one
        centroid-to-centroid search), about ``scan_codes`` codes a query, with the exact
        query-to-centroid scores, and re-ranks ``BATCH_K_FACTOR`` candidates a result exactly.
        A plain search compares every query with every centroid first: ``nlist`` x ``d`` per
        query, which grows with the square root of the region and is most of a batch search's
        time past a million clips; here the work per query stays fixed as the region grows.
        Exact indexes, and queries whose id is not in the index, take :meth:`search` in its
        lighter batch settings."""
        _check("queries", queries, np.float32, 2)
        ids = np.asarray(ids, np.int64)
        ivf, refine = self._ivf(), self._refine()
        plain = ivf is None or refine is None or not len(queries) or self.index.ntotal == 0
        internal = None if plain else self._internal_ids(ids)
        if plain or (internal < 0).any():
            with self.lighter_search():
                return self.search(queries, k)
        lists, probes, centroids = self._member_lists(ivf, scan_codes)
        queries = np.ascontiguousarray(queries)
        probe = probes[lists[internal]]  # [q, nprobe] list numbers
        coarse = np.einsum("qd,qpd->qp", queries, centroids[probe]).astype(np.float32)
        want = min(int(self.index.ntotal), max(k, int(np.ceil(k * BATCH_K_FACTOR))))
        before = ivf.nprobe
        ivf.nprobe = probe.shape[1]
        try:
            _, cand = ivf.search_preassigned(queries, want, probe, coarse)
        finally:
            ivf.nprobe = before
        # exact re-rank in FAISS (threaded, no gathered copy of the candidates' vectors): the
        # k best inner products among each query's candidates (-1 ends a row's candidates)
        base = faiss.downcast_index(refine.refine_index)
        kk = min(k, cand.shape[1])
        sims = np.empty((len(queries), kk), np.float32)
        picked = np.empty((len(queries), kk), np.int64)
        cand = np.ascontiguousarray(cand, dtype=np.int64)
        faiss.knn_inner_products_by_idx(faiss.swig_ptr(queries), base.get_xb(), faiss.swig_ptr(cand),
                                        int(base.d), len(queries), int(base.ntotal), cand.shape[1], kk,
                                        faiss.swig_ptr(sims), faiss.swig_ptr(picked), cand.shape[1])
        sims[picked < 0] = -np.inf
        id_map = self._id_map()
        out = np.where(picked >= 0, id_map[np.maximum(picked, 0)], -1)
        if sims.shape[1] < k:  # fewer vectors than k: pad as search does
            pad = k - sims.shape[1]
            sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
            out = np.pad(out, ((0, 0), (0, pad)), constant_values=-1)
        return sims, out

    def _id_map(self) -> np.ndarray:
        cache = self.__dict__.setdefault("_member_cache", {})
        if "id_map" not in cache:
            cache["id_map"] = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        return cache["id_map"]

    def _internal_ids(self, ids: np.ndarray) -> np.ndarray:
        """Internal (insertion) numbers of ``ids``, -1 where absent."""
        id_map = self._id_map()
        cache = self.__dict__.setdefault("_member_cache", {})
        if "order" not in cache:
            cache["order"] = np.argsort(id_map, kind="stable")
        order = cache["order"]
        pos = np.searchsorted(id_map, ids, sorter=order)
        pos = np.minimum(pos, len(order) - 1)
        found = order[pos]
        return np.where(id_map[found] == ids, found, -1)

    def _member_lists(self, ivf, scan_codes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(list of every internal vector, the lists probed from each list, the centroids)."""
        cache = self.__dict__.setdefault("_member_cache", {})
        key = ("lists", int(ivf.ntotal), int(scan_codes))
        if cache.get("lists_key") != key:
            nlist = int(ivf.nlist)
            lists = np.full(int(ivf.ntotal), -1, np.int32)
            inv = ivf.invlists
            for lst in range(nlist):
                size = inv.list_size(lst)
                if size:
                    ptr = inv.get_ids(lst)
                    lists[faiss.rev_swig_ptr(ptr, size)] = lst
                    inv.release_ids(lst, ptr)
            centroids = ivf.quantizer.reconstruct_n(0, nlist)
            nprobe = int(min(nlist, ivf.nprobe, BATCH_NPROBE, max(1, round(scan_codes * nlist / max(ivf.ntotal, 1)))))
            flat = faiss.IndexFlatIP(int(ivf.d))
            flat.add(centroids)
            _, probes = flat.search(centroids, nprobe)
            own = np.arange(nlist)
            missing = ~(probes == own[:, None]).any(axis=1)  # a list always probes itself
            probes[missing, -1] = own[missing]
            cache.update(lists_key=key, lists=lists, probes=probes.astype(np.int64), centroids=centroids)
        return cache["lists"], cache["probes"], cache["centroids"]

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)


L2_EXACT_MAX = 50_000
L2_NPROBE = 16


class L2Index:
    """A transient Euclidean index over a few low-dimensional vectors per clip (the dynamics view
    of rarity: 16 telemetry statistics), searched like :class:`EmbeddingIndex` (ids = clip rows,
    results: squared distances). Exact up to ``L2_EXACT_MAX`` vectors; above, IVF with
    ``4 sqrt(n)`` lists, ``L2_NPROBE`` probed (a 16-d k-means trains in seconds, and a density
    estimate needs no exact neighbours)."""

    def __init__(self, x: np.ndarray, rows: np.ndarray):
        n, d = x.shape
        if n <= L2_EXACT_MAX:
            self.index = faiss.IndexFlatL2(d)
        else:
            nlist = int(4 * np.sqrt(n))
            self.index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
            sample = x[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)]
            self.index.train(np.ascontiguousarray(sample))
            self.index.nprobe = L2_NPROBE
        self.index.add(x)
        self.rows = np.asarray(rows, np.int64)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        dist, ids = self.index.search(np.ascontiguousarray(q, np.float32), k)
        return dist, np.where(ids >= 0, self.rows[np.clip(ids, 0, None)], -1)
