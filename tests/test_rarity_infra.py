"""Rarity infrastructure: relatives (duplicate group, drive) never make a rare clip common;
scores and percentiles are stored per clip; the approximate index gives the same ranking."""

from __future__ import annotations

import numpy as np
import pytest

import engine.index.embeddings as emb_mod
from engine.scenes.rarity import (
    compute_rarity,
    event_percentiles,
    event_signatures,
    event_support,
    group_heads,
    load_rarity,
    recording_units,
)
from engine.store.region import RegionStore
from tests.conftest import make_new_clip

DIM = 128


def _unit(v):
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _region(home, *, n_clusters=12, per_cluster=25, seed=0):
    """Common clips: tight clusters, one clip per drive. Rare: 5 uploads of one event (a duplicate
    group) and one event filmed over 5 consecutive clips of one drive (no dedup pairs)."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((n_clusters, DIM)))
    clips = []
    for c in range(n_clusters):
        for j in range(per_cluster):
            clip = make_new_clip(rng, f"common-{c:02d}-{j:02d}", k=2, drive_id=f"drive-{c}-{j}")
            clip.embedding = _unit(centres[c] + 0.08 * rng.standard_normal(DIM))
            clips.append(clip)
    dup_centre = _unit(rng.standard_normal(DIM))
    for j in range(5):
        clip = make_new_clip(rng, f"dup-{j}", k=2, drive_id=f"uploader-{j}")
        clip.embedding = _unit(dup_centre + 0.01 * rng.standard_normal(DIM))
        clips.append(clip)
    drive_centre = _unit(rng.standard_normal(DIM))
    for j in range(5):
        clip = make_new_clip(rng, f"drive-event-{j}", k=2, drive_id="drive-rare", start_time=1.7e9 + 10 * j)
        clip.embedding = _unit(drive_centre + 0.03 * rng.standard_normal(DIM))
        clips.append(clip)
    store = RegionStore.open(home.region("us-west"), create=True)
    with store.writer():
        rows = store.append_clips(clips)
        ids = {c.clip_id: r for c, r in zip(clips, rows, strict=True)}
        dups = [ids[f"dup-{j}"] for j in range(5)]
        pairs = [(a, b, "duplicate", 0.0, 0.0, 1.0, 0.0, 1.0, 2, 2, 0.0)
                 for i, a in enumerate(dups) for b in dups[i + 1:]]
        store.replace_dedup(pairs, [(r, 0, dups[0]) for r in dups], incremental=False, clip_end=len(clips))
    return store


@pytest.mark.parametrize("exact_max", [50_000, 100], ids=["exact", "ivf"])
def test_duplicated_and_multi_clip_rare_events_stay_rare(home, monkeypatch, exact_max):
    monkeypatch.setattr(emb_mod, "EXACT_MAX", exact_max)
    store = _region(home)
    res = compute_rarity(store, k=5)
    pct = dict(zip(res.clip_ids, res.percentiles, strict=True))
    rare = [f"dup-{j}" for j in range(5)] + [f"drive-event-{j}" for j in range(5)]
    n = len(res.clip_ids)
    assert n == 310
    assert set(res.clip_ids[:10]) == set(rare)  # the 10 rarest of 310 clips (top 3.3%)
    assert min(pct[c] for c in rare) >= 95.0
    assert max(p for c, p in pct.items() if c.startswith("common")) < min(pct[c] for c in rare)
    # percentiles rank distinct recordings: the 5 uploads are one recording with one rank
    assert len({pct[f"dup-{j}"] for j in range(5)}) == 1
    assert max(pct.values()) == 100.0 and min(pct.values()) == 0.0
    stored = load_rarity(store, recompute_if_stale=False)
    table = store.clip_table()
    row_of = dict(zip(table.clip_ids, table.rows.tolist(), strict=True))
    assert stored[row_of["dup-0"]][1] == pytest.approx(pct["dup-0"])
    store.close()


def test_without_relative_exclusion_they_would_not_be_rare(home, monkeypatch):
    """Control: the same embeddings with no dedup pairs and distinct drives are each other's
    nearest neighbours, so the exclusion is what keeps them rare. Without dedup pairs the
    near-duplicate rule (cosine >= NEAR_DUPLICATE_SIMILARITY counts as a copy) still keeps them
    rare; with that rule off too, they are not."""
    import engine.scenes.rarity as rarity_mod

    store = _region(home)
    with store.writer():
        store.replace_dedup([], [], incremental=False, clip_end=store.snapshot().clip_end)
    res = compute_rarity(store, k=3)
    pct = dict(zip(res.clip_ids, res.percentiles, strict=True))
    assert min(pct[f"dup-{j}"] for j in range(5)) >= 95.0  # missed copies are still relatives
    monkeypatch.setattr(rarity_mod, "NEAR_DUPLICATE_SIMILARITY", 1.01)
    res = compute_rarity(store, k=3)
    pct = dict(zip(res.clip_ids, res.percentiles, strict=True))
    assert max(pct[f"dup-{j}"] for j in range(5)) < 50.0  # 4 near-identical copies within k=3
    store.close()


def test_rarity_never_holds_the_writer_lock_and_caches_at_its_snapshot(home):
    """A reader computing rarity while an ingest holds the region's writer lock still caches its
    scores (a derived cache in one SQLite transaction), and never takes the lock itself, so an
    ingest starting at that moment cannot be refused. The cache is stamped with the catalog
    version the scores were computed at."""
    store = _region(home, n_clusters=3, per_cluster=5)
    version = store.snapshot().version
    store.close()
    ingest = RegionStore.open(home.region("us-west"))
    reader = RegionStore.open(home.region("us-west"))
    with ingest.writer("clipdex ingest (test)"):
        res = compute_rarity(reader, k=3)
        assert reader._lock_fd is None  # the reader never asked for the writer lock
    assert len(res.clip_ids) == 25
    assert int(reader.meta("rarity_version")) == version
    assert load_rarity(reader, recompute_if_stale=False) == {
        int(r): (pytest.approx(s), pytest.approx(p))
        for r, s, p in zip(res.rows, res.scores, res.percentiles, strict=True)}
    # a commit after the scores were computed leaves them stale (recomputed), not current
    with ingest.writer():
        ingest.append_clips([make_new_clip(np.random.default_rng(9), "late", k=2)])
    assert int(reader.meta("rarity_version")) != reader.snapshot().version
    assert len(load_rarity(reader)) == 26
    ingest.close()
    reader.close()


def test_cached_scores_of_another_k_are_recomputed(home):
    """``clipdex rare --k 3`` caches its scores; selection and reports (default k) must not read
    them back as their own: the cache is stamped with k as well as the catalog version."""
    store = _region(home, n_clusters=3, per_cluster=5)
    k3 = compute_rarity(store, k=3)
    assert store.meta("rarity_k") == "3:events0.05:dynamics"
    default = load_rarity(store)  # k=10: recomputed, and a read writes nothing
    assert store.meta("rarity_k") == "3:events0.05:dynamics"
    k10 = compute_rarity(store, k=10)
    assert default == {int(r): (pytest.approx(s), pytest.approx(p))
                       for r, s, p in zip(k10.rows, k10.scores, k10.percentiles, strict=True)}
    assert not np.allclose(np.sort(k3.scores), np.sort(k10.scores))
    # scores stored from elsewhere (no k) stay valid for any k
    with store.writer():
        store.replace_rarity(k3.rows, k3.scores, k3.percentiles)
    assert load_rarity(store, k=5) == {int(r): (pytest.approx(s), pytest.approx(p))
                                       for r, s, p in zip(k3.rows, k3.scores, k3.percentiles, strict=True)}
    store.close()


# ----------------------------------------------------------------------------- event signatures
def test_recording_units_join_drives_and_copies_transitively():
    drives = np.array([0, 0, 1, 2, 3, 4])
    comp = np.array([0, 1, 1, 3, 3, 5])  # clip 2 copies clip 1 (drive 0); clip 4 copies clip 3
    units = recording_units(comp, drives)
    assert units[0] == units[1] == units[2]  # drive 0, and drive 1 through its copy
    assert units[3] == units[4] != units[0]
    assert len(set(units.tolist())) == 3


def test_event_support_counts_other_units():
    #        0     1     2     3     4          5          6     7
    sigs = ["hb", "hb", "hb", "hb", "hb+jerk", "hb+jerk", "", "low_light"]
    units = np.array([0, 0, 1, 2, 3, 3, 5, 6])
    got = event_support(sigs, units)
    assert got.tolist() == [2, 2, 2, 2, 0, 0, -1, 0]


def test_event_support_matches_a_brute_force_count():
    rng = np.random.default_rng(3)
    n = 300
    sigs = [str(s) if s else "" for s in rng.integers(0, 5, n)]
    drives = rng.integers(0, 60, n)
    comp = np.arange(n)
    comp[rng.integers(0, n, 80)] = rng.integers(0, 20, 80)  # some duplicate groups across drives
    units = recording_units(comp, drives)
    got = event_support(sigs, units)
    for i in range(n):
        if not sigs[i]:
            assert got[i] == -1
            continue
        other = {int(units[j]) for j in range(n) if sigs[j] == sigs[i] and units[j] != units[i]}
        assert got[i] == len(other), i


def test_event_percentiles():
    support = np.array([-1, 0, 1, 4, 5, 50])
    pct = event_percentiles(support, 100, share=0.05)
    assert pct.tolist() == [0.0, 100.0, 99.0, 96.0, 0.0, 0.0]


def test_rare_event_signature_ranks_a_dense_clip_rare(home):
    """A clip deep inside a common embedding cluster whose drive braked hard (a trigger no other
    drive carries) ranks among the rarest; with ``events=False`` it stays common."""
    store = _region(home)
    rows = {c: r for r, c in zip(store.clip_table().rows, store.clip_table().clip_ids, strict=True)}
    with store.writer():
        with store.transaction() as db:
            db.execute("INSERT INTO triggers(clip_row, name, t_start, t_end, value) VALUES(?,?,?,?,?)",
                       (int(rows["common-03-07"]), "hard_brake", 1.0, 2.0, -7.0))
            for j in range(25):  # a trigger every drive of cluster 5 carries is not rare
                db.execute("INSERT INTO triggers(clip_row, name, t_start, t_end, value) VALUES(?,?,?,?,?)",
                           (int(rows[f"common-05-{j:02d}"]), "low_light", 0.0, 1.0, 40.0))
    both = compute_rarity(store, k=5)
    assert store.meta("rarity_k") == "5:events0.05:dynamics"
    pct = dict(zip(both.clip_ids, both.percentiles, strict=True))
    assert pct["common-03-07"] >= 95.0
    assert both.clip_ids[0] == "common-03-07"  # a rare named event outranks every density outlier
    assert both.signatures[both.clip_ids.index("common-03-07")] == "hard_brake"
    assert both.support[both.clip_ids.index("common-03-07")] == 0
    assert max(pct[f"common-05-{j:02d}"] for j in range(25)) < 90.0
    dens = compute_rarity(store, k=5, events=False)
    assert store.meta("rarity_k") == "5:density"
    assert dict(zip(dens.clip_ids, dens.percentiles, strict=True))["common-03-07"] < 90.0
    assert dens.signatures is None
    # the cache knows which method wrote it
    assert load_rarity(store, k=5) == {int(r): (pytest.approx(s), pytest.approx(p))
                                       for r, s, p in zip(both.rows, both.scores, both.percentiles, strict=True)}
    store.close()


def test_duplicate_group_shares_telemetry_triggers_and_its_representatives_picture(home):
    """A whole-duplicate group carries one signature: every member's telemetry triggers (a copy
    uploaded without telemetry still braked hard) and the picture triggers of its representative
    (dedup elects the best-quality copy: a contrast-reduced copy looks foggy, the sharp original
    shows it was not). A representative missing from the table (no vector in an imported space)
    is replaced by the best-quality member present."""
    rng = np.random.default_rng(5)
    clips = [make_new_clip(rng, "orig", k=4, drive_id="d0"),
             make_new_clip(rng, "faded", k=4, drive_id="u1"),
             make_new_clip(rng, "other", k=4, drive_id="d2")]
    clips[1].keyframe_quality = np.full(4, 40, np.uint8)  # the faded copy: lower PDQ quality
    store = RegionStore.open(home.region("us-west"), create=True)
    with store.writer():
        rows = store.append_clips(clips)
        with store.transaction() as db:
            for row, name in ((rows[0], "hard_brake"), (rows[1], "low_visibility"), (rows[2], "low_visibility")):
                db.execute("INSERT INTO triggers(clip_row, name, t_start, t_end, value) VALUES(?,?,?,?,?)",
                           (int(row), name, 0.0, 1.0, 0.0))
    table = store.clip_table()
    assert event_signatures(store, table) == ["hard_brake", "low_visibility", "low_visibility"]
    orig, faded = int(rows[0]), int(rows[1])
    assert event_signatures(store, table, {orig: [orig, faded]}) == ["hard_brake", "hard_brake", "low_visibility"]
    # the representative decides the picture triggers (a group keyed by the faded copy)
    assert event_signatures(store, table, {faded: [orig, faded]})[:2] == ["hard_brake+low_visibility"] * 2
    # a representative outside the table: the best-quality member present stands in
    assert group_heads(table, {999: [orig, faded, 999]}).tolist() == [0, 0, 2]
    store.close()


def test_cli_rare_lists_one_clip_per_duplicate_group(home):
    """`clipdex rare` lists each whole-duplicate group once, by its representative, with the
    number of copies; `--all-copies` lists every upload."""
    import json

    from typer.testing import CliRunner

    from engine.surfaces.cli import app

    store = _region(home)
    store.close()
    base = ["rare", "--home", str(home.path), "--region", "us-west", "--top", "10", "--json"]
    res = CliRunner().invoke(app, base)
    assert res.exit_code == 0, res.output
    top = json.loads(res.stdout)
    dups = [t for t in top if t["clip_id"].startswith("dup-")]
    assert len(dups) == 1 and dups[0]["copies"] == 4 and dups[0]["clip_id"] == "dup-0"  # rep row
    # what ranked each clip; these clips carry no telemetry, so no dynamics score
    assert {t["basis"] for t in top} <= {"event", "appearance", "dynamics"}
    assert all(t["dynamics"] is None for t in top)
    assert sum(t["clip_id"].startswith("drive-event-") for t in top) == 5  # one drive, 5 recordings
    res = CliRunner().invoke(app, [*base, "--all-copies"])
    every = json.loads(res.stdout)
    assert sum(t["clip_id"].startswith("dup-") for t in every) == 5
    assert all(t["copies"] == 4 for t in every if t["clip_id"].startswith("dup-"))


def _typical_stats(rng, n):
    """Telemetry statistics (``kernels.telemetry_stats`` layout) of ordinary driving."""
    s = np.zeros((n, 16), np.float32)
    s[:, 0] = 1.0
    s[:, 1] = rng.normal(14, 2, n)  # speed mean
    s[:, 2] = rng.normal(1.0, 0.2, n)  # speed std
    s[:, 3] = s[:, 1] - 2 * s[:, 2]
    s[:, 4] = s[:, 1] + 2 * s[:, 2]
    s[:, 5] = rng.normal(-0.8, 0.2, n)  # accel min
    s[:, 6] = rng.normal(0.8, 0.2, n)
    s[:, 7] = rng.normal(0.4, 0.05, n)
    s[:, 8:12] = rng.normal([0.02, 0.05, 0.8, 2.0], [0.005, 0.01, 0.1, 0.3], (n, 4))
    s[:, 14:16] = rng.normal([0.02, 0.05], [0.005, 0.01], (n, 2))
    return s


def _dynamics_region(home):
    """300 clips that all look alike (one tight embedding cluster), one per drive, with ordinary
    driving; a 3-clip drive that brakes to a stand from 20 m/s (a deer) and, alike among
    themselves, an upload of one of its clips; one clip without telemetry."""
    rng = np.random.default_rng(11)
    centre = _unit(rng.standard_normal(DIM))
    stats = _typical_stats(rng, 306)
    deer = stats[300:304]
    deer[:, 1], deer[:, 2], deer[:, 3], deer[:, 5] = 12.0, 7.0, 0.0, -3.0
    deer[:, 13] = 0.4  # standing share
    clips = []
    for i in range(306):
        drive = f"drive-{i}" if i < 300 else ("drive-deer" if i < 303 else ("upload-1" if i < 304 else f"x-{i}"))
        clip = make_new_clip(rng, f"c-{i:03d}", k=2, drive_id=drive, start_time=1.7e9 + 10 * i,
                             telemetry_stats=None if i == 305 else stats[i])
        clip.embedding = _unit(centre + 0.05 * rng.standard_normal(DIM))
        clips.append(clip)
    store = RegionStore.open(home.region("us-west"), create=True)
    with store.writer():
        rows = store.append_clips(clips)
        a, b = int(rows[300]), int(rows[303])  # the upload is a whole copy of the deer's first clip
        store.replace_dedup([(a, b, "duplicate", 0.0, 0.0, 1.0, 0.0, 1.0, 2, 2, 0.0)], [(a, 0, a), (b, 0, a)],
                            incremental=False, clip_end=len(clips))
    return store


@pytest.mark.parametrize("exact_max", [50_000, 100], ids=["exact", "ivf"])
def test_dynamics_view_ranks_unusual_driving_rare(home, monkeypatch, exact_max):
    """Clips that look ordinary but whose car drove like no other recording (braking to a stand
    from speed) rank rarest by their telemetry statistics, blind to their own drive and copies,
    and say so ("dynamics"); the embedding density alone leaves them among the common clips."""
    import engine.index.embeddings as emb

    monkeypatch.setattr(emb, "L2_EXACT_MAX", exact_max)
    store = _dynamics_region(home)
    res = compute_rarity(store, k=5)
    deer = {"c-300", "c-301", "c-302", "c-303"}
    # three recordings of the deer drive (the upload shares its source's rank) at the top of the
    # dynamics view, beside the top of the appearance view (the larger percentile of the two)
    assert deer <= set(res.clip_ids[:7])
    assert all(b == "dynamics" for c, b in zip(res.clip_ids, res.basis, strict=True) if c in deer)
    pct = dict(zip(res.clip_ids, res.percentiles, strict=True))
    assert pct["c-303"] == pct["c-300"] and min(pct[c] for c in deer) >= 97.5
    dyn = dict(zip(res.clip_ids, res.dynamics, strict=True))
    assert np.isnan(dyn["c-305"])  # no telemetry: no dynamics score, ranked by its looks alone
    assert min(dyn[c] for c in deer) > 3 * np.nanmedian(res.dynamics)
    assert store.meta("rarity_k") == "5:events0.05:dynamics"
    plain = compute_rarity(store, k=5, dynamics=False)
    assert store.meta("rarity_k") == "5:events0.05"
    assert not deer & set(plain.clip_ids[:30])
    assert set(plain.basis) == {"appearance"} and np.isnan(plain.dynamics).all()
    store.close()


def test_telemetry_stats_are_stored_and_an_older_store_gains_the_array(home, monkeypatch):
    """Telemetry statistics are a clip feature array (NaN rows: no telemetry). A store written
    before the array existed reads NaN when read-only, and gets the array, NaN for its clips and
    full length for `verify`, when opened writable; new clips then store theirs."""
    import shutil

    from engine.store.verify import verify

    store = _dynamics_region(home)
    stats = store.telemetry_stats(store.snapshot())
    assert stats.shape == (306, 16)
    assert np.isnan(stats[305]).all() and np.isfinite(stats[:305]).all()
    store.close()
    shutil.rmtree(home.region("us-west").path / "features.zarr" / "telemetry_stats")
    monkeypatch.setattr(RegionStore, "_writable", lambda self: False)
    with RegionStore.open(home.region("us-west")) as ro:
        assert np.isnan(ro.telemetry_stats(ro.snapshot())).all()
        assert "telemetry_stats" not in ro.array_layout()
        res = compute_rarity(ro, k=5)  # ranks without the dynamics view
        assert np.isnan(res.dynamics).all()
    monkeypatch.undo()
    with RegionStore.open(home.region("us-west")) as rw:
        assert np.isnan(rw.telemetry_stats(rw.snapshot())).all()
        assert verify(rw).ok
        with rw.writer():
            rw.append_clips([make_new_clip(np.random.default_rng(1), "new", k=2,
                                           telemetry_stats=np.arange(16, dtype=np.float32))])
        got = rw.telemetry_stats(rw.snapshot())
        assert got.shape == (307, 16) and np.isnan(got[:306]).all()
        assert got[306].tolist() == list(range(16))
        assert verify(rw).ok


def test_partial_copies_share_the_situations_of_their_shared_footage(home):
    """A trim or splice takes a partner's event when the event lies in the footage they share,
    and a picture condition when that footage is at least half of it or 3 s long; nothing else."""
    from engine.matching.dedup import Pair

    rng = np.random.default_rng(3)
    clips = [make_new_clip(rng, "source", k=20, drive_id="d0"),  # 10 s
             make_new_clip(rng, "trim", k=12, drive_id="u1"),  # 6 s: source 5-10 s at its 0-5 s
             make_new_clip(rng, "splice", k=20, drive_id="u2"),  # 10 s: source 8-10 s at its 0-2 s
             make_new_clip(rng, "long_splice", k=24, drive_id="u3")]  # 12 s: source 0-3.5 s at its 8.5-12 s
    store = RegionStore.open(home.region("us-west"), create=True)
    with store.writer():
        rows = store.append_clips(clips)
        with store.transaction() as db:
            for name, t0, t1 in (("hard_brake", 6.0, 7.0), ("snow", 0.0, 10.0), ("glare", 1.0, 1.5)):
                db.execute("INSERT INTO triggers(clip_row, name, t_start, t_end, value) VALUES(?,?,?,?,?)",
                           (int(rows[0]), name, t0, t1, 0.0))
    src, trim, splice, long_splice = (int(r) for r in rows)
    pairs = [Pair(src, trim, "partial", 5.0, (5.0, 10.0), (0.0, 5.0), 10, 10, 0.0),
             Pair(src, splice, "partial", 8.0, (8.0, 10.0), (0.0, 2.0), 4, 4, 0.0),
             Pair(src, long_splice, "partial", -8.5, (0.0, 3.5), (8.5, 12.0), 8, 8, 0.0)]
    table = store.clip_table()
    assert event_signatures(store, table) == ["glare+hard_brake+snow", "", "", ""]
    assert event_signatures(store, table, pairs=pairs) == ["glare+hard_brake+snow", "hard_brake+snow", "",
                                                           "glare+snow"]
    # a duplicate pair is not a partial one: whole groups share signatures by their own rule
    dup = [Pair(src, trim, "duplicate", 0.0, (0.0, 10.0), (0.0, 6.0), 10, 10, 0.0)]
    assert event_signatures(store, table, pairs=dup)[1] == ""
    store.close()
