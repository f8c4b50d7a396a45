"""Kernel benchmarks, one per entry of ``kernels.registry`` and one per peer of each entry,
beside the streaming-read limit.

Default test runs pass ``--benchmark-disable``: every benchmark then runs once on tiny inputs
as a quick test. Run for real with ``pytest benchmarks/test_bench_kernels.py --benchmark-enable``
(items/s, GB/s and the bandwidth baseline land in ``extra_info``); ``python -m benchmarks run
--only kernels`` times the same table without pytest.
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

from benchmarks.peers import resolve
from kernels.hamming import popcount64, popcount64_swar
from kernels.registry import REGISTRY, frame_batch

SIZE_ENABLED = "full"


@pytest.fixture
def size(benchmark):
    """``full`` when benchmarking for real; test runs (--benchmark-disable) use tiny inputs."""
    return "tiny" if benchmark.disabled else SIZE_ENABLED


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


def _record(benchmark, spec, args, n_items=None):
    if benchmark.disabled or not benchmark.stats:
        return
    best = benchmark.stats.stats.min
    n_items = spec.count(args) if n_items is None else n_items
    benchmark.extra_info[f"{spec.unit.replace(' ', '_')}_per_s"] = n_items / best
    if spec.bytes_read is not None:
        benchmark.extra_info["GB_per_s"] = spec.bytes_read(args) / best / 1e9


def test_bench_bandwidth_baseline(benchmark, size):
    """The streaming-read limit: a Numba sum over the frame batch the frame kernels read."""
    frames = frame_batch(np.random.default_rng(0), size)
    words = frames.reshape(-1).view(np.uint64)
    benchmark.group = "frames"
    benchmark(_stream_sum, words)
    if not benchmark.disabled:
        benchmark.extra_info["GB_per_s"] = frames.nbytes / benchmark.stats.stats.min / 1e9


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("spec", REGISTRY, ids=lambda s: s.name)
def test_bench_kernel(benchmark, spec, n_threads, threads, size):
    args = spec.bench(np.random.default_rng(0), size)
    threads(n_threads)
    spec.kernel(*args)  # compile outside the timing
    benchmark.group = spec.name
    benchmark.extra_info["threads"] = n_threads
    benchmark.pedantic(spec.kernel, args, rounds=3, iterations=1)
    _record(benchmark, spec, args)


PEERS = [pytest.param(spec, peer, id=f"{spec.name}-{peer.name}")
         for spec in REGISTRY for peer in spec.peers]


@pytest.mark.parametrize("spec, peer", PEERS)
def test_bench_peer(benchmark, spec, peer, size):
    try:
        fn = resolve(peer.target)
    except ImportError as err:
        pytest.skip(f"{peer.name}: {err} (pip install '.[bench]')")
    args = spec.bench(np.random.default_rng(0), size)
    if peer.max_items is not None:
        args = (args[0][:peer.max_items], *args[1:])
    try:
        fn(*args)
    except ImportError as err:
        pytest.skip(f"{peer.name}: {err} (pip install '.[bench]')")
    benchmark.group = spec.name
    benchmark.pedantic(fn, args, rounds=3, iterations=1)
    _record(benchmark, spec, args)


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
def test_bench_popcount(benchmark, variant, size):
    words = np.random.default_rng(2).integers(0, 2**63, 4_000_000 if size == "full" else 1000,
                                               dtype=np.uint64)
    expected = int(np.bitwise_count(words).sum())
    assert _popcount_sum(words, variant == "ctpop") == expected
    benchmark.group = "popcount"
    benchmark(_popcount_sum, words, variant == "ctpop")


CALL_EVERY_KERNEL = textwrap.dedent("""
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    import kernels
    t1 = time.perf_counter()
    from kernels.registry import REGISTRY
    for spec in REGISTRY:
        spec.kernel(*spec.bench(np.random.default_rng(0), "tiny"))
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
