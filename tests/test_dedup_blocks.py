"""Hash candidates in band ranges and hash partitions: any part size gives the unpartitioned
pairs, locally and on Dask."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.dedup_scale import make_fleet, write_region
from engine.index import QUALITY_FLOOR
from engine.matching import blocks
from engine.matching.dedup import (
    DedupParams,
    candidate_pairs,
    keyframe_clips,
    keyframe_pairs,
    load_dedup,
    run_dedup,
)
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore

N_CLIPS = 1500


@pytest.fixture(scope="module")
def region_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("blocks")
    fleet = make_fleet(N_CLIPS + 100, seed=3)
    write_region(home, fleet, 0, N_CLIPS)
    write_region(home, fleet, N_CLIPS, N_CLIPS + 100)  # a later ingest: the incremental queries
    return home


def _open(home):
    return RegionStore.open(Home.open(home).region("bench"))


def _unblocked(table, hashes, valid, query_clips, params):
    """The candidates by one unblocked LSH pass (keyframe_pairs) and a clip-pair count."""
    kf_clip = keyframe_clips(table, len(hashes))
    valid = valid & (kf_clip >= 0)
    is_query = np.zeros(len(hashes), bool)
    on = kf_clip >= 0
    is_query[on] = np.isin(kf_clip[on], query_clips)
    i, j = keyframe_pairs(None, hashes, valid, is_query, kf_clip, params, "lsh")
    n_rows = int(table.rows.max()) + 1
    keys, n = np.unique(np.minimum(kf_clip[i], kf_clip[j]) * n_rows + np.maximum(kf_clip[i], kf_clip[j]),
                        return_counts=True)
    return blocks.keys_to_pairs(keys[n >= params.min_candidate_matches], n_rows), len(i)


@pytest.mark.parametrize("incremental", [False, True])
def test_any_block_size_gives_the_unblocked_candidates(region_home, incremental):
    with _open(region_home) as store:
        table = store.clip_table()
        hashes = store.read_rows("keyframe_hashes", 0, table.snapshot.kf_end)
        valid = store.read_rows("keyframe_quality", 0, table.snapshot.kf_end) >= QUALITY_FLOOR
        query = table.rows[table.rows >= N_CLIPS] if incremental else table.rows
        params = DedupParams(threads=2)
        want, want_kf = _unblocked(table, hashes, valid, query, params)
        assert len(want) > 50  # the fleet has copies to find
        n_query_kf = int(valid[np.isin(keyframe_clips(table, len(hashes)), query)].sum())
        for block in (1 << 22, 5000, 700, 1):  # one part .. a part per keyframe's worth of hashes
            info = {}
            got = candidate_pairs(store, table, hashes, valid, query, DedupParams(threads=2, block_keyframes=block),
                                  method="lsh", stats=info)
            np.testing.assert_array_equal(got, want)
            assert info["keyframe_pairs"] == want_kf
            assert info["blocks"] == min(blocks.MAX_PARTITIONS, max(1, -(-n_query_kf // block)))


def test_plan_blocks_sizes_the_partitions_to_the_budget():
    rows = np.arange(6, dtype=np.int64)
    count = np.array([3, 4, 2, 5, 1, 3], np.int64)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    valid = np.ones(int(count.sum()), bool)
    valid[start[3]] = False  # one keyframe of clip 3 is no quality keyframe
    layout = blocks.plan_blocks(rows, start, count, np.array([1, 2, 3, 4, 5]), valid, 6)
    # clip 0 is no query; 4 + 2 + 4 + 1 + 3 = 14 valid query keyframes: 3 parts of <= 6
    np.testing.assert_array_equal(layout.query, [False, True, True, True, True, True])
    assert layout.partitions == 3
    np.testing.assert_array_equal(np.flatnonzero(~layout.query_flags()), np.arange(3))
    assert blocks.plan_blocks(rows, start, count, rows, valid, 100).partitions == 1
    assert blocks.plan_blocks(rows, start, count, rows[:0], valid, 1).partitions == 1
    with pytest.raises(ValueError, match="block_keyframes"):
        blocks.plan_blocks(rows, start, count, rows, valid, 0)


def test_band_ranges_cover_every_band_once():
    for n_bands, n_parts in ((48, 1), (48, 5), (48, 48), (3, 8)):
        ranges = blocks.band_ranges(n_bands, n_parts)
        assert len(ranges) == min(n_parts, n_bands)
        assert [b for r in ranges for b in r] == list(range(n_bands))


def test_merge_counts_sums_over_band_ranges():
    a = (np.array([5, 9, 12]), np.array([1, 1, 3]))
    b = (np.array([9, 20]), np.array([1, 1]))
    np.testing.assert_array_equal(blocks.merge_counts([a, b], 2), [9, 12])
    np.testing.assert_array_equal(blocks.merge_counts([a, b], 1), [5, 9, 12, 20])
    assert len(blocks.merge_counts([], 2)) == 0


def _run(home, tmp_path, name, params, full=True, stats=None):
    """run_dedup on a copy of the region; its stored pairs and groups (its candidate stats
    into ``stats``)."""
    import shutil

    dst = tmp_path / name
    shutil.copytree(home, dst)
    with RegionStore.open(Home.open(dst).region("bench")) as store:
        res = run_dedup(store, params, full=full)
        pairs, groups = load_dedup(store)
    if stats is not None:
        stats.update(res.candidate_stats)
    return sorted(p.as_row() for p in pairs), groups


#: a region this small would be searched exactly; these runs take the blocked LSH path
LSH = {"exact_max_keyframes": 0}


def test_run_dedup_is_the_same_with_tiny_blocks(region_home, tmp_path):
    stats: dict = {}
    want = _run(region_home, tmp_path, "default", DedupParams(threads=2, **LSH))
    got = _run(region_home, tmp_path, "tiny", DedupParams(threads=2, block_keyframes=300, **LSH),
               stats=stats)
    assert stats["method"] == "lsh" and stats["blocks"] > 10
    assert len(want[0]) > 50
    assert got == want


def test_run_dedup_on_dask_workers_is_the_same(region_home, tmp_path):
    pytest.importorskip("distributed", reason="the Dask executor needs clipdex[dask]")
    want = _run(region_home, tmp_path, "local", DedupParams(threads=2, block_keyframes=4000, **LSH))
    stats: dict = {}
    got = _run(region_home, tmp_path, "dask", DedupParams(block_keyframes=4000, workers=2, **LSH),
               stats=stats)
    assert stats["method"] == "lsh" and stats["blocks"] > 1 and stats["tasks"] > 1
    assert len(want[0]) > 50
    assert got == want
    peaks = stats["worker_peak_rss_mb"]  # each worker's peak memory, for the scale benchmark
    assert len(peaks) == 2 and all(p > 10 for p in peaks)


# ----------------------------------------------------------------------------- reframed screen
def _views_region(home, n_clips=90, k=8, seed=5):
    """Clips with random whole-view pHashes and crop views; some clips' whole views are another
    clip's crop views (a reframed copy), some clips have no views."""
    from engine.store.region import N_CROP_VIEWS, THUMB_SHAPE, NewClip

    rng = np.random.default_rng(seed)
    home_obj = Home.open(home, create=True)
    home_obj.add_region("bench", jurisdiction="XX")
    phash = rng.integers(0, 256, (n_clips, k, 8), dtype=np.uint8)
    views = rng.integers(0, 256, (n_clips, k, N_CROP_VIEWS, 8), dtype=np.uint8)
    views[rng.random(n_clips) < 0.2] = 0  # views never computed
    for a in range(0, n_clips - 1, 3):  # b = a + 1 shows view 17 of a, a few bits off
        flips = np.packbits(rng.random((k, 64)) < 0.04, axis=1)
        phash[a + 1] = views[a, :, 17] ^ flips
    quality = rng.integers(0, 96, (n_clips, k)).astype(np.uint8)
    with RegionStore.open(home_obj.region("bench"), create=True) as store, store.writer("test"):
        emb = rng.standard_normal((n_clips, store.embedding_dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        store.append_clips([NewClip(
            clip_id=f"c{c}", digest=f"d{c}", source=f"/s/c{c}", duration_s=k / 2.0,
            keyframe_hashes=rng.integers(0, 256, (k, 32), dtype=np.uint8), keyframe_phash=phash[c],
            keyframe_quality=quality[c], keyframe_times=(np.arange(k) / 2.0).astype(np.float32),
            embedding=emb[c], thumbnail=np.zeros(THUMB_SHAPE, np.uint8), view_phash=views[c])
            for c in range(n_clips)], "test")


def _all_pairs(table) -> np.ndarray:
    """Every pair of the table's clips, ``int64[p, 2]`` rows (a < b)."""
    a, b = np.triu_indices(len(table.rows), 1)
    return np.stack([table.rows[a], table.rows[b]], axis=1)


def _screen_reference(store, table, pairs, params, probes=6, sample=24):
    """The view screen pair by pair, straight from its definition."""
    kf_end = table.snapshot.kf_end
    ok = store.read_rows("keyframe_quality", 0, kf_end) >= QUALITY_FLOOR
    whole = store.read_rows("keyframe_phash", 0, kf_end).view(np.uint64)[:, 0]
    views = store.read_rows("keyframe_view_phash", 0, kf_end).view(np.uint64)[..., 0]

    def spread(i, k):
        s0 = int(table.kf_start[i])
        rows = s0 + np.flatnonzero(ok[s0:s0 + int(table.kf_count[i])])
        if not len(rows):
            return rows
        return rows[np.unique(np.linspace(0, len(rows) - 1, min(len(rows), k)).round().astype(np.int64))]

    out = []
    for a, b in pairs.tolist():
        ia, ib = np.searchsorted(table.rows, [a, b])
        found = False
        for x, y in ((ia, ib), (ib, ia)):
            pr = spread(x, probes)
            if not len(pr) or not views[pr[0]].any():
                continue
            base = whole[spread(y, sample)]
            hits = sum(bool(((np.bitwise_count(views[r][:, None] ^ base[None, :]) <= params.reframed_radius)
                             & (views[r][:, None] != 0)).any()) for r in pr)
            found |= hits >= min(2, max(len(pr), 1))
        out.append(found)
    return np.array(out, bool)


def test_view_screen_streams_and_matches_its_definition(tmp_path, monkeypatch):
    import engine.matching.dedup as dedup

    _views_region(tmp_path)
    with _open(tmp_path) as store:
        table = store.clip_table()
        pairs = _all_pairs(table)
        params = DedupParams()
        want = _screen_reference(store, table, pairs, params)
        assert 20 <= want.sum() < len(pairs) // 4  # the planted views pass, most pairs do not
        got = dedup._screen_views(store, table, pairs, params)
        np.testing.assert_array_equal(got, want)
        monkeypatch.setattr(dedup, "SCREEN_CLIP_CHUNK", 7)  # many chunks of viewing clips
        monkeypatch.setattr(dedup, "SCREEN_KEY_SLICE", 50)  # and of decoded pair keys
        np.testing.assert_array_equal(dedup._screen_views(store, table, pairs[::-1], params, chunk=13),
                                      want[::-1])


def test_reframed_candidates_in_blocks_are_screened_like_all_at_once(tmp_path, monkeypatch):
    import engine.matching.dedup as dedup

    _views_region(tmp_path)
    with _open(tmp_path) as store:
        table = store.clip_table()
        params = DedupParams(reframed_exhaustive_max_clips=0, reframed_min_cosine=-1.0)
        rows = table.rows
        known = {(int(rows[0]), int(rows[1]))}
        cands = dedup.reframed_candidates(store, table, rows, params)
        cands = cands[~np.isin(cands[:, 0] * (rows.max() + 1) + cands[:, 1], [rows[0] * (rows.max() + 1) + rows[1]])]
        want = cands[dedup._screen_views(store, table, cands, params)]
        assert len(want) >= 10
        monkeypatch.setattr(dedup, "REFRAMED_QUERY_BLOCK", 7)
        got = dedup.screened_reframed_candidates(store, table, rows, known, params)
        np.testing.assert_array_equal(got, want)


def test_reframed_pairs_in_blocks_are_the_pairs_all_at_once(tmp_path, monkeypatch):
    import engine.matching.dedup as dedup

    _views_region(tmp_path)
    with _open(tmp_path) as store:
        table = store.clip_table()
        pairs = _all_pairs(table)
        params = DedupParams()
        want = dedup.reframed_pairs(store, table, pairs, set(), params)
        assert len(want) >= 10  # the planted views are related
        monkeypatch.setattr(dedup, "REFRAMED_PAIR_BLOCK", 5)  # many blocks, some pairs alone
        assert dedup.reframed_pairs(store, table, pairs, set(), params) == want


def test_cli_dedup_workers_and_scheduler_are_exclusive(region_home):
    from typer.testing import CliRunner

    from engine.surfaces.cli import app

    res = CliRunner().invoke(app, ["dedup", "-r", "bench", "--home", str(region_home), "--workers", "2",
                                   "--scheduler", "tcp://127.0.0.1:1"])
    assert res.exit_code != 0 and "not both" in res.output
    res = CliRunner().invoke(app, ["dedup", "-r", "bench", "--home", str(region_home), "--block-keyframes", "0"])
    assert res.exit_code != 0 and "--block-keyframes" in res.output
