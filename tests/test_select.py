"""Selection on a small hand-built region: duplicates, quotas, previous sets, split, manifests."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.select import (
    diverse_picks,
    parse_mix,
    parse_quotas,
    read_manifest,
    select_clips,
    write_manifest,
)
from engine.store import RegionStore
from kernels import reference as ref
from tests.conftest import make_new_clip

N_CLIPS = 60


@pytest.fixture
def region(home):
    """60 clips on 20 drives; duplicate groups and partial pairs that link drives; rarity; triggers."""
    rng = np.random.default_rng(0)
    store = RegionStore.open(home.region("us-west"), create=True)
    clips = []
    for i in range(N_CLIPS):
        trig = [("hard_brake", 0.5, 1.0, 3.0)] if i % 6 == 0 else []
        clips.append(make_new_clip(rng, f"c{i:03d}", drive_id=f"d{i % 20:02d}", triggers=trig))
    with store.writer():
        rows = store.append_clips(clips)
        groups = []  # duplicate groups across drives: (0,1,2) rep 0, (10,31) rep 31, (44,45) rep 44
        for gid, (members, rep) in enumerate((((0, 1, 2), 0), ((10, 31), 31), ((44, 45), 44))):
            groups += [(rows[m], gid, rows[rep]) for m in members]
        pairs = [(rows[0], rows[1], "duplicate", 0.0, 0, 4, 0, 4, 8, 8, 1.0),
                 (rows[1], rows[2], "duplicate", 0.0, 0, 4, 0, 4, 8, 8, 1.0),
                 (rows[10], rows[31], "duplicate", 0.0, 0, 4, 0, 4, 8, 8, 1.0),
                 (rows[44], rows[45], "duplicate", 0.0, 0, 4, 0, 4, 8, 8, 1.0),
                 (rows[5], rows[26], "partial", 1.0, 1, 4, 0, 3, 6, 6, 2.0)]  # drive d05 ~ d06
        store.replace_dedup(pairs, groups, incremental=False, clip_end=len(rows))
        scores = np.linspace(0.0, 1.0, N_CLIPS)[::-1].copy()  # c000 rarest
        store.replace_rarity(np.asarray(rows, np.int64), scores, scores * 100)
    yield store
    store.close()


def _ids(sel):
    return [c.clip_id for c in sel.chosen]


def test_duplicates_excluded_and_budget_met(region):
    sel = select_clips(region, N_CLIPS, mix={"diverse": 1.0})
    ids = set(_ids(sel))
    assert sel.excluded_duplicates == 4
    assert not ids & {"c001", "c002", "c010", "c045"}
    assert {"c000", "c031", "c044"} <= ids
    # c005 and c026 overlap (c005's 1-4 s is c026's 0-3 s): once one is in, the other is redundant
    assert len({"c005", "c026"} & ids) == 1
    assert len(ids) == len(sel.chosen) == N_CLIPS - 5


def test_rare_first_and_reasons(region):
    sel = select_clips(region, 10, mix=parse_mix("rare=0.5,diverse=0.3,random=0.2"), seed=1)
    rare = [c for c in sel.chosen if c.reason == "rare"]
    # c001/2 are duplicates of c000; c004, c005 and c006 are one recording unit (c044 copies
    # c045 across drives d04/d05, c005 overlaps c026 across d05/d06): its second and third
    # clips wait until every other unit has had its rarest clip
    assert [c.clip_id for c in rare] == ["c000", "c003", "c004", "c007", "c008"]
    assert rare[0].detail["rarity"] == 1.0
    div = [c for c in sel.chosen if c.reason == "diverse"]
    assert len(div) == 3 and all(c.detail["distance"] > 0 for c in div)
    assert sel.counts == {"rare": 5, "diverse": 3, "random": 2}
    rec = sel.chosen[0].record()
    assert {"clip_id", "region", "source", "span", "split", "reason"} <= set(rec)
    assert rec["span"] == [0.0, 4.0] and rec["source"] == "/src/c000"


def test_reproducible_with_seed(region):
    a = _ids(select_clips(region, 20, seed=3, val_fraction=0.3))
    assert a == _ids(select_clips(region, 20, seed=3, val_fraction=0.3))
    assert a != _ids(select_clips(region, 20, seed=4, val_fraction=0.3))


def test_force_exclude_and_quota(region):
    sel = select_clips(region, 12, mix={"diverse": 1.0}, force=["c007"], exclude=["c012"],
                       quotas=parse_quotas(["hard_brake=4"]))
    ids = _ids(sel)
    assert ids[0] == "c007" and sel.chosen[0].reason == "forced"
    assert "c012" not in ids
    quota = [c for c in sel.chosen if c.reason == "quota"]
    assert len(quota) == 4 and all(int(c.clip_id[1:]) % 6 == 0 for c in quota)
    assert all(c.detail["quota"] == "hard_brake" for c in quota)
    assert sel.quotas["hard_brake"]["added"] == 4
    with pytest.raises(InputError, match="no clip .* has trigger 'cut_in'"):
        select_clips(region, 5, quotas={"cut_in": 2})
    with pytest.raises(InputError, match="NAME=COUNT"):
        parse_quotas(["hard_brake"])
    with pytest.raises(InputError, match="not in region"):
        select_clips(region, 5, force=["nope"])


def test_previous_set_seeds_and_is_not_repeated(region, tmp_path):
    first = select_clips(region, 15, mix={"diverse": 1.0})
    path = write_manifest(first, region.path / "manifests" / "first.jsonl")
    prev_ids = [r["clip_id"] for r in read_manifest(path)] + ["gone-clip"]
    second = select_clips(region, 15, mix={"diverse": 1.0}, previous=prev_ids)
    assert not set(_ids(first)) & set(_ids(second))
    assert second.previous == 15 and second.previous_missing == 1
    # seeded: the first pick is the clip farthest from the previous set, not a random start
    vectors = region.embeddings(region.snapshot())
    prev_vecs = vectors[[int(c[1:]) for c in _ids(first)]]
    pick = int(second.chosen[0].clip_id[1:])
    far = np.sqrt(((vectors[pick] - prev_vecs) ** 2).sum(axis=1)).min()
    assert second.chosen[0].detail["distance"] == pytest.approx(far, rel=1e-4)


@pytest.mark.parametrize("seed", range(25))
def test_split_never_leaks_drives_or_groups(region, seed):
    sel = select_clips(region, N_CLIPS, seed=seed, val_fraction=0.35, force=["c001", "c010"])
    side: dict[str, set[str]] = {}
    for c in sel.chosen:
        side.setdefault(c.drive_id, set()).add(c.split)
    assert all(len(s) == 1 for s in side.values()), side
    by_id = {c.clip_id: c.split for c in sel.chosen}
    for group in (("c000", "c001", "c002"), ("c010", "c031")):
        assert len({by_id[c] for c in group if c in by_id}) == 1
    assert side["d05"] == side["d06"]  # linked by a partial pair
    splits = set(by_id.values())
    if seed == 0:
        assert splits == {"train", "val"}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_manifest_formats_round_trip(region, tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    sel = select_clips(region, 8, val_fraction=0.5, seed=2)
    recs = read_manifest(write_manifest(sel, region.path / "manifests" / f"m{suffix}"))
    assert [r["clip_id"] for r in recs] == _ids(sel)
    assert [r["split"] for r in recs] == [c.split for c in sel.chosen]
    assert all(r["region"] == "us-west" for r in recs)


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
    from engine.select import _allocate, coverage_picks

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
    import engine.select as sel
    from benchmarks.select_scale import clustered_embeddings
    from engine.evaluate import coverage

    vectors, _ = clustered_embeddings(30_000, 32, n_clusters=60, seed=2)
    allowed = np.ones(len(vectors), bool)
    allowed[::7] = False  # not selectable (e.g. validation clips), still to be covered
    seeds = np.arange(1, 300, 3)  # a previous training set
    got = {}
    for rounds in (0, 2):
        monkeypatch.setattr(sel, "GLOBAL_REFINE_ROUNDS", rounds)
        picks, _ = sel.coverage_picks(vectors, 400, seeds, allowed, np.random.default_rng(0))
        assert len(np.unique(picks)) == 400
        assert allowed[picks].all() and not np.isin(picks, seeds).any()
        got[rounds] = coverage(vectors, np.concatenate([seeds, picks]))
    assert got[2] < got[0]  # medoids minimise the mean distance that coverage measures


def test_small_pools_get_exact_greedy_kmedian():
    """A 400-clip pool with 100 picks: exact greedy k-median (the objective coverage measures)
    beats farthest point and random clearly, respects seeds and the allowed pool, and is
    deterministic; picks come most novel first."""
    from benchmarks.select_scale import clustered_embeddings
    from engine.evaluate import coverage
    from engine.select import coverage_picks, kmedian_picks

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


def test_diverse_share_covers_what_the_random_picks_leave(home):
    """Four tight clusters, budget 4, one random pick: the three diverse picks go to the three
    clusters the random pick left uncovered (they are seeded with it), never a second one into
    the random pick's cluster."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((4, 128)).astype(np.float32)
    clips = []
    for c in range(4):
        for j in range(10):
            clip = make_new_clip(rng, f"k{c}-{j}", drive_id=f"d{c}-{j}")
            v = centres[c] + 0.05 * rng.standard_normal(128).astype(np.float32)
            clip.embedding = (v / np.linalg.norm(v)).astype(np.float32)
            clips.append(clip)
    store = RegionStore.open(home.region("us-west"), create=True)
    with store.writer():
        store.append_clips(clips)
    for seed in range(5):
        sel = select_clips(store, 4, mix={"diverse": 0.75, "random": 0.25}, seed=seed)
        assert sel.counts == {"random": 1, "diverse": 3}
        assert sorted(c.clip_id.split("-")[0] for c in sel.chosen) == ["k0", "k1", "k2", "k3"], seed
    store.close()


@pytest.mark.parametrize("with_seeds", [False, True])
def test_swap_rounds_reach_a_swap_local_optimum(with_seeds):
    """The k-median swap step never worsens the summed distance to the nearest chosen clip, and
    stops where no single swap of a pick for a candidate (checked by brute force) lowers it;
    seeds stay fixed and count as covering."""
    from engine.select import _swap_rounds

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
