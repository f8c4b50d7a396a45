"""Fit the fixed standardisation constants of the clip embedding on a fixture fleet.

    python -m benchmarks.calibrate_embedding [--seed 1] [--fleet DIR] [--out kernels/_embedding_calibration.py]

Renders the demo fleet with ``--seed`` (a seed the demo and the tests do not use; default 1)
unless ``--fleet`` names a fleet written by ``clipdex synth``, computes every clip's raw
embedding input vector through the ingest path (zarr reader, tent-filtered keyframes, hash view,
descriptor and telemetry kernels), and writes the per-feature mean and standard deviation as a
Python module. Run it only when the embedding's input changes, together with a new
``EMBEDDING_VERSION``: the constants are part of the embedding's definition, not refitted per
region (that would make regions' embeddings incomparable).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def raw_inputs(fleet: Path) -> np.ndarray:
    import kernels
    from engine.features import _stack_telemetry, hash_view
    from engine.sources.zarr_clips import iter_zarr_clips

    descs, tels = [], []
    for region_dir in sorted(p for p in fleet.iterdir() if (p / "clips.zarr").is_dir()):
        for s in iter_zarr_clips(region_dir / "clips.zarr"):
            if isinstance(s, Exception):
                raise s
            descs.append(kernels.keyframe_descriptors(hash_view(s.keyframes)))
            tels.append(s.telemetry)
    counts = np.array([len(d) for d in descs], np.int64)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    tel_stats = kernels.telemetry_stats(*_stack_telemetry(tels))
    from kernels.embedding import clip_input_vectors

    return clip_input_vectors(np.concatenate(descs), start, counts, tel_stats, standardised=False)


def write_module(out: Path, center: np.ndarray, sd: np.ndarray, note: str) -> None:
    def arr(name, v):
        body = ",\n".join("    " + ", ".join(f"{x:.6g}" for x in v[i:i + 8]) for i in range(0, len(v), 8))
        return f"{name} = np.array([\n{body},\n], np.float64)\n"

    out.write_text(
        '"""Standardisation constants of the clip embedding (generated; do not edit).\n\n'
        f"{note}\n"
        "Regenerate with ``python -m benchmarks.calibrate_embedding`` and bump\n"
        "``kernels.embedding.EMBEDDING_VERSION`` when the embedding input changes.\n"
        '"""\n\nimport numpy as np\n\n' + arr("INPUT_CENTER", center) + "\n" + arr("INPUT_SD", sd)
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.calibrate_embedding")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fleet", default=None, help="an existing fleet folder (clipdex synth OUT)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "kernels" / "_embedding_calibration.py"))
    a = ap.parse_args(argv)
    if a.fleet is None:
        from engine.demo import synth_fleet

        tmp = tempfile.mkdtemp(prefix="clipdex-calib-")
        synth_fleet(tmp, preset="demo", seed=a.seed)
        fleet, note = Path(tmp), f"Fitted on the demo fixture fleet, seed {a.seed}"
    else:
        fleet, note = Path(a.fleet), f"Fitted on the fixture fleet at {a.fleet}"
    x = raw_inputs(fleet)
    note += f" ({len(x)} clips, all regions pooled)."
    write_module(Path(a.out), x.mean(axis=0), x.std(axis=0), note)
    print(f"wrote {a.out} from {len(x)} clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
