"""``clipdex verify``: does the catalog agree with the features and the indexes?

The catalog is the truth; verify checks everything derived from it, at one committed snapshot,
without the writer lock (it may run beside an ingest) unless asked to repair:

* each feature array holds at least the committed rows (``kf_end`` / ``clip_end``);
* every clip's keyframe rows lie inside the committed range and no two clips share a row;
* every committed row can be read (block by block, one zarr chunk at a time): a corrupt chunk is
  named with its array, its row range and the clips whose rows it holds;
* the embeddings of active clips are finite and unit-norm; no two active clips share a digest;
* each saved index reflects the catalog: at the catalog's version it holds exactly the active
  clips (embeddings) and their keyframes at or above the quality floor (keyframes);
* temp files of unfinished index saves and jobs that died are reported as notes, and so are the
  rows past the committed ends when the last job died (its orphans): harmless, reused or swept
  by the next writer. Arrays grow ahead of the catalog, so rows past the ends on a store whose
  last job finished are normal growth room (``preallocated_rows`` in the JSON), not a note.

``repair`` (under the writer lock) takes clips whose features are unreadable or wrong out of the
catalog (status ``damaged``; their id and digest are freed, so re-ingesting the same sources
simply adds them again), zeroes the corrupt chunks so later writes work, and rebuilds the indexes.
Nothing is dropped silently: the report lists every clip taken out and the source to re-ingest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from engine.store.region import RegionStore, span_rows

UNIT_NORM_TOLERANCE = 1e-3


@dataclass
class Problem:
    check: str  # short name of the failed check
    message: str  # what is wrong, where, and the way back
    rows: list[int] = field(default_factory=list)  # clip rows affected (active clips)
    chunks: list[tuple[str, int]] = field(default_factory=list)  # (array, chunk) unreadable
    reingest: bool = True  # whether the affected clips' sources must be ingested again

    def as_dict(self, ids: dict[int, str]) -> dict:
        return {"check": self.check, "message": self.message, "clips": [ids.get(r, str(r)) for r in self.rows],
                "chunks": [list(c) for c in self.chunks]}


@dataclass
class VerifyReport:
    region: str
    catalog_version: int = 0
    clips: int = 0
    keyframes: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    taken_out: list[dict] = field(default_factory=list)  # clip_id, source, reason, reingest
    clip_ids: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: feature array -> rows allocated past the catalog's committed end (growth ahead of use)
    preallocated: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Clean: no problem left and no clip waiting to be re-ingested."""
        return not self.problems and not any(t["reingest"] for t in self.taken_out)

    @property
    def reingest_sources(self) -> list[str]:
        """What to ingest again: the sources, a clip inside a zarr clip store as the store (its
        other clips are skipped as already ingested)."""
        return sorted({_ingestable(t["source"]) for t in self.taken_out if t["reingest"]})

    def as_dict(self) -> dict:
        return {
            "region": self.region, "ok": self.ok, "catalog_version": self.catalog_version,
            "clips": self.clips, "keyframes": self.keyframes,
            "problems": [p.as_dict(self.clip_ids) for p in self.problems],
            "notes": self.notes, "repaired": self.repaired, "taken_out": self.taken_out,
            "reingest_sources": self.reingest_sources, "preallocated_rows": self.preallocated,
            "seconds": round(self.seconds, 3),
        }


def _ingestable(source: str) -> str:
    parts = source.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower().endswith(".zarr"):
            return "/".join(parts[: i + 1])
    return source


def verify(store: RegionStore, *, repair: bool = False, wait: float = 0.0) -> VerifyReport:
    """Check the region store; with ``repair``, fix what can be fixed and check again."""
    t0 = time.perf_counter()
    report = _check(store)
    if repair and (report.problems or report.notes):
        with store.writer("clipdex verify --repair", wait=wait):
            report = _check(store)  # again, under the lock: nothing moves now
            taken_out, repaired = _repair(store, report)
            after = _check(store)
        after.taken_out, after.repaired = taken_out, repaired
        report = after
    report.seconds = time.perf_counter() - t0
    return report


# ---------------------------------------------------------------------------- checks
def _check(store: RegionStore) -> VerifyReport:
    """Every check, at one catalog snapshot: spans, digests, feature arrays, indexes, jobs."""
    from engine.index import temp_files

    snap, catalog, running, last_status = store.catalog_state()
    rep = VerifyReport(store.region.name, snap.version)
    if catalog:
        rows = np.array([r[0] for r in catalog], np.int64)
        kf_start = np.array([r[4] for r in catalog], np.int64)
        kf_count = np.array([r[5] for r in catalog], np.int64)
    else:
        rows = kf_start = kf_count = np.zeros(0, np.int64)
    active = np.array([r[6] == "active" for r in catalog], bool)
    rep.clip_ids = {int(r[0]): r[1] for r in catalog}
    rep.clips = int(active.sum())
    rep.keyframes = int(kf_count[active].sum())
    spans = (rows, kf_start, kf_count, active)
    _check_spans(rep, snap, *spans)
    _check_digests(rep, catalog, active)
    quality = _check_arrays(store, rep, snap, spans, last_status)
    _check_indexes(store, rep, snap, spans, quality)
    for t in temp_files(store):
        rep.notes.append(f"temp file of an unfinished index save: {t.name} (harmless; swept by the next save)")
    if running and not lock_held(store):
        rep.notes.append(f"{len(running)} job(s) marked running died before finishing ("
                         f"{', '.join(j for j, _ in running)}); rerun them — committed work is kept and skipped")
    return rep


def _check_spans(rep: VerifyReport, snap, rows, kf_start, kf_count, active) -> None:
    """Clip rows and keyframe spans inside the committed range, no two spans overlapping."""
    bad = (rows < 0) | (rows >= snap.clip_end) | (kf_start < 0) | (kf_count < 0) | (kf_start + kf_count > snap.kf_end)
    if bad[active].any():
        r = rows[active & bad].tolist()
        rep.problems.append(Problem("range", f"{len(r)} active clips point at rows outside the committed "
                                    f"range (clips < {snap.clip_end}, keyframes < {snap.kf_end})", r))
    order = np.argsort(kf_start, kind="stable")
    s, n = kf_start[order], kf_count[order]
    nonempty = n > 0
    s, n, ordered_rows = s[nonempty], n[nonempty], rows[order][nonempty]
    if len(s) > 1:
        clash = np.nonzero(s[1:] < s[:-1] + n[:-1])[0]
        if len(clash):
            r = sorted({int(ordered_rows[i]) for i in clash} | {int(ordered_rows[i + 1]) for i in clash})
            r = [x for x in r if active[np.searchsorted(rows, x)]]
            if r:
                rep.problems.append(Problem("overlap", f"{len(clash)} pairs of clips share keyframe rows", r))


def _check_digests(rep: VerifyReport, catalog, active) -> None:
    """Content digests unique among active clips (the same source is committed once)."""
    seen: dict[str, int] = {}
    dup_rows = []
    for (row, _cid, digest, *_), a in zip(catalog, active, strict=True):
        if a:
            if digest in seen:
                dup_rows.append(int(row))
            else:
                seen[digest] = int(row)
    if dup_rows:
        rep.problems.append(Problem("digest", f"{len(dup_rows)} active clips repeat the content digest of an "
                                    "earlier clip (the same source committed twice)", dup_rows, reingest=False))


def _check_arrays(store: RegionStore, rep: VerifyReport, snap, spans, last_status) -> np.ndarray:
    """Feature arrays: lengths against the catalog, every chunk readable, embeddings sound.
    Returns the keyframe quality column (for the index check)."""
    rows, kf_start, kf_count, active = spans
    if not store.features_path.exists():
        if snap.clip_end:
            rep.problems.append(Problem(
                "features", f"feature store {store.features_path} is missing; restore it from a backup, or "
                "`--repair` to take every clip out and re-ingest the sources",
                rows[active].tolist(), [("*", -1)]))
        layout = {}
    else:
        layout = store.array_layout()
    quality = np.zeros(snap.kf_end, np.uint8)
    ends = {"kf": snap.kf_end, "clip": snap.clip_end}
    slack: dict[str, int] = {}
    for name, (axis, chunk_rows, allocated) in layout.items():
        end = ends[axis]
        if allocated < end:
            hit = _clips_in(axis, allocated, end, rows, kf_start, kf_count) & active
            rep.problems.append(Problem(
                "length", f"feature array {name!r} has {allocated} rows but the catalog committed {end}; the "
                "clips with rows past its end cannot be read", rows[hit].tolist()))
            end = allocated
        elif allocated > end:
            slack[name] = allocated - end
        for c in range(-(-end // chunk_rows)):
            lo, hi = c * chunk_rows, min((c + 1) * chunk_rows, end)
            try:
                block = store.read_rows(name, lo, hi)
            except Exception as err:
                hit = _clips_in(axis, lo, hi, rows, kf_start, kf_count)
                cause = err.__cause__ or err
                rep.problems.append(Problem(
                    "unreadable", f"feature array {name!r} rows {lo}:{hi} (chunk {c}) cannot be read "
                    f"({type(cause).__name__}: {cause}); {int((hit & active).sum())} active clips have rows "
                    "in it", rows[hit & active].tolist(), [(name, c)]))
                continue
            if name == "keyframe_quality":
                quality[lo:hi] = block
            elif name == "clip_embeddings":
                _check_embeddings(rep, block, lo, rows, active)

    rep.preallocated = slack
    if slack and (last_status == "interrupted" or (last_status == "running" and not lock_held(store))):
        # arrays grow ahead of the catalog, so rows past its ends are normal; they are worth a
        # word only when the last job died and some of them may hold its uncommitted work
        rep.notes.append("the last job died before finishing: rows it wrote past the committed ends are "
                         "orphans, never read, overwritten by the next ingest (harmless): "
                         + ", ".join(f"{k} {v}" for k, v in slack.items()))
    return quality


def _check_indexes(store: RegionStore, rep: VerifyReport, snap, spans, quality) -> None:
    """Each index at the catalog's version holds exactly the active rows it should."""
    from engine.index import QUALITY_FLOOR, inspect_indexes

    rows, kf_start, kf_count, active = spans
    idx = inspect_indexes(store)
    kf_ids, clip_ids = _expected_index_ids(rows, kf_start, kf_count, active, quality, QUALITY_FLOOR)
    unreadable_kf = any(p.check in ("unreadable", "length", "features") for p in rep.problems)
    for name, info in idx.items():
        if info["state"] == "missing" or "interrupted" in info["state"]:
            rep.notes.append(f"{name} index: {info['state']} (rebuilt from the features on next use)")
        elif info["state"] != "ok":
            rep.problems.append(Problem("index", f"{name} index {info['path']}: {info['state']}; it is rebuilt "
                                        "automatically on next use, or now with `--repair`", reingest=False))
        elif info["catalog_version"] != snap.version:
            rep.notes.append(f"{name} index: reflects catalog version {info['catalog_version']}, the catalog is "
                             f"at {snap.version} (brought up to date automatically on next use)")
        elif not unreadable_kf:
            want = kf_ids if name == "keyframes" else clip_ids
            got = np.sort(info["ids"]) if info["ids"] is not None else None
            if got is None:  # an index kind that does not list its ids: compare counts
                if info["ntotal"] != len(want):
                    rep.problems.append(Problem(
                        "index", f"{name} index at the catalog's version holds {info['ntotal']} vectors, "
                        f"expected {len(want)}; `--repair` rebuilds it", reingest=False))
                continue
            if not np.array_equal(got, want):
                extra = np.setdiff1d(got, want).size
                missing = np.setdiff1d(want, got).size
                rep.problems.append(Problem(
                    "index", f"{name} index at the catalog's version holds {len(got)} ids, expected "
                    f"{len(want)} ({missing} missing, {extra} not active); `--repair` rebuilds it", reingest=False))


def lock_held(store: RegionStore) -> bool:
    """Whether a live process holds the writer lock, judged from the holder line it wrote (a
    probe by locking would make a starting ingest fail)."""
    import os
    import socket

    if store._lock_fd is not None:
        return False  # we hold it ourselves: no other job runs
    try:
        holder = (store.path / "writer.lock").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    if len(holder) < 4 or holder[0] != "pid" or not holder[1].isdigit():
        return False
    if holder[3] != socket.gethostname():
        return True  # another machine: cannot tell, assume alive
    try:
        os.kill(int(holder[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clips_in(axis: str, lo: int, hi: int, rows, kf_start, kf_count) -> np.ndarray:
    if axis == "clip":
        return (rows >= lo) & (rows < hi)
    return (kf_start < hi) & (kf_start + kf_count > lo) & (kf_count > 0)


def _check_embeddings(rep: VerifyReport, block: np.ndarray, lo: int, rows, active) -> None:
    sel = active & (rows >= lo) & (rows < lo + len(block))
    if not sel.any():
        return
    vecs = block[rows[sel] - lo]
    with np.errstate(all="ignore"):
        norms = np.linalg.norm(vecs.astype(np.float64), axis=1)
    bad = ~np.isfinite(vecs).all(axis=1) | (np.abs(norms - 1.0) > UNIT_NORM_TOLERANCE)
    if bad.any():
        r = rows[sel][bad].tolist()
        rep.problems.append(Problem("embedding", f"{len(r)} active clips have embeddings that are not finite "
                                    "and unit-norm (damaged feature rows)", r))


def _expected_index_ids(rows, kf_start, kf_count, active, quality, floor) -> tuple[np.ndarray, np.ndarray]:
    active = np.asarray(active, bool)
    kf = span_rows(np.asarray(kf_start)[active], np.maximum(np.asarray(kf_count)[active], 0))
    kf = kf[kf < len(quality)]
    kf = kf[quality[kf] >= floor]
    return np.sort(kf), np.sort(rows[active]).astype(np.int64)


# ---------------------------------------------------------------------------- repair
def _repair(store: RegionStore, rep: VerifyReport) -> tuple[list[dict], list[str]]:
    from engine.index import rebuild_indexes

    taken_out: list[dict] = []
    repaired: list[str] = []
    # 1. clips whose features are unreadable or wrong leave the catalog (status 'damaged')
    done: set[int] = set()
    for p in rep.problems:
        todo = sorted(set(p.rows) - done)
        if not todo:
            continue
        done.update(todo)
        for (_, src), row in zip(store.mark_damaged(todo, f"{p.check}: {p.message}"), todo, strict=True):
            taken_out.append({"clip_id": rep.clip_ids[row], "source": src, "reason": p.message,
                              "reingest": p.reingest})
        repaired.append(f"{p.check}: took {len(todo)} clips out of the catalog (status 'damaged')")
    # 2. corrupt chunks are zeroed so that later appends into them work again
    for p in rep.problems:
        for name, chunk in p.chunks:
            if chunk >= 0:
                store.reset_chunk(name, chunk)
                repaired.append(f"zeroed unreadable chunk {chunk} of {name!r}")
    # 3. jobs that died are marked so
    n = store.close_interrupted_jobs()
    if n:
        repaired.append(f"marked {n} dead job(s) interrupted")
    # 4. indexes rebuilt from the (now consistent) catalog and features
    if rep.problems or any("index" in x for x in rep.notes):
        reasons = sorted({p.check for p in rep.problems}) or ["stale or missing index"]
        rebuild_indexes(store, f"clipdex verify --repair ({', '.join(reasons)})")
        repaired.append("rebuilt the keyframe and embedding indexes")
    return taken_out, repaired
