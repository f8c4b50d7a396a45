from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from engine.errors import LockedError, StoreError
from engine.index import ensure_indexes
from engine.store.region import RegionStore
from tests.conftest import make_new_clip


def test_append_and_read_back(home):
    rng = np.random.default_rng(0)
    clips = [make_new_clip(rng, f"c{i}", k=3 + i) for i in range(5)]
    with RegionStore.open(home.region("us-west"), create=True) as store, store.writer():
        rows = store.append_clips(clips, "job")
        assert rows == [0, 1, 2, 3, 4]
        snap = store.snapshot()
        assert snap.clip_end == 5 and snap.kf_end == sum(3 + i for i in range(5)) and snap.version == 1
        table = store.clip_table()
        assert table.clip_ids == [c.clip_id for c in clips]
        kf = store.keyframes(snap)
        np.testing.assert_array_equal(kf["hashes"], np.concatenate([c.keyframe_hashes for c in clips]))
        np.testing.assert_array_equal(store.embeddings(snap), np.stack([c.embedding for c in clips]))
        assert store.known_digests(["digest-c1", "nope"]) == {"digest-c1": ("c1", "active")}


def test_clip_table_read_in_batches_equals_one_read(home, monkeypatch):
    import engine.store.region as region_mod
    from engine.store.model import ClipTable

    rng = np.random.default_rng(1)
    clips = [make_new_clip(rng, f"c{i}", k=2 + i % 3) for i in range(11)]
    for i, c in enumerate(clips):
        c.drive_id = f"drive{i % 3}"
        c.start_time = None if i % 4 == 0 else 1.7e9 + 10.0 * i
    with RegionStore.open(home.region("us-west"), create=True) as store, store.writer():
        store.append_clips(clips, "job")
        whole = store.clip_table()
        monkeypatch.setattr(region_mod, "CLIP_TABLE_BATCH", 3)  # four batches, the last short
        parts = store.clip_table()
    for name in ClipTable.__dataclass_fields__:
        a, b = getattr(whole, name), getattr(parts, name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b
    assert np.isnan(parts.start_time[0]) and parts.start_time[1] == pytest.approx(1.7e9 + 10.0)
    assert parts.drive_ids[0] is parts.drive_ids[3]  # a repeated id is one string object
    empty = ClipTable.from_batches(iter([]), whole.snapshot)
    assert len(empty) == 0 and empty.rows.dtype == np.int64 and empty.clip_ids == []


def test_orphan_rows_are_ignored_and_reused(home):
    rng = np.random.default_rng(1)
    region = home.region("us-west")
    with RegionStore.open(region, create=True) as store, store.writer():
        store.append_clips([make_new_clip(rng, "a", k=4)])
        # a job that wrote features and died before its commit
        store._write_rows("keyframe_hashes", 4, np.full((6, 32), 255, np.uint8))
        store._write_rows("clip_embeddings", 1, np.ones((1, 128), np.float32))
    with RegionStore.open(region) as store, store.writer():
        snap = store.snapshot()
        assert snap.kf_end == 4 and snap.clip_end == 1  # orphans invisible
        b = make_new_clip(rng, "b", k=3)
        store.append_clips([b])
        np.testing.assert_array_equal(store.read_rows("keyframe_hashes", 4, 7), b.keyframe_hashes)
        np.testing.assert_array_equal(store.read_rows("clip_embeddings", 1, 2)[0], b.embedding)


def test_second_writer_is_refused_with_holder(home):
    region = home.region("us-west")
    with RegionStore.open(region, create=True) as a, a.writer("first job"):
        with RegionStore.open(region) as b, pytest.raises(LockedError, match="first job"):
            with b.writer("second"):
                pass
    with RegionStore.open(region) as b, b.writer("after release"):
        pass


def test_lock_of_a_killed_process_is_released(home):
    region = home.region("us-west")
    RegionStore.open(region, create=True).close()
    code = (
        "import sys, time\n"
        "from engine.sovereignty.regions import Home\nfrom engine.store.region import RegionStore\n"
        f"s = RegionStore.open(Home.open({str(home.path)!r}).region('us-west'))\n"
        "s._acquire_lock('holder')\nprint('locked', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with RegionStore.open(region) as s, pytest.raises(LockedError, match="holder"):
            s._acquire_lock("me")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.05)
    with RegionStore.open(region) as s, s.writer("me"):
        pass


def test_newer_schema_refused(home):
    region = home.region("us-west")
    with RegionStore.open(region, create=True) as s:
        s.set_meta(schema_version=99)
    with pytest.raises(StoreError, match="upgrade clipdex"):
        RegionStore.open(region)


def test_missing_store_names_fix(home):
    with pytest.raises(StoreError, match="clipdex ingest"):
        RegionStore.open(home.region("cn-east"))


def test_index_incremental_and_rebuilt_after_corruption(home):
    rng = np.random.default_rng(2)
    region = home.region("us-west")
    with RegionStore.open(region, create=True) as store:
        with store.writer():
            store.append_clips([make_new_clip(rng, f"c{i}") for i in range(20)])
        kf, emb = ensure_indexes(store)
        assert kf.index.ntotal == 160 and emb.ntotal == 20
        with store.writer():
            store.append_clips([make_new_clip(rng, f"d{i}") for i in range(5)])
        kf, emb = ensure_indexes(store)
        assert kf.index.ntotal == 200 and emb.ntotal == 25
        q = store.embeddings(store.snapshot())[:3]
        before = emb.search(q, 5)
        (store.index_dir / "embeddings.faiss").write_bytes(b"garbage")
        _, emb2 = ensure_indexes(store)
        after = emb2.search(q, 5)
        np.testing.assert_array_equal(before[1], after[1])
        assert "embeddings" in store.stats()["index_rebuild_reason"]
