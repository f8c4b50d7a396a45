"""Dedup on crafted keyframe-hash sequences: relations, vetoes, groups, incremental runs.

Every scenario runs twice: with the exact candidate search (FAISS range search) and with the
banded LSH forced (``exact_max_keyframes=0``); both must give the same answers here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.index import QUALITY_FLOOR
from engine.matching.dedup import (
    DedupParams,
    Pair,
    candidate_pairs,
    explained_partials,
    keyframe_clips,
    load_dedup,
    partials_through_copies,
    recorded_contradicts,
    refine_offsets,
    run_dedup,
)
from engine.store.region import RegionStore
from tests.conftest import make_new_clip

K = 20  # keyframes per clip (10 s at 2 Hz)
DAY0, DAY = 1.7e9, 86400.0
METHODS = {"exact": DedupParams(), "lsh": DedupParams(exact_max_keyframes=0)}


def seq(rng, n=K):
    """Unrelated keyframes (~128 bits apart)."""
    return rng.integers(0, 256, (n, 32), dtype=np.uint8)


def noisy(rng, hashes, bits):
    """Each keyframe with exactly ``bits`` random bits flipped."""
    out = hashes.copy()
    for k in range(len(out)):
        pos = rng.choice(256, bits, replace=False)
        for p in pos:
            out[k, p // 8] ^= np.uint8(1 << (p % 8))
    return out


def clip(rng, cid, hashes, **kw):
    c = make_new_clip(rng, cid, k=len(hashes), **kw)
    c.keyframe_hashes = np.ascontiguousarray(hashes)
    return c


def add(home, clips):
    with RegionStore.open(home.region("us-west"), create=True) as store, store.writer():
        return dict(zip([c.clip_id for c in clips], store.append_clips(clips), strict=True))


def dedup(home, params, full=False):
    with RegionStore.open(home.region("us-west")) as store:
        res = run_dedup(store, params, full=full)
        pairs, groups = load_dedup(store)
    return res, {(p.a, p.b): p for p in pairs}, groups


@pytest.mark.parametrize("method", METHODS)
def test_relations_and_vetoes(home, method):
    rng = np.random.default_rng(1)
    seq1, seq2, seq3, seq4, seq5, seq6, seq7 = (seq(rng) for _ in range(7))
    clips = [
        clip(rng, "src1", seq1), clip(rng, "dup1", noisy(rng, seq1, 8)),
        # partial: the second half of src2 then 10 new keyframes -> offset 5 s
        clip(rng, "src2", seq2), clip(rng, "roll2", np.concatenate([noisy(rng, seq2[10:], 6), seq(rng, 10)])),
        # splice: tail of src3 + head of src4 -> partial with each, src3 and src4 stay apart
        # (src4 was recorded days before the splice's recorded start, which is src3's: a splice
        # carries the time of its first part only, so the time rule must not veto partials)
        clip(rng, "src3", seq3, start_time=DAY0), clip(rng, "src4", seq4, start_time=DAY0 - 3 * DAY),
        clip(rng, "splice", np.concatenate([noisy(rng, seq3[10:], 4), noisy(rng, seq4[:10], 4)]),
             start_time=DAY0 + 5.0),
        # look-alike: same route another day (~60 bits per keyframe)
        clip(rng, "src5", seq5), clip(rng, "alike5", noisy(rng, seq5, 60)),
        # same car, same (static) scene, disjoint times: never the same footage
        clip(rng, "park_a", seq6, drive_id="d6", start_time=1000.0),
        clip(rng, "park_b", noisy(rng, seq6, 4), drive_id="d6", start_time=1000.0 + K / 2.0 + 5.0),
        # the same place recorded by two cars on different days, frames nearly identical: not a
        # duplicate (recorded more than max_recorded_gap_s apart); a copy that keeps the recorded
        # time still is one, and a clip without a recorded time is never vetoed
        clip(rng, "day_a", seq7, drive_id="d7", start_time=DAY0),
        clip(rng, "day_b", noisy(rng, seq7, 6), drive_id="d8", start_time=DAY0 + 2 * DAY),
        clip(rng, "day_a_copy", noisy(rng, seq7, 6), drive_id="upload", start_time=DAY0),
        clip(rng, "nodate", noisy(rng, seq7, 6)),
    ]
    row = add(home, clips)
    res, pairs, groups = dedup(home, METHODS[method])
    assert res.method == method
    by_name = {(a, b): p for (a, b), p in pairs.items()}
    name = {v: k for k, v in row.items()}
    got = {(name[a], name[b]): p.relation for (a, b), p in by_name.items()}
    assert got == {("src1", "dup1"): "duplicate", ("src2", "roll2"): "partial",
                   ("src3", "splice"): "partial", ("src4", "splice"): "partial",
                   ("day_a", "day_a_copy"): "duplicate", ("day_a", "nodate"): "duplicate",
                   ("day_b", "nodate"): "duplicate", ("day_a_copy", "nodate"): "duplicate"}
    roll = by_name[(row["src2"], row["roll2"])]
    assert roll.offset_s == pytest.approx(5.0, abs=0.05)  # from pictures: between keyframes
    assert roll.a_span == (5.0, 9.5) and roll.b_span == (0.0, 4.5)
    spl = by_name[(row["src4"], row["splice"])]
    assert spl.offset_s == pytest.approx(-5.0, abs=0.05) and spl.b_span == (5.0, 9.5)
    # only whole duplicates make groups; the splice links nothing. The undated copy bridges
    # day_b into day_a's group: the time rule vetoes pairs, it cannot split what other pairs join
    assert sorted(groups.values()) == sorted([sorted([row["src1"], row["dup1"]]), sorted(
        [row["day_a"], row["day_b"], row["day_a_copy"], row["nodate"]])])


@pytest.mark.parametrize("method", METHODS)
def test_partial_across_days_needs_an_edit_to_explain_it(home, method):
    """The same place on another day (a wait at the same red light) matches over a stretch;
    recorded days apart, that is only shared footage when one clip is an edit whose other part
    matches a source recorded at its own time -- and that source may be ingested later."""
    rng = np.random.default_rng(3)
    place, before = seq(rng), seq(rng)
    params = METHODS[method]
    row = add(home, [
        clip(rng, "monday", place, drive_id="d1", start_time=DAY0),
        # friday: 10 keyframes of its own, then the same 10 s wait as monday's second half
        clip(rng, "friday", np.concatenate([noisy(rng, before[:10], 4), noisy(rng, place[10:], 8)]),
             drive_id="d2", start_time=DAY0 + 4 * DAY),
    ])
    _, pairs, _ = dedup(home, params)
    assert pairs == {}  # matched, stored, not shown: nothing explains it
    with RegionStore.open(home.region("us-west")) as store:
        assert len(store.pairs()) == 1
    # friday turns out to be an edit: its first part is footage recorded on friday (another
    # upload of it arrives), so its second part can come from monday's recording
    row.update(add(home, [clip(rng, "friday_src", before, drive_id="d2", start_time=DAY0 + 4 * DAY)]))
    res, pairs, _ = dedup(home, params)
    assert res.checked == 1
    assert set(pairs) == {(row["monday"], row["friday"]), (row["friday"], row["friday_src"])}
    assert {p.relation for p in pairs.values()} == {"partial"}
    assert pairs[(row["monday"], row["friday"])].a_span == (5.0, 9.5)
    # turned off, the rule shows the pair without the explanation too
    with RegionStore.open(home.region("us-west")) as store:
        table = store.clip_table()
        stored = [Pair.from_row(r) for r in store.pairs()]
    only = [p for p in stored if p.b != row["friday_src"] and p.a != row["friday_src"]]
    assert explained_partials(only, table, params) == []
    assert explained_partials(only, table, dataclasses.replace(params, max_recorded_gap_s=0)) == only


@pytest.mark.parametrize("method", METHODS)
def test_incremental_joins_and_bridges_groups(home, method):
    rng = np.random.default_rng(2)
    a = seq(rng)
    # c differs from a by 44 bits per keyframe (too far to match); b lies halfway (22 from each)
    c, b = a.copy(), a.copy()
    for k in range(K):
        pos = rng.choice(256, 44, replace=False)
        for i, p in enumerate(pos):
            c[k, p // 8] ^= np.uint8(1 << (p % 8))
            if i < 22:
                b[k, p // 8] ^= np.uint8(1 << (p % 8))
    first = [clip(rng, "a", a), clip(rng, "a2", noisy(rng, a, 4)),
             clip(rng, "c", c), clip(rng, "c2", noisy(rng, c, 4)), clip(rng, "other", seq(rng))]
    row = add(home, first)
    params = METHODS[method]
    res, pairs1, groups = dedup(home, params)
    assert res.checked == 5
    assert sorted(map(sorted, groups.values())) == [sorted([row["a"], row["a2"]]),
                                                   sorted([row["c"], row["c2"]])]
    # a new copy of a joins a's group; only the new clip is queried
    row.update(add(home, [clip(rng, "a3", noisy(rng, a, 6))]))
    res, pairs2, groups = dedup(home, params)
    assert res.checked == 1 and res.new_pairs == 2
    assert {k: v.as_row() for k, v in pairs2.items() if k in pairs1} == {k: v.as_row() for k, v in pairs1.items()}
    assert sorted(map(sorted, groups.values())) == [sorted([row["a"], row["a2"], row["a3"]]),
                                                   sorted([row["c"], row["c2"]])]
    # b duplicates a and c: the two groups become one, with one representative
    row.update(add(home, [clip(rng, "b", b)]))
    res, pairs3, groups = dedup(home, params)
    assert res.checked == 1
    assert all(row["b"] in k for k in set(pairs3) - set(pairs2))
    assert (row["a"], row["b"]) in pairs3 and (row["c"], row["b"]) in pairs3
    assert (row["a"], row["c"]) not in pairs3
    assert list(groups.values()) == [sorted(row[n] for n in ("a", "a2", "a3", "c", "c2", "b"))]
    with RegionStore.open(home.region("us-west")) as store:
        stored = store.groups()
    assert {g for g, _ in stored.values()} == set(groups)
    # a full rerun finds exactly what the incremental runs accumulated
    _, pairs_full, groups_full = dedup(home, params, full=True)
    assert {k: v.relation for k, v in pairs_full.items()} == {k: v.relation for k, v in pairs3.items()}
    assert groups_full == groups


def test_candidates_count_distinct_keyframe_pairs(home):
    rng = np.random.default_rng(3)
    s = seq(rng)
    one = s.copy()
    one[1:] = seq(rng, K - 1)  # shares exactly one keyframe with s
    two = s.copy()
    two[2:] = seq(rng, K - 2)  # shares two
    row = add(home, [clip(rng, "s", s), clip(rng, "one", one), clip(rng, "two", two)])
    with RegionStore.open(home.region("us-west")) as store:
        table = store.clip_table()
        kf = store.keyframes(table.snapshot)
        valid = kf["quality"] >= QUALITY_FLOOR
        for method in ("exact", "lsh"):
            got = candidate_pairs(store, table, kf["hashes"], valid, table.rows, DedupParams(), method)
            # s-one and one-two share one keyframe: not candidates; s-two share two
            assert got.tolist() == [[row["s"], row["two"]]], method
        assert keyframe_clips(table, len(kf["hashes"])).tolist() == np.repeat(table.rows, K).tolist()


def test_black_keyframes_never_match(home):
    rng = np.random.default_rng(4)
    black = np.zeros((K, 32), np.uint8)
    c1 = clip(rng, "b1", black)
    c2 = clip(rng, "b2", black)
    c1.keyframe_quality = np.full(K, 5, np.uint8)
    c2.keyframe_quality = np.full(K, 5, np.uint8)
    add(home, [c1, c2])
    for params in METHODS.values():
        res, pairs, groups = dedup(home, dataclasses.replace(params), full=True)
        assert res.candidates == 0 and not pairs and not groups


def _phash_noisy(rng, phash, bits):
    out = phash.copy()
    for k in range(len(out)):
        for p in rng.choice(64, bits, replace=False):
            out[k, p // 8] ^= np.uint8(1 << (p % 8))
    return out


@pytest.mark.parametrize("method", METHODS)
def test_same_recording_reframed_is_a_duplicate(home, method):
    """A crop-and-rescale copy moves the 256-bit hashes as far as unrelated footage, but it is
    the same recording: same recorded start, a near-identical clip embedding and low-frequency
    pHashes that agree. Each of the three alone is not enough."""
    rng = np.random.default_rng(11)
    src = clip(rng, "src", seq(rng), start_time=DAY0 + 100.0, drive_id="d1", vehicle_id="v1")

    def copy(cid, *, start=DAY0 + 100.0, phash_bits=8, emb_noise=0.02, **kw):
        c = clip(rng, cid, seq(rng), start_time=start, drive_id=f"up-{cid}", vehicle_id="v9", **kw)
        c.keyframe_phash = _phash_noisy(rng, src.keyframe_phash, phash_bits)
        e = src.embedding + emb_noise * rng.standard_normal(src.embedding.shape).astype(np.float32)
        c.embedding = (e / np.linalg.norm(e)).astype(np.float32)
        return c

    rows = add(home, [src, copy("crop"), copy("other-day", start=DAY0 + DAY + 100.0),
                      copy("other-scene", phash_bits=30), copy("other-look", emb_noise=0.5),
                      copy("same-second-other-clip", start=DAY0 + 100.4, phash_bits=9)])
    res, pairs, groups = dedup(home, METHODS[method])
    linked = {frozenset(k) for k, p in pairs.items() if p.relation == "duplicate"}
    r = rows
    assert frozenset((r["src"], r["crop"])) in linked
    assert frozenset((r["src"], r["same-second-other-clip"])) in linked  # within the 1 s window
    assert frozenset((r["src"], r["other-day"])) not in linked
    assert frozenset((r["src"], r["other-scene"])) not in linked
    assert frozenset((r["src"], r["other-look"])) not in linked
    p = pairs[(r["src"], r["crop"])]
    assert p.offset_s == 0.0 and p.matches == K and p.mean_dist > 80  # the 256-bit hashes moved
    # 0.4 s apart: the keyframe shift is 0 or 0.5 s, the recorded times give the exact offset
    assert pairs[(r["src"], r["same-second-other-clip"])].offset_s == pytest.approx(0.4)
    assert "same_recording" in res.stage_seconds
    # off: nothing links them
    with RegionStore.open(home.region("us-west")) as store:
        off = run_dedup(store, dataclasses.replace(METHODS[method], same_recording_s=0.0), full=True)
    assert not any({p.a, p.b} == {r["src"], r["crop"]} for p in off.pairs)


def test_same_recording_needs_agreement_along_the_whole_clip(home):
    """A splice starts like its first source and has its length, but only half of it agrees:
    not a whole duplicate of that source."""
    rng = np.random.default_rng(12)
    src = clip(rng, "src", seq(rng), start_time=DAY0 + 100.0, drive_id="d1")
    splice = clip(rng, "splice", seq(rng), start_time=DAY0 + 100.0, drive_id="up-1")
    splice.keyframe_phash = src.keyframe_phash.copy()
    splice.keyframe_phash[K // 2:] = rng.integers(0, 256, (K - K // 2, 8), dtype=np.uint8)
    splice.embedding = src.embedding.copy()
    rows = add(home, [src, splice])
    _, pairs, _ = dedup(home, DedupParams())
    assert (rows["src"], rows["splice"]) not in pairs


def test_a_whole_copy_does_not_explain_a_short_match_across_days(home):
    """Three keyframes matched days apart span 1 s, within ``edit_overlap_s`` of anything: a
    whole re-upload of one clip shares that very stretch, so it is no edit's other part."""
    rng = np.random.default_rng(13)
    place = seq(rng)
    monday = clip(rng, "monday", place, drive_id="d1", start_time=DAY0)
    own = seq(rng)
    own[8:11] = noisy(rng, place[8:11], 6)  # 3 keyframes of the same place on friday
    friday = clip(rng, "friday", own, drive_id="d2", start_time=DAY0 + 4 * DAY)
    reupload = clip(rng, "friday-reupload", noisy(rng, own, 4), drive_id="up", start_time=DAY0 + 4 * DAY)
    row = add(home, [monday, friday, reupload])
    with RegionStore.open(home.region("us-west")) as store:
        table = store.clip_table()
    short = Pair(row["monday"], row["friday"], "partial", 0.0, (4.0, 5.0), (4.0, 5.0), 3, 20, 30.0)
    whole = Pair(row["friday"], row["friday-reupload"], "duplicate", 0.0, (0.0, 9.5), (0.0, 9.5), 20, 20, 4.0)
    assert explained_partials([short, whole], table, DedupParams()) == [whole]


@pytest.mark.parametrize("method", METHODS)
def test_offset_from_recorded_times_when_they_agree(home, method):
    """Offsets from pictures are estimates between keyframes; recorded start times that agree
    with them give the exact offset, ones that do not are ignored."""
    rng = np.random.default_rng(14)
    base = seq(rng)
    src = clip(rng, "src", base, start_time=DAY0, drive_id="d1")
    tail = np.concatenate([noisy(rng, base[16:], 6), seq(rng, 16)])
    roll = clip(rng, "roll", tail, start_time=DAY0 + 8.3, drive_id="up-1")
    # a camera clock set to another time zone: exactly one hour off
    other = clip(rng, "other-zone", np.concatenate([noisy(rng, base[16:], 6), seq(rng, 16)]),
                 start_time=DAY0 + 3600.0 + 8.0, drive_id="up-2")
    # a clock 17 minutes off matches no time zone: the match contradicts the recorded times
    wrong = clip(rng, "wrong-clock", np.concatenate([noisy(rng, base[16:], 6), seq(rng, 16)]),
                 start_time=DAY0 + 1020.0 + 8.0, drive_id="up-3")
    row = add(home, [src, roll, other, wrong])
    _, pairs, _ = dedup(home, METHODS[method])
    assert pairs[(row["src"], row["roll"])].relation == "partial"
    assert pairs[(row["src"], row["roll"])].offset_s == pytest.approx(8.3)
    assert pairs[(row["src"], row["other-zone"])].offset_s == pytest.approx(8.0, abs=0.05)
    assert (row["src"], row["wrong-clock"]) not in pairs


@pytest.mark.parametrize("method", METHODS)
def test_recorded_times_must_agree_with_the_match(home, method):
    """Look-alike footage at another time: the next clip of a drive on an empty night road (10 s
    on) copied by an uploader, or another car on the same road 11 minutes later, matches frame by
    frame, but B's recorded start is not A's start + offset (nor a time-zone shift of it). Such a
    whole match is never a duplicate; a copy whose clock is a whole time zone off still is, and
    turning the rule off (tolerance 0) restores the old behaviour."""
    rng = np.random.default_rng(21)
    road = seq(rng)
    row = add(home, [
        clip(rng, "night", road, drive_id="d1", start_time=DAY0),
        # an upload of the *next* clip of the same drive: recorded 10 s later, looks the same
        clip(rng, "next-upload", noisy(rng, road, 8), drive_id="up-1", start_time=DAY0 + 10.0),
        clip(rng, "later-car", noisy(rng, road, 8), drive_id="d2", start_time=DAY0 + 660.0),
        clip(rng, "zone-copy", noisy(rng, road, 8), drive_id="up-2", start_time=DAY0 + 2 * 3600.0),
    ])
    _, pairs, _ = dedup(home, METHODS[method])
    names = {v: k for k, v in row.items()}
    got = {tuple(sorted((names[a], names[b]))) for a, b in pairs}
    assert got == {("night", "zone-copy")}
    params = dataclasses.replace(METHODS[method], recorded_time_tolerance_s=0.0)
    _, pairs, _ = dedup(home, params, full=True)
    assert len(pairs) == 6  # every pair of the four look-alikes


def test_recorded_contradicts():
    p = DedupParams()
    sa = np.array([DAY0] * 6)
    sb = sa + np.array([5.0, 6.5, 3600.0 + 5.0, 10.0, 7 * 3600.0, 5.0])
    off = np.array([5.0, 5.0, 5.0, 0.0, 0.0, 5.0])
    sb[5] = np.nan  # unknown start: no contradiction
    got = recorded_contradicts(sa, np.full(6, 10.0), sb, np.full(6, 10.0), off, p)
    assert got.tolist() == [False, False, False, True, True, False]


def test_offsets_refined_through_a_shared_source(home):
    """A trim (A) and a splice (B) of the same source C match directly over 4 keyframes of a
    scene that barely changes, 1 s off; both match C over longer stretches, and the path
    through C gives the offset. Weaker legs, legs using different parts of C, a path far from
    the direct match, or an offset the recorded times already give, are left alone."""
    rng = np.random.default_rng(30)
    row = add(home, [clip(rng, n, seq(rng)) for n in ("trim", "splice", "source", "other")])
    with RegionStore.open(home.region("us-west")) as store:
        table = store.clip_table()
    a, b, c, o = row["trim"], row["splice"], row["source"], row["other"]
    direct = Pair(a, b, "partial", -6.5, (0.5, 2.0), (7.0, 8.5), 4, 5, 28.0)
    a_c = Pair(a, c, "partial", -2.6, (0.0, 3.5), (2.5, 6.0), 8, 8, 10.0)  # C's t=0 at A's -2.6
    c_b = Pair(c, b, "partial", -5.0, (0.5, 3.5), (5.5, 8.5), 7, 8, 9.0)  # B's t=0 at C's -5.0
    got = {(p.a, p.b): p for p in refine_offsets([direct, a_c, c_b], table, DedupParams())}
    assert got[(a, b)].offset_s == pytest.approx(-7.6)  # -2.6 + -5.0
    assert got[(a, b)].a_span == direct.a_span and got[(a, c)] == a_c and got[(c, b)] == c_b
    # the legs must be better supported than the direct match
    weak = dataclasses.replace(c_b, matches=4)
    assert refine_offsets([direct, a_c, weak], table, DedupParams())[0] == direct
    # ... use the same part of C
    elsewhere = dataclasses.replace(c_b, a_span=(6.5, 9.5))
    assert refine_offsets([direct, a_c, elsewhere], table, DedupParams())[0] == direct
    # ... and agree with the direct match (a path 3 s away is another alignment, not a sharper one)
    far = dataclasses.replace(c_b, offset_s=-7.0)
    assert refine_offsets([direct, a_c, far], table, DedupParams())[0] == direct
    # off
    off = DedupParams(offset_refine_max_s=0.0)
    assert refine_offsets([direct, a_c, c_b], table, off)[0] == direct
    # unrelated pairs pass through untouched
    other = Pair(c, o, "duplicate", 0.0, (0.0, 9.5), (0.0, 9.5), 20, 20, 3.0)
    assert refine_offsets([other], table, DedupParams()) == [other]


def test_exact_recorded_offsets_are_not_refined(home):
    rng = np.random.default_rng(31)
    row = add(home, [clip(rng, "a", seq(rng), start_time=DAY0), clip(rng, "b", seq(rng), start_time=DAY0 - 6.3),
                     clip(rng, "c", seq(rng))])
    with RegionStore.open(home.region("us-west")) as store:
        table = store.clip_table()
    a, b, c = row["a"], row["b"], row["c"]
    direct = Pair(a, b, "partial", -6.3, (0.5, 2.0), (6.8, 8.3), 4, 5, 28.0)  # = the recorded difference
    a_c = Pair(a, c, "partial", -2.6, (0.0, 3.5), (2.5, 6.0), 8, 8, 10.0)
    c_b = Pair(c, b, "partial", -4.5, (0.5, 3.5), (5.0, 8.0), 7, 8, 9.0)
    assert refine_offsets([direct, a_c, c_b], table, DedupParams())[0] == direct


def test_partial_overlaps_extend_to_whole_duplicates():
    """A splice B overlaps source A over A's 4..10 s; A2 is a whole (cropped) copy of A starting
    0.5 s into it, A3 a copy of A2. B overlaps A2 and A3 the same way, offsets composed along
    the copies; pairs already known, and pairs inside one duplicate group, are not invented."""
    dup1 = Pair(1, 2, "duplicate", 0.5, (0.5, 10.0), (0.0, 9.5), 18, 19, 10.0)  # A2 t=0 at A's 0.5 s
    dup2 = Pair(2, 4, "duplicate", 0.0, (0.0, 9.5), (0.0, 9.5), 18, 19, 10.0)  # A3 = A2
    part = Pair(1, 3, "partial", 4.0, (4.0, 10.0), (0.0, 6.0), 12, 13, 20.0)  # B t=0 at A's 4 s
    got = {(p.a, p.b): p for p in partials_through_copies([dup1, dup2, part])}
    assert set(got) == {(1, 2), (2, 4), (1, 3), (2, 3), (3, 4)}
    assert got[(2, 3)].relation == "partial" and got[(2, 3)].offset_s == pytest.approx(3.5)
    assert got[(2, 3)].a_span == pytest.approx((3.5, 9.5)) and got[(2, 3)].b_span == (0.0, 6.0)
    # row order flips the direction: (3, 4) carries A3's t=0 in B's time
    assert got[(3, 4)].offset_s == pytest.approx(-3.5) and got[(3, 4)].b_span == pytest.approx((3.5, 9.5))
    # an existing pair is kept as it is, and nothing is invented without a partial
    known = Pair(2, 3, "partial", 3.0, (3.0, 9.0), (0.0, 6.0), 10, 11, 22.0)
    got = {(p.a, p.b): p for p in partials_through_copies([dup1, part, known])}
    assert got[(2, 3)] is known
    assert partials_through_copies([dup1, dup2]) == [dup1, dup2]
    # partials from two members of one group: none invented between the group's own members
    part2 = Pair(2, 5, "partial", 1.0, (1.0, 9.5), (0.0, 8.5), 12, 13, 20.0)
    got = {(p.a, p.b): p for p in partials_through_copies([dup1, part, part2])}
    assert got[(1, 2)].relation == "duplicate" and set(got) >= {(1, 5), (2, 3)}


def test_offsets_confirmed_by_recorded_times_through_a_shared_source(home):
    """A splice (B) and a trim (A) of one source C, matched directly over 8 keyframes of a scene
    where every shift within 2 s looks alike, 1.8 s off. Both legs through C are exact (their
    recorded start times give their offsets) and A and B's own recorded times differ by exactly
    the composed offset: three clocks agree, and that offset replaces the direct one however far
    it was, even when the legs are no better supported than the direct match."""
    rng = np.random.default_rng(32)
    c0 = DAY0
    row = add(home, [clip(rng, "source", seq(rng), start_time=c0), clip(rng, "trim", seq(rng), start_time=c0 + 3.3),
                     clip(rng, "splice", seq(rng), start_time=c0 + 1.0)])
    with RegionStore.open(home.region("us-west")) as store:
        table = store.clip_table()
    c, a, b = row["source"], row["trim"], row["splice"]
    c_a = Pair(c, a, "partial", 3.3, (3.5, 7.0), (0.0, 3.5), 8, 8, 9.0)  # exact: recorded 3.3 apart
    c_b = Pair(c, b, "partial", 1.0, (1.0, 6.0), (0.0, 5.0), 11, 11, 9.0)  # exact
    direct = Pair(a, b, "partial", -0.5, (0.0, 3.5), (0.5, 4.0), 8, 8, 20.0)  # recorded: -2.3
    got = {(p.a, p.b): p for p in refine_offsets([c_a, c_b, direct], table, DedupParams())}
    assert got[(a, b)].offset_s == pytest.approx(-2.3)
    # a leg whose offset the recorded times do not confirm confirms nothing (and is too weak to
    # refine by support)
    loose = dataclasses.replace(c_a, offset_s=3.0)
    assert refine_offsets([loose, c_b, direct], table, DedupParams())[2] == direct
    # legs that use different stretches of C are not the same footage
    apart = dataclasses.replace(c_b, a_span=(7.5, 9.5))
    assert refine_offsets([c_a, apart, direct], table, DedupParams())[2] == direct


def test_the_source_of_a_splice_is_no_edit_and_lookalikes_of_its_second_part_drop(home):
    """Across days only an edit explains shared footage, and an edit's own-time part is its
    *first* (a splice carries its first part's recorded time). The original a splice's first part
    was cut from shares a stretch of its *middle* with the splice: that makes it no edit, so its
    look-alike on another day stays hidden. And one stretch of an edit is one piece of footage:
    of the suspects covering the splice's second part, the best-supported stands and an
    unrelated, weaker one (the same place on yet another day) drops, unless it is a copy of the
    true source."""
    rng = np.random.default_rng(33)
    names = ("orig", "splice", "orig_lookalike", "second_src", "second_lookalike", "second_copy")
    times = (DAY0, DAY0 + 1.5, DAY0 + 9 * DAY, DAY0 + 3 * DAY, DAY0 + 20 * DAY, DAY0 + 3 * DAY)
    row = add(home, [clip(rng, n, seq(rng), start_time=t, drive_id=n) for n, t in zip(names, times, strict=True)])
    with RegionStore.open(home.region("us-west")) as store:
        table = store.clip_table()
    o, s, ol, s2, sl, sc = (row[n] for n in names)
    first = Pair(o, s, "partial", 1.5, (1.5, 6.5), (0.0, 5.0), 11, 11, 9.0)  # splice's first part, own time
    second = Pair(s, s2, "partial", 5.5, (5.5, 9.5), (0.0, 4.0), 9, 9, 9.0)  # its second part, 3 days off
    orig_far = Pair(o, ol, "partial", 0.0, (7.0, 9.5), (7.0, 9.5), 6, 6, 20.0)  # after o's shared middle
    weak = Pair(s, sl, "partial", 6.0, (6.0, 8.0), (0.0, 2.0), 5, 5, 25.0)  # same stretch, another day
    pairs = [first, second, orig_far, weak]
    assert explained_partials(pairs, table, DedupParams()) == [first, second]
    # a whole copy of the true second source is the same footage: it stays
    copy = Pair(s2, sc, "duplicate", 0.0, (0.0, 9.5), (0.0, 9.5), 20, 20, 3.0)
    via_copy = Pair(s, sc, "partial", 6.0, (6.0, 8.0), (0.5, 2.5), 5, 5, 25.0)
    assert explained_partials([first, second, copy, via_copy], table, DedupParams()) == [first, second, copy,
                                                                                        via_copy]
