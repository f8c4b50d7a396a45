"""Picture conditions on real dashcam footage: trigger precision and recall per condition.

``python -m benchmarks.real_scenes --clips DIR [--json OUT]`` reads a labelled folder of real
footage (the dev set layout: ``conditions.csv`` with ``file,conditions`` rows, ``;``-separated
labels, video files and ``frames/<condition>/`` single images), computes the frame triggers of
:mod:`engine.ingest.triggers` exactly as ingest does (keyframes at 2 Hz in 5-s clips, the hashed view,
192x108 trigger views) and scores them against the labels.

A recording fires a whole-clip condition (night, dusk, fog, snow) when at least half of its 5-s
clips fire it, and a moment (glare) when any clip does; a single frame is one clip. Conditions
without a trigger (rain) are listed with recall 0. The scene type (urban) is scored
only on recordings labelled with a road type (highway-day, urban-day, rural-day). "False clips"
counts the 5-s clips of recordings without the label that fire the trigger (rarity sees those).
The run fails (exit 1) when any night recording fires a camera fault (``black_frames``,
``frozen_camera``).

Unless ``--triggers-only``, the recordings are also ingested (5-s clips) into a temporary home:

- **same-scene precision@5**: for every clip, the 5 nearest clips by clipdex's clip embedding
  among other recordings (a ground-truth duplicate family counts as one recording); the share of
  them with the clip's scene (:func:`scene_of`), averaged per scene, next to chance (the share of
  that scene among the other recordings' clips).
- **rarity AUC**: for each rare condition and each recording family with it, a subset of every
  recording without an unusual condition plus that family (its clips under 10 % of the subset)
  is ingested into a region of its own; the AUC of ``compute_rarity``'s percentile (default and
  density only) for the condition's clips against the rest, averaged over the subsets (and the
  worst one). ``clipdex ingest`` takes no GIF: GIF recordings are left out of this part. The folder comes from ``--clips`` or the environment
variable ``CLIPDEX_REAL_CLIPS``; nothing from it is copied anywhere.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.ingest.features import hash_view
from engine.ingest.triggers import (
    DEFAULT_THRESHOLDS,
    TRIGGERS_VERSION,
    frame_triggers,
    keyframe_conditions,
    picture_measures,
    trigger_view,
)
from engine.sources.sampling import working_factor
from engine.sources.video import iter_video_clips

#: label in conditions.csv -> the trigger that should fire (None: no trigger for it yet)
CONDITION_TRIGGERS: dict[str, str | None] = {
    "night": "low_light",
    "dusk": "dusk",
    "fog": "low_visibility",
    "snow": "snow",
    "glare": "glare",
    "rain": None,
    "tunnel": "tunnel",
    "urban-day": "urban",
}
#: road-type labels: a scene type is scored only on recordings that carry one of them
ROAD_TYPES = frozenset({"highway-day", "urban-day", "rural-day"})
#: conditions that mark moments of a recording (any 5-s clip counts); the rest describe it whole
MOMENTS = frozenset({"glare", "tunnel"})
CLIP_SECONDS = 5.0
KEYFRAME_HZ = 2.0
ENV_VAR = "CLIPDEX_REAL_CLIPS"
RESULTS = Path(__file__).parent / "results"
#: the scene of a recording: its first label in this order (lighting and weather change the
#: picture more than the road type does)
SCENES = ("night", "dusk", "fog", "tunnel", "highway-day", "urban-day", "rural-day")
#: conditions scored for rarity, and every condition that keeps a recording out of the base
RARE_CONDITIONS = ("night", "dusk", "fog", "rain")
UNUSUAL = frozenset({"night", "dusk", "fog", "rain", "snow", "tunnel", "glare"})
RARE_SHARE = 0.10
NEIGHBOURS = 5


@dataclass
class Unit:
    """One 5-s clip of a recording (or one labelled frame) and the triggers that fired on it."""

    file: str  # as named in conditions.csv
    piece: int
    labels: frozenset[str]
    is_frame: bool
    triggers: frozenset[str]
    shares: dict[str, float]  # trigger -> share of the unit's keyframes that show it


def unit(file: str, piece: int, labels: frozenset[str], is_frame: bool, views: np.ndarray,
         times: np.ndarray, telemetry=None) -> Unit:
    """A :class:`Unit` from its trigger views as ingest judges them."""
    fired = frame_triggers(views, times, telemetry=telemetry)
    shown = keyframe_conditions(picture_measures(views), times, DEFAULT_THRESHOLDS)
    return Unit(file, piece, labels, is_frame, frozenset(n for n, *_ in fired),
                {name: float(mask.mean()) for name, mask in shown.items()})


def load_labels(folder: Path) -> dict[str, frozenset[str]]:
    """``conditions.csv`` of ``folder`` -> {file: labels}."""
    path = folder / "conditions.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass the dev set folder (with conditions.csv) as --clips")
    with path.open(newline="") as fh:
        return {row["file"]: frozenset(c.strip() for c in row["conditions"].split(";") if c.strip())
                for row in csv.DictReader(fh)}


def frame_views(path: Path) -> np.ndarray:
    """A single image as ingest sees a keyframe: area-averaged to the working size, the hashed
    view, the trigger view. uint8[1, 108, 192, 3]."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    f = working_factor(*rgb.size)
    rgb = rgb.resize((rgb.size[0] // f, rgb.size[1] // f), Image.Resampling.BOX)
    return trigger_view(hash_view(np.asarray(rgb)[None]))


def iter_units(folder: Path, labels: dict[str, frozenset[str]], max_pieces: int | None = None) -> Iterator[Unit]:
    """Every labelled file of ``folder`` as :class:`Unit` s (at most ``max_pieces`` 5-s clips of
    each recording: decoding stops there)."""
    for name, labs in labels.items():
        path = folder / name
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            yield unit(name, 0, labs, True, frame_views(path), np.zeros(1))
            continue
        clips = iter_video_clips(path, clip_id_base=path.stem, clip_seconds=CLIP_SECONDS, keyframe_hz=KEYFRAME_HZ)
        for i, sample in enumerate(clips):
            if max_pieces is not None and i >= max_pieces:
                break
            views = trigger_view(hash_view(sample.keyframes))
            yield unit(name, i, labs, False, views, sample.keyframe_times, sample.telemetry)


def recording_fires(units: list[Unit], trigger: str, moment: bool) -> bool:
    """Whether a recording (its units) fires ``trigger``: any unit for a moment, else at least
    half of them."""
    hits = [trigger in u.triggers for u in units]
    return any(hits) if moment else 2 * sum(hits) >= len(hits)


def by_recording(units: list[Unit]) -> dict[str, list[Unit]]:
    out: dict[str, list[Unit]] = {}
    for u in units:
        out.setdefault(u.file, []).append(u)
    return out


def condition_scores(units: list[Unit]) -> dict[str, dict]:
    """Per condition: positives, tp, fp, fn, precision, recall over recordings and frames, and
    the files that were wrong."""
    recs = by_recording(units)
    out = {}
    for cond, trig in CONDITION_TRIGGERS.items():
        tp = fp = fn = false_clips = 0
        missed, false = [], []
        for name, us in recs.items():
            if cond in ROAD_TYPES and not us[0].labels & ROAD_TYPES:
                continue
            pos = cond in us[0].labels
            false_clips += 0 if pos or trig is None else sum(trig in u.triggers for u in us)
            fired = trig is not None and recording_fires(us, trig, cond in MOMENTS)
            tp += pos and fired
            fp += fired and not pos
            fn += pos and not fired
            (missed if pos and not fired else false if fired and not pos else []).append(name)
        out[cond] = {
            "trigger": trig, "positives": tp + fn, "tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "missed": missed, "false": false, "false_clips": false_clips,
            **(keyframe_margins(recs, cond, trig) if trig is not None else {}),
        }
    return out


def keyframe_margins(recs: dict[str, list[Unit]], cond: str, trigger: str, nearest: int = 3) -> dict:
    """How far the recordings sit from the trigger's decision: the share of each recording's
    keyframes that show ``trigger`` (a whole-clip condition fires on a clip at a share of 0.5,
    a moment at any keyframe), for every positive and for the ``nearest`` negatives with the
    highest shares."""
    scored = [(round(float(np.mean([u.shares.get(trigger, 0.0) for u in us])), 3), name, cond in us[0].labels)
              for name, us in recs.items() if cond not in ROAD_TYPES or us[0].labels & ROAD_TYPES]
    scored.sort(key=lambda r: (-r[0], r[1]))
    negatives = [(name, v) for v, name, pos in scored if not pos and v > 0]
    return {"positive_keyframe_shares": {name: v for v, name, pos in scored if pos},
            "nearest_negative_shares": dict(negatives[:nearest])}


def fault_on_night(units: list[Unit], fault: str) -> list[str]:
    """Night recordings and frames with any clip firing the camera fault ``fault``
    (``black_frames``, ``frozen_camera``; must be empty: night footage is valid footage)."""
    return sorted({u.file for u in units if "night" in u.labels and fault in u.triggers})


# ----------------------------------------------------------------------------- embeddings
def scene_of(labels: frozenset[str]) -> str:
    return next((s for s in SCENES if s in labels), "other")


def recording_families(folder: Path, files: list[str]) -> dict[str, str]:
    """file -> its family (the smallest file name of its ground-truth duplicate family; pairs
    whose relation starts with ``none`` are hard negatives, not family)."""
    parent = {f: f for f in files}

    def find(f: str) -> str:
        while parent[f] != f:
            parent[f] = parent[parent[f]]
            f = parent[f]
        return f

    path = folder / "ground_truth.csv"
    if path.is_file():
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                a, b = row["file_a"], row["file_b"]
                if a in parent and b in parent and not row["relation"].startswith("none"):
                    ra, rb = sorted((find(a), find(b)))
                    parent[rb] = ra
    return {f: find(f) for f in files}


def ingest_files(home_dir: Path, region: str, paths: list[Path]):
    """Ingest ``paths`` in 5-s clips into ``region`` of a home at ``home_dir``; returns the Home
    and the failures as (file name, error without the folder)."""
    from engine.ingest.pipeline import IngestOptions, ingest
    from engine.sovereignty.regions import Home

    h = Home.open(home_dir, create=True)
    if region not in h.regions:
        h.add_region(region, jurisdiction="XX", export_fields=("ids", "scores"), export_to=("*",))
    rep = ingest(h, region, [str(p) for p in paths], IngestOptions(clip_seconds=CLIP_SECONDS),
                 command="benchmarks.real_scenes")
    return h, [(Path(s).name, e.replace(f"{Path(s).parent}/", "")) for s, e in rep.failed]


def clip_embeddings_by_file(h, region: str) -> tuple[list[str], np.ndarray]:
    """(source file name per clip, unit-length clip embeddings float32[n, d]) of a region."""
    from engine.store.region import RegionStore

    with RegionStore.open(h.region(region)) as store:
        table = store.clip_table()
        vectors = store.embeddings(table.snapshot)[table.rows].astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return [Path(s).name for s in table.sources], vectors


def scene_precision(files: list[str], vectors: np.ndarray, scenes: dict[str, str],
                    families: dict[str, str], k: int = NEIGHBOURS) -> dict[str, dict]:
    """Per scene: mean precision@k of same-scene neighbours from other recordings, chance, clips
    and recordings."""
    fam = np.array([families[f] for f in files])
    scene = np.array([scenes[f] for f in files])
    sims = vectors @ vectors.T
    sims[fam[:, None] == fam[None, :]] = -np.inf
    out: dict[str, dict] = {}
    for s in sorted(set(scene)):
        rows = np.flatnonzero(scene == s)
        precs, chance = [], []
        for i in rows:
            others = np.flatnonzero(fam != fam[i])
            if len(others) < k:
                continue
            top = others[np.argsort(-sims[i, others], kind="stable")[:k]]
            precs.append(float(np.mean(scene[top] == s)))
            chance.append(float(np.mean(scene[others] == s)))
        out[s] = {"clips": len(rows), "recordings": len(set(fam[rows])),
                  "precision_at_k": round(float(np.mean(precs)), 3) if precs else None,
                  "chance": round(float(np.mean(chance)), 3) if chance else None}
    return out


def cross_validated_scene_precision(folder: Path, labels: dict[str, frozenset[str]], k: int = NEIGHBOURS,
                                    inputs: tuple[list[str], np.ndarray] | None = None) -> dict[str, dict]:
    """Same-scene precision@k with the scene directions refitted without each recording family
    (leave one family out): the held-out family's clips query every other clip, all embedded with
    the directions of that fold, so no figure comes from directions fitted on the query itself.
    ``inputs``: (file per clip, standardised input vectors) when already computed
    (:func:`benchmarks.calibrate_embedding.real_inputs`)."""
    from benchmarks.calibrate_embedding import fit_scene_directions, real_inputs, scene_embeddings

    files, x = inputs if inputs is not None else real_inputs(folder)
    families = recording_families(folder, sorted(set(files)))
    fam = np.array([families[f] for f in files])
    scene = np.array([scene_of(labels[f]) for f in files])
    precs: dict[str, list[float]] = {}
    for held_out in sorted(set(fam.tolist())):
        train = fam != held_out
        vectors = scene_embeddings(x, fit_scene_directions(x[train], scene[train]))
        for i in np.flatnonzero(~train):
            others = np.flatnonzero(fam != fam[i])
            top = others[np.argsort(-(vectors[others] @ vectors[i]), kind="stable")[:k]]
            precs.setdefault(str(scene[i]), []).append(float(np.mean(scene[top] == scene[i])))
    return {s: {"clips": len(v), "recordings": len(set(fam[scene == s].tolist())),
                "precision_at_k": round(float(np.mean(v)), 3)} for s, v in sorted(precs.items())}


def cross_validated_rarity(folder: Path, labels: dict[str, frozenset[str]],
                           subsets: dict[str, list[list[str]]], inputs: tuple[list[str], np.ndarray],
                           k: int = 10) -> dict[str, dict]:
    """Density-only rarity AUC per rare condition with the scene directions fitted without the
    rare recording's family: each subset's clips are embedded with those directions and scored
    by the mean distance to their ``k`` nearest clips of other recordings (compute_rarity's
    density, without the store)."""
    from benchmarks.calibrate_embedding import fit_scene_directions, scene_embeddings

    files, x = inputs
    families = recording_families(folder, sorted(set(files)))
    fam = np.array([families[f] for f in files])
    scene = np.array([scene_of(labels[f]) for f in files])
    out: dict[str, dict] = {}
    for cond, runs in subsets.items():
        aucs = []
        for subset in runs:
            rare_fams = {families[f] for f in subset if cond in labels[f] and f in families}
            rows = np.flatnonzero(np.isin(np.array(files), subset))
            vectors = scene_embeddings(x[rows], fit_scene_directions(x[~np.isin(fam, list(rare_fams))],
                                                                     scene[~np.isin(fam, list(rare_fams))]))
            dist = np.sqrt(np.clip(2.0 - 2.0 * vectors @ vectors.T, 0.0, None))
            dist[fam[rows][:, None] == fam[rows][None, :]] = np.inf
            density = np.sort(dist, axis=1)[:, :k]
            score = np.where(np.isfinite(density), density, np.nan)
            positive = np.array([cond in labels[files[r]] for r in rows])
            aucs.append(auc(positive, np.nanmean(score, axis=1)))
        out[cond] = {"auc": round(float(np.mean(aucs)), 3), "min_auc": round(float(np.min(aucs)), 3)}
    return out


# ----------------------------------------------------------------------------- rarity
def rare_subsets(labels: dict[str, frozenset[str]], families: dict[str, str],
                 clips_per_file: dict[str, int]) -> dict[str, list[list[str]]]:
    """condition -> subsets, each the files of every recording with no unusual condition plus
    one family with the condition whose clips stay under RARE_SHARE of the subset (one recording
    of ~30 with it: rare by clips and by recordings)."""
    base = [f for f in clips_per_file if not labels[f] & UNUSUAL]
    n_base = sum(clips_per_file[f] for f in base)
    out: dict[str, list[list[str]]] = {}
    for cond in RARE_CONDITIONS:
        fams: dict[str, list[str]] = {}
        for f in clips_per_file:
            if cond in labels[f]:
                fams.setdefault(families[f], []).append(f)
        subsets = []
        for members in sorted(fams.values()):
            n = sum(clips_per_file[f] for f in members)
            if n < RARE_SHARE * (n_base + n):
                subsets.append(base + members)
        if subsets:
            out[cond] = subsets
    return out


def auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for the boolean ``positive`` (ties count half)."""
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def rarity_auc(h, region: str, cond: str, labels: dict[str, frozenset[str]]) -> dict:
    """AUC and mean percentile of the condition's clips under compute_rarity, default and
    density only."""
    from engine.scenes.rarity import compute_rarity
    from engine.store.region import RegionStore

    out: dict = {}
    with RegionStore.open(h.region(region)) as store:
        table = store.clip_table()
        file_of = {int(r): Path(s).name for r, s in zip(table.rows, table.sources, strict=True)}
        for name, events in (("default", True), ("density_only", False)):
            res = compute_rarity(store, events=events)
            positive = np.array([cond in labels[file_of[int(r)]] for r in res.rows])
            pct = np.asarray(res.percentiles, np.float64)
            out[name] = {"auc": round(auc(positive, pct), 3),
                         "mean_percentile": round(float(pct[positive].mean()), 1)}
        out["clips"] = len(table)
        out["rare_clips"] = int(sum(cond in labels[f] for f in file_of.values()))
    return out


def run_embeddings(folder: Path, labels: dict[str, frozenset[str]], work: Path, say=print) -> dict:
    """Same-scene precision@5 and rarity AUC (see the module doc)."""
    videos = [f for f in labels if not f.startswith("frames/")]
    families = recording_families(folder, videos)
    t0 = time.perf_counter()
    h, failed = ingest_files(work / "home", "all", [folder / f for f in videos])
    files, vectors = clip_embeddings_by_file(h, "all")
    say(f"ingested {len(files)} clips of {len(set(files))} recordings in {time.perf_counter() - t0:.1f} s")
    by_name = {Path(f).name: f for f in videos}
    files = [by_name[f] for f in files]
    scenes = {f: scene_of(labels[f]) for f in videos}
    precision = scene_precision(files, vectors, scenes, families)
    t1 = time.perf_counter()
    from benchmarks.calibrate_embedding import real_inputs

    inputs = real_inputs(folder)
    cross = cross_validated_scene_precision(folder, labels, inputs=inputs)
    for s, r in precision.items():
        r["cross_validated"] = cross.get(s, {}).get("precision_at_k")
    say(f"cross-validated precision@{NEIGHBOURS} in {time.perf_counter() - t1:.1f} s")
    clips_per_file = {f: files.count(f) for f in videos if f in set(files)}
    rarity: dict[str, dict] = {}
    subsets_by_cond = rare_subsets(labels, families, clips_per_file)
    cross_rarity = cross_validated_rarity(folder, labels, subsets_by_cond, inputs)
    for cond, subsets in subsets_by_cond.items():
        runs = []
        for j, subset in enumerate(subsets):
            t1 = time.perf_counter()
            region = f"{cond}{j}"
            h2, _ = ingest_files(work / f"home-{region}", region, [folder / f for f in subset])
            r = rarity_auc(h2, region, cond, {Path(f).name: labels[f] for f in subset})
            r["recording"] = next(f for f in subset if cond in labels[f])
            runs.append(r)
            say(f"rarity {cond} {r['recording']}: AUC {r['default']['auc']:.3f} ({r['clips']} clips, "
                f"{time.perf_counter() - t1:.1f} s)")
        rarity[cond] = {
            "subsets": runs,
            "clips": round(float(np.mean([r["clips"] for r in runs])), 1),
            "rare_clips": round(float(np.mean([r["rare_clips"] for r in runs])), 1),
            **{basis: {"auc": round(float(np.mean([r[basis]["auc"] for r in runs])), 3),
                       "min_auc": round(float(np.min([r[basis]["auc"] for r in runs])), 3),
                       "mean_percentile": round(float(np.mean([r[basis]["mean_percentile"] for r in runs])), 1)}
               for basis in ("default", "density_only")},
            "density_cross_validated": cross_rarity[cond],
        }
    return {"ingest_failures": failed, "scene_precision": precision, "rarity": rarity}


def _fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{v:5.2f}"


def table(scores: dict[str, dict]) -> str:
    """An 80-column table of :func:`condition_scores`."""
    lines = [f"{'condition':10s} {'trigger':15s} {'pos':>4s} {'tp':>4s} {'fp':>4s} {'fn':>4s} {'prec':>6s} "
             f"{'recall':>6s} {'false clips':>11s}", "-" * 68]
    for cond, s in scores.items():
        lines.append(f"{cond:10s} {(s['trigger'] or '(none)'):15s} {s['positives']:4d} {s['tp']:4d} {s['fp']:4d} "
                     f"{s['fn']:4d} {_fmt(s['precision']):>6s} {_fmt(s['recall']):>6s} {s['false_clips']:11d}")
    return "\n".join(lines)


def scene_table(precision: dict[str, dict]) -> str:
    lines = [f"{'scene':12s} {'recordings':>10s} {'clips':>6s} {'p@5':>6s} {'p@5 cv':>7s} {'chance':>7s}",
             "-" * 53]
    for s, r in precision.items():
        lines.append(f"{s:12s} {r['recordings']:10d} {r['clips']:6d} {_fmt(r['precision_at_k']):>6s} "
                     f"{_fmt(r.get('cross_validated')):>7s} {_fmt(r['chance']):>7s}")
    return "\n".join(lines)


def rarity_table(rarity: dict[str, dict]) -> str:
    lines = [f"{'condition':10s} {'subsets':>7s} {'clips':>6s} {'rare':>5s} {'AUC':>6s} {'min':>6s} {'pct':>5s} "
             f"{'AUC dens':>8s} {'pct dens':>8s} {'cv':>6s}", "-" * 74]
    for c, r in rarity.items():
        d, o = r["default"], r["density_only"]
        cv = r.get("density_cross_validated", {}).get("auc")
        lines.append(f"{c:10s} {len(r['subsets']):7d} {r['clips']:6.0f} {r['rare_clips']:5.1f} {d['auc']:6.3f} "
                     f"{d['min_auc']:6.3f} {d['mean_percentile']:5.1f} {o['auc']:8.3f} {o['mean_percentile']:8.1f} "
                     f"{_fmt(cv):>6s}")
    return "\n".join(lines)


def run(folder: Path, max_pieces: int | None = None, embeddings: bool = True, say=print) -> dict:
    """The whole benchmark over ``folder``; returns the JSON-ready result."""
    t0 = time.perf_counter()
    labels = load_labels(folder)
    units = list(iter_units(folder, labels, max_pieces))
    scores = condition_scores(units)
    result = {
        "triggers_version": TRIGGERS_VERSION,
        "recordings": sum(1 for u in by_recording(units).values() if not u[0].is_frame),
        "frames": sum(1 for u in units if u.is_frame),
        "clips": sum(1 for u in units if not u.is_frame),
        "clip_seconds": CLIP_SECONDS,
        "keyframe_hz": KEYFRAME_HZ,
        "conditions": scores,
        "black_frames_on_night": fault_on_night(units, "black_frames"),
        "frozen_camera_on_night": fault_on_night(units, "frozen_camera"),
    }
    say(f"triggers scored in {time.perf_counter() - t0:.1f} s")
    if embeddings:
        with tempfile.TemporaryDirectory(prefix="clipdex-real-scenes-") as work:
            result.update(run_embeddings(folder, labels, Path(work), say))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.real_scenes", description=__doc__.split("\n")[0])
    ap.add_argument("--clips", default=os.environ.get(ENV_VAR), help=f"labelled real footage (default: ${ENV_VAR})")
    ap.add_argument("--json", default=None, help="where to save the JSON (default: benchmarks/results/real_scenes.json)")
    ap.add_argument("--max-pieces", type=int, default=None, help="at most this many 5-s clips per recording")
    ap.add_argument("--triggers-only", action="store_true", help="skip the ingest: no precision@5, no rarity")
    args = ap.parse_args(argv)
    if not args.clips:
        ap.error(f"pass --clips DIR or set {ENV_VAR}")
    result = run(Path(args.clips), args.max_pieces, embeddings=not args.triggers_only)
    print(f"{result['recordings']} recordings in {result['clips']} clips of {CLIP_SECONDS:g} s, "
          f"{result['frames']} frames; triggers v{result['triggers_version']}")
    print(table(result["conditions"]))
    for cond, s in result["conditions"].items():
        if s["missed"] or s["false"]:
            print(f"  {cond}: missed {', '.join(s['missed']) or '-'}; false {', '.join(s['false']) or '-'}"[:400])
    if "scene_precision" in result:
        print(f"\nsame-scene precision@{NEIGHBOURS}, neighbours from other recordings")
        print(scene_table(result["scene_precision"]))
        print(f"\nrarity of conditions under {RARE_SHARE:.0%} of a subset (pct: mean percentile;\n"
              "cv: density AUC, scene directions fitted without the rare recording)")
        print(rarity_table(result["rarity"]))
    out = Path(args.json) if args.json else RESULTS / "real_scenes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"saved {out}")
    failed = False
    for fault in ("black_frames", "frozen_camera"):
        if result[f"{fault}_on_night"]:
            print(f"FAIL: {fault} on night footage: {', '.join(result[f'{fault}_on_night'])}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
