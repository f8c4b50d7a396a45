"""Telemetry sidecars: CSV, .npy and .npz, converted to :class:`engine.types.Telemetry`.

Units after loading (see :data:`engine.types.TELEMETRY_UNITS`): time s, speed m/s, accel m/s^2,
yaw_rate rad/s, steering rad. Telemetry time is on the video's time axis: seconds from the start
of the recording (the first decoded frame). Timestamps that look absolute (first sample
> 1e6 s, e.g. epoch seconds) are re-based to the first sample and that is reported in ``issues``.

Input units:

- ``time_unit``: ``"s"``, ``"ms"`` or ``"us"``. ``None`` (default) means seconds, unless the
  time column was found through a unit-suffixed alias (``time_ms``, ``timestamp_us`` ...).
- ``speed_unit``: ``"m/s"``, ``"km/h"`` or ``"mph"``; ``None`` means m/s unless the column name
  says otherwise (``speed_kph``, ``speed_kmh``, ``speed_mph``).
- ``yaw_rate`` / ``steering`` columns named ``*_deg`` are converted from degrees.
- ``mapping`` (``{"time": "timestamp_ms", "speed": "speed_kph"}``) names the file's column for a
  channel; a mapped column named like an alias above keeps that alias's unit, and an explicit
  ``time_unit`` / ``speed_unit`` wins over both.

Headerless logs: ``mapping={"columns": "center,left,right,steering,throttle,brake,speed"}``
(``--telemetry-columns``) names the columns of a CSV without a header row (a first row equal
to those names is taken as the header). Columns are then matched to channels as above. Without
a time column, times come from timestamps in the file names of a path column (driving
simulators log ``...\\IMG\\center_2016_12_01_13_30_48_287.jpg``, Windows paths included, read as UTC).
Columns that are no channel (throttle, brake, image paths) are not used, and ``issues`` says so.

Derived: without an ``accel`` column, acceleration is the time derivative of speed (smoothed
over :data:`ACCEL_SMOOTH_S`), so that speed-only telemetry can fire ``hard_brake``.

Repairs, each reported in ``Telemetry.issues``: empty, non-numeric and infinite cells -> NaN;
rows without a time dropped; rows sorted by time and duplicate timestamps dropped (first kept);
gaps > 1 s reported. Fewer than 2 usable rows or no finite value at all -> ``InputError``.
"""

from __future__ import annotations

import calendar
import csv
import math
import re
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.types import TELEMETRY_CHANNELS, Telemetry

COLUMNS = ("time", *TELEMETRY_CHANNELS)
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
SPEED_UNITS = {"m/s": 1.0, "km/h": 1 / 3.6, "mph": 0.44704}
GAP_S = 1.0
ABSOLUTE_TIME_S = 1e6
#: absolute timestamps above this (2001-09-09) are epoch seconds: they give the recording's start
EPOCH_MIN_S = 1e9
DEG = math.pi / 180.0
#: the window over which acceleration derived from speed is averaged (a centred moving mean)
ACCEL_SMOOTH_S = 0.5
#: a timestamp in a file name: 2016_12_01_13_30_48_287 (year .. second, milliseconds)
_NAME_TIME = re.compile(r"(\d{4})[_-](\d{2})[_-](\d{2})[_ T-](\d{2})[_:-]?(\d{2})[_:-]?(\d{2})(?:[_.](\d{1,6}))?")

#: column-name aliases tried when no mapping names the column: name -> (unit, scale to SI)
_ALIASES: dict[str, list[tuple[str, float | None]]] = {
    "time": [("time", None), ("t", None), ("time_s", 1.0), ("timestamp", None),
             ("timestamp_s", 1.0), ("time_ms", 1e-3), ("timestamp_ms", 1e-3),
             ("time_us", 1e-6), ("timestamp_us", 1e-6)],
    "speed": [("speed", None), ("speed_mps", 1.0), ("speed_ms", 1.0), ("speed_kph", 1 / 3.6),
              ("speed_kmh", 1 / 3.6), ("speed_mph", 0.44704)],
    "accel": [("accel", 1.0), ("acceleration", 1.0), ("accel_mps2", 1.0)],
    "yaw_rate": [("yaw_rate", 1.0), ("yawrate", 1.0), ("yaw_rate_deg", DEG)],
    "steering": [("steering", 1.0), ("steering_angle", 1.0), ("steering_deg", DEG)],
}


def _unit_scale(kind: str, unit: str | None, table: dict[str, float]) -> float | None:
    if unit is None:
        return None
    if unit not in table:
        raise InputError(
            f"unknown {kind} unit {unit!r}; use one of {sorted(table)}"
        )
    return table[unit]


def _resolve_columns(
    available: list[str], mapping: dict[str, str] | None, source: str
) -> dict[str, tuple[str | None, float | None]]:
    """canonical name -> (column in the file or None, scale implied by the column name)."""
    mapping = {k: v for k, v in (mapping or {}).items() if k != "columns"}
    unknown = set(mapping) - set(COLUMNS)
    if unknown:
        raise InputError(
            f"telemetry mapping has unknown keys {sorted(unknown)}; keys must be among "
            f"{list(COLUMNS)} (values are the column names in {source})"
        )
    lowered = {name.strip().lower(): name for name in available}
    resolved: dict[str, tuple[str | None, float | None]] = {}
    for name in COLUMNS:
        if name in mapping:
            column = mapping[name]
            if column not in available:
                raise InputError(
                    f"telemetry column {column!r} (mapped to {name!r}) is not in {source}; "
                    f"columns there are {available}; fix the mapping"
                )
            # a mapped column whose name says its unit (timestamp_ms, speed_kph ...) keeps it
            implied = dict(_ALIASES[name]).get(column.strip().lower())
            resolved[name] = (column, implied)
            continue
        resolved[name] = (None, None)
        for alias, scale in _ALIASES[name]:
            if alias in lowered:
                resolved[name] = (lowered[alias], scale)
                break
    if resolved["time"][0] is None:
        raise InputError(
            f"no time column in {source} (columns: {available}); name one with "
            "mapping={'time': 'your_column'} and time_unit='s'|'ms'|'us'"
        )
    return resolved


def _to_float(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan


def _read_csv(path: Path, columns: list[str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray,
                                                                    list[list[str]]]:
    """Header, a float64 [rows, cols] table, the count of non-numeric cells per column and the
    data rows as text. ``columns`` names the columns of a file without a header row."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise InputError(f"telemetry file {path} is empty; write a header row and >= 2 rows")
    if columns is not None:
        header = list(columns)
        if [c.strip().lower() for c in rows[0][:len(header)]] == [c.lower() for c in header]:
            rows = rows[1:]  # the file has that header after all
    else:
        header = [cell.strip() for cell in rows[0]]
        rows = rows[1:]
    width = len(header)
    table = np.full((len(rows), width), np.nan)
    bad_cells = np.zeros(width, np.int64)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row[:width]):
            cell = cell.strip()
            if not cell:
                continue
            value = _to_float(cell)
            if math.isnan(value) and cell.lower() != "nan":
                bad_cells[j] += 1
            table[i, j] = value
    return header, table, bad_cells, rows


def parse_columns(text: str, source: str = "--telemetry-columns") -> list[str]:
    """``"center,left,right,steering,throttle,brake,speed"`` -> checked column names."""
    names = [c.strip() for c in text.split(",")]
    if not names or any(not c for c in names):
        raise InputError(f"{source} {text!r} has an empty name; write the file's columns in order, e.g. "
                         "center,left,right,steering,throttle,brake,speed")
    if len(set(n.lower() for n in names)) != len(names):
        raise InputError(f"{source} {text!r} repeats a name; give each column its own name")
    return names


def _name_times(cells: list[str]) -> np.ndarray | None:
    """Epoch seconds (UTC) from timestamps in file names, one per cell; None unless every
    non-empty cell has one."""
    out = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        name = re.split(r"[\\/]", cell.strip())[-1]
        m = _NAME_TIME.search(name)
        if m is None:
            if name:
                return None
            continue
        y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
        frac = m.group(7) or "0"
        try:
            out[i] = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + int(frac) / 10 ** len(frac)
        except (ValueError, OverflowError):
            return None
    return out if np.isfinite(out).sum() >= 2 else None


def load_telemetry(
    path: Path | str,
    *,
    mapping: dict[str, str] | None = None,
    time_unit: str | None = None,
    speed_unit: str | None = None,
) -> Telemetry:
    """Load a telemetry sidecar (``.csv`` with header, ``.npy`` or ``.npz``); see module doc."""
    path = Path(path)
    time_scale = _unit_scale("time", time_unit, TIME_UNITS)
    speed_scale = _unit_scale("speed", speed_unit, SPEED_UNITS)
    issues: list[str] = []
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            named = parse_columns(mapping["columns"]) if mapping and mapping.get("columns") else None
            header, table, bad_cells, text_rows = _read_csv(path, named)
            timed_by_names = None
            try:
                columns = _resolve_columns(header, mapping, str(path))
            except InputError:
                timed_by_names = _time_from_names(header, text_rows, table)
                if timed_by_names is None:
                    raise
                columns = _resolve_columns(header + ["time"], {**(mapping or {}), "time": "time"}, str(path))
                table = np.column_stack([table, timed_by_names[1]])
                bad_cells = np.append(bad_cells, 0)
                issues.append(f"times from the file names in column {timed_by_names[0]!r} (no time column)")
                header = header + ["time"]
            used = {col for col, _ in columns.values() if col is not None}
            bad = int(sum(bad_cells[header.index(c)] for c in used))
            if bad:
                issues.append(f"{bad} non-numeric cells read as NaN")
            unused = [c for c in header if c not in used and (timed_by_names is None or c != timed_by_names[0])]
            if unused:
                issues.append(f"columns not used: {', '.join(unused)} (clipdex reads "
                              f"{', '.join(COLUMNS)}; the file keeps them)")
            data = {
                name: (table[:, header.index(col)] if col is not None else None, scale)
                for name, (col, scale) in columns.items()
            }
        elif suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            if array.ndim != 2 or not 2 <= array.shape[1] <= len(COLUMNS):
                raise InputError(
                    f"telemetry array in {path} has shape {array.shape}; expected float "
                    f"[rows, 2..{len(COLUMNS)}] with columns {list(COLUMNS)} in that order"
                )
            array = np.asarray(array, dtype=np.float64)
            data = {
                name: (array[:, j] if j < array.shape[1] else None, None)
                for j, name in enumerate(COLUMNS)
            }
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: np.asarray(archive[key], dtype=np.float64).ravel()
                          for key in archive.files}
            columns = _resolve_columns(list(arrays), mapping, str(path))
            data = {name: (arrays[col] if col is not None else None, scale)
                    for name, (col, scale) in columns.items()}
        else:
            raise InputError(
                f"telemetry file {path} has suffix {path.suffix!r}; use .csv, .npy or .npz"
            )
    except (OSError, ValueError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"cannot read telemetry file {path}: {err}; check the file") from err
    return _build(data, time_scale, speed_scale, issues, str(path))


def _time_from_names(header: list[str], text_rows: list[list[str]],
                     table: np.ndarray) -> tuple[str, np.ndarray] | None:
    """(column, epoch seconds) of the first text column whose cells are file names with
    timestamps, or None."""
    for j, name in enumerate(header):
        if np.isfinite(table[:, j]).any():
            continue  # a numeric column
        times = _name_times([row[j] if j < len(row) else "" for row in text_rows])
        if times is not None:
            return name, times
    return None


def _derived_accel(time: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """d speed / d time, a centred moving mean over :data:`ACCEL_SMOOTH_S`; NaN where speed is."""
    out = np.full(speed.shape, np.nan)
    ok = np.isfinite(speed)
    if ok.sum() < 3:
        return out
    t, v = time[ok], speed[ok].astype(np.float64)
    grad = np.gradient(v, t)
    step = float(np.median(np.diff(t)))
    half = max(0, int(round(ACCEL_SMOOTH_S / step / 2))) if step > 0 else 0
    if half:
        kernel = np.ones(2 * half + 1)
        padded = np.pad(grad, half, mode="edge")
        grad = np.convolve(padded, kernel / kernel.sum(), mode="valid")
    out[ok] = grad
    return out


def _build(data, time_scale, speed_scale, issues, source) -> Telemetry:
    raw_time, implied = data["time"]
    lengths = {name: len(col) for name, (col, _) in data.items() if col is not None}
    if len(set(lengths.values())) > 1:
        raise InputError(f"telemetry columns in {source} differ in length {lengths}; fix the file")
    time = raw_time * (time_scale if time_scale is not None else (implied or 1.0))
    values = np.full((time.size, len(TELEMETRY_CHANNELS)), np.nan)
    for j, name in enumerate(TELEMETRY_CHANNELS):
        column, scale = data[name]
        if column is None:
            if name != "accel" or data["speed"][0] is None:
                issues.append(f"no {name} column (NaN)")
            continue
        if name == "speed" and speed_scale is not None:
            scale = speed_scale
        values[:, j] = column * (scale if scale is not None else 1.0)
    present = np.array([data[name][0] is not None for name in TELEMETRY_CHANNELS])
    n_inf = int(np.isinf(values).sum() + np.isinf(time).sum())
    if n_inf:
        issues.append(f"{n_inf} infinite values set to NaN")
    values[~np.isfinite(values)] = np.nan
    keep = np.isfinite(time)
    if not keep.all():
        issues.append(f"{int((~keep).sum())} rows without a time dropped")
        time, values = time[keep], values[keep]
    if np.any(np.diff(time) < 0):
        issues.append("timestamps not increasing: rows sorted by time")
        order = np.argsort(time, kind="stable")
        time, values = time[order], values[order]
    unique = np.concatenate(([True], np.diff(time) > 0)) if time.size else np.ones(0, bool)
    if not unique.all():
        issues.append(f"{int((~unique).sum())} rows with duplicate timestamps dropped")
        time, values = time[unique], values[unique]
    if time.size < 2:
        raise InputError(
            f"telemetry {source} has {time.size} usable rows; need >= 2 rows with a time"
        )
    if not np.isfinite(values).any():
        raise InputError(
            f"telemetry {source} has no finite value in any of {list(TELEMETRY_CHANNELS)}; "
            "check the column mapping and the file"
        )
    n_nan = int(np.isnan(values[:, present]).sum())  # absent columns are reported above
    if n_nan:
        issues.append(f"{n_nan} missing values (NaN)")
    accel = TELEMETRY_CHANNELS.index("accel")
    if not present[accel] and present[TELEMETRY_CHANNELS.index("speed")]:
        values[:, accel] = _derived_accel(time, values[:, TELEMETRY_CHANNELS.index("speed")])
        issues.append(f"no accel column: derived from speed (smoothed over {ACCEL_SMOOTH_S:g} s)")
    gaps = np.diff(time)
    if np.any(gaps > GAP_S):
        issues.append(f"{int((gaps > GAP_S).sum())} gaps > {GAP_S:g} s (largest {gaps.max():.3g} s)")
    epoch_start = math.nan
    if time[0] > ABSOLUTE_TIME_S:
        issues.append(f"absolute timestamps (first {time[0]:.6g} s) re-based to the first sample")
        if time[0] > EPOCH_MIN_S:  # epoch seconds: the recording's start time, when recorded
            epoch_start = float(time[0])
        time = time - time[0]
    return Telemetry(time=time.astype(np.float64), values=values.astype(np.float32), issues=issues,
                     epoch_start=epoch_start)


def align_telemetry(tel: Telemetry, t0: float, t1: float) -> Telemetry:
    """Rows with ``t0 <= time < t1``, time re-based so that ``t0`` becomes 0 (may be empty)."""
    mask = (tel.time >= t0) & (tel.time < t1)
    return Telemetry(
        time=np.ascontiguousarray(tel.time[mask] - t0),
        values=np.ascontiguousarray(tel.values[mask]),
        issues=list(tel.issues),
        epoch_start=tel.epoch_start + t0,
    )


def parse_telemetry_options(
    mapping_text: str | None, units_text: str | None
) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    """``"time=timestamp_ms,speed=speed_kph"`` and ``"time=ms,speed=km/h"`` -> checked dicts.

    Raises :class:`InputError` naming the bad entry and the accepted keys/units.
    """

    def pairs(text: str, what: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for entry in (e.strip() for e in text.split(",")):
            key, sep, value = entry.partition("=")
            if not entry or not sep or not key.strip() or not value.strip():
                raise InputError(
                    f"telemetry {what} entry {entry!r} is not KEY=VALUE; write e.g. "
                    + ("time=timestamp_ms,speed=speed_kph" if what == "map" else
                       "time=ms,speed=km/h")
                )
            out[key.strip()] = value.strip()
        return out

    mapping = units = None
    if mapping_text:
        mapping = pairs(mapping_text, "map")
        unknown = sorted(set(mapping) - set(COLUMNS))
        if unknown:
            raise InputError(f"--telemetry-map keys {unknown} are not channels; use keys from "
                             f"{list(COLUMNS)} (values are your CSV's column names)")
    if units_text:
        units = pairs(units_text, "units")
        tables = {"time": TIME_UNITS, "speed": SPEED_UNITS}
        for key, value in units.items():
            if key not in tables:
                raise InputError(f"--telemetry-units key {key!r} is unknown; units can be set "
                                 "for time (s, ms, us) and speed (m/s, km/h, mph)")
            _unit_scale(key, value, tables[key])
    return mapping, units
