"""Crash safety: SIGKILL an ingest at many points, rerun, and compare with an uninterrupted run.

``CLIPDEX_FAULT="stage:n"`` (engine.faults.fault_point) kills the ingest subprocess the n-th time it
reaches ``stage``: ``decode`` (each decoded clip), ``feature_write`` (before each feature-array
write of a batch), ``commit`` (inside the catalog transaction, before the inserts and before
COMMIT), ``committed`` (just after a commit) and ``index_save`` (after writing an index temp file
and between the index and sidecar renames). Each chain kills the job several times in a row,
each rerun starting from what the previous one committed, then runs it to the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from engine.ingest.pipeline import IngestOptions, ingest
from engine.matching.dedup import run_dedup
from engine.scenes.query import search_clip
from engine.scenes.rarity import compute_rarity
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore
from engine.store.verify import verify
from fixtures.fleet import FleetSpec, write_fleet

REGION = "us-west"
BATCH = 4  # 30 clips -> 8 commits per full run

DEFAULT_CHAIN = ["decode:5", "feature_write:9", "commit:2", "committed:2", "index_save:3"]
SLOW_CHAINS = [
    ["decode:1", "decode:12", "feature_write:1", "commit:1", "index_save:1"],
    ["feature_write:4", "committed:1", "commit:2", "feature_write:30", "index_save:2"],
    ["commit:1", "decode:9", "feature_write:6", "committed:3", "index_save:4"],
    ["feature_write:13", "commit:4", "decode:29", "committed:1", "index_save:2"],
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    out = tmp_path_factory.mktemp("crash-fleet")
    write_fleet(out, FleetSpec.tiny())
    return out / REGION / "clips.zarr"


def _home(path) -> Home:
    h = Home.open(path, create=True)
    h.add_region(REGION, jurisdiction="US")
    return h


def _results(home: Home) -> dict:
    """What a user sees: the catalog, dedup pairs/groups, top-5 similar clips, rarity order."""
    with RegionStore.open(home.region(REGION)) as store:
        table = store.clip_table()
        digests = dict(store.db.execute("SELECT clip_id, digest FROM clips WHERE status='active'").fetchall())
        ids = dict(zip(table.rows.tolist(), table.clip_ids, strict=True))
        res = run_dedup(store, full=True)
        pairs = sorted((ids[p.a], ids[p.b], p.relation, round(p.offset_s, 3)) for p in res.pairs)
        groups = sorted(sorted(ids[m] for m in members) for members in res.groups.values())
        query = {c: [(h.clip_id, round(h.score, 5)) for h in search_clip(store, c, 5)] for c in table.clip_ids}
        rare = compute_rarity(store).clip_ids
    return {"digests": digests, "pairs": pairs, "groups": groups, "query": query, "rare": rare}


@pytest.fixture(scope="module")
def reference(fleet, tmp_path_factory):
    home = _home(tmp_path_factory.mktemp("crash-ref"))
    rep = ingest(home, REGION, [fleet], IngestOptions(batch_size=BATCH, workers=1))
    assert rep.ok and len(rep.ingested) == 30
    return _results(home)


def _run_ingest(home: Home, fleet, fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CLIPDEX_FAULT"}
    if fault:
        env["CLIPDEX_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "engine.surfaces.cli", "ingest", str(fleet), "--region", REGION, "--home", str(home.path),
         "--batch-size", str(BATCH), "--workers", "1", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )


def _crash_chain(home: Home, fleet, chain: list[str], reference: dict) -> None:
    for fault in chain:
        proc = _run_ingest(home, fleet, fault)
        assert proc.returncode == -signal.SIGKILL, (fault, proc.returncode, proc.stderr[-2000:])
        # after any crash the store is consistent: only harmless notes (orphans, stale index)
        with RegionStore.open(home.region(REGION)) as store:
            rep = verify(store)
            assert rep.problems == [], (fault, rep.as_dict())
            # every committed clip is one of the sources, and none is there twice
            ids = [c for (c,) in store.db.execute("SELECT clip_id FROM clips")]
            assert len(ids) == len(set(ids)) and set(ids) <= set(reference["digests"])
    proc = _run_ingest(home, fleet, None)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with RegionStore.open(home.region(REGION)) as store:
        rep = verify(store)
        assert rep.ok and not any("index" in n for n in rep.notes), rep.as_dict()
        n_rows = store.db.execute("SELECT COUNT(*), COUNT(DISTINCT clip_id), COUNT(DISTINCT digest) FROM clips").fetchone()
        assert n_rows == (30, 30, 30)
        assert store.db.execute("SELECT COUNT(*) FROM jobs WHERE status='running'").fetchone()[0] == 0
    got = _results(home)
    assert got["digests"] == reference["digests"]
    assert got["pairs"] == reference["pairs"]
    assert got["groups"] == reference["groups"]
    assert got["query"].keys() == reference["query"].keys()
    for c, hits in reference["query"].items():
        assert [h for h, _ in got["query"][c]] == [h for h, _ in hits], c
        np.testing.assert_allclose([s for _, s in got["query"][c]], [s for _, s in hits], atol=1e-5)
    assert got["rare"] == reference["rare"]


def test_killed_at_each_stage_then_rerun_equals_uninterrupted(fleet, reference, tmp_path):
    _crash_chain(_home(tmp_path / "home"), fleet, DEFAULT_CHAIN, reference)


@pytest.mark.slow
@pytest.mark.parametrize("chain", SLOW_CHAINS, ids=[f"chain{i}" for i in range(len(SLOW_CHAINS))])
def test_killed_at_twenty_points_then_rerun_equals_uninterrupted(fleet, reference, tmp_path, chain):
    _crash_chain(_home(tmp_path / "home"), fleet, chain, reference)
