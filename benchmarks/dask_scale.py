"""Ingest throughput: the local executor against Dask LocalClusters of 1 and 2 workers, on the
same files, in alternating rounds.

``python -m benchmarks.dask_scale [--clips DIR | --synthetic] [--videos N] [--rounds R]
[--workers 1,2] [--json OUT]``: with ``--clips`` (default ``$CLIPDEX_REAL_CLIPS``) the
folder's videos are used, else (or with ``--synthetic``) N synthetic 720p H.264 files. Each round ingests every file into a fresh home
with each executor (cluster start-up excluded: a cluster is started once per worker count and
reused); medians of the rounds, frames/s from the decoded frame count, and the ratios
``dask(2) / dask(1)`` (scaling) and ``dask(n) / local`` (Dask's cost at equal cores). Writes
``benchmarks/results/dask_scale.json``. Ratios are the figure: this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _frames(files: list[Path]) -> int:
    import av

    n = 0
    for f in files:
        with av.open(str(f)) as c:
            st = c.streams.video[0]
            n += st.frames or int(float(st.duration * st.time_base) * float(st.average_rate))
    return n


def _synthetic(out: Path, n: int) -> list[Path]:
    import numpy as np

    from fixtures.video import write_video

    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        small = rng.integers(0, 256, (46, 90 + 80, 3)).astype(np.uint8)
        wide = np.kron(small, np.ones((16, 16, 1), np.uint8))[:720]
        frames = np.stack([wide[:, 8 * t: 8 * t + 1280] for t in range(150)])
        files.append(Path(write_video(out / f"syn{i}.mp4", frames, 30)))
    return files


def main(argv: list[str] | None = None) -> int:
    from engine.ingest.executors import DaskExecutor
    from engine.ingest.pipeline import IngestOptions, ingest
    from engine.sovereignty.regions import Home

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=Path, default=os.environ.get("CLIPDEX_REAL_CLIPS"))
    ap.add_argument("--synthetic", action="store_true", help="synthetic files even if --clips is set")
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--json", type=Path, default=RESULTS / "dask_scale.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.clips and not args.synthetic and Path(args.clips).is_dir():
            from engine.sources.discover import VIDEO_EXTENSIONS

            files = sorted(p for p in Path(args.clips).iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
            what = "real footage (CLIPDEX_REAL_CLIPS)"
        else:
            (tmp / "src").mkdir()
            files = _synthetic(tmp / "src", args.videos)
            what = f"{len(files)} synthetic 1280x720 H.264 files of 5 s"
        if not files:
            raise SystemExit(f"no video files in {args.clips}; give --clips DIR or --synthetic")
        frames = _frames(files)
        counts = [int(w) for w in args.workers.split(",") if w.strip()]
        clusters = {n: DaskExecutor.start(None, workers=n) for n in counts}
        times: dict[str, list[float]] = {"local": [], **{f"dask{n}": [] for n in counts}}
        try:
            for rnd in range(args.rounds):
                for name in times:
                    h = Home.open(tmp / f"home-{name}-{rnd}", create=True)
                    h.add_region("b", jurisdiction="XX")
                    ex = None if name == "local" else clusters[int(name[4:])]
                    t0 = time.perf_counter()
                    rep = ingest(h, "b", files, IngestOptions(), executor=ex)
                    times[name].append(time.perf_counter() - t0)
                    if rep.failed:
                        print(f"{name}: {len(rep.failed)} sources failed")
        finally:
            for ex in clusters.values():
                ex.close()
    load = os.getloadavg()[0]
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "what": what, "files": len(files), "frames": frames, "rounds": args.rounds,
        "cores": os.cpu_count(), "load_after": round(load, 2),
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "frames_per_s": {k: round(frames / v, 1) for k, v in med.items()},
        "ratios": {f"dask{n}_vs_local": round(med["local"] / med[f"dask{n}"], 3) for n in counts},
    }
    if 1 in counts and 2 in counts:
        out["ratios"]["dask2_vs_dask1"] = round(med["dask1"] / med["dask2"], 3)
    print(f"ingest throughput, {what}, {frames} frames, medians of {args.rounds} rounds, "
          f"load {load:.1f}")
    for k in times:
        print(f"  {k:<8} {med[k]:7.2f} s  {out['frames_per_s'][k]:8.1f} frames/s")
    for k, v in out["ratios"].items():
        print(f"  {k:<16} {v:.3f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
