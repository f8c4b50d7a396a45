"""Per-region append-only audit log of everything that left the region.

One JSON object per line in ``<region>/audit.jsonl``: when, which operation, which fields, to
which region, how many records. Lines are appended with ``O_APPEND`` in a single ``write`` call
and fsynced, so concurrent writers never interleave and a crash never loses a committed line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import StoreError

if TYPE_CHECKING:  # the type only: a store or log needs a region's path and name
    from engine.sovereignty.regions import Region

AUDIT_FILE = "audit.jsonl"


def audit_path(region: Region) -> Path:
    return region.path / AUDIT_FILE


def record(region: Region, *, operation: str, fields: Sequence[str], to: str, records: int,
           detail: dict | None = None) -> dict:
    """Append one line to ``region``'s audit log and return it."""
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "epoch": round(time.time(), 3),
        "region": region.name,
        "operation": operation,
        "fields": sorted(set(fields)),
        "to": to,
        "records": int(records),
        "pid": os.getpid(),
    }
    if detail:
        entry["detail"] = detail
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    region.path.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(audit_path(region), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        raise StoreError(
            f"cannot append to the audit log {audit_path(region)} ({err}); nothing was sent out of "
            f"region {region.name!r} — fix the disk or permissions and retry"
        ) from err
    return entry


def read(region: Region) -> list[dict]:
    path = audit_path(region)
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise StoreError(f"{path}:{n} is not valid JSON ({err}); the audit log was edited by hand") from err
    return out
