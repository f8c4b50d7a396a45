"""Fit the fixed constants of the clip embedding: standardisation on a fixture fleet, scene
directions on labelled real footage.

    python -m benchmarks.calibrate_embedding [--seed 1] [--fleet DIR] [--out kernels/_embedding_calibration.py]
    python -m benchmarks.calibrate_embedding --real DIR [--out ...]

Without ``--real`` it renders the demo fleet with ``--seed`` (a seed the demo and the tests do
not use; default 1) unless ``--fleet`` names a fleet written by ``clipdex synth``, computes every
clip's raw embedding input vector through the ingest path (zarr reader, tent-filtered
keyframes, hash view, descriptor and telemetry kernels), and writes the per-feature mean and
standard deviation and the fleet's *scenario directions* (:func:`fit_scene_directions` over
its scenario labels) as a Python module, keeping the scene directions.

With ``--real DIR`` (a labelled folder of real footage in the dev-set layout: ``conditions.csv``,
videos cut into 5-s clips as ``benchmarks.real_scenes`` does) it keeps the standardisation and
fits the *scene directions* (:func:`fit_scene_directions`): a regularised linear discriminant of
the scene labels (night, dusk, fog, tunnel, highway, urban, rural) over the standardised picture
inputs, every clip weighted alike. The embedding spends its last
``SCENE_DIMS`` coordinates on them, so neighbours share lighting and road type.

Run either only together with a new ``EMBEDDING_VERSION``: the constants are part of the
embedding's definition, not refitted per region (that would make regions' embeddings
incomparable).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from kernels.embedding import input_standardisation


def raw_inputs(fleet: Path, clip_ids: list[str] | None = None) -> np.ndarray:
    """Raw embedding input vectors of every clip of a fleet folder (the ids, in order, are
    appended to ``clip_ids`` when given)."""
    import kernels
    from engine.ingest.features import _stack_telemetry, hash_view
    from engine.sources.zarr_clips import iter_zarr_clips

    descs, tels = [], []
    for region_dir in sorted(p for p in fleet.iterdir() if (p / "clips.zarr").is_dir()):
        for s in iter_zarr_clips(region_dir / "clips.zarr"):
            if isinstance(s, Exception):
                raise s
            descs.append(kernels.keyframe_descriptors(hash_view(s.keyframes)))
            tels.append(s.telemetry)
            if clip_ids is not None:
                clip_ids.append(s.clip_id)
    counts = np.array([len(d) for d in descs], np.int64)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    tel_stats = kernels.telemetry_stats(*_stack_telemetry(tels))
    from kernels.embedding import clip_input_vectors

    return clip_input_vectors(np.concatenate(descs), start, counts, tel_stats, standardised=False)


#: ridge added to the within-scene scatter, as a share of each feature's own within-scene variance
SCENE_RIDGE = 0.3


def fit_scene_directions(x: np.ndarray, scenes: np.ndarray, dims: int | None = None,
                         ridge: float = SCENE_RIDGE) -> np.ndarray:
    """Scene directions ``float64[EMBEDDING_INPUT_DIM, dims]`` from standardised input vectors
    ``x`` (``clip_input_vectors(..., standardised=True)``) and a scene label per row.

    A linear discriminant: the generalised eigenvectors of the between-scene over the (ridged)
    within-scene scatter of the picture inputs (telemetry rows stay 0: real footage rarely
    carries it), each scaled by the root of its eigenvalue over the first, made orthogonal to the
    mean input (so the scene coordinates carry no common offset), and scaled together so that
    their total variance equals the inputs' total variance."""
    from engine.scenes.discriminant import scene_discriminant
    from kernels.embedding import SCENE_DIMS, TELEMETRY_DIM

    dims = SCENE_DIMS if dims is None else dims
    pic = np.asarray(x, np.float64)[:, :-TELEMETRY_DIM]
    mean = pic.mean(axis=0)
    w = scene_discriminant(pic, np.asarray(scenes), dims, ridge)
    w -= np.outer(mean, mean @ w) / max(float(mean @ mean), 1e-12)
    spread = ((pic - mean) ** 2).sum(axis=1).mean()
    w *= np.sqrt(spread / max(float((((pic - mean) @ w) ** 2).sum(axis=1).mean()), 1e-12))
    out = np.zeros((x.shape[1], dims))
    out[:-TELEMETRY_DIM] = w
    return out


def scene_embeddings(x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Unit-length clip embeddings of standardised input vectors ``x`` with ``directions`` in
    place of the calibrated scene directions (what the kernels compute, in NumPy)."""
    from kernels.embedding import embedding_projection

    y = np.asarray(x, np.float64) @ embedding_projection(scene_directions=directions).astype(np.float64)
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def real_inputs(folder: Path) -> tuple[list[str], np.ndarray]:
    """(file per clip, standardised input vectors) of the labelled videos of ``folder`` in 5-s
    clips, through the ingest path (decoder, hash view, descriptor kernel; no telemetry)."""
    import kernels
    from benchmarks.real_scenes import CLIP_SECONDS, KEYFRAME_HZ, load_labels
    from engine.ingest.features import hash_view
    from engine.sources.video import iter_video_clips
    from kernels.embedding import TELEMETRY_DIM, clip_input_vectors

    files, descs = [], []
    for name in load_labels(folder):
        if name.startswith("frames/"):
            continue
        path = folder / name
        for s in iter_video_clips(path, clip_id_base=path.stem, clip_seconds=CLIP_SECONDS, keyframe_hz=KEYFRAME_HZ):
            descs.append(kernels.keyframe_descriptors(hash_view(s.keyframes)))
            files.append(name)
    counts = np.array([len(d) for d in descs], np.int64)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    tel = np.zeros((len(descs), TELEMETRY_DIM), np.float32)
    return files, clip_input_vectors(np.concatenate(descs), start, counts, tel, standardised=True)


def write_module(out: Path, center: np.ndarray, sd: np.ndarray, note: str, scenario_directions: np.ndarray,
                 scene_directions: np.ndarray | None = None, scene_note: str = "") -> None:
    from kernels._embedding_calibration import SCENE_DIRECTIONS, SCENE_NOTE

    if scene_directions is None:
        scene_directions, scene_note = SCENE_DIRECTIONS, SCENE_NOTE

    def arr(name, v):
        v = np.asarray(v).ravel()
        body = ",\n".join("    " + ", ".join(f"{x:.6g}" for x in v[i:i + 8]) for i in range(0, len(v), 8))
        return f"{name} = np.array([\n{body},\n], np.float64)"

    rows, dims = scene_directions.shape
    out.write_text(
        '"""Constants of the clip embedding (generated; do not edit).\n\n'
        f"{note}\n{scene_note}\n"
        "Regenerate with ``python -m benchmarks.calibrate_embedding`` (standardisation) and\n"
        "``python -m benchmarks.calibrate_embedding --real DIR`` (scene directions), and bump\n"
        "``kernels.embedding.EMBEDDING_VERSION`` when they change.\n"
        '"""\n\nimport numpy as np\n\n'
        f"NOTE = {note!r}\nSCENE_NOTE = {scene_note!r}\n\n"
        + arr("INPUT_CENTER", center) + "\n\n" + arr("INPUT_SD", sd) + "\n\n"
        + arr("SCENARIO_DIRECTIONS", scenario_directions) + f".reshape({rows}, {dims})\n\n"
        + arr("SCENE_DIRECTIONS", scene_directions) + f".reshape({rows}, {dims})\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.calibrate_embedding")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fleet", default=None, help="an existing fleet folder (clipdex synth OUT)")
    ap.add_argument("--real", default=None, help="labelled real footage (dev-set layout): fit the scene directions")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "kernels" / "_embedding_calibration.py"))
    a = ap.parse_args(argv)
    if a.real is not None:
        return _calibrate_real(Path(a.real), Path(a.out))
    if a.fleet is None:
        from engine.surfaces.demo import synth_fleet

        tmp = tempfile.mkdtemp(prefix="clipdex-calib-")
        synth_fleet(tmp, preset="demo", seed=a.seed)
        fleet, note = Path(tmp), f"Fitted on the demo fixture fleet, seed {a.seed}"
    else:
        fleet, note = Path(a.fleet), f"Fitted on the fixture fleet at {a.fleet}"
    ids: list[str] = []
    x = raw_inputs(fleet, ids)
    note += f" ({len(x)} clips, all regions pooled); scenario directions from its scenarios."
    center, sd = x.mean(axis=0), x.std(axis=0)
    scenario = {c["clip_id"]: c["scenario"] for c in json.loads((fleet / "ground_truth.json").read_text())["clips"]}
    offset, gain = input_standardisation(center, sd)
    directions = fit_scene_directions((x - offset) * gain, np.array([scenario[i] for i in ids]))
    write_module(Path(a.out), center, sd, note, directions)
    print(f"wrote {a.out} from {len(x)} clips")
    return 0


def _calibrate_real(folder: Path, out: Path) -> int:
    from benchmarks.real_scenes import load_labels, recording_families, scene_of
    from kernels._embedding_calibration import INPUT_CENTER, INPUT_SD, NOTE, SCENARIO_DIRECTIONS

    labels = load_labels(folder)
    files, x = real_inputs(folder)
    scenes = np.array([scene_of(labels[f]) for f in files])
    families = recording_families(folder, sorted(set(files)))
    directions = fit_scene_directions(x, scenes)
    counts = {s: int((scenes == s).sum()) for s in sorted(set(scenes.tolist()))}
    note = (f"Scene directions fitted on {len(files)} real 5-s clips of {len(set(families.values()))} "
            f"recording families ({', '.join(f'{s} {n}' for s, n in counts.items())}).")
    write_module(out, INPUT_CENTER, INPUT_SD, NOTE, SCENARIO_DIRECTIONS, directions, note)
    print(f"wrote {out}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
