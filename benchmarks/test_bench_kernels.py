"""Kernel benchmarks: throughput vs the streaming-read limit and vs peer libraries.

Default test runs pass ``--benchmark-disable``: every benchmark then runs once on small inputs
as a quick test. Run for real with ``pytest benchmarks/test_bench_kernels.py --benchmark-enable``
(frames/s, GB/s and the bandwidth baseline land in ``extra_info``).
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numba
import numpy as np
import pytest
from PIL import Image

import kernels
from kernels.hamming import popcount64, popcount64_swar
from tests.test_kernels_frames import natural_frames

RESOLUTIONS = {"720p": (720, 1280), "1080p": (1080, 1920)}
BATCH = 32


@pytest.fixture
def full_size(benchmark):
    """True when benchmarking for real; quick runs use tiny inputs."""
    return not benchmark.disabled


@pytest.fixture(scope="module")
def frame_batches():
    rng = np.random.default_rng(0)
    base = {name: natural_frames(4, h, w, rng) for name, (h, w) in RESOLUTIONS.items()}
    # a batch of 32 distinct-enough frames without generating 32 full-size scenes
    return {name: np.ascontiguousarray(np.concatenate(
        [np.roll(f, 8 * k, axis=1) for k in range(BATCH // 4) for f in b[:, None]]))
        for name, b in base.items()}


@pytest.fixture
def threads():
    before = numba.get_num_threads()
    yield lambda n: numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(before)


@numba.njit(nogil=True, cache=True)
def _stream_sum(words):
    s0 = s1 = s2 = s3 = np.uint64(0)
    n = words.shape[0] - words.shape[0] % 4
    for i in range(0, n, 4):
        s0 += words[i]
        s1 += words[i + 1]
        s2 += words[i + 2]
        s3 += words[i + 3]
    for i in range(n, words.shape[0]):
        s0 += words[i]
    return s0 + s1 + s2 + s3


def _frames(frame_batches, res, full_size):
    frames = frame_batches[res]
    return frames if full_size else np.ascontiguousarray(frames[:2, :90, :160])


def _record(benchmark, frames):
    if benchmark.disabled or not benchmark.stats:
        return
    mean = benchmark.stats.stats.min
    benchmark.extra_info["frames_per_s"] = len(frames) / mean
    benchmark.extra_info["GB_per_s"] = frames.nbytes / mean / 1e9


@pytest.mark.parametrize("res", list(RESOLUTIONS))
def test_bench_bandwidth_baseline(benchmark, frame_batches, res, full_size):
    frames = _frames(frame_batches, res, full_size)
    words = frames.reshape(-1).view(np.uint64)
    benchmark.group = f"frames-{res}"
    benchmark(_stream_sum, words)
    _record(benchmark, frames)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("kernel", ["phash64", "pdq256", "keyframe_descriptors"])
@pytest.mark.parametrize("res", list(RESOLUTIONS))
def test_bench_frame_kernels(benchmark, frame_batches, res, kernel, n_threads, threads,
                             full_size):
    frames = _frames(frame_batches, res, full_size)
    fn = getattr(kernels, kernel)
    threads(n_threads)
    fn(frames[:1])  # compile outside the timing
    benchmark.group = f"frames-{res}"
    benchmark.extra_info["threads"] = n_threads
    benchmark(fn, frames)
    _record(benchmark, frames)


@pytest.mark.parametrize("res", list(RESOLUTIONS))
def test_bench_peer_imagehash(benchmark, frame_batches, res, full_size):
    imagehash = pytest.importorskip("imagehash")
    frames = _frames(frame_batches, res, full_size)[:4]
    benchmark.group = f"frames-{res}"
    benchmark(lambda: [imagehash.phash(Image.fromarray(f)) for f in frames])
    _record(benchmark, frames)


@pytest.mark.parametrize("res", list(RESOLUTIONS))
def test_bench_peer_pdqhash(benchmark, frame_batches, res, full_size):
    pdqhash = pytest.importorskip("pdqhash", reason="pdqhash (bench extra) is not installed")
    frames = _frames(frame_batches, res, full_size)[:2]
    benchmark.group = f"frames-{res}"
    benchmark(lambda: [pdqhash.compute(f) for f in frames])
    _record(benchmark, frames)


@pytest.fixture
def codes(full_size):
    rng = np.random.default_rng(1)
    n, m = (10_000, 100_000) if full_size else (50, 300)
    return (rng.integers(0, 256, (n, 32), dtype=np.uint8),
            rng.integers(0, 256, (m, 32), dtype=np.uint8))


def test_bench_hamming_matrix(benchmark, codes, full_size):
    queries, base = codes
    queries = queries[:1000] if full_size else queries  # 1000 x 100k uint16 = 200 MB out
    kernels.hamming_matrix(queries[:1], base[:1])
    benchmark.group = "hamming"
    benchmark.pedantic(kernels.hamming_matrix, (queries, base), rounds=3, iterations=1)
    if not benchmark.disabled:
        benchmark.extra_info["pairs_per_s"] = len(queries) * len(base) / benchmark.stats.stats.min


def test_bench_hamming_topk(benchmark, codes, full_size):
    queries, base = codes
    kernels.hamming_topk(queries[:1], base[:1], 10)
    benchmark.group = "hamming"
    benchmark.pedantic(kernels.hamming_topk, (queries, base, 10), rounds=1, iterations=1)
    if not benchmark.disabled:
        benchmark.extra_info["pairs_per_s"] = len(queries) * len(base) / benchmark.stats.stats.min


@numba.njit(nogil=True, cache=True)
def _popcount_sum(words, use_intrinsic):
    s = np.uint64(0)
    if use_intrinsic:
        for i in range(words.shape[0]):
            s += popcount64(words[i])
    else:
        for i in range(words.shape[0]):
            s += popcount64_swar(words[i])
    return s


@pytest.mark.parametrize("variant", ["ctpop", "swar"])
def test_bench_popcount(benchmark, variant, full_size):
    words = np.random.default_rng(2).integers(0, 2**63, 4_000_000 if full_size else 1000,
                                               dtype=np.uint64)
    expected = int(np.bitwise_count(words).sum())
    assert _popcount_sum(words, variant == "ctpop") == expected
    benchmark.group = "popcount"
    benchmark(_popcount_sum, words, variant == "ctpop")


def test_bench_align_keyframe_pairs(benchmark, full_size):
    rng = np.random.default_rng(3)
    n_clips, per_clip, n_pairs = (20_000, 20, 100_000) if full_size else (50, 20, 200)
    hashes = rng.integers(0, 256, (n_clips * per_clip, 32), dtype=np.uint8)
    valid = np.ones(len(hashes), bool)
    starts = np.arange(0, len(hashes), per_clip, dtype=np.int64)
    counts = np.full(n_clips, per_clip, np.int64)
    pa = rng.integers(0, n_clips, n_pairs).astype(np.int64)
    pb = rng.integers(0, n_clips, n_pairs).astype(np.int64)
    args = (hashes, valid, starts, counts, pa, pb, 31, -1)
    kernels.align_keyframe_pairs(hashes, valid, starts, counts, pa[:1], pb[:1], 31, -1)
    benchmark.group = "align"
    benchmark.pedantic(kernels.align_keyframe_pairs, args, rounds=3, iterations=1)
    if not benchmark.disabled:
        benchmark.extra_info["pairs_per_s"] = n_pairs / benchmark.stats.stats.min


def test_bench_clip_embeddings(benchmark, full_size):
    rng = np.random.default_rng(4)
    n_clips, per_clip = (10_000, 20) if full_size else (20, 5)
    desc = rng.random((n_clips * per_clip, kernels.DESCRIPTOR_DIM), dtype=np.float32)
    starts = np.arange(0, n_clips * per_clip, per_clip, dtype=np.int64)
    counts = np.full(n_clips, per_clip, np.int64)
    tel = rng.random((n_clips, kernels.TELEMETRY_DIM), dtype=np.float32)
    proj = kernels.embedding_projection()
    kernels.clip_embeddings(desc, starts[:1], counts[:1], tel[:1], proj)
    benchmark.group = "embedding"
    benchmark.pedantic(kernels.clip_embeddings, (desc, starts, counts, tel, proj), rounds=3,
                       iterations=1)
    if not benchmark.disabled:
        benchmark.extra_info["clips_per_s"] = n_clips / benchmark.stats.stats.min


CALL_EVERY_KERNEL = textwrap.dedent("""
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    import kernels
    t1 = time.perf_counter()
    f = np.zeros((1, 8, 8, 3), np.uint8)
    c = np.zeros((2, 32), np.uint8)
    one, i64 = np.array([0], np.int64), np.array([2], np.int64)
    kernels.luma_area_downsample(f, 2, 2); kernels.phash64(f); kernels.pdq256(f)
    kernels.hamming_matrix(c, c); kernels.hamming_topk(c, c, 1); kernels.hamming_within(c, c, 1)
    kernels.align_keyframe_pairs(c, np.ones(2, bool), one, i64, one, one, 1, -1)
    d = kernels.keyframe_descriptors(f)
    s = kernels.telemetry_stats(np.zeros(1), np.zeros((1, 4), np.float32), one, one + 1)
    kernels.clip_embeddings(d, one, one + 1, s, kernels.embedding_projection())
    print(json.dumps({"import_s": t1 - t0, "total_s": time.perf_counter() - t0}))
""")


def _run_fresh(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, CLIPDEX_NUMBA_CACHE="1")
    out = subprocess.run([sys.executable, "-c", CALL_EVERY_KERNEL], env=env, check=True,
                         capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__))))
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bench_cold_compile(benchmark):
    """Cold (empty NUMBA_CACHE_DIR) vs cached compile of every kernel, in fresh processes."""
    if benchmark.disabled:
        pytest.skip("cold compile (~40 s) is measured only with --benchmark-enable")
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        cold = _run_fresh(cache_dir)
        cold_wall = time.perf_counter() - start
        cached = benchmark.pedantic(_run_fresh, (cache_dir,), rounds=1, iterations=1)
    benchmark.group = "compile"
    benchmark.extra_info.update(cold_s=cold["total_s"], cold_wall_s=cold_wall,
                                cached_s=cached["total_s"], import_s=cached["import_s"])
    assert cached["total_s"] < cold["total_s"]
