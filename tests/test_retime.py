"""Re-timed copies (the same frames written at another rate) are related with their rate."""

from __future__ import annotations

import numpy as np
import pytest

from engine.matching.dedup import DedupParams, load_dedup, retime_rates, run_dedup
from engine.store.region import RegionStore
from tests.conftest import make_new_clip


def walk(rng: np.random.Generator, n: int) -> np.ndarray:
    """A drive's keyframe hashes: each keyframe ~60 bits from the previous one."""
    out = np.empty((n, 32), np.uint8)
    out[0] = rng.integers(0, 256, 32, dtype=np.uint8)
    for k in range(1, n):
        bits = np.unpackbits(out[k - 1])
        flip = rng.choice(256, 60, replace=False)
        bits[flip] ^= 1
        out[k] = np.packbits(bits)
    return out


def noisy(rng: np.random.Generator, hashes: np.ndarray, bits: int = 6) -> np.ndarray:
    out = hashes.copy()
    for k in range(len(out)):
        b = np.unpackbits(out[k])
        b[rng.choice(256, bits, replace=False)] ^= 1
        out[k] = np.packbits(b)
    return out


def retimed(rng, source: np.ndarray, rate: float, start: int = 0, n: int | None = None) -> np.ndarray:
    """Keyframe j of the copy shows the source at keyframe start + rate * j (nearest)."""
    n = n or int((len(source) - start) / rate)
    idx = np.minimum(np.rint(start + rate * np.arange(n)).astype(int), len(source) - 1)
    return noisy(rng, source[idx])


def clip(rng, cid: str, hashes: np.ndarray):
    c = make_new_clip(rng, cid, k=len(hashes))
    c.keyframe_hashes = np.ascontiguousarray(hashes)
    return c


def test_rates_grid_holds_one_and_the_range():
    r = retime_rates(DedupParams())
    assert 1.0 in r and r.min() == pytest.approx(0.4) and r.max() <= 2.5
    assert np.all(np.diff(np.log(r)) <= np.log(1.02) + 1e-9)


@pytest.mark.parametrize("rate", [0.5, 25 / 30, 1.2, 2.0])
def test_a_retimed_copy_is_related_with_its_rate_and_offset(home, rate):
    rng = np.random.default_rng(int(rate * 100))
    src = walk(rng, 40)
    copy = retimed(rng, src, rate, start=6, n=int(24 / rate) if rate < 1 else 16)
    plain = noisy(rng, src[10:30])
    clips = [clip(rng, "src", src), clip(rng, "copy", copy), clip(rng, "plain", plain),
             clip(rng, "other", walk(rng, 30))]
    with RegionStore.open(home.region("us-west"), create=True) as store, store.writer():
        rows = dict(zip([c.clip_id for c in clips], store.append_clips(clips), strict=True))
    with RegionStore.open(home.region("us-west")) as store:
        run_dedup(store, DedupParams(), full=True)
        pairs, _ = load_dedup(store)
    by = {frozenset((p.a, p.b)): p for p in pairs}
    p = by[frozenset((rows["src"], rows["copy"]))]
    assert p.a == rows["src"]
    assert p.rate == pytest.approx(rate, rel=0.03)
    assert p.offset_s == pytest.approx(3.0, abs=0.5)  # the copy starts 6 keyframes (3 s) in
    q = by[frozenset((rows["src"], rows["plain"]))]
    assert q.rate == 1.0 and q.offset_s == pytest.approx(5.0, abs=0.05)
    assert frozenset((rows["src"], rows["other"])) not in by


def test_rate_survives_the_store_and_an_older_catalog_reads_rate_one(home):
    rng = np.random.default_rng(3)
    src = walk(rng, 40)
    clips = [clip(rng, "src", src), clip(rng, "slow", retimed(rng, src, 0.5, n=60))]
    with RegionStore.open(home.region("us-west"), create=True) as store, store.writer():
        store.append_clips(clips)
    with RegionStore.open(home.region("us-west")) as store:
        run_dedup(store, DedupParams(), full=True)
        (row,) = store.pairs()
        assert row[11] == pytest.approx(0.5, rel=0.03)
        store.db.execute("ALTER TABLE pairs DROP COLUMN rate")
        (old,) = store.pairs()
        assert len(old) == 13 and old[11] == 1.0 and old[12] == 0
