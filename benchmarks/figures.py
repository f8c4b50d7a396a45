"""Figure tables rendered from saved benchmark JSON into README.md and docs/.

A table lives between ``<!-- figures:NAME -->`` and ``<!-- /figures -->``; ``python -m
benchmarks.docs figures`` replaces what is between the markers with the rendering of NAME
from the JSON files in ``benchmarks/results/``, and ``tests/test_docs.py`` fails when a
table differs from its rendering. Each rendering names the command that wrote its JSON and
the machine it ran on (as far as the JSON records it). Tables fit 80 columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCUMENTS = ("README.md", "docs/*.md")
MARKER = re.compile(r"(<!-- figures:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /figures -->)",
                    re.S)


class MissingResults(Exception):
    """A figure's JSON is not in benchmarks/results/."""


def _load(name: str):
    path = RESULTS / name
    if not path.exists():
        raise MissingResults(f"benchmarks/results/{name}")
    return json.loads(path.read_text())


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:+.1f} %"


def _table(header: list[str], rows: list[list], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _machine(record: dict) -> str:
    """The machine a suite record or a pytest-benchmark file names."""
    m = record.get("machine") or {}
    if m:
        load = m.get("load_before", [None])[0]
        return (f"{m.get('cpu_model')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB"
                + (f", load {load:.1f} at the start" if load is not None else ""))
    info = record.get("machine_info") or {}
    cpu = info.get("cpu") or {}
    if cpu:
        return f"{cpu.get('brand_raw')}, {cpu.get('count')} cores"
    return "a 2-core shared VM (the JSON does not record the CPU)"


# ---------------------------------------------------------------- the figures
def fig_headline() -> list[str]:
    quality = _load("quality.json")
    real = _load("real_quality.json")
    ingest = _load("bench_ingest_default_decode.json")
    dask = _load("dask_scale.json")
    o = quality["overall"]
    d = o["dedup"]
    s = real["scores"]
    t, rt = quality["targets"], real["targets"]
    ing = ingest["benchmarks"][0]["extra_info"]
    rows = [
        ["dedup F1, synthetic fleet", _fmt(d["f1"]), f">= {t['dedup_f1']}", "quality"],
        ["hard negatives merged, synthetic fleet",
         f"{d['hard_negatives_merged']} of {d['hard_negatives']:,}", "0", "quality"],
        ["rare-scenario recall@k, synthetic fleet", _fmt(o["rarity"]["recall_at_k"]),
         f">= {t['rare_recall_at_k']}", "quality"],
        ["same-scenario precision@10", _fmt(o["query"]["precision_at_k"]),
         f">= {t['query_precision_at_10']}", "quality"],
        ["selection: coverage better than random", _pct(o["selection"]["improvement"]),
         f">= {t['selection_improvement'] * 100:.0f} %", "quality"],
        ["dedup precision, real footage", _fmt(s["precision"]), f">= {rt['precision']}",
         "real_quality"],
        ["dedup recall, real footage", _fmt(s["recall"]), f">= {rt['recall']}", "real_quality"],
        ["ingest speed vs plain PyAV decoding", f"{_fmt(ing['ingest_vs_decode'], 2)}x",
         ">= 0.85x", "bench_ingest"],
        ["2 Dask workers vs the local executor",
         f"{_fmt(dask['ratios']['dask2_vs_local'], 2)}x", "", "dask_scale"],
    ]
    try:
        learned = _load("learned_scenes.json")
        judged = [learned["scene_precision"][sc]["cross_validated"] for sc in learned["required_scenes"]]
        builtin = [learned["builtin"][sc]["cross_validated"] for sc in learned["required_scenes"]]
        rows[7:7] = [["scene precision@5, real, worst (cv)", _fmt(min(builtin), 2), ">= 0.7",
                      "calibrate_learned"],
                     ["... learned embedding (optional)", _fmt(min(judged), 2), ">= 0.7",
                      "calibrate_learned"]]
    except (MissingResults, KeyError):
        pass
    machine = _machine(ingest)
    try:
        suite = _suite_with("kernels")
        machine = _machine(suite)
        kern = suite["tasks"]["kernels"]["result"]["kernels"]
        res = "720p" if suite["mode"] == "full" else "360p"
        for name, peer in (("phash64", "imagehash.phash"), ("pdq256", "pdqhash (C++)")):
            speedup = kern.get(name, {}).get("vs_peers", {}).get(peer)
            if speedup:
                rows.append([f"`{name}` vs {peer}, {res}", f"{speedup:.1f}x", "",
                             f"run --{suite['mode']}"])
        share = kern.get("phash64", {}).get("vs_limit")
        if share:
            rows.append([f"`phash64` share of the read limit, {res}", f"{share * 100:.0f} %", "",
                         f"run --{suite['mode']}"])
    except (MissingResults, KeyError):
        pass
    lines = _table(["figure", "value", "target", "source"], rows, "lrll")
    lines += ["", f"Sources: `python -m benchmarks.quality` (seed 0; {quality['seconds'] / 60:.0f} min),",
              "`python -m benchmarks.real_quality --clips DIR` and `python -m",
              "benchmarks.calibrate_learned --clips DIR` (the real-footage dev set),",
              "`pytest benchmarks/test_bench_ingest.py --benchmark-enable`,",
              "`python -m benchmarks.dask_scale --clips DIR` and `python -m benchmarks run`,",
              "on " + machine + "."]
    return lines


def fig_quality_fleet() -> list[str]:
    q = _load("quality.json")
    t = q["targets"]
    o = q["overall"]
    regions = sorted(q["regions"])
    rows = []

    def add(label, overall, per_region, target):
        rows.append([label, overall, *per_region, target])

    d = o["dedup"]
    add("dedup precision", _fmt(d["precision"]),
        [_fmt(q["regions"][r]["dedup"]["precision"]) for r in regions], "")
    add("dedup recall", _fmt(d["recall"]),
        [_fmt(q["regions"][r]["dedup"]["recall"]) for r in regions], "")
    add("dedup F1", _fmt(d["f1"]), [_fmt(q["regions"][r]["dedup"]["f1"]) for r in regions],
        f">= {t['dedup_f1']}")
    add("hard negatives merged", f"{d['hard_negatives_merged']}/{d['hard_negatives']:,}",
        [f"{q['regions'][r]['dedup']['hard_negatives_merged']}/"
         f"{q['regions'][r]['dedup']['hard_negatives']}" for r in regions], "0")
    add("offset error max (s)", _fmt(d["offset_error_max_s"], 2),
        [_fmt(q["regions"][r]["dedup"]["offset_error_max_s"], 2) for r in regions],
        f"<= {t['offset_error_max_s']}")
    add("rare recall@k", _fmt(o["rarity"]["recall_at_k"]),
        [_fmt(q["regions"][r]["rarity"]["recall_at_k"]) for r in regions],
        f">= {t['rare_recall_at_k']}")
    add("rare, 3+ uploads, worst pct", _fmt(o["rarity"]["multi_upload_worst_percentile"], 1),
        [_fmt(q["regions"][r]["rarity"]["multi_upload_worst_percentile"], 1) for r in regions],
        ">= 95")
    add("same-scenario P@10", _fmt(o["query"]["precision_at_k"]),
        [_fmt(q["regions"][r]["query"]["precision_at_k"]) for r in regions],
        f">= {t['query_precision_at_10']}")
    add("selection vs random", _pct(o["selection"]["improvement"]),
        [_pct(q["regions"][r]["selection"]["improvement"]) for r in regions],
        f">= {t['selection_improvement'] * 100:.0f} %")
    add("diverse share vs random", _pct(o["selection_diverse"]["improvement"]),
        [_pct(q["regions"][r]["selection_diverse"]["improvement"]) for r in regions], "")
    f = q["fleet"]
    lines = _table(["figure", "all", *regions, "target"], rows, "lrrrrl")
    sc = q["scaled"]
    lines += ["", f"`{q['command']}`: {f['clips']:,} clips of {f['clip_seconds']:.0f} s at "
              f"{f['width']}x{f['height']}, {len(f['regions'])} regions,",
              f"{f['true_pairs']} true pairs, {f['hard_negatives']:,} hard negatives; "
              f"{q['seconds'] / 60:.0f} min. Scaled design (LSH candidates",
              f"forced): {sc['pairs_only_exact']} pairs only in the exact search, "
              f"{sc['pairs_only_scaled']} only with LSH."]
    return lines


def fig_quality_transforms() -> list[str]:
    q = _load("quality.json")
    per = q["overall"]["dedup"]["per_transform"]
    rows = [[f"`{name}`", f"{v['found']}/{v['total']}", _fmt(v["recall"])]
            for name, v in sorted(per.items(), key=lambda kv: (-kv[1]["recall"], kv[0]))]
    return _table(["transform", "found", "recall"], rows) + [
        "", f"`{q['command']}`; target >= {q['targets']['transform_recall']} each."]


def fig_real_footage() -> list[str]:
    r = _load("real_quality.json")
    s = r["scores"]
    rows = [[f"`{name}`", c["pairs"], c["found"], _fmt(c["recall"], 2),
             "-" if not c.get("offset_error_max_s") else _fmt(c["offset_error_max_s"], 2)]
            for name, c in sorted(s["classes"].items())]
    hn = s["hard_negatives"]
    lines = _table(["variant class", "pairs", "found", "recall", "offset max s"], rows)
    lines += ["", f"Precision {_fmt(s['precision'])}, recall {_fmt(s['recall'])}, "
              f"F1 {_fmt(s['f1'])} over {s['true_pairs']} required pairs;",
              f"hard negatives claimed: {hn['whole']} whole, {hn['partial']} partial of "
              f"{hn['pairs']}; offset error max {_fmt(s['offset_error_max_s'], 2)} s."]
    rates = {name: c["rates"] for name, c in sorted(s["classes"].items()) if c.get("rates")}
    if rates:
        lines.append("Rates found for re-timed copies (original s per copy s): " + "; ".join(
            f"`{name}` {', '.join(f'{x:g}' for x in sorted(v))}" for name, v in rates.items()) + ".")
    m = s.get("mirror_opt_in")
    if m and m.get("pairs"):
        lines.append(f"With `clipdex dedup --mirror`: {m['found']} of {m['pairs']} mirrored copies "
                     f"found, {m['false']} false mirrored claims.")
    st = r["engine"].get("storage_bytes_per_keyframe")
    if st:
        lines.append(f"Store: {st['base']:.0f} bytes a keyframe without the crop views, "
                     f"{st['with_views']:.0f} with them; ingest {r['timing_s']['ingest']} s, "
                     f"dedup {r['timing_s']['dedup']} s.")
    lines.append(f"`python -m benchmarks.real_quality --clips DIR` ({r['clips']['originals']} "
                 f"originals, {r['clips']['variants']} variants, seed {r['options']['seed']}).")
    return lines


def fig_real_scenes() -> list[str]:
    r = _load("real_scenes.json")
    rows = []
    for cond, c in sorted(r["conditions"].items()):
        hits = [v for name, v in c.get("positive_keyframe_shares", {}).items() if name not in c["missed"]]
        negatives = list(c.get("nearest_negative_shares", {}).values())
        rows.append([cond, f"`{c['trigger']}`" if c["trigger"] else "(none)", c["positives"],
                     _fmt(c["precision"], 2), _fmt(c["recall"], 2),
                     _fmt(min(hits), 2) if hits else "-",
                     _fmt(max(negatives), 2) if negatives else ("0.00" if c["trigger"] else "-")])
    lines = _table(["condition", "trigger", "labelled", "precision", "recall", "hit min", "false max"],
                   rows, "llrrrrr")
    lines += ["", f"`python -m benchmarks.real_scenes --clips DIR`: {r['recordings']} labelled "
              f"recordings and {r['frames']} frames,",
              f"{r['clips']} clips of {r['clip_seconds']:.0f} s; night clips firing "
              f"`black_frames`: {len(r['black_frames_on_night'])}, `frozen_camera`: "
              f"{len(r.get('frozen_camera_on_night', []))}. \"hit min\": the lowest share of",
              "keyframes showing the condition in a recognised recording; \"false max\": the",
              "highest share in a recording without the label (a whole-clip condition needs",
              "half of a clip's keyframes, a moment one keyframe)."]
    return lines


def fig_learned_scenes() -> list[str]:
    r = _load("learned_scenes.json")
    builtin = r.get("builtin", {})
    rows = [[s, c["recordings"], c["clips"], _fmt(c["raw"], 2), _fmt(c["cross_validated"], 2),
             _fmt(c["in_sample"], 2), _fmt(builtin.get(s, {}).get("cross_validated"), 2),
             _fmt(builtin.get(s, {}).get("in_sample"), 2), _fmt(c["chance"], 2)]
            for s, c in sorted(r["scene_precision"].items())]
    lines = _table(["scene", "recs", "clips", "raw", "cv", "in", "b-cv", "b-in", "chance"], rows)
    lines += ["", f"`python -m benchmarks.calibrate_learned --clips DIR`: {r['model']} "
              f"v{r['learned_version']}, {r['clips']} clips of {r['recordings']} recordings. The network "
              f"takes {r['network_ms_per_clip']:.0f} ms a clip (3 keyframes) where decoding the clip takes "
              f"{r['decode_ms_per_clip']:.0f} ms, so `embeddings compute` runs at {r['compute_vs_decode']:.2f}x "
              f"the speed of decoding alone ({r['threads']} cores, load {r['load']} at the end)."]
    if r.get("rarity"):
        builtin = r.get("builtin_rarity", {})
        lines += ["Density rarity AUC of a rare condition (one recording of it under 10 % of a subset's "
                  "clips, calibration fitted without that recording; built-in embedding the same way): "
                  + "; ".join(f"{cond} {_fmt(c['cv_auc'], 2)} (min {_fmt(c['cv_min_auc'], 2)}; built-in "
                              f"{_fmt((builtin.get(cond) or {}).get('auc'), 2)})" for cond, c in r["rarity"].items())
                  + "."]
    return lines


def fig_real_recordings() -> list[str]:
    r = _load("real_recordings.json")
    rows = [["clips (5-s pieces) / recordings", f"{r['clips']} / {r['recordings']}"],
            ["pairs inside one recording", len(r["self_pairs"])],
            ["groups inside one recording", len(r["self_groups"])],
            ["query hits in the query's own recording", r["query_own_recording_hits"]],
            ["... if own-recording hits were kept", r["query_own_recording_hits_if_kept"]],
            ["recordings split across train and val", r["split_recordings_on_both_sides"]]]
    return _table(["figure", "value"], rows) + [
        "", f"`python -m benchmarks.real_recordings --clips DIR` ({r['files']} videos)."]


def fig_decode_modes() -> list[str]:
    m = _load("decode_modes.json")
    speed = m["speed"]["modes"]
    quality = m["quality"]["modes"]
    rows = []
    for mode in m["modes"]:
        sp, q = speed.get(mode, {}), quality.get(mode, {})
        name = f"**`{mode}`**" if mode == m["pick"] else f"`{mode}`"
        rows.append([name, f"{_fmt(sp.get('speed_vs_plain'), 2)}x",
                     f"{_fmt(sp.get('cpu_vs_plain'), 2)}x", _fmt(q.get("f1")),
                     _fmt(q.get("whole_copy_recall"))])
    e2e = m["end_to_end"]
    plain = speed["plain"]
    lines = _table(["mode", "frames/s vs PyAV", "CPU s vs PyAV", "F1", "whole-copy recall"],
                   rows)
    lines += ["", f"`python -m benchmarks.decode_modes --clips DIR`: {m['speed']['files']} "
              f"videos, {m['speed']['frames']:,} frames, {m['speed']['threads']} threads,",
              f"medians of {m['speed']['rounds']} alternating rounds at load "
              f"{min(m['load']):.1f}-{max(m['load']):.1f}; plain PyAV decoding "
              f"{plain['frames_per_s']:,.0f} frames/s.",
              f"End to end (`ingest` + `dedup`): the default {e2e['wall_s'][m['pick']]:.2f} s, "
              f"`--decode all` {e2e['wall_s']['all']:.2f} s",
              f"({e2e['vs_all'][m['pick']]:.2f}x), decoding alone "
              f"{e2e['wall_s']['plain']:.2f} s. Quality: `benchmarks.real_quality "
              f"--{m['quality']['form']}`."]
    return lines


def fig_ingest() -> list[str]:
    b = _load("bench_ingest_default_decode.json")
    main = b["benchmarks"][0]["extra_info"]
    cpu = main["cpu_s"]
    rows = [["plain PyAV decode", _fmt(main["decode_frames_per_s"], 0), "1.00x",
             _fmt(cpu["decode"], 2)],
            [f"keyframe sampling (`{main['auto_strategy']}`)",
             _fmt(main["sampling_frames_per_s"], 0), f"{main['sampling_vs_decode']:.2f}x",
             _fmt(cpu["sampling"], 2)],
            ["full ingest", _fmt(main["ingest_frames_per_s"], 0),
             f"{main['ingest_vs_decode']:.2f}x", _fmt(cpu["ingest"], 2)]]
    if "ingest_learned_vs_decode" in main:
        rows.append(["ingest --learned", _fmt(main["ingest_learned_frames_per_s"], 0),
                     f"{main['ingest_learned_vs_decode']:.2f}x", _fmt(cpu["ingest_learned"], 2)])
    if "ingest_learned_5s_vs_decode" in main:
        rows.append(["ingest --learned, 5-s clips", _fmt(main["ingest_learned_5s_frames_per_s"], 0),
                     f"{main['ingest_learned_5s_vs_decode']:.2f}x", _fmt(cpu["ingest_learned_5s"], 2)])
    lines = _table(["work", "frames/s", "vs decode", "CPU s"], rows)
    lines += ["", f"`pytest benchmarks/test_bench_ingest.py --benchmark-enable -p no:randomly` "
              f"({main['files']} x 10 s",
              f"1280x720 H.264, {main['frames']:,} frames, {main['threads']} threads, medians of "
              f"{main['rounds']} rounds) on {_machine(b)};",
              f"keyframe sampling with `{main['auto_strategy']}` is "
              f"{main['auto_strategy_speedup_vs_all']:.2f}x that of `--decode all`."]
    if "ingest_learned_vs_decode" in main:
        lines.append("`--learned` runs 3 keyframes of each clip (one 10-s clip a file, or two "
                     "5-s clips) through the network.")
    return lines


def fig_dask() -> list[str]:
    d = _load("dask_scale.json")
    rows = [[name, f"{d['frames_per_s'][key]:,.0f}",
             "1.00x" if key == "local" else f"{d['ratios'][key + '_vs_local']:.2f}x"]
            for name, key in (("local executor", "local"), ("Dask, 1 worker", "dask1"),
                              ("Dask, 2 workers", "dask2"))]
    lines = _table(["executor", "frames/s", "vs local"], rows)
    lines += ["", f"`python -m benchmarks.dask_scale --clips DIR`: {d['what']}, {d['files']} "
              f"files, {d['frames']:,} frames,",
              f"medians of {d['rounds']} rounds, {d['cores']} cores, load {d['load_after']} "
              f"after; 2 workers scale {d['ratios']['dask2_vs_dask1']:.2f}x over 1."]
    return lines


def _suite(name: str) -> dict:
    return _load(f"suite-{name}.json")


def _suite_with(task: str) -> dict:
    """The fullest saved suite run that ran ``task`` successfully (full, else quick)."""
    for mode in ("full", "quick"):
        try:
            record = _suite(mode)
        except MissingResults:
            continue
        t = record["tasks"].get(task)
        if t and t.get("result") and not t.get("error"):
            return record
    raise MissingResults(f"benchmarks/results/suite-full.json or suite-quick.json with {task}")


def _command(task: dict) -> str:
    """The command a suite task ran, without the suite's own output path."""
    argv = list(task["command"])
    for flag in ("--json", "--out"):
        if flag in argv:
            i = argv.index(flag)
            del argv[i:i + 2]
    return "`python " + " ".join(argv) + "`"


_SIZE_WORDS = {"tiny": "tiny", "quick": "quick-mode (360p frames)", "full": "full-size (720p frames)"}


def fig_kernels() -> list[str]:
    suite = _suite_with("kernels")
    k = suite["tasks"]["kernels"]["result"]
    rows = []
    for name, r in k["kernels"].items():
        peers = ", ".join(f"{s:.1f}x {p.split(' ')[0]}" for p, s in r["vs_peers"].items())
        limit = "-" if r.get("vs_limit") is None else f"{r['vs_limit'] * 100:.0f} %"
        rows.append([f"`{name}`", f"{r['items_per_s']:,.0f} {r['unit']}/s",
                     f"{r['iqr_s'] / r['median_s'] * 100:.0f} %", limit, peers or "-"])
    lines = _table(["kernel", "median speed", "IQR", "of read limit", "vs peer"], rows,
                   "lrrrl")
    lines += ["", f"`python -m benchmarks run --{suite['mode']} --only kernels`: "
              f"{_SIZE_WORDS[k['size']]} inputs, 1 "
              f"thread, medians of {next(iter(k['kernels'].values()))['repeats']} calls,",
              f"on {_machine(suite)}. \"Of read limit\": bytes read per second over a",
              "Numba sum of the same bytes in the same run; \"vs peer\": the peer's time per",
              "item over the kernel's."]
    return lines


def fig_suite(mode: str = "quick") -> list[str]:
    suite = _suite(mode)
    rows = []
    for name, t in suite["tasks"].items():
        if "skipped" in t:
            rows.append([t["group"], name, "skipped", "-", "-"])
            continue
        status = "ok" if not t.get("error") else "failed"
        rows.append([t["group"], name, status, f"{t['wall_s']:.1f}",
                     f"{t['peak_rss_mb']:,.0f}"])
    lines = _table(["group", "task", "status", "wall s", "peak MB"], rows, "lllrr")
    lines += ["", f"`python -m benchmarks run --{mode}`: {suite['wall_s'] / 60:.1f} min in all, "
              f"on {_machine(suite)}."]
    failed = [f"{name} ({(t.get('error') or '').strip().splitlines()[-1][:60]})"
              for name, t in suite["tasks"].items() if t.get("error")]
    if failed:
        lines.append("Failed: " + "; ".join(failed) + ".")
    return lines


def fig_dedup_scale() -> list[str]:
    suite = _suite_with("dedup_scale")
    task = suite["tasks"]["dedup_scale"]
    rows = []
    base = None
    for r in task["result"]:
        if "full" not in r:  # the growth fit over the sizes, not a run
            continue
        f, q = r["full"], r["quality"]
        per = f["wall_s"] / r["clips"]
        base = base or per
        inc = r.get("incremental", {}).get("wall_s")
        rows.append([f"{r['clips']:,}", f["method"], f"{f['wall_s']:.1f}",
                     f"{per * 1e6:.0f}", f"{f['peak_rss_mb']:,.0f}", _fmt(q["recall"], 4),
                     _fmt(q["precision"], 4), q["negatives_merged"],
                     "-" if inc is None else f"{inc:.2f}"])
    lines = _table(["clips", "method", "s", "us/clip", "peak MB", "recall", "precision",
                    "neg.", "+inc s"], rows, "rlrrrrrrr")
    lines += ["", f"`python -m benchmarks run --{suite['mode']} --only dedup` "
              f"({_command(task)}): synthetic keyframe-hash fleets (about 20 "
              "keyframes a clip), full dedup in a fresh process, then an incremental run of "
              "added clips (\"+inc s\"); \"neg.\": look-alikes merged. On "
              f"{_machine(suite)}."]
    return lines


def fig_dedup_scale_100k() -> list[str]:
    runs = _load("dedup_scale_100k.json")
    rows = []
    for r in (r for r in runs if "clips" in r):  # not the growth fit
        f, q = r["full"], r["quality"]
        st = f["stages"]
        rows.append([f"{r['clips']:,}", f"{f['wall_s']:.1f}", f"{st.get('candidates', 0):.1f}",
                     f"{st.get('reframed', 0):.1f}", f"{st.get('retime', 0):.1f}",
                     f"{f['peak_rss_mb']:,.0f}", _fmt(q["recall"], 4), _fmt(q["precision"], 4),
                     q["negatives_merged"]])
    lines = _table(["clips", "s", "cand. s", "refr. s", "retime s", "peak MB", "recall",
                    "prec.", "neg."], rows, "rrrrrrrrr")
    lines += ["", "`python -m benchmarks.dedup_scale --sizes 100000 --add 1000 --subset 100 "
              "--json benchmarks/results/dedup_scale_100k.json`: the fleet's clips carry keyframe "
              "hashes only, no crop views, so the reframed stage (\"refr.\") costs its candidate "
              "search and screen reads, not its alignments; \"cand.\": hash candidates."]
    return lines


def _peak_phases(fit: dict) -> str:
    """", each phase's peak projected linearly: candidates 5.1, ..." where phases were measured."""
    phases = fit.get("target_phase_peak_rss_mb") or {}
    if not phases:
        return ""
    return ", each phase's own peak projected linearly: " + ", ".join(
        f"{k} {v / 1024:.1f}" for k, v in phases.items())


def fig_dedup_scale_3m() -> list[str]:
    runs = _load("dedup_scale_3m.json")
    rows = []
    fit = next((r["growth"] for r in runs if "growth" in r), {})
    sizes = [r for r in runs if "clips" in r]
    for r in sizes:
        for label, f in (("local", r["full"]), (f"dask {r.get('dask', {}).get('workers', '')}", r.get("dask"))):
            if not f:
                continue
            st = f["stages"]
            workers = f.get("worker_peak_rss_mb") or []
            inc = r.get("incremental", {}).get("wall_s") if label == "local" else None
            index = (r.get("index") or {}).get("wall_s") if label == "local" else None
            rows.append([f"{r['clips']:,}", label, "-" if index is None else f"{index:,.0f}",
                         f"{f['wall_s']:,.0f}", f"{st.get('candidates', 0):,.0f}",
                         f"{st.get('retime', 0) + st.get('verify', 0):,.0f}", f"{st.get('reframed', 0):,.0f}",
                         f"{f['peak_rss_mb'] / 1024:.1f}",
                         "/".join(f"{w / 1024:.1f}" for w in workers) or "-",
                         _fmt(r["quality"]["recall"], 4) if label == "local" else
                         ("same" if f.get("same_as_local") else "differs"),
                         "-" if inc is None else f"{inc:.0f}"])
    lines = _table(["clips", "run", "idx", "s", "cand.", "ver.", "refr.", "GB", "wkr GB",
                    "recall", "+1k s"], rows, "rlrrrrrrrrr")
    machine = (sizes[-1].get("machine") or {}) if sizes else {}
    lines += ["", "`python -m benchmarks.dedup_scale --sizes 1000000 --workers 2 --subset 0 "
              "--workdir DIR --merge --json benchmarks/results/dedup_scale_3m.json`, then the same "
              "with `--sizes 3000000 --dask-last` (about 20 keyframes a clip; \"idx\": seconds to "
              "bring the clip-embedding index up to date, the step ingest ends with, run before the "
              "dedup and not counted in it; \"dask 2\": the "
              "candidate search on two Dask worker processes, run after the local one; "
              "with `--dask-last` that run is of the region grown by the added clips): seconds of the full dedup and its stages (\"ver.\": alignment and re-timing), peak "
              "RSS of the dedup process (\"GB\") and of each Dask worker (\"wkr\"), recall of the planted pairs "
              "(\"same\": the Dask run stored the very pairs and groups of the local one), and "
              "the incremental dedup of 1,000 added clips. On "
              f"{machine.get('cores', '?')} cores, {machine.get('memory_gb', '?')} GiB, load "
              f"{_fmt(machine.get('load_1min'), 1)} at the start of the largest size."]
    if fit:
        stages = fit.get("stage_alpha") or {}
        grow = ", ".join(f"{k} {v:.2f}" for k, v in stages.items() if fit["target_stage_s"].get(k, 0) >= 60)
        lines += ["", f"Fit over {fit['fit_sizes'][0]:,} and {fit['fit_sizes'][1]:,} clips: wall time "
                  f"grows as clips^{fit['alpha']:.2f}"
                  + (f" (stages, each projected by its own exponent, at least 1: {grow})" if grow else "")
                  + f", which puts {fit['target_clips']:,} clips at "
                  f"{fit['target_wall_s'] / 60:.0f} min on one such machine (peak RSS "
                  f"{fit['target_peak_rss_mb'] / 1024:.1f} GB{_peak_phases(fit)}); with the candidate search spread "
                  "over N machines and the rest on one: "
                  + ", ".join(f"N={k} {v / 60:.0f} min" for k, v in fit["machines"].items()) + "."]
        index = fit.get("index_build") or {}
        if index:
            lines[-1] += (f" The embedding index ingest builds grows as clips^{index['alpha']:.2f}: "
                          f"{index['target_s'] / 60:.0f} min at {fit['target_clips']:,} clips, once, and again "
                          "each time the region outgrows its index fourfold.")
    return lines


def fig_dedup_scale_memory() -> list[str]:
    runs = _load("dedup_scale_memory.json")
    fit = next((r["growth"] for r in runs if "growth" in r), {})
    sizes = [r for r in runs if "clips" in r]
    phases = list((sizes[-1]["full"].get("phase_peak_rss_mb") or {}).keys()) if sizes else []
    rows = []
    for r in sizes:
        f = r["full"]
        ph = f.get("phase_peak_rss_mb") or {}
        rows.append([f"{r['clips']:,}", f"{f.get('blocks', '-')}"]
                    + [f"{ph.get(k, float('nan')) / 1024:.1f}" for k in phases]
                    + [_fmt(r["quality"]["recall"], 4)])
    if fit:
        tp = fit.get("target_phase_peak_rss_mb") or {}
        rows.append([f"{fit['target_clips']:,} (fit)", "-"]
                    + [f"{tp.get(k, float('nan')) / 1024:.1f}" for k in phases] + ["-"])
    short = {"candidates": "cand.", "verify+retime": "verify", "reframed+rest": "refr.+rest"}
    lines = _table(["clips", "parts"] + [short.get(k, k) for k in phases] + ["recall"], rows,
                   "r" * (3 + len(phases)))
    machine = (sizes[-1].get("machine") or {}) if sizes else {}
    lines += ["", "`python -m benchmarks.dedup_scale --sizes 1000000,3000000 --subset 0 "
              "--block-keyframes 20000000 --workdir DIR --json "
              "benchmarks/results/dedup_scale_memory.json`: each phase's own peak RSS of the local "
              "full dedup in GB (load, hash candidates, verification and re-timing, the reframed "
              "stage to the end), with the candidate search in parts of 20M query keyframes "
              "(\"parts\": a 10M-clip region, 200M keyframes, runs in parts of the default 64M), "
              "and each phase's peak projected linearly to the fit's size. Same pairs and groups "
              "as the runs above (their digests are equal). On "
              f"{machine.get('cores', '?')} cores, {machine.get('memory_gb', '?')} GiB."]
    return lines


def fig_query_scale() -> list[str]:
    suite = _suite_with("query_scale")
    task = suite["tasks"]["query_scale"]
    rows = []
    for r in task["result"]["index"]:
        rows.append([f"{r.get('n', 0):,}", r.get("kind", "-"), _fmt(r.get("build_s"), 1),
                     _fmt(r.get("p50_ms"), 2), _fmt(r.get("p99_ms"), 2),
                     _fmt(r.get("recall_at_10"), 3)])
    lines = _table(["clips", "index", "build s", "p50 ms", "p99 ms", "recall@10"], rows,
                   "rlrrrr")
    lines += ["", f"`python -m benchmarks run --{suite['mode']} --only index-query` "
              "(`benchmarks.query_scale`): synthetic clustered 128-d embeddings, one thread, "
              f"k=10, each query alone; recall against exact search. On {_machine(suite)}."]
    return lines


def fig_select_scale() -> list[str]:
    suite = _suite_with("select_scale")
    task = suite["tasks"]["select_scale"]
    result = task["result"] if isinstance(task["result"], list) else [task["result"]]
    rows = []
    for r in result:
        rows.append([f"{r.get('n', 0):,}", f"{r.get('budget', 0):,}", r.get("method", "-"),
                     _fmt(r.get("coverage"), 4), _pct(r.get("vs_random")),
                     _fmt(r.get("rare_included"), 2), _fmt(r.get("seconds"), 1)])
    lines = _table(["clips", "budget", "method", "coverage", "vs random", "rare", "s"], rows,
                   "rrlrrrr")
    lines += ["", f"`python -m benchmarks run --{suite['mode']} --only selection` "
              "(`benchmarks.select_scale`): synthetic clustered 128-d embeddings with rare "
              "clusters; coverage is the mean distance of every clip to its nearest chosen "
              "clip (lower is better); \"rare\": share of the rare clusters reached. "
              f"On {_machine(suite)}."]
    return lines


FIGURES: dict[str, Callable[[], list[str]]] = {
    "dedup-scale": fig_dedup_scale,
    "dedup-scale-100k": fig_dedup_scale_100k,
    "dedup-scale-3m": fig_dedup_scale_3m,
    "dedup-scale-memory": fig_dedup_scale_memory,
    "query-scale": fig_query_scale,
    "select-scale": fig_select_scale,
    "headline": fig_headline,
    "quality-fleet": fig_quality_fleet,
    "quality-transforms": fig_quality_transforms,
    "real-footage": fig_real_footage,
    "real-scenes": fig_real_scenes,
    "learned-scenes": fig_learned_scenes,
    "real-recordings": fig_real_recordings,
    "decode-modes": fig_decode_modes,
    "ingest": fig_ingest,
    "dask": fig_dask,
    "kernels": fig_kernels,
    "suite-quick": fig_suite,
    "suite-full": lambda: fig_suite("full"),
}


def render(name: str) -> str:
    """The text between the markers of figure ``name`` (ends with a newline)."""
    if name not in FIGURES:
        raise KeyError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
    import textwrap

    try:
        lines = FIGURES[name]()
    except MissingResults as err:
        lines = [f"(no saved run: {err} is missing; its command writes it)"]
    table = [line for line in lines if line.startswith("|")]
    prose = " ".join(line for line in lines if line and not line.startswith("|"))
    wrapped = textwrap.wrap(prose, width=80, break_long_words=False, break_on_hyphens=False)
    return "\n".join(table + ([""] if table and wrapped else []) + wrapped) + "\n"


def documents() -> list[Path]:
    paths = [ROOT / "README.md"]
    paths += sorted((ROOT / "docs").glob("*.md"))
    return [p for p in paths if p.exists()]


def blocks(text: str) -> list[tuple[str, str]]:
    """(name, current body) of every figure block in ``text``."""
    return [(m["name"], m["body"]) for m in MARKER.finditer(text)]


def render_text(text: str) -> str:
    return MARKER.sub(lambda m: m.group(1) + render(m["name"]) + m.group(4), text)


def render_all(write: bool = True) -> list[str]:
    """Render every marked figure table; return the files that changed (or would)."""
    changed = []
    for path in documents():
        text = path.read_text()
        new = render_text(text)
        if new != text:
            changed.append(str(path.relative_to(ROOT)))
            if write:
                path.write_text(new)
    return changed
