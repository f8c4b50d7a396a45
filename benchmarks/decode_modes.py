"""Decode strategies side by side on real footage: speed and dedup quality.

    python -m benchmarks.decode_modes --clips DIR [--json OUT] [--rounds 3] [--full]
                                      [--modes all,noloop,...] [--e2e-rounds 3]

``DIR`` (or ``CLIPDEX_REAL_CLIPS``) is the real-footage folder of :mod:`benchmarks.real_quality`.

1. **Speed.** Every video in ``DIR``, decoded by each entry of
   :data:`engine.sources.video.DECODE_STRATEGIES` through ``iter_video_clips`` (decode + 2 Hz
   tent keyframes, 2 decoder threads), alternating in each round with plain PyAV decoding of
   every frame of the same files (2 threads): medians over rounds of wall and process CPU
   seconds; frames/s counts the files' frames (all of them, whatever a strategy skips).
2. **Quality.** :func:`benchmarks.real_quality.run` once per strategy on one set of variants
   (its quick form unless ``--full``): precision, recall, F1, and the recall of whole copies
   (:data:`WHOLE_CLASSES`: variants that show the whole segment at its own speed).
3. **Pick.** The fastest strategy (wall time) whose F1 is within :data:`F1_MARGIN` of
   ``all``: the rule that sets :data:`engine.sources.video.AUTO_STRATEGY`.
4. **End to end.** ``clipdex ingest`` + ``clipdex dedup --pairs --json`` as whole processes
   on every video in ``DIR``, for the pick, the default (``auto``) and ``all``, alternating with
   a whole process that decodes every frame with plain PyAV: medians of wall seconds.

Prints one 80-column table and saves JSON (default ``benchmarks/results/decode_modes.json``).
Timings on a shared machine are noisy: compare the ratios of one run; the load is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import real_quality

DEFAULT_JSON = Path(__file__).parent / "results" / "decode_modes.json"
THREADS = 2
F1_MARGIN = 0.01
#: aliases measured under their other name
ALIASES = {"targeted": "all", "nonkey": "keyframes"}
#: real_quality classes whose variant is the whole segment at its own speed ("whole copies")
WHOLE_CLASSES = ("reencode_x264_crf36", "reencode_hevc", "reencode_vp9", "reencode_av1",
                 "reencode_mpeg4", "reencode_mjpeg", "downscale_320", "photometric", "grayscale",
                 "noise_blur", "letterbox", "pillarbox", "overlay", "crop_centre",
                 "crop_offcentre", "screen_recording")
_PLAIN_DECODE = """
import sys, av
n = 0
for f in sys.argv[2:]:
    with av.open(f) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        s.codec_context.thread_count = int(sys.argv[1])
        n += sum(1 for _ in c.decode(s))
print(n)
"""


def video_files(clips_dir: Path) -> list[Path]:
    """The folder's .mp4 files (the GIF is decoded by Pillow, not FFmpeg: left out)."""
    return sorted(p for p in clips_dir.iterdir() if p.suffix.lower() == ".mp4")


def plain_decode(paths: list[Path], threads: int = THREADS) -> int:
    """Frames of ``paths``, every one decoded by PyAV with ``threads`` threads."""
    import av

    frames = 0
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            frames += sum(1 for _ in container.decode(stream))
    return frames


def strategy_decode(paths: list[Path], strategy: str, threads: int = THREADS) -> int:
    """Keyframes of ``paths`` made with ``strategy`` (what ingest decodes); their number."""
    from engine.sources.video import iter_video_clips

    return sum(len(clip.keyframes) for path in paths
               for clip in iter_video_clips(path, clip_id_base="b", threads=threads,
                                            strategy=strategy))


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - start_cpu


def measure_speed(paths: list[Path], modes: list[str], rounds: int,
                  say: Callable[[str], None]) -> dict:
    """Median wall/CPU seconds of each mode and of plain decoding, alternating per round."""
    frames = plain_decode(paths)  # also warms the page cache
    strategy_decode(paths[:1], "all")  # warm: JIT from the disk cache
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], **{m: [] for m in modes}}
    for r in range(rounds):
        for mode in modes:
            runs["plain"].append(_timed(lambda: plain_decode(paths)))
            runs[mode].append(_timed(lambda m=mode: strategy_decode(paths, m)))
        say(f"speed round {r + 1}/{rounds} done (load {os.getloadavg()[0]:.2f})")
    out = {}
    for name, times in runs.items():
        wall = statistics.median(t for t, _ in times)
        cpu = statistics.median(c for _, c in times)
        out[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                     "frames_per_s": round(frames / wall, 1)}
    plain = out["plain"]
    for name in modes:
        out[name]["speed_vs_plain"] = round(plain["wall_s"] / out[name]["wall_s"], 3)
        out[name]["cpu_vs_plain"] = round(out[name]["cpu_s"] / plain["cpu_s"], 3)
    return {"frames": frames, "files": len(paths), "rounds": rounds, "threads": THREADS,
            "modes": out}


def measure_quality(clips_dir: Path, modes: list[str], full: bool, work: Path,
                    say: Callable[[str], None]) -> dict:
    """real_quality scores of each mode on one set of variants (made once, in ``work``)."""
    opts = real_quality.BenchOptions() if full else real_quality.BenchOptions.quick()
    out = {}
    for mode in modes:
        say(f"quality: {mode}")
        result = real_quality.run(clips_dir, opts, work, say=say, decode=mode)
        s = result["scores"]
        whole = [s["classes"][c] for c in WHOLE_CLASSES if c in s["classes"]]
        pairs = sum(r["pairs"] for r in whole)
        out[mode] = {
            "precision": s["precision"], "recall": s["recall"], "f1": s["f1"],
            "whole_copy_recall": round(sum(r["found"] for r in whole) / pairs, 4) if pairs else None,
            "hard_negatives_whole": s["hard_negatives"]["whole"],
            "offset_error_max_s": s["offset_error_max_s"],
            "class_recall": {c: r["recall"] for c, r in s["classes"].items()},
            "ingest_s": result["timing_s"]["ingest"],
        }
    return {"form": "full" if full else "quick", "options": result["options"], "modes": out}


def _clipdex(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.surfaces.cli", *args]


def measure_end_to_end(paths: list[Path], modes: list[str], rounds: int, work: Path,
                       say: Callable[[str], None]) -> dict:
    """Whole-process ``clipdex ingest`` + ``dedup`` per mode and a plain-decode process."""
    files = [str(p) for p in paths]
    runs: dict[str, list[float]] = {"plain": [], **{m: [] for m in modes}}
    for r in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", _PLAIN_DECODE, str(THREADS), *files], check=True,
                       capture_output=True)
        runs["plain"].append(time.perf_counter() - start)
        for mode in modes:
            home = work / f"home-{mode}-{r}"
            subprocess.run(_clipdex("regions", "add", "e2e", "--home", str(home)), check=True,
                           capture_output=True)
            start = time.perf_counter()
            subprocess.run(_clipdex("ingest", *files, "--region", "e2e", "--home", str(home),
                                    "--decode", mode), check=True, capture_output=True)
            subprocess.run(_clipdex("dedup", "--region", "e2e", "--home", str(home), "--pairs",
                                    "--json"), check=True, capture_output=True)
            runs[mode].append(time.perf_counter() - start)
            shutil.rmtree(home, ignore_errors=True)
        say(f"end-to-end round {r + 1}/{rounds} done (load {os.getloadavg()[0]:.2f})")
    wall = {name: round(statistics.median(t), 2) for name, t in runs.items()}
    return {"rounds": rounds, "wall_s": wall,
            "vs_plain": {m: round(wall["plain"] / wall[m], 3) for m in modes},
            "vs_all": {m: round(wall["all"] / wall[m], 3) for m in modes if "all" in wall}}


def pick(speed: dict, quality: dict) -> str:
    """The fastest mode whose real-footage F1 is within :data:`F1_MARGIN` of ``all``."""
    floor = quality["modes"]["all"]["f1"] - F1_MARGIN
    good = [m for m, q in quality["modes"].items() if q["f1"] >= floor - 1e-9]
    return max(good, key=lambda m: speed["modes"][m]["speed_vs_plain"])


def table_lines(result: dict) -> list[str]:
    """One 80-column table: speed and quality per mode, then the end-to-end line."""
    speed, quality = result["speed"]["modes"], result["quality"]["modes"]
    head = (f"{'mode':<14}{'frames/s':>9}{'x plain':>8}{'CPU s':>7}{'CPU x':>6}{'prec':>7}"
            f"{'recall':>7}{'F1':>7}{'whole':>7}{'dF1':>7}")
    lines = [head, "-" * len(head)]
    plain = speed["plain"]
    lines.append(f"{'plain PyAV':<14}{plain['frames_per_s']:>9.0f}{1:>8.2f}{plain['cpu_s']:>7.1f}"
                 f"{1:>6.2f}")
    f1_all = quality.get("all", {}).get("f1")
    for mode in result["modes"]:
        s, q = speed[mode], quality.get(mode, {})
        name = f"{mode} *" if mode == result["pick"] else mode
        d_f1 = q["f1"] - f1_all if q and f1_all is not None else None

        def fmt(v, spec):
            return format(v, spec) if v is not None else "-"

        lines.append(f"{name:<14}{s['frames_per_s']:>9.0f}{s['speed_vs_plain']:>8.2f}"
                     f"{s['cpu_s']:>7.1f}{s['cpu_vs_plain']:>6.2f}{fmt(q.get('precision'), '.3f'):>7}"
                     f"{fmt(q.get('recall'), '.3f'):>7}{fmt(q.get('f1'), '.3f'):>7}"
                     f"{fmt(q.get('whole_copy_recall'), '.3f'):>7}{fmt(d_f1, '+.3f'):>7}")
    sp = result["speed"]
    lines += ["-" * len(head),
              f"* fastest with F1 within {F1_MARGIN} of all; {sp['files']} files, "
              f"{sp['frames']} frames, {sp['threads']} threads,",
              f"  medians of {sp['rounds']} alternating rounds; whole = recall of whole copies",
              f"quality: benchmarks.real_quality ({result['quality']['form']}); load "
              + " / ".join(f"{x:.1f}" for x in result["load"])]
    e2e = result.get("end_to_end")
    if e2e:
        w = e2e["wall_s"]
        lines.append(f"ingest + dedup as processes, medians of {e2e['rounds']} alternating "
                     f"rounds: plain PyAV decode {w['plain']} s")
        lines += [f"  --decode {m}: {w[m]} s = {e2e['vs_plain'][m]:.2f}x the speed of plain "
                  f"decode, {e2e['vs_all'].get(m, 1.0):.2f}x of --decode all" for m in e2e["vs_plain"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    from engine.sources.video import AUTO_STRATEGY, DECODE_STRATEGIES

    ap = argparse.ArgumentParser(prog="python -m benchmarks.decode_modes",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--clips", help=f"real clips folder (default: ${real_quality.ENV_VAR})")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to save the results")
    ap.add_argument("--rounds", type=int, default=3, help="alternating speed rounds")
    ap.add_argument("--e2e-rounds", type=int, default=3,
                    help="alternating end-to-end rounds (0: skip)")
    ap.add_argument("--full", action="store_true", help="the full real_quality run (slow)")
    ap.add_argument("--modes", help="comma-separated strategies (default: every one)")
    ap.add_argument("--keep", type=Path, help="keep the quality variants here (reused later)")
    args = ap.parse_args(argv)
    clips_dir = real_quality.clips_folder(args.clips)
    modes = args.modes.split(",") if args.modes else \
        [m for m in DECODE_STRATEGIES if m not in ALIASES]
    unknown = [m for m in modes if m not in DECODE_STRATEGIES]
    if unknown:
        raise SystemExit(f"--modes: unknown {unknown}; choose from {', '.join(DECODE_STRATEGIES)}")
    paths = video_files(clips_dir)
    if not paths:
        raise SystemExit(f"{clips_dir}: no .mp4 files; point --clips at the dev set folder")

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    work = args.keep or Path(tempfile.mkdtemp(prefix="clipdex-decode-modes-"))
    load = [os.getloadavg()[0]]
    try:
        speed = measure_speed(paths, modes, args.rounds, say)
        load.append(os.getloadavg()[0])
        quality = measure_quality(clips_dir, modes, args.full, work, say)
        load.append(os.getloadavg()[0])
        e2e = None
        chosen = pick(speed, quality) if "all" in modes else AUTO_STRATEGY
        if args.e2e_rounds > 0:
            e2e_modes = list(dict.fromkeys([chosen, AUTO_STRATEGY, "all"]))
            e2e = measure_end_to_end(paths, e2e_modes, args.e2e_rounds, work, say)
            load.append(os.getloadavg()[0])
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {"modes": modes, "pick": chosen, "default": AUTO_STRATEGY, "load": load, "speed": speed,
              "quality": quality, "end_to_end": e2e,
              "docs": {m: DECODE_STRATEGIES[m].doc for m in modes}}
    print("\n".join(table_lines(result)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
