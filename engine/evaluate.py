"""Quality against a fixture fleet's ground truth: dedup, rarity, query, selection coverage."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .dedup import load_dedup
from .rarity import load_rarity
from .store import RegionStore


def predicted_pairs(store: RegionStore) -> dict[frozenset, str]:
    """Every clip-id pair the engine calls related: verified pairs plus pairs within a group."""
    table = store.clip_table()
    ids = dict(zip(table.rows.tolist(), table.clip_ids, strict=True))
    pairs, groups = load_dedup(store)
    out: dict[frozenset, str] = {}
    for p in pairs:
        if p.a in ids and p.b in ids:
            out[frozenset((ids[p.a], ids[p.b]))] = p.relation
    for members in groups.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                out.setdefault(frozenset((ids[a], ids[b])), "duplicate")
    return out


def dedup_quality(store: RegionStore, gt: dict) -> dict:
    region = store.region.name
    in_region = {c["clip_id"] for c in gt["clips"] if c["region"] == region}
    truth: dict[frozenset, dict] = {}
    for p in gt["pairs"]:
        if p["a"] in in_region and p["b"] in in_region:
            truth[frozenset((p["a"], p["b"]))] = p
    pred = predicted_pairs(store)
    tp = set(pred) & set(truth)
    precision = len(tp) / len(pred) if pred else 1.0
    recall = len(tp) / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    per_transform: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key, p in truth.items():
        per_transform[p.get("transform") or "?"][1] += 1
        per_transform[p.get("transform") or "?"][0] += key in pred
    negatives = [h for h in gt.get("hard_negatives", []) if h["a"] in in_region and h["b"] in in_region]
    merged = [h for h in negatives if frozenset((h["a"], h["b"])) in pred]
    # offset error of partial pairs: compare |offset| (direction depends on row order)
    table = store.clip_table()
    row_of = dict(zip(table.clip_ids, table.rows.tolist(), strict=True))
    pairs, _ = load_dedup(store)
    by_rows = {(p.a, p.b): p for p in pairs}
    errors = []
    for key, p in truth.items():
        if p["relation"] != "partial" or key not in pred or p["a"] not in row_of or p["b"] not in row_of:
            continue
        ra, rb = row_of[p["a"]], row_of[p["b"]]
        got = by_rows.get((min(ra, rb), max(ra, rb)))
        if got is None:
            continue
        off = got.offset_s if ra < rb else -got.offset_s  # b's t=0 in a's time
        errors.append(abs(off - float(p["offset_s"])))
    return {
        "region": region,
        "true_pairs": len(truth),
        "predicted_pairs": len(pred),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "hard_negatives": len(negatives),
        "hard_negatives_merged": len(merged),
        "offset_error_max_s": round(max(errors), 3) if errors else None,
        "offset_error_mean_s": round(float(np.mean(errors)), 3) if errors else None,
        "per_transform": {k: {"found": v[0], "total": v[1], "recall": round(v[0] / v[1], 4)}
                          for k, v in sorted(per_transform.items())},
        "missed": sorted(tuple(sorted(k)) for k in set(truth) - tp)[:20],
        "false": sorted(tuple(sorted(k)) for k in set(pred) - set(truth))[:20],
    }


def rarity_quality(store: RegionStore, gt: dict) -> dict:
    region = store.region.name
    rare = {c["clip_id"] for c in gt["clips"] if c["region"] == region and c.get("rare")}
    rar = load_rarity(store)
    table = store.clip_table()
    order = sorted(range(len(table)), key=lambda i: -rar[int(table.rows[i])][0])
    ranked = [table.clip_ids[i] for i in order]
    k = len(rare)
    hits = sum(1 for c in ranked[:k] if c in rare)
    # average precision of the rare clips in the ranking
    ap, found = 0.0, 0
    for i, c in enumerate(ranked):
        if c in rare:
            found += 1
            ap += found / (i + 1)
    ap = ap / k if k else 1.0
    return {"region": region, "rare_clips": k, "recall_at_k": round(hits / k, 4) if k else 1.0,
            "average_precision": round(ap, 4)}


def query_quality(store: RegionStore, gt: dict, k: int = 10, max_queries: int = 200) -> dict:
    """Same-scenario precision@k of clip queries (duplicates of the query excluded)."""
    from .query import search_clip

    region = store.region.name
    scen = {c["clip_id"]: c["scenario"] for c in gt["clips"] if c["region"] == region}
    pred = predicted_pairs(store)
    table = store.clip_table()
    ids = [c for c in table.clip_ids if c in scen][:max_queries]
    precs = []
    for cid in ids:
        hits = [h for h in search_clip(store, cid, k + 10) if frozenset((cid, h.clip_id)) not in pred][:k]
        if hits:
            precs.append(sum(scen.get(h.clip_id) == scen[cid] for h in hits) / len(hits))
    return {"region": region, "queries": len(precs),
            "precision_at_k": round(float(np.mean(precs)), 4) if precs else None, "k": k}


def coverage(vectors: np.ndarray, chosen: np.ndarray, block: int = 8192) -> float:
    """Mean distance of every vector to its nearest chosen vector (lower is better)."""
    if len(chosen) == 0:
        return float("inf")
    c = vectors[chosen]
    best = np.empty(len(vectors), np.float32)
    for lo in range(0, len(vectors), block):
        sims = vectors[lo : lo + block] @ c.T
        best[lo : lo + block] = np.sqrt(np.clip(2.0 - 2.0 * sims.max(axis=1), 0, None))
    return float(best.mean())


def selection_quality(store: RegionStore, chosen_ids: list[str], seed: int = 0) -> dict:
    table = store.clip_table()
    vectors = np.ascontiguousarray(store.embeddings(table.snapshot)[table.rows])
    pos = {c: i for i, c in enumerate(table.clip_ids)}
    chosen = np.array([pos[c] for c in chosen_ids], np.int64)
    rng = np.random.default_rng(seed)
    rand = [coverage(vectors, rng.choice(len(table), size=len(chosen), replace=False)) for _ in range(5)]
    ours = coverage(vectors, chosen)
    rand_mean = float(np.mean(rand))
    return {"region": store.region.name, "budget": len(chosen), "coverage": round(ours, 5),
            "random_coverage": round(rand_mean, 5),
            "improvement": round(1.0 - ours / rand_mean, 4) if rand_mean > 0 else 0.0}
