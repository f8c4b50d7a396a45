"""Decode throughput: raw PyAV decode vs ``iter_video_clips`` with each strategy (720p H.264).

Run: ``pytest benchmarks/test_bench_decode.py --benchmark-enable -p no:randomly``
Files: 4 x 10 s, 1280x720, 30 fps, libx264 ~4 Mbit/s (preset veryfast, B-frames on) of a
panned noise texture with a moving box, encoded once and cached in the temp folder. With
benchmarks disabled (the default test run) a small 320x180 file is used so this stays quick.
Each result's ``extra_info`` holds frames/s (source frames per second of wall time) and, for
the strategies (every entry of ``engine.sources.video.DECODE_STRATEGIES``), the speed-up over
``strategy="all"`` at the same thread count. Real-footage speed and dedup quality of each
strategy: ``python -m benchmarks.decode_modes``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pytest

from engine.sources.video import AUTO_STRATEGY, DECODE_STRATEGIES, iter_video_clips
from tests.test_sources_helpers import textured_scene, write_video

CACHE = Path(tempfile.gettempdir()) / "clipdex_bench_decode_v1"
FULL = dict(count=4, seconds=10.0, size=(1280, 720), fps=30, bit_rate=4_000_000)
QUICK = dict(count=1, seconds=2.0, size=(320, 180), fps=30, bit_rate=600_000)
RESULTS: dict[tuple[str, int], float] = {}


def _texture(size: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    width, height = size
    coarse = rng.integers(0, 256, (height // 8 + 40, width // 8 + 200, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1).astype(np.int16)
    texture += rng.integers(-24, 25, texture.shape, dtype=np.int16)  # fine detail
    return np.clip(texture, 0, 255).astype(np.uint8)


def make_files(spec: dict) -> list[Path]:
    width, height = spec["size"]
    folder = CACHE / f"{width}x{height}_{spec['seconds']:g}s_{spec['bit_rate']}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(spec["count"]):
        path = folder / f"drive{i}.mp4"
        if not path.exists():
            texture = _texture(spec["size"], seed=i)
            partial = path.with_suffix(".partial.mp4")
            write_video(
                partial, codec="libx264", fps=spec["fps"], seconds=spec["seconds"],
                size=spec["size"], bit_rate=spec["bit_rate"],
                options={"preset": "veryfast", "bf": "3"},
                content=lambda t, w, h, tex=texture, k=i: textured_scene(t + 7 * k, w, h, tex),
            )
            partial.rename(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def files(request) -> tuple[list[Path], int]:
    config = request.config
    disabled = config.getoption("benchmark_disable") and not config.getoption("benchmark_enable")
    spec = QUICK if disabled else FULL
    paths = make_files(spec)
    return paths, round(spec["seconds"] * spec["fps"]) * len(paths)


def decode_all_frames(paths: list[Path], threads: int) -> int:
    frames = 0
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            for _ in container.decode(stream):
                frames += 1
    return frames


def sample_clips(paths: list[Path], threads: int, strategy: str) -> int:
    keyframes = 0
    for path in paths:
        for clip in iter_video_clips(path, clip_id_base="b", threads=threads, strategy=strategy):
            keyframes += len(clip.keyframe_times)
    return keyframes


def seek_sample(paths: list[Path], threads: int, hz: float = 2.0) -> int:
    """Strategy (c), measured only: seek to each target and decode up to it."""
    picked = 0
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            tb = stream.time_base
            duration = float(stream.duration * tb)
            start = stream.start_time or 0
            for j in range(int(duration * hz) + 1):
                target = j / hz
                container.seek(start + int(target / tb), stream=stream, backward=True)
                previous = None
                for frame in container.decode(stream):
                    t = float((frame.pts - start) * tb)
                    if t >= target:
                        best = frame if previous is None or t - target < target - previous[0] \
                            else previous[1]
                        best.to_ndarray(format="rgb24")
                        picked += 1
                        break
                    previous = (t, frame)
    return picked


def _record(benchmark, name: str, threads: int, frames: int, started: float) -> None:
    stats = getattr(benchmark, "stats", None)
    seconds = stats.stats.median if stats else time.perf_counter() - started
    fps = frames / seconds
    RESULTS[(name, threads)] = fps
    benchmark.extra_info.update({"frames_per_s": round(fps, 1), "threads": threads})
    baseline = RESULTS.get(("all", threads))
    if baseline and name != "all":
        benchmark.extra_info["speedup_vs_all"] = round(fps / baseline, 3)


@pytest.mark.parametrize("threads", [1, 2])
def test_bench_pyav_decode_all_frames(benchmark, files, threads):
    paths, frames = files
    started = time.perf_counter()
    decoded = benchmark.pedantic(decode_all_frames, args=(paths, threads), rounds=3,
                                 warmup_rounds=0)
    assert decoded == frames
    _record(benchmark, "pyav", threads, frames, started)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("strategy", list(DECODE_STRATEGIES))
def test_bench_iter_video_clips(benchmark, files, strategy, threads):
    paths, frames = files
    started = time.perf_counter()
    keyframes = benchmark.pedantic(sample_clips, args=(paths, threads, strategy), rounds=3,
                                   warmup_rounds=0)
    last_frame_s = (frames / len(paths) - 1) / 30  # sample times run to the last frame
    assert keyframes == len(paths) * (int(last_frame_s * 2) + 1)
    _record(benchmark, strategy, threads, frames, started)
    if strategy == AUTO_STRATEGY:
        benchmark.extra_info["auto_default"] = True


@pytest.mark.parametrize("threads", [1, 2])
def test_bench_seek_per_sample(benchmark, files, threads):
    paths, frames = files
    started = time.perf_counter()
    picked = benchmark.pedantic(seek_sample, args=(paths, threads), rounds=1, warmup_rounds=0)
    assert picked > 0
    _record(benchmark, "seek", threads, frames, started)
