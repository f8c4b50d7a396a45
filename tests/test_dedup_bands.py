"""The banded-LSH kernel against its NumPy twin, its recall against the formula, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from kernels import reference as ref


def near_codes(rng, n=240, nbytes=32):
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    flips = (rng.random((n // 2, nbytes * 8)) < 0.06).astype(np.uint8)
    codes[n // 2:] = codes[: n // 2] ^ np.packbits(flips, axis=1)  # near copies of the first half
    return codes


def _case(seed: int, query_fraction: float):
    """Near codes with some invalid rows, a share of queries, groups of 6, 10 bands of 12 bits."""
    rng = np.random.default_rng(seed)
    codes = near_codes(rng)
    n = len(codes)
    valid = rng.random(n) > 0.1
    is_query = rng.random(n) < query_fraction
    return codes, valid, is_query, (np.arange(n) // 6).astype(np.int64), kernels.band_masks(10, 12, seed=3)


@pytest.mark.parametrize("query_fraction", [1.0, 0.2, 0.0])
def test_band_collisions_match_reference(query_fraction):
    codes, valid, is_query, group, masks = _case(11, query_fraction)
    got = kernels.band_collisions(codes, valid, is_query, group, masks, 50)
    want = ref.band_collisions(codes, valid, is_query, group, masks, 50)
    order = np.lexsort((got[1], got[0]))
    assert [g.dtype for g in got] == [np.int64, np.int64, np.int32]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g[order], w)
    if query_fraction:
        assert len(got[0]) > 20  # the test has something to find
    # disjoint band ranges return each pair exactly once, in band order
    parts = [kernels.band_collisions(codes, valid, is_query, group, masks, 50, bands=r)
             for r in (range(0, 3), range(3, 4), range(4, 10))]
    for k in range(3):
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), got[k])


@pytest.mark.parametrize("query_fraction", [1.0, 0.3])
def test_band_collisions_partitions_find_the_same_pairs(query_fraction):
    codes, valid, is_query, group, masks = _case(13, query_fraction)
    want = ref.band_collisions(codes, valid, is_query, group, masks, 50)
    assert len(want[0]) > 20
    for parts in (2, 3, 7):
        got = kernels.band_collisions(codes, valid, is_query, group, masks, 50, partitions=parts)
        order = np.lexsort((got[1], got[0]))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g[order], w)
    with pytest.raises(ValueError, match="partitions"):
        kernels.band_collisions(codes, valid, is_query, group, masks, 50, partitions=0)


def test_band_collisions_64_bit_codes_and_empty():
    rng = np.random.default_rng(12)
    codes = near_codes(rng, 100, 8)
    ones = np.ones(100, bool)
    group = np.arange(100, dtype=np.int64)
    masks = kernels.band_masks(6, 8, n_bits=64, seed=1)
    got = kernels.band_collisions(codes, ones, ones, group, masks, 10)
    want = ref.band_collisions(codes, ones, ones, group, masks, 10)
    assert sorted(zip(*map(list, got), strict=True)) == sorted(zip(*map(list, want), strict=True))
    empty = kernels.band_collisions(codes, ones, ~ones, group, masks, 10)
    assert all(len(e) == 0 for e in empty)
    assert all(len(e) == 0 for e in kernels.band_collisions(codes, ones, ones, group, masks, -1))


@pytest.mark.parametrize("distance", [10, 30, 40])
def test_band_recall_matches_the_formula(distance):
    """Pairs exactly ``distance`` bits apart are found at the rate ``band_recall`` predicts."""
    rng = np.random.default_rng(distance)
    n = 1500
    a = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    flips = np.zeros((n, 256), np.uint8)
    for k in range(n):
        flips[k, rng.choice(256, distance, replace=False)] = 1
    codes = np.concatenate([a, a ^ np.packbits(flips, axis=1)])
    ones = np.ones(2 * n, bool)
    group = np.arange(2 * n, dtype=np.int64)
    bands, bits = 16, 20
    i, j, d = kernels.band_collisions(codes, ones, ones, group, kernels.band_masks(bands, bits, seed=5), 256)
    planted = (j - i == n)
    assert (d[planted] == distance).all()
    rate = planted.sum() / n
    p = kernels.band_recall(distance, bands, bits)
    assert abs(rate - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-3


def test_band_masks_are_seeded_and_sized():
    m = kernels.band_masks(7, 21, seed=9)
    assert m.dtype == np.uint64 and m.shape == (7, 4)
    assert (np.bitwise_count(m).sum(axis=1) == 21).all()
    np.testing.assert_array_equal(m, kernels.band_masks(7, 21, seed=9))
    assert not np.array_equal(m, kernels.band_masks(7, 21, seed=10))
    assert kernels.band_recall(0, 4, 20) == 1.0


def test_band_collisions_bad_input():
    codes = np.zeros((4, 32), np.uint8)
    ones = np.ones(4, bool)
    group = np.arange(4, dtype=np.int64)
    masks = kernels.band_masks(2, 8)
    with pytest.raises(TypeError, match="int64"):
        kernels.band_collisions(codes, ones, ones, group.astype(np.int32), masks, 10)
    with pytest.raises(TypeError, match="bool"):
        kernels.band_collisions(codes, ones.astype(np.uint8), ones, group, masks, 10)
    with pytest.raises(ValueError, match="words per band"):
        kernels.band_collisions(codes, ones, ones, group, kernels.band_masks(2, 8, n_bits=64), 10)
    with pytest.raises(ValueError, match="one flag per hash row"):
        kernels.band_collisions(codes, ones[:3], ones, group, masks, 10)
    with pytest.raises(ValueError, match="bands must be"):
        kernels.band_collisions(codes, ones, ones, group, masks, 10, bands=range(1, 5))
    with pytest.raises(ValueError, match="band_bits"):
        kernels.band_masks(2, 300)
