"""Start-up and compile costs of the whole pipeline, measured in fresh processes.

* ``clipdex --help`` on a cold Numba cache (nothing may compile at import);
* ``clipdex demo`` twice against one empty Numba cache directory: the first run compiles every
  kernel and writes the disk cache, the second loads it. ``first_ingest_s`` is the first region's
  ingest (where the kernels compile or load).

With ``--benchmark-disable`` (the default test run) the demo runs on a small fleet.
Run: ``pytest benchmarks/test_bench_pipeline.py --benchmark-enable -s``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest


def _env(cache_dir) -> dict:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    return env


def _clipdex(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.surfaces.cli", *args], capture_output=True, text=True, env=env,
                          check=False)


def test_help_is_fast_on_a_cold_cache(benchmark, tmp_path):
    env = _env(tmp_path / "numba-cold")

    def run():
        t = time.perf_counter()
        res = _clipdex("--help", env=env)
        assert res.returncode == 0
        return time.perf_counter() - t

    seconds = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["help_seconds"] = round(seconds, 3)
    assert not any((tmp_path / "numba-cold").rglob("*.nbi")), "--help compiled a kernel"


def test_demo_cold_then_cached(benchmark, request, tmp_path):
    small = request.config.getoption("benchmark_disable")
    env = _env(tmp_path / "numba-cache")
    clips = ["--clips", "40"] if small else []

    def demo(n: int) -> dict:
        res = _clipdex("demo", "--home", str(tmp_path / f"home{n}"), "--json", *clips, env=env)
        assert res.stdout.strip(), res.stderr[-2000:]
        return json.loads(res.stdout)

    results = {}

    def both():
        results["cold"] = demo(1)
        results["cached"] = demo(2)

    benchmark.pedantic(both, rounds=1, iterations=1)
    cold, cached = results["cold"], results["cached"]
    benchmark.extra_info.update({
        "clips": cold["clips"],
        "cold_first_ingest_s": cold["first_ingest_s"], "cold_total_s": cold["seconds"],
        "cached_first_ingest_s": cached["first_ingest_s"], "cached_total_s": cached["seconds"],
    })
    # the second run loads compiled kernels from the disk cache instead of compiling them
    assert cached["first_ingest_s"] < cold["first_ingest_s"]
    assert any((tmp_path / "numba-cache").rglob("*.nbi"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "--benchmark-enable", "-s"]))
