"""Selection on a small hand-built region: duplicates, quotas, previous sets, split, manifests."""

from __future__ import annotations

import numpy as np
import pytest

from engine.curation.manifest import read_manifest, write_manifest
from engine.curation.select import parse_mix, select_clips
from engine.errors import InputError
from engine.store.region import RegionStore
from tests.conftest import make_new_clip

N_CLIPS = 60


@pytest.fixture
def region(home):
    """60 clips on 20 drives; duplicate groups and partial pairs that link drives; rarity; triggers."""
    rng = np.random.default_rng(0)
    store = RegionStore.open(home.region("us-west"), create=True)
    clips = []
    for i in range(N_CLIPS):
        trig = [("hard_brake", 0.5, 1.0, 3.0)] if i % 6 == 0 else []
        clips.append(make_new_clip(rng, f"c{i:03d}", drive_id=f"d{i % 20:02d}", triggers=trig))
    with store.writer():
        rows = store.append_clips(clips)
        groups = []  # duplicate groups across drives: (0,1,2) rep 0, (10,31) rep 31, (44,45) rep 44
        for gid, (members, rep) in enumerate((((0, 1, 2), 0), ((10, 31), 31), ((44, 45), 44))):
            groups += [(rows[m], gid, rows[rep]) for m in members]
        pairs = [(rows[0], rows[1], "duplicate", 0.0, 0, 4, 0, 4, 8, 8, 1.0),
                 (rows[1], rows[2], "duplicate", 0.0, 0, 4, 0, 4, 8, 8, 1.0),
                 (rows[10], rows[31], "duplicate", 0.0, 0, 4, 0, 4, 8, 8, 1.0),
                 (rows[44], rows[45], "duplicate", 0.0, 0, 4, 0, 4, 8, 8, 1.0),
                 (rows[5], rows[26], "partial", 1.0, 1, 4, 0, 3, 6, 6, 2.0)]  # drive d05 ~ d06
        store.replace_dedup(pairs, groups, incremental=False, clip_end=len(rows))
        scores = np.linspace(0.0, 1.0, N_CLIPS)[::-1].copy()  # c000 rarest
        store.replace_rarity(np.asarray(rows, np.int64), scores, scores * 100)
    yield store
    store.close()


def _ids(sel):
    return [c.clip_id for c in sel.chosen]


def test_duplicates_excluded_and_budget_met(region):
    sel = select_clips(region, N_CLIPS, mix={"diverse": 1.0})
    ids = set(_ids(sel))
    assert sel.excluded_duplicates == 4
    assert not ids & {"c001", "c002", "c010", "c045"}
    assert {"c000", "c031", "c044"} <= ids
    # c005 and c026 overlap (c005's 1-4 s is c026's 0-3 s): once one is in, the other is redundant
    assert len({"c005", "c026"} & ids) == 1
    assert len(ids) == len(sel.chosen) == N_CLIPS - 5


def test_rare_first_and_reasons(region):
    sel = select_clips(region, 10, mix=parse_mix("rare=0.5,diverse=0.3,random=0.2"), seed=1)
    rare = [c for c in sel.chosen if c.reason == "rare"]
    # c001/2 are duplicates of c000; c004, c005 and c006 are one recording unit (c044 copies
    # c045 across drives d04/d05, c005 overlaps c026 across d05/d06): its second and third
    # clips wait until every other unit has had its rarest clip
    assert [c.clip_id for c in rare] == ["c000", "c003", "c004", "c007", "c008"]
    assert rare[0].detail["rarity"] == 1.0
    div = [c for c in sel.chosen if c.reason == "diverse"]
    assert len(div) == 3 and all(c.detail["distance"] > 0 for c in div)
    assert sel.counts == {"rare": 5, "diverse": 3, "random": 2}
    rec = sel.chosen[0].record()
    assert {"clip_id", "region", "source", "span", "split", "reason"} <= set(rec)
    assert rec["span"] == [0.0, 4.0] and rec["source"] == "/src/c000"


def test_reproducible_with_seed(region):
    a = _ids(select_clips(region, 20, seed=3, val_fraction=0.3))
    assert a == _ids(select_clips(region, 20, seed=3, val_fraction=0.3))
    assert a != _ids(select_clips(region, 20, seed=4, val_fraction=0.3))


def test_force_exclude_and_quota(region):
    sel = select_clips(region, 12, mix={"diverse": 1.0}, force=["c007"], exclude=["c012"],
                       quotas={"hard_brake": 4})
    ids = _ids(sel)
    assert ids[0] == "c007" and sel.chosen[0].reason == "forced"
    assert "c012" not in ids
    quota = [c for c in sel.chosen if c.reason == "quota"]
    assert len(quota) == 4 and all(int(c.clip_id[1:]) % 6 == 0 for c in quota)
    assert all(c.detail["quota"] == "hard_brake" for c in quota)
    assert sel.quotas["hard_brake"]["added"] == 4
    with pytest.raises(InputError, match="no clip .* has trigger 'cut_in'"):
        select_clips(region, 5, quotas={"cut_in": 2})
    with pytest.raises(InputError, match="not in region"):
        select_clips(region, 5, force=["nope"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budget": 0}, "budget 0 must be >= 1"),
    ({"val_fraction": 1.0}, r"validation fraction 1.0 must be in \[0, 1\)"),
    ({"method": "farthest"}, "diversity method 'farthest' is unknown; use coverage or kcentre"),
    ({"mix": {"rare": 0.5, "popular": 0.5}}, "unknown strategy 'popular'"),
    ({"mix": {"rare": -0.5, "diverse": 1.5}}, "share of rare must be >= 0"),
    ({"mix": {"rare": float("nan"), "diverse": 1.0}}, "share of rare must be >= 0"),
    ({"mix": {"rare": 0.0}}, "shares must add up to more than 0"),
    ({"mix": {"rare": 1.0, "diverse": 2.0}}, "shares add up to 3; give fractions of the budget"),
    ({"quotas": {"hard_brake": -1}}, "quota 'hard_brake': -1 clips"),
    ({"quotas": {"hard_brake": 1.5}}, "quota 'hard_brake': 1.5 clips"),
    ({"quotas": {"": 2}}, "give a trigger name"),
    ({"exclude": ["nope"]}, "clip 'nope' \\(to exclude\\) is not in region 'us-west'"),
    ({"force": ["nope"]}, "clip 'nope' \\(to force\\) is not in region 'us-west'"),
])
def test_bad_values_are_refused_naming_the_value(region, kwargs, message):
    """The library speaks of values, never of command-line flags (the CLI and the web app both
    call it)."""
    kwargs = {"budget": 5, **kwargs}
    with pytest.raises(InputError, match=message) as err:
        select_clips(region, kwargs.pop("budget"), **kwargs)
    assert "--" not in str(err.value)


def test_parse_mix_scales_shares_and_names_the_text():
    assert parse_mix("rare=1, diverse=3") == {"rare": 0.25, "diverse": 0.75}
    for text, message in (("rare=x", "'rare=x' needs a number"), ("often=1", "unknown strategy 'often'"),
                          ("rare=0", "shares must add up to more than 0"), ("rare=-1", "must be >= 0")):
        with pytest.raises(InputError, match=message) as err:
            parse_mix(text)
        assert f"mix {text!r}" in str(err.value) and "--" not in str(err.value)


def test_previous_set_seeds_and_is_not_repeated(region, tmp_path):
    first = select_clips(region, 15, mix={"diverse": 1.0})
    path = write_manifest(first, region.path / "manifests" / "first.jsonl")
    prev_ids = [r["clip_id"] for r in read_manifest(path)] + ["gone-clip"]
    second = select_clips(region, 15, mix={"diverse": 1.0}, previous=prev_ids)
    assert not set(_ids(first)) & set(_ids(second))
    assert second.previous == 15 and second.previous_missing == 1
    # seeded: the first pick is the clip farthest from the previous set, not a random start
    vectors = region.embeddings(region.snapshot())
    prev_vecs = vectors[[int(c[1:]) for c in _ids(first)]]
    pick = int(second.chosen[0].clip_id[1:])
    far = np.sqrt(((vectors[pick] - prev_vecs) ** 2).sum(axis=1)).min()
    assert second.chosen[0].detail["distance"] == pytest.approx(far, rel=1e-4)


@pytest.mark.parametrize("seed", range(25))
def test_split_never_leaks_drives_or_groups(region, seed):
    sel = select_clips(region, N_CLIPS, seed=seed, val_fraction=0.35, force=["c001", "c010"])
    side: dict[str, set[str]] = {}
    for c in sel.chosen:
        side.setdefault(c.drive_id, set()).add(c.split)
    assert all(len(s) == 1 for s in side.values()), side
    by_id = {c.clip_id: c.split for c in sel.chosen}
    for group in (("c000", "c001", "c002"), ("c010", "c031")):
        assert len({by_id[c] for c in group if c in by_id}) == 1
    assert side["d05"] == side["d06"]  # linked by a partial pair
    splits = set(by_id.values())
    if seed == 0:
        assert splits == {"train", "val"}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_manifest_formats_round_trip(region, tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    sel = select_clips(region, 8, val_fraction=0.5, seed=2)
    recs = read_manifest(write_manifest(sel, region.path / "manifests" / f"m{suffix}"))
    assert [r["clip_id"] for r in recs] == _ids(sel)
    assert [r["split"] for r in recs] == [c.split for c in sel.chosen]
    assert all(r["region"] == "us-west" for r in recs)


def test_diverse_share_covers_what_the_random_picks_leave(home):
    """Four tight clusters, budget 4, one random pick: the three diverse picks go to the three
    clusters the random pick left uncovered (they are seeded with it), never a second one into
    the random pick's cluster."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((4, 128)).astype(np.float32)
    clips = []
    for c in range(4):
        for j in range(10):
            clip = make_new_clip(rng, f"k{c}-{j}", drive_id=f"d{c}-{j}")
            v = centres[c] + 0.05 * rng.standard_normal(128).astype(np.float32)
            clip.embedding = (v / np.linalg.norm(v)).astype(np.float32)
            clips.append(clip)
    store = RegionStore.open(home.region("us-west"), create=True)
    with store.writer():
        store.append_clips(clips)
    for seed in range(5):
        sel = select_clips(store, 4, mix={"diverse": 0.75, "random": 0.25}, seed=seed)
        assert sel.counts == {"random": 1, "diverse": 3}
        assert sorted(c.clip_id.split("-")[0] for c in sel.chosen) == ["k0", "k1", "k2", "k3"], seed
    store.close()
