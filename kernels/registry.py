"""One table of the public kernels: each with its NumPy reference, input makers and peers.

The same table drives the reference tests (``tests/test_kernels_registry.py``: every kernel
against its reference on every test case, and at one and two threads) and the kernel
benchmarks (``benchmarks/test_bench_kernels.py`` and the ``kernels`` group of
``python -m benchmarks run``). A new public kernel gets one entry here and is tested and
benchmarked from then on; a test fails when a name of ``kernels.__all__`` is neither here
nor in :data:`NOT_KERNELS`.

Peers are named as ``"module:function"`` and resolved by the benchmarks (``benchmarks/peers.py``):
this package imports only NumPy and Numba.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from . import reference as ref
from .align import align_keyframe_pairs
from .bands import band_collisions, band_masks
from .conv import depthwise_conv2d
from .embedding import (
    DESCRIPTOR_DIM,
    TELEMETRY_DIM,
    clip_embeddings,
    embedding_projection,
    keyframe_descriptors,
    telemetry_stats,
)
from .hamming import hamming_matrix, hamming_topk, hamming_within
from .kcentre import greedy_kcentre, min_sq_distances
from .luma import luma_area_downsample
from .pdq import pdq256
from .phash import phash64, phash64_boxes
from .retime import retime_lines
from .temporal import yuv_area_accumulate

#: public names of ``kernels`` that are constants, result types or pure-Python helpers
NOT_KERNELS = frozenset({
    "DESCRIPTOR_DIM", "EMBEDDING_DIM", "EMBEDDING_INPUT_DIM", "EMBEDDING_VERSION",
    "TELEMETRY_DIM", "Alignment", "RetimeLines", "band_masks", "band_recall",
})

#: benchmark input sizes: ``tiny`` (a smoke run), ``quick`` (seconds), ``full`` (the figures)
SIZES = ("tiny", "quick", "full")


class Peer(NamedTuple):
    """Another implementation of a kernel's work, timed beside it on the same input."""

    name: str
    target: str  # "module:function", called with the kernel's benchmark arguments
    max_items: int | None = None  # slow peers run on the first n rows of the first argument


class KernelSpec(NamedTuple):
    """A public kernel, the NumPy function it must agree with, and how to feed both."""

    name: str
    kernel: Callable
    reference: Callable
    cases: dict[str, Callable[[np.random.Generator], tuple]]  # test inputs by case name
    bench: Callable[[np.random.Generator, str], tuple]  # benchmark input for a size of SIZES
    unit: str  # what one item of the work is: "frames", "pairs", "clips" ...
    count: Callable[[tuple], int]  # items in a benchmark input
    rtol: float = 0.0  # 0 and 0: exact equality (integer kernels)
    atol: float = 0.0
    normalise: Callable | None = None  # applied to both outputs before comparing
    bytes_read: Callable[[tuple], int] | None = None  # input bytes: the streaming-read limit
    peers: tuple[Peer, ...] = ()


# ---------------------------------------------------------------- input makers
def natural_frames(n: int, height: int, width: int, rng: np.random.Generator,
                   noise: float = 3.0) -> np.ndarray:
    """Smooth, natural-looking RGB frames: low-frequency waves, a few soft blobs, mild noise."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    out = np.empty((n, height, width, 3), np.uint8)
    for f in range(n):
        img = np.full((height, width, 3), 128.0)
        for _ in range(5):
            fx, fy = rng.uniform(-5, 5, 2)
            phase = rng.uniform(0, 2 * np.pi)
            amp = rng.uniform(10, 45, 3)
            img += amp * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)[..., None]
        for _ in range(3):
            cy, cx = rng.uniform(0, 1, 2) * (height / max(height, width), width / max(height, width))
            radius = rng.uniform(0.05, 0.25)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
            img += rng.uniform(-60, 60, 3) * blob[..., None]
        if noise:
            img += rng.normal(0, noise, img.shape)
        out[f] = np.clip(np.rint(img), 0, 255)
    return out


_FRAME_SIZES = {"tiny": (2, 90, 160), "quick": (8, 360, 640), "full": (32, 720, 1280)}


def frame_batch(rng: np.random.Generator, size: str) -> np.ndarray:
    """A batch of distinct frames (rolled copies of 4 scenes), as decoded video arrives."""
    n, h, w = _FRAME_SIZES[size]
    base = natural_frames(min(n, 4), h, w, rng)
    frames = [np.roll(f, 8 * k, axis=1) for k in range(-(-n // len(base))) for f in base]
    return np.ascontiguousarray(np.stack(frames[:n]))


def _frames_case(n, h, w, dark=False):
    def make(rng):
        frames = natural_frames(n, h, w, rng)
        if dark:  # dark, night, near black
            frames[n // 2:] //= np.array([4, 12, 60], np.uint8)[: n - n // 2, None, None, None]
        return (frames,)
    return make


def _codes(nq, nb, nbytes, near=0, extra=None):
    """Query and base codes, ``near`` of them close pairs; ``extra`` (k, radius) appended."""
    def make(rng):
        a = rng.integers(0, 256, (nq, nbytes), dtype=np.uint8)
        b = rng.integers(0, 256, (nb, nbytes), dtype=np.uint8)
        b[:near] = a[:near] ^ (rng.random((near, nbytes)) < 0.05).astype(np.uint8)
        return (a, b) if extra is None else (a, b, extra)
    return make


_CODE_SIZES = {"tiny": (50, 300), "quick": (1_000, 30_000), "full": (10_000, 100_000)}


def _bench_codes(rng, size, queries=None):
    nq, nb = _CODE_SIZES[size]
    nq = min(nq, queries or nq)
    return (rng.integers(0, 256, (nq, 32), dtype=np.uint8),
            rng.integers(0, 256, (nb, 32), dtype=np.uint8))


def _clips(rng, n_clips=12, nbytes=8):
    """Keyframe hashes of clips cut as noisy windows of one long sequence: real overlaps."""
    counts = rng.integers(0, 9, n_clips).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    base = rng.integers(0, 256, (40, nbytes), dtype=np.uint8)
    hashes = np.empty((int(counts.sum()), nbytes), np.uint8)
    for c in range(n_clips):
        off = rng.integers(0, 40 - 8)
        hashes[starts[c]:starts[c] + counts[c]] = base[off:off + counts[c]]
    flips = (rng.random(hashes.shape) < 0.04).astype(np.uint8)
    hashes ^= flips << rng.integers(0, 8, hashes.shape).astype(np.uint8)
    valid = rng.random(len(hashes)) < 0.9
    return hashes, valid, starts, counts


def _align_case(max_shift):
    def make(rng):
        hashes, valid, starts, counts = _clips(rng)
        pa, pb = np.divmod(np.arange(144, dtype=np.int64), 12)
        return hashes, valid, starts, counts, pa, pb, 6, max_shift
    return make


def _align_bench(rng, size):
    n_clips, n_pairs = {"tiny": (50, 200), "quick": (2_000, 20_000),
                        "full": (20_000, 100_000)}[size]
    per_clip = 20
    hashes = rng.integers(0, 256, (n_clips * per_clip, 32), dtype=np.uint8)
    valid = np.ones(len(hashes), bool)
    starts = np.arange(0, len(hashes), per_clip, dtype=np.int64)
    counts = np.full(n_clips, per_clip, np.int64)
    pa = rng.integers(0, n_clips, n_pairs).astype(np.int64)
    pb = rng.integers(0, n_clips, n_pairs).astype(np.int64)
    return hashes, valid, starts, counts, pa, pb, 31, -1


def _retimed_clips(rng, n_clips=10, nbytes=32):
    """Clips cut from one noisy sequence, some sampled at a rate other than 1: real re-timed
    lines, held pictures (rate < 1 repeats keyframes) and unrelated clips."""
    base = rng.integers(0, 256, (80, nbytes), dtype=np.uint8)
    parts = []
    for c in range(n_clips):
        n = int(rng.integers(0, 30))
        rate = float(rng.choice([1.0, 0.5, 0.8, 1.25, 1.6]))
        at = np.rint(rng.integers(0, 20) + rate * np.arange(n)).astype(np.int64)
        parts.append(base[np.clip(at, 0, 79)] if c % 4 else rng.integers(0, 256, (n, nbytes), dtype=np.uint8))
    counts = np.array([len(q) for q in parts], np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    hashes = np.concatenate(parts) if counts.sum() else np.zeros((0, nbytes), np.uint8)
    flips = (rng.random(hashes.shape) < 0.03).astype(np.uint8)
    hashes ^= flips << rng.integers(0, 8, hashes.shape).astype(np.uint8)
    valid = rng.random(len(hashes)) < 0.9
    return np.ascontiguousarray(hashes), valid, starts, counts


def _retime_rates():
    rates = np.unique(np.concatenate([np.exp(np.arange(np.log(0.4), np.log(2.5) + 1e-9,
                                                       np.log(1.02))), [1.0]]))
    return rates, int(np.argmin(np.abs(rates - 1))), np.abs(np.log(rates)) >= np.log1p(0.05)


def _retime_case(min_matches):
    def make(rng):
        hashes, valid, starts, counts = _retimed_clips(rng)
        pa, pb = np.divmod(np.arange(100, dtype=np.int64), 10)
        rates, one, other = _retime_rates()
        return hashes, valid, starts, counts, pa, pb, rates, one, other, 40, min_matches
    return make


def _retime_bench(rng, size):
    n_clips, n_pairs = {"tiny": (50, 100), "quick": (1_000, 5_000),
                        "full": (10_000, 50_000)}[size]
    hashes, valid, starts, counts = _retimed_clips(rng, n_clips)
    pa = rng.integers(0, n_clips, n_pairs).astype(np.int64)
    pb = rng.integers(0, n_clips, n_pairs).astype(np.int64)
    rates, one, other = _retime_rates()
    return hashes, valid, starts, counts, pa, pb, rates, one, other, 40, 3


def _telemetry(rng):
    counts = np.array([0, 1, 5, 40, 12, 30], np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    time = np.concatenate([np.sort(rng.uniform(0, 10, c)) for c in counts])
    values = rng.normal([10, -1, 0, 0], [5, 3, 0.2, 0.1], (len(time), 4)).astype(np.float32)
    values[rng.random(values.shape) < 0.15] = np.nan
    values[starts[4]:starts[4] + counts[4]] = np.nan  # a clip with no usable telemetry
    values[starts[5]:starts[5] + counts[5], 2] = np.nan  # a missing channel
    return time, values, starts, counts


def _telemetry_bench(rng, size):
    n_clips = {"tiny": 20, "quick": 2_000, "full": 20_000}[size]
    per_clip = 100  # 10 s at 10 Hz
    time = np.tile(np.arange(per_clip) / 10.0, n_clips)
    values = rng.normal([10, -1, 0, 0], [5, 3, 0.2, 0.1], (len(time), 4)).astype(np.float32)
    starts = np.arange(0, len(time), per_clip, dtype=np.int64)
    return time, values, starts, np.full(n_clips, per_clip, np.int64)


def _embedding_case(rng):
    desc = keyframe_descriptors(natural_frames(10, 24, 32, rng))
    starts = np.array([0, 3, 3, 4], np.int64)
    counts = np.array([3, 0, 1, 6], np.int64)
    tel = rng.normal(0, 1, (4, TELEMETRY_DIM)).astype(np.float32)
    return desc, starts, counts, tel, embedding_projection()


def _embedding_bench(rng, size):
    n_clips = {"tiny": 20, "quick": 2_000, "full": 10_000}[size]
    per_clip = 20 if size != "tiny" else 5
    desc = rng.random((n_clips * per_clip, DESCRIPTOR_DIM), dtype=np.float32)
    starts = np.arange(0, n_clips * per_clip, per_clip, dtype=np.int64)
    counts = np.full(n_clips, per_clip, np.int64)
    tel = rng.random((n_clips, TELEMETRY_DIM), dtype=np.float32)
    return desc, starts, counts, tel, embedding_projection()


def _points(rng, n=700, d=16):
    centres = rng.standard_normal((9, d)).astype(np.float32) * 3
    x = centres[rng.integers(0, 9, n)] + rng.standard_normal((n, d)).astype(np.float32) * 0.4
    return np.ascontiguousarray(x, dtype=np.float32)


def _kcentre_case(n_seeds):
    def make(rng):
        x = _points(rng)
        allowed = rng.random(len(x)) < 0.8
        seeds = rng.choice(len(x), n_seeds, replace=False)
        return x, 40, ref.min_sq_distances(x, x[seeds]), allowed
    return make


def _kcentre_bench(rng, size):
    n, picks = {"tiny": (300, 10), "quick": (20_000, 200), "full": (100_000, 1_000)}[size]
    x = _points(rng, n, 32)
    return x, picks, np.full(n, np.inf, np.float32), np.ones(n, bool)


def _min_sq_case(rng):
    x = _points(rng, 300, 12)
    return x, np.ascontiguousarray(x[rng.choice(300, 7, replace=False)])


def _min_sq_bench(rng, size):
    n, m = {"tiny": (300, 10), "quick": (50_000, 64), "full": (200_000, 256)}[size]
    x = _points(rng, n, 32)
    return x, np.ascontiguousarray(x[:m])


def _yuv_case(factor, chroma, full_range, matrix, rows=None):
    def make(rng):
        out_h, out_w = 7, 11
        y = rng.integers(0, 256, (out_h * factor[0] + 1, out_w * factor[1] + 9), dtype=np.uint8)
        c_shape = (out_h * chroma[0] + 1, out_w * chroma[1] + 5)
        u = rng.integers(0, 256, c_shape, dtype=np.uint8)
        v = rng.integers(0, 256, c_shape, dtype=np.uint8)
        acc = rng.random((3, 3, out_h, out_w)).astype(np.float32)
        slots, weights = np.array([2, 0]), np.array([0.25, 0.75], np.float32)
        return y, u, v, factor, chroma, acc, slots, weights, full_range, matrix, rows
    return make


def _yuv_bench(rng, size):
    h, w = {"tiny": (90, 160), "quick": (720, 1280), "full": (1080, 1920)}[size]
    y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    u = rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8)
    v = rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8)
    acc = np.zeros((2, 3, h // 4, w // 4), np.float32)
    return (y, u, v, (4, 4), (2, 2), acc, np.array([0, 1]), np.array([0.5, 0.5], np.float32),
            False, "bt601", (2, 2))


def _run_yuv(fn):
    """The accumulator works in place: run on a copy of ``acc`` and return it."""
    def run(y, u, v, factor, chroma, acc, slots, weights, full_range, matrix, rows):
        acc = acc.copy()
        fn(y, u, v, factor, chroma, acc, slots, weights, full_range, matrix, rows=rows)
        return acc
    run.__name__ = fn.__name__
    return run


def _bands_case(query_fraction):
    def make(rng):
        n, nbytes = 240, 32
        codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
        flips = (rng.random((n // 2, nbytes * 8)) < 0.06).astype(np.uint8)
        codes[n // 2:] = codes[: n // 2] ^ np.packbits(flips, axis=1)
        valid = rng.random(n) > 0.1
        is_query = rng.random(n) < query_fraction
        group = (np.arange(n) // 6).astype(np.int64)
        return codes, valid, is_query, group, band_masks(10, 12, seed=3), 50
    return make


def _bands_bench(rng, size):
    n = {"tiny": 500, "quick": 200_000, "full": 1_000_000}[size]
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    ones = np.ones(n, bool)
    bits = max(8, int(np.ceil(np.log2(n))))
    return codes, ones, ones, np.arange(n, dtype=np.int64), band_masks(48, bits, seed=0), 40


def _crop_boxes(scales: int = 8, steps: int = 5) -> np.ndarray:
    """``float64[scales * steps**2, 4]`` crop views (top, bottom, left, right) of a frame."""
    boxes = []
    for size in np.linspace(0.5, 1.0, scales):
        for top in np.linspace(0.0, 1.0 - size, steps):
            for left in np.linspace(0.0, 1.0 - size, steps):
                boxes.append((top, top + size, left, left + size))
    return np.array(boxes, np.float64)


def _boxes_case(rng):
    luma = np.cumsum(rng.uniform(0, 9, (4, 96, 96)), axis=2).astype(np.float32)
    boxes = np.array([[0, 1, 0, 1], [0.1, 0.9, 0.05, 0.95], [0.13, 0.77, 0.21, 0.88],
                      [0.5, 0.5, 0, 1]], np.float64)  # the last is empty: zeros
    return luma, boxes


def _boxes_bench(rng, size):
    n = {"tiny": 2, "quick": 20, "full": 200}[size]
    luma = luma_area_downsample(frame_batch(rng, "tiny")[:1], 96, 96)
    return np.ascontiguousarray(np.repeat(luma, n, axis=0)), _crop_boxes()


def _sorted_pairs(out):
    i, j, d = out
    order = np.lexsort((j, i))
    return i[order], j[order], d[order]


def _n_frames(args):
    return len(args[0])


def _frames_bytes(args):
    return int(args[0].nbytes)


def _product(args):
    return len(args[0]) * len(args[1])



def _conv_case(n, h, w, c, k, stride, relu6=True):
    def make(rng):
        x = (rng.standard_normal((n, h, w, c)) * 2).astype(np.float32)
        weight = rng.standard_normal((c, k, k)).astype(np.float32)
        scale = rng.uniform(0.2, 2.0, c).astype(np.float32)
        shift = rng.standard_normal(c).astype(np.float32)
        return x, weight, stride, scale, shift, relu6
    return make


def _conv_bench(rng, size):
    """One layer of EfficientNet-Lite0's second stage (144 channels at 112x112, 3x3, stride 2)."""
    n = {"tiny": 1, "quick": 4, "full": 24}[size]
    return _conv_case(n, 112, 112, 144, 3, 2)(rng)


_SHAPES = [(1, 1), (4, 7), (37, 53), (64, 64), (90, 160), (131, 67), (200, 131), (360, 640)]
_FRAME_PEERS_PHASH = (Peer("imagehash.phash", "benchmarks.peers:imagehash_phash", 4),)
_FRAME_PEERS_PDQ = (Peer("pdqhash (C++)", "benchmarks.peers:pdqhash_pdq", 2),)

_TABLE: tuple[KernelSpec, ...] = (
    KernelSpec(
        "luma_area_downsample", lambda f, h=32, w=32: luma_area_downsample(f, h, w),
        lambda f, h=32, w=32: ref.luma_area_downsample(f, h, w),
        {f"{h}x{w}": _frames_case(3, h, w) for h, w in _SHAPES[:6]},
        lambda rng, size: (frame_batch(rng, size),), "frames", _n_frames,
        rtol=1e-5, atol=1e-3, bytes_read=_frames_bytes),
    KernelSpec(
        "phash64", phash64, ref.phash64,
        {f"{h}x{w}": _frames_case(8, h, w) for h, w in _SHAPES[2:]},
        lambda rng, size: (frame_batch(rng, size),), "frames", _n_frames,
        bytes_read=_frames_bytes, peers=_FRAME_PEERS_PHASH),
    KernelSpec(
        "phash64_boxes", phash64_boxes, ref.phash64_boxes, {"views": _boxes_case},
        _boxes_bench, "views", lambda args: len(args[0]) * len(args[1])),
    KernelSpec(
        "pdq256", pdq256, ref.pdq256,
        {f"{h}x{w}": _frames_case(6, h, w, dark=True) for h, w in _SHAPES[1:]},
        lambda rng, size: (frame_batch(rng, size),), "frames", _n_frames,
        bytes_read=_frames_bytes, peers=_FRAME_PEERS_PDQ),
    KernelSpec(
        "pdq256_contrast", lambda f: pdq256(f, normalise_contrast=True),
        lambda f: ref.pdq256(f, normalise_contrast=True),
        {f"{h}x{w}": _frames_case(6, h, w, dark=True) for h, w in _SHAPES[1:]},
        lambda rng, size: (frame_batch(rng, size),), "frames", _n_frames,
        bytes_read=_frames_bytes),
    KernelSpec(
        "keyframe_descriptors", keyframe_descriptors, ref.keyframe_descriptors,
        {f"{h}x{w}": _frames_case(3, h, w) for h, w in [(1, 1), (37, 53), (64, 64), (90, 160)]},
        lambda rng, size: (frame_batch(rng, size),), "frames", _n_frames,
        rtol=1e-4, atol=1e-5, bytes_read=_frames_bytes),
    KernelSpec(
        "hamming_matrix", hamming_matrix, ref.hamming_matrix,
        {f"{n}B": _codes(37, 203, n, near=20) for n in (8, 24, 32)},
        lambda rng, size: _bench_codes(rng, size, queries=1_000), "pairs", _product,
        peers=(Peer("numpy bitwise_count", "kernels.reference:hamming_matrix", 20),)),
    KernelSpec(
        "hamming_topk", lambda a, b, k=10: hamming_topk(a, b, k),
        lambda a, b, k=10: ref.hamming_topk(a, b, k),
        {f"{n}B-k{k}": _codes(37, 203, n, near=20, extra=k) for n in (8, 32)
         for k in (1, 5, 203, 250)},
        lambda rng, size: _bench_codes(rng, size), "pairs", _product,
        peers=(Peer("faiss IndexBinaryFlat", "benchmarks.peers:faiss_binary_topk"),)),
    KernelSpec(
        "hamming_within", lambda a, b, r=100: hamming_within(a, b, r),
        lambda a, b, r=100: ref.hamming_within(a, b, r),
        {f"{n}B": _codes(37, 203, n, near=20, extra=8 * n // 2 - 10) for n in (8, 24, 32)},
        lambda rng, size: _bench_codes(rng, size), "pairs", _product,
        peers=(Peer("faiss IndexBinaryFlat", "benchmarks.peers:faiss_binary_within"),)),
    KernelSpec(
        "align_keyframe_pairs", align_keyframe_pairs, ref.align_keyframe_pairs,
        {f"shift{s}": _align_case(s) for s in (-1, 0, 2)},
        _align_bench, "clip pairs", lambda args: len(args[4]),
        normalise=lambda out: [np.asarray(getattr(out, f)) for f in out._fields]),
    KernelSpec(
        "retime_lines", retime_lines, ref.retime_lines,
        {f"min{m}": _retime_case(m) for m in (1, 3, 12)},
        _retime_bench, "clip pairs", lambda args: len(args[4]),
        normalise=lambda out: [np.asarray(getattr(out, f)) for f in out._fields]),
    KernelSpec(
        "telemetry_stats", telemetry_stats, ref.telemetry_stats, {"gaps": _telemetry},
        _telemetry_bench, "clips", lambda args: len(args[2]), rtol=1e-4, atol=1e-5),
    KernelSpec(
        "clip_embeddings", clip_embeddings, ref.clip_embeddings, {"mixed": _embedding_case},
        _embedding_bench, "clips", lambda args: len(args[1]), rtol=1e-4, atol=1e-5),
    KernelSpec(
        "embedding_projection", embedding_projection, ref.embedding_projection,
        {"default": lambda rng: ()}, lambda rng, size: (), "projections", lambda args: 1,
        rtol=1e-6, atol=1e-7),
    KernelSpec(
        "greedy_kcentre", greedy_kcentre, ref.greedy_kcentre,
        {f"seeds{n}": _kcentre_case(n) for n in (0, 3)},
        _kcentre_bench, "picks", lambda args: args[1], rtol=1e-4, atol=1e-4),
    KernelSpec(
        "min_sq_distances", min_sq_distances, ref.min_sq_distances, {"7-centres": _min_sq_case},
        _min_sq_bench, "distances", _product, rtol=1e-4, atol=1e-4),
    KernelSpec(
        "yuv_area_accumulate", _run_yuv(yuv_area_accumulate), _run_yuv(ref.yuv_area_accumulate),
        {"420-limited": _yuv_case((4, 4), (2, 2), False, "bt601"),
         "420-full-709": _yuv_case((2, 2), (1, 1), True, "bt709"),
         "422": _yuv_case((2, 4), (2, 2), False, "bt601"),
         "444-odd": _yuv_case((3, 3), (3, 3), True, "bt601"),
         "4k-420": _yuv_case((8, 8), (4, 4), False, "bt709"),
         "none": _yuv_case((1, 1), (1, 1), False, "bt601"),
         "central-rows": _yuv_case((4, 4), (2, 2), False, "bt601", rows=(2, 2))},
        _yuv_bench, "frames", lambda args: 1, atol=2e-3,
        bytes_read=lambda args: int(args[0].nbytes + args[1].nbytes + args[2].nbytes)),
    KernelSpec(
        "band_collisions", band_collisions, ref.band_collisions,
        {f"queries{q}": _bands_case(q) for q in (1.0, 0.2, 0.0)},
        _bands_bench, "codes", lambda args: len(args[0]), normalise=_sorted_pairs),
    KernelSpec(
        "depthwise_conv2d", depthwise_conv2d, ref.depthwise_conv2d,
        {"3x3-s2": _conv_case(2, 15, 12, 16, 3, 2), "5x5-s1": _conv_case(1, 9, 14, 24, 5, 1),
         "5x5-s2-odd": _conv_case(2, 7, 5, 8, 5, 2, relu6=False), "1x1-pixel": _conv_case(1, 1, 1, 3, 3, 1)},
        _conv_bench, "images", lambda args: len(args[0]), rtol=1e-4, atol=1e-4),
)

#: test-only switch: ``NAME`` or ``NAME:FACTOR`` makes that registry kernel do its work FACTOR
#: times (default 3) per call, so the regression check can be shown to catch a slower kernel.
#: Only the registry's callables read it; the engine calls the kernels directly.
SLOW_ENV = "CLIPDEX_SLOW_KERNEL"


def _slowable(name: str, fn: Callable) -> Callable:
    def run(*args, **kwargs):
        slow = os.environ.get(SLOW_ENV, "")
        if slow and slow.partition(":")[0] == name:
            for _ in range(int(slow.partition(":")[2] or 3) - 1):
                fn(*args, **kwargs)
        return fn(*args, **kwargs)
    run.__name__ = getattr(fn, "__name__", name)
    return run


REGISTRY: tuple[KernelSpec, ...] = tuple(spec._replace(kernel=_slowable(spec.name, spec.kernel))
                                         for spec in _TABLE)
BY_NAME = {spec.name: spec for spec in REGISTRY}


def outputs(spec: KernelSpec, out) -> list[np.ndarray]:
    """A kernel's result as a list of arrays, normalised for comparison."""
    if spec.normalise is not None:
        out = spec.normalise(out)
    if isinstance(out, (tuple, list)):
        return [np.asarray(o) for o in out]
    return [np.asarray(out)]
