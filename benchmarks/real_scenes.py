"""Picture conditions on real dashcam footage: trigger precision and recall per condition.

``python -m benchmarks.real_scenes --clips DIR [--json OUT]`` reads a labelled folder of real
footage (the dev set layout: ``conditions.csv`` with ``file,conditions`` rows, ``;``-separated
labels, video files and ``frames/<condition>/`` single images), computes the frame triggers of
:mod:`engine.triggers` exactly as ingest does (keyframes at 2 Hz in 5-s clips, the hashed view,
64x36 thumbnails) and scores them against the labels.

A recording fires a whole-clip condition (night, dusk, fog, snow) when at least half of its 5-s
clips fire it, and a moment (glare) when any clip does; a single frame is one clip. Conditions
without a trigger yet (rain, tunnel) are listed with recall 0. The run fails (exit 1) when any
night recording fires ``black_frames``. The folder comes from ``--clips`` or the environment
variable ``CLIPDEX_REAL_CLIPS``; nothing from it is copied anywhere.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.features import hash_view, thumbnails
from engine.sources.sampling import working_factor
from engine.sources.video import iter_video_clips
from engine.triggers import TRIGGERS_VERSION, frame_triggers

#: label in conditions.csv -> the trigger that should fire (None: no trigger for it yet)
CONDITION_TRIGGERS: dict[str, str | None] = {
    "night": "low_light",
    "dusk": "dusk",
    "fog": "low_visibility",
    "snow": "snow",
    "glare": "glare",
    "rain": None,
    "tunnel": None,
}
#: conditions that mark moments of a recording (any 5-s clip counts); the rest describe it whole
MOMENTS = frozenset({"glare", "tunnel"})
CLIP_SECONDS = 5.0
KEYFRAME_HZ = 2.0
ENV_VAR = "CLIPDEX_REAL_CLIPS"
RESULTS = Path(__file__).parent / "results"


@dataclass
class Unit:
    """One 5-s clip of a recording (or one labelled frame) and the triggers that fired on it."""

    file: str  # as named in conditions.csv
    piece: int
    labels: frozenset[str]
    is_frame: bool
    triggers: frozenset[str]


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
    view, 64x36 thumbnail. uint8[1, 36, 64, 3]."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    f = working_factor(*rgb.size)
    rgb = rgb.resize((rgb.size[0] // f, rgb.size[1] // f), Image.Resampling.BOX)
    return thumbnails(hash_view(np.asarray(rgb)[None]))


def iter_units(folder: Path, labels: dict[str, frozenset[str]], max_pieces: int | None = None) -> Iterator[Unit]:
    """Every labelled file of ``folder`` as :class:`Unit` s (at most ``max_pieces`` 5-s clips of
    each recording: decoding stops there)."""
    for name, labs in labels.items():
        path = folder / name
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            views = frame_views(path)
            fired = frame_triggers(views, np.zeros(1))
            yield Unit(name, 0, labs, True, frozenset(n for n, *_ in fired))
            continue
        clips = iter_video_clips(path, clip_id_base=path.stem, clip_seconds=CLIP_SECONDS, keyframe_hz=KEYFRAME_HZ)
        for i, sample in enumerate(clips):
            if max_pieces is not None and i >= max_pieces:
                break
            views = thumbnails(hash_view(sample.keyframes))
            fired = frame_triggers(views, sample.keyframe_times, telemetry=sample.telemetry)
            yield Unit(name, i, labs, False, frozenset(n for n, *_ in fired))


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
        tp = fp = fn = 0
        missed, false = [], []
        for name, us in recs.items():
            pos = cond in us[0].labels
            fired = trig is not None and recording_fires(us, trig, cond in MOMENTS)
            tp += pos and fired
            fp += fired and not pos
            fn += pos and not fired
            (missed if pos and not fired else false if fired and not pos else []).append(name)
        out[cond] = {
            "trigger": trig, "positives": tp + fn, "tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "missed": missed, "false": false,
        }
    return out


def black_on_night(units: list[Unit]) -> list[str]:
    """Night recordings and frames with any clip firing ``black_frames`` (must be empty)."""
    return sorted({u.file for u in units if "night" in u.labels and "black_frames" in u.triggers})


def _fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{v:5.2f}"


def table(scores: dict[str, dict]) -> str:
    """An 80-column table of :func:`condition_scores`."""
    lines = [f"{'condition':10s} {'trigger':15s} {'pos':>4s} {'tp':>4s} {'fp':>4s} {'fn':>4s} {'prec':>6s} {'recall':>6s}",
             "-" * 56]
    for cond, s in scores.items():
        lines.append(f"{cond:10s} {(s['trigger'] or '(none)'):15s} {s['positives']:4d} {s['tp']:4d} {s['fp']:4d} "
                     f"{s['fn']:4d} {_fmt(s['precision']):>6s} {_fmt(s['recall']):>6s}")
    return "\n".join(lines)


def run(folder: Path, max_pieces: int | None = None) -> dict:
    """The whole benchmark over ``folder``; returns the JSON-ready result."""
    t0 = time.perf_counter()
    labels = load_labels(folder)
    units = list(iter_units(folder, labels, max_pieces))
    scores = condition_scores(units)
    return {
        "triggers_version": TRIGGERS_VERSION,
        "recordings": sum(1 for u in by_recording(units).values() if not u[0].is_frame),
        "frames": sum(1 for u in units if u.is_frame),
        "clips": sum(1 for u in units if not u.is_frame),
        "clip_seconds": CLIP_SECONDS,
        "keyframe_hz": KEYFRAME_HZ,
        "conditions": scores,
        "black_frames_on_night": black_on_night(units),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.real_scenes", description=__doc__.split("\n")[0])
    ap.add_argument("--clips", default=os.environ.get(ENV_VAR), help=f"labelled real footage (default: ${ENV_VAR})")
    ap.add_argument("--json", default=None, help="where to save the JSON (default: benchmarks/results/real_scenes.json)")
    ap.add_argument("--max-pieces", type=int, default=None, help="at most this many 5-s clips per recording")
    args = ap.parse_args(argv)
    if not args.clips:
        ap.error(f"pass --clips DIR or set {ENV_VAR}")
    result = run(Path(args.clips), args.max_pieces)
    print(f"{result['recordings']} recordings in {result['clips']} clips of {CLIP_SECONDS:g} s, "
          f"{result['frames']} frames; triggers v{result['triggers_version']}")
    print(table(result["conditions"]))
    for cond, s in result["conditions"].items():
        if s["missed"] or s["false"]:
            print(f"  {cond}: missed {', '.join(s['missed']) or '-'}; false {', '.join(s['false']) or '-'}"[:400])
    out = Path(args.json) if args.json else RESULTS / "real_scenes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"saved {out}")
    if result["black_frames_on_night"]:
        print(f"FAIL: black_frames on night footage: {', '.join(result['black_frames_on_night'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
