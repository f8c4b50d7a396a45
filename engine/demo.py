"""``clipdex demo``: synthesise a fleet, run every stage per region, score against ground truth."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from rich.markup import escape

from .regions import Home

#: what the demo must reach on its default fleet (issue: walking skeleton)
TARGETS = {"precision": 1.0, "recall": 1.0, "hard_negatives_merged": 0, "rare_recall_at_k": 0.8}


def _spec(preset: str, seed: int, n_clips: int | None, regions: tuple[str, ...] | None):
    from fixtures import FleetSpec

    if preset not in ("demo", "quality"):
        from .errors import InputError

        raise InputError(f"unknown preset {preset!r}; use demo or quality")
    spec = getattr(FleetSpec, preset)()
    changes = {"seed": seed}
    if n_clips is not None:
        changes["n_clips"] = n_clips
    if regions:
        changes["regions"] = tuple(regions)
    return dataclasses.replace(spec, **changes)


def synth_fleet(out: str | Path, *, preset: str = "demo", seed: int = 7, n_clips: int | None = None,
                regions: tuple[str, ...] | None = None, videos: int = 0, console=None) -> dict:
    from fixtures import write_fleet

    spec = _spec(preset, seed, n_clips, regions)
    out = Path(out)
    if console is not None:
        from rich.progress import Progress

        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("rendering fleet", total=None)
            gt = write_fleet(out, spec, progress=lambda d, t: bar.update(task, completed=d, total=t))
    else:
        gt = write_fleet(out, spec)
    if videos:
        from fixtures.video import write_fleet_videos

        write_fleet_videos(out / "videos", spec, n=videos)
    return {"clips": len(gt["clips"]), "regions": sorted({c["region"] for c in gt["clips"]}), "path": str(out)}


def run_demo(home: str | Path | None = None, *, seed: int = 7, n_clips: int | None = None, console=None) -> dict:
    """The whole pipeline on a fresh synthetic fleet; returns a summary with quality metrics."""
    from fixtures import load_ground_truth

    from .dedup import run_dedup
    from .evaluate import dedup_quality, query_quality, rarity_quality, selection_quality
    from .ingest import ingest
    from .rarity import compute_rarity
    from .select import select_clips, write_manifest
    from .store import RegionStore

    t_start = time.perf_counter()
    home_path = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="clipdex-demo-"))
    fleet_dir = home_path / "fleet"

    def say(msg: str) -> None:
        if console is not None:
            console.print(f"[dim]{time.perf_counter() - t_start:6.1f}s[/] {escape(msg)}")

    say(f"rendering the synthetic fleet (seed {seed}) into {fleet_dir}")
    info = synth_fleet(fleet_dir, seed=seed, n_clips=n_clips, console=console)
    gt = load_ground_truth(fleet_dir / "ground_truth.json")
    h = Home.open(home_path, create=True)
    for r in info["regions"]:
        if r not in h.regions:
            h.add_region(r, jurisdiction=r.split("-")[0].upper(), export_fields=("ids", "scores", "hashes"),
                         export_to=("*",))
    summary: dict = {"home": str(home_path), "seed": seed, "clips": info["clips"], "regions": {}}
    first_ingest = None
    targets_met = True
    errors = 0
    for r in info["regions"]:
        t = time.perf_counter()
        say(f"[{r}] ingest")
        rep = ingest(h, r, [fleet_dir / r / "clips.zarr"], command="clipdex demo")
        if first_ingest is None:
            first_ingest = time.perf_counter() - t
        with RegionStore.open(h.region(r)) as store:
            say(f"[{r}] dedup")
            d = run_dedup(store)
            say(f"[{r}] rarity")
            compute_rarity(store)
            budget = max(10, len(store.clip_table()) // 4)
            say(f"[{r}] select {budget}")
            sel = select_clips(store, budget, seed=seed, val_fraction=0.2)
            write_manifest(sel, home_path / f"manifest-{r}.jsonl")
            say(f"[{r}] scoring against ground truth")
            dq = dedup_quality(store, gt)
            rq = rarity_quality(store, gt)
            qq = query_quality(store, gt)
            sq = selection_quality(store, [s.clip_id for s in sel.chosen], seed=seed)
        ok = (dq["precision"] >= TARGETS["precision"] and dq["recall"] >= TARGETS["recall"]
              and dq["hard_negatives_merged"] <= TARGETS["hard_negatives_merged"]
              and rq["recall_at_k"] >= TARGETS["rare_recall_at_k"])
        targets_met &= ok
        errors += len(rep.failed)
        summary["regions"][r] = {
            "ingested": len(rep.ingested), "failed": len(rep.failed), "keyframes": rep.keyframes,
            "ingest_s": round(rep.seconds, 2), "dedup": dq, "dedup_groups": len(d.groups),
            "rarity": rq, "query": qq, "selection": sq, "manifest": str(home_path / f"manifest-{r}.jsonl"),
            "targets_met": ok,
        }
    summary["first_ingest_s"] = round(first_ingest or 0.0, 2)
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    summary["targets_met"] = targets_met
    summary["errors"] = errors  # failed sources: the only thing that makes the demo exit non-zero
    return summary


def summary_rows(summary: dict) -> list[list]:
    rows = []
    for r, s in summary["regions"].items():
        d, q = s["dedup"], s["rarity"]
        rows += [
            [r, "clips ingested (keyframes)", f"{s['ingested']} ({s['keyframes']})", ""],
            [r, "dedup precision", d["precision"], ">= 1.0"],
            [r, "dedup recall", d["recall"], ">= 1.0"],
            [r, "true / predicted pairs", f"{d['true_pairs']} / {d['predicted_pairs']}", ""],
            [r, "hard negatives merged", f"{d['hard_negatives_merged']} of {d['hard_negatives']}", "0"],
            [r, "partial offset error max (s)", d["offset_error_max_s"], "<= 0.5"],
            [r, "rare recall@k", f"{q['recall_at_k']} (k={q['rare_clips']})", ">= 0.8"],
            [r, "same-scenario precision@10", s["query"]["precision_at_k"], ""],
            [r, "selection coverage vs random", f"{s['selection']['coverage']} vs {s['selection']['random_coverage']}"
             f" ({s['selection']['improvement']:+.0%})", "lower"],
            [r, "all targets met", "yes" if s["targets_met"] else "no (see README: Quality)", ""],
        ]
    return rows
