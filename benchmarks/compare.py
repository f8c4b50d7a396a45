"""Compare a benchmark run against a saved baseline: fail when a headline ratio regressed.

    python -m benchmarks compare BASELINE.json RUN.json [--threshold 0.2] [--all]

Both files are written by ``python -m benchmarks run``. Each headline metric says which way
is better. A metric regresses when it is worse than the baseline by more than the threshold
(0.2: 20 %). By default only ratios are compared (``x``: a kernel's cost over the calibration
loop measured in the same process, speed-ups over peers, shares of the read limit, quality
ratios), because they hold across machines and loads; ``--all`` adds absolute times.
"""

from __future__ import annotations

import json
from pathlib import Path


def regressions(baseline: dict, run: dict, threshold: float = 0.2,
                include_absolute: bool = False) -> tuple[list[dict], list[dict]]:
    """(regressed, compared) rows for the headline metrics both runs carry."""
    base_h, run_h = baseline.get("headline", {}), run.get("headline", {})
    compared, regressed = [], []
    for name in sorted(set(base_h) & set(run_h)):
        b, r = base_h[name], run_h[name]
        if b.get("value") is None or r.get("value") is None:
            continue
        if b.get("unit", "x") != "x" and not include_absolute:
            continue
        better = b.get("better", "higher")
        bv, rv = float(b["value"]), float(r["value"])
        if bv == 0:
            change = 0.0 if rv == 0 else float("inf") * (1 if rv > 0 else -1)
        else:
            change = (rv - bv) / abs(bv)
        worse = -change if better == "higher" else change
        row = {"metric": name, "baseline": bv, "run": rv, "change": change, "better": better,
               "regressed": worse > threshold}
        compared.append(row)
        if row["regressed"]:
            regressed.append(row)
    return regressed, compared


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m benchmarks compare", description=__doc__.split("\n")[0])
    ap.add_argument("baseline", type=Path)
    ap.add_argument("run", type=Path)
    ap.add_argument("--threshold", type=float, default=0.2,
                    help="largest tolerated relative worsening (default 0.2 = 20 %%)")
    ap.add_argument("--all", action="store_true", help="also compare absolute times")
    ap.add_argument("--quiet", action="store_true", help="print only the regressions")
    args = ap.parse_args(argv)
    baseline = json.loads(args.baseline.read_text())
    run = json.loads(args.run.read_text())
    if baseline.get("mode") != run.get("mode"):
        print(f"the baseline is a {baseline.get('mode')} run and {args.run} a {run.get('mode')} "
              "run: their inputs differ in size; compare runs of one mode")
        return 2
    regressed, compared = regressions(baseline, run, args.threshold, args.all)
    for row in compared:
        if args.quiet and not row["regressed"]:
            continue
        mark = "REGRESSED" if row["regressed"] else "ok"
        print(f"{mark:>9}  {row['metric']:<58} {row['baseline']:>10.4g} -> {row['run']:<10.4g}"
              f" ({row['change']:+.1%}, {row['better']} is better)")
    if not compared:
        print("no headline metric in common: nothing compared")
        return 2
    print(f"{len(compared)} compared, {len(regressed)} regressed beyond {args.threshold:.0%}")
    return 1 if regressed else 0
