"""Training-set selection: budgeted, duplicate-free, rare-first, diverse, leak-free, explained.

Order of filling the budget:

1. ``force`` clips (always in, reason ``forced``);
2. ``rare`` share: the rarest clips (reason ``rare`` with score and percentile);
3. ``diverse`` share: greedy k-centre (farthest point) on the embeddings, seeded with everything
   already chosen and with a previous training set if given (reason ``diverse`` with the distance
   to the nearest chosen clip at the time it was picked);
4. ``random`` share (reason ``random``), from ``np.random.default_rng(seed)``.

Only one clip of a duplicate group is a candidate (its representative), and a clip is redundant
once the clips already chosen cover most of its duration through partial overlaps. The split into
train/validation is by connected drive: drives linked by any duplicate or partial pair fall on the
same side, so neither a drive nor a duplicate group appears in both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dedup import load_dedup
from .errors import InputError
from .rarity import load_rarity
from .store import RegionStore

REDUNDANT_COVERAGE = 0.8


@dataclass
class Selected:
    clip_id: str
    region: str
    reason: str
    detail: dict
    source: str
    source_offset_s: float
    duration_s: float
    drive_id: str
    split: str = "train"

    def record(self) -> dict:
        return {
            "clip_id": self.clip_id,
            "region": self.region,
            "split": self.split,
            "reason": self.reason,
            **self.detail,
            "source": self.source,
            "span": [round(self.source_offset_s, 3), round(self.source_offset_s + self.duration_s, 3)],
            "duration_s": round(self.duration_s, 3),
            "drive_id": self.drive_id,
        }


@dataclass
class Selection:
    region: str
    budget: int
    chosen: list[Selected]
    candidates: int
    excluded_duplicates: int
    counts: dict[str, int] = field(default_factory=dict)


def parse_mix(text: str) -> dict[str, float]:
    """``"rare=0.3,diverse=0.6,random=0.1"`` -> shares summing to 1."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, val = part.partition("=")
        name = name.strip()
        if name not in ("rare", "diverse", "random"):
            raise InputError(f"unknown strategy {name!r} in --mix {text!r}; use rare, diverse, random")
        try:
            share = float(val)
        except ValueError:
            raise InputError(f"--mix {text!r}: {part!r} needs a number, e.g. rare=0.3") from None
        if not np.isfinite(share) or share < 0:
            raise InputError(f"--mix {text!r}: share of {name} must be >= 0")
        mix[name] = share
    total = sum(mix.values())
    if total <= 0:
        raise InputError(f"--mix {text!r}: shares must add up to more than 0")
    return {k: v / total for k, v in mix.items()}


def greedy_k_centre(vectors: np.ndarray, n_pick: int, seeds: np.ndarray, allowed: np.ndarray,
                    min_dist: np.ndarray | None = None) -> tuple[list[int], list[float]]:
    """Farthest-point picks among ``allowed`` positions, seeded with ``seeds`` (positions)."""
    n = len(vectors)
    if min_dist is None:
        min_dist = np.full(n, np.inf, np.float32)
        for s in seeds:
            d = np.sqrt(np.clip(2.0 - 2.0 * (vectors @ vectors[s]), 0, None))
            np.minimum(min_dist, d, out=min_dist)
    picks, dists = [], []
    score = np.where(allowed, min_dist, -1.0)
    for _ in range(n_pick):
        i = int(np.argmax(score))
        if score[i] < 0:
            break
        picks.append(i)
        dists.append(float(min(score[i], 2.0)))
        d = np.sqrt(np.clip(2.0 - 2.0 * (vectors @ vectors[i]), 0, None))
        np.minimum(min_dist, d, out=min_dist)
        score = np.where(allowed, min_dist, -1.0)
        score[picks] = -1.0
    return picks, dists


def select_clips(
    store: RegionStore,
    budget: int,
    *,
    mix: dict[str, float] | None = None,
    seed: int = 0,
    val_fraction: float = 0.0,
    exclude: Sequence[str] = (),
    force: Sequence[str] = (),
    previous: Sequence[str] = (),
) -> Selection:
    if budget < 1:
        raise InputError(f"--budget {budget} must be >= 1")
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"--val-fraction {val_fraction} must be in [0, 1)")
    mix = mix or {"rare": 0.3, "diverse": 0.6, "random": 0.1}
    rng = np.random.default_rng(seed)
    table = store.clip_table()
    n = len(table)
    pos = table.position()
    id_pos = {cid: i for i, cid in enumerate(table.clip_ids)}
    for cid in (*exclude, *force, *previous):
        if cid not in id_pos:
            raise InputError(f"clip {cid!r} (in --exclude/--force/--previous) is not in region {store.region.name!r}")
    pairs, groups = load_dedup(store)
    non_rep = np.zeros(n, bool)
    for rep, members in groups.items():
        for m in members:
            if m != rep and m in pos:
                non_rep[pos[m]] = True
    candidate = ~non_rep
    for cid in exclude:
        candidate[id_pos[cid]] = False
    partial_cover: dict[int, list[tuple[int, float, float]]] = {}
    for p in pairs:
        if p.a in pos and p.b in pos:
            partial_cover.setdefault(pos[p.a], []).append((pos[p.b], *p.a_span))
            partial_cover.setdefault(pos[p.b], []).append((pos[p.a], *p.b_span))
    vectors = np.ascontiguousarray(store.embeddings(table.snapshot)[table.rows]) if n else np.zeros((0, 1), np.float32)
    chosen: list[tuple[int, str, dict]] = []
    taken = np.zeros(n, bool)

    def redundant(i: int) -> bool:
        cover = [(s, e) for j, s, e in partial_cover.get(i, ()) if taken[j]]
        if not cover:
            return False
        covered = _union_length(cover) + 0.5  # spans are keyframe times; add one sample period
        return covered >= REDUNDANT_COVERAGE * table.duration_s[i]

    def take(i: int, reason: str, detail: dict) -> bool:
        if taken[i] or len(chosen) >= budget or redundant(i):
            return False
        taken[i] = True
        chosen.append((i, reason, detail))
        return True

    for cid in force:
        take(id_pos[cid], "forced", {})
    quota = {k: int(round(v * budget)) for k, v in mix.items()}
    if "rare" in quota and quota["rare"]:
        rar = load_rarity(store)
        order = sorted((i for i in range(n) if candidate[i] and int(table.rows[i]) in rar),
                       key=lambda i: -rar[int(table.rows[i])][0])
        got = 0
        for i in order:
            if got >= quota["rare"]:
                break
            s, pct = rar[int(table.rows[i])]
            got += take(i, "rare", {"rarity": round(s, 5), "percentile": round(pct, 2)})
    if "diverse" in quota and quota["diverse"]:
        prev = np.array([id_pos[c] for c in previous], np.int64)
        seeds = np.concatenate([np.flatnonzero(taken), prev]).astype(np.int64)
        allowed = candidate & ~taken
        target = quota["diverse"]
        min_dist = None
        while target > 0 and allowed.any():
            picks, dists = greedy_k_centre(vectors, target, seeds, allowed, min_dist)
            if not picks:
                break
            for i, d in zip(picks, dists, strict=True):
                if take(i, "diverse", {"distance": round(d, 5)}):
                    target -= 1
                allowed[i] = False
            seeds = np.flatnonzero(taken)
    remaining = budget - len(chosen)
    if remaining > 0:
        pool = np.flatnonzero(candidate & ~taken)
        for i in rng.permutation(pool):
            if len(chosen) >= budget:
                break
            take(int(i), "random", {})
    splits = _split_by_drive(table, pairs, [i for i, _, _ in chosen], val_fraction, seed)
    out = [
        Selected(table.clip_ids[i], store.region.name, reason, detail, table.sources[i],
                 float(table.source_offset_s[i]), float(table.duration_s[i]), table.drive_ids[i],
                 splits[i])
        for i, reason, detail in chosen
    ]
    counts: dict[str, int] = {}
    for s in out:
        counts[s.reason] = counts.get(s.reason, 0) + 1
    return Selection(store.region.name, budget, out, int(candidate.sum()), int(non_rep.sum()), counts)


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(spans):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def _split_by_drive(table, pairs, chosen_pos: list[int], val_fraction: float, seed: int) -> dict[int, str]:
    """train/val per chosen clip; drives linked by any pair share a side."""
    if val_fraction <= 0:
        return dict.fromkeys(chosen_pos, "train")
    pos = table.position()
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def drive(i: int) -> str:
        return table.drive_ids[i] or f"clip:{table.clip_ids[i]}"

    for p in pairs:
        if p.a in pos and p.b in pos:
            ra, rb = find(drive(pos[p.a])), find(drive(pos[p.b]))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    out = {}
    for i in chosen_pos:
        comp = find(drive(i))
        h = hashlib.blake2b(f"{seed}|{comp}".encode(), digest_size=8).digest()
        u = int.from_bytes(h, "big") / 2**64
        out[i] = "val" if u < val_fraction else "train"
    return out


def write_manifest(selection: Selection, path: str | Path, fmt: str | None = None) -> Path:
    """Write the manifest as JSON Lines (default), CSV, or Parquet (needs pyarrow)."""
    path = Path(path)
    fmt = fmt or {".csv": "csv", ".parquet": "parquet"}.get(path.suffix.lower(), "jsonl")
    records = [s.record() for s in selection.chosen]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "jsonl":
        with tmp.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, sort_keys=False) + "\n")
    elif fmt == "csv":
        import csv

        cols = ["clip_id", "region", "split", "reason", "rarity", "percentile", "distance", "source",
                "span_start", "span_end", "duration_s", "drive_id"]
        with tmp.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in records:
                w.writerow({**r, "span_start": r["span"][0], "span_end": r["span"][1]})
    elif fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:
            raise InputError("Parquet manifests need pyarrow: pip install 'clipdex[parquet]'") from err
        pq.write_table(pa.Table.from_pylist(records), tmp)
    else:
        raise InputError(f"unknown manifest format {fmt!r}; use jsonl, csv or parquet")
    tmp.replace(path)
    return path
