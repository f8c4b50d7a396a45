"""A region's clips with their recording, drive, vehicle, camera and start time, and the
correction of that metadata after ingest (no decoding: features do not depend on it)."""

from __future__ import annotations

import datetime as dt
import math

from engine.errors import InputError, NotFoundError
from engine.ingest.drives import DRIVE_GAP_S, link_drives
from engine.sources.metadata import parse_time, parse_timezone
from engine.store.region import RegionStore


def _iso(t) -> str:
    if t is None or not math.isfinite(t):
        return ""
    return dt.datetime.fromtimestamp(float(t), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def list_clips(store: RegionStore, *, drive: str | None = None,
               recording: str | None = None) -> list[dict]:
    """Active clips (optionally one drive's or one recording's) with their metadata and where
    each field came from (``provenance``: metadata, name, container, telemetry, source, chain,
    user)."""
    out = []
    for c in store.clip_records(drive=drive, recording=recording):
        start = float(c["source_offset_s"])
        out.append({
            "clip_id": c["clip_id"],
            "recording": c["recording_id"],
            "span": [round(start, 3), round(start + float(c["duration_s"]), 3)],
            "drive_id": c["drive_id"],
            "vehicle_id": c["vehicle_id"],
            "camera": c["camera"],
            "start_time": _iso(c["start_time"]),
            "source": c["source"],
            "provenance": c["meta"].get("provenance", {}),
            "tags": c["meta"].get("tags", {}),
        })
    return out


def set_metadata(store: RegionStore, *, clip_id: str | None = None, recording: str | None = None,
                 drive_id: str | None = None, vehicle_id: str | None = None,
                 camera: str | None = None, start_time: str | None = None,
                 timezone: str | None = None, tags: dict[str, str] | None = None,
                 drive_gap_s: float = DRIVE_GAP_S) -> dict:
    """Correct the metadata of a whole recording (named, or the one ``clip_id`` was cut from):
    drive, vehicle, camera, the recording's start time (each clip's start follows from its span)
    and tags. Recorded with provenance ``user``; drives are re-linked after. Needs the writer."""
    if (clip_id is None) == (recording is None):
        raise InputError("name exactly one of --clip ID or --recording REC (see `clipdex clips`)")
    if clip_id is not None:
        recording = store.clip_records([store.clip_row(clip_id)])[0]["recording_id"]
    members = store.clip_records(recording=recording)
    if not members:
        raise NotFoundError(f"recording {recording!r} has no clips in region "
                            f"{store.region.name!r}; list them with `clipdex clips --region "
                            f"{store.region.name}`")
    fields: dict = {}
    for key, value in (("drive_id", drive_id), ("vehicle_id", vehicle_id), ("camera", camera)):
        if value is not None:
            fields[key] = value.strip()
    rec_start = None
    if start_time is not None:
        try:
            rec_start = parse_time(start_time, parse_timezone(timezone))
        except ValueError as err:
            raise InputError(f"start time {start_time!r} cannot be read; write ISO 8601 "
                             "(2024-05-01T14:30:12+02:00) or epoch seconds") from err
    if not fields and rec_start is None and not tags:
        raise InputError("nothing to set: give --drive, --vehicle, --camera, --start or --tag")
    updates = []
    for c in members:
        f = dict(fields)
        if rec_start is not None:
            f["start_time"] = rec_start + float(c["source_offset_s"])
        prov = {k: "user" for k in f}
        updates.append((int(c["row"]), {**f, "provenance": prov, "tags": tags or {}}))
    changed = store.update_clip_metadata(updates)
    relinked = link_drives(store, drive_gap_s)
    return {"recording": recording, "clips": changed, "drives_changed": relinked}
