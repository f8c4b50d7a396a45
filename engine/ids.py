"""Clip ids and region names: validated strings that can never become paths elsewhere."""

from __future__ import annotations

import re

from .errors import InputError, RegionError

CLIP_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def validate_clip_id(clip_id: object) -> str:
    """Return ``clip_id`` if it is a valid clip id, else raise :class:`InputError`.

    A clip id is 1-128 characters from ``[A-Za-z0-9._-]``, and never ``.`` or ``..``: it is a
    name, never a path, so it can be used in file names without escaping a region's folder.
    """
    if not isinstance(clip_id, str):
        raise InputError(f"clip id must be a string, got {type(clip_id).__name__}: {clip_id!r}")
    if not CLIP_ID_RE.fullmatch(clip_id) or clip_id in (".", ".."):
        shown = clip_id if len(clip_id) <= 80 else clip_id[:77] + "..."
        raise InputError(
            f"invalid clip id {shown!r}: a clip id is 1-128 characters from A-Z a-z 0-9 . _ - "
            "(no '/', spaces, or '..'); rename the source or pass a sanitised id"
        )
    return clip_id


def validate_region_name(name: object) -> str:
    """Return ``name`` if it is a valid region name (``[a-z0-9][a-z0-9-]*``, <= 63 chars)."""
    if not isinstance(name, str) or not REGION_RE.fullmatch(name):
        raise RegionError(
            f"invalid region name {name!r}: use lowercase letters, digits and '-' "
            "(e.g. 'us-west', 'cn-east'), starting with a letter or digit"
        )
    return name
