"""One writer per region, readers never blocked: concurrent ingests, and queries during an ingest.

Ingest jobs run as subprocesses slowed by ``CLIPDEX_FAULT="decode:sleep=S"`` (a test-only pause at
each decoded clip, see engine.faults.fault_point), so that the overlap is certain.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from engine.index import drop_indexes, ensure_indexes
from engine.ingest.pipeline import IngestOptions, ingest
from engine.scenes.query import search_clip
from engine.scenes.rarity import compute_rarity
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore
from engine.store.verify import verify
from fixtures.fleet import FleetSpec, write_fleet

REGION = "us-west"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The tiny fleet's us-west store, whole and split in two halves (clips 0-14 / 15-29)."""
    out = tmp_path_factory.mktemp("conc-fleet")
    write_fleet(out, FleetSpec.tiny())
    whole = out / REGION / "clips.zarr"
    names = sorted(p.name for p in whole.iterdir() if p.is_dir())
    assert len(names) == 30
    halves = []
    for part, keep in (("a", names[:15]), ("b", names[15:])):
        dst = out / f"part-{part}.zarr"
        shutil.copytree(whole, dst)
        for n in names:
            if n not in keep:
                shutil.rmtree(dst / n)
        halves.append(dst)
    return {"whole": whole, "a": halves[0], "b": halves[1], "names": names}


def _home(path) -> Home:
    h = Home.open(path, create=True)
    h.add_region(REGION, jurisdiction="US")
    return h


def _start_ingest(home: Home, source, *extra: str, sleep: float | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "CLIPDEX_FAULT"}
    if sleep:
        env["CLIPDEX_FAULT"] = f"decode:sleep={sleep}"
    return subprocess.Popen(
        [sys.executable, "-m", "engine.surfaces.cli", "ingest", str(source), "--region", REGION, "--home", str(home.path),
         "--workers", "1", "--json", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_holder(home: Home, proc: subprocess.Popen, timeout: float = 120.0) -> str:
    lock = home.region(REGION).path / "writer.lock"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        if lock.exists() and lock.read_text().startswith(f"pid {proc.pid} "):
            return lock.read_text()
        time.sleep(0.05)
    raise AssertionError("the first ingest never took the writer lock")


def test_second_ingest_refused_naming_holder_or_waits(fleet, tmp_path):
    home = _home(tmp_path / "home")
    first = _start_ingest(home, fleet["whole"], "--batch-size", "4", sleep=0.5)
    try:
        _wait_for_holder(home, first)
        refused = _start_ingest(home, fleet["whole"])
        short_wait = _start_ingest(home, fleet["whole"], "--wait", "1")
        waiter = _start_ingest(home, fleet["whole"], "--wait", "300")
        out, err = refused.communicate(timeout=120)
        assert refused.returncode == 2, (out, err)
        assert f"being written by another job (pid {first.pid} " in err and "clipdex ingest" in err
        assert "--wait" in err
        out, err = short_wait.communicate(timeout=120)
        assert short_wait.returncode == 2 and "waited 1 s" in err, err
        assert first.poll() is None, "the first job should still be running (slowed down)"
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
        assert json.loads(out)["ingested"] == 30
        out, err = waiter.communicate(timeout=300)
        assert waiter.returncode == 0, err
        rep = json.loads(out)
        assert rep["ingested"] == 0 and rep["skipped"] == 30
        assert all("already ingested" in s["reason"] for s in rep["skips"])
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()
                p.wait()
    with RegionStore.open(home.region(REGION)) as store:
        assert verify(store).ok
        assert store.db.execute("SELECT COUNT(*), COUNT(DISTINCT digest) FROM clips").fetchone() == (30, 30)


def test_queries_during_an_ingest_all_succeed_on_consistent_snapshots(fleet, tmp_path):
    home = _home(tmp_path / "home")
    assert ingest(home, REGION, [fleet["a"]], IngestOptions(batch_size=4, workers=1)).ok
    region = home.region(REGION)
    writer = _start_ingest(home, fleet["b"], "--batch-size", "2", sleep=0.3)
    seen: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def reader(kind: str) -> None:
        while writer.poll() is None:
            try:
                with RegionStore.open(region) as store:  # like a CLI command: one store per call
                    if kind == "query":
                        before = store.snapshot().clip_end
                        hits = search_clip(store, fleet["names"][3], 5)
                        committed = {c for (c,) in store.db.execute("SELECT clip_id FROM clips WHERE status='active'")}
                        assert len(hits) == 5 and {h.clip_id for h in hits} <= committed
                        seen.append(("query", before))
                    elif kind == "rare":
                        res = compute_rarity(store)
                        assert len(res.clip_ids) == len(set(res.clip_ids)) >= 15
                        seen.append(("rare", len(res.clip_ids)))
                    else:
                        s = store.stats()
                        rep = verify(store)
                        assert rep.problems == [], rep.as_dict()
                        seen.append(("stats+verify", s["clips"]))
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)
                return

    threads = [threading.Thread(target=reader, args=(k,)) for k in ("query", "query", "rare", "stats")]
    try:
        for t in threads:
            t.start()
        out, err = writer.communicate(timeout=600)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        for t in threads:
            t.join(60)
    assert not errors, errors[0]
    assert writer.returncode == 0, err
    assert json.loads(out)["ingested"] == 15
    kinds = {k for k, _ in seen}
    assert kinds == {"query", "rare", "stats+verify"}, seen
    # readers saw the ingest progress: clip counts between the two halves, more than one snapshot
    counts = [n for k, n in seen if k == "stats+verify"]
    assert min(counts) >= 15 and max(counts) <= 30
    assert len({n for k, n in seen if k == "query"}) >= 2, seen
    with RegionStore.open(region) as store:
        assert verify(store).ok
        # the index that concurrent readers and the writer refreshed equals one built from scratch
        _, emb = ensure_indexes(store)
        q = store.embeddings(store.snapshot())
        want = emb.search(q, 6)
        drop_indexes(store)
        _, fresh = ensure_indexes(store)
        got = fresh.search(q, 6)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6)


def test_concurrent_index_refreshes_are_safe(tmp_path):
    """Many threads refresh the same stale indexes at once; each reads a consistent pair."""
    from tests.conftest import make_new_clip

    home = _home(tmp_path / "home")
    region = home.region(REGION)
    rng = np.random.default_rng(3)
    with RegionStore.open(region, create=True) as store:
        with store.writer():
            store.append_clips([make_new_clip(rng, f"c{i}") for i in range(50)])
        ensure_indexes(store)
        with store.writer():
            store.append_clips([make_new_clip(rng, f"d{i}") for i in range(20)])
    results, errors = [], []

    def refresh() -> None:
        try:
            for _ in range(5):
                with RegionStore.open(region) as s:
                    kf, emb = ensure_indexes(s)
                    results.append((kf.index.ntotal, emb.ntotal))
                    drop_indexes(s) if len(results) % 7 == 0 else None
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    assert set(results) == {(560, 70)}
    with RegionStore.open(region) as store:
        assert verify(store).ok
        assert not list(store.index_dir.glob("*.tmp-*"))
