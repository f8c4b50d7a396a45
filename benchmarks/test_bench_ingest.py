"""Ingest throughput vs plain PyAV decoding of the same H.264 1280x720 files, 2 threads.

Run: ``pytest benchmarks/test_bench_ingest.py --benchmark-enable -p no:randomly``
Files: the cached 4 x 10 s 1280x720 30 fps libx264 files of ``test_bench_decode.py``. In one
test, rounds alternate between (a) PyAV decoding every frame (thread_count=2) and (b)
``engine.ingest.pipeline.ingest`` of the same files into a fresh temp region (one file at a time,
``threads=2``: decode + tent-filtered keyframes + hashes, embeddings, thumbnails + catalog,
zarr and FAISS index writes; each ingest makes its fresh home inside the timing, the homes are
deleted after the rounds, outside it). ``extra_info["ingest_vs_decode"]`` is the ratio of the
median throughputs (target >= 0.85), ``cpu_s`` the median process CPU seconds (all threads) of
each -- on a machine shared with other jobs the wall-clock ratio drifts, CPU seconds show what
ingest adds -- and ``sampling_vs_decode`` the same for ``iter_video_clips`` with
the default strategy alone, and ``auto_strategy_speedup_vs_all`` the default strategy's
speed-up over ``iter_video_clips`` decoding every frame (``strategy="all"``). Ingest runs with the
default decode strategy, so the >= 0.85 target guards it. With the ``learned`` extra installed,
``ingest_learned_vs_decode`` is the same ratio for ``ingest --learned`` and
``ingest_learned_5s_vs_decode`` for it with the files cut into 5-s clips (reported, not
asserted: the learned embedding is optional). With benchmarks disabled a 320x180 file and one round keep
it quick.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import pytest

from benchmarks.test_bench_decode import FULL, QUICK, decode_all_frames, make_files, sample_clips
from engine.ingest.pipeline import IngestOptions, ingest
from engine.scenes.learned import available as learned_available
from engine.sources.video import AUTO_STRATEGY
from engine.sovereignty.regions import Home

THREADS = 2


def ingest_files(paths: list[Path], threads: int, root: Path | None = None, learned: bool = False,
                 clip_seconds: float | None = None) -> int:
    """Ingest ``paths`` into a fresh home (made inside the timing) under ``root``; deleting the
    homes is left to the caller, outside the timing (it is not ingest work). Returns the files
    ingested (each as one clip, or cut into ``clip_seconds`` clips)."""
    if root is None:
        with tempfile.TemporaryDirectory(prefix="clipdex_bench_ingest_") as tmp:
            return ingest_files(paths, threads, Path(tmp), learned, clip_seconds)
    home = Home.open(Path(tempfile.mkdtemp(dir=root)) / "home", create=True)
    home.add_region("bench")
    report = ingest(home, "bench", [str(p) for p in paths],
                    IngestOptions(workers=1, threads=threads, learned=learned, clip_seconds=clip_seconds))
    assert report.ok, report.failed
    return len({c.rsplit("-", 1)[0] for c in report.ingested}) if clip_seconds else len(report.ingested)


def test_bench_ingest_vs_pyav_decode(benchmark, request):
    config = request.config
    disabled = config.getoption("benchmark_disable") and not config.getoption("benchmark_enable")
    spec = QUICK if disabled else FULL
    paths = make_files(spec)
    frames = round(spec["seconds"] * spec["fps"]) * len(paths)
    rounds = 1 if disabled else 5
    learned = learned_available()
    ingest_files(paths[:1], THREADS, learned=learned)  # warm: JIT from the disk cache, FAISS, zarr
    times: dict[str, list[float]] = {"decode": [], "sampling": [], "sampling_all": [],
                                     "ingest": [],
                                     **({"ingest_learned": [], "ingest_learned_5s": []} if learned else {})}
    cpu: dict[str, list[float]] = {name: [] for name in times}
    with tempfile.TemporaryDirectory(prefix="clipdex_bench_ingest_") as tmp:
        for _ in range(rounds):  # round robin: the machine is shared, ratios hold better
            for name, fn in (("decode", decode_all_frames),
                             ("ingest", lambda p, t: ingest_files(p, t, Path(tmp))),
                             ("sampling", lambda p, t: sample_clips(p, t, AUTO_STRATEGY)),
                             ("sampling_all", lambda p, t: sample_clips(p, t, "all")),
                             *((("ingest_learned", lambda p, t: ingest_files(p, t, Path(tmp), True)),
                                ("ingest_learned_5s", lambda p, t: ingest_files(p, t, Path(tmp), True, 5.0)))
                               if learned else ())):
                start, start_cpu = time.perf_counter(), time.process_time()
                fn(paths, THREADS)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    clips = benchmark.pedantic(ingest_files, args=(paths, THREADS), rounds=1, warmup_rounds=0)
    assert clips == len(paths)
    fps = {name: frames / statistics.median(t) for name, t in times.items()}
    benchmark.extra_info.update({
        "threads": THREADS,
        "files": len(paths),
        "frames": frames,
        "decode_frames_per_s": round(fps["decode"], 1),
        "ingest_frames_per_s": round(fps["ingest"], 1),
        "sampling_frames_per_s": round(fps["sampling"], 1),
        "ingest_vs_decode": round(fps["ingest"] / fps["decode"], 3),
        "sampling_vs_decode": round(fps["sampling"] / fps["decode"], 3),
        # process CPU seconds (all threads) per run: what ingest adds over decoding, whatever
        # the other users of the machine do to the wall-clock times
        "cpu_s": {name: round(statistics.median(c), 3) for name, c in cpu.items()},
        "auto_strategy": AUTO_STRATEGY,
        "auto_strategy_speedup_vs_all": round(fps["sampling"] / fps["sampling_all"], 3),
        "rounds": rounds,
        # ingest --learned (the optional learned embedding, 3 keyframes a clip through the network)
        # (one clip a file), and cut into 5-s clips (twice the network's work)
        **({"ingest_learned_frames_per_s": round(fps["ingest_learned"], 1),
            "ingest_learned_vs_decode": round(fps["ingest_learned"] / fps["decode"], 3),
            "ingest_learned_5s_frames_per_s": round(fps["ingest_learned_5s"], 1),
            "ingest_learned_5s_vs_decode": round(fps["ingest_learned_5s"] / fps["decode"], 3)}
           if learned else {}),
    })
    if not disabled:
        assert fps["ingest"] / fps["decode"] >= 0.85, benchmark.extra_info


@pytest.mark.parametrize("strategy", sorted({"all", "nonref", AUTO_STRATEGY}))
def test_bench_strategy_speedup_over_full_decode(benchmark, request, strategy):
    config = request.config
    disabled = config.getoption("benchmark_disable") and not config.getoption("benchmark_enable")
    spec = QUICK if disabled else FULL
    paths = make_files(spec)
    started = time.perf_counter()
    full = decode_all_frames(paths, THREADS)
    full_s = time.perf_counter() - started
    benchmark.pedantic(sample_clips, args=(paths, THREADS, strategy), rounds=1 if disabled else 3,
                       warmup_rounds=0)
    stats = getattr(benchmark, "stats", None)
    seconds = stats.stats.median if stats else full_s
    benchmark.extra_info.update({"strategy": strategy, "frames": full,
                                 "speedup_vs_pyav_full_decode": round(full_s / seconds, 3)})
