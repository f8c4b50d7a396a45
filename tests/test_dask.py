"""Ingest on a Dask cluster: the same catalog as the local executor, workers that die, a
scheduler that cannot be reached or is not the region's."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the Dask executor needs clipdex[dask]")

from engine.errors import InputError  # noqa: E402
from engine.ingest.executors import DaskExecutor  # noqa: E402
from engine.ingest.pipeline import IngestOptions, ingest  # noqa: E402
from engine.matching.dedup import run_dedup  # noqa: E402
from engine.sovereignty.regions import Home  # noqa: E402
from engine.store.region import RegionStore  # noqa: E402
from engine.store.verify import verify  # noqa: E402
from fixtures.video import write_video  # noqa: E402


def _frames(seed: int, seconds: float, fps: int = 10) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (14, 22 + int(seconds * fps), 3)).astype(np.uint8)
    wide = np.kron(small, np.ones((8, 8, 1), np.uint8))
    return np.stack([wide[:96, 8 * i: 8 * i + 160] for i in range(int(seconds * fps))])


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask-src")
    for i in range(5):
        write_video(root / f"v{i}.mp4", _frames(i, 3.0), 10)
    # a re-encoded copy (dedup must pair it) and a file that is no video (it fails alone)
    write_video(root / "v0_copy.mp4", _frames(0, 3.0), 10, bitrate=200_000)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return root


@pytest.fixture(scope="module")
def executor():
    with DaskExecutor.start(None, workers=2) as ex:
        yield ex


def _home(path, name="r") -> Home:
    h = Home.open(path, create=True)
    h.add_region(name, jurisdiction="XX", export_fields=("ids",), export_to=("*",))
    return h


def _snapshot(h: Home) -> dict:
    with RegionStore.open(h.region("r")) as store:
        run_dedup(store, full=True)
        snap = store.snapshot()
        records = [{k: v for k, v in r.items() if k != "meta"} for r in store.clip_records()]
        return {
            "clips": records,
            "hashes": store.read_rows("keyframe_hashes", 0, snap.kf_end),
            "embeddings": store.read_rows("clip_embeddings", 0, snap.clip_end),
            "pairs": sorted(store.pairs()),
            "groups": sorted(store.groups().items()),
        }


def test_dask_ingest_gives_the_same_catalog_as_local(tmp_path, sources, executor):
    local, dask = _home(tmp_path / "local"), _home(tmp_path / "dask")
    opts = IngestOptions(clip_seconds=2.0)
    rep_l = ingest(local, "r", [sources], opts)
    rep_d = ingest(dask, "r", [sources], opts, executor=executor)
    assert [f for f, _ in rep_l.failed] == [f for f, _ in rep_d.failed]
    assert len(rep_d.failed) == 1 and rep_d.failed[0][0].endswith("broken.mp4")
    assert rep_l.ingested == rep_d.ingested and len(rep_d.ingested) == 12
    a, b = _snapshot(local), _snapshot(dask)
    assert a["clips"] == b["clips"]
    np.testing.assert_array_equal(a["hashes"], b["hashes"])
    np.testing.assert_array_equal(a["embeddings"], b["embeddings"])
    assert a["pairs"] == b["pairs"] and a["groups"] == b["groups"] and a["pairs"]


def test_a_worker_killed_mid_job_loses_and_doubles_nothing(tmp_path, sources):
    h = _home(tmp_path / "home")
    killed = []
    with DaskExecutor.start(None, workers=2) as ex:
        pids = list(ex.client.run(os.getpid).values())

        def progress(state: dict) -> None:
            if not killed and state.get("items_done", 0) >= 1:
                os.kill(pids[0], signal.SIGKILL)  # tasks on it run again elsewhere
                killed.append(pids[0])

        rep = ingest(h, "r", [sources], IngestOptions(clip_seconds=2.0), progress=progress, executor=ex)
    assert killed
    assert len(rep.ingested) == 12 == len(set(rep.ingested))
    with RegionStore.open(h.region("r")) as store:
        ids = [r["clip_id"] for r in store.clip_records()]
        assert sorted(ids) == sorted(rep.ingested)
        assert verify(store).ok


def test_scheduler_refused_unless_declared_and_unreachable_fails_fast(tmp_path):
    h = _home(tmp_path / "home")
    with pytest.raises(InputError, match="not declared for region 'r'"):
        DaskExecutor.start(h.region("r"), scheduler="tcp://127.0.0.1:1")
    from dataclasses import replace

    region = replace(h.region("r"), schedulers=("tcp://127.0.0.1:1",))
    t0 = time.monotonic()
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        DaskExecutor.start(region, scheduler="tcp://127.0.0.1:1")
    assert time.monotonic() - t0 < 30


def test_regions_toml_keeps_declared_schedulers(tmp_path):
    h = _home(tmp_path / "home")
    cfg = h.path / "regions.toml"
    cfg.write_text(cfg.read_text().replace('export_to = ["*"]',
                                           'export_to = ["*"]\nschedulers = ["tcp://10.1.2.3:8786"]'))
    h2 = Home.open(h.path)
    assert h2.region("r").schedulers == ("tcp://10.1.2.3:8786",)
    h2.save()
    assert Home.open(h.path).region("r").schedulers == ("tcp://10.1.2.3:8786",)


def test_a_task_keeps_to_one_thread(monkeypatch):
    """A worker runs one task per thread, so a task decodes on one thread and runs one Numba
    thread (unless --threads names a count): N one-thread workers use N cores, no more."""
    import numba

    import engine.ingest.pipeline as pipeline
    from engine.ingest import executors

    seen = []
    monkeypatch.setattr(pipeline, "item_results",
                        lambda item, opts, *a: seen.append((opts.threads, numba.get_num_threads())) or [])
    before = numba.get_num_threads()
    try:
        executors._task("item", IngestOptions(), "r", {})
        executors._task("item", IngestOptions(threads=3), "r", {})
    finally:
        numba.set_num_threads(before)
    assert seen == [(1, 1), (3, 1)]
