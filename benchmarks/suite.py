"""The benchmark suite: every benchmark of the repository, grouped by pipeline stage, in one
command and one JSON file.

    python -m benchmarks run [--quick|--full] [--only GROUP[,GROUP]] [--out FILE]
    python -m benchmarks compare BASELINE.json RUN.json [--threshold 0.2]

Each task runs in a process of its own (so its peak memory is its own, read from the
kernel's rusage of that child) and reuses a benchmark module of this folder: the suite
passes sizes and a JSON path, and reads that JSON back. The kernel group times the table
of ``kernels.registry`` in its own process: medians and spread of repeated calls, each
kernel beside its peers and beside the streaming-read limit (a Numba sum over the same
bytes). The saved JSON carries the machine (CPU model, cores, memory, library versions,
thread settings, load average before and after), every task's wall time, peak RSS and
results, and ``headline``: the ratios ``compare`` checks against a baseline.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
REAL_CLIPS_ENV = "CLIPDEX_REAL_CLIPS"

GROUPS = ("kernels", "decode-ingest", "dedup", "index-query", "selection", "end-to-end",
          "quality-synthetic", "quality-real", "scale", "cold-start")


@dataclass
class Task:
    """One benchmark run: the command for each mode and how to read its results."""

    name: str
    group: str
    argv: Callable[[str, Path], list[str] | None]  # (mode, json path) -> argv; None: skipped
    headline: Callable[[dict], dict] = field(default=lambda result: {})
    needs_real: bool = False  # needs the real-footage folder ($CLIPDEX_REAL_CLIPS)
    stdout_json: bool = False  # results are JSON lines on stdout, not a file
    timeout_s: dict = field(default_factory=lambda: {"quick": 120, "full": 900})


def _py(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def _real_clips() -> str | None:
    path = os.environ.get(REAL_CLIPS_ENV)
    if not path:
        default = ROOT.parent / "shared" / "devset"
        path = str(default) if default.is_dir() else None
    return path if path and Path(path).is_dir() else None


def _ratio(name: str, value, better: str = "higher", unit: str = "x") -> dict:
    return {name: {"value": None if value is None else round(float(value), 4),
                   "better": better, "unit": unit}}


# ---------------------------------------------------------------- headline extractors
def _kernels_headline(result: dict) -> dict:
    out: dict = {}
    for name, row in result.get("kernels", {}).items():
        out.update(_ratio(f"kernels.{name}.cost_vs_calibration", row.get("cost_vs_calibration"),
                          better="lower"))
        if row.get("vs_limit") is not None:
            out.update(_ratio(f"kernels.{name}.share_of_read_limit", row["vs_limit"]))
        for peer, speedup in row.get("vs_peers", {}).items():
            out.update(_ratio(f"kernels.{name}.speedup_vs.{peer}", speedup))
    return out


def _ingest_headline(result: dict) -> dict:
    return {**_ratio("ingest.vs_pyav_decode", result.get("ingest_vs_decode")),
            **_ratio("ingest.sampling_vs_pyav_decode", result.get("sampling_vs_decode")),
            **_ratio("ingest.auto_vs_all_decode", result.get("auto_strategy_speedup_vs_all"))}


def _dedup_headline(result) -> dict:
    rows = result if isinstance(result, list) else []
    out: dict = {}
    for r in rows:
        if "clips" not in r:  # the growth fit that follows the measured sizes
            continue
        n = r["clips"]
        out.update(_ratio(f"dedup.{n}.us_per_clip", r["full"]["wall_s"] / n * 1e6, "lower", "us"))
        out.update(_ratio(f"dedup.{n}.recall", r["quality"]["recall"]))
    return out


def _query_headline(result: dict) -> dict:
    out: dict = {}
    for r in result.get("index", []):
        n = r.get("n")
        out.update(_ratio(f"query.{n}.recall_at_10", r.get("recall_at_10", r.get("recall"))))
        out.update(_ratio(f"query.{n}.p50_ms", r.get("p50_ms"), "lower", "ms"))
    return out


def _select_headline(result) -> dict:
    out: dict = {}
    for r in result if isinstance(result, list) else [result]:
        if r.get("method", "").startswith("diverse") and r.get("vs_random") is not None:
            key = f"select.{r.get('n')}.{r['method'].split(' ')[0]}"
            out.update(_ratio(f"{key}.coverage_vs_random", 1.0 - r["vs_random"], "lower"))
    return out


def _demo_headline(result: dict) -> dict:
    out: dict = {}
    for region, s in (result.get("regions") or {}).items():
        dedup = s.get("dedup", {})
        out.update(_ratio(f"demo.{region}.dedup_recall", dedup.get("recall")))
        out.update(_ratio(f"demo.{region}.dedup_precision", dedup.get("precision")))
    return out


def _quality_headline(result: dict) -> dict:
    overall = result.get("overall", {})
    return {**_ratio("quality.dedup_f1", overall.get("dedup", {}).get("f1")),
            **_ratio("quality.rare_recall_at_k", overall.get("rarity", {}).get("recall_at_k")),
            **_ratio("quality.precision_at_10", overall.get("query", {}).get("precision_at_k"))}


def _real_headline(result: dict) -> dict:
    scores = result.get("scores", {})
    return {**_ratio("real.precision", scores.get("precision")),
            **_ratio("real.recall", scores.get("recall"))}


def _recordings_headline(result: dict) -> dict:
    return _ratio("real_recordings.cross_recording_self_pairs", len(result.get("self_pairs", [])),
                  "lower", "pairs")


def _learned_headline(result: dict) -> dict:
    judged = [result["scene_precision"][s]["cross_validated"] for s in result.get("required_scenes", [])]
    return {**_ratio("learned.worst_scene_precision_at_5_cv", min(judged) if judged else None),
            **_ratio("learned.compute_vs_decode", result.get("compute_vs_decode"))}


def _dask_headline(result: dict) -> dict:
    ratios = result.get("ratios", {})
    return {**_ratio("dask.2_workers_vs_local", ratios.get("dask2_vs_local")),
            **_ratio("dask.2_vs_1_worker", ratios.get("dask2_vs_dask1"))}


def _cold_headline(result: dict) -> dict:
    return {**_ratio("cold.help_s", result.get("help_s", {}).get("median"), "lower", "s"),
            **_ratio("cold.import_kernels_s", result.get("import_kernels_s", {}).get("median"),
                     "lower", "s")}


# ---------------------------------------------------------------- the task table
def _dedup_argv(mode, out):
    sizes = "3000" if mode == "quick" else "10000,30000,100000"
    return _py("benchmarks.dedup_scale", "--sizes", sizes, "--add", "200" if mode == "quick"
               else "1000", "--subset", "50" if mode == "quick" else "100", "--json", str(out))


def _query_argv(mode, out):
    sizes = "60000" if mode == "quick" else "100000,1000000"
    return _py("benchmarks.query_scale", "--sizes", sizes, "--json", str(out))


def _select_argv(mode, out):
    n, budget = ("20000", "200") if mode == "quick" else ("1000000", "10000")
    return _py("benchmarks.select_scale", "--n", n, "--budget", budget)


def _demo_argv(mode, out):
    clips = ["--clips", "40"] if mode == "quick" else []
    return [sys.executable, "-c", "from engine.surfaces.cli import main; main()", "demo", "--json", *clips]


def _quality_argv(mode, out):
    preset = "tiny" if mode == "quick" else "demo"
    return _py("benchmarks.quality", "--preset", preset, "--seed", "0", "--out", str(out))


def _real_quality_argv(mode, out):
    clips = _real_clips()
    if clips is None or mode == "quick":
        return None
    return _py("benchmarks.real_quality", "--clips", clips, "--quick", "--json", str(out))


def _real_recordings_argv(mode, out):
    clips = _real_clips()
    if clips is None:
        return None
    limit = "3" if mode == "quick" else "12"
    return _py("benchmarks.real_recordings", "--clips", clips, "--limit", limit,
               "--json", str(out))


def _learned_argv(mode, out):
    clips = _real_clips()
    if clips is None or mode == "quick":
        return None
    from engine.scenes.learned import available

    if not available():  # the learned extra is not installed: nothing to measure
        return None
    return _py("benchmarks.calibrate_learned", "--clips", clips, "--json", str(out))


def _dask_argv(mode, out):
    if mode == "quick":
        return _py("benchmarks.dask_scale", "--synthetic", "--videos", "2", "--rounds", "1",
                   "--json", str(out))
    clips = _real_clips()
    source = ["--clips", clips] if clips else ["--synthetic"]
    return _py("benchmarks.dask_scale", *source, "--rounds", "2", "--json", str(out))


def _own(task: str):
    return lambda mode, out: _py("benchmarks.suite", "task", task, mode, str(out))


TASKS: tuple[Task, ...] = (
    Task("kernels", "kernels", _own("kernels"), _kernels_headline,
         timeout_s={"quick": 120, "full": 600}),
    Task("ingest_vs_decode", "decode-ingest", _own("ingest"), _ingest_headline),
    Task("dedup_scale", "dedup", _dedup_argv, _dedup_headline),
    Task("query_scale", "index-query", _query_argv, _query_headline,
         timeout_s={"quick": 120, "full": 600}),
    Task("select_scale", "selection", _select_argv, _select_headline, stdout_json=True),
    Task("demo", "end-to-end", _demo_argv, _demo_headline, stdout_json=True),
    Task("quality", "quality-synthetic", _quality_argv, _quality_headline,
         timeout_s={"quick": 150, "full": 600}),
    Task("real_quality", "quality-real", _real_quality_argv, _real_headline, needs_real=True),
    Task("real_recordings", "quality-real", _real_recordings_argv, _recordings_headline,
         needs_real=True),
    Task("learned_scenes", "quality-real", _learned_argv, _learned_headline, needs_real=True),
    Task("dask_scale", "scale", _dask_argv, _dask_headline),
    Task("cold_start", "cold-start", _own("cold"), _cold_headline),
)


# ---------------------------------------------------------------- machine information
def machine_info() -> dict:
    """CPU model, cores, memory, library versions and thread settings of this machine."""
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {}
    for dist in ("numpy", "numba", "faiss-cpu", "zarr", "av", "pillow", "typer", "dask",
                 "imagehash", "pdqhash", "clipdex"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    threads = {k: os.environ.get(k) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                              "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                              "OPENBLAS_CORETYPE")}
    try:
        import numba

        threads["numba_threads"] = numba.get_num_threads()
        threads["numba_threading_layer_default"] = numba.config.THREADING_LAYER
    except ImportError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip() or None
    except OSError:
        commit = None
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "threads": threads,
        "commit": commit,
    }


# ---------------------------------------------------------------- running tasks
def _run_child(argv: list[str], timeout_s: float, env: dict) -> dict:
    """Run ``argv``; its wall time, peak RSS (its own rusage), exit status and output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=err, env=env,
                                start_new_session=True)
        deadline = start + timeout_s
        status, rusage, timed_out = None, None, False
        while status is None:
            pid, status_now, rusage_now = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, rusage = status_now, rusage_now
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, 9)
                timed_out = True
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return {"rc": proc.returncode, "wall_s": round(wall, 3), "timed_out": timed_out,
                "peak_rss_mb": round(rusage.ru_maxrss / 1024, 1),
                "cpu_s": round(rusage.ru_utime + rusage.ru_stime, 3),
                "stdout": out.read(), "stderr": err.read()}


def _parse_stdout_json(text: str):
    """The JSON a command printed: the whole output, or its JSON lines (one row each)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    if len(rows) == 1:
        return rows[0]
    return rows


def run_task(task: Task, mode: str, say=print) -> dict:
    """Run one task and return its record (results, wall time, peak memory, headline)."""
    with tempfile.TemporaryDirectory(prefix=f"clipdex-suite-{task.name}-") as tmp:
        out = Path(tmp) / "result.json"
        argv = task.argv(mode, out)
        if argv is None:
            why = (f"needs real footage (${REAL_CLIPS_ENV})" if task.needs_real and not _real_clips()
                   else f"not run in {mode} mode")
            say(f"  {task.name}: skipped ({why})")
            return {"group": task.group, "skipped": why}
        env = dict(os.environ, PYTHONPATH=str(ROOT), CLIPDEX_HOME=str(Path(tmp) / "home"))
        if not task.needs_real:  # the tests' real-footage switch must not change a benchmark
            env.pop(REAL_CLIPS_ENV, None)
        say(f"  {task.name}: {' '.join(Path(a).name if a == sys.executable else a for a in argv)}")
        child = _run_child(argv, task.timeout_s[mode], env)
        record = {"group": task.group, "command": argv[1:], "rc": child["rc"],
                  "wall_s": child["wall_s"], "cpu_s": child["cpu_s"],
                  "peak_rss_mb": child["peak_rss_mb"], "timed_out": child["timed_out"]}
        result = None
        if task.stdout_json:
            result = _parse_stdout_json(child["stdout"])
        elif out.exists():
            result = json.loads(out.read_text())
        if child["rc"] != 0 or result is None:
            record["error"] = (child["stderr"] or child["stdout"])[-2000:]
            say(f"    failed (exit {child['rc']}{', timed out' if child['timed_out'] else ''})")
        record["result"] = result
        record["headline"] = task.headline(result) if result else {}
        say(f"    {child['wall_s']:.1f} s, peak {child['peak_rss_mb']:.0f} MB")
        return record


def run_suite(mode: str = "quick", only: list[str] | None = None, say=print) -> dict:
    """Run every task of the selected groups; the whole record, ready to save."""
    unknown = set(only or ()) - set(GROUPS)
    if unknown:
        raise SystemExit(f"unknown group(s) {sorted(unknown)}; groups: {', '.join(GROUPS)}")
    started = time.time()
    load_before = os.getloadavg()
    info = machine_info()
    tasks: dict[str, dict] = {}
    for group in GROUPS:
        if only and group not in only:
            continue
        say(f"[{group}]")
        for task in TASKS:
            if task.group == group:
                tasks[task.name] = run_task(task, mode, say)
    headline: dict = {}
    for record in tasks.values():
        headline.update(record.get("headline", {}))
    return {
        "suite": "clipdex benchmarks",
        "mode": mode,
        "groups": list(only or GROUPS),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1),
        "machine": {**info, "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
        "headline": headline,
        "tasks": tasks,
    }


# ---------------------------------------------------------------- tasks run inside the suite
def _timed(fn, args, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return times


def _spread(times: list[float]) -> dict:
    qs = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "iqr_s": qs[2] - qs[0], "repeats": len(times)}


def kernel_timings(size: str = "quick", names: list[str] | None = None, repeats: int = 7,
                   peers: bool = True, threads: int = 1) -> dict:
    """Time every registry kernel (and its peers) on its benchmark input of ``size``, on
    ``threads`` Numba threads (1: a parallel region waiting for a core that another process
    holds costs more than the kernel on a shared machine).

    ``cost_vs_calibration`` is a kernel's median time over that of a fixed streaming sum of
    64 MiB measured in the same process, so it moves with the kernel, not with the machine.
    """
    import numba
    import numpy as np

    from benchmarks.peers import resolve
    from benchmarks.test_bench_kernels import _stream_sum
    from kernels.registry import REGISTRY

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    calibration_words = np.random.default_rng(0).integers(0, 2**63, 2**23, dtype=np.uint64)
    _stream_sum(calibration_words)
    calibration = _spread(_timed(_stream_sum, (calibration_words,), repeats))
    rows: dict = {}
    for spec in REGISTRY:
        if names and spec.name not in names:
            continue
        args = spec.bench(np.random.default_rng(0), size)
        spec.kernel(*args)  # compile (or load from the disk cache) outside the timing
        row = {"unit": spec.unit, "items": spec.count(args), "threads": numba.get_num_threads(),
               **_spread(_timed(spec.kernel, args, repeats))}
        row["items_per_s"] = row["items"] / row["median_s"]
        row["cost_vs_calibration"] = row["median_s"] / calibration["median_s"]
        if spec.bytes_read is not None:
            nbytes = spec.bytes_read(args)
            limit_words = np.ascontiguousarray(args[0]).reshape(-1)
            limit_words = limit_words[: len(limit_words) - len(limit_words) % 8].view(np.uint64)
            limit = statistics.median(_timed(_stream_sum, (limit_words,), repeats))
            row["GB_per_s"] = nbytes / row["median_s"] / 1e9
            row["read_limit_GB_per_s"] = limit_words.nbytes / limit / 1e9
            row["vs_limit"] = row["GB_per_s"] / row["read_limit_GB_per_s"]
        row["vs_peers"] = {}
        row["peers"] = {}
        for peer in spec.peers if peers else ():
            try:
                fn = resolve(peer.target)
                peer_args = args if peer.max_items is None else (args[0][:peer.max_items],
                                                                 *args[1:])
                fn(*peer_args)
            except ImportError as err:
                row["peers"][peer.name] = {"skipped": f"{err}"}
                continue
            peer_row = _spread(_timed(fn, peer_args, max(3, repeats // 2)))
            peer_items = spec.count(peer_args)
            peer_row["items_per_s"] = peer_items / peer_row["median_s"]
            row["peers"][peer.name] = peer_row
            row["vs_peers"][peer.name] = row["items_per_s"] / peer_row["items_per_s"]
        rows[spec.name] = row
    return {"size": size, "calibration": calibration, "kernels": rows}


def _task_kernels(mode: str) -> dict:
    return kernel_timings("quick" if mode == "quick" else "full",
                          repeats=7 if mode == "quick" else 9)


def _task_ingest(mode: str) -> dict:
    """Ingest against plain PyAV decoding of the same H.264 files, in alternating rounds."""
    from pathlib import Path as _Path

    from benchmarks.test_bench_decode import FULL, decode_all_frames, make_files, sample_clips
    from benchmarks.test_bench_ingest import THREADS, ingest_files
    from engine.sources.video import AUTO_STRATEGY

    spec = dict(FULL, count=1, seconds=4.0) if mode == "quick" else FULL
    rounds = 2 if mode == "quick" else 5
    paths = make_files(spec)
    frames = round(spec["seconds"] * spec["fps"]) * len(paths)
    ingest_files(paths[:1], THREADS)  # warm: kernels from the disk cache, imports
    times: dict[str, list[float]] = {"decode": [], "ingest": [], "sampling": [],
                                     "sampling_all": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for name, fn in (("decode", decode_all_frames),
                             ("ingest", lambda p, t: ingest_files(p, t, _Path(tmp))),
                             ("sampling", lambda p, t: sample_clips(p, t, AUTO_STRATEGY)),
                             ("sampling_all", lambda p, t: sample_clips(p, t, "all"))):
                start = time.perf_counter()
                fn(paths, THREADS)
                times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"files": len(paths), "frames": frames, "rounds": rounds, "threads": THREADS,
            "seconds": times, "frames_per_s": {k: frames / v for k, v in med.items()},
            "ingest_vs_decode": med["decode"] / med["ingest"],
            "sampling_vs_decode": med["decode"] / med["sampling"],
            "auto_strategy_speedup_vs_all": med["sampling_all"] / med["sampling"]}


def _task_cold(mode: str) -> dict:
    """`clipdex --help` and `import kernels` in fresh processes (nothing compiles)."""
    repeats = 3 if mode == "quick" else 5

    def fresh(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - start

    help_s = [fresh("import sys; sys.argv = ['clipdex', '--help']\n"
                    "from engine.surfaces.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass")
              for _ in range(repeats)]
    import_s = [fresh("import kernels") for _ in range(repeats)]
    result = {"help_s": _spread(help_s) | {"median": statistics.median(help_s)},
              "import_kernels_s": _spread(import_s) | {"median": statistics.median(import_s)}}
    if mode == "full":
        from benchmarks.test_bench_kernels import _run_fresh

        with tempfile.TemporaryDirectory() as cache_dir:
            start = time.perf_counter()
            cold = _run_fresh(cache_dir)
            result["compile_every_kernel_cold_s"] = time.perf_counter() - start
            result["compile_every_kernel_cached_s"] = _run_fresh(cache_dir)["total_s"]
            result["cold_detail"] = cold
    return result


_OWN_TASKS = {"kernels": _task_kernels, "ingest": _task_ingest, "cold": _task_cold}


def task_main(argv: list[str]) -> int:
    """``python -m benchmarks.suite task NAME MODE OUT``: run a suite-own task, save its JSON."""
    name, mode, out = argv
    result = _OWN_TASKS[name](mode)
    Path(out).write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["task"]:
        raise SystemExit(task_main(sys.argv[2:]))
    from benchmarks.__main__ import main

    raise SystemExit(main())
