"""Clip ids and region names: validated strings that can never become paths elsewhere."""

from __future__ import annotations

import re

from engine.errors import InputError, RegionError

CLIP_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


MAX_CLIP_ID_LEN = 128
_BAD_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_RULE = "a clip id is 1-128 characters from [A-Za-z0-9._-], and not '.' or '..'"


def validate_clip_id(clip_id: object) -> str:
    """Return ``clip_id`` if it is a valid clip id, else raise :class:`InputError`.

    A clip id is a name, never a path, so it can be used in file names without escaping a
    region's folder. Every message names the rule and the fix.
    """
    if not isinstance(clip_id, str):
        raise InputError(f"invalid clip id {clip_id!r}: a {type(clip_id).__name__}; {_RULE}; pass a str")
    if not clip_id:
        raise InputError(f"invalid clip id: it is empty; {_RULE}; name the clip, e.g. 'drive1__cam0'")
    if len(clip_id) > MAX_CLIP_ID_LEN:
        raise InputError(f"invalid clip id {clip_id[:40]!r}...: it has {len(clip_id)} characters; {_RULE}; "
                         "shorten it (discover() truncates with a hash suffix)")
    if clip_id in (".", ".."):
        raise InputError(f"invalid clip id {clip_id!r}: a path component; {_RULE}; rename it")
    if not CLIP_ID_RE.fullmatch(clip_id):
        bad = sorted({c for c in clip_id if _BAD_CHARS.match(c)})
        shown = clip_id if len(clip_id) <= 80 else clip_id[:77] + "..."
        raise InputError(f"invalid clip id {shown!r}: it contains {bad!r} (paths, '/', NUL and spaces are "
                         f"not ids); {_RULE}; replace them, e.g. with '_' ('/' with '__')")
    return clip_id


def validate_region_name(name: object) -> str:
    """Return ``name`` if it is a valid region name (``[a-z0-9][a-z0-9-]*``, <= 63 chars)."""
    if not isinstance(name, str) or not REGION_RE.fullmatch(name):
        raise RegionError(
            f"invalid region name {name!r}: use lowercase letters, digits and '-' "
            "(e.g. 'us-west', 'cn-east'), starting with a letter or digit"
        )
    return name
