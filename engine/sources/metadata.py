"""Where a recording comes from: drive, vehicle, camera and start time, with their provenance.

Sources, in order of precedence (the first that gives a field wins; every field records which
source gave it in ``provenance``):

1. ``metadata``: a table given at ingest (``--metadata FILE``: CSV, JSON Lines or Parquet), one
   row per source path or glob (relative paths are relative to the table's folder) with columns
   ``drive`` / ``drive_id``, ``vehicle`` / ``vehicle_id``, ``camera``, ``start_time`` (ISO 8601,
   or epoch seconds) and free-form ``tags`` (``key=value;key=value``) or ``tag_<name>`` columns.
   An exact path row wins over a glob row.
2. ``name``: the file name, matched against ``--name-pattern`` regular expressions (named groups
   ``vehicle``, ``camera``, ``drive``, ``date`` = YYYYMMDD, ``time`` = HHMMSS, or ``year``,
   ``month``, ``day``, ``hour``, ``minute``, ``second``, or ``epoch`` / ``epoch_ms``), then the
   default patterns :data:`DEFAULT_NAME_PATTERNS` (dashcam and phone names such as
   ``20240501_143012_F.MP4``, ``2024_0501_143012_001.MOV``, ``VID_20240501_143012.mp4``,
   ``20240501-143012.mp4``).
3. ``container``: the MP4/MOV ``creation_time`` tag (ignored before 2000 or in the future).
4. ``telemetry``: epoch timestamps in the telemetry sidecar.

Times without a zone (names, naive ISO strings) are read in ``timezone`` (default UTC).

Problems never stop a batch: unknown columns, unparseable times, rows that name no ingested file,
and sources that disagree about a start time become warnings naming the row and the fix.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InputError
from engine.sources.remote import is_object_url

#: default file-name patterns, tried in order after any given with ``--name-pattern``
DEFAULT_NAME_PATTERNS = (
    # 2024_0501_143012_001.MOV (Viofo, BlackVue-style folders)
    r"(?<!\d)(?P<year>(?:19|20)\d\d)_(?P<month>\d\d)(?P<day>\d\d)_(?P<time>\d{6})(?!\d)"
    r"(?:_(?P<seq>\d+))?(?P<camera_suffix>[A-Za-z]{1,2})?",
    # 20240501_143012_F.MP4, 20240501-143012.mp4, VID_20240501_143012.mp4, 20240501143012
    r"(?<!\d)(?P<date>(?:19|20)\d{6})[_-]?(?P<time>\d{6})(?!\d)(?:[_-](?P<camera>[A-Za-z]{1,5}))?",
)
#: metadata table columns (aliases -> field)
COLUMNS = {
    "source": "source", "path": "source", "file": "source",
    "drive": "drive_id", "drive_id": "drive_id",
    "vehicle": "vehicle_id", "vehicle_id": "vehicle_id",
    "camera": "camera",
    "start_time": "start_time", "start": "start_time",
    "tags": "tags",
}
FIELDS = ("drive_id", "vehicle_id", "camera", "start_time")
#: two sources' start times further apart than this are reported as disagreeing
AGREE_S = 2.0
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp()


@dataclass
class RecordingMetadata:
    """What is known about one recording, and where each field came from."""

    drive_id: str = ""
    vehicle_id: str = ""
    camera: str = ""
    start_time: float = math.nan  # epoch seconds of the recording's first frame
    tags: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def fields(self) -> dict:
        """The known fields (drive_id, vehicle_id, camera, start_time) and nothing unknown."""
        out = {k: getattr(self, k) for k in ("drive_id", "vehicle_id", "camera") if getattr(self, k)}
        if math.isfinite(self.start_time):
            out["start_time"] = self.start_time
        return out


def parse_timezone(text: str | None) -> dt.tzinfo:
    """``UTC``, ``+02:00`` / ``-0530`` or an IANA name such as ``Europe/Berlin``."""
    if not text or text.upper() in ("UTC", "Z"):
        return dt.UTC
    m = re.fullmatch(r"([+-])(\d\d):?(\d\d)", text.strip())
    if m:
        sign = 1 if m.group(1) == "+" else -1
        return dt.timezone(sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(text)
    except Exception as err:
        raise InputError(f"unknown time zone {text!r}; use UTC, +HH:MM or a name such as "
                         "Europe/Berlin") from err


def parse_time(value, tz: dt.tzinfo = dt.UTC) -> float:
    """Epoch seconds from epoch seconds (number or numeric text) or ISO 8601 text; naive times
    are read in ``tz``. Raises ValueError when it cannot be read."""
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("not finite")
        return float(value)
    text = str(value).strip()
    if not text:
        raise ValueError("empty")
    try:
        return float(text)
    except ValueError:
        pass
    stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=tz)
    return stamp.timestamp()


def compile_patterns(patterns: list[str] | None, defaults: bool = True) -> list[re.Pattern]:
    """Given patterns first, then the defaults (unless ``defaults`` is False)."""
    out = []
    for p in patterns or []:
        try:
            out.append(re.compile(p))
        except re.error as err:
            raise InputError(f"--name-pattern {p!r} is not a regular expression ({err}); use named "
                             "groups such as (?P<date>\\d{8})_(?P<time>\\d{6})") from err
    if defaults:
        out += [re.compile(p) for p in DEFAULT_NAME_PATTERNS]
    return out


def from_name(name: str, patterns: list[re.Pattern], tz: dt.tzinfo) -> dict:
    """Fields a file name gives (``start_time``, ``vehicle_id``, ``camera``, ``drive_id``)."""
    stem = Path(name).stem
    for pat in patterns:
        m = pat.search(stem)
        if not m:
            continue
        g = {k: v for k, v in m.groupdict().items() if v}
        out: dict = {}
        try:
            start = _name_time(g, tz)
        except ValueError:
            continue  # digits that are no date (e.g. month 13): not this pattern
        if start is not None:
            out["start_time"] = start
        for key, target in (("vehicle", "vehicle_id"), ("drive", "drive_id"), ("camera", "camera"),
                            ("camera_suffix", "camera")):
            if g.get(key) and target not in out:
                out[target] = g[key]
        if out:
            return out
    return {}


def _name_time(g: dict, tz: dt.tzinfo) -> float | None:
    if "epoch" in g:
        return float(g["epoch"])
    if "epoch_ms" in g:
        return float(g["epoch_ms"]) / 1000.0
    if "date" in g:
        year, month, day = int(g["date"][:4]), int(g["date"][4:6]), int(g["date"][6:8])
    elif {"year", "month", "day"} <= set(g):
        year, month, day = int(g["year"]), int(g["month"]), int(g["day"])
    else:
        return None
    if "time" in g:
        hour, minute, second = int(g["time"][:2]), int(g["time"][2:4]), int(g["time"][4:6])
    else:
        hour, minute, second = (int(g.get(k, 0)) for k in ("hour", "minute", "second"))
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp()


def container_time(text: str) -> float | None:
    """A container ``creation_time`` as epoch seconds; None when absent, unreadable, before 2000
    (cameras without a clock write 1904 or 1970) or more than a day in the future."""
    if not text:
        return None
    try:
        t = parse_time(text)
    except ValueError:
        return None
    return t if _EARLIEST <= t <= time.time() + 86400 else None


@dataclass
class _Row:
    number: int  # 1-based data row (header excluded)
    pattern: str  # absolute path or glob
    is_glob: bool
    values: dict
    used: bool = False


class MetadataTable:
    """A metadata table (``--metadata FILE``), loaded once; :meth:`lookup` finds a source's row."""

    def __init__(self, path: Path, rows: list[_Row], warnings: list[str]):
        self.path = path
        self.rows = rows
        self.warnings = warnings

    @classmethod
    def load(cls, path: str | Path, tz: dt.tzinfo = dt.UTC) -> MetadataTable:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"metadata table {path} does not exist; check the path")
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                with open(path, newline="", encoding="utf-8-sig") as handle:
                    records = list(csv.DictReader(handle))
            elif suffix in (".jsonl", ".ndjson", ".json"):
                records = [json.loads(line) for line in path.read_text("utf-8").splitlines()
                           if line.strip()]
            elif suffix == ".parquet":
                try:
                    import pyarrow.parquet as pq
                except ImportError as err:
                    raise InputError("a Parquet metadata table needs pyarrow: pip install "
                                     "'clipdex[parquet]', or give the table as CSV") from err
                records = pq.read_table(path).to_pylist()
            else:
                raise InputError(f"metadata table {path}: unknown format {suffix!r}; use .csv, "
                                 ".jsonl or .parquet")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as err:
            raise InputError(f"metadata table {path} cannot be read ({err}); fix the file") from err
        if not records:
            raise InputError(f"metadata table {path} has no rows")
        if not all(isinstance(r, dict) for r in records):
            raise InputError(f"metadata table {path}: every JSON line must be an object")
        warnings: list[str] = []
        names = {k for r in records for k in r}
        if not any(COLUMNS.get(str(k).strip().lower()) == "source" for k in names):
            raise InputError(f"metadata table {path} has no 'source' column (the file path or "
                             f"glob of each row); columns found: {sorted(map(str, names))}")
        unknown = sorted(str(k) for k in names if str(k).strip().lower() not in COLUMNS
                         and not str(k).lower().startswith("tag_"))
        if unknown:
            warnings.append(f"metadata table {path}: unknown columns {unknown} ignored; known "
                            f"columns are {sorted(set(COLUMNS))}, and tag_<name> for free-form tags")
        rows = []
        for number, record in enumerate(records, 1):
            values: dict = {"tags": {}}
            source = ""
            for key, raw in record.items():
                col = str(key).strip().lower()
                value = "" if raw is None else raw
                target = COLUMNS.get(col)
                if col.startswith("tag_") and str(value).strip():
                    values["tags"][col[4:]] = str(value).strip()
                elif target == "source":
                    source = str(value).strip()
                elif target == "tags":
                    for part in str(value).split(";"):
                        if "=" in part:
                            k, v = part.split("=", 1)
                            values["tags"][k.strip()] = v.strip()
                        elif part.strip():
                            values["tags"][part.strip()] = ""
                elif target == "start_time" and str(value).strip():
                    try:
                        values["start_time"] = parse_time(value, tz)
                    except ValueError:
                        warnings.append(f"metadata table {path} row {number}: start time {value!r} "
                                        "cannot be read and is ignored; write ISO 8601 "
                                        "(2024-05-01T14:30:12+02:00) or epoch seconds")
                elif target in FIELDS and str(value).strip():
                    values[target] = str(value).strip()
            if not source:
                warnings.append(f"metadata table {path} row {number}: no source path; row ignored")
                continue
            pattern = source.replace("\\", "/")
            if not Path(pattern).is_absolute() and not is_object_url(source):
                pattern = (path.parent / pattern).as_posix()
            is_glob = any(c in pattern for c in "*?[")
            if not is_glob and not is_object_url(source):
                pattern = str(Path(pattern).resolve())
            rows.append(_Row(number, pattern, is_glob, values))
        return cls(path, rows, warnings)

    def lookup(self, source: Path | str) -> tuple[dict, list[str]]:
        """(values, warnings) of the row for ``source`` (a path, or an ``s3://`` URL matched as
        written): an exact path row, else the last glob row that matches; several exact rows
        that disagree are reported."""
        real = source if is_object_url(source) else str(Path(source).resolve())
        exact = [r for r in self.rows if not r.is_glob and r.pattern == real]
        globbed = [r for r in self.rows if r.is_glob and fnmatch.fnmatch(real, r.pattern)]
        warnings = []
        chosen = exact or globbed
        if not chosen:
            return {}, []
        for r in chosen:
            r.used = True
        row = chosen[-1]
        for other in chosen[:-1]:
            differ = [k for k in FIELDS if k in other.values and k in row.values
                      and other.values[k] != row.values[k]]
            if differ:
                warnings.append(f"metadata table {self.path} rows {other.number} and {row.number} "
                                f"both name {source} and disagree on {differ}; row {row.number} "
                                "used (remove the other)")
        return dict(row.values), warnings

    def unused_rows(self) -> list[str]:
        """Warnings for rows that named no source of this ingest."""
        return [f"metadata table {self.path} row {r.number}: {r.pattern} matches no ingested "
                "file; fix the path or drop the row" for r in self.rows if not r.used]


@dataclass
class MetadataResolver:
    """Resolves a recording's metadata from every source (see the module doc)."""

    table: MetadataTable | None = None
    patterns: list[re.Pattern] = field(default_factory=lambda: compile_patterns(None))
    timezone: dt.tzinfo = dt.UTC

    def resolve(self, source: Path | str, *, container_creation: str = "",
                telemetry_start: float = math.nan, given: dict | None = None) -> RecordingMetadata:
        """Metadata of the recording at ``source``; ``given`` holds fields the source itself
        carried (zarr attrs), which rank with the metadata table (the table wins)."""
        out = RecordingMetadata()
        offers: list[tuple[str, dict]] = []
        if self.table is not None:
            values, warns = self.table.lookup(source)
            out.warnings += warns
            out.tags.update(values.pop("tags", {}))
            offers.append(("metadata", values))
        if given:
            offers.append(("source", {k: v for k, v in given.items() if v not in ("", None)
                                      and not (isinstance(v, float) and not math.isfinite(v))}))
        name = source.rsplit("/", 1)[-1] if isinstance(source, str) else source.name
        offers.append(("name", from_name(name, self.patterns, self.timezone)))
        created = container_time(container_creation)
        if created is not None:
            offers.append(("container", {"start_time": created}))
        if math.isfinite(telemetry_start):
            offers.append(("telemetry", {"start_time": float(telemetry_start)}))
        starts = []
        for origin, values in offers:
            for key in FIELDS:
                if key not in values:
                    continue
                if key == "start_time":
                    starts.append((origin, float(values[key])))
                if key not in out.provenance:
                    setattr(out, key, float(values[key]) if key == "start_time" else str(values[key]))
                    out.provenance[key] = origin
        if len(starts) > 1:
            used = out.provenance["start_time"]
            for origin, t in starts:
                gap = abs(t - out.start_time)
                if origin != used and gap > AGREE_S and origin != "container":
                    out.warnings.append(
                        f"{name}: start time from {used} ({_iso(out.start_time)}) and from "
                        f"{origin} ({_iso(t)}) differ by {_span(gap)}; {used} used (correct the "
                        "metadata table, or give --timezone when names are local time)")
        return out


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 3600:.2f} h"
