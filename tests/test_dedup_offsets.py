"""Offsets finer than the keyframe step: a copy whose footage starts between two of the
source's keyframes is placed between them, at rate 1 and re-timed, and held pictures are
placed at the middle of their hold."""

from __future__ import annotations

import numpy as np
import pytest

from engine.matching.dedup import DedupParams, load_dedup, run_dedup, subkeyframe_shift
from engine.store.region import RegionStore
from tests.test_retime import clip, noisy, walk


def between(source: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Keyframes at fractional source positions ``at``: from the keyframe before, the share
    ``at - floor(at)`` of the bits in which it differs from the next one is flipped (hash
    distance grows linearly with the time between frames, as for tent-sampled keyframes)."""
    out = np.empty((len(at), source.shape[1]), np.uint8)
    for k, x in enumerate(at):
        i = min(int(np.floor(x)), len(source) - 2)
        lo, hi = np.unpackbits(source[i]), np.unpackbits(source[i + 1])
        diff = np.flatnonzero(lo != hi)
        flip = diff[: int(round((x - i) * len(diff)))]
        lo[flip] = hi[flip]
        out[k] = np.packbits(lo)
    return out


def relate(home, clips) -> dict:
    with RegionStore.open(home.region("us-west"), create=True) as store, store.writer():
        rows = dict(zip([c.clip_id for c in clips], store.append_clips(clips), strict=True))
    with RegionStore.open(home.region("us-west")) as store:
        run_dedup(store, DedupParams(), full=True)
        pairs, _ = load_dedup(store)
    return {frozenset((p.a, p.b)): p for p in pairs}, rows


def test_subkeyframe_shift_finds_the_fraction_between_keyframes():
    rng = np.random.default_rng(0)
    src = walk(rng, 30)
    for frac in (-0.4, -0.2, 0.0, 0.25, 0.45):
        copy = between(src, 8 + frac + np.arange(12))
        got = subkeyframe_shift(np.concatenate([src, copy]), np.ones(42, bool), np.array([0]), np.array([30]),
                                np.array([30]), np.array([12]), np.array([8]), np.array([8]), np.array([19]))
        assert got[0] == pytest.approx(frac, abs=0.05)
    # no keyframes in the span: no correction
    none = subkeyframe_shift(src, np.zeros(30, bool), np.array([0]), np.array([15]), np.array([15]),
                             np.array([15]), np.array([0]), np.array([0]), np.array([14]))
    assert none[0] == 0.0


@pytest.mark.parametrize("frac", [0.3, 0.7])
def test_a_copy_cut_between_keyframes_gets_the_offset_between_them(home, frac):
    rng = np.random.default_rng(int(frac * 10))
    src = walk(rng, 40)
    copy = noisy(rng, between(src, 10 + frac + np.arange(16)), bits=4)
    pairs, rows = relate(home, [clip(rng, "src", src), clip(rng, "copy", copy)])
    p = pairs[frozenset((rows["src"], rows["copy"]))]
    assert p.rate == 1.0
    assert p.offset_s == pytest.approx((10 + frac) / 2.0, abs=0.08)


def test_a_retimed_copy_between_keyframes_and_a_held_source(home):
    rng = np.random.default_rng(5)
    src = walk(rng, 40)
    # half speed, footage from 6.3 keyframes in: every copy keyframe between two of the source's
    slow = noisy(rng, between(src, 6.3 + 0.5 * np.arange(48)), bits=4)
    # a source that holds each picture for two keyframes, copied at rate 1 from keyframe 12
    held = np.repeat(walk(rng, 20), 2, axis=0)
    copy = noisy(rng, held[12:32], bits=4)
    # ... and at half speed from keyframe 8: the copy holds each picture for four keyframes
    held_slow = noisy(rng, held[8 + np.arange(56) // 2], bits=4)
    pairs, rows = relate(home, [clip(rng, "src", src), clip(rng, "slow", slow), clip(rng, "held", held),
                                clip(rng, "copy", copy), clip(rng, "held-slow", held_slow)])
    p = pairs[frozenset((rows["src"], rows["slow"]))]
    assert p.rate == pytest.approx(0.5, rel=0.02)
    assert p.offset_s == pytest.approx(6.3 / 2.0, abs=0.15)
    q = pairs[frozenset((rows["held"], rows["copy"]))]
    assert q.offset_s == pytest.approx(6.0, abs=0.3)
    h = pairs[frozenset((rows["held"], rows["held-slow"]))]
    assert h.rate == pytest.approx(0.5, rel=0.02)
    assert h.offset_s == pytest.approx(4.0, abs=0.25)


def drift(rng: np.random.Generator, n: int, step_bits: int) -> np.ndarray:
    """Keyframe hashes of footage that changes ``step_bits`` bits a keyframe."""
    out = np.empty((n, 32), np.uint8)
    out[0] = rng.integers(0, 256, 32, dtype=np.uint8)
    for k in range(1, n):
        bits = np.unpackbits(out[k - 1])
        bits[rng.choice(256, step_bits, replace=False)] ^= 1
        out[k] = np.packbits(bits)
    return out


def test_a_retimed_copy_of_a_slow_scene_gets_its_rate_though_rate_one_matches_densely(home):
    """30 fps written at 25 fps: every copy keyframe matches the source within the match
    radius at rate 1 too (a dense whole duplicate), yet the re-timed line is far closer."""
    rng = np.random.default_rng(11)
    src = drift(rng, 24, 16)
    copy = noisy(rng, between(src, 1.4 + 25 / 30 * np.arange(24)), bits=4)
    # held footage (each picture on two keyframes): within a hold every shift matches alike, so
    # a dense duplicate at rate 1 stays at rate 1 even where a slanted line runs a little closer
    # (a decoder that drops frames of a 1-fps source lengthens some holds, which looks stretched)
    held = np.repeat(drift(rng, 12, 16), 2, axis=0)
    stretched = noisy(rng, held[np.rint(0.4 + 25 / 30 * np.arange(24)).astype(int)], bits=2)
    pairs, rows = relate(home, [clip(rng, "src", src), clip(rng, "copy", copy), clip(rng, "held", held),
                                clip(rng, "stretched", stretched)])
    p = pairs[frozenset((rows["src"], rows["copy"]))]
    assert p.rate == pytest.approx(25 / 30, rel=0.02)
    assert p.offset_s == pytest.approx(1.4 / 2.0, abs=0.15)
    q = pairs[frozenset((rows["held"], rows["stretched"]))]
    assert q.rate == 1.0 and q.relation == "duplicate"


def test_a_piece_of_a_slow_held_recording_stays_at_rate_one(home):
    """A re-encoded piece of a long recording whose pictures are held (a 1-fps source) and
    barely change: dense at rate 1 over the whole piece, it is a partial at rate 1 and its own
    offset, however a slanted line through the holds fits."""
    rng = np.random.default_rng(13)
    held = np.repeat(drift(rng, 60, 6), 4, axis=0)[:200]  # each picture on four keyframes
    piece = noisy(rng, held[120:135], bits=3)
    pairs, rows = relate(home, [clip(rng, "held", held), clip(rng, "piece", piece)])
    p = pairs[frozenset((rows["held"], rows["piece"]))]
    assert p.relation == "partial" and p.rate == 1.0
    assert p.offset_s == pytest.approx(60.0, abs=0.5)


def test_a_retimed_copy_of_fast_footage_is_found(home):
    """Fast footage: copy keyframes fall between source keyframes ~60 bits apart, so the
    re-timed line runs 30-40 bits from the source on average; it is still the closest line."""
    rng = np.random.default_rng(12)
    src = walk(rng, 44)
    copy = noisy(rng, between(src, 10.3 + 25 / 30 * np.arange(24)), bits=18)
    pairs, rows = relate(home, [clip(rng, "src", src), clip(rng, "copy", copy)])
    p = pairs[frozenset((rows["src"], rows["copy"]))]
    assert 30 < p.mean_dist <= 40
    assert p.rate == pytest.approx(25 / 30, rel=0.02)
    assert p.offset_s == pytest.approx(10.3 / 2.0, abs=0.25)
