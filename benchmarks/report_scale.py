"""The curator's report at scale: written in under a minute and under 20 MB.

    python -m benchmarks.report_scale [--clips 100000] [--quality] [--json benchmarks/results/report_scale.json]

* **Synthetic region** (``--clips N``, default 100,000): written straight into a fresh region
  store (``RegionStore.append_clips``; no decoding): 4 keyframes a clip, clustered 128-d
  embeddings (``benchmarks.query_scale.clustered_embeddings``), drives of 2-8 clips over 60 days,
  triggers on ~12 % of the clips, a keyframe preview per clip (a pool of 256 distinct JPEG strips
  of 4 frames, rendered and encoded as ingest does: ``engine.ingest.features.preview_strip``, ~11 KB
  each), planted duplicate groups (6 % of the clips, groups of 2-5) and partial overlaps (2 %)
  stored as dedup results, the embedding index built, and a 1,000-clip manifest. Then
  :func:`engine.surfaces.report.build_report` is timed end to end (rarity ranking with events and
  dynamics, neighbours of the rarest, the PCA map, every page) and the folder measured.
* **Quality fleet** (``--quality``): the fleet of ``benchmarks.quality`` (1,200 clips, 3 regions)
  rendered, ingested, deduplicated, ranked and selected, then each region's report timed.

Targets (issue 24): each report under 60 s and under 20 MB.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_S = 60.0
TARGET_BYTES = 20_000_000
TRIGGER_NAMES = ("hard_brake", "high_jerk", "sharp_turn", "stop_and_go", "low_light", "low_visibility",
                 "snow", "glare", "urban")


def _preview_pool(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` distinct preview slots: road-like frames (sky, horizon, lane lines, noise) encoded
    by the same function as ingest."""
    from engine.ingest.features import preview_strip

    rng = np.random.default_rng(seed)
    h, w = 180, 320
    y = np.arange(h)[:, None, None]
    x = np.arange(w)[None, :, None]
    out = []
    for _ in range(n):
        sky = rng.uniform(60, 230, 3)
        ground = rng.uniform(30, 120, 3)
        horizon = rng.uniform(0.3, 0.55) * h
        frames = []
        for f in range(4):
            img = np.where(y < horizon, sky * (1 - 0.3 * y / h), ground * (0.6 + 0.4 * y / h))
            lane = np.abs((x - w / 2) - (y - horizon) * rng.uniform(0.5, 1.5)) < 2 + (y > horizon) * (y - horizon) / 40
            img = np.where(lane & (y > horizon), 230.0, img)
            blob = ((x - rng.uniform(0, w)) ** 2 + (y - rng.uniform(horizon, h)) ** 2) < rng.uniform(50, 600)
            img = np.where(blob, rng.uniform(0, 255, 3), img)
            img = img + rng.normal(0, 6 + 2 * f, (h, w, 3))
            frames.append(np.clip(img, 0, 255).astype(np.uint8))
        out.append(preview_strip(np.stack(frames), np.arange(4, dtype=np.float32) * 2.5))
    return out


def build_region(home_dir: Path, n: int, seed: int = 0, region: str = "bench", say=print) -> dict:
    """Write the synthetic region (see the module doc); returns what was planted."""
    from benchmarks.query_scale import clustered_embeddings
    from engine.index import ensure_embedding_index
    from engine.sovereignty.regions import Home
    from engine.store.region import THUMB_SHAPE, NewClip, RegionStore

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    home = Home.open(home_dir, create=True)
    if region not in home.regions:
        home.add_region(region, jurisdiction="XX")
    emb, _ = clustered_embeddings(n, seed, n_queries=1)
    pool = _preview_pool(256, seed)
    say(f"  previews pool and embeddings: {time.perf_counter() - t0:.1f} s")
    drive_of = np.repeat(np.arange(n), rng.integers(2, 9, n))[:n]
    t_start = 1.714e9 + np.sort(rng.uniform(0, 60 * 86400, drive_of.max() + 1))
    start = t_start[drive_of] + 10.0 * (np.arange(n) - np.searchsorted(drive_of, drive_of))
    thumb = np.zeros(THUMB_SHAPE, np.uint8)
    k = 4
    times = (np.arange(k) * 2.5).astype(np.float32)
    with RegionStore.open(home.region(region), create=True) as store, store.writer("bench"):
        for lo in range(0, n, 10000):
            clips = []
            for c in range(lo, min(n, lo + 10000)):
                trig = []
                if rng.random() < 0.12:
                    name = TRIGGER_NAMES[int(rng.integers(0, len(TRIGGER_NAMES)))]
                    a = float(rng.uniform(0, 8))
                    trig.append((name, a, a + float(rng.uniform(0.3, 2.0)), float(rng.normal())))
                slot, ptimes = pool[c % len(pool)]
                clips.append(NewClip(
                    clip_id=f"c{c:07d}", digest=f"d{c:07d}", source=f"/synth/c{c:07d}.mp4", duration_s=10.0,
                    keyframe_hashes=rng.integers(0, 256, (k, 32), dtype=np.uint8),
                    keyframe_phash=np.zeros((k, 8), np.uint8), keyframe_quality=np.full(k, 80, np.uint8),
                    keyframe_times=times, embedding=emb[c], thumbnail=thumb, drive_id=f"drive{drive_of[c]}",
                    vehicle_id=f"veh{drive_of[c] % 300}", start_time=float(start[c]), triggers=trig,
                    preview=slot, preview_times=ptimes))
            store.append_clips(clips, "bench")
        say(f"  {n:,} clips stored: {time.perf_counter() - t0:.1f} s")
        # planted dedup results: groups of 2-5 copies (6 % of clips), partial pairs (2 %)
        rows = rng.permutation(n)
        pairs, groups, used = [], [], 0
        while used < int(0.06 * n):
            size = int(rng.integers(2, 6))
            members = sorted(rows[used:used + size].tolist())
            used += size
            rep = members[0]
            for m in members:
                groups.append((m, rep, rep))
                if m != rep:
                    pairs.append((rep, m, "duplicate", 0.0, 0.0, 10.0, 0.0, 10.0, 4, 4, 3.0))
        for i in range(int(0.02 * n) // 2):
            a, b = sorted(rows[used + 2 * i:used + 2 * i + 2].tolist())
            off = float(rng.uniform(2, 7))
            pairs.append((a, b, "partial", off, off, 10.0, 0.0, 10.0 - off, 2, 2, 5.0))
        store.replace_dedup(pairs, groups, incremental=False, clip_end=n)
        ensure_embedding_index(store)
    mdir = home.region(region).path / "manifests"
    mdir.mkdir(exist_ok=True)
    reasons = rng.choice(["rare", "diverse", "random"], 1000, p=[0.3, 0.6, 0.1])
    with (mdir / "bench.jsonl").open("w", encoding="utf-8") as f:
        for i, c in enumerate(rng.choice(n, 1000, replace=False).tolist()):
            f.write(json.dumps({"clip_id": f"c{c:07d}", "region": region, "split": "val" if i % 10 == 0 else "train",
                                "reason": str(reasons[i]), "rarity": float(rng.uniform(0.5, 1.2))}) + "\n")
    say(f"  dedup results, index, manifest: {time.perf_counter() - t0:.1f} s")
    return {"clips": n, "groups": sum(1 for g in groups if g[0] == g[2]), "grouped_clips": len(groups),
            "partials": int(0.02 * n) // 2, "build_s": round(time.perf_counter() - t0, 1)}


def time_report(home_dir: Path, region: str, out: Path) -> dict:
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore
    from engine.surfaces.report import build_report

    home = Home.open(home_dir)
    t0 = time.perf_counter()
    with RegionStore.open(home.region(region)) as store:
        page = build_report(store, out, home=home)
    seconds = time.perf_counter() - t0
    files = [p for p in page.parent.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    return {"region": region, "seconds": round(seconds, 2), "bytes": size, "mb": round(size / 1e6, 2),
            "files": len(files), "pages": sum(p.suffix == ".html" for p in files),
            "images": sum(p.suffix in (".jpg", ".png") for p in files),
            "ok": seconds < TARGET_S and size < TARGET_BYTES}


def run_synthetic(n: int, seed: int = 0, say=print) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="clipdex-report-scale-"))
    try:
        say(f"synthetic region of {n:,} clips")
        planted = build_region(tmp / "home", n, seed, say=say)
        got = time_report(tmp / "home", "bench", tmp / "home" / "regions" / "bench" / "report")
        say(f"  report: {got['seconds']} s, {got['mb']} MB, {got['files']} files")
        return {**planted, "report": got}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_quality(seed: int = 0, say=print) -> dict:
    from benchmarks.quality import build_home, fleet_spec
    from engine.curation.select import select_clips, write_manifest
    from engine.matching.dedup import run_dedup
    from engine.scenes.rarity import compute_rarity
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    tmp = Path(tempfile.mkdtemp(prefix="clipdex-report-quality-"))
    try:
        spec = fleet_spec("quality", None, seed)
        say(f"quality fleet: {spec.n_clips} clips over {len(spec.regions)} regions (rendered and ingested)")
        build_home(spec, tmp, tmp / "chunks", chunk=120, say=say)
        home = Home.open(tmp)
        out = []
        for r in sorted(home.regions):
            with RegionStore.open(home.region(r)) as store:
                run_dedup(store)
                compute_rarity(store)
                sel = select_clips(store, max(10, len(store.clip_table()) // 4), seed=seed)
                write_manifest(sel, store.path / "manifests" / "train.jsonl")
                n = len(store.clip_table())
            got = time_report(tmp, r, home.region(r).path / "report")
            got["clips"] = n
            say(f"  {r}: {n} clips, report {got['seconds']} s, {got['mb']} MB")
            out.append(got)
        return {"regions": out, "ok": all(g["ok"] for g in out)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report_scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=100_000, help="clips of the synthetic region (0: skip it)")
    ap.add_argument("--quality", action="store_true", help="also time the quality fleet's reports")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the result here")
    import os
    import sys

    argv = sys.argv[1:] if argv is None else argv
    a = ap.parse_args(argv)

    result: dict = {"command": " ".join(["python -m benchmarks.report_scale", *argv]),
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "targets": {"seconds": TARGET_S, "bytes": TARGET_BYTES}}
    if a.clips:
        result["synthetic"] = run_synthetic(a.clips, a.seed)
    if a.quality:
        result["quality"] = run_quality(a.seed)
    print(json.dumps(result, indent=1))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    ok = result.get("synthetic", {}).get("report", {}).get("ok", True) and result.get("quality", {}).get("ok", True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
