"""What a curator sees of a region, shared by the static report (:mod:`engine.surfaces.report`) and the
local app (:mod:`engine.surfaces.app`): the region summary, duplicate groups as aligned keyframe strips,
partial overlaps with their shared span, the rarest recordings with *why* and their nearest
neighbours from other recordings, a selection (manifest or preview), one clip's page and a
filtered clip list.

Everything is read through the library (:func:`engine.matching.dedup.load_dedup`,
:func:`engine.scenes.rarity.compute_rarity`, :func:`engine.scenes.query.search_clip`,
:func:`engine.curation.manifest.read_manifest`) and the keyframe previews stored at ingest
(:meth:`engine.store.region.RegionStore.previews`); nothing is decoded from sources.

**Fields.** Every view is built for a set of *fields* (:data:`engine.sovereignty.regions.EXPORT_FIELDS`) and
carries nothing outside it; :func:`shown_fields` says which (all of them inside the region, the
policy's grant for a place outside every region otherwise). What needs which field:

* ``ids``: anything per clip (clip, drive, vehicle and recording ids, start times, durations,
  trigger names and spans, as in a manifest); without it only aggregates are shown;
* ``thumbnails``: keyframe previews; ``scores``: rarity, percentiles, similarities, why a clip is
  rare; ``relations``: duplicate groups, partial overlaps, offsets, "copy of";
* ``counts``: the summary and the distributions (clips over time, triggers by count);
  ``embeddings``: the 2-D map of the embedding; ``source_paths``: source files;
  ``telemetry``: trigger values (deceleration, yaw rate, ...).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.sovereignty import egress
from engine.sovereignty.regions import EXPORT_FIELDS, Region
from engine.store.region import PREVIEW_FRAMES, ClipTable, RegionStore

#: the fields a view may show, in the order the docs list them
VIEW_FIELDS = ("ids", "thumbnails", "scores", "relations", "counts", "embeddings", "source_paths",
               "telemetry")
#: clips per page of the report and the app
PAGE_SIZE = 20


def shown_fields(region: Region, *, inside: bool) -> frozenset[str]:
    """The fields a view of ``region`` may show: every one inside the region (a report in its
    folder), else those its policy lets leave for a place outside every region (``"*"``)."""
    if inside:
        return frozenset(VIEW_FIELDS)
    return frozenset(f for f in VIEW_FIELDS if egress.permitted(region, f, egress.ANYWHERE))


def iso(t: float | None) -> str:
    if t is None or not math.isfinite(t):
        return ""
    return dt.datetime.fromtimestamp(float(t), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def folder_bytes(path: Path) -> int:
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return total


@dataclass
class Frame:
    """One keyframe cell of a strip: which cell of the clip's preview JPEG, where it sits."""

    cell: int
    t: float  # seconds from the clip's start
    left: float = 0.0  # px in the strip's timeline


@dataclass
class Strip:
    """One clip drawn on a timeline: its preview frames at their times, shifted by ``shift_s``."""

    row: int
    clip_id: str
    label: str
    duration_s: float
    shift_s: float = 0.0
    frames: list[Frame] = field(default_factory=list)
    cells: int = 0  # cells in the preview JPEG (0: no preview)
    spans: list[tuple[float, float]] = field(default_factory=list)  # marked spans, clip seconds
    # filled by layout(): px
    left: float = 0.0
    width: float = 0.0
    marks: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Timeline:
    strips: list[Strip]
    width: float = 0.0
    ticks: list[tuple[float, str]] = field(default_factory=list)


#: size a keyframe cell is drawn at (the stored previews are 192x108)
CELL_W, CELL_H = 160, 90


def layout(strips: list[Strip], max_width: float = 900.0) -> Timeline:
    """Place strips on one time axis (seconds -> px): a frame at time t of a clip shifted by s
    sits at (s + t) * scale, so frames showing the same moment line up vertically."""
    if not strips:
        return Timeline([])
    lo = min(s.shift_s for s in strips)
    hi = max(s.shift_s + max(s.duration_s, 0.1) for s in strips)
    span = max(hi - lo, 0.1)
    longest = max(max(s.duration_s, 0.1) for s in strips)
    # the longest clip's frames about a cell apart, never wider than max_width
    scale = min(CELL_W * PREVIEW_FRAMES / longest, (max_width - CELL_W) / span)
    for s in strips:
        s.left = (s.shift_s - lo) * scale
        s.width = max(s.duration_s, 0.1) * scale
        for f in s.frames:
            f.left = (s.shift_s - lo + f.t) * scale
        s.marks = [((s.shift_s - lo + a) * scale, max(2.0, (b - a) * scale)) for a, b in s.spans]
    step = _nice_step(span)
    ticks = [((x - lo) * scale, f"{x:g} s") for x in np.arange(math.ceil(lo / step) * step, hi + 1e-9, step)]
    return Timeline(strips, span * scale + CELL_W, ticks)


def _nice_step(span: float) -> float:
    raw = span / 6
    mag = 10 ** math.floor(math.log10(max(raw, 1e-3)))
    return float(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


class RegionData:
    """One consistent read of a region (one catalog snapshot) and the views built from it."""

    def __init__(self, store: RegionStore, fields: frozenset[str] | set[str], *, rarity_k: int = 10):
        self.store = store
        self.region = store.region
        self.fields = frozenset(fields)
        bad = self.fields - set(EXPORT_FIELDS)
        if bad:
            raise ValueError(f"unknown fields {sorted(bad)}")
        self.table: ClipTable = store.clip_table()
        self.version = self.table.snapshot.version
        self.pos = self.table.position()
        self.ids = dict(zip(self.table.rows.tolist(), self.table.clip_ids, strict=True))
        from engine.matching.dedup import load_dedup

        self.pairs, self.groups = load_dedup(store, self.table)
        self.group_of = {m: rep for rep, members in self.groups.items() for m in members}
        self.triggers: dict[int, list[tuple[str, float, float, float]]] = {}
        for row, name, t0, t1, value in store.triggers():
            if row in self.pos:
                self.triggers.setdefault(int(row), []).append((name, float(t0), float(t1), value))
        self._rarity = None
        self._rarity_k = rarity_k
        self._partners: dict[int, list] | None = None

    # ------------------------------------------------------------------ helpers
    def allows(self, f: str) -> bool:
        return f in self.fields

    @property
    def rarity(self):
        """The region's rarity ranking (:class:`engine.scenes.rarity.RarityResult`), once per read."""
        if self._rarity is None:
            from engine.scenes.rarity import compute_rarity

            self._rarity = compute_rarity(self.store, self._rarity_k, cache=False)  # a read
        return self._rarity

    def trigger_names(self, row: int) -> list[str]:
        return sorted({t[0] for t in self.triggers.get(row, ())})

    def strip(self, row: int, label: str = "", *, shift_s: float = 0.0,
              spans: list[tuple[float, float]] | None = None, preview=None) -> Strip:
        i = self.pos[row]
        dur = float(self.table.duration_s[i])
        s = Strip(row, self.ids[row], label, dur, shift_s, spans=list(spans or []))
        if preview is not None and self.allows("thumbnails"):
            jpeg, times = preview
            if jpeg is not None:
                ok = np.flatnonzero(np.isfinite(times))
                s.cells = len(ok)
                s.frames = [Frame(int(c), float(times[c])) for c in ok]
        return s

    def previews(self, rows) -> dict[int, tuple]:
        rows = sorted({int(r) for r in rows})
        if not self.allows("thumbnails") or not rows:
            return {}
        return dict(zip(rows, self.store.previews(rows), strict=True))

    def card(self, row: int, previews: dict | None = None) -> dict:
        """What a clip card shows: id, drive, start, duration, triggers (and its preview row)."""
        i = self.pos[row]
        start = float(self.table.start_time[i])
        c = {"row": row, "clip_id": self.ids[row], "drive": self.table.drive_ids[i],
             "vehicle": self.table.vehicle_ids[i], "start": iso(start),
             "duration": f"{float(self.table.duration_s[i]):.1f} s", "triggers": self.trigger_names(row),
             "has_preview": False, "cells": 0}
        if previews is not None and self.allows("thumbnails"):
            jpeg, times = previews.get(row, (None, None))
            if jpeg is not None:
                c["has_preview"] = True
                c["cells"] = int(np.isfinite(times).sum())
        if self.allows("relations") and row in self.group_of:
            rep = self.group_of[row]
            c["group"] = {"rep": rep, "rep_id": self.ids.get(rep, ""), "size": len(self.groups[rep])}
        return c

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict:
        """Region summary (``counts``): clips, recordings, drives, hours, duplicates removed,
        storage, last jobs."""
        if not self.allows("counts"):
            return {}
        t = self.table
        redundant = sum(len(m) - 1 for m in self.groups.values()) if self.allows("relations") else None
        jobs = self.store.recent_jobs(5)
        last = []
        for kind, status, started, finished, summ in jobs:
            try:
                s = json.loads(summ or "{}")
            except ValueError:
                s = {}
            what = ", ".join(f"{k} {s[k]}" for k in ("ingested", "skipped", "failed") if isinstance(s.get(k), int))
            last.append({"kind": kind, "status": status, "started": iso(started),
                         "took": f"{finished - started:.1f} s" if finished else "", "what": what})
        stats = self.store.stats()
        return {
            "clips": len(t),
            "recordings": len(set(t.recording_ids)),
            "drives": len(set(t.drive_keys())),
            "vehicles": len({v for v in t.vehicle_ids if v}),
            "hours": f"{float(np.sum(t.duration_s)) / 3600.0:.2f}",
            "keyframes": int(np.sum(t.kf_count)),
            "groups": len(self.groups) if self.allows("relations") else None,
            "redundant": redundant,
            "partials": sum(p.relation == "partial" for p in self.pairs) if self.allows("relations") else None,
            "storage": human_bytes(folder_bytes(self.store.path)),
            "forgotten": stats["forgotten"],
            "triggered": sum(1 for r in self.triggers if r in self.pos),
            "time_range": _time_range(t.start_time),
            "jobs": last,
        }

    # ------------------------------------------------------------------ duplicates
    def group_list(self) -> list[int]:
        """Representatives of duplicate groups, largest group first."""
        if not (self.allows("relations") and self.allows("ids")):
            return []
        return [rep for rep, _ in sorted(self.groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]

    def _pair_index(self) -> dict[tuple[int, int], object]:
        return {(p.a, p.b): p for p in self.pairs}

    def duplicate_groups(self, reps: list[int], max_members: int = 6) -> list[dict]:
        """Each group as aligned keyframe strips: the representative first, then its copies
        shifted by their offset to it (``relation``/``offset`` shown)."""
        if not (self.allows("relations") and self.allows("ids")):
            return []
        index = self._pair_index()
        members_of = {rep: [rep] + [m for m in self.groups[rep] if m != rep][:max_members - 1] for rep in reps}
        prev = self.previews(r for ms in members_of.values() for r in ms)
        out = []
        for rep in reps:
            strips = [self.strip(rep, "representative", preview=prev.get(rep))]
            for m in members_of[rep][1:]:
                p = index.get((min(rep, m), max(rep, m)))
                if p is None:
                    label, shift = "copy (via another copy; offset not measured to the representative)", 0.0
                else:
                    shift = p.offset_s if p.a == rep else -p.offset_s
                    label = f"{p.relation}, offset {shift:+.1f} s, {p.matches} matching keyframes"
                strips.append(self.strip(m, label, shift_s=shift, preview=prev.get(m)))
            out.append({"rep": rep, "rep_id": self.ids[rep], "size": len(self.groups[rep]),
                        "hidden": len(self.groups[rep]) - len(members_of[rep]), "timeline": layout(strips)})
        return out

    def partial_list(self) -> list:
        if not (self.allows("relations") and self.allows("ids")):
            return []
        parts = [p for p in self.pairs if p.relation == "partial"]
        return sorted(parts, key=lambda p: (-(p.a_span[1] - p.a_span[0]), p.a, p.b))

    def partial_overlaps(self, pairs: list) -> list[dict]:
        """Each partial overlap as two strips on a's time axis, the shared span marked in both."""
        prev = self.previews(r for p in pairs for r in (p.a, p.b))
        out = []
        for p in pairs:
            a0, a1 = _span(p.a_span)
            b0, b1 = _span(p.b_span)
            strips = [self.strip(p.a, f"shares {a0:.1f}-{a1:.1f} s", spans=[(a0, a1)], preview=prev.get(p.a)),
                      self.strip(p.b, f"shares {b0:.1f}-{b1:.1f} s, starts at {p.offset_s:+.1f} s of the first",
                                 shift_s=p.offset_s, spans=[(b0, b1)], preview=prev.get(p.b))]
            out.append({"a": p.a, "b": p.b, "shared_s": f"{a1 - a0:.1f}", "offset": f"{p.offset_s:+.1f}",
                        "matches": p.matches, "timeline": layout(strips)})
        return out

    # ------------------------------------------------------------------ rarity
    def rare_list(self, top: int) -> list[int]:
        """Rows of the rarest recordings (one per duplicate group, its representative)."""
        if not (self.allows("scores") and self.allows("ids")):
            return []
        res = self.rarity
        heads = res.head_rows if res.head_rows is not None else res.rows
        seen, out = set(), []
        for r, h in zip(res.rows.tolist(), heads.tolist(), strict=True):
            if h in seen or r != h:
                continue
            seen.add(h)
            out.append(int(r))
            if len(out) >= top:
                break
        return out

    def why_rare(self, row: int) -> dict:
        """Why a clip ranks rare: its basis (event, looks, driving), the condition and events
        of its signature and how many other recording units share it, its density scores."""
        res = self.rarity
        if not hasattr(self, "_rank"):
            self._rank = {int(r): i for i, r in enumerate(res.rows.tolist())}
        i = self._rank.get(row)
        if i is None:
            return {}
        from engine.scenes.rarity import CONDITION_TRIGGERS

        basis = res.basis[i] if res.basis is not None else "appearance"
        sig = [s for s in (res.signatures[i] if res.signatures else "").split("+") if s]
        support = int(res.support[i]) if res.support is not None else -1
        conditions = [s for s in sig if s in CONDITION_TRIGGERS]
        events = [s for s in sig if s not in CONDITION_TRIGGERS]
        dyn = float(res.dynamics[i]) if res.dynamics is not None else float("nan")
        copies = int(res.group_size[i]) - 1 if res.group_size is not None and self.allows("relations") else 0
        if basis == "event":
            what = " + ".join(x.replace("_", " ") for x in sig)
            reason = (f"rare situation: {what}, seen in {support} other recording"
                      f"{'' if support == 1 else 's'} of the region")
        elif basis == "dynamics":
            reason = f"unusual driving: telemetry far from the region's (dynamics score {dyn:.3f})"
        else:
            reason = f"unusual look: far from the region's other clips (density score {res.scores[i]:.3f})"
        return {"basis": {"event": "event", "appearance": "looks", "dynamics": "driving"}[basis],
                "reason": reason, "conditions": conditions, "events": events, "support": support,
                "score": f"{res.scores[i]:.3f}", "percentile": f"{res.percentiles[i]:.1f}",
                "dynamics": "" if not math.isfinite(dyn) else f"{dyn:.3f}", "copies": copies}

    def neighbours(self, row: int, k: int = 3) -> list[dict]:
        """The nearest clips from *other* recordings (:func:`engine.scenes.query.search_clip`), the
        clip's own duplicate group left out (its copies are shown as its group)."""
        if not self.allows("ids"):
            return []
        from engine.scenes.query import search_clip

        group = set(self.groups.get(self.group_of.get(row, -1), ()))
        hits = search_clip(self.store, self.ids[row], k + len(group))
        out = []
        for h in hits:
            r = self.store.clip_row(h.clip_id)
            if r not in self.pos or r in group or len(out) >= k:
                continue
            n = {"row": r, "clip_id": h.clip_id, "drive": h.drive_id}
            if self.allows("scores"):
                n["score"] = f"{h.score:.3f}"
            if self.allows("relations") and h.relation:
                n["relation"] = h.relation
            if h.span and self.allows("relations"):  # where its footage lines up with the query's
                n["span"] = f"{h.span[0]:.1f}-{h.span[1]:.1f} s"
            out.append(n)
        return out

    def rare_cards(self, rows: list[int], neighbours: int = 3) -> list[dict]:
        near = {r: self.neighbours(r, neighbours) if neighbours else [] for r in rows}
        prev = self.previews([*rows, *(n["row"] for ns in near.values() for n in ns)])
        out = []
        for r in rows:
            c = self.card(r, prev)
            c["why"] = self.why_rare(r)
            c["trigger_detail"] = self.trigger_detail(r)
            c["neighbours"] = [{**n, **{k: v for k, v in self.card(n["row"], prev).items()
                                        if k in ("has_preview", "cells")}} for n in near[r]]
            out.append(c)
        return out

    def trigger_detail(self, row: int) -> list[dict]:
        out = []
        for name, t0, t1, value in sorted(self.triggers.get(row, ()), key=lambda t: (t[1], t[0])):
            d = {"name": name, "span": f"{t0:.1f}-{t1:.1f} s"}
            if self.allows("telemetry") and value is not None and math.isfinite(value):
                d["value"] = f"{value:.2f}"
            out.append(d)
        return out

    # ------------------------------------------------------------------ clips
    def clip_rows(self, *, trigger: str | None = None, drive: str | None = None,
                  after: float | None = None, before: float | None = None) -> list[int]:
        """Rows of the clips passing the filters (trigger, drive, start time), in row order."""
        if not self.allows("ids"):
            return []
        t = self.table
        keep = np.ones(len(t), bool)
        if trigger:
            keep &= np.isin(t.rows, [r for r in self.triggers if any(x[0] == trigger for x in self.triggers[r])])
        if drive:
            keep &= np.asarray([d == drive for d in t.drive_ids], bool)
        if after is not None:
            keep &= np.nan_to_num(t.start_time, nan=-np.inf) >= after
        if before is not None:
            keep &= np.nan_to_num(t.start_time, nan=np.inf) < before
        return t.rows[keep].tolist()

    def trigger_names_all(self) -> list[tuple[str, int]]:
        c = Counter(n for r, ts in self.triggers.items() for n in {x[0] for x in ts})
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))

    def drive_names(self) -> list[tuple[str, int]]:
        c = Counter(d for d in self.table.drive_ids if d)
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))

    def clip_detail(self, row: int, k: int = 8) -> dict:
        """One clip: keyframes, metadata, triggers, relations and "more like this"."""
        prev_rows = [row]
        rels = []
        if self.allows("relations"):
            for p in self.pairs:
                if row in (p.a, p.b):
                    other = p.b if p.a == row else p.a
                    if other in self.pos:
                        rels.append({"row": other, "clip_id": self.ids[other], "relation": p.relation,
                                     "offset": f"{(p.offset_s if p.a == row else -p.offset_s):+.1f} s",
                                     "shared": f"{_span(p.a_span if p.a == row else p.b_span)[0]:.1f}-"
                                               f"{_span(p.a_span if p.a == row else p.b_span)[1]:.1f} s"})
                        prev_rows.append(other)
        near = self.neighbours(row, k)
        prev_rows += [n["row"] for n in near]
        prev = self.previews(prev_rows)
        c = self.card(row, prev)
        i = self.pos[row]
        c["recording"] = self.table.recording_ids[i]
        c["camera"] = self.table.cameras[i]
        c["offset"] = f"{float(self.table.source_offset_s[i]):.1f} s"
        c["keyframes"] = int(self.table.kf_count[i])
        if self.allows("source_paths"):
            c["source"] = self.table.sources[i]
        c["trigger_detail"] = self.trigger_detail(row)
        if self.allows("scores"):
            c["why"] = self.why_rare(row)
        jpeg, times = prev.get(row, (None, np.full(PREVIEW_FRAMES, np.nan)))
        c["frame_times"] = [f"{t:.1f} s" for t in times if math.isfinite(t)] if jpeg is not None else []
        c["relations"] = [{**r, **{k2: v for k2, v in self.card(r["row"], prev).items()
                                   if k2 in ("has_preview", "cells")}} for r in rels]
        c["neighbours"] = [{**n, **{k2: v for k2, v in self.card(n["row"], prev).items()
                                    if k2 in ("has_preview", "cells")}} for n in near]
        return c

    # ------------------------------------------------------------------ selection
    def selection(self, records: list[dict], *, source: str, strips: int = 40) -> dict:
        """A selection (manifest records or a preview): what was chosen, by which share, why."""
        if not self.allows("ids"):
            return {}
        by_id = {cid: r for r, cid in self.ids.items()}
        reasons = Counter(str(r.get("reason", "")) for r in records)
        splits = Counter(str(r.get("split", "")) for r in records)
        quotas = Counter(str(r["quota"]) for r in records if r.get("quota"))
        rows = [by_id[r["clip_id"]] for r in records if r.get("clip_id") in by_id]
        prev = self.previews(rows[:strips])
        chosen = []
        for rec in records[:strips]:
            row = by_id.get(rec.get("clip_id"))
            if row is None:
                continue
            c = self.card(row, prev)
            c["reason"] = rec.get("reason", "")
            c["split"] = rec.get("split", "")
            why = []
            if rec.get("quota"):
                why.append(f"quota {rec['quota']}")
            if self.allows("scores"):
                for key in ("percentile", "rarity", "distance"):
                    if rec.get(key) not in (None, ""):
                        try:
                            why.append(f"{key} {float(rec[key]):.3f}")
                        except (TypeError, ValueError):
                            pass
            c["why_chosen"] = ", ".join(why)
            chosen.append(c)
        total = max(1, len(records))
        return {"source": source, "count": len(records), "missing": len(records) - len(rows),
                "shares": [(k or "?", v, f"{100.0 * v / total:.0f} %") for k, v in reasons.most_common()],
                "splits": sorted(splits.items()), "quotas": sorted(quotas.items()),
                "chosen": chosen, "shown": len(chosen), "rows": rows}


def _span(span) -> tuple[float, float]:
    a, b = span
    a = 0.0 if a is None else float(a)
    b = a if b is None else float(b)
    return a, b


def _time_range(start: np.ndarray) -> str:
    ok = start[np.isfinite(start)]
    if not len(ok):
        return ""
    return f"{iso(float(ok.min()))} to {iso(float(ok.max()))}"


def latest_manifest(region: Region) -> Path | None:
    """The region's most recently written manifest inside its folder (registered outputs and
    ``manifests/``), or None."""
    found = {Path(o["path"]) for o in egress.read_outputs(region) if o.get("kind") == "manifest"}
    mdir = region.path / "manifests"
    if mdir.is_dir():
        found |= {p for p in mdir.iterdir() if p.suffix.lower() in (".jsonl", ".csv", ".parquet")}
    found = {p for p in found if p.is_file() and p.is_relative_to(region.path)}
    return max(found, key=lambda p: (p.stat().st_mtime, str(p))) if found else None


def pages(n: int, size: int = PAGE_SIZE) -> int:
    return max(1, -(-n // size))


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
