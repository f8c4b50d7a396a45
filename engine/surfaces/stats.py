"""What ``clipdex stats`` shows: the store's counts, with pairs counted as ``clipdex dedup`` shows
them, times in UTC, and a job whose process died shown as interrupted rather than running."""

from __future__ import annotations

import time

from engine.store.region import RegionStore


def utc(epoch: float | None) -> str | None:
    """``2026-01-31 12:00:05 UTC`` for an epoch time; None stays None."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(epoch)))


def region_stats(store: RegionStore) -> dict:
    """``store.stats()`` as a user reads it.

    ``pairs`` (and ``duplicates``/``partials``) are the pairs ``clipdex dedup`` lists, not the
    stored rows (stored partials wait for the edit that explains them; see
    :func:`engine.matching.dedup.shown_pairs`). A job recorded as running while no process holds the
    region's writer lock died (killed, power loss): it is shown as ``interrupted``, as the next
    writing job will record it."""
    from engine.matching.dedup import load_dedup
    from engine.store.verify import lock_held

    pairs, _ = load_dedup(store)
    info = {}
    for key, value in store.stats().items():
        info[key] = value
        if key == "pairs":
            info["pairs"] = len(pairs)
            info["duplicates"] = sum(p.relation == "duplicate" for p in pairs)
            info["partials"] = sum(p.relation == "partial" for p in pairs)
    job = info.get("last_job")
    if job:
        job = dict(job)
        if job["status"] == "running" and not lock_held(store):
            job["status"] = "interrupted"
        job["started"], job["finished"] = utc(job["started"]), utc(job["finished"])
        info["last_job"] = job
    if info.get("index_rebuilt_at"):
        info["index_rebuilt_at"] = _local_to_utc(info["index_rebuilt_at"])
    return info


def _local_to_utc(stamp: str) -> str:
    """The index's rebuild time is stored as local ``%Y-%m-%d %H:%M:%S``; show it in UTC."""
    try:
        return utc(time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")))
    except ValueError:
        return stamp
