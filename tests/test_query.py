"""Similarity query: filters, time parsing, matched spans, source queries, index choice by size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import engine.index.embeddings as emb_mod
from engine.errors import InputError
from engine.index import ensure_embedding_index
from engine.scenes.query import Filters, parse_time, search_clip, search_source, search_vector
from engine.store.region import RegionStore
from engine.surfaces.cli import app
from tests.conftest import make_new_clip


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def store(home):
    """12 clips: c00..c09 random; near = c00's embedding + a little noise with c00's keyframes
    shifted by 3 (so they share keyframes); far = a random clip."""
    rng = np.random.default_rng(0)
    s = RegionStore.open(home.region("us-west"), create=True)
    clips = []
    for i in range(10):
        clips.append(make_new_clip(rng, f"c{i:02d}", k=12, vehicle_id=f"v{i % 2}", start_time=1.7e9 + 3600 * i,
                                   triggers=[("hard_brake", 1.0, 2.0, -5.0)] if i in (3, 7) else ()))
    base = clips[0]
    near = make_new_clip(rng, "near", k=12, vehicle_id="v9", start_time=1.7e9)
    near.keyframe_hashes = np.concatenate([base.keyframe_hashes[3:], rng.integers(0, 256, (3, 32), dtype=np.uint8)])
    near.embedding = _unit(base.embedding + 0.05 * rng.standard_normal(128))
    clips.append(near)
    with s.writer():
        s.append_clips(clips)
    yield s
    s.close()


def test_search_clip_finds_near_copy_with_matched_span(store):
    hits = search_clip(store, "c00", k=3)
    assert hits[0].clip_id == "near"
    assert hits[0].score > 0.8
    # near's keyframe j == c00's keyframe j + 3, for j in 0..8 -> near's 0.0 .. 4.0 s
    assert hits[0].span == pytest.approx((0.0, 4.0))
    assert all(h.span is None for h in hits[1:])  # random clips share no keyframes
    assert all(h.clip_id != "c00" for h in hits)


def test_filters_trigger_vehicle_time(store):
    q = store.read_rows("clip_embeddings", 0, 1)[0]
    got = search_vector(store, q, k=10, filters=Filters(trigger="hard_brake"))
    assert sorted(h.clip_id for h in got) == ["c03", "c07"]
    got = search_vector(store, q, k=10, filters=Filters(vehicle="v1"))
    assert sorted(h.clip_id for h in got) == ["c01", "c03", "c05", "c07", "c09"]
    got = search_vector(store, q, k=10, filters=Filters(after=1.7e9 + 3600 * 8))
    assert sorted(h.clip_id for h in got) == ["c08", "c09"]
    got = search_vector(store, q, k=10, filters=Filters(before=1.7e9 + 3600))
    assert sorted(h.clip_id for h in got) == ["c00", "near"]


def test_parse_time():
    assert parse_time("1714521600") == 1714521600.0
    assert parse_time("2024-05-01") == 1714521600.0
    assert parse_time("2024-05-01T02:00:00+02:00") == 1714521600.0
    with pytest.raises(InputError, match="ISO date"):
        parse_time("yesterday")


def test_bad_query_vectors(store):
    with pytest.raises(InputError, match="64 dimensions"):
        search_vector(store, np.ones(64, np.float32))
    with pytest.raises(TypeError, match="float32"):
        search_vector(store, np.ones(128, np.float64))
    with pytest.raises(InputError, match="zero"):
        search_vector(store, np.zeros(128, np.float32))


def test_cli_query_json_with_time_filter(home, store, tmp_path):
    r = CliRunner().invoke(app, ["query", "--home", str(home.path), "--region", "us-west", "--clip", "c00",
                                 "-k", "5", "--after", "2023-11-14T22:13:20Z", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)
    assert hits[0]["clip_id"] == "near" and hits[0]["span"] == [0.0, 4.0] and hits[0]["region"] == "us-west"
    assert {"rank", "clip_id", "region", "score", "span"} <= set(hits[0])
    np.save(tmp_path / "q.npy", store.read_rows("clip_embeddings", 3, 4)[0])
    r = CliRunner().invoke(app, ["query", "--home", str(home.path), "--region", "us-west", "--vector",
                                 str(tmp_path / "q.npy"), "-k", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["clip_id"] == "c03"
    r = CliRunner().invoke(app, ["query", "--home", str(home.path), "--region", "us-west", "--clip", "c00",
                                 "--before", "soon"])
    assert r.exit_code == 2 and "ISO date" in r.output


def _write_zarr_clip(path, clip_id, frames, fps=10.0):
    import zarr

    g = zarr.open_group(path, mode="w")
    fr = g.create_array("frames", shape=frames.shape, dtype="uint8", chunks=(16, *frames.shape[1:]))
    fr[...] = frames
    ft = g.create_array("frame_times", shape=(len(frames),), dtype="float64")
    ft[...] = np.arange(len(frames)) / fps
    g.attrs.update({"clip_id": clip_id, "fps": fps})


def test_search_source_not_ingested_finds_copy_and_writes_nothing(home, tmp_path):
    from engine.ingest.pipeline import ingest

    rng = np.random.default_rng(3)
    # a smooth random texture panned sideways: distinct keyframes, stable under re-reading
    big = rng.integers(0, 256, (60, 200, 3)).astype(np.float32)
    big = (big + np.roll(big, 1, 0) + np.roll(big, 1, 1) + np.roll(big, 1, (0, 1))) / 4
    frames = np.stack([big[:, 3 * t:3 * t + 96] for t in range(30)]).astype(np.uint8)
    other = rng.integers(0, 256, (30, 60, 96, 3), dtype=np.uint8)
    _write_zarr_clip(tmp_path / "a.zarr", "clip-a", frames)
    _write_zarr_clip(tmp_path / "b.zarr", "clip-b", other)
    rep = ingest(home, "us-west", [tmp_path / "a.zarr", tmp_path / "b.zarr"])
    assert not rep.failed
    # the query: the last 2 s of clip-a, as its own clip (not ingested)
    _write_zarr_clip(tmp_path / "q.zarr", "query", frames[10:])
    with RegionStore.open(home.region("us-west")) as s:
        before = (s.snapshot(), s.stats()["clips"])
        hits = search_source(s, tmp_path / "q.zarr", k=2)
        assert (s.snapshot(), s.stats()["clips"]) == before  # nothing written
    assert hits[0].clip_id == "clip-a"
    assert hits[0].span is not None
    assert hits[0].span[0] == pytest.approx(1.0, abs=0.51) and hits[0].span[1] == pytest.approx(2.5, abs=0.51)
    assert hits[0].relation == "partial" and hits[1].relation == ""  # judged like dedup; clip-b unrelated
    # a whole copy of clip-a is its duplicate
    _write_zarr_clip(tmp_path / "whole.zarr", "whole", frames)
    with RegionStore.open(home.region("us-west")) as s:
        hits = search_source(s, tmp_path / "whole.zarr", k=2)
    assert hits[0].clip_id == "clip-a" and hits[0].relation == "duplicate"


# ----------------------------------------------------------------------- index choice by size
def _clustered(n, seed=0, dim=32):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(4, n // 100), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True))


def _clips_with_embeddings(n, k, seed):
    """n new clips ``c0000..`` of k keyframes whose embeddings are :func:`_clustered` (128-d)."""
    rng = np.random.default_rng(seed)
    clips = [make_new_clip(rng, f"c{i:04d}", k=k) for i in range(n)]
    for c, v in zip(clips, _clustered(n, dim=128), strict=True):
        c.embedding = v
    return clips


def test_ivf_above_exact_max_has_high_recall(monkeypatch):
    monkeypatch.setattr(emb_mod, "EXACT_MAX", 1000)
    x = _clustered(4000)
    ids = np.arange(4000, dtype=np.int64) * 3 + 5  # ids are clip rows, not positions
    idx = emb_mod.EmbeddingIndex.build(x, ids, {})
    assert idx.meta["kind"] == emb_mod.IVF_KIND and idx.meta["nlist"] == 256
    exact = emb_mod.EmbeddingIndex.build(x[:1000], ids[:1000], {})
    assert exact.meta["kind"] == "flat-ip"
    q = x[:200]
    _, got = idx.search(q, 10)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :10]
    recall = np.mean([len(set(g) & set(ids[t])) / 10 for g, t in zip(got, truth, strict=True)])
    assert recall >= 0.95
    assert emb_mod.EmbeddingIndex.fits(idx.meta, 4000) and emb_mod.EmbeddingIndex.fits(idx.meta, 16000)
    assert not emb_mod.EmbeddingIndex.fits(idx.meta, 16001)  # outgrown: rebuild
    assert not emb_mod.EmbeddingIndex.fits(idx.meta, 900)  # back to exact
    assert not emb_mod.EmbeddingIndex.fits(exact.meta, 1001)


def test_region_switches_to_ivf_and_loads_memory_mapped(home, monkeypatch):
    monkeypatch.setattr(emb_mod, "EXACT_MAX", 300)
    s = RegionStore.open(home.region("us-west"), create=True)
    clips = _clips_with_embeddings(700, k=2, seed=1)
    with s.writer():
        s.append_clips(clips[:200])
    assert ensure_embedding_index(s).meta["kind"] == "flat-ip"
    with s.writer():
        s.append_clips(clips[200:])
    idx = ensure_embedding_index(s)
    assert idx.meta["kind"] == emb_mod.IVF_KIND and idx.ntotal == 700
    again = ensure_embedding_index(s)  # current: read from disk, lists memory-mapped
    assert again.meta["kind"] == emb_mod.IVF_KIND and again.meta["nprobe"] == emb_mod.IVF_NPROBE
    hits = search_clip(s, "c0005", k=5)
    assert len(hits) == 5 and all(h.clip_id != "c0005" for h in hits)
    rows = s.clip_table().rows[:40]  # the batch search over a loaded, memory-mapped index
    vecs = np.ascontiguousarray(s.read_rows_at("clip_embeddings", rows), dtype=np.float32)
    np.testing.assert_array_equal(again.search_members(vecs, rows, 4)[1], idx.search_members(vecs, rows, 4)[1])
    assert (again.search_members(vecs, rows, 4)[1][:, 0] == rows).all()
    s.close()


def test_approximate_index_returns_exact_cosines_for_any_dim(monkeypatch):
    """The PQ codes only pick candidates: the scores returned are the exact cosines (re-rank), and
    odd dimensions (one dim per sub-quantizer) build too."""
    monkeypatch.setattr(emb_mod, "EXACT_MAX", 500)
    for dim in (32, 33):
        x = _clustered(2000, seed=dim, dim=dim)
        ids = np.arange(2000, dtype=np.int64) + 7
        idx = emb_mod.EmbeddingIndex.build(x, ids, {})
        assert idx.meta["kind"] == emb_mod.IVF_KIND and idx.meta["pq_m"] == (16 if dim == 32 else 33)
        q = x[:50]
        sims, got = idx.search(q, 10)
        assert (got >= 7).all()
        exact = np.einsum("qd,qkd->qk", q, x[got - 7])
        np.testing.assert_allclose(sims, exact, atol=1e-5)
        assert (got[:, 0] == ids[:50]).all()  # each query's own vector is its best match


def test_older_ivf_flat_index_is_rebuilt(home, monkeypatch):
    """An index saved by the previous code (kind ivf-flat) is current by catalog version, but is
    rebuilt as the present approximate kind on first use, the reason recorded."""
    monkeypatch.setattr(emb_mod, "EXACT_MAX", 300)
    s = RegionStore.open(home.region("us-west"), create=True)
    clips = _clips_with_embeddings(400, k=1, seed=2)
    with s.writer():
        s.append_clips(clips)
    ensure_embedding_index(s)
    sidecar = s.index_dir / "embeddings.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "kind": "ivf-flat", "nprobe": 32}))
    idx = ensure_embedding_index(s)
    assert idx.meta["kind"] == emb_mod.IVF_KIND and idx.ntotal == 400
    assert json.loads(sidecar.read_text())["kind"] == emb_mod.IVF_KIND
    assert "embeddings: built with other parameters" in s.meta("index_rebuild_reason", "")
    s.close()


def test_search_members_scans_the_lists_near_each_query_list(monkeypatch, home):
    """The batch search of clips that are in the index: exact cosines, the recall of a plain
    search, and plain search for exact indexes and for vectors not in the index (a loaded,
    memory-mapped index: test_region_switches_to_ivf_and_loads_memory_mapped)."""
    monkeypatch.setattr(emb_mod, "EXACT_MAX", 1000)
    x = _clustered(4000, seed=3)
    ids = np.arange(4000, dtype=np.int64) * 2 + 11
    idx = emb_mod.EmbeddingIndex.build(x, ids, {})
    assert idx.meta["kind"] == emb_mod.IVF_KIND
    q = x[100:400]
    sims, got = idx.search_members(q, ids[100:400], 10)
    assert sims.shape == got.shape == (300, 10) and (got >= 0).all()
    np.testing.assert_allclose(sims, np.einsum("qd,qkd->qk", q, x[(got - 11) // 2]), atol=1e-5)
    assert (got[:, 0] == ids[100:400]).all()  # each clip's own vector first
    truth = np.argsort(-(q @ x.T), axis=1)[:, :10]
    recall = np.mean([len(set(g) & set(ids[t])) / 10 for g, t in zip(got, truth, strict=True)])
    with idx.lighter_search():
        _, plain = idx.search(q, 10)
    plain_recall = np.mean([len(set(g) & set(ids[t])) / 10 for g, t in zip(plain, truth, strict=True)])
    assert recall >= 0.9 and recall >= plain_recall - 0.02
    # few codes a query: fewer lists probed, still each clip's own list
    narrow_sims, narrow = idx.search_members(q, ids[100:400], 10, scan_codes=16)
    assert (narrow[:, 0] == ids[100:400]).all()
    # a vector whose id is not in the index, and an exact index: the plain search
    outside_sims, outside = idx.search_members(q[:5], np.full(5, -3, np.int64), 10)
    with idx.lighter_search():
        want = idx.search(q[:5], 10)
    np.testing.assert_array_equal(outside, want[1])
    exact = emb_mod.EmbeddingIndex.build(x[:500], ids[:500], {})
    np.testing.assert_array_equal(exact.search_members(x[:20], ids[:20], 5)[1], exact.search(x[:20], 5)[1])
    # more neighbours wanted than vectors exist are padded as search pads them
    small_sims, small = exact.search_members(x[:3], ids[:3], 600)
    assert small.shape == (3, 600) and (small[:, 500:] == -1).all()
    # grown after an add: the caches follow
    more = _clustered(200, seed=9)
    idx.add(more, np.arange(200, dtype=np.int64) + 100_000)
    _, after = idx.search_members(more[:10], np.arange(10, dtype=np.int64) + 100_000, 3)
    assert (after[:, 0] == np.arange(10) + 100_000).all()
