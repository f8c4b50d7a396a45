"""Diversity geometry: diverse, coverage and k-median picks against exact references, seeds and
allowed pools respected, coverage better than random and farthest point."""

from __future__ import annotations

import numpy as np
import pytest

from engine.curation.diversity import diverse_picks
from engine.errors import InputError
from kernels import reference as ref


def test_diverse_picks_match_exact_traversal_and_beat_random():
    from benchmarks.select_scale import clustered_embeddings, coverage

    x, _ = clustered_embeddings(20000, 64, n_clusters=100, n_rare=5, rare_size=10, seed=1)
    allowed = np.ones(len(x), bool)
    seeds = np.array([0, 1], np.int64)
    picks, _ = diverse_picks(x, 200, seeds, allowed, np.random.default_rng(0), sample=len(x))
    min_sq = ref.min_sq_distances(x, x[seeds])
    want = ref.greedy_kcentre(x, 200, min_sq, allowed & ~np.isin(np.arange(len(x)), seeds))
    np.testing.assert_array_equal(picks, want[0])  # sample=n: the exact traversal
    rand = np.mean([coverage(x, np.random.default_rng(s).choice(len(x), 200, replace=False)) for s in range(5)])
    sampled = np.mean([coverage(x, diverse_picks(x, 200, seeds, allowed, np.random.default_rng(s))[0])
                       for s in range(5)])
    assert sampled < 0.85 * rand


def test_coverage_picks_respect_allowed_seeds_and_seed():
    from benchmarks.select_scale import clustered_embeddings, coverage
    from engine.curation.diversity import _allocate, coverage_picks

    x, labels = clustered_embeddings(20000, 32, n_clusters=60, n_rare=3, rare_size=10, seed=2)
    allowed = np.random.default_rng(1).random(len(x)) < 0.9
    # a previous set covering every clip of clusters 0-9 (the biggest: ~40% of the clips)
    covered = np.isin(labels, np.arange(10))
    seeds = np.flatnonzero(covered)[::5]
    picks, dists = coverage_picks(x, 300, seeds, allowed, np.random.default_rng(4))
    assert len(picks) == len(np.unique(picks)) == 300
    assert allowed[picks].all() and not np.isin(picks, seeds).any()
    assert np.all(np.diff(dists) <= 0)  # most novel first
    assert covered[picks].mean() < 0.15  # new picks go where the previous set is thin
    again, _ = coverage_picks(x, 300, seeds, allowed, np.random.default_rng(4))
    np.testing.assert_array_equal(picks, again)
    # better mean coverage than exact farthest point and than random, same budget, no seeds
    none = np.zeros(0, np.int64)
    ours = coverage(x, coverage_picks(x, 300, none, allowed, np.random.default_rng(0))[0])
    exact = coverage(x, diverse_picks(x, 300, none, allowed, np.random.default_rng(0), sample=len(x))[0])
    rand = coverage(x, np.random.default_rng(0).choice(np.flatnonzero(allowed), 300, replace=False))
    assert ours < 0.9 * min(exact, rand)
    alloc = _allocate(np.array([5.0, 1.0, 0.0, 3.0]), np.array([2, 10, 4, 10]), 9)
    assert alloc.tolist() == [2, 2, 0, 5] and alloc.sum() == 9
    with pytest.raises(InputError, match="coverage or kcentre"):
        diverse_picks(x, 3, none, allowed, np.random.default_rng(0), method="farthest")


def test_global_medoid_rounds_improve_coverage_and_respect_seeds_and_pool(monkeypatch):
    import engine.curation.diversity as div
    from benchmarks.select_scale import clustered_embeddings
    from engine.surfaces.evaluate import coverage

    vectors, _ = clustered_embeddings(30_000, 32, n_clusters=60, seed=2)
    allowed = np.ones(len(vectors), bool)
    allowed[::7] = False  # not selectable (e.g. validation clips), still to be covered
    seeds = np.arange(1, 300, 3)  # a previous training set
    got = {}
    for rounds in (0, 2):
        monkeypatch.setattr(div, "GLOBAL_REFINE_ROUNDS", rounds)
        picks, _ = div.coverage_picks(vectors, 400, seeds, allowed, np.random.default_rng(0))
        assert len(np.unique(picks)) == 400
        assert allowed[picks].all() and not np.isin(picks, seeds).any()
        got[rounds] = coverage(vectors, np.concatenate([seeds, picks]))
    assert got[2] < got[0]  # medoids minimise the mean distance that coverage measures


def test_small_pools_get_exact_greedy_kmedian():
    """A 400-clip pool with 100 picks: exact greedy k-median (the objective coverage measures)
    beats farthest point and random clearly, respects seeds and the allowed pool, and is
    deterministic; picks come most novel first."""
    from benchmarks.select_scale import clustered_embeddings
    from engine.curation.diversity import coverage_picks, kmedian_picks
    from engine.surfaces.evaluate import coverage

    x, _ = clustered_embeddings(400, 32, n_clusters=12, n_rare=2, rare_size=5, seed=5)
    allowed = np.ones(len(x), bool)
    allowed[::9] = False
    seeds = np.array([3, 40, 77])
    none = np.zeros(0, np.int64)
    picks, dists = coverage_picks(x, 100, none, allowed, np.random.default_rng(0))
    cand = np.flatnonzero(allowed)
    np.testing.assert_array_equal(np.sort(picks), np.sort(kmedian_picks(x, cand, none, 100)[0]))
    assert len(np.unique(picks)) == 100 and allowed[picks].all()
    assert np.all(np.diff(dists) <= 0)
    ours = coverage(x, picks)
    far = coverage(x, diverse_picks(x, 100, none, allowed, np.random.default_rng(0), method="kcentre")[0])
    rand = np.mean([coverage(x, np.random.default_rng(s).choice(cand, 100, replace=False)) for s in range(5)])
    assert ours < 0.9 * min(far, rand)
    seeded, _ = coverage_picks(x, 50, seeds, allowed, np.random.default_rng(1))
    assert not np.isin(seeded, seeds).any() and allowed[seeded].all()
    again, _ = coverage_picks(x, 50, seeds, allowed, np.random.default_rng(2))
    np.testing.assert_array_equal(seeded, again)  # no randomness in the exact path


@pytest.mark.parametrize("with_seeds", [False, True])
def test_swap_rounds_reach_a_swap_local_optimum(with_seeds):
    """The k-median swap step never worsens the summed distance to the nearest chosen clip, and
    stops where no single swap of a pick for a candidate (checked by brute force) lowers it;
    seeds stay fixed and count as covering."""
    from engine.curation.diversity import _swap_rounds

    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(c, 0.3, (15, 2)) for c in ((0, 0), (4, 0), (0, 4), (5, 5))])
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    seed_near = d[:, [7]].min(axis=1) if with_seeds else np.full(len(x), np.inf)

    def cost(ch):
        return float(np.minimum(d[:, ch].min(axis=1), seed_near).sum())

    start = np.array([0, 1, 2])  # three picks in one cluster
    got = _swap_rounds(d, start, seed_near, rounds=50)
    assert cost(got) < cost(start) and len(set(got.tolist())) == 3
    best = min(cost(np.where(np.arange(3) == m, x_, got)) for m in range(3) for x_ in range(len(x))
               if x_ not in got)
    assert best >= cost(got) - 1e-9
