"""The egress gate: the one place where anything of a region leaves it.

Every write outside a region's folder and every result sent to another region goes through
:func:`send` (results for a region) or :func:`open_target` (a file or folder to write). The gate
knows the fields a payload carries (:data:`engine.sovereignty.regions.EXPORT_FIELDS`: ids, scores, hashes,
embeddings, thumbnails, frames, telemetry, source_paths, relations, counts), checks each against
the sending region's policy for the destination, appends the audit line *before* the caller
writes or sends a byte, and refuses with a message that names the field and the policy line to
change. A destination inside another region's folder is always refused, whatever the policy:
region folders hold only their own region's data. A write inside the region's own folder is no
egress: it is not checked or audited, but it is registered (``outputs.jsonl``) so that
:mod:`engine.sovereignty.forget` can rewrite or purge it when clips are erased.

Fields are *required* (the operation is refused without them) or *optional* (dropped when the
policy does not grant them; the caller leaves them out and the audit line lists only what goes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import PolicyError, RegionError
from engine.sovereignty import audit
from engine.sovereignty.regions import EXPORT_FIELDS, REGIONS_FILE, Home, Region

#: registry of the files clipdex wrote inside a region (reports, manifests, exports)
OUTPUTS_FILE = "outputs.jsonl"
#: per-region secret for opaque export ids (never leaves the region)
SECRET_FILE = "egress.key"
#: where a destination outside every region is audited as going
ANYWHERE = "*"


@dataclass(frozen=True)
class Target:
    """Where a write goes: ``inside`` the region (no egress) or to ``destination``."""

    path: Path
    inside: bool
    destination: str | None  # None inside; a region name, or "*" outside every region
    fields: tuple[str, ...]  # the fields that may be written (all requested ones when inside)

    def allows(self, field_name: str) -> bool:
        return field_name in self.fields


def _check_fields(names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    for f in names:
        if f not in EXPORT_FIELDS:
            raise PolicyError(f"unknown egress field {f!r}; known: {', '.join(EXPORT_FIELDS)}")
    return names


def permitted(region: Region, field_name: str, destination: str) -> bool:
    """True when the policy lets ``field_name`` go to ``destination`` (a region name, or ``"*"``
    for a place outside every region, which needs ``export_to = ["*"]``)."""
    if destination == ANYWHERE:
        return field_name in region.export_fields and ANYWHERE in region.export_to
    return region.allows(field_name, destination)


def refusal(region: Region, fields: Iterable[str], destination: str, *, operation: str,
            hint: str = "") -> str | None:
    """Why ``fields`` may not go from ``region`` to ``destination`` (None when they may)."""
    for f in _check_fields(fields):
        if not permitted(region, f, destination):
            where = "a place outside every region" if destination == ANYWHERE else f"region {destination!r}"
            to = '"*"' if destination == ANYWHERE else f'"{destination}"'
            grant = f"export_fields, and {to} to its export_to,"
            return (f"{operation}: policy of region {region.name!r} (export_fields "
                    f"{list(region.export_fields)}, export_to {list(region.export_to)}) does not let "
                    f"{f!r} leave for {where}; add '{f}' to its {grant} in regions.toml "
                    f"(`clipdex regions show {region.name}`){hint}")
    return None


def send(region: Region, destination: str, *, operation: str, fields: Iterable[str], records: int,
         optional: Iterable[str] = (), detail: dict | None = None, hint: str = "") -> tuple[str, ...]:
    """Gate results of ``region`` for another region ``destination``: refuse (PolicyError) when a
    required field is not granted, drop optional ones that are not, append the audit line, and
    return the fields that may go. Results for the region itself pass unaudited."""
    required = _check_fields(fields)
    extra = _check_fields(optional)
    if destination == region.name:
        return required + extra
    why = refusal(region, required, destination, operation=operation, hint=hint)
    if why:
        raise PolicyError(why)
    going = required + tuple(f for f in extra if permitted(region, f, destination))
    audit.record(region, operation=operation, fields=going, to=destination, records=records, detail=detail)
    return going


def destination_of(home: Home, region: Region, path: str | os.PathLike) -> str | None:
    """None when ``path`` (resolved: ``..`` and symlinks) lies in ``region``'s folder, ``"*"``
    when outside every region. A path in another region's folder, or the home's
    ``regions.toml``, is refused here: nothing of one region is ever written into another."""
    out = Path(path).expanduser().resolve()
    if out.is_relative_to(region.path):
        return None
    for other in home.regions.values():
        if other.name != region.name and (out.is_relative_to(other.path) or other.path.is_relative_to(out)):
            raise PolicyError(
                f"{out} is in (or holds) region {other.name!r}'s folder {other.path}; nothing of region "
                f"{region.name!r} is ever written there. Write inside {region.path} (the default) or "
                "to a folder outside every region that the policy allows"
            )
    if out == (home.path / REGIONS_FILE).resolve():
        raise PolicyError(f"{out} is the home's {REGIONS_FILE}; choose another output path")
    return ANYWHERE


def _destination(home: Home | None, region: Region, out: Path, operation: str) -> str | None:
    if home is None:
        if not out.is_relative_to(region.path):
            raise PolicyError(f"{operation}: {out} is outside region {region.name!r} ({region.path}); "
                              "pass the clipdex home so the region's policy can be checked")
        return None
    return destination_of(home, region, out)


def open_target(home: Home | None, region: Region, path: str | os.PathLike, *, operation: str,
                fields: Iterable[str], records: int, optional: Iterable[str] = (),
                kind: str = "", also: Iterable[str | os.PathLike] = ()) -> Target:
    """Gate a write of ``region``'s data to ``path`` before any byte is written there.

    Inside the region's folder: allowed, registered for erasure (``kind``: "report",
    "manifest", "export"). Outside: the policy must grant every required field to the
    destination, the audit line is appended first, and the returned target names the fields that
    may be written. ``home`` None (library use without a home) allows only the region's folder.
    ``also``: the other paths the write creates beside ``path`` (an assets folder, temporary
    names); each must go where ``path`` goes, or nothing is written."""
    required = _check_fields(fields)
    extra = _check_fields(optional)
    out = Path(path).expanduser().resolve()
    dest = _destination(home, region, out, operation)
    besides = [Path(other).expanduser().resolve() for other in also]
    for beside in besides:
        if _destination(home, region, beside, operation) != dest:
            where = "inside" if dest is None else "outside"
            raise PolicyError(f"{operation}: {beside}, written with {out}, is not {where} region "
                              f"{region.name!r}'s folder {region.path} as {out} is; choose an output "
                              "path whose folder holds both")
    if dest is None:
        register_output(region, out, kind or operation)
        return Target(out, True, None, required + extra)
    going = send(region, dest, operation=operation, fields=required, optional=extra, records=records,
                 detail={"out": str(out), **({"beside": [str(b) for b in besides]} if besides else {})},
                 hint=f", or write inside {region.path}")
    return Target(out, False, dest, going)


# ---------------------------------------------------------------------------- region outputs
def register_output(region: Region, path: Path, kind: str) -> None:
    """Remember a file or folder clipdex wrote inside ``region`` (read by ``forget``)."""
    known = {(o["path"], o["kind"]) for o in read_outputs(region)}
    if (str(path), kind) in known:
        return
    region.path.mkdir(parents=True, exist_ok=True)
    line = (json.dumps({"path": str(path), "kind": kind}) + "\n").encode("utf-8")
    fd = os.open(region.path / OUTPUTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_outputs(region: Region) -> list[dict]:
    """The registered outputs of ``region`` (missing ones included; callers check)."""
    path = region.path / OUTPUTS_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a crash: the output it named is found by the scan
        if isinstance(rec, dict) and "path" in rec and "kind" in rec:
            out.append(rec)
    return out


# ---------------------------------------------------------------------------- opaque ids
def region_secret(region: Region) -> bytes:
    """The region's random secret (created on first use, never leaves the region)."""
    path = region.path / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except ValueError as err:
        raise RegionError(f"{path} is damaged ({err}); delete it (opaque ids of earlier exports "
                          "then change)") from err
    region.path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_name(SECRET_FILE + f".{os.getpid()}.tmp")
    tmp.write_text(key.hex(), encoding="ascii")
    try:
        os.link(tmp, path)  # first writer wins; a concurrent one reads the winner's key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def opaque_id(region: Region, scope: str, clip_id: str) -> str:
    """A per-``scope`` (e.g. one export destination) id for ``clip_id``: stable within the scope
    (so an export resumes), unlinkable across scopes, resolvable only inside the region."""
    mac = hmac.new(region_secret(region), f"{scope}\0{clip_id}".encode(), hashlib.blake2b)
    return "c-" + mac.hexdigest()[:24]
