"""Calibrate and measure the optional learned embedding (EfficientNet-Lite0, ``engine.scenes.learned``)
on labelled real footage, side by side with clipdex's built-in embedding.

    python -m benchmarks.calibrate_learned --clips DIR [--write] [--json OUT]

Cuts every labelled video of ``DIR`` (the dev-set layout: ``conditions.csv``; see
``benchmarks.real_scenes``) into 5-s clips at 2 keyframes/s as ingest does, computes each clip's
pooled network features, and reports same-scene precision@5 with neighbours from other
recordings only:

* ``raw``: the network's features alone, nothing fitted;
* ``cross_validated``: the calibration (principal directions and scene discriminant) refitted
  without each recording family in turn, that family's clips querying all others: no figure
  comes from a calibration that saw the query;
* ``in_sample``: the calibration fitted on every clip (what ``--write`` ships);

and the same figures of the built-in embedding on the same clips (its scene directions are
fitted on them too: ``benchmarks.calibrate_embedding --real``).

It also times the network per clip against decoding the same clips, so the cost of
``clipdex embeddings compute`` reads against plain decoding. ``--write`` saves the calibration
to ``engine/scenes/learned_calibration.npz``; do that only together with a new
``LEARNED_VERSION`` (stored vectors of the old version stay in their own space).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.real_scenes import (
    CLIP_SECONDS,
    ENV_VAR,
    KEYFRAME_HZ,
    NEIGHBOURS,
    RESULTS,
    load_labels,
    recording_families,
    scene_of,
)

#: the scenes the precision@5 target applies to: at least 3 other recordings in the dev set
MIN_OTHER_RECORDINGS = 3


def learned_inputs(folder: Path, say=print) -> dict:
    """{"files": file per clip, "features": float32[n, 1280], "decode_s", "network_s"} of the
    labelled videos of ``folder`` in 5-s clips."""
    from engine.scenes.learned import clip_features, load_model
    from engine.sources.video import iter_video_clips

    model = load_model()
    files, feats = [], []
    decode_s = network_s = 0.0
    for name in load_labels(folder):
        if name.startswith("frames/"):
            continue
        path = folder / name
        t0 = time.perf_counter()
        clips = list(iter_video_clips(path, clip_id_base=path.stem, clip_seconds=CLIP_SECONDS,
                                      keyframe_hz=KEYFRAME_HZ))
        t1 = time.perf_counter()
        feats.append(clip_features([c.keyframes for c in clips], model))
        network_s += time.perf_counter() - t1
        decode_s += t1 - t0
        files.extend([name] * len(clips))
        say(f"  {name}: {len(clips)} clips")
    return {"files": files, "features": np.concatenate(feats), "decode_s": decode_s, "network_s": network_s}


def precision_at_k(vectors: np.ndarray, scene: np.ndarray, fam: np.ndarray, rows: np.ndarray,
                   k: int = NEIGHBOURS) -> list[float]:
    """Precision@k of same-scene neighbours from other families, one value per query row."""
    out = []
    for i in rows:
        others = np.flatnonzero(fam != fam[i])
        top = others[np.argsort(-(vectors[others] @ vectors[i]), kind="stable")[:k]]
        out.append(float(np.mean(scene[top] == scene[i])))
    return out


def scene_figures(files: list[str], features: np.ndarray, labels: dict[str, frozenset[str]],
                  folder: Path) -> dict[str, dict]:
    """Per scene: clips, recordings, raw / cross-validated / in-sample precision@5, chance."""
    from engine.scenes.learned import fit_calibration

    fams = recording_families(folder, sorted(set(files)))
    fam = np.array([fams[f] for f in files])
    scene = np.array([scene_of(labels[f]) for f in files])
    raw = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    in_sample = fit_calibration(features, scene).project(features)
    cross: dict[str, list[float]] = {}
    for held in sorted(set(fam.tolist())):
        train = fam != held
        vectors = fit_calibration(features[train], scene[train]).project(features)
        rows = np.flatnonzero(~train)
        for i, p in zip(rows, precision_at_k(vectors, scene, fam, rows), strict=True):
            cross.setdefault(str(scene[i]), []).append(p)
    out = {}
    for s in sorted(set(scene.tolist())):
        rows = np.flatnonzero(scene == s)
        chance = [float(np.mean(scene[fam != fam[i]] == s)) for i in rows]
        out[s] = {"clips": len(rows), "recordings": len(set(fam[rows].tolist())),
                  "raw": round(float(np.mean(precision_at_k(raw, scene, fam, rows))), 3),
                  "cross_validated": round(float(np.mean(cross[s])), 3),
                  "in_sample": round(float(np.mean(precision_at_k(in_sample, scene, fam, rows))), 3),
                  "chance": round(float(np.mean(chance)), 3)}
    return out


def rarity_figures(files: list[str], features: np.ndarray, labels: dict[str, frozenset[str]],
                   folder: Path, k: int = 10) -> dict[str, dict]:
    """Density rarity AUC per rare condition in the learned space, on the subsets of
    ``benchmarks.real_scenes`` (every recording without an unusual condition plus one family with
    the condition, under 10 % of the clips): each clip scored by its mean distance to its ``k``
    nearest clips of other recordings, the calibration fitted without the rare family (``cv``)
    and with nothing fitted (``raw``)."""
    from benchmarks.real_scenes import auc, rare_subsets
    from engine.scenes.learned import fit_calibration

    fams = recording_families(folder, sorted(set(files)))
    fam = np.array([fams[f] for f in files])
    scene = np.array([scene_of(labels[f]) for f in files])
    names = np.array(files)
    per_file = {f: files.count(f) for f in sorted(set(files))}

    def score(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
        v = vectors[rows]
        dist = np.sqrt(np.clip(2.0 - 2.0 * v @ v.T, 0.0, None))
        dist[fam[rows][:, None] == fam[rows][None, :]] = np.inf
        near = np.sort(dist, axis=1)[:, :k]
        return np.nanmean(np.where(np.isfinite(near), near, np.nan), axis=1)

    raw = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    out: dict[str, dict] = {}
    for cond, subsets in rare_subsets(labels, fams, per_file).items():
        cv_aucs, raw_aucs = [], []
        for subset in subsets:
            rows = np.flatnonzero(np.isin(names, subset))
            positive = np.array([cond in labels[files[r]] for r in rows])
            rare_fams = set(fam[rows][positive].tolist())
            train = ~np.isin(fam, list(rare_fams))
            vectors = fit_calibration(features[train], scene[train]).project(features)
            cv_aucs.append(auc(positive, score(vectors, rows)))
            raw_aucs.append(auc(positive, score(raw, rows)))
        out[cond] = {"subsets": len(subsets), "cv_auc": round(float(np.mean(cv_aucs)), 3),
                     "cv_min_auc": round(float(np.min(cv_aucs)), 3), "raw_auc": round(float(np.mean(raw_aucs)), 3)}
    return out


def builtin_figures(folder: Path, labels: dict[str, frozenset[str]], files: list[str]) -> dict[str, dict]:
    """The built-in embedding on the same clips: precision@5 with its shipped scene directions
    (fitted on these clips: in sample) and with directions refitted without the query's family."""
    from benchmarks.calibrate_embedding import real_inputs, scene_embeddings
    from benchmarks.real_scenes import cross_validated_scene_precision
    from kernels._embedding_calibration import SCENE_DIRECTIONS

    inputs = real_inputs(folder)
    if inputs[0] != files:
        raise RuntimeError("the built-in and the learned pass cut the clips differently")
    fams = recording_families(folder, sorted(set(files)))
    fam = np.array([fams[f] for f in files])
    scene = np.array([scene_of(labels[f]) for f in files])
    shipped = scene_embeddings(inputs[1], SCENE_DIRECTIONS)
    cross = cross_validated_scene_precision(folder, labels, inputs=inputs)
    return {s: {"in_sample": round(float(np.mean(precision_at_k(shipped, scene, fam, np.flatnonzero(scene == s)))), 3),
                "cross_validated": cross.get(s, {}).get("precision_at_k")} for s in sorted(set(scene.tolist()))}


def run(folder: Path, write: bool = False, say=print) -> dict:
    from engine.scenes.learned import CALIBRATION, LEARNED_VERSION, MODEL, fit_calibration

    labels = load_labels(folder)
    t0 = time.perf_counter()
    data = learned_inputs(folder, say)
    files, features = data["files"], data["features"]
    scenes = scene_figures(files, features, labels, folder)
    n = len(files)
    result = {
        "model": MODEL, "learned_version": LEARNED_VERSION, "clips": n, "recordings": len(set(files)),
        "clip_seconds": CLIP_SECONDS, "keyframe_hz": KEYFRAME_HZ,
        "network_ms_per_clip": round(1000 * data["network_s"] / n, 1),
        "decode_ms_per_clip": round(1000 * data["decode_s"] / n, 1),
        "compute_vs_decode": round(data["decode_s"] / (data["decode_s"] + data["network_s"]), 3),
        "threads": os.cpu_count(), "load": round(os.getloadavg()[0], 1),
        "scene_precision": scenes,
        "required_scenes": sorted(s for s, r in scenes.items() if r["recordings"] > MIN_OTHER_RECORDINGS),
    }
    result["rarity"] = rarity_figures(files, features, labels, folder)
    result["builtin"] = builtin_figures(folder, labels, files)
    saved = RESULTS / "real_scenes.json"
    if saved.is_file():  # the built-in embedding's rarity, from its own benchmark (it ingests)
        rarity = json.loads(saved.read_text()).get("rarity", {})
        result["builtin_rarity"] = {c: r.get("density_cross_validated") for c, r in rarity.items()}
    if write:
        scene = np.array([scene_of(labels[f]) for f in files])
        np.savez(CALIBRATION, **fit_calibration(features, scene).arrays(
            note=f"fitted on {n} 5-s clips of {len(set(files))} labelled real recordings"))
        result["written"] = str(CALIBRATION.name)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def table(result: dict) -> str:
    """The learned space's figures beside the built-in embedding's (b-in, b-cv), 80 columns."""
    rows = [f"{'scene':12s} {'recs':>4s} {'clips':>5s} {'raw':>5s} {'cv':>5s} {'in':>5s} "
            f"{'b-cv':>5s} {'b-in':>5s} {'chance':>6s}"]
    builtin = result.get("builtin", {})

    def fmt(v):
        return f"{'-':>5s}" if v is None else f"{v:5.2f}"

    for s, r in result["scene_precision"].items():
        b = builtin.get(s, {})
        rows.append(f"{s:12s} {r['recordings']:4d} {r['clips']:5d} {fmt(r['raw'])} {fmt(r['cross_validated'])} "
                    f"{fmt(r['in_sample'])} {fmt(b.get('cross_validated'))} {fmt(b.get('in_sample'))} "
                    f"{r['chance']:6.2f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.calibrate_learned", description=__doc__.split("\n")[0])
    ap.add_argument("--clips", default=os.environ.get(ENV_VAR), help=f"labelled real footage (default: ${ENV_VAR})")
    ap.add_argument("--write", action="store_true", help="save the calibration fitted on every clip")
    ap.add_argument("--json", default=None, help="default: benchmarks/results/learned_scenes.json")
    args = ap.parse_args(argv)
    if not args.clips:
        ap.error(f"pass --clips DIR or set {ENV_VAR}")
    result = run(Path(args.clips), args.write)
    print(f"{result['model']} v{result['learned_version']}: {result['clips']} clips of "
          f"{result['recordings']} recordings; network {result['network_ms_per_clip']} ms a clip, decoding "
          f"{result['decode_ms_per_clip']} ms (compute = {result['compute_vs_decode']:.2f}x of decoding alone)")
    print(f"same-scene precision@{NEIGHBOURS}, neighbours from other recordings (cv: calibration\n"
          "fitted without the query's recording; in: on every clip; b-: the built-in embedding)")
    print(table(result))
    print("\ndensity rarity AUC of rare conditions (cv: calibration fitted without the\n"
          "rare recording; b-cv: the built-in embedding so, from benchmarks.real_scenes)")
    builtin = result.get("builtin_rarity", {})
    for cond, r in result["rarity"].items():
        b = (builtin.get(cond) or {}).get("auc")
        print(f"  {cond:6s} subsets {r['subsets']}  cv {r['cv_auc']:.3f} (min {r['cv_min_auc']:.3f})  "
              f"raw {r['raw_auc']:.3f}  b-cv {'-' if b is None else f'{b:.3f}'}")
    out = Path(args.json) if args.json else RESULTS / "learned_scenes.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
