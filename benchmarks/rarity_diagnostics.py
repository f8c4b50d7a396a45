"""Where rarity goes wrong: per-scenario rarity percentiles and recall@k for several k.

    python -m benchmarks.quality --home DIR            # build (and keep) a scored home first
    python -m benchmarks.rarity_diagnostics --home DIR [--preset quality --seed 0] [--json]

The quality benchmark gives one number (rare recall@k); this says *why* it is what it is. For
every region: rare recall@k of the engine's own score (:func:`engine.scenes.rarity.compute_rarity`)
at several neighbour counts, without the dynamics view (``dynamics=False``) and with the
embedding density alone (``events=False``), and how many rare clips of the top k each basis
(event, appearance, dynamics) ranked there; the recall
of a *scenario oracle* that knows every clip's scenario and ranks clips by how many other drives
of the region filmed it (the best a density over a perfect scenario embedding could do: where it
falls short of a target, the fleet itself makes rare scenarios as frequent as common ones); and
for every scenario the number of independent drives it was filmed in, its clip count, the
median / min / max rarity percentile of its clips and the share of its original clips each
trigger fired on (``--json`` has them per region, ``trigger_share``). A
scenario whose *max* percentile is high while its median is low has outliers as isolated as
the rare scenarios (the embedding spreads it out); a rare scenario with a low median is dense
in the embedding (it looks like something common, or was filmed by many drives). The ground
truth comes from the fleet plan (``--preset``/``--seed`` must match the home's build).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

K_VALUES = (5, 10, 20)


def diagnose(home: str | Path, gt: dict, k_values=K_VALUES) -> dict:
    from engine.scenes.rarity import compute_rarity
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore
    from fixtures.scenarios import RARE_SCENARIOS

    info = {c["clip_id"]: c for c in gt["clips"]}
    h = Home.open(home)
    out: dict = {}
    for region in sorted(h.regions):
        store = RegionStore.open(h.region(region))
        try:
            ids = store.clip_table().clip_ids
            known = [c for c in ids if c in info]
            rare = {c for c in known if info[c]["rare"]}
            recall = {}
            pct_default: dict[str, float] = {}
            for k in k_values:
                res = compute_rarity(store, k=k)
                top = res.clip_ids[: len(rare)]
                recall[k] = round(sum(c in rare for c in top) / len(rare), 4) if rare else 1.0
                if k == 10 or not pct_default:
                    pct_default = dict(zip(res.clip_ids, res.percentiles.tolist(), strict=True))
            dens = compute_rarity(store, events=False)
            top = dens.clip_ids[: len(rare)]
            density_recall = round(sum(c in rare for c in top) / len(rare), 4) if rare else 1.0
            nodyn = compute_rarity(store, dynamics=False)
            top = nodyn.clip_ids[: len(rare)]
            no_dynamics_recall = round(sum(c in rare for c in top) / len(rare), 4) if rare else 1.0
            full = compute_rarity(store)
            basis = dict(zip(full.clip_ids, full.basis, strict=True))
            top_basis = {b: sum(1 for c in full.clip_ids[: len(rare)] if basis[c] == b and c in rare)
                         for b in ("event", "appearance", "dynamics")}
            table = store.clip_table()
            fired: dict[str, set[str]] = defaultdict(set)  # clip id -> triggers
            for row, name, *_ in store.triggers(table.rows.tolist()):
                fired[table.clip_ids[table.position()[int(row)]]].add(name)
        finally:
            store.close()
        per: dict[str, dict] = defaultdict(lambda: {"drives": set(), "pct": [], "originals": 0,
                                                    "fires": defaultdict(int)})
        for c in known:
            g = info[c]
            s = per[g["scenario"]]
            # a scenario's rarity, not the clip's (a splice with a rare second part is rare)
            s["rare"] = g["scenario"] in RARE_SCENARIOS
            if g["transform"] is None:  # originals: the drives that filmed it, what fired on them
                s["drives"].add(g["drive_id"])
                s["originals"] += 1
                for name in fired.get(c, ()):
                    s["fires"][name] += 1
            s["pct"].append(pct_default[c])
        out[region] = {
            "rare_clips": len(rare),
            "recall_at_k": {str(k): v for k, v in recall.items()},
            "recall_density_only": density_recall,
            "recall_without_dynamics": no_dynamics_recall,
            # rare clips in the top k, by what ranked them there (engine.scenes.rarity.BASES)
            "rare_hits_by_basis": top_basis,
            "recall_scenario_oracle": scenario_oracle_recall(known, info),
            "scenarios": {
                name: {"rare": s["rare"], "drives": len(s["drives"]), "clips": len(s["pct"]),
                       "pct_median": round(float(np.median(s["pct"])), 1),
                       "pct_min": round(float(np.min(s["pct"])), 1),
                       "pct_max": round(float(np.max(s["pct"])), 1),
                       "originals": s["originals"],
                       "trigger_share": {t: round(v / s["originals"], 3)
                                         for t, v in sorted(s["fires"].items())} if s["originals"] else {}}
                for name, s in sorted(per.items(), key=lambda kv: (not kv[1]["rare"], kv[0]))},
        }
    return out


def scenario_oracle_recall(clip_ids: list[str], info: dict) -> float:
    """Rare recall@k of ranking clips by how few *other* drives filmed their scenario (drives of
    the originals; a copy counts with its source's drive; a splice by the rarer of its two
    scenarios); ties in a fixed pseudo-random order."""
    def root(c: str) -> dict:
        seen = set()
        while info[c]["source_clip"] in info and c not in seen:
            seen.add(c)
            c = info[c]["source_clip"]
        return info[c]

    drives: dict[str, set[str]] = defaultdict(set)
    for c in clip_ids:
        drives[info[c]["scenario"]].add(root(c)["drive_id"])
    # a splice shows two scenarios: the rarer one counts
    others = np.array([min(len(drives.get(sc, set()) - {root(c)["drive_id"]})
                           for sc in {info[c]["scenario"], info[c].get("second_scenario", info[c]["scenario"])})
                       for c in clip_ids])
    rare = np.array([bool(info[c]["rare"]) for c in clip_ids])
    if not rare.any():
        return 1.0
    order = np.lexsort((np.random.default_rng(0).random(len(clip_ids)), others))
    return round(float(rare[order[: rare.sum()]].mean()), 4)


def print_tables(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for region, r in result.items():
        recalls = ", ".join(f"k={k}: {v:.2f}" for k, v in r["recall_at_k"].items())
        t = Table(title=f"{region}: {r['rare_clips']} rare clips; rare recall@k with {recalls}; "
                        f"density alone {r['recall_density_only']:.2f}; "
                        f"without the dynamics view {r['recall_without_dynamics']:.2f}; rare hits by "
                        + ", ".join(f"{b} {n}" for b, n in r["rare_hits_by_basis"].items()) + "; "
                        f"scenario oracle {r['recall_scenario_oracle']:.2f}")
        for col in ("scenario", "rare", "drives", "clips", "pct median", "pct min", "pct max",
                    "triggers on originals"):
            t.add_column(col, justify="left" if col in ("scenario", "triggers on originals") else "right")
        for name, s in r["scenarios"].items():
            fires = " ".join(f"{k} {100 * v:.0f}%" for k, v in s["trigger_share"].items())
            t.add_row(name, "yes" if s["rare"] else "", str(s["drives"]), str(s["clips"]),
                      f"{s['pct_median']:.0f}", f"{s['pct_min']:.0f}", f"{s['pct_max']:.0f}", fires)
        console.print(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.rarity_diagnostics",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, help="a home built by `python -m benchmarks.quality --home DIR`")
    ap.add_argument("--preset", default="quality", choices=["quality", "demo", "tiny"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    a = ap.parse_args(argv)
    from benchmarks.quality import fleet_spec
    from fixtures.fleet import plan_fleet

    if not Path(a.home).is_dir():
        print(f"error: no clipdex home at {a.home}; build one with "
              f"`python -m benchmarks.quality --home {a.home}`", file=sys.stderr)
        return 2
    gt = plan_fleet(fleet_spec(a.preset, None, a.seed)).ground_truth
    result = diagnose(a.home, gt)
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        print_tables(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
