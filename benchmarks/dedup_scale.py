"""Dedup at fleet scale, no video decoding: synthetic keyframe-hash fleets with planted truth.

``python -m benchmarks.dedup_scale --sizes 10000,30000,100000,300000 [--json out.json]`` writes
each fleet straight into a fresh region store (``RegionStore.append_clips``), brings the clip
embedding index up to date as ingest's last step does (timed on its own: ``index``), runs a full
:func:`engine.matching.dedup.run_dedup` in a fresh child process (so its peak RSS is the dedup's own), then
adds ``--add`` more clips (default 1,000), updates the index and runs the incremental dedup; it
prints the growth table and writes JSON. ``--measure HOME`` prints the distance statistics of a demo home
(``clipdex demo --home HOME``) that the generator's constants come from.

The generator (all distances in bits of 256):

* **Drives** are random walks in hash space: every bit has a global bias (Beta(7.5, 7.5): two
  unrelated keyframes differ by ~120 bits, as measured), each drive skews it (far-apart
  keyframes of one drive differ by ~102), and from one keyframe to the next (0.5 s) each bit is
  redrawn with probability 0.686 (lag 1 ~70 bits, lag 2 ~91, lag 8 ~102: measured 71, 91, 102).
  Drives are cut into back-to-back *original* clips of 16-24 keyframes.
* **Whole copies** (12 %): an original's keyframes with per-keyframe bit flips; the pair's mean
  distance is drawn from the fixture variants' spread (30 % 0-5 bits: exact, contrast, grey;
  35 % 5-15: re-encode, blur, gamma, brightness; 20 % 15-25: downscale, letterbox, timestamp
  bar; 15 % 25-35: phase-shifted and frame-rate copies), each keyframe Binomial around it, and
  4 % of keyframes are outliers (+25-60 bits, e.g. a dropped frame).
* **Pre/post-roll re-uploads** (6 %): a window of the same drive shifted so it overlaps the
  source by 6 keyframes to 70 % of it (partial), same noise.
* **Splices** (2 %): the tail of one original + the head of another drive's original (>= 6
  keyframes of each): partial with both, and the two sources must never merge.
* **Look-alikes** (10 %): the same route on another day: an original's keyframes at a pair mean
  of 45-80 bits (measured hard negatives: mean >= 55, 5th percentile 82) on their own timeline.
* 1.5 % of keyframes are black (quality 5, all-zero hash): never indexed nor matched.

Truth: every clip is one or two segments on a timeline (a drive or a look-alike's own); two
clips overlap by the keyframes their segments share. *Planted* pairs (copy-source, roll-source,
splice-source) must be found; a reported pair of clips with no overlap is a false positive;
planted negatives (look-alike-source, splice source-source, adjacent originals of one drive)
must never share a group. Exact agreement: for a random subset of clips, candidates by brute
force (``kernels.hamming_within`` over every keyframe) are verified like the run's and compared
with the pairs the run stored for those clips.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

HASH_BYTES = 32
BIT_BETA = 7.5  # global bit bias ~ Beta(a, a): unrelated keyframes ~120 bits apart
DRIVE_SKEW = 0.387  # drive bias = (1 - s) * global + s * coin: far same-drive keyframes ~102 bits
REDRAW = 0.686  # per-bit redraw probability per 0.5 s step: lag-1 keyframes ~70 bits apart
ROLL_PAD = 14  # keyframes of drive timeline before/after its uploaded originals (for rolls)
MIN_OVERLAP = 6  # planted partial overlaps are at least this many keyframes
COPY_MEAN_BITS = ((0.30, 0.0, 5.0), (0.35, 5.0, 15.0), (0.20, 15.0, 25.0), (0.15, 25.0, 35.0))
OUTLIER_RATE, OUTLIER_BITS = 0.04, (25.0, 60.0)
LOOKALIKE_BITS = (45.0, 80.0)
BLACK_RATE = 0.015
MIX = {"whole": 0.12, "roll": 0.06, "splice": 0.02, "lookalike": 0.10}  # rest: originals


@dataclass
class SynthFleet:
    """A generated region: clips in ingest order, their keyframes and the planted truth."""

    hashes: np.ndarray  # uint8[M, 32], clips' keyframes back to back
    quality: np.ndarray  # uint8[M]
    kf_start: np.ndarray  # int64[C]
    kf_count: np.ndarray  # int64[C]
    kind: np.ndarray  # <U9[C]: original | whole | roll | splice | lookalike
    drive: np.ndarray  # int64[C]: drive id (-1: unknown uploader)
    start_time: np.ndarray  # float64[C] (NaN: unknown)
    seg_tl: np.ndarray  # int64[C, 2]: timeline of each segment (-1: none)
    seg_lo: np.ndarray  # int64[C, 2]: segment [lo, hi) in timeline keyframes
    seg_hi: np.ndarray
    planted: np.ndarray  # int64[P, 2]: (clip, source clip) pairs that must be found
    planted_kind: np.ndarray  # <U6[P]: whole | roll | splice
    negatives: np.ndarray  # int64[Q, 2]: pairs that must never share a group

    def __len__(self) -> int:
        return len(self.kf_count)

    def overlap(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Keyframes shared by clips ``a[k]`` and ``b[k]`` on their timelines."""
        out = np.zeros(len(a), np.int64)
        for s in range(2):
            for r in range(2):
                ta, tb = self.seg_tl[a, s], self.seg_tl[b, r]
                ov = np.minimum(self.seg_hi[a, s], self.seg_hi[b, r]) - np.maximum(self.seg_lo[a, s],
                                                                                   self.seg_lo[b, r])
                out += np.where((ta >= 0) & (ta == tb), np.maximum(ov, 0), 0)
        return out


def _bits_to_codes(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits, axis=1)


def _flip(codes: np.ndarray, mean_bits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip each bit of row k with probability mean_bits[k] / 256 (chunked: bounded memory)."""
    out = codes.copy()
    for lo in range(0, len(codes), 65536):
        hi = min(len(codes), lo + 65536)
        p = (mean_bits[lo:hi] / 256.0).astype(np.float32)[:, None]
        out[lo:hi] ^= _bits_to_codes(rng.random((hi - lo, 256), dtype=np.float32) < p)
    return out


def _copy_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-pair mean distance of ``n`` copies (the fixture variants' spread)."""
    w = np.array([c[0] for c in COPY_MEAN_BITS])
    k = rng.choice(len(w), n, p=w / w.sum())
    lo = np.array([c[1] for c in COPY_MEAN_BITS])[k]
    hi = np.array([c[2] for c in COPY_MEAN_BITS])[k]
    return rng.uniform(lo, hi)


def _kf_noise(pair_mean: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mean = np.repeat(pair_mean, counts)
    out = rng.random(len(mean)) < OUTLIER_RATE
    return mean + np.where(out, rng.uniform(*OUTLIER_BITS, len(mean)), 0.0)


def make_fleet(n_clips: int, seed: int = 0) -> SynthFleet:
    """A region of ``n_clips`` clips (~20 keyframes each) with planted truth (module doc)."""
    rng = np.random.default_rng(seed)
    n_kind = {k: int(round(v * n_clips)) for k, v in MIX.items()}
    n_orig = n_clips - sum(n_kind.values())
    # ---- drives and originals (timeline = drive)
    sizes = []
    while sum(sizes) < n_orig:
        sizes.append(int(rng.integers(1, 13)))
    sizes[-1] -= sum(sizes) - n_orig
    n_drives = len(sizes)
    o_len = rng.integers(16, 25, n_orig).astype(np.int64)
    o_drive = np.repeat(np.arange(n_drives), sizes)
    drive_first = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    # position of each original in its drive's timeline (after ROLL_PAD keyframes)
    csum = np.cumsum(o_len) - o_len
    o_pos = ROLL_PAD + csum - csum[drive_first][o_drive]
    drive_len = np.zeros(n_drives, np.int64)
    np.add.at(drive_len, o_drive, o_len)
    drive_len += 2 * ROLL_PAD
    drive_row0 = np.concatenate([[0], np.cumsum(drive_len)[:-1]]).astype(np.int64)
    world = _walk(drive_len, rng)
    drive_t0 = rng.uniform(1.6e9, 1.7e9, n_drives)

    clips_tl, clips_lo, clips_n, kinds, drives, starts = [], [], [], [], [], []
    src_rows: list[np.ndarray] = []  # world rows of each clip's keyframes (-1 segment marker)
    noise: list[np.ndarray] = []

    def add(kind, tl, lo, n, drive, start, rows, kf_noise):
        kinds.append(kind)
        clips_tl.append(tl)
        clips_lo.append(lo)
        clips_n.append(n)
        drives.append(drive)
        starts.append(start)
        src_rows.append(rows)
        noise.append(kf_noise)

    for c in range(n_orig):
        d = o_drive[c]
        add("original", [d, -1], [o_pos[c], 0], [o_len[c], 0], d, drive_t0[d] + o_pos[c] / 2.0,
            drive_row0[d] + o_pos[c] + np.arange(o_len[c]), np.zeros(o_len[c]))
    planted, planted_kind, negatives = [], [], []
    # adjacent originals of one drive: same car, disjoint times
    adj = np.flatnonzero(o_drive[1:] == o_drive[:-1])
    negatives += list(zip(adj.tolist(), (adj + 1).tolist(), strict=True))
    # ---- whole copies
    src = rng.integers(0, n_orig, n_kind["whole"])
    means = _copy_noise(len(src), rng)
    same_uploader = rng.random(len(src)) < 0.5
    for s, mu, same in zip(src.tolist(), means.tolist(), same_uploader.tolist(), strict=True):
        d = o_drive[s]
        planted.append((len(kinds), s))
        planted_kind.append("whole")
        add("whole", [d, -1], [o_pos[s], 0], [o_len[s], 0], d if same else -1,
            drive_t0[d] + o_pos[s] / 2.0 if same else np.nan, src_rows[s],
            _kf_noise(np.array([mu]), np.array([o_len[s]]), rng))
    # ---- pre/post-roll re-uploads: same drive, window overlapping the source partially
    src = rng.integers(0, n_orig, n_kind["roll"])
    means = _copy_noise(len(src), rng)
    for s, mu in zip(src.tolist(), means.tolist(), strict=True):
        d, n = o_drive[s], int(o_len[s])
        ov = int(rng.integers(MIN_OVERLAP, max(MIN_OVERLAP, int(0.7 * n)) + 1))
        shift = (n - ov) * (1 if rng.random() < 0.5 else -1)
        shift = int(np.clip(shift, -ROLL_PAD, ROLL_PAD))
        lo = int(o_pos[s]) + shift
        planted.append((len(kinds), s))
        planted_kind.append("roll")
        add("roll", [d, -1], [lo, 0], [n, 0], d, drive_t0[d] + lo / 2.0,
            drive_row0[d] + lo + np.arange(n), _kf_noise(np.array([mu]), np.array([n]), rng))
    # ---- splices: tail of one original + head of another drive's original
    a_src = rng.integers(0, n_orig, n_kind["splice"])
    b_src = rng.integers(0, n_orig, n_kind["splice"])
    means = _copy_noise(len(a_src), rng)
    for a, b, mu in zip(a_src.tolist(), b_src.tolist(), means.tolist(), strict=True):
        if o_drive[a] == o_drive[b]:
            b = (b + sizes[o_drive[b]]) % n_orig
            if o_drive[a] == o_drive[b]:
                continue
        na = int(rng.integers(MIN_OVERLAP, o_len[a] - 2))
        nb = int(rng.integers(MIN_OVERLAP, o_len[b] - 2))
        la = int(o_pos[a] + o_len[a] - na)
        rows = np.concatenate([drive_row0[o_drive[a]] + la + np.arange(na),
                               drive_row0[o_drive[b]] + o_pos[b] + np.arange(nb)])
        c = len(kinds)
        planted += [(c, a), (c, b)]
        planted_kind += ["splice", "splice"]
        negatives.append((a, b))
        add("splice", [o_drive[a], o_drive[b]], [la, o_pos[b]], [na, nb], -1, np.nan, rows,
            _kf_noise(np.array([mu]), np.array([na + nb]), rng))
    # ---- look-alikes: same route, another day (own timeline)
    src = rng.integers(0, n_orig, n_kind["lookalike"])
    means = rng.uniform(*LOOKALIKE_BITS, len(src))
    for k, (s, mu) in enumerate(zip(src.tolist(), means.tolist(), strict=True)):
        negatives.append((len(kinds), s))
        add("lookalike", [n_drives + k, -1], [0, 0], [o_len[s], 0], n_drives + k,
            drive_t0[o_drive[s]] + 86400.0 * rng.integers(1, 30), src_rows[s],
            np.full(o_len[s], mu))
    # ---- ingest order: shuffled, so copies arrive before or after their sources
    n = len(kinds)
    order = rng.permutation(n)
    inv = np.empty(n, np.int64)
    inv[order] = np.arange(n)
    counts = np.array([len(src_rows[c]) for c in order], np.int64)
    rows = np.concatenate([src_rows[c] for c in order])
    kf_noise = np.concatenate([noise[c] for c in order])
    hashes = world[rows]
    noisy = kf_noise > 0
    hashes[noisy] = _flip(hashes[noisy], kf_noise[noisy], rng)
    quality = rng.integers(60, 96, len(rows)).astype(np.uint8)
    black = rng.random(len(rows)) < BLACK_RATE
    hashes[black] = 0
    quality[black] = 5
    tl = np.array(clips_tl, np.int64)[order]
    lo = np.array(clips_lo, np.int64)[order]
    ln = np.array(clips_n, np.int64)[order]
    return SynthFleet(
        hashes=hashes, quality=quality,
        kf_start=(np.cumsum(counts) - counts).astype(np.int64), kf_count=counts,
        kind=np.array(kinds)[order], drive=np.array(drives, np.int64)[order],
        start_time=np.array(starts, np.float64)[order],
        seg_tl=tl, seg_lo=lo, seg_hi=lo + ln,
        planted=inv[np.array(planted, np.int64).reshape(-1, 2)],
        planted_kind=np.array(planted_kind),
        negatives=inv[np.array(negatives, np.int64).reshape(-1, 2)],
    )


@numba.njit(cache=True, nogil=True)
def _carry(fresh, redraw, state):
    out = np.empty_like(fresh)
    prev = state
    for t in range(fresh.shape[0]):
        for k in range(fresh.shape[1]):
            out[t, k] = fresh[t, k] if redraw[t, k] else prev[k]
        prev = out[t]
    return out


def _walk(lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keyframe hashes of drives of the given lengths, back to back (random walks, module doc)."""
    n_drives, total = len(lengths), int(lengths.sum())
    bias = rng.beta(BIT_BETA, BIT_BETA, 256).astype(np.float32)
    coin = rng.random((n_drives, 256), dtype=np.float32) < bias
    drive_p = (1.0 - DRIVE_SKEW) * bias + DRIVE_SKEW * coin.astype(np.float32)
    drive_of = np.repeat(np.arange(n_drives), lengths)
    first = np.zeros(total, bool)
    first[np.cumsum(lengths) - lengths] = True
    out = np.empty((total, HASH_BYTES), np.uint8)
    state = np.zeros(256, bool)
    chunk = 32768
    for lo in range(0, total, chunk):
        hi = min(total, lo + chunk)
        fresh = rng.random((hi - lo, 256), dtype=np.float32) < drive_p[drive_of[lo:hi]]
        redraw = (rng.random((hi - lo, 256), dtype=np.float32) < REDRAW) | first[lo:hi, None]
        bits = _carry(fresh, redraw, state)  # bit value = the fresh draw at its last redraw
        state = bits[-1].copy()
        out[lo:hi] = _bits_to_codes(bits)
    return out


# ------------------------------------------------------------------------------ store + run
def write_region(home_dir: Path, fleet: SynthFleet, lo: int, hi: int, region: str = "bench",
                 batch: int = 10000) -> None:
    """Append clips ``[lo, hi)`` of ``fleet`` to ``region`` (created on first use)."""
    from engine.sovereignty.regions import Home
    from engine.store.region import THUMB_SHAPE, NewClip, RegionStore

    home = Home.open(home_dir, create=True)
    if region not in home.regions:
        home.add_region(region, jurisdiction="XX")
    rng = np.random.default_rng(lo + 1)
    thumb = np.zeros(THUMB_SHAPE, np.uint8)
    with RegionStore.open(home.region(region), create=True) as store, store.writer("bench"):
        dim = store.embedding_dim
        for b0 in range(lo, hi, batch):
            clips = []
            emb = rng.standard_normal((min(hi, b0 + batch) - b0, dim)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            for c in range(b0, min(hi, b0 + batch)):
                s, n = int(fleet.kf_start[c]), int(fleet.kf_count[c])
                d = int(fleet.drive[c])
                clips.append(NewClip(
                    clip_id=f"c{c:07d}", digest=f"d{c:07d}", source=f"/synth/c{c:07d}",
                    duration_s=n / 2.0, keyframe_hashes=fleet.hashes[s:s + n],
                    keyframe_phash=np.zeros((n, 8), np.uint8), keyframe_quality=fleet.quality[s:s + n],
                    keyframe_times=(np.arange(n) / 2.0).astype(np.float32), embedding=emb[c - b0],
                    thumbnail=thumb, drive_id=f"drive{d}" if d >= 0 else "",
                    start_time=float(fleet.start_time[c])))
            store.append_clips(clips, "bench")


def _machine() -> dict:
    """Cores, memory and load when a size started (the figures' context)."""
    info = {"cores": os.cpu_count(), "load_1min": os.getloadavg()[0]}
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def dedup_in_child(home_dir: Path, region: str = "bench", *, full: bool, threads: int = 0,
                   params: dict | None = None) -> dict:
    """Run ``run_dedup`` in a fresh interpreter; its wall time, stages and peak RSS."""
    code = (
        "import json, sys; from benchmarks.dedup_scale import _child; "
        f"print(json.dumps(_child({str(home_dir)!r}, {region!r}, {full!r}, {threads!r}, {params!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        raise RuntimeError(f"dedup child failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def index_in_child(home_dir: Path, region: str = "bench") -> dict:
    """Bring the region's clip-embedding index up to date in a fresh interpreter, as ingest's
    last step does (``ensure_indexes``); its wall time, peak RSS and the index built."""
    code = ("import json; from benchmarks.dedup_scale import _index_child; "
            f"print(json.dumps(_index_child({str(home_dir)!r}, {region!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        raise RuntimeError(f"index child failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _index_child(home_dir: str, region: str) -> dict:
    from engine.index import ensure_embedding_index
    from engine.matching.blocks import peak_rss_mb
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    with RegionStore.open(Home.open(home_dir).region(region)) as store:
        t = time.perf_counter()
        _reset_peak_rss()
        index = ensure_embedding_index(store)
        wall = time.perf_counter() - t
    return {"wall_s": wall, "peak_rss_mb": peak_rss_mb(), "kind": index.meta.get("kind"),
            "nlist": index.meta.get("nlist"), "ntotal": index.ntotal}


def _warm_kernels() -> None:
    """Compile (or load from the disk cache) every kernel dedup calls, outside the timing."""
    import kernels

    rng = np.random.default_rng(0)
    h = rng.integers(0, 256, (8, 32), dtype=np.uint8)
    v = np.ones(8, bool)
    kernels.band_collisions(h, v, v, np.arange(8, dtype=np.int64), kernels.band_masks(2, 8), 40)
    kernels.align_keyframe_pairs(h, v, np.array([0, 4]), np.array([4, 4]), np.array([0]),
                                 np.array([1]), 40, -1)
    rates = np.array([0.5, 1.0, 2.0])
    kernels.retime_lines(h, v, np.array([0, 4]), np.array([4, 4]), np.array([0]), np.array([1]),
                         rates, 1, rates != 1.0, 40, 3)


#: run_dedup's progress messages (first word) -> the phase they start (the last phase runs to
#: the end: reframed copies, same recording, groups and the store)
_PHASES = {"candidates": "candidates", "verifying": "verify+retime", "reframed": "reframed+rest"}


def _reset_peak_rss() -> None:
    """Start a new peak-RSS window (Linux: ``VmHWM`` drops to the current RSS); elsewhere the
    phase peaks are the peaks so far."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _child(home_dir: str, region: str, full: bool, threads: int, params: dict | None) -> dict:
    from engine.matching.blocks import peak_rss_mb
    from engine.matching.dedup import DedupParams, run_dedup
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    _warm_kernels()
    p = DedupParams(threads=threads, **(params or {}))
    rss0 = peak_rss_mb()
    phase, phase_peaks = ["load"], {}

    def on_progress(msg: str) -> None:  # each phase's own peak RSS
        phase_peaks[phase[0]] = max(phase_peaks.get(phase[0], 0.0), peak_rss_mb())
        _reset_peak_rss()
        phase[0] = _PHASES.get(msg.split()[0], phase[0])

    with RegionStore.open(Home.open(home_dir).region(region)) as store:
        t = time.perf_counter()
        _reset_peak_rss()
        res = run_dedup(store, p, full=full, progress=on_progress)
        wall = time.perf_counter() - t
    on_progress("end")
    return {"wall_s": wall, "stages": res.stage_seconds, "method": res.method,
            "keyframe_pairs": res.keyframe_pairs, "candidates": res.candidates,
            "new_pairs": res.new_pairs, "pairs": len(res.pairs), "groups": len(res.groups),
            "checked": res.checked, "clips": res.clips, "peak_rss_mb": max(phase_peaks.values()),
            "rss_before_mb": rss0, "blocks": res.candidate_stats.get("blocks", 0),
            "worker_peak_rss_mb": res.candidate_stats.get("worker_peak_rss_mb", []),
            "phase_peak_rss_mb": phase_peaks,
            "pairs_digest": _pairs_digest(store_dir=home_dir, region=region)}


def _pairs_digest(store_dir: str, region: str) -> str:
    """SHA-256 of the stored pairs and groups, sorted: two runs stored the same result iff equal."""
    import hashlib

    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    with RegionStore.open(Home.open(store_dir).region(region)) as store:
        pairs = sorted(store.pairs())
        groups = sorted(store.groups().items())
    return hashlib.sha256(repr((pairs, groups)).encode()).hexdigest()


def score(home_dir: Path, fleet: SynthFleet, n: int, region: str = "bench") -> dict:
    """Recall of planted pairs, precision, merged negatives over clips ``[0, n)``."""
    from engine.matching.dedup import load_dedup
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    with RegionStore.open(Home.open(home_dir).region(region)) as store:
        pairs, groups = load_dedup(store)
    a = np.array([p.a for p in pairs], np.int64)
    b = np.array([p.b for p in pairs], np.int64)
    rel = np.array([p.relation for p in pairs])
    found = set(zip(a.tolist(), b.tolist(), strict=True))
    dup = {(x, y) for x, y, r in zip(a.tolist(), b.tolist(), rel.tolist(), strict=True) if r == "duplicate"}
    group_of = {m: rep for rep, ms in groups.items() for m in ms}
    planted = fleet.planted[(fleet.planted < n).all(axis=1)]
    kinds = fleet.planted_kind[(fleet.planted < n).all(axis=1)]
    key = [(min(x, y), max(x, y)) for x, y in planted.tolist()]
    hit = np.array([k in found for k in key], bool)
    out = {"planted": len(key), "recall": float(hit.mean()) if len(key) else 1.0}
    for k in ("whole", "roll", "splice"):
        sel = kinds == k
        out[f"recall_{k}"] = float(hit[sel].mean()) if sel.any() else 1.0
    whole = [kk for kk, kind in zip(key, kinds.tolist(), strict=True) if kind == "whole"]
    out["whole_as_duplicate"] = float(np.mean([kk in dup for kk in whole])) if whole else 1.0
    ov = fleet.overlap(a, b) if len(a) else np.zeros(0, np.int64)
    out["reported_pairs"] = len(a)
    out["false_pairs"] = int((ov == 0).sum())
    out["precision"] = float((ov > 0).mean()) if len(a) else 1.0
    neg = fleet.negatives[(fleet.negatives < n).all(axis=1)]
    merged = sum(1 for x, y in neg.tolist() if x in group_of and group_of.get(x) == group_of.get(y))
    out["negatives"] = len(neg)
    out["negatives_merged"] = merged
    return out


def exact_agreement(home_dir: Path, n_subset: int, seed: int = 0, region: str = "bench") -> dict:
    """Verified pairs of a random clip subset: brute-force candidates vs the stored run."""
    import kernels
    from engine.index import QUALITY_FLOOR
    from engine.matching.dedup import DedupParams, keyframe_clips, load_dedup, verify_pairs
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore, span_rows

    p = DedupParams()
    with RegionStore.open(Home.open(home_dir).region(region)) as store:
        table = store.clip_table()
        kf = store.keyframes(table.snapshot)
        # matched pairs only: the partials implied through whole copies are no keyframe match
        pairs, _ = load_dedup(store, params=DedupParams(partials_through_copies=False))
    hashes, valid = kf["hashes"], kf["quality"] >= QUALITY_FLOOR
    rng = np.random.default_rng(seed)
    subset = np.sort(rng.choice(table.rows, min(n_subset, len(table)), replace=False))
    kf_clip = keyframe_clips(table, len(hashes))
    q = span_rows(table.kf_start[np.searchsorted(table.rows, subset)],
                   table.kf_count[np.searchsorted(table.rows, subset)])
    q = q[valid[q]]
    base = np.flatnonzero(valid)
    qi, bi, _ = kernels.hamming_within(np.ascontiguousarray(hashes[q]), np.ascontiguousarray(hashes[base]),
                                       p.candidate_radius)
    ca, cb = kf_clip[q[qi]], kf_clip[base[bi]]
    i, j = q[qi], base[bi]
    keep = ca != cb
    ca, cb, i, j = ca[keep], cb[keep], i[keep], j[keep]
    # each keyframe pair once (two subset clips find each other from both sides)
    kp = np.unique(np.stack([np.minimum(i, j), np.maximum(i, j), np.minimum(ca, cb), np.maximum(ca, cb)], 1),
                   axis=0)
    cp, cnt = np.unique(kp[:, 2:], axis=0, return_counts=True)
    cand = cp[cnt >= p.min_candidate_matches]
    exact = {(x.a, x.b) for x in verify_pairs(cand, table, hashes, valid, p)}
    in_sub = set(subset.tolist())
    stored = {(x.a, x.b) for x in pairs if x.a in in_sub or x.b in in_sub}
    both = exact & stored
    return {"subset_clips": len(subset), "exact_pairs": len(exact), "run_pairs": len(stored),
            "agreement_recall": len(both) / len(exact) if exact else 1.0,
            "run_only": len(stored - exact)}


def _written_clips(home_dir: Path, region: str = "bench") -> int:
    """Clips already in a kept region (0: none)."""
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    try:
        with RegionStore.open(Home.open(home_dir).region(region)) as store:
            return int(store.snapshot().clip_end)
    except Exception:  # no home or region yet
        return 0


def prepare_region(n: int, workdir: Path, *, add: int = 1000, seed: int = 0) -> tuple[SynthFleet, float, float]:
    """The fleet of ``n + add`` clips and its first ``n`` written to ``workdir`` (kept: a later
    run with the same ``workdir`` reuses the written region); (fleet, generate s, write s)."""
    t = time.perf_counter()
    fleet = make_fleet(n + add, seed)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    have = _written_clips(workdir)
    if have not in (0, n):
        raise RuntimeError(f"{workdir} holds {have:,} clips, not {n:,}: remove it or use another --workdir")
    if have == 0:
        write_region(workdir, fleet, 0, n)
    return fleet, gen_s, (time.perf_counter() - t) if have == 0 else float("nan")


def run_size(n: int, *, add: int = 1000, seed: int = 0, threads: int = 0, subset: int = 300,
             workdir: Path | None = None, workers: int = 0, dask_last: bool = False, say=print,
             save=None, block_keyframes: int = 0) -> dict:
    """Generate, write (or reuse a kept region), the embedding index (ingest's step), full dedup,
    score, agreement, then +``add`` clips, their index update and the incremental dedup. With ``workers``, a full dedup with the candidate search on a Dask
    LocalCluster of that many worker processes follows the local one (``dask_last``: the
    incremental run), and must store the very pairs and groups the local run left.
    ``save(row)`` is called with the row so far after each phase. ``block_keyframes`` (0: the
    default) sets :attr:`DedupParams.block_keyframes` for every dedup run."""
    parts = {"block_keyframes": block_keyframes} if block_keyframes else {}
    save = save or (lambda row: None)
    own = workdir is None
    tmp = Path(tempfile.mkdtemp(prefix="clipdex-dedup-scale-")) if own else workdir
    try:
        base = tmp if own else tmp / "base"
        fleet, gen_s, write_s = prepare_region(n, base, add=add, seed=seed)
        say(f"  {n:,} clips ({int(fleet.kf_count[:n].sum()):,} keyframes): generated {gen_s:.1f} s, "
            f"written {write_s:.1f} s")
        run_dir = base if own else tmp / "run"
        if not own:  # the kept region stays as written: runs (and the added clips) go to a copy
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.copytree(base, run_dir)
        # ingest ends by bringing the embedding index up to date; the synthetic writer does not,
        # so that step runs here, timed on its own, and dedup finds the index current as it
        # does after ``clipdex ingest``
        index = index_in_child(run_dir)
        say(f"  embedding index ({index['kind']}, {index['nlist'] or '-'} lists) built {index['wall_s']:.1f} s, "
            f"peak RSS {index['peak_rss_mb']:.0f} MB")
        full = dedup_in_child(run_dir, full=True, threads=threads, params=parts or None)
        sc = score(run_dir, fleet, n)
        say(f"  full dedup {full['wall_s']:.1f} s ({full['method']}, {full['blocks']} blocks), peak RSS "
            f"{full['peak_rss_mb']:.0f} MB, recall {sc['recall']:.4f}, precision {sc['precision']:.4f}, "
            f"merged negatives {sc['negatives_merged']}")
        agree = exact_agreement(run_dir, subset, seed) if subset else {}
        row = {"clips": n, "keyframes": int(fleet.kf_count[:n].sum()), "index": index, "full": full, "quality": sc,
               "exact_agreement": agree, "generate_s": gen_s, "write_s": write_s}
        save(row)

        def on_dask(before: dict, clips: int) -> None:
            dask = dedup_in_child(run_dir, full=True, params={"workers": workers, **parts})
            dask["same_as_local"] = dask["pairs_digest"] == before["pairs_digest"]
            dask["recall"] = score(run_dir, fleet, clips)["recall"]
            say(f"  full dedup of {clips:,} clips on {workers} Dask workers {dask['wall_s']:.1f} s, peak RSS "
                f"{dask['peak_rss_mb']:.0f} MB (workers {', '.join(f'{w:.0f}' for w in dask['worker_peak_rss_mb'])} "
                f"MB), same pairs and groups as the local run: {dask['same_as_local']}")
            row["dask"] = dict(dask, workers=workers, clips=clips)
            save(row)

        if workers and not dask_last:
            on_dask(full, n)
        if add:
            write_region(run_dir, fleet, n, n + add)
            row["incremental_index"] = index_in_child(run_dir)  # ingest's step: the added clips
            inc = dedup_in_child(run_dir, full=False, threads=threads, params=parts or None)
            sc2 = score(run_dir, fleet, n + add)
            say(f"  +{add:,} clips incremental {inc['wall_s']:.2f} s, peak RSS {inc['peak_rss_mb']:.0f} MB, "
                f"recall {sc2['recall']:.4f}")
            row["incremental"] = inc
            row["incremental_quality"] = sc2
            save(row)
        if workers and dask_last:
            on_dask(row.get("incremental", full), n + add)
        return row
    finally:
        import shutil

        shutil.rmtree(tmp if own else tmp / "run", ignore_errors=True)


def growth(rows: list[dict], target: int = 10_000_000, machines: tuple[int, ...] = (1, 2, 4, 8)) -> dict:
    """What the two largest measured sizes put ``target`` clips at. Each stage of the full dedup
    grows by its own power law ``seconds = c x clips^alpha`` (alpha at least 1: no stage gets
    cheaper a clip), the time outside the stages grows linearly, and each phase's peak RSS grows
    linearly (the process peak: the largest; the whole run's peak where phases were not measured).
    On N machines the hash candidate search spreads over every machine's workers while the rest
    (verification, re-timing, reframed, groups) stays on one. The embedding index that ingest
    builds is projected on its own (``index_build``), not counted in the dedup."""
    pts = sorted((r["clips"], r["full"]["wall_s"], r["full"]["peak_rss_mb"], r["full"]["stages"])
                 for r in rows)
    if len(pts) < 2:
        return {}
    (n0, t0, m0, st0), (n1, t1, m1, st1) = pts[-2], pts[-1]
    ratio = target / n1
    alphas, at_target = {}, {}
    for name, sec in st1.items():
        before = st0.get(name, 0.0)
        alpha = float(np.log(sec / before) / np.log(n1 / n0)) if before > 0 and sec > 0 else 1.0
        alphas[name] = max(1.0, alpha)
        at_target[name] = sec * ratio ** alphas[name]
    other = max(0.0, t1 - sum(st1.values())) * ratio
    total = sum(at_target.values()) + other
    cand = at_target.get("candidates", 0.0)
    rest = total - cand
    mb_per_clip = (m1 - m0) / (n1 - n0)
    # each phase's peak grows linearly from its own two points; the process peak is the largest
    ph0, ph1 = (next(r["full"].get("phase_peak_rss_mb") or {} for r in rows if r["clips"] == n)
                for n in (n0, n1))
    phase_mb = {k: ph1[k] + (ph1[k] - ph0[k]) / (n1 - n0) * (target - n1) for k in ph1 if k in ph0}
    peak_mb = max(phase_mb.values()) if phase_mb else m1 + mb_per_clip * (target - n1)
    # the embedding index ingest builds (once, and again each time the region outgrows it 4x)
    ix0, ix1 = (next((r.get("index") or {}).get("wall_s", 0.0) for r in rows if r["clips"] == n) for n in (n0, n1))
    index = {}
    if ix0 > 0 and ix1 > 0:
        ia = max(1.0, float(np.log(ix1 / ix0) / np.log(n1 / n0)))
        index = {"alpha": ia, "target_s": ix1 * ratio ** ia}
    return {"fit_sizes": [n0, n1], "alpha": float(np.log(t1 / t0) / np.log(n1 / n0)),
            "stage_alpha": alphas, "target_clips": target, "target_wall_s": total,
            "target_stage_s": at_target, "target_candidates_s": cand,
            "target_peak_rss_mb": peak_mb, "target_phase_peak_rss_mb": phase_mb,
            "peak_rss_mb_per_clip": mb_per_clip, "index_build": index,
            "machines": {str(k): rest + cand / k for k in machines}}


# ------------------------------------------------------------------------------ measure
def measure_home(home_dir: str) -> dict:
    """Distance statistics of a demo home (where the generator's constants come from)."""
    from engine.index import QUALITY_FLOOR
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    home = Home.open(home_dir)
    step, lag8, rand, pair_means = [], [], [], []
    for name in home.regions:
        with RegionStore.open(home.region(name)) as store:
            table = store.clip_table()
            kf = store.keyframes(table.snapshot)
            h, ok = kf["hashes"], kf["quality"] >= QUALITY_FLOOR
            for s, n in zip(table.kf_start.tolist(), table.kf_count.tolist(), strict=True):
                for lag, acc in ((1, step), (8, lag8)):
                    i = np.arange(s, s + n - lag)
                    i = i[ok[i] & ok[i + lag]]
                    acc += np.bitwise_count(h[i] ^ h[i + lag]).sum(1).tolist()
            rng = np.random.default_rng(0)
            a, b = rng.integers(0, len(h), (2, 5000))
            rand += np.bitwise_count(h[a] ^ h[b]).sum(1).tolist()
            for p in store.pairs():
                pair_means.append((p[2], p[10]))
    pm = np.array([m for _, m in pair_means]) if pair_means else np.zeros(0)
    return {"lag1_bits": float(np.mean(step)), "lag8_bits": float(np.mean(lag8)),
            "random_bits": float(np.mean(rand)),
            "stored_pair_mean_bits_p5_50_95": np.percentile(pm, [5, 50, 95]).tolist() if len(pm) else []}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dedup_scale", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,30000,100000,300000")
    ap.add_argument("--add", type=int, default=1000, help="clips added for the incremental run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--subset", type=int, default=100, help="clips in the brute-force agreement check")
    ap.add_argument("--workers", type=int, default=0,
                    help="also run the full dedup with its candidate search on N Dask worker processes")
    ap.add_argument("--workdir", default=None,
                    help="keep each size's written region in WORKDIR/<clips>/base and reuse it")
    ap.add_argument("--dask-last", action="store_true",
                    help="run the Dask full dedup after the incremental one (on the grown region)")
    ap.add_argument("--merge", action="store_true",
                    help="add the rows to the --json file's rows of other sizes instead of replacing it")
    ap.add_argument("--block-keyframes", type=int, default=0,
                    help="query keyframes per part of each candidate-search band (0: dedup's default)")
    ap.add_argument("--json", default="dedup_scale.json")
    ap.add_argument("--measure", metavar="HOME", help="print the distance statistics of a demo home")
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure_home(args.measure), indent=2))
        return 0
    rows = []
    if args.merge and Path(args.json).exists():
        rows = [r for r in json.loads(Path(args.json).read_text()) if "clips" in r]
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"{n:,} clips")
        work = Path(args.workdir) / str(n) if args.workdir else None
        if work is not None:
            work.mkdir(parents=True, exist_ok=True)
        machine = _machine()

        def save(row: dict, n: int = n, machine: dict = machine) -> None:
            nonlocal rows
            row["machine"] = machine
            rows = sorted([r for r in rows if r["clips"] != n] + [row], key=lambda r: r["clips"])
            Path(args.json).write_text(json.dumps(rows + [{"growth": growth(rows)}], indent=2))

        run_size(n, add=args.add, seed=args.seed, threads=args.threads, subset=args.subset,
                 block_keyframes=args.block_keyframes,
                 workdir=work, workers=args.workers, dask_last=args.dask_last, save=save)
    fit = growth(rows)
    if fit:
        print(f"\ngrowth: wall ~ clips^{fit['alpha']:.2f} ({fit['fit_sizes'][0]:,} -> {fit['fit_sizes'][1]:,}); "
              f"{fit['target_clips']:,} clips: {fit['target_wall_s'] / 60:.0f} min on one machine, peak RSS "
              f"{fit['target_peak_rss_mb'] / 1024:.1f} GB; on N machines: "
              + ", ".join(f"{k}: {v / 60:.0f} min" for k, v in fit["machines"].items())
              + (f"; embedding index build (ingest): {fit['index_build']['target_s'] / 60:.0f} min"
                 if fit.get("index_build") else ""))
    base = rows[0]["full"]["wall_s"] / rows[0]["clips"]
    print("\n| clips | keyframes | method | full dedup (s) | µs/clip | vs first | peak RSS (MB) | "
          f"candidates | recall | precision | merged neg. | exact agreement | +{args.add} incremental (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f, q = r["full"], r["quality"]
        per = f["wall_s"] / r["clips"]
        inc = r.get("incremental", {}).get("wall_s", float("nan"))
        print(f"| {r['clips']:,} | {r['keyframes']:,} | {f['method']} | {f['wall_s']:.1f} | {per * 1e6:.0f} | "
              f"{per / base:.2f}x | {f['peak_rss_mb']:.0f} | {f['candidates']:,} | {q['recall']:.4f} | "
              f"{q['precision']:.4f} | {q['negatives_merged']} | "
              f"{r['exact_agreement'].get('agreement_recall', float('nan')):.4f} | {inc:.2f} |")
    print(f"\nJSON: {args.json}   (machine: {os.cpu_count()} cores; absolute times are noisy here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
