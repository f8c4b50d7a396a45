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
