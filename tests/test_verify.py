"""``verify``: catalog <-> features <-> indexes agreement, and ``--repair``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.index import ensure_indexes
from engine.scenes.query import search_clip
from engine.store.region import RegionStore
from engine.store.verify import verify
from engine.surfaces.cli import app
from tests.conftest import make_new_clip


def _store(home, n=40, k=3, seed=0):
    rng = np.random.default_rng(seed)
    clips = [make_new_clip(rng, f"c{i:03d}", k=k) for i in range(n)]
    for c in clips:  # non-zero, so that every chunk is written (zarr skips all-fill chunks)
        c.thumbnail = rng.integers(1, 255, c.thumbnail.shape, dtype=np.uint8)
    store = RegionStore.open(home.region("us-west"), create=True)
    with store.writer():
        for i in range(0, n, 16):
            store.append_clips(clips[i : i + 16])
    ensure_indexes(store)
    return store, clips


def _corrupt(store, name, chunk):
    d = store.features_path / name / "c" / str(chunk)
    files = [p for p in d.rglob("*") if p.is_file()]
    assert files, f"no chunk file under {d}"
    for f in files:
        f.write_bytes(b"not a zstd frame")


def test_clean_store_is_ok(home):
    store, _ = _store(home)
    with store:
        rep = verify(store)
        assert rep.ok and rep.problems == [] and rep.clips == 40 and rep.keyframes == 120
        assert not any("index" in n for n in rep.notes)


def test_corrupt_chunk_is_named_with_its_clips_and_repaired(home):
    store, clips = _store(home, n=300, k=1)  # thumbnails: 256 rows per chunk -> chunk 1 = rows 256..299
    with store:
        before = [h.clip_id for h in search_clip(store, "c010", 5)]
        _corrupt(store, "thumbnails", 1)
        rep = verify(store)
        assert not rep.ok
        (p,) = rep.problems
        assert p.check == "unreadable" and "'thumbnails' rows 256:300 (chunk 1)" in p.message
        assert [rep.clip_ids[r] for r in p.rows] == [f"c{i:03d}" for i in range(256, 300)]
        rep = verify(store, repair=True)
        assert rep.problems == []
        assert [t["clip_id"] for t in rep.taken_out] == [f"c{i:03d}" for i in range(256, 300)]
        assert all(t["reingest"] for t in rep.taken_out) and not rep.ok  # sources must come back
        assert rep.reingest_sources == sorted(f"/src/c{i:03d}" for i in range(256, 300))
        assert store.stats()["damaged"] == 44 and store.stats()["clips"] == 256
        assert "verify --repair" in store.stats()["index_rebuild_reason"]
        # the sources come back under the same ids (id and digest were freed); all is clean again
        with store.writer():
            store.append_clips(clips[256:])
        ensure_indexes(store)
        rep = verify(store)
        assert rep.ok, rep.as_dict()
        assert [h.clip_id for h in search_clip(store, "c010", 5)] == before


def test_wrong_embedding_overlap_and_duplicate_digest_found(home):
    store, _ = _store(home)
    with store:
        with store.writer():
            store._write_rows("clip_embeddings", 5, np.full((1, 128), np.nan, np.float32))
        store.db.execute("UPDATE clips SET kf_start=kf_start-1 WHERE clip_id='c020'")
        store.db.execute("UPDATE clips SET digest='digest-c001' WHERE clip_id='c030'")
        rep = verify(store)
        by = {p.check: [rep.clip_ids[r] for r in p.rows] for p in rep.problems}
        assert by["embedding"] == ["c005"]
        assert by["overlap"] == ["c019", "c020"]
        assert by["digest"] == ["c030"]
        rep = verify(store, repair=True)
        assert rep.problems == []
        out = {t["clip_id"]: t["reingest"] for t in rep.taken_out}
        assert out == {"c005": True, "c019": True, "c020": True, "c030": False}


def test_index_that_disagrees_is_reported_and_rebuilt(home):
    from engine.index import _save
    from engine.index.embeddings import EmbeddingIndex

    store, _ = _store(home)
    with store:
        _, emb = ensure_indexes(store)
        q = store.embeddings(store.snapshot())[:4]
        want = emb.search(q, 5)[1]
        # an index at the catalog's version that lacks a clip (e.g. written by a buggy tool)
        vecs = store.embeddings(store.snapshot())
        ids = np.arange(len(vecs), dtype=np.int64)
        bad = EmbeddingIndex.build(np.ascontiguousarray(vecs[1:]), ids[1:], dict(emb.meta))
        _save(store, "embeddings", bad, False)
        rep = verify(store)
        (p,) = rep.problems
        assert p.check == "index" and "1 missing" in p.message
        rep = verify(store, repair=True)
        assert rep.ok, rep.as_dict()
        np.testing.assert_array_equal(ensure_indexes(store)[1].search(q, 5)[1], want)


@pytest.mark.parametrize("damage", ["delete", "garbage", "sidecar"])
def test_missing_or_corrupt_index_rebuilt_with_identical_results(home, damage):
    store, _ = _store(home)
    with store:
        kf, emb = ensure_indexes(store)
        snap = store.snapshot()
        q = store.embeddings(snap)[:5]
        hq = store.keyframes(snap)["hashes"][:7]
        want = emb.search(q, 6), kf.search(hq, 4)
        for name in ("keyframes", "embeddings"):
            faiss_path, meta_path = store.index_dir / f"{name}.faiss", store.index_dir / f"{name}.json"
            if damage == "delete":
                faiss_path.unlink()
            elif damage == "garbage":
                faiss_path.write_bytes(b"\x00garbage" * 10)
            else:
                meta_path.write_text("{not json", encoding="utf-8")
        rep = verify(store)
        assert rep.ok == (damage == "delete")  # missing = note; unreadable = problem (auto-fixed on use)
        kf2, emb2 = ensure_indexes(store)
        got = emb2.search(q, 6), kf2.search(hq, 4)
        np.testing.assert_array_equal(got[0][1], want[0][1])
        np.testing.assert_allclose(got[0][0], want[0][0], rtol=1e-6)
        np.testing.assert_array_equal(got[1][0], want[1][0])
        np.testing.assert_array_equal(got[1][1], want[1][1])
        assert store.stats()["index_rebuild_reason"] and store.stats()["index_rebuilt_at"]
        assert verify(store).ok


def test_torn_index_pair_is_not_trusted(home):
    """A save killed between its two renames leaves a new index file with the old sidecar."""
    store, _ = _store(home)
    with store:
        ensure_indexes(store)
        old_meta = (store.index_dir / "embeddings.json").read_text()
        with store.writer():
            store.append_clips([make_new_clip(np.random.default_rng(9), "late")])
        ensure_indexes(store)
        (store.index_dir / "embeddings.json").write_text(old_meta)  # new .faiss, old .json
        from engine.index import inspect_indexes

        assert "interrupted save" in inspect_indexes(store)["embeddings"]["state"]
        assert verify(store).problems == []
        _, emb = ensure_indexes(store)
        assert emb.ntotal == 41
        assert verify(store).ok


def test_cli_verify_exit_codes_and_json(home):
    store, _ = _store(home)
    runner = CliRunner()
    args = ["verify", "--region", "us-west", "--home", str(home.path)]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ok"] is True
    _corrupt(store, "clip_embeddings", 0)
    store.close()
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "clip_embeddings" in res.output and "--repair" in res.output
    res = runner.invoke(app, [*args, "--repair", "--json"])
    assert res.exit_code == 1  # clips were taken out: their sources must be re-ingested
    out = json.loads(res.stdout)
    assert out["problems"] == [] and len(out["taken_out"]) == 40
    assert out["reingest_sources"] == sorted(f"/src/c{i:03d}" for i in range(40))
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["clips"] == 0


def test_clean_store_has_no_orphan_note_and_growth_room_is_in_json(home):
    """Arrays grow ahead of the catalog: rows past the committed ends on a store whose last job
    finished are growth room, listed in the JSON, not an alarming note."""
    store, _ = _store(home, n=5)
    with store:
        store.start_job("ingest", "j1")
        store.finish_job("j1", "ok", {})
        rep = verify(store)
        assert rep.ok and rep.notes == [], rep.notes
        assert sum(rep.as_dict()["preallocated_rows"].values()) > 0
        store.start_job("ingest", "j2")  # killed: still 'running', no process holds the lock
        rep = verify(store)
        assert any("orphans" in n and "died" in n for n in rep.notes), rep.notes


def test_stats_utc_times_interrupted_job_and_pairs_as_dedup_shows(home):
    from engine.matching.dedup import load_dedup
    from engine.surfaces.stats import region_stats

    store, _ = _store(home, n=6)
    with store:
        with store.writer():
            rows = store.clip_table().rows
            store.replace_dedup([(int(rows[0]), int(rows[1]), "duplicate", 0.0, 0, 1.5, 0, 1.5, 3, 3, 1.0)],
                                [(int(rows[0]), 0, int(rows[0])), (int(rows[1]), 0, int(rows[0]))],
                                incremental=False, clip_end=len(rows))
        store.start_job("ingest", "killed")
        info = region_stats(store)
        assert info["pairs"] == len(load_dedup(store)[0]) == 1 and info["duplicates"] == 1
        job = info["last_job"]
        assert job["status"] == "interrupted" and job["finished"] is None
        assert job["started"].endswith(" UTC") and job["started"][:2] == "20"
    runner = CliRunner()
    res = runner.invoke(app, ["stats", "--region", "us-west", "--home", str(home.path)], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert "interrupted" in res.output and "UTC" in res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80
