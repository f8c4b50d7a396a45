"""Hamming distances between binary codes ``uint8[n, B]`` (B a multiple of 8).

Codes are viewed (no copy) as ``uint64[n, B/8]`` words; popcount is LLVM's ``ctpop``
intrinsic, which compiles to ``popcnt`` / AVX-512 ``vpopcntq`` (measured faster than a SWAR
popcount here: see ``benchmarks/test_bench_kernels.py``). Distances are ``uint16`` (codes up to
65535 bits) in matrices, ``int32`` in top-k results.
"""

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from ._config import INT_JIT, PARALLEL
from ._validate import check_codes, check_int, check_same_width

__all__ = ["hamming_matrix", "hamming_topk", "hamming_within", "popcount64", "popcount64_swar"]

#: queries per parallel work item in the top-k / within kernels
QUERIES_PER_BLOCK = 16


@intrinsic
def popcount64(typingctx, value):
    """``llvm.ctpop.i64`` on a uint64 (returns uint64)."""
    if not isinstance(value, types.Integer) or value.bitwidth != 64:
        return None
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        llty = context.get_value_type(types.uint64)
        fn = builder.module.declare_intrinsic("llvm.ctpop", [llty])
        return builder.call(fn, [args[0]])

    return sig, codegen


@numba.njit(**INT_JIT)
def popcount64_swar(x):
    """Portable SWAR popcount (kept for the benchmark that justifies ``popcount64``)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(**INT_JIT)
def code_distance(a, i, b, j):
    """Hamming distance between word rows ``a[i]`` and ``b[j]`` (uint64 arrays)."""
    d = np.uint64(0)
    for w in range(a.shape[1]):
        d += popcount64(a[i, w] ^ b[j, w])
    return np.int64(d)


@numba.njit(**INT_JIT, **PARALLEL)
def _hamming_matrix(a, b):
    n, m, words = a.shape[0], b.shape[0], a.shape[1]
    out = np.empty((n, m), np.uint16)
    for i in numba.prange(n):
        row = out[i]
        if words == 4:  # 256-bit codes (PDQ): unrolled
            a0, a1, a2, a3 = a[i, 0], a[i, 1], a[i, 2], a[i, 3]
            for j in range(m):
                row[j] = (popcount64(a0 ^ b[j, 0]) + popcount64(a1 ^ b[j, 1])
                          + popcount64(a2 ^ b[j, 2]) + popcount64(a3 ^ b[j, 3]))
        elif words == 1:  # 64-bit codes (pHash)
            a0 = a[i, 0]
            for j in range(m):
                row[j] = popcount64(a0 ^ b[j, 0])
        else:
            for j in range(m):
                row[j] = code_distance(a, i, b, j)
    return out


@numba.njit(**INT_JIT)
def _distances_to(a, i, b, dist):
    m, words = b.shape[0], b.shape[1]
    if words == 4:
        a0, a1, a2, a3 = a[i, 0], a[i, 1], a[i, 2], a[i, 3]
        for j in range(m):
            dist[j] = (popcount64(a0 ^ b[j, 0]) + popcount64(a1 ^ b[j, 1])
                       + popcount64(a2 ^ b[j, 2]) + popcount64(a3 ^ b[j, 3]))
    elif words == 1:
        a0 = a[i, 0]
        for j in range(m):
            dist[j] = popcount64(a0 ^ b[j, 0])
    else:
        for j in range(m):
            dist[j] = code_distance(a, i, b, j)


@numba.njit(**INT_JIT, **PARALLEL)
def _hamming_topk(queries, base, k):
    n, m, bits = queries.shape[0], base.shape[0], 64 * queries.shape[1]
    idx = np.full((n, k), -1, np.int64)
    dst = np.full((n, k), -1, np.int32)
    kk = min(k, m)
    n_blocks = (n + QUERIES_PER_BLOCK - 1) // QUERIES_PER_BLOCK
    for blk in numba.prange(n_blocks):
        dist = np.empty(m, np.uint16)
        hist = np.empty(bits + 2, np.int64)
        for q in range(blk * QUERIES_PER_BLOCK, min(n, (blk + 1) * QUERIES_PER_BLOCK)):
            if kk == 0:
                continue
            _distances_to(queries, q, base, dist)
            # counting selection: the smallest distance t with count(d <= t) >= kk
            hist[:] = 0
            for j in range(m):
                hist[dist[j] + 1] += 1
            for d in range(1, bits + 2):  # hist[d+1] becomes the start slot of distance d
                hist[d] += hist[d - 1]
            limit = 0
            while hist[limit + 1] < kk:
                limit += 1
            # scatter in base order: ascending distance, ties by smaller index
            for j in range(m):
                d = dist[j]
                if d <= limit:
                    slot = hist[d]
                    if slot < kk:
                        idx[q, slot] = j
                        dst[q, slot] = d
                    hist[d] = slot + 1
    return dst, idx


@numba.njit(**INT_JIT, **PARALLEL)
def _count_within(queries, base, radius):
    n, m = queries.shape[0], base.shape[0]
    counts = np.zeros(n, np.int64)
    n_blocks = (n + QUERIES_PER_BLOCK - 1) // QUERIES_PER_BLOCK
    for blk in numba.prange(n_blocks):
        dist = np.empty(m, np.uint16)
        for q in range(blk * QUERIES_PER_BLOCK, min(n, (blk + 1) * QUERIES_PER_BLOCK)):
            _distances_to(queries, q, base, dist)
            c = 0
            for j in range(m):
                if dist[j] <= radius:
                    c += 1
            counts[q] = c
    return counts


@numba.njit(**INT_JIT, **PARALLEL)
def _fill_within(queries, base, radius, offsets, qi, bi, dd):
    n, m = queries.shape[0], base.shape[0]
    n_blocks = (n + QUERIES_PER_BLOCK - 1) // QUERIES_PER_BLOCK
    for blk in numba.prange(n_blocks):
        dist = np.empty(m, np.uint16)
        for q in range(blk * QUERIES_PER_BLOCK, min(n, (blk + 1) * QUERIES_PER_BLOCK)):
            _distances_to(queries, q, base, dist)
            p = offsets[q]
            for j in range(m):
                if dist[j] <= radius:
                    qi[p] = q
                    bi[p] = j
                    dd[p] = dist[j]
                    p += 1


@numba.njit(**INT_JIT)
def _hamming_within(queries, base, radius):
    counts = _count_within(queries, base, radius)
    n = counts.shape[0]
    offsets = np.zeros(n + 1, np.int64)
    for q in range(n):
        offsets[q + 1] = offsets[q] + counts[q]
    total = offsets[n]
    qi = np.empty(total, np.int64)
    bi = np.empty(total, np.int64)
    dd = np.empty(total, np.uint16)
    _fill_within(queries, base, radius, offsets, qi, bi, dd)
    return qi, bi, dd


def _words(name: str, codes: np.ndarray) -> np.ndarray:
    check_codes(name, codes)
    if codes.shape[1] > 8192:
        raise ValueError(f"{name}: codes of {codes.shape[1]} bytes exceed the uint16 distance "
                         "range (at most 8192 bytes)")
    return codes.view(np.uint64)


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All pairwise distances ``uint16[n, m]`` between codes ``a`` uint8[n,B] and ``b``."""
    wa, wb = _words("a", a), _words("b", b)
    check_same_width("a", a, "b", b)
    return _hamming_matrix(wa, wb)


def hamming_topk(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest base codes of each query: ``(distances int32[n,k], indices int64[n,k])``.

    Exact: distances ascending, ties broken by the smaller base index. When ``k > m`` the
    trailing ``k - m`` slots of every row hold distance -1 and index -1.
    """
    wq, wb = _words("queries", queries), _words("base", base)
    check_same_width("queries", queries, "base", base)
    k = check_int("k", k, 0)
    return _hamming_topk(wq, wb, k)


def hamming_within(queries: np.ndarray, base: np.ndarray, radius: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs within ``radius``: ``(query int64[p], base int64[p], distance uint16[p])``,
    ordered by query index, then base index."""
    wq, wb = _words("queries", queries), _words("base", base)
    check_same_width("queries", queries, "base", base)
    radius = check_int("radius", radius)
    if radius < 0:
        empty = np.empty(0, np.int64)
        return empty, empty.copy(), np.empty(0, np.uint16)
    return _hamming_within(wq, wb, min(radius, 65535))
