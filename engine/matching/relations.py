"""Clip relations: verified pairs become duplicate groups, components and recording units.

Every consumer (dedup, rarity, selection, erasure, the report) builds these from the same pairs
with the same union-find, so a group in ``clipdex dedup`` is the group ``select`` and ``rare``
see. Pure functions over rows and pairs (anything with ``a``, ``b`` and ``relation``): nothing
here reads or writes a store.

- :func:`duplicate_groups`: union-find over ``duplicate`` pairs only; partial pairs never merge
  groups (a splice of two drives does not make the drives duplicates);
- :func:`elect_representatives`: one clip per group, the one selection trains on;
- :func:`relative_components`: clips linked by any verified pair (duplicate or partial);
- :func:`recording_units`: clips linked by a drive or by a relation, closed transitively.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def components(n: int, edges: Iterable[tuple[int, int]]) -> np.ndarray:
    """Per position 0..n-1, the smallest position of its connected component under ``edges``."""
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def linked_groups(edges: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """Connected components of clip rows linked by ``edges``, two clips or more each, keyed by
    their smallest row, members ascending."""
    edges = [(int(a), int(b)) for a, b in edges]
    rows = np.unique(np.asarray(edges, np.int64).reshape(-1)) if edges else np.zeros(0, np.int64)
    at = {int(r): i for i, r in enumerate(rows.tolist())}
    comp = components(len(rows), ((at[a], at[b]) for a, b in edges))
    out: dict[int, list[int]] = {}
    for i, c in enumerate(comp.tolist()):
        out.setdefault(int(rows[c]), []).append(int(rows[i]))
    return {k: v for k, v in out.items() if len(v) > 1}


def duplicate_groups(pairs: Iterable) -> dict[int, list[int]]:
    """Groups of whole duplicates (``relation == "duplicate"``), keyed by their smallest row."""
    return linked_groups((p.a, p.b) for p in pairs if p.relation == "duplicate")


def elect_representatives(groups: dict[int, list[int]], table) -> dict[int, list[int]]:
    """Re-key each group by its representative: best quality, then longest, then earliest."""
    pos = table.position()
    out = {}
    for members in groups.values():
        def key(r: int) -> tuple:
            i = pos[r]
            st = table.start_time[i]
            return (-round(float(table.quality_mean[i]), 1), -round(float(table.duration_s[i]), 1),
                    st if np.isfinite(st) else float("inf"), r)

        out[min(members, key=key)] = sorted(members)
    return out


def group_rows(groups: dict[int, list[int]]) -> list[tuple[int, int, int]]:
    """The stored form of ``groups`` (representative -> members): (clip_row, group_id,
    representative) per member, the group id being its representative."""
    return [(m, rep, rep) for rep, members in groups.items() for m in members]


def relative_components(table, pairs) -> np.ndarray:
    """Per table position, a component id shared by clips linked by any verified pair."""
    pos = table.position()
    return components(len(table), ((pos[p.a], pos[p.b]) for p in pairs if p.a in pos and p.b in pos))


def drive_codes(table) -> np.ndarray:
    """Per table position, an int code of its drive; a clip without a drive counts as a drive of
    its recording (the pieces of one recording are one drive, never each other's "others")."""
    codes: dict[str, int] = {}
    out = np.empty(len(table), np.int64)
    for i, d in enumerate(table.drive_keys()):
        out[i] = codes.setdefault(d, len(codes))
    return out


def recording_units(comp: np.ndarray, drives: np.ndarray) -> np.ndarray:
    """Per clip, its *recording unit*: clips linked by a drive or by a duplicate relation, closed
    transitively (an upload of a drive's clip, with its own upload id, belongs to that drive)."""
    first: dict[tuple[str, int], int] = {}
    edges = []
    for i in range(len(comp)):
        for key in (("c", int(comp[i])), ("d", int(drives[i]))):
            j = first.setdefault(key, i)
            if j != i:
                edges.append((i, j))
    return components(len(comp), edges)
