"""Figure tables rendered from saved benchmark JSON into README.md and docs/."""

from __future__ import annotations


def render_all(write: bool = True) -> list[str]:
    """Render every marked figure table; return the files that changed (or would)."""
    return []
