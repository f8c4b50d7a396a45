"""Erasure: ``clipdex forget`` and ``clipdex compact`` — the one erasure path.

``forget`` runs these steps, each idempotent, so a run killed at any point is finished by running
the same ``forget`` again:

1. keyed hashes of the clip id, the clip's content digest, its recording's (whole-file) digest
   and its content key (image folders and zarr clips: the pictures alone) are recorded, so
   ingest refuses the content again whatever the split or name;
2. the clips are tombstoned: they disappear from every query, rarity, dedup, selection, report
   and export, from the indexes (rebuilt on the next read) and from duplicate groups;
3. their thumbnails and keyframe previews are zeroed;
4. duplicate groups are recomputed (a group that lost its representative elects a new one);
5. the outputs clipdex wrote inside the region (``outputs.jsonl``, plus ``report/``, ``report.html``,
   ``manifests/`` and ``exports/``) are purged of them: reports regenerated, manifests rewritten
   without them, their exported clip groups deleted. The report lists every file touched.

``compact`` overwrites every forgotten clip's feature rows with zeros, then replaces its catalog
row by a placeholder (no id, source, digest or metadata), drops job records and recordings that
name it, vacuums the catalog and truncates its WAL. Only the keyed hashes of step 1 remain.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.faults import fault_point
from engine.ids import validate_clip_id
from engine.store.region import RegionStore

MANIFEST_SUFFIXES = (".jsonl", ".csv", ".parquet")


@dataclass
class ForgetReport:
    region: str
    forgotten: list[str]
    unknown: list[str]
    regrouped: int
    already_erased: list[str] = field(default_factory=list)
    touched: list[dict] = field(default_factory=list)  # {"path", "kind", "action"}

    def as_dict(self) -> dict:
        return {"region": self.region, "forgotten": self.forgotten, "unknown": self.unknown,
                "already_erased": self.already_erased, "groups_changed": self.regrouped,
                "outputs_touched": self.touched}


def regroup(store: RegionStore) -> int:
    """Recompute duplicate groups and representatives from the stored pairs of active clips."""
    from engine.matching.dedup import load_dedup
    from engine.matching.relations import duplicate_groups, elect_representatives, group_rows

    pairs, old = load_dedup(store)
    groups = elect_representatives(duplicate_groups(pairs), store.clip_table())
    changed = len(set(old) ^ set(groups))
    with store.writer("clipdex forget (regroup)"):
        store.replace_groups(group_rows(groups))
    return changed


def forget(store: RegionStore, clip_ids: Sequence[str], *, reason: str = "erasure request") -> ForgetReport:
    """Erase ``clip_ids`` from the region (see the module doc); safe to run again."""
    ids = list(dict.fromkeys(validate_clip_id(c) for c in clip_ids))
    with store.writer("clipdex forget"):
        found = store.erasable(ids)
        unknown = [c for c in ids if c not in found]
        erased = [c for c in unknown if store.is_erased([c])]
        unknown = [c for c in unknown if c not in erased]
        store.record_erased([v for c in found.values() for v in (c["digest"], c["recording_id"])]
                            + list(found) + _content_keys(store, found))
        fault_point("forget_recorded")
        store.tombstone([c["row"] for c in found.values() if c["status"] == "active"], reason)
        fault_point("forget_tombstoned")
        for c in found.values():  # pictures are erased now, not at compaction
            store.blank_pictures(c["row"])
        fault_point("forget_thumbnails")
        changed = regroup(store) if found else 0
        fault_point("forget_regrouped")
        touched = purge_outputs(store, set(found) | set(erased)) if found or erased else []
    return ForgetReport(store.region.name, list(found), unknown, changed, erased, touched)


def _content_keys(store: RegionStore, found: dict[str, dict]) -> list[str]:
    """The content keys (pictures alone, whatever the name or sampling) of the active clips in
    ``found``, as image folders and zarr clips record them at ingest."""
    rows = [c["row"] for c in found.values() if c["status"] == "active"]
    return [str(k) for r in store.clip_records(rows) if (k := (r.get("meta") or {}).get("content_key"))]


def compact(store: RegionStore) -> dict:
    """Zero the forgotten clips' feature rows, scrub their catalog rows (see the module doc);
    each step is idempotent, so a run killed at any point is finished by running it again."""
    from engine.index import ensure_indexes

    with store.writer("clipdex compact"):
        out = store.compact_forgotten()
        fault_point("compact_zeroed")
        out.update(store.scrub_forgotten())
        fault_point("compact_scrubbed")
    ensure_indexes(store)
    return {"region": store.region.name, **out}


# ---------------------------------------------------------------------------- region outputs
def region_outputs(store: RegionStore) -> list[tuple[Path, str]]:
    """(path, kind) of every output clipdex wrote inside the region that still exists: the
    registered ones and those at the default places."""
    from engine.sovereignty.egress import read_outputs

    root = store.region.path
    found: dict[Path, str] = {}
    for o in read_outputs(store.region):
        path = Path(o["path"])
        if path.is_relative_to(root):
            found[path] = o["kind"]
    found.setdefault(root / "report.html", "report")
    found.setdefault(root / "report", "report")
    for p in sorted((root / "manifests").glob("*")) if (root / "manifests").is_dir() else []:
        found.setdefault(p, "manifest")
    for p in sorted((root / "exports").glob("*")) if (root / "exports").is_dir() else []:
        found.setdefault(p, "export")
    return [(p, k) for p, k in found.items() if p.exists() and not p.is_symlink()]


def purge_outputs(store: RegionStore, clip_ids: set[str]) -> list[dict]:
    """Remove ``clip_ids`` from the region's outputs; returns what was touched and how."""
    touched = []
    for path, kind in region_outputs(store):
        if kind == "report" and (path.is_file() or (path / ".clipdex-report").is_file()):
            from engine.surfaces.report import build_report

            build_report(store, path)
            touched.append({"path": str(path), "kind": kind, "action": "regenerated"})
            fault_point("forget_output")
        elif kind == "manifest" and path.is_file():
            n = _rewrite_manifest(path, clip_ids)
            if n:
                touched.append({"path": str(path), "kind": kind, "action": f"rewrote without {n} records"})
                fault_point("forget_output")
        elif kind == "export" and path.is_dir():
            gone = [c for c in sorted(clip_ids) if (path / c).is_dir()]
            for c in gone:
                shutil.rmtree(path / c)
                fault_point("forget_output")
            if gone:
                touched.append({"path": str(path), "kind": kind, "action": f"deleted {len(gone)} clips"})
    return touched


def _rewrite_manifest(path: Path, clip_ids: set[str]) -> int:
    """Rewrite a manifest without the records of ``clip_ids`` (atomically); returns how many
    records were dropped. A Parquet manifest that cannot be read back is deleted."""
    suffix = path.suffix.lower()
    tmp = path.with_name(path.name + ".tmp")
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            cols, rows = reader.fieldnames or [], list(reader)
        keep = [r for r in rows if r.get("clip_id") not in clip_ids]
        if len(keep) == len(rows):
            return 0
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        w.writerows(keep)
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    elif suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        except Exception:
            path.unlink()
            return 1
        keep = [r for r in rows if str(r.get("clip_id")) not in clip_ids]
        if len(keep) == len(rows):
            return 0
        pq.write_table(pa.Table.from_pylist(keep), tmp)
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        keep_lines = []
        for line in lines:
            try:
                cid = json.loads(line).get("clip_id") if line.strip() else None
            except (json.JSONDecodeError, AttributeError):
                cid = None
            if cid not in clip_ids and not any(c in line for c in clip_ids):
                keep_lines.append(line)
        if len(keep_lines) == len(lines):
            return 0
        rows, keep = lines, keep_lines
        tmp.write_text("".join(x + "\n" for x in keep_lines), encoding="utf-8")
    tmp.replace(path)
    return len(rows) - len(keep)
