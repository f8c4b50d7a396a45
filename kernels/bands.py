"""Banded bit-sampling LSH over binary codes: near pairs without an all-pairs scan.

A *band* is a fixed random subset of ``b`` bit positions (a mask of uint64 words, from
:func:`band_masks`). Two codes *collide* in a band when they agree on every bit of its mask. For
codes at Hamming distance ``d`` of ``n`` bits and flips at uniformly random positions, a band of
``b`` bits collides with probability ``q(d) = C(n-d, b) / C(n, b)`` and at least one of ``L``
bands with ``1 - (1 - q(d))^L``; unrelated codes collide in a band with probability about
``2^-b`` (more for biased bits), so ``b ~ log2(N)`` keeps random collisions near linear in ``N``.

:func:`band_collisions` returns every pair ``(i, j)``, ``i < j``, of valid codes that

* collide in at least one band,
* involve at least one *query* code (``is_query``; all valid codes for a self-join),
* lie in different groups (``group[i] != group[j]``; e.g. keyframes of different clips), and
* are within ``radius`` bits (the exact distance is checked),

each pair once (it is reported by the first band it collides in) with its distance. Per band,
every code's band hash is computed into one reused array (8 bytes a code), the query codes'
hashes are packed with their row and sorted (one ``np.sort``); query-query pairs come from runs
of equal hashes, and every other valid code is looked up in a direct-address table over the top
hash bits of the sorted queries. Codes themselves are read only for the members of a run or a
probe hit (a sorted copy of the codes would cost a random read per query code). Scratch memory
per call: 8 bytes a code, 8 bytes a query code (the packed hashes, sorted in place) and, with
other codes, a slot table of up to 16 bytes a query code; ``partitions=P`` splits each band's
hash space into ``P`` parts handled one after the other, dividing the packed hashes and the slot
table by ``P``. Nothing ``N x N`` is ever built, and the work per band is one pass over the
codes plus the sort of the queries, whatever the mix of queries and other codes. Bands are
independent, so a caller may run disjoint band ranges in threads or processes (``bands=``): the
kernels hold no GIL.

Order of the output: by band, then partition, then the scan order inside it; deterministic for a
given input, band range and ``partitions``. Sort it if you need a canonical order.
"""

import numba
import numpy as np

from ._config import INT_JIT
from ._validate import check_array, check_codes, check_int
from .hamming import popcount64

__all__ = ["band_collisions", "band_masks", "band_recall"]


def band_masks(n_bands: int, band_bits: int, n_bits: int = 256, seed: int = 0) -> np.ndarray:
    """``uint64[n_bands, n_bits // 64]`` masks, each with ``band_bits`` random bit positions.

    Bit ``k`` of a code (``np.unpackbits`` order is irrelevant: masks apply to the uint64 view)
    is bit ``k % 64`` of word ``k // 64``. Positions are drawn without replacement within a band,
    independently across bands, from ``np.random.default_rng(seed)``.
    """
    n_bands = check_int("n_bands", n_bands, 1)
    band_bits = check_int("band_bits", band_bits, 1)
    n_bits = check_int("n_bits", n_bits, 64)
    if n_bits % 64 or band_bits > n_bits:
        raise ValueError(f"n_bits must be a multiple of 64 and >= band_bits; got n_bits={n_bits}, "
                         f"band_bits={band_bits}")
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_bands, n_bits // 64), np.uint64)
    for t in range(n_bands):
        for k in rng.choice(n_bits, band_bits, replace=False):
            masks[t, k // 64] |= np.uint64(1) << np.uint64(k % 64)
    return masks


def band_recall(distance: float, n_bands: int, band_bits: int, n_bits: int = 256) -> float:
    """Probability that two codes ``distance`` bits apart (uniform flips) collide in >= 1 band."""
    from math import comb

    d = int(round(distance))
    if d < 0 or d > n_bits:
        raise ValueError(f"distance must be in 0..{n_bits}; got {distance}")
    q = comb(n_bits - d, band_bits) / comb(n_bits, band_bits)
    return 1.0 - (1.0 - q) ** n_bands


@numba.njit(**INT_JIT)
def _mix(h):
    # splitmix64 finaliser: spreads every input bit over the high bits used as the sort key
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


@numba.njit(**INT_JIT)
def _band_hash_into(words, mask, out):
    """The band hash of every row of ``words`` under ``mask``, written to ``out``."""
    n_words = words.shape[1]
    if n_words == 4:  # 256-bit codes (PDQ): four independent products, one finaliser
        m0, m1, m2, m3 = mask[0], mask[1], mask[2], mask[3]
        for r in range(words.shape[0]):
            h = (((words[r, 0] & m0) * np.uint64(0x9E3779B97F4A7C15))
                 ^ ((words[r, 1] & m1) * np.uint64(0xC2B2AE3D27D4EB4F))
                 ^ ((words[r, 2] & m2) * np.uint64(0x165667B19E3779F9))
                 ^ ((words[r, 3] & m3) * np.uint64(0xD6E8FEB86659FD93)))
            out[r] = _mix(h)
        return
    for r in range(words.shape[0]):
        h = np.uint64(0x9E3779B97F4A7C15)
        for w in range(n_words):
            h = _mix(h ^ (words[r, w] & mask[w]))
        out[r] = h


@numba.njit(**INT_JIT)
def _same_band(wa, a, wb, b, masks, t):
    for w in range(wa.shape[1]):
        if (wa[a, w] & masks[t, w]) != (wb[b, w] & masks[t, w]):
            return False
    return True


@numba.njit(**INT_JIT)
def _qualify(wa, a, wb, b, ga, gb, masks, t, radius):
    """Distance of a qualifying pair (rows ``wa[a]``, ``wb[b]``) first found in band ``t``, else -1."""
    if ga == gb:
        return -1
    d = np.int64(0)
    for w in range(wa.shape[1]):
        d += np.int64(popcount64(wa[a, w] ^ wb[b, w]))
    if d > radius:  # most band collisions are far pairs: reject them before the band checks
        return -1
    if not _same_band(wa, a, wb, b, masks, t):  # a hash collision, not a band collision
        return -1
    for u in range(t):  # reported by an earlier band already
        if _same_band(wa, a, wb, b, masks, u):
            return -1
    return d


@numba.njit(**INT_JIT)
def _grow(buf, n):
    out = np.empty(2 * n + 1024, buf.dtype)
    out[:n] = buf[:n]
    return out


@numba.njit(**INT_JIT)
def _part_of(h, n_parts):
    # a function of bits 40..55 of a band hash: inside the key bits of any packing (idx_bits <= 40)
    return np.int64((h >> np.uint64(40)) & np.uint64(0xFFFF)) % n_parts


@numba.njit(**INT_JIT)
def _pack_sel(hashes, sel, idx_bits, part, n_parts):
    """The band hashes of the selected rows in partition ``part``, each packed with its row."""
    low = (np.uint64(1) << np.uint64(idx_bits)) - np.uint64(1)
    n = 0
    for r in range(hashes.shape[0]):
        if sel[r] and (n_parts == 1 or _part_of(hashes[r], n_parts) == part):
            n += 1
    out = np.empty(n, np.uint64)
    n = 0
    for r in range(hashes.shape[0]):
        if sel[r] and (n_parts == 1 or _part_of(hashes[r], n_parts) == part):
            out[n] = (hashes[r] & ~low) | np.uint64(r)
            n += 1
    return out


@numba.njit(**INT_JIT)
def _query_runs(words, group, packed, idx_bits, masks, t, radius):
    """Query-query pairs of band ``t``: runs of equal band hashes in the sorted ``packed``
    (codes are read only for the members of a run)."""
    low = (np.uint64(1) << np.uint64(idx_bits)) - np.uint64(1)
    high = ~low
    nq = packed.shape[0]
    out_i = np.empty(1024, np.int64)
    out_j = np.empty(1024, np.int64)
    out_d = np.empty(1024, np.int32)
    n = 0
    s = 0
    while s < nq:
        e = s + 1
        key = packed[s] & high
        while e < nq and (packed[e] & high) == key:
            e += 1
        for x in range(s, e):
            a = np.int64(packed[x] & low)
            for y in range(x + 1, e):
                b = np.int64(packed[y] & low)
                d = _qualify(words, a, words, b, group[a], group[b], masks, t, radius)
                if d >= 0:
                    if n == out_i.shape[0]:
                        out_i, out_j, out_d = _grow(out_i, n), _grow(out_j, n), _grow(out_d, n)
                    out_i[n], out_j[n], out_d[n] = min(a, b), max(a, b), d
                    n += 1
        s = e
    return out_i[:n].copy(), out_j[:n].copy(), out_d[:n].copy()


@numba.njit(**INT_JIT)
def _slot_starts(packed, top_bits):
    """Direct-address table over the top ``top_bits`` bits of the sorted query hashes."""
    shift = np.uint64(64 - top_bits)
    starts = np.zeros((1 << top_bits) + 1, np.int64)
    for x in range(packed.shape[0]):
        starts[np.int64(packed[x] >> shift) + 1] += 1
    for k in range(1 << top_bits):
        starts[k + 1] += starts[k]
    return starts


@numba.njit(**INT_JIT)
def _probe(words, group, packed, idx_bits, starts, top_bits, hashes, other, part, n_parts, masks, t,
           radius):
    """Pairs of band ``t`` between the sorted queries of partition ``part`` and the other codes
    (rows flagged ``other`` whose band hash falls in the partition), in row order."""
    low = (np.uint64(1) << np.uint64(idx_bits)) - np.uint64(1)
    high = ~low
    shift = np.uint64(64 - top_bits)
    out_i = np.empty(1024, np.int64)
    out_j = np.empty(1024, np.int64)
    out_d = np.empty(1024, np.int32)
    n = 0
    for b in range(hashes.shape[0]):
        if not other[b]:
            continue
        h = hashes[b]
        if n_parts > 1 and _part_of(h, n_parts) != part:
            continue
        key = h & high
        slot = np.int64(h >> shift)
        for x in range(starts[slot], starts[slot + 1]):
            if (packed[x] & high) != key:
                continue
            a = np.int64(packed[x] & low)
            d = _qualify(words, a, words, b, group[a], group[b], masks, t, radius)
            if d >= 0:
                if n == out_i.shape[0]:
                    out_i, out_j, out_d = _grow(out_i, n), _grow(out_j, n), _grow(out_d, n)
                out_i[n], out_j[n], out_d[n] = min(a, b), max(a, b), d
                n += 1
    return out_i[:n].copy(), out_j[:n].copy(), out_d[:n].copy()


def band_collisions(hashes: np.ndarray, valid: np.ndarray, is_query: np.ndarray,
                    group: np.ndarray, masks: np.ndarray, radius: int,
                    bands: range | None = None, partitions: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Near pairs found by banded LSH: ``(i int64[P], j int64[P], distance int32[P])``, i < j.

    ``hashes`` uint8[N, B]; ``valid``, ``is_query`` bool[N]; ``group`` int64[N]; ``masks``
    uint64[L, B/8] from :func:`band_masks`. ``bands`` (default: all) restricts the work to a range
    of band indices; every band still defers to earlier bands, so disjoint ranges that cover
    ``range(L)`` together return each pair exactly once. ``partitions`` splits each band's hash
    space into that many parts handled one after the other: the same pairs, with the sort
    scratch divided by ``partitions`` (the other codes are hashed once per part). See the module
    doc for the rules.
    """
    check_codes("hashes", hashes)
    n = hashes.shape[0]
    for name, arr in (("valid", valid), ("is_query", is_query)):
        check_array(name, arr, np.bool_, 1, "bool[N]")
        if arr.shape[0] != n:
            raise ValueError(f"{name} must have one flag per hash row ({n}); got {arr.shape[0]}")
    check_array("group", group, np.int64, 1, "int64[N]")
    if group.shape[0] != n:
        raise ValueError(f"group must have one id per hash row ({n}); got {group.shape[0]}")
    check_array("masks", masks, np.uint64, 2, "uint64[L,W]")
    if masks.shape[1] * 8 != hashes.shape[1]:
        raise ValueError(f"masks must have {hashes.shape[1] // 8} words per band (one per 64 bits "
                         f"of the codes); got {masks.shape[1]} — build them with band_masks")
    radius = check_int("radius", radius)
    partitions = check_int("partitions", partitions, 1)
    bands = range(masks.shape[0]) if bands is None else bands
    if len(bands) and (bands.start < 0 or bands.stop > masks.shape[0] or bands.step != 1):
        raise ValueError(f"bands must be a contiguous range inside 0..{masks.shape[0]}; got {bands}")
    words = hashes.view(np.uint64)
    sel = valid & is_query
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32))
    if not sel.any() or radius < 0 or len(bands) == 0:
        return empty
    idx_bits = max(1, int(n - 1).bit_length())
    if idx_bits > 40:
        raise ValueError(f"too many codes ({n}); search in blocks of < 2**40")
    other = valid & ~is_query
    if not other.any():
        other = None
    band_hash = np.empty(n, np.uint64)  # reused by every band
    parts = []
    for t in bands:
        _band_hash_into(words, masks[t], band_hash)
        for part in range(partitions):
            packed = _pack_sel(band_hash, sel, idx_bits, part, partitions)
            packed.sort()
            parts.append(_query_runs(words, group, packed, idx_bits, masks, t, radius))
            if other is not None:
                top_bits = min(max(1, int(len(packed)).bit_length()) + 1, 24)
                starts = _slot_starts(packed, top_bits)
                parts.append(_probe(words, group, packed, idx_bits, starts, top_bits, band_hash, other,
                                    part, partitions, masks, t, radius))
                del starts
            del packed
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))
