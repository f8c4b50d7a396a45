"""``clipdex demo``: synthesise a fleet, run every stage per region, score against ground truth.

The demo writes only into regions it created. Without a home it makes a fresh one of its own (a
temporary folder). Given a home, it creates its regions there and records them in
``HOME/demo/regions.json``: a home it made itself keeps the fleet's names (``us-west``,
``cn-east``); in a home that already holds other regions its regions are named ``demo-us-west``,
``demo-cn-east``, and a region of that name that the demo did not create is refused, never
written. A rerun replaces the demo's own regions (their folders are removed and recreated), so the
scores always describe one fleet. The fleet and the manifests go to ``HOME/demo/``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

from rich.markup import escape

from engine.sovereignty.regions import Home

#: what the demo must reach on its default fleet
TARGETS = {"precision": 1.0, "recall": 1.0, "hard_negatives_merged": 0, "rare_recall_at_k": 0.8}


def _spec(preset: str, seed: int, n_clips: int | None, regions: tuple[str, ...] | None):
    from fixtures import FleetSpec

    if preset not in ("demo", "quality"):
        from engine.errors import InputError

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

    from engine.curation.select import select_clips, write_manifest
    from engine.ingest.pipeline import ingest
    from engine.matching.dedup import run_dedup
    from engine.scenes.rarity import compute_rarity
    from engine.store.region import RegionStore
    from engine.surfaces.evaluate import (
        dedup_quality,
        query_quality,
        rarity_quality,
        selection_quality,
    )

    t_start = time.perf_counter()
    home_path = (Path(home).expanduser() if home is not None
                 else Path(tempfile.mkdtemp(prefix="clipdex-demo-"))).resolve()
    work = home_path / DEMO_DIR
    fleet_dir = work / "fleet"

    def say(msg: str) -> None:
        if console is not None:
            console.print(f"[dim]{time.perf_counter() - t_start:6.1f}s[/] {escape(msg)}")

    spec_regions = _spec("demo", seed, n_clips, None).regions
    h, names = claim_regions(home_path, spec_regions)  # refuses before anything is written
    say(f"demo home {home_path}: regions {', '.join(names.values())} (the demo's own)")
    say(f"rendering the synthetic fleet (seed {seed}) into {fleet_dir}")
    if fleet_dir.exists():
        shutil.rmtree(fleet_dir)
    info = synth_fleet(fleet_dir, seed=seed, n_clips=n_clips, console=console)
    gt = _rename_fleet_regions(fleet_dir, names)
    for fleet_name, r in names.items():
        # us-west lets its pictures, relations, counts and map leave too (`clipdex serve` shows
        # them); cn-east keeps them (the app shows its ids and scores only)
        extra = ("thumbnails", "relations", "counts", "embeddings") if fleet_name == "us-west" else ()
        h.add_region(r, jurisdiction=fleet_name.split("-")[0].upper(),
                     export_fields=("ids", "scores", "hashes", *extra), export_to=("*",))
    summary: dict = {"home": str(home_path), "seed": seed, "clips": info["clips"], "regions": {}}
    first_ingest = None
    targets_met = True
    errors = 0
    for fleet_name in info["regions"]:
        r = names[fleet_name]
        t = time.perf_counter()
        say(f"[{r}] ingest")
        rep = ingest(h, r, [fleet_dir / fleet_name / "clips.zarr"], command="clipdex demo")
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
            manifest = write_manifest(sel, store.path / "manifests" / "demo.jsonl")
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
            "rarity": rq, "query": qq, "selection": sq, "manifest": str(manifest),
            "targets_met": ok,
        }
    first = names.get("us-west", names[info["regions"][0]]) if info["regions"] else None
    if first is not None:  # the curator's report of the first region, inside its folder
        from engine.surfaces.report import build_report

        say(f"[{first}] report")
        with RegionStore.open(h.region(first)) as store:
            summary["report"] = str(build_report(store, store.path / "report", home=h))
    summary["first_ingest_s"] = round(first_ingest or 0.0, 2)
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    summary["targets_met"] = targets_met
    summary["errors"] = errors  # failed sources: the only thing that makes the demo exit non-zero
    return summary


DEMO_DIR = "demo"  # HOME/demo: the fleet, and regions.json naming the regions the demo created
_RECORD = "regions.json"


def _demo_record(home: Path) -> list[str]:
    path = home / DEMO_DIR / _RECORD
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["regions"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def claim_regions(home: Path, fleet_regions: tuple[str, ...]) -> tuple[Home, dict[str, str]]:
    """Open ``home`` and decide the demo's region names (fleet region -> region in the home).

    The demo's regions from an earlier run are removed (folder and entry) to be recreated; any
    other region stays untouched. A home with regions the demo did not create gets ``demo-``
    names; such a name already taken by a region the demo did not create is an ``InputError``,
    raised before anything is written."""
    from engine.errors import InputError

    fresh = not (home / "regions.toml").exists()
    h = Home.open(home, create=True)
    own = set(_demo_record(home)) & set(h.regions)
    foreign = set(h.regions) - own
    plain = fresh or not h.regions or all(r in own for r in fleet_regions)
    prefix = "" if plain else "demo-"
    names = {r: prefix + r for r in fleet_regions}
    taken = sorted(n for n in names.values() if n in foreign)
    work = (home / DEMO_DIR).resolve()
    taken += sorted(r for r in foreign if h.regions[r].path.is_relative_to(work) or work.is_relative_to(h.regions[r].path))
    if taken:
        raise InputError(
            f"home {home} already has region(s) {', '.join(taken)} that the demo did not create (by name, "
            f"or a folder overlapping the demo's {work}); the demo never writes into them: run `clipdex demo` "
            "(a home of its own) or "
            "`clipdex demo --home NEW_FOLDER`")
    for r in sorted(own):
        region = h.regions.pop(r)
        if region.path.is_relative_to(home):  # a demo region lives in the home; never rm elsewhere
            shutil.rmtree(region.path, ignore_errors=True)
    h.save()
    (home / DEMO_DIR).mkdir(parents=True, exist_ok=True)
    (home / DEMO_DIR / _RECORD).write_text(json.dumps({"regions": sorted(names.values())}), encoding="utf-8")
    return h, names


def _rename_fleet_regions(fleet_dir: Path, names: dict[str, str]) -> dict:
    """Give the rendered fleet the demo's region names (clip metadata and ground truth)."""
    from fixtures import load_ground_truth

    path = fleet_dir / "ground_truth.json"
    gt = load_ground_truth(path)
    if all(k == v for k, v in names.items()):
        return gt
    from engine.sources.zarr_clips import set_clip_attrs

    for fleet_name, r in names.items():
        set_clip_attrs(fleet_dir / fleet_name / "clips.zarr", region=r)
    for c in gt["clips"]:
        c["region"] = names.get(c["region"], c["region"])
    path.write_text(json.dumps(gt, indent=1), encoding="utf-8")
    return gt


def next_steps(summary: dict) -> list[str]:
    """What to run next: explore the demo's regions, then the same on one's own video."""
    home = summary["home"]
    region = sorted(summary["regions"])[0]
    return [
        *([f"open the report: {summary['report']}"] if summary.get("report") else []),
        f"explore the demo: clipdex rare --region {region} --home {home}",
        f"browse it: clipdex serve --region all --home {home}",
        "then your own video (a folder of dashcam files; a clip.csv next to clip.mp4 is its telemetry):",
        "  clipdex regions add my-fleet --jurisdiction US",
        "  clipdex ingest /path/to/dashcam --region my-fleet",
        "  clipdex dedup --region my-fleet",
        "  clipdex select --region my-fleet --budget 100 --out train.jsonl",
        "(--home DIR or CLIPDEX_HOME picks the home; default ~/.clipdex; README: Quick start: your own video)",
    ]


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
            [r, "all targets met", "yes" if s["targets_met"] else "no (see docs/quality.md)", ""],
        ]
    return rows
