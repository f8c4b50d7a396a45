"""greedy_kcentre / min_sq_distances against their NumPy twins, bad input, thread invariance."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import kernels
from kernels import reference as ref


def _points(rng, n=700, d=16):
    centres = rng.standard_normal((9, d)).astype(np.float32) * 3
    x = centres[rng.integers(0, 9, n)] + rng.standard_normal((n, d)).astype(np.float32) * 0.4
    return np.ascontiguousarray(x, dtype=np.float32)


@pytest.mark.parametrize("n_seeds", [0, 3])
def test_greedy_kcentre_matches_reference(n_seeds):
    rng = np.random.default_rng(n_seeds)
    x = _points(rng)
    allowed = rng.random(len(x)) < 0.8
    seeds = rng.choice(len(x), n_seeds, replace=False)
    min_sq = kernels.min_sq_distances(x, np.ascontiguousarray(x[seeds]))
    np.testing.assert_allclose(min_sq, ref.min_sq_distances(x, x[seeds]), rtol=1e-4, atol=1e-4)
    got = kernels.greedy_kcentre(x, 40, min_sq, allowed)
    want = ref.greedy_kcentre(x, 40, min_sq, allowed)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-4)
    assert allowed[got[0]].all() and len(set(got[0].tolist())) == 40
    # farthest-point distances never increase after the first pick
    assert np.all(np.diff(got[1][1:]) <= 1e-5)


def test_greedy_kcentre_runs_out_and_keeps_input():
    x = _points(np.random.default_rng(1), n=50)
    allowed = np.zeros(50, bool)
    allowed[[3, 7, 9]] = True
    min_sq = np.full(50, np.inf, np.float32)
    picks, dists, out = kernels.greedy_kcentre(x, 10, min_sq, allowed)
    assert sorted(picks.tolist()) == [3, 7, 9]
    assert picks[0] == 3 and np.isinf(dists[0])  # no centres yet: lowest index first
    assert np.isinf(min_sq).all()  # input untouched
    assert np.isinf(out[0]) and out[3] == 0.0


def test_greedy_kcentre_same_picks_at_any_thread_count():
    x = _points(np.random.default_rng(2), n=9000, d=32)
    x[5000:5010] = x[100]  # exact ties
    min_sq = np.full(len(x), np.inf, np.float32)
    allowed = np.ones(len(x), bool)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        cell = (np.arange(len(x)) % 13).astype(np.int32)
        pivots = np.ascontiguousarray(x[:13])
        one = (*kernels.greedy_kcentre(x, 300, min_sq, allowed),
               *kernels.greedy_kcentre(x, 300, min_sq, allowed, cell, pivots))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        many = (*kernels.greedy_kcentre(x, 300, min_sq, allowed),
                *kernels.greedy_kcentre(x, 300, min_sq, allowed, cell, pivots))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)


def test_greedy_kcentre_refuses_bad_input():
    x = np.zeros((4, 3), np.float32)
    ok_sq, ok_allowed = np.zeros(4, np.float32), np.ones(4, bool)
    with pytest.raises(TypeError, match="float32"):
        kernels.greedy_kcentre(x.astype(np.float64), 1, ok_sq, ok_allowed)
    with pytest.raises(TypeError, match="bool"):
        kernels.greedy_kcentre(x, 1, ok_sq, ok_allowed.astype(np.uint8))
    with pytest.raises(ValueError, match="one entry per vector"):
        kernels.greedy_kcentre(x, 1, ok_sq[:3], ok_allowed)
    with pytest.raises(ValueError, match=">= 0"):
        kernels.greedy_kcentre(x, -1, ok_sq, ok_allowed)
    with pytest.raises(ValueError, match="dimensions"):
        kernels.min_sq_distances(x, np.zeros((2, 5), np.float32))


@pytest.mark.parametrize("n_cells", [1, 7, 40])
def test_greedy_kcentre_with_cells_picks_the_same(n_cells):
    rng = np.random.default_rng(n_cells)
    x = _points(rng, n=1500)
    x[900:905] = x[10]  # exact duplicates: ties
    allowed = rng.random(len(x)) < 0.9
    pivots = np.ascontiguousarray(x[rng.choice(len(x), n_cells, replace=False)])
    cell = np.argmin(((x[:, None, :] - pivots[None]) ** 2).sum(axis=2), axis=1).astype(np.int32)
    cell[::17] = rng.integers(0, n_cells, len(cell[::17]))  # any partition must work
    min_sq = kernels.min_sq_distances(x, np.ascontiguousarray(x[:2]))
    got = kernels.greedy_kcentre(x, 200, min_sq, allowed, cell, pivots)
    want = ref.greedy_kcentre(x, 200, min_sq, allowed)
    plain = kernels.greedy_kcentre(x, 200, min_sq, allowed)
    for a, b in zip(got, plain, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[0], want[0])
    with pytest.raises(ValueError, match="cell values"):
        kernels.greedy_kcentre(x, 1, min_sq, allowed, cell + n_cells, pivots)
    with pytest.raises(TypeError, match="int32"):
        kernels.greedy_kcentre(x, 1, min_sq, allowed, cell.astype(np.int64), pivots)
