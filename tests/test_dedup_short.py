"""Sub-second and 1-s clips: too few keyframes for the usual three matches."""

from __future__ import annotations

import numpy as np

from engine.ingest.pipeline import IngestOptions, ingest
from engine.matching.dedup import run_dedup
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore
from fixtures.video import write_video


def _frames(seed: int, seconds: float, fps: int = 10) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (14, 22 + int(seconds * fps), 3)).astype(np.uint8)
    wide = np.kron(small, np.ones((8, 8, 1), np.uint8))
    return np.stack([wide[:96, 8 * i: 8 * i + 160] for i in range(int(seconds * fps))])


def test_a_one_second_clip_and_its_copy_are_duplicates_and_others_are_not(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_video(src / "short.mp4", _frames(0, 1.0), 10)
    write_video(src / "short_copy.mp4", _frames(0, 1.0), 10, bitrate=150_000)
    write_video(src / "other.mp4", _frames(1, 1.0), 10)
    h = Home.open(tmp_path / "home", create=True)
    h.add_region("r", jurisdiction="XX")
    assert ingest(h, "r", [src], IngestOptions()).ok
    with RegionStore.open(h.region("r")) as store:
        res = run_dedup(store)
        table = store.clip_table()
    ids = dict(zip(table.rows.tolist(), table.clip_ids, strict=True))
    assert int(table.kf_count.max()) == 2
    got = {frozenset((ids[p.a], ids[p.b])): p.relation for p in res.pairs}
    assert got == {frozenset(("short", "short_copy")): "duplicate"}
