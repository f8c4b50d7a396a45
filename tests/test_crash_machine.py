"""Errors of the machine: disk full, read-only store, corrupt features, newer catalog; and
resumable, idempotent ingest through the CLI. Each: a clear error, no damage, a way back."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from engine.errors import StoreError
from engine.ingest.pipeline import IngestOptions, ingest
from engine.scenes.query import search_clip
from engine.sovereignty.regions import Home
from engine.store.region import _ARRAYS, RegionStore
from engine.store.verify import verify
from engine.surfaces.cli import app
from fixtures.fleet import FleetSpec, write_fleet

REGION = "us-west"
runner = CliRunner()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    out = tmp_path_factory.mktemp("machine-fleet")
    write_fleet(out, FleetSpec.tiny())
    whole = out / REGION / "clips.zarr"
    names = sorted(p.name for p in whole.iterdir() if p.is_dir())
    half = out / "half.zarr"
    shutil.copytree(whole, half)
    for n in names[15:]:
        shutil.rmtree(half / n)
    return {"whole": whole, "half": half, "names": names}


@pytest.fixture
def home(tmp_path) -> Home:
    h = Home.open(tmp_path / "home", create=True)
    h.add_region(REGION, jurisdiction="US")
    return h


def _counts(home: Home) -> tuple[int, str]:
    with RegionStore.open(home.region(REGION)) as store:
        n = store.db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
        job = store.db.execute("SELECT status FROM jobs ORDER BY started DESC LIMIT 1").fetchone()[0]
    return n, job


@pytest.mark.parametrize("where", ["features", "catalog"])
def test_disk_full_fails_the_batch_keeps_commits_and_rerun_completes(fleet, home, monkeypatch, where):
    calls = {"n": 0}
    if where == "features":
        real = RegionStore._write_rows

        def write_rows(self, name, start, values):
            calls["n"] += 1
            if calls["n"] > 2 * len(_ARRAYS):  # third batch: two batches (every array each) got through
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.features_path))
            return real(self, name, start, values)

        monkeypatch.setattr(RegionStore, "_write_rows", write_rows)
    else:
        real = RegionStore._commit_clips

        def commit(self, *args):
            calls["n"] += 1
            if calls["n"] > 2:
                raise sqlite3.OperationalError("database or disk is full")
            return real(self, *args)

        monkeypatch.setattr(RegionStore, "_commit_clips", commit)
    with pytest.raises(StoreError) as info:
        ingest(home, REGION, [fleet["whole"]], IngestOptions(batch_size=4, workers=1))
    msg = str(info.value)
    assert ("No space left on device" if where == "features" else "disk is full") in msg
    assert "every earlier commit is intact" in msg and "rerun the same command" in msg
    assert _counts(home) == (8, "failed")
    with RegionStore.open(home.region(REGION)) as store:
        assert verify(store).problems == []
    monkeypatch.undo()
    rep = ingest(home, REGION, [fleet["whole"]], IngestOptions(batch_size=4, workers=1))
    assert rep.ok and len(rep.ingested) == 22 and len(rep.skipped) == 8
    assert _counts(home) == (30, "ok")
    with RegionStore.open(home.region(REGION)) as store:
        assert verify(store).ok


def _read_only_runner():
    """Run a command unable to write a chmod-ed store: as root, with the capabilities that
    bypass file permissions dropped (setpriv); as another user, plainly."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: chmod cannot make the store read-only")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all"]


def _chmod_tree(path, writable: bool) -> None:
    for root, _dirs, files in os.walk(path):
        for p in [root] + [os.path.join(root, f) for f in files]:
            mode = os.stat(p).st_mode
            os.chmod(p, mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_read_only_store_serves_reads_and_refuses_writes(fleet, home):
    prefix = _read_only_runner()
    assert ingest(home, REGION, [fleet["half"]], IngestOptions(workers=1)).ok
    region_path = home.region(REGION).path
    shutil.rmtree(region_path / "index")  # readers must cope without saving a rebuilt index
    _chmod_tree(region_path, writable=False)
    try:
        def clipdex(*args):
            return subprocess.run([*prefix, sys.executable, "-m", "engine.surfaces.cli", *args, "--region", REGION,
                                   "--home", str(home.path)], capture_output=True, text=True, timeout=300)

        res = clipdex("query", "--clip", fleet["names"][2], "-k", "3", "--json")
        assert res.returncode == 0, res.stderr
        assert len(json.loads(res.stdout)) == 3
        for cmd in (["stats", "--json"], ["rare", "--top", "3", "--json"], ["verify", "--json"]):
            res = clipdex(*cmd)
            assert res.returncode == 0, (cmd, res.stderr)
        res = clipdex("ingest", str(fleet["whole"]))
        assert res.returncode == 2
        assert "cannot write to region 'us-west'" in res.stderr and "read-write" in res.stderr
    finally:
        _chmod_tree(region_path, writable=True)
    rep = ingest(home, REGION, [fleet["whole"]], IngestOptions(workers=1))  # the way back: make it writable
    assert rep.ok and len(rep.ingested) == 15 and len(rep.skipped) == 15


def test_unreadable_features_name_the_fix(fleet, home):
    assert ingest(home, REGION, [fleet["half"]], IngestOptions(workers=1)).ok
    with RegionStore.open(home.region(REGION)) as store:
        for f in (store.features_path / "clip_embeddings" / "c").rglob("*"):
            if f.is_file():
                f.write_bytes(b"\x00" * 16)
        with pytest.raises(StoreError, match=r"clip_embeddings.*verify --region us-west --repair"):
            search_clip(store, fleet["names"][0], 3)
        rep = verify(store, repair=True)
        assert len(rep.taken_out) == 15 and rep.reingest_sources == [str(fleet["half"])]
    # the way back: re-ingest what verify named
    rep = ingest(home, REGION, [fleet["half"]], IngestOptions(workers=1))
    assert rep.ok and len(rep.ingested) == 15
    with RegionStore.open(home.region(REGION)) as store:
        assert verify(store).ok
        assert len(search_clip(store, fleet["names"][0], 3)) == 3


def test_newer_catalog_refused_by_the_cli(home):
    with RegionStore.open(home.region(REGION), create=True) as s:
        s.set_meta(schema_version=99)
    for cmd in (["stats"], ["verify"], ["query", "--clip", "x"]):
        res = runner.invoke(app, [*cmd, "--region", REGION, "--home", str(home.path)])
        assert res.exit_code == 2 and "upgrade clipdex" in res.output, (cmd, res.output)


def test_cli_resumes_and_skips_what_committed(fleet, home):
    args = ["--region", REGION, "--home", str(home.path), "--workers", "1", "--json"]
    res = runner.invoke(app, ["ingest", str(fleet["half"]), *args])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ingested"] == 15
    # the full store after a partial one: the committed half is skipped, the rest ingested
    res = runner.invoke(app, ["ingest", str(fleet["whole"]), *args])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert (rep["ingested"], rep["skipped"], rep["failed"]) == (15, 15, 0)
    # the same sources again: a no-op, every clip reported skipped
    res = runner.invoke(app, ["ingest", str(fleet["whole"]), *args])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert (rep["ingested"], rep["skipped"]) == (0, 30)
    assert sorted(s["clip_id"] for s in rep["skips"]) == fleet["names"]
    assert all(s["reason"].startswith("already ingested as ") for s in rep["skips"])
    res = runner.invoke(app, ["stats", "--region", REGION, "--home", str(home.path), "--json"])
    assert json.loads(res.stdout)["clips"] == 30
