"""Recordings on real footage: the dev set's videos split into clips, then dedup, query and the
train/val split checked for self-matches.

``python -m benchmarks.real_recordings --clips DIR [--clip-seconds 5] [--json OUT]`` (``DIR``
defaults to ``$CLIPDEX_REAL_CLIPS``) ingests every video of the folder with ``--clip-seconds``,
runs dedup, queries every clip for its 10 nearest, selects every clip with a 20 % validation
share, and reports:

- pairs and duplicate groups between disjoint pieces of one recording (must be 0);
- query top-10 hits from the query's own recording (must be 0 by default), and the same figure
  with ``same_recording=True`` for comparison;
- recordings whose pieces land on both sides of the train/val split (must be 0);
- pairs between different recordings, for reference.

Figures are written to ``benchmarks/results/real_recordings.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def video_files(clips: Path, limit: int | None = None) -> list[Path]:
    from engine.sources.discover import VIDEO_EXTENSIONS

    files = sorted(p for p in clips.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    return files[:limit] if limit else files


def run(clips: Path, *, clip_seconds: float = 5.0, limit: int | None = None, k: int = 10,
        home: Path | None = None) -> dict:
    """Measure on the first ``limit`` videos of ``clips`` (all by default)."""
    from engine.curation.select import select_clips
    from engine.ingest.pipeline import IngestOptions, ingest
    from engine.matching.dedup import run_dedup
    from engine.scenes.query import search_clip
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    files = video_files(clips, limit)
    if not files:
        raise SystemExit(f"no video files in {clips}")
    with tempfile.TemporaryDirectory() as tmp:
        h = Home.open(home or Path(tmp) / "home", create=True)
        if "real" not in h.regions:
            h.add_region("real", jurisdiction="XX", export_fields=("ids", "scores"), export_to=("*",))
        t0 = time.perf_counter()
        rep = ingest(h, "real", files, IngestOptions(clip_seconds=clip_seconds))
        t_ingest = time.perf_counter() - t0
        with RegionStore.open(h.region("real")) as store:
            t0 = time.perf_counter()
            res = run_dedup(store, full=True)
            t_dedup = time.perf_counter() - t0
            table = store.clip_table()
            rec = dict(zip(table.rows.tolist(), table.recording_ids, strict=True))
            ids = dict(zip(table.rows.tolist(), table.clip_ids, strict=True))
            span = {int(r): (float(o), float(o + d)) for r, o, d in
                    zip(table.rows, table.source_offset_s, table.duration_s, strict=True)}

            def disjoint(a: int, b: int) -> bool:
                return span[a][1] <= span[b][0] + 1e-6 or span[b][1] <= span[a][0] + 1e-6

            self_pairs = [(ids[p.a], ids[p.b], p.relation) for p in res.pairs
                          if rec[p.a] == rec[p.b] and disjoint(p.a, p.b)]
            self_groups = [[ids[m] for m in ms] for ms in res.groups.values()
                           if len({rec[m] for m in ms}) < len(ms)]
            cross = [(ids[p.a], ids[p.b], p.relation) for p in res.pairs if rec[p.a] != rec[p.b]]
            own_default = own_kept = total = 0
            by_id = {v: rec[k_] for k_, v in ids.items()}
            for cid in table.clip_ids:
                hits = search_clip(store, cid, k)
                own_default += sum(by_id[h.clip_id] == by_id[cid] for h in hits)
                total += len(hits)
                kept = search_clip(store, cid, k, same_recording=True)
                own_kept += sum(by_id[h.clip_id] == by_id[cid] for h in kept)
            sel = select_clips(store, budget=len(table), val_fraction=0.2, seed=0)
            sides: dict[str, set[str]] = {}
            for s in sel.chosen:
                sides.setdefault(by_id[s.clip_id], set()).add(s.split)
            leaks = sum(len(v) > 1 for v in sides.values())
    recordings = len(set(rec.values()))
    return {
        "clips_dir": "CLIPDEX_REAL_CLIPS" if os.environ.get("CLIPDEX_REAL_CLIPS") else "given",
        "files": len(files), "clip_seconds": clip_seconds, "clips": len(table),
        "recordings": recordings, "ingest_failed": [f for f, _ in rep.failed],
        "ingest_s": round(t_ingest, 2), "dedup_s": round(t_dedup, 3),
        "self_pairs": self_pairs, "self_groups": self_groups,
        "cross_recording_pairs": cross,
        "query_k": k, "query_hits": total,
        "query_own_recording_hits": own_default,
        "query_own_recording_hits_if_kept": own_kept,
        "split_recordings_on_both_sides": leaks, "split_recordings": len(sides),
    }


def _print(out: dict) -> None:
    rows = [
        ("videos / clips / recordings", f"{out['files']} / {out['clips']} / {out['recordings']}"),
        ("ingest / dedup seconds", f"{out['ingest_s']} / {out['dedup_s']}"),
        ("pairs between disjoint pieces", f"{len(out['self_pairs'])} (target 0)"),
        ("groups with 2 pieces of 1 rec.", f"{len(out['self_groups'])} (target 0)"),
        (f"query top-{out['query_k']}: own-recording hits",
         f"{out['query_own_recording_hits']} of {out['query_hits']} (target 0)"),
        ("  ... with --include-same-recording", str(out["query_own_recording_hits_if_kept"])),
        ("split: recordings on both sides",
         f"{out['split_recordings_on_both_sides']} of {out['split_recordings']} (target 0)"),
        ("pairs between recordings", str(len(out["cross_recording_pairs"]))),
    ]
    width = max(len(a) for a, _ in rows)
    print(f"recordings on real footage, --clip-seconds {out['clip_seconds']:g}")
    for a, b in rows:
        print(f"  {a:<{width}}  {b}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=Path, default=os.environ.get("CLIPDEX_REAL_CLIPS"),
                    help="the dev set folder (default: $CLIPDEX_REAL_CLIPS)")
    ap.add_argument("--clip-seconds", type=float, default=5.0)
    ap.add_argument("--limit", type=int, default=None, help="only the first N videos")
    ap.add_argument("--json", type=Path, default=RESULTS / "real_recordings.json")
    args = ap.parse_args(argv)
    if args.clips is None or not Path(args.clips).is_dir():
        print("give --clips DIR or set CLIPDEX_REAL_CLIPS to the real-footage folder",
              file=sys.stderr)
        return 2
    out = run(Path(args.clips), clip_seconds=args.clip_seconds, limit=args.limit)
    _print(out)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"saved {args.json}")
    bad = out["self_pairs"] or out["self_groups"] or out["query_own_recording_hits"] \
        or out["split_recordings_on_both_sides"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
