"""Selection manifests: the chosen clips as records, written as JSON Lines, CSV or Parquet and
read back.

A manifest row (:meth:`Selected.record`) carries the clip and drive ids, region, split, the reason
the clip was chosen with its scores, and the clip's source and span. Writing goes through the
egress gate (:func:`engine.sovereignty.egress.open_target`): scores and source paths leave the region's
folder only where its policy grants them. This module imports no store, rarity or dedup code,
so readers of manifests (export, report) do not load the selection policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import InputError, PolicyError

if TYPE_CHECKING:
    from engine.sovereignty.regions import Region


@dataclass
class Selected:
    """One chosen clip: why it was chosen (``reason`` and its ``detail`` scores), where its
    footage is, and the side of the train/validation split it falls on."""

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
        """The manifest row: ids, split, reason and scores, source and span (seconds)."""
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
    """A region's chosen clips in the order they were chosen, with what the policy saw: the
    candidates, the duplicates it left out, clips per reason and per trigger quota."""

    region: str
    budget: int
    chosen: list[Selected]
    candidates: int
    excluded_duplicates: int
    counts: dict[str, int] = field(default_factory=dict)
    quotas: dict[str, dict] = field(default_factory=dict)
    previous: int = 0  # clips of the previous training set found in the region (seeds)
    previous_missing: int = 0  # its clips no longer in the region
    #: the region the clips were selected in (its folder bounds where a manifest may go
    #: without a home's policy)
    origin: Region | None = field(default=None, repr=False, compare=False)


#: what a manifest carries: clip (and drive) ids always; scores and source paths when granted
MANIFEST_FIELDS = ("ids",)
MANIFEST_OPTIONAL = {"scores": ("rarity", "percentile", "distance"), "source_paths": ("source",)}
#: the columns of a CSV manifest (a record's span is split into its start and end)
CSV_COLUMNS = ("clip_id", "region", "split", "reason", "rarity", "percentile", "distance", "quota", "source",
               "span_start", "span_end", "duration_s", "drive_id")
MANIFEST_FORMATS = ("jsonl", "csv", "parquet")


def write_manifest(selection: Selection, path: str | Path, fmt: str | None = None, *,
                   home=None) -> Path:
    """Write the manifest as JSON Lines (default), CSV, or Parquet (needs pyarrow).

    Every write passes the egress gate (:func:`engine.sovereignty.egress.open_target`). With ``home``: outside
    the region's folder it needs the policy to grant ``ids`` to that place (scores and source
    paths are left out unless granted) and is audited first. Without ``home`` only the region's
    own folder is allowed. Another region's folder is always refused.
    """
    from engine.sovereignty import egress

    path = Path(path)
    fmt = fmt or {".csv": "csv", ".parquet": "parquet"}.get(path.suffix.lower(), "jsonl")
    if fmt not in MANIFEST_FORMATS:
        raise InputError(f"unknown manifest format {fmt!r}; use jsonl, csv or parquet")
    records = [s.record() for s in selection.chosen]
    if home is not None:
        region = home.region(selection.region)
    elif selection.origin is not None and selection.origin.name == selection.region:
        region = selection.origin
    else:
        raise PolicyError(f"manifest {path}: the selection of region {selection.region!r} does not "
                          "name its region's folder; pass home= (the clipdex home) so the write "
                          "passes the region's policy")
    target = egress.open_target(home, region, path, operation="manifest", fields=MANIFEST_FIELDS,
                                optional=tuple(MANIFEST_OPTIONAL), records=len(records), kind="manifest")
    drop = [k for f, keys in MANIFEST_OPTIONAL.items() if not target.allows(f) for k in keys]
    records = [{k: v for k, v in r.items() if k not in drop} for r in records]
    path = target.path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    _write_records(records, tmp, fmt)
    tmp.replace(path)
    return path


def _write_records(records: list[dict], path: Path, fmt: str) -> None:
    """Write manifest rows to ``path`` in ``fmt`` (one of ``MANIFEST_FORMATS``)."""
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, sort_keys=False) + "\n")
    elif fmt == "csv":
        import csv

        with path.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in records:
                w.writerow({**r, "span_start": r["span"][0], "span_end": r["span"][1]})
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:
            raise InputError("Parquet manifests need pyarrow: pip install 'clipdex[parquet]'") from err
        pq.write_table(pa.Table.from_pylist(records), path)


def read_manifest(path: str | Path) -> list[dict]:
    """Records of a manifest written by :func:`write_manifest` (.jsonl, .csv or .parquet)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest {path} does not exist; pass a manifest written by `clipdex select`")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import csv

            with path.open(encoding="utf-8", newline="") as f:
                return list(csv.DictReader(f))
        if suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError as err:
                raise InputError("reading a Parquet manifest needs pyarrow: pip install 'clipdex[parquet]'") from err
            return pq.read_table(path).to_pylist()
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"manifest {path} cannot be read ({err}); rewrite it with `clipdex select`") from err
