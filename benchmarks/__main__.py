"""``python -m benchmarks run|compare``: the benchmark suite (see ``benchmarks/suite.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["compare"]:
        from benchmarks.compare import main as compare_main

        return compare_main(args[1:])
    if args[:1] != ["run"]:
        print("usage: python -m benchmarks run [--quick|--full] [--only GROUP[,GROUP]] [--out FILE]\n"
              "       python -m benchmarks compare BASELINE.json RUN.json [--threshold 0.2]",
              file=sys.stderr)
        return 2
    from benchmarks import suite

    ap = argparse.ArgumentParser(prog="python -m benchmarks run")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick",
                      help="small inputs, every group (the default; a few minutes)")
    mode.add_argument("--full", action="store_const", dest="mode", const="full",
                      help="the sizes the documented figures come from (up to 30 minutes)")
    ap.add_argument("--only", default=None,
                    help=f"comma-separated groups: {', '.join(suite.GROUPS)}")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON to write (default benchmarks/results/suite-MODE.json)")
    ap.add_argument("--smoke", action="store_true",
                    help="CI: fail only when a task crashes; a task that runs out of time is "
                         "reported, never a failure (no timing is ever checked)")
    opts = ap.parse_args(args[1:])
    mode_name = opts.mode or "quick"
    only = [g.strip() for g in opts.only.split(",")] if opts.only else None
    record = suite.run_suite(mode_name, only)
    out = opts.out or suite.RESULTS / f"suite-{mode_name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=float) + "\n")
    failed = [name for name, t in record["tasks"].items() if t.get("error") or t.get("rc")]
    crashed = [name for name in failed if not record["tasks"][name].get("timed_out")]
    print(f"wrote {out} ({record['wall_s']:.0f} s; {len(record['headline'])} headline metrics)")
    if failed:
        print(f"failed tasks: {', '.join(failed)}", file=sys.stderr)
        for name in crashed:
            print(f"--- {name}:\n{record['tasks'][name].get('error', '')}", file=sys.stderr)
    if opts.smoke:
        return 1 if crashed else 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
