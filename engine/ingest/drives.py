"""Drives from recordings: consecutive files of one camera become one drive.

A dashcam rolls a new file every 1-3 minutes; a fleet logger cuts a trip into pieces. A
recording whose drive was not given (by the metadata table, a file-name pattern or the source
itself) joins the drive of the previous recording of the same *device* when it starts within
``gap_s`` of that recording's end. The device is the vehicle and camera when known; a recording
without a vehicle id is a device of its folder (a dashcam's card) and camera.

Drive ids are derived, ``<vehicle or folder>[-<camera>]-<UTC start of the drive's first
recording>``, recorded with provenance ``chain``. Only recordings timed by the metadata table,
their name, their telemetry or a user chain, and a recording that overlaps the previous one by
more than ``OVERLAP_S`` (a copy, another camera) starts a drive of its own; recordings without
such a time have no drive and count as a drive of their own
(:meth:`engine.store.region.ClipTable.drive_keys`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import re
from dataclasses import dataclass

from engine.store.region import RegionStore

#: a recording that starts within this many seconds after the previous one ends continues its drive
DRIVE_GAP_S = 10.0
#: drive provenance that chaining never overrides
_GIVEN = ("metadata", "name", "source", "user")
#: start-time provenance that lets a recording chain into a drive
_CHAINED_TIMES = ("metadata", "name", "telemetry", "user")
#: a recording that starts more than this before the previous one ends overlaps it: another
#: camera or a copy, not the next file of the same stream
OVERLAP_S = 2.0
_BAD = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class _Recording:
    recording_id: str
    device: tuple[str, str]
    label: str
    start: float
    end: float
    rows: list[int]
    drive_id: str
    given: bool


def _recordings(records: list[dict]) -> list[_Recording]:
    by_id: dict[str, _Recording] = {}
    for c in records:
        prov = c["meta"].get("provenance", {})
        start = c["start_time"]
        # only recordings timed by the metadata table, their name, their telemetry or a user
        # chain: a container's creation_time is rewritten by re-encoders, and a source that
        # carried its own time (a zarr clip) carried its drive too when it had one
        untrusted = start is None or prov.get("start_time") not in _CHAINED_TIMES
        start = math.nan if untrusted else float(start)
        rec_start = start - float(c["source_offset_s"]) if math.isfinite(start) else math.nan
        rec_end = start + float(c["duration_s"]) if math.isfinite(start) else math.nan
        r = by_id.get(c["recording_id"])
        if r is None:
            folder = os.path.dirname(c["source"])
            vehicle = c["vehicle_id"]
            label = vehicle or "dev-" + hashlib.blake2b(folder.encode(), digest_size=4).hexdigest()
            r = _Recording(c["recording_id"], (vehicle or f"folder:{folder}", c["camera"]),
                           _BAD.sub("_", label), rec_start, rec_end, [], c["drive_id"],
                           prov.get("drive_id") in _GIVEN
                           or bool(c["drive_id"] and "drive_id" not in prov))
            by_id[c["recording_id"]] = r
        else:
            r.start = min(r.start, rec_start) if math.isfinite(r.start) else rec_start
            r.end = max(r.end, rec_end) if math.isfinite(r.end) else rec_end
        r.rows.append(int(c["row"]))
    return list(by_id.values())


def plan_drives(records: list[dict], gap_s: float = DRIVE_GAP_S) -> dict[str, str]:
    """recording id -> derived drive id for recordings whose drive was not given (records are
    :meth:`RegionStore.clip_records`); "" for a recording without a start time."""
    recs = [r for r in _recordings(records) if not r.given]
    out: dict[str, str] = {r.recording_id: "" for r in recs if not math.isfinite(r.start)}
    timed = sorted((r for r in recs if math.isfinite(r.start)), key=lambda r: (r.device, r.start))
    drive, end, device = "", -math.inf, None
    used: set[str] = set()
    for r in timed:
        if r.device != device or r.start > end + gap_s or r.start < end - OVERLAP_S:
            stamp = dt.datetime.fromtimestamp(r.start, dt.UTC).strftime("%Y%m%dT%H%M%S")
            drive = base = "-".join(p for p in (r.label, _BAD.sub("_", r.device[1]), stamp) if p)
            n = 1
            while drive in used:  # two streams of one device starting in the same second
                n += 1
                drive = f"{base}-{n}"
            used.add(drive)
            device, end = r.device, r.end
        else:
            end = max(end, r.end)
        out[r.recording_id] = drive
    return out


def link_drives(store: RegionStore, gap_s: float = DRIVE_GAP_S) -> int:
    """Assign derived drives to the region's recordings (under the writer lock); returns the
    number of clips whose drive changed."""
    # only recordings that can chain are read (a region of zarr clips or named drives reads none)
    records = store.clip_records(start_from=_CHAINED_TIMES)
    plan = plan_drives(records, gap_s)
    updates = []
    for c in records:
        drive = plan.get(c["recording_id"])
        if drive is None or drive == c["drive_id"]:
            continue
        origin = "chain" if drive else ""
        updates.append((int(c["row"]), {"drive_id": drive, "provenance": {"drive_id": origin}}))
    return store.update_clip_metadata(updates) if updates else 0
