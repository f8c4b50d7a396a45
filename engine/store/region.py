"""The region store: ``catalog.sqlite`` (the truth) + ``features.zarr`` (append-only arrays).

This is the only module that touches SQLite or the feature arrays' zarr store.

Crash safety follows one rule: **a clip exists when, and only when, its catalog transaction has
committed.** A writer appends feature rows *past* the committed ends recorded in the catalog
(``kf_end``, ``clip_end``), then commits the clip rows and the new ends in one transaction. Rows
written by a job that died before its commit lie past the committed ends: they are orphans,
ignored by every reader and overwritten by the next writer. zarr's local store writes each chunk
to a temporary file and renames it, so a reader never sees a torn chunk, and rewriting a chunk
that also holds committed rows rewrites them with the same bytes.

One writer per region at a time: :meth:`RegionStore.writer` takes an ``flock`` on
``writer.lock`` (released by the kernel when the holder dies, so a stale lock cannot outlive its
process) and names the holder in the error when it is taken. Readers never take the lock: they
read the committed ends in one SQLite read transaction (WAL) and only rows below them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from engine.errors import LockedError, NotFoundError, StoreError
from engine.faults import fault_point
from engine.store.arrays import _ARRAYS, _LATER_ARRAYS, FeatureArrays
from engine.store.model import (  # the data model, importable from here too
    HASH_BYTES,
    N_CROP_VIEWS,
    PHASH_BYTES,
    PREVIEW_BYTES,
    PREVIEW_FRAMES,
    PREVIEW_SIZE,
    SCHEMA_VERSION,
    SPACE_NAME_RE,
    TELEMETRY_STATS_DIM,
    THUMB_SHAPE,
    ClipTable,
    FinishedRecording,
    NewClip,
    Snapshot,
    span_rows,
)
from engine.store.schema import _LATER_COLUMNS, _LATER_PAIR_COLUMNS, _RECORDED_START, _SCHEMA

if TYPE_CHECKING:  # the type only: a store or log needs a region's path and name
    from engine.sovereignty.regions import Region


class PairRow(NamedTuple):
    """A stored pair: b's t=0 lies at a's time ``offset_s``; spans in each clip's own time;
    ``rate`` (b's time to a's) and ``mirrored`` for re-timed and mirrored copies."""

    a: int
    b: int
    relation: str
    offset_s: float
    a_start: float
    a_end: float
    b_start: float
    b_end: float
    matches: int
    overlap: int
    mean_dist: float
    rate: float
    mirrored: int


class TriggerRow(NamedTuple):
    """A trigger that fired on a clip, over [t_start, t_end] of the clip's time."""

    clip_row: int
    name: str
    t_start: float
    t_end: float
    value: float


class CatalogClip(NamedTuple):
    """A catalog row as the integrity check reads it (any status)."""

    row: int
    clip_id: str
    digest: str
    source: str
    kf_start: int
    kf_count: int
    status: str


#: catalog rows fetched at once when the clip table is read: the rows of a batch are tuples
#: (about 0.5 kB a clip) until they are spread over the table's columns
CLIP_TABLE_BATCH = 65536

__all__ = ["RegionStore", "ClipTable", "FinishedRecording", "HASH_BYTES", "N_CROP_VIEWS", "NewClip", "PHASH_BYTES", "PREVIEW_BYTES", "PREVIEW_FRAMES", "PREVIEW_SIZE", "SCHEMA_VERSION", "Snapshot", "SPACE_NAME_RE", "span_rows", "TELEMETRY_STATS_DIM", "THUMB_SHAPE"]


class RegionStore(FeatureArrays):
    """A region's store. Open with :meth:`open`; writes need :meth:`writer`."""

    def __init__(self, region: Region, embedding_dim: int = 128):
        self.region = region
        self.path = region.path
        self.catalog_path = self.path / "catalog.sqlite"
        self.features_path = self.path / "features.zarr"
        self.index_dir = self.path / "index"
        self.embedding_dim = embedding_dim
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._features = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, region: Region, *, create: bool = False) -> RegionStore:
        store = cls(region)
        if not store.catalog_path.exists():
            if not create:
                raise StoreError(
                    f"region {region.name!r} has no store at {store.path}; ingest clips first "
                    f"(`clipdex ingest SOURCE --region {region.name}`)"
                )
            store.path.mkdir(parents=True, exist_ok=True)
        store._connect()
        return store

    def _connect(self) -> None:
        try:
            if self._writable():
                db = sqlite3.connect(self.catalog_path, timeout=30.0, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
                db.executescript(_SCHEMA)
                have = {r[1] for r in db.execute("PRAGMA table_info(clips)")}
                for name, decl in _LATER_COLUMNS:
                    if name not in have:
                        with contextlib.suppress(sqlite3.OperationalError):  # a concurrent open
                            db.execute(f"ALTER TABLE clips ADD COLUMN {name} {decl}")
                db.execute("CREATE INDEX IF NOT EXISTS clips_recording ON clips(recording_id)")
                have = {r[1] for r in db.execute("PRAGMA table_info(pairs)")}
                for name, decl in _LATER_PAIR_COLUMNS:
                    if name not in have:
                        with contextlib.suppress(sqlite3.OperationalError):  # a concurrent open
                            db.execute(f"ALTER TABLE pairs ADD COLUMN {name} {decl}")
            else:  # read-only mount or permissions: nobody can write it, so it is immutable to us
                uri = self.catalog_path.resolve().as_uri() + "?immutable=1"
                db = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"catalog {self.catalog_path} cannot be opened ({err}); if the disk is read-only "
                "or full, fix that; if the file is corrupt, restore it from a backup"
            ) from err
        self._db = db
        meta = self._meta()
        if "schema_version" not in meta:
            with self.transaction():
                self._set_meta(schema_version=SCHEMA_VERSION, catalog_version=0, kf_end=0,
                               clip_end=0, embedding_dim=self.embedding_dim,
                               created_at=time.time())
            meta = self._meta()
        if int(meta["schema_version"]) > SCHEMA_VERSION:
            raise StoreError(
                f"catalog {self.catalog_path} has schema version {meta['schema_version']}, newer "
                f"than this clipdex understands ({SCHEMA_VERSION}); upgrade clipdex"
            )
        self.embedding_dim = int(meta.get("embedding_dim", self.embedding_dim))

    def _writable(self) -> bool:
        return os.access(self.path, os.W_OK)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._release_lock()

    def __enter__(self) -> RegionStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("store is closed")
        return self._db

    # ------------------------------------------------------------------ meta / snapshots
    def _meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def _set_meta(self, **values) -> None:
        self.db.executemany(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, **values) -> None:
        with self.transaction():
            self._set_meta(**values)

    def snapshot(self) -> Snapshot:
        m = self._meta()
        return Snapshot(int(m["catalog_version"]), int(m["kf_end"]), int(m["clip_end"]))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    # ------------------------------------------------------------------ writer lock
    @contextlib.contextmanager
    def writer(self, command: str = "", wait: float = 0.0) -> Iterator[RegionStore]:
        """Hold the region's single-writer lock for the duration of the block (re-entrant).

        ``wait`` seconds: how long to wait for another writer to finish before refusing."""
        self._acquire_lock(command, wait)
        self._lock_depth += 1
        try:
            yield self
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                self._release_lock()

    def _acquire_lock(self, command: str, wait: float = 0.0) -> None:
        if self._lock_fd is not None:
            return
        lock_path = self.path / "writer.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise StoreError(
                f"cannot write to region {self.region.name!r} at {self.path} ({err}); writing needs a "
                "writable store: remount it read-write or fix its permissions (reads still work)"
            ) from err
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                    continue
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown process"
                os.close(fd)
                waited = f" (waited {wait:g} s)" if wait > 0 else ""
                raise LockedError(
                    f"region {self.region.name!r} is being written by another job ({holder}){waited}; "
                    "wait for it to finish or rerun with --wait SECONDS — the lock is released "
                    "automatically when that process exits"
                ) from None
        info = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        if command:
            info += f": {command}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _require_writer(self) -> None:
        if self._lock_fd is None:
            raise StoreError("internal: write without the region writer lock (use store.writer())")


    # ------------------------------------------------------------------ ingest commit
    def known_digests(self, digests: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Map each digest already in the catalog to (clip_id, status)."""
        out: dict[str, tuple[str, str]] = {}
        for i in range(0, len(digests), 500):
            chunk = list(digests[i : i + 500])
            q = ",".join("?" * len(chunk))
            for d, cid, st in self.db.execute(
                f"SELECT digest, clip_id, status FROM clips WHERE digest IN ({q})", chunk
            ):
                out[d] = (cid, st)
        return out

    def has_clip_id(self, clip_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM clips WHERE clip_id=?", (clip_id,)).fetchone() is not None

    def append_clips(self, clips: Sequence[NewClip], job_id: str = "",
                     finished: Sequence[FinishedRecording] = ()) -> list[int]:
        """Write features past the committed ends, then commit the clips (and mark the recordings
        in ``finished`` as wholly ingested, in the same transaction). Returns clip rows."""
        self._require_writer()
        if not clips:
            if finished:
                with self.transaction() as db:
                    self._finish_recordings(db, finished, job_id)
            return []
        snap = self.snapshot()
        counts = [len(c.keyframe_hashes) for c in clips]
        kf_start = snap.kf_end + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        kf_total = int(sum(counts))
        rows = list(range(snap.clip_end, snap.clip_end + len(clips)))
        emb = np.stack([c.embedding for c in clips]).astype(np.float32, copy=False)
        if emb.shape[1] != self.embedding_dim:
            raise StoreError(
                f"embedding dimension {emb.shape[1]} does not match the region's {self.embedding_dim}"
            )
        try:  # rows past the committed ends: a failure here leaves only orphans
            for name, start, values in (
                ("keyframe_hashes", snap.kf_end, np.concatenate([c.keyframe_hashes for c in clips])),
                ("keyframe_phash", snap.kf_end, np.concatenate([c.keyframe_phash for c in clips])),
                ("keyframe_quality", snap.kf_end, np.concatenate([c.keyframe_quality for c in clips])),
                ("keyframe_times", snap.kf_end, np.concatenate([c.keyframe_times for c in clips])),
                ("clip_embeddings", snap.clip_end, emb),
                ("thumbnails", snap.clip_end, np.stack([c.thumbnail for c in clips])),
                ("telemetry_stats", snap.clip_end, np.stack([
                    np.full(TELEMETRY_STATS_DIM, np.nan, np.float32) if c.telemetry_stats is None
                    else np.asarray(c.telemetry_stats, np.float32).reshape(TELEMETRY_STATS_DIM)
                    for c in clips])),
                ("preview_jpeg", snap.clip_end, np.stack([
                    np.zeros(PREVIEW_BYTES, np.uint8) if c.preview is None else c.preview for c in clips])),
                ("preview_times", snap.clip_end, np.stack([
                    np.full(PREVIEW_FRAMES, np.nan, np.float32) if c.preview_times is None
                    else np.asarray(c.preview_times, np.float32) for c in clips])),
                ("keyframe_view_phash", snap.kf_end, np.concatenate([
                    np.zeros((len(c.keyframe_hashes), N_CROP_VIEWS, PHASH_BYTES), np.uint8)
                    if c.view_phash is None else c.view_phash for c in clips])),
                ("keyframe_mirror_phash", snap.kf_end, np.concatenate([
                    np.zeros((len(c.keyframe_hashes), PHASH_BYTES), np.uint8)
                    if c.mirror_phash is None else c.mirror_phash for c in clips])),
            ):
                fault_point("feature_write")
                self._write_rows(name, start, values)
        except OSError as err:
            raise StoreError(
                f"cannot write features to {self.features_path} ({err}); nothing of this batch of "
                f"{len(clips)} clips was committed and every earlier commit is intact. Free disk space "
                "(or fix the mount), then rerun the same command: committed sources are skipped"
            ) from err
        now = time.time()
        from kernels import EMBEDDING_VERSION

        try:
            return self._commit_clips(clips, snap, rows, kf_start, counts, kf_total, now, job_id,
                                      EMBEDDING_VERSION, finished)
        except sqlite3.Error as err:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise StoreError(
                f"cannot commit {len(clips)} clips to {self.catalog_path} ({err}); the batch was rolled "
                "back and every earlier commit is intact. Free disk space (or fix the mount), then rerun "
                "the same command: committed sources are skipped"
            ) from err

    def _finish_recordings(self, db, finished: Sequence[FinishedRecording], job_id: str) -> None:
        db.executemany(
            "INSERT INTO recordings(recording_id, source, duration_s, clip_seconds, job_id, finished_at)"
            " VALUES(?,?,?,?,?,?) ON CONFLICT(recording_id) DO UPDATE SET source=excluded.source,"
            " duration_s=excluded.duration_s, clip_seconds=excluded.clip_seconds,"
            " job_id=excluded.job_id, finished_at=excluded.finished_at",
            [(f.recording_id, f.source, _num(f.duration_s), _num(f.clip_seconds), job_id, time.time())
             for f in finished])

    def finished_sources(self) -> dict[str, dict[str, float]]:
        """source path -> {recording id: clip_seconds (NaN: whole)} of wholly ingested recordings
        that still have active clips."""
        out: dict[str, dict[str, float]] = {}
        for rid, source, split in self.db.execute(
                "SELECT recording_id, source, clip_seconds FROM recordings WHERE recording_id IN"
                " (SELECT recording_id FROM clips WHERE status='active')"):
            out.setdefault(source, {})[rid] = np.nan if split is None else float(split)
        return out

    def finished_recording(self, recording_id: str) -> FinishedRecording | None:
        """The recording as last wholly ingested (its split), or None if it never was."""
        r = self.db.execute("SELECT recording_id, source, duration_s, clip_seconds FROM recordings"
                            " WHERE recording_id=?", (recording_id,)).fetchone()
        if r is None:
            return None
        return FinishedRecording(r[0], r[1], np.nan if r[2] is None else float(r[2]),
                                 np.nan if r[3] is None else float(r[3]))

    def _commit_clips(self, clips, snap, rows, kf_start, counts, kf_total, now, job_id,
                      EMBEDDING_VERSION, finished=()) -> list[int]:  # noqa: N803
        with self.transaction() as db:
            fault_point("commit")
            cur = self.snapshot()
            if cur != snap:  # cannot happen under the writer lock; refuse rather than corrupt
                raise StoreError("catalog changed during a locked write; aborting this batch")
            db.executemany(
                "INSERT INTO clips(row, clip_id, digest, source, source_offset_s, duration_s, fps,"
                " drive_id, vehicle_id, start_time, kf_start, kf_count, quality_mean, width, height,"
                " embedding_version, status, ingested_at, job_id, meta, recording_id, camera)"
                " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?, 'active', ?,?,?,?,?)",
                [
                    (
                        row, c.clip_id, c.digest, c.source, float(c.source_offset_s), float(c.duration_s),
                        _num(c.fps), c.drive_id, c.vehicle_id, _num(c.start_time), int(ks), n,
                        float(np.mean(c.keyframe_quality)) if n else 0.0, int(c.width), int(c.height),
                        EMBEDDING_VERSION, now, job_id, json.dumps(c.meta or {}),
                        c.recording_id or c.digest, c.camera,
                    )
                    for row, c, ks, n in zip(rows, clips, kf_start, counts, strict=True)
                ],
            )
            db.executemany(
                "INSERT INTO triggers(clip_row, name, t_start, t_end, value) VALUES(?,?,?,?,?)",
                [(row, *t) for row, c in zip(rows, clips, strict=True) for t in c.triggers],
            )
            if finished:
                self._finish_recordings(db, finished, job_id)
            self._set_meta(
                kf_end=snap.kf_end + kf_total,
                clip_end=snap.clip_end + len(clips),
                catalog_version=snap.version + 1,
            )
            fault_point("commit")
        fault_point("committed")
        return rows

    # ------------------------------------------------------------------ reading
    def clip_table(self, *, include_forgotten: bool = False) -> ClipTable:
        """All committed clips as column arrays (one SQL read, fetched in batches of
        :data:`CLIP_TABLE_BATCH` rows; consistent snapshot)."""
        where = "" if include_forgotten else "WHERE status='active'"
        self.db.execute("BEGIN")
        try:
            snap = self.snapshot()
            later = self._later_columns()
            cur = self.db.execute(
                f"SELECT row, clip_id, drive_id, vehicle_id, {_RECORDED_START}, duration_s, kf_start,"
                f" kf_count, quality_mean, source, source_offset_s, {later['recording_id']}, {later['camera']}"
                f" FROM clips {where} ORDER BY row"
            )
            table = ClipTable.from_batches(iter(lambda: cur.fetchmany(CLIP_TABLE_BATCH), []), snap)
        finally:
            self.db.execute("COMMIT")
        return table

    def _later_columns(self) -> dict[str, str]:
        """SQL expression per later column: the column, or its default on an older read-only
        catalog. A clip without a recording id is a recording of its own source path."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(clips)")}
        out = {name: (name if name in have else "''") for name, _ in _LATER_COLUMNS}
        if "recording_id" in have:
            out["recording_id"] = "CASE WHEN recording_id='' THEN 'src:' || source ELSE recording_id END"
        else:
            out["recording_id"] = "'src:' || source"
        return out

    def update_clip_metadata(self, updates: Sequence[tuple[int, dict]]) -> int:
        """Set catalog fields of committed clips without touching their features: ``updates`` is
        ``(clip row, {field: value})`` with fields ``drive_id``, ``vehicle_id``, ``camera``,
        ``start_time`` and ``provenance`` / ``tags`` (merged into the clip's meta). Returns the
        number of clips changed; bumps the catalog version so cached results are recomputed."""
        self._require_writer()
        plain = ("drive_id", "vehicle_id", "camera", "start_time")
        changed = 0
        with self.transaction() as db:
            for row, fields in updates:
                got = db.execute("SELECT meta FROM clips WHERE row=?", (int(row),)).fetchone()
                if got is None:
                    continue
                sets = {k: (_num(v) if k == "start_time" else str(v)) for k, v in fields.items()
                        if k in plain}
                meta = json.loads(got[0] or "{}")
                for key in ("provenance", "tags"):
                    if key in fields:
                        meta[key] = {**meta.get(key, {}), **fields[key]}
                sets["meta"] = json.dumps(meta)
                db.execute(f"UPDATE clips SET {', '.join(f'{k}=?' for k in sets)} WHERE row=?",
                           [*sets.values(), int(row)])
                changed += 1
            if changed:
                self._set_meta(catalog_version=self.snapshot().version + 1, rarity_version=-1)
        return changed

    def clip_records(self, rows: Sequence[int] | None = None, *, recording: str | None = None,
                     drive: str | None = None,
                     start_from: Sequence[str] | None = None) -> list[dict]:
        """Active clips' catalog fields as dicts (id, recording, span, drive, vehicle, camera,
        start time, source, meta), ordered by row; ``rows``, ``recording``, ``drive`` or
        ``start_from`` (the start time's provenance, filtered in SQL) limit them."""
        later = self._later_columns()
        sql = ("SELECT * FROM (SELECT row, clip_id, source, source_offset_s, duration_s, drive_id,"
               f" vehicle_id, {later['camera']} AS camera, start_time,"
               f" {later['recording_id']} AS recording_id, meta FROM clips WHERE status='active')"
               " WHERE 1")
        args: list = []
        if recording is not None:
            sql += " AND recording_id=?"
            args.append(recording)
        if drive is not None:
            sql += " AND drive_id=?"
            args.append(drive)
        if start_from is not None:
            sql += (" AND json_extract(meta, '$.provenance.start_time') IN"
                    f" ({','.join('?' * len(start_from))})")
            args += list(start_from)
        if rows is not None:
            rows = [int(r) for r in rows]
            if not rows:
                return []
            sql += f" AND row IN ({','.join('?' * len(rows))})"
            args += rows
        keys = ("row", "clip_id", "source", "source_offset_s", "duration_s", "drive_id",
                "vehicle_id", "camera", "start_time", "recording_id", "meta")
        out = []
        for r in self.db.execute(sql + " ORDER BY row", args):
            d = dict(zip(keys, r, strict=True))
            d["meta"] = json.loads(d["meta"] or "{}")
            out.append(d)
        return out

    def rows_with_trigger(self, name: str) -> set[int]:
        """Rows of the clips on which trigger ``name`` fired (any status)."""
        return {r for (r,) in self.db.execute(
            "SELECT DISTINCT clip_row FROM triggers WHERE name=?", (name,))}

    def active_rows(self, *, vehicle: str | None = None, after: float | None = None,
                    before: float | None = None, trigger: str | None = None,
                    lo: int | None = None, hi: int | None = None) -> list[int]:
        """Active clips' rows, ascending, limited by vehicle, start time in [after, before),
        a fired trigger and a row range [lo, hi)."""
        sql, args = "SELECT row FROM clips WHERE status='active'", []
        for cond, value in ((" AND vehicle_id=?", vehicle), (" AND start_time>=?", after),
                            (" AND start_time<?", before), (" AND row>=?", lo), (" AND row<?", hi),
                            (" AND row IN (SELECT clip_row FROM triggers WHERE name=?)", trigger)):
            if value is not None:
                sql += cond
                args.append(value)
        return [r for (r,) in self.db.execute(sql + " ORDER BY row", args)]

    def keyframe_spans(self, rows: Sequence[int] | None = None, *, lo: int | None = None,
                       hi: int | None = None) -> list[tuple[int, int, int]]:
        """(row, kf_start, kf_count) of the given clip ``rows`` (any status), or of the active
        clips with row in [lo, hi), ordered by row."""
        if rows is not None:
            rows = [int(r) for r in rows]
            out: list[tuple[int, int, int]] = []
            for i in range(0, len(rows), 500):
                chunk = rows[i : i + 500]
                out += self.db.execute(
                    "SELECT row, kf_start, kf_count FROM clips WHERE row IN "
                    f"({','.join('?' * len(chunk))})", chunk).fetchall()
            return sorted((int(r), int(s), int(n)) for r, s, n in out)
        return [(int(r), int(s), int(n)) for r, s, n in self.db.execute(
            "SELECT row, kf_start, kf_count FROM clips WHERE status='active' AND row>=? AND row<?"
            " ORDER BY row", (0 if lo is None else lo, 2**62 if hi is None else hi))]

    def rows_of_ids(self, clip_ids: Sequence[str]) -> dict[str, int]:
        """clip id -> row for the ids present in the catalog (any status)."""
        ids = list(clip_ids)
        out: dict[str, int] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            out.update({cid: int(r) for r, cid in self.db.execute(
                f"SELECT row, clip_id FROM clips WHERE clip_id IN ({','.join('?' * len(chunk))})",
                chunk)})
        return out

    def clip_entry(self, clip_id: str) -> dict | None:
        """One clip's catalog entry whatever its status (None: not in the catalog): row,
        status, source, offset, duration, fps, drive_id, kf_start, kf_count, digest."""
        row = self.db.execute(
            "SELECT row, status, source, source_offset_s, duration_s, fps, drive_id, kf_start,"
            " kf_count, digest FROM clips WHERE clip_id=?", (clip_id,)).fetchone()
        if row is None:
            return None
        keys = ("row", "status", "source", "offset", "duration", "fps", "drive_id", "kf_start",
                "kf_count", "digest")
        return dict(zip(keys, row, strict=True))

    def forgotten_count(self) -> int:
        """Clips no longer active (forgotten or damaged)."""
        return self.db.execute("SELECT COUNT(*) FROM clips WHERE status!='active'").fetchone()[0]

    def recent_jobs(self, n: int = 5) -> list[tuple[str, str, float, float | None, str]]:
        """The last ``n`` jobs, newest first: (kind, status, started, finished, summary JSON)."""
        return self.db.execute("SELECT kind, status, started, finished, summary FROM jobs"
                               " ORDER BY started DESC LIMIT ?", (int(n),)).fetchall()

    def catalog_state(self) -> tuple[Snapshot, list[CatalogClip], list[tuple[str, str]], str | None]:
        """In one read transaction: the snapshot, every clip (any status) as (row, clip_id,
        digest, source, kf_start, kf_count, status), the running jobs (job_id, kind) and the
        status of the last job (None: no job yet)."""
        db = self.db
        db.execute("BEGIN")
        try:
            snap = self.snapshot()
            rows = [CatalogClip(*r) for r in db.execute(
                "SELECT row, clip_id, digest, source, kf_start, kf_count, status FROM clips ORDER BY row")]
            running = db.execute("SELECT job_id, kind FROM jobs WHERE status='running'").fetchall()
            last = db.execute("SELECT status FROM jobs ORDER BY started DESC LIMIT 1").fetchone()
        finally:
            db.execute("COMMIT")
        return snap, rows, running, last[0] if last else None

    def clip_row(self, clip_id: str) -> int:
        r = self.db.execute("SELECT row, status FROM clips WHERE clip_id=?", (clip_id,)).fetchone()
        if r is None or r[1] != "active":
            raise NotFoundError(
                f"clip {clip_id!r} is not in region {self.region.name!r}; list clips with "
                f"`clipdex clips --region {self.region.name}` or check the id"
            )
        return int(r[0])

    def keyframes(self, snap: Snapshot) -> dict[str, np.ndarray]:
        return {
            "hashes": self.read_rows("keyframe_hashes", 0, snap.kf_end),
            "quality": self.read_rows("keyframe_quality", 0, snap.kf_end),
            "times": self.read_rows("keyframe_times", 0, snap.kf_end),
        }

    def embeddings(self, snap: Snapshot) -> np.ndarray:
        """Clip embeddings per row; refuses a region whose active clips were embedded by another
        embedding version (:meth:`check_embedding_version`)."""
        self.check_embedding_version()
        return self.read_rows("clip_embeddings", 0, snap.clip_end)

    def check_embedding_version(self) -> None:
        """Raise :class:`StoreError` when an active clip's embedding comes from another version
        than this clipdex's: vectors of different versions are never compared. The store keeps one
        thumbnail per clip and no keyframe descriptors, so it cannot re-embed without decoding:
        the sources are ingested again."""
        from kernels import EMBEDDING_VERSION

        version = self.snapshot().version
        if getattr(self, "_embedding_version_checked", None) == version:
            return  # checked at this catalog version: one scan per command, not per query
        found = self.db.execute(
            "SELECT embedding_version, COUNT(*) FROM clips WHERE status='active' AND embedding_version != ?"
            " GROUP BY embedding_version", (EMBEDDING_VERSION,)).fetchall()
        if not found:
            self._embedding_version_checked = version
        else:
            olds = ", ".join(f"{n} clip(s) of {v}" for v, n in found)
            raise StoreError(
                f"{self.path.name} holds {olds}, not {EMBEDDING_VERSION} (this clipdex): embeddings of "
                "different versions are never compared, and the store cannot re-embed without "
                "decoding; forget those clips (clipdex forget) and ingest their sources again with "
                "--force, or ingest the sources into a new region")

    def telemetry_stats(self, snap: Snapshot) -> np.ndarray:
        """``float32[clip_end, 16]`` telemetry statistics per clip row; NaN rows for clips without
        telemetry, and for every clip of a read-only store written before clipdex kept them."""
        if not self._has_array("telemetry_stats"):
            return np.full((snap.clip_end, TELEMETRY_STATS_DIM), np.nan, np.float32)
        return self.read_rows("telemetry_stats", 0, snap.clip_end)

    def previews(self, rows: Sequence[int]) -> list[tuple[bytes | None, np.ndarray]]:
        """Per clip row (committed only): (its keyframe-preview JPEG strip, or None when it has
        none: ingested before clipdex kept previews, or erased; the frames' times, NaN-padded)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0 or not self._has_array("preview_jpeg"):
            return [(None, np.full(PREVIEW_FRAMES, np.nan, np.float32)) for _ in rows]
        uniq, inverse = np.unique(rows, return_inverse=True)
        slots = self.read_rows_at("preview_jpeg", uniq)
        times = self.read_rows_at("preview_times", uniq) if self._has_array("preview_times") \
            else np.full((len(uniq), PREVIEW_FRAMES), np.nan, np.float32)
        out: list = []
        for u in inverse.tolist():
            n = int.from_bytes(slots[u, :4].tobytes(), "little")
            out.append((slots[u, 4:4 + n].tobytes() if 0 < n <= PREVIEW_BYTES - 4 else None, times[u]))
        return out

    def clips_with_older_triggers(self, version: int) -> int:
        """Active clips whose triggers were computed before trigger version ``version`` (clips
        ingested before versions were recorded count as version 0)."""
        (n,) = self.db.execute(
            "SELECT COUNT(*) FROM clips WHERE status='active'"
            " AND COALESCE(json_extract(meta, '$.triggers_version'), 0) < ?", (int(version),)).fetchone()
        return int(n)

    def triggers(self, rows: Sequence[int] | None = None) -> list[TriggerRow]:
        """Triggers of the given clip rows (all rows when None)."""
        if rows is None:
            return [TriggerRow(*r) for r in self.db.execute(
                "SELECT clip_row, name, t_start, t_end, value FROM triggers")]
        out = []
        rows = list(rows)
        for i in range(0, len(rows), 500):
            chunk = rows[i : i + 500]
            out += [TriggerRow(*r) for r in self.db.execute(
                "SELECT clip_row, name, t_start, t_end, value FROM triggers WHERE clip_row IN "
                f"({','.join('?' * len(chunk))})", chunk)]
        return out

    # ------------------------------------------------------------------ dedup / rarity results
    def replace_dedup(self, pairs: Sequence[tuple], groups: Sequence[tuple[int, int, int]],
                      *, incremental: bool, clip_end: int) -> None:
        """Store verified pairs and the group table (rows: clip_row, group_id, representative)."""
        self._require_writer()
        with self.transaction() as db:
            if not incremental:
                db.execute("DELETE FROM pairs")
            db.executemany(
                "INSERT OR REPLACE INTO pairs(a, b, relation, offset_s, a_start, a_end, b_start, b_end,"
                " matches, overlap, mean_dist, rate, mirrored) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(*p, *(1.0, 0)[len(p) - 11:]) for p in pairs],  # older rows: rate 1, not mirrored
            )
            db.execute("DELETE FROM groups")
            db.executemany("INSERT INTO groups(clip_row, group_id, representative) VALUES(?,?,?)", groups)
            self._set_meta(dedup_clip_end=clip_end, dedup_at=time.time(), rarity_version=-1)

    def pairs(self) -> list[PairRow]:
        """Stored pairs of active clips: (a, b, relation, offset_s, a_start, a_end, b_start, b_end,
        matches, overlap, mean_dist, rate, mirrored); on a read-only catalog that predates the
        last two, their defaults (rate 1, not mirrored)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(pairs)")}
        later = ", ".join(name if name in have else decl.rsplit(" ", 1)[1] for name, decl in _LATER_PAIR_COLUMNS)
        return [PairRow(*r) for r in self.db.execute(
            "SELECT a, b, relation, offset_s, a_start, a_end, b_start, b_end, matches, overlap, mean_dist,"
            f" {later} FROM pairs p WHERE EXISTS (SELECT 1 FROM clips c WHERE c.row=p.a AND c.status='active')"
            " AND EXISTS (SELECT 1 FROM clips c WHERE c.row=p.b AND c.status='active') ORDER BY a, b")]

    def pairs_of(self, row: int) -> list[tuple]:
        """Stored pairs that involve clip ``row``: (a, b, relation, offset_s, a_start, a_end,
        b_start, b_end)."""
        return self.db.execute("SELECT a, b, relation, offset_s, a_start, a_end, b_start, b_end"
                               " FROM pairs WHERE a=? OR b=?", (row, row)).fetchall()

    def replace_groups(self, groups: Sequence[tuple[int, int, int]]) -> None:
        """Replace the group table (rows: clip_row, group_id, representative), pairs kept."""
        self._require_writer()
        with self.transaction() as db:
            db.execute("DELETE FROM groups")
            db.executemany("INSERT INTO groups(clip_row, group_id, representative) VALUES(?,?,?)",
                           groups)
            self._set_meta(groups_at=time.time())

    def groups(self) -> dict[int, tuple[int, int]]:
        """clip_row -> (group_id, representative row) for clips in a duplicate group."""
        return {r: (g, rep) for r, g, rep in self.db.execute("SELECT clip_row, group_id, representative FROM groups")}

    def replace_rarity(self, rows: np.ndarray, scores: np.ndarray, percentiles: np.ndarray,
                       *, space: str | None = None, k: int | None = None) -> None:
        """Store rarity per clip (of the default embeddings, or of an imported ``space``),
        computed at the current catalog version with ``k`` neighbours (None: scores from
        elsewhere, valid for any k), under the writer lock."""
        self._require_writer()
        self._write_rarity(rows, scores, percentiles, self.snapshot().version, space, k)

    def cache_rarity(self, rows: np.ndarray, scores: np.ndarray, percentiles: np.ndarray,
                     version: int, *, space: str | None = None, k: int | str | None = None) -> bool:
        """Cache rarity scores computed at catalog ``version``, *without* the writer lock.

        The scores are derived data in one SQLite transaction, which SQLite serialises with the
        writers' own transactions, so a reader computing rarity (``clipdex rare``, ``select``,
        a query) never holds the region's writer lock and never makes an ingest that starts at
        that moment fail. Stamped with the version they were computed at, so a commit in
        between leaves them stale, not wrongly current; stamped with ``k`` and the method (``engine.scenes.rarity.rarity_stamp``) too, so scores of
        ``clipdex rare --k 3`` are not read back as the default k's. False when the catalog cannot be
        written now (read-only mount, busy past SQLite's timeout): the caller just goes on."""
        try:
            self._write_rarity(rows, scores, percentiles, int(version), space, k)
            return True
        except sqlite3.OperationalError:
            return False

    def _write_rarity(self, rows, scores, percentiles, version: int, space: str | None,
                      k: int | str | None = None) -> None:
        stamp = "" if k is None else str(k)
        if space is not None:
            with self.transaction() as db:
                db.execute("DELETE FROM space_rarity WHERE space=?", (space,))
                db.executemany(
                    "INSERT INTO space_rarity(space, clip_row, score, percentile) VALUES(?,?,?,?)",
                    ((space, r, s, p) for r, s, p in zip(rows.tolist(), scores.tolist(), percentiles.tolist(),
                                                         strict=True)),
                )
                self._set_meta(**{f"rarity_version:{space}": version, f"rarity_k:{space}": stamp})
            return
        with self.transaction() as db:
            db.execute("DELETE FROM rarity")
            db.executemany(
                "INSERT INTO rarity(clip_row, score, percentile) VALUES(?,?,?)",
                zip(rows.tolist(), scores.tolist(), percentiles.tolist(), strict=True),
            )
            self._set_meta(rarity_version=version, rarity_k=stamp, rarity_at=time.time())

    def rarity(self, space: str | None = None) -> dict[int, tuple[float, float]]:
        if space is not None:
            return {r: (s, p) for r, s, p in self.db.execute(
                "SELECT clip_row, score, percentile FROM space_rarity WHERE space=?", (space,))}
        return {r: (s, p) for r, s, p in self.db.execute("SELECT clip_row, score, percentile FROM rarity")}

    # ------------------------------------------------------------------ imported embedding spaces
    def import_space(self, name: str, clip_rows: np.ndarray, vectors: np.ndarray, source: str = "") -> int:
        """Store an imported embedding space (replacing any earlier import of that name): the
        vectors go to a new array ``features.zarr/spaces/NAME/vVERSION``, then one catalog
        transaction switches the space to it; the older array is removed after the commit.
        Callers validate (engine.scenes.spaces). Returns the new version."""
        self._require_writer()
        if not SPACE_NAME_RE.fullmatch(name):
            raise StoreError(f"space name {name!r} is invalid; use 1-64 of [A-Za-z0-9._-]")
        prev = self.db.execute("SELECT version FROM spaces WHERE name=?", (name,)).fetchone()
        version = int(prev[0]) + 1 if prev else 1
        n, d = vectors.shape
        group = self.features.require_group("spaces").require_group(name)
        arr = group.create_array(f"v{version}", shape=(n, d), chunks=(max(1, min(n, 65536)), d),
                                 dtype="float32", fill_value=0, overwrite=True)
        if n:
            arr[:] = vectors
        with self.transaction() as db:
            db.execute("DELETE FROM space_vectors WHERE space=?", (name,))
            db.execute("DELETE FROM space_rarity WHERE space=?", (name,))
            db.executemany("INSERT INTO space_vectors(space, clip_row, vec_row) VALUES(?,?,?)",
                           ((name, int(r), i) for i, r in enumerate(clip_rows.tolist())))
            db.execute(
                "INSERT INTO spaces(name, dim, count, version, source, imported_at) VALUES(?,?,?,?,?,?)"
                " ON CONFLICT(name) DO UPDATE SET dim=excluded.dim, count=excluded.count,"
                " version=excluded.version, source=excluded.source, imported_at=excluded.imported_at",
                (name, d, n, version, source, time.time()))
        for old in list(group.array_keys()):
            if old != f"v{version}":
                with contextlib.suppress(Exception):
                    del group[old]
        return version

    def spaces(self) -> list[dict]:
        cols = ("name", "dim", "count", "version", "source", "imported_at")
        return [dict(zip(cols, r, strict=True)) for r in self.db.execute(
            f"SELECT {', '.join(cols)} FROM spaces ORDER BY name")]

    def space_info(self, name: str) -> dict:
        for info in self.spaces():
            if info["name"] == name:
                return info
        known = ", ".join(i["name"] for i in self.spaces()) or "none"
        raise NotFoundError(
            f"embedding space {name!r} is not in region {self.region.name!r} (known: {known}); import "
            f"it with `clipdex embeddings import --region {self.region.name} --name {name} FILE.npy --ids IDS`"
        )

    def space_vector(self, name: str, clip_row: int) -> np.ndarray | None:
        """One clip's vector in a space (None when it has none), reading only its chunk."""
        info = self.space_info(name)
        r = self.db.execute("SELECT vec_row FROM space_vectors WHERE space=? AND clip_row=?",
                            (name, int(clip_row))).fetchone()
        if r is None:
            return None
        arr = self.features[f"spaces/{name}/v{info['version']}"]
        return np.ascontiguousarray(np.asarray(arr[int(r[0]):int(r[0]) + 1])[0], dtype=np.float32)

    def space_vectors(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(clip rows int64[m], vectors float32[m, d]) of the space's active clips, by clip row."""
        info = self.space_info(name)
        pairs = np.asarray(self.db.execute(
            "SELECT s.clip_row, s.vec_row FROM space_vectors s JOIN clips c ON c.row = s.clip_row"
            " WHERE s.space=? AND c.status='active' ORDER BY s.clip_row", (name,)).fetchall(),
            dtype=np.int64).reshape(-1, 2)
        try:
            arr = self.features[f"spaces/{name}/v{info['version']}"]
            vectors = np.asarray(arr[:]) if len(pairs) else np.zeros((0, info["dim"]), np.float32)
        except Exception as err:
            raise StoreError(f"embedding space {name!r} arrays in {self.features_path} cannot be read "
                             f"({err}); import the space again") from err
        return np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(vectors[pairs[:, 1]], dtype=np.float32)

    # ------------------------------------------------------------------ erasure
    def tombstone(self, rows: Sequence[int], reason: str = "") -> None:
        """Mark clips forgotten (erasure request): they vanish from every reader at once, their
        pairs, group memberships, rarity and triggers are deleted; features stay until
        :meth:`compact_forgotten` overwrites them."""
        self._require_writer()
        rows = [int(r) for r in rows]
        if not rows:
            return
        self._take_out(rows, "UPDATE clips SET status='forgotten', meta=json_set(meta,"
                       " '$.forgotten_at', ?, '$.forget_reason', ?) WHERE row=?",
                       [(time.time(), reason, r) for r in rows])

    def _take_out(self, rows: list[int], status_sql: str, status_args: list[tuple], *,
                  erase_vectors: bool = True) -> None:
        """The one path that takes clips out of the catalog (erasure and damage): their status
        changes by ``status_sql``; their pairs, group memberships, rarity (default and imported
        spaces), imported vectors and triggers go, in one transaction. With ``erase_vectors``
        (erasure) their vectors of imported spaces are zeroed first: the catalog row is the only
        link to them; damaged clips' rows may sit in unreadable chunks, so they are not."""
        q = ",".join("?" * len(rows))
        for space, vec_row, version in self.db.execute(
                f"SELECT v.space, v.vec_row, s.version FROM space_vectors v JOIN spaces s ON s.name = v.space"
                f" WHERE v.clip_row IN ({q})", rows).fetchall() if erase_vectors else ():
            arr = self.features[f"spaces/{space}/v{version}"]
            arr[int(vec_row):int(vec_row) + 1] = np.zeros((1, arr.shape[1]), np.float32)
        with self.transaction() as db:
            db.executemany(status_sql, status_args)
            db.execute(f"DELETE FROM pairs WHERE a IN ({q}) OR b IN ({q})", rows + rows)
            for table in ("groups", "rarity", "space_rarity", "space_vectors", "triggers"):
                db.execute(f"DELETE FROM {table} WHERE clip_row IN ({q})", rows)
            self._set_meta(catalog_version=self.snapshot().version + 1, rarity_version=-1)

    def blank_pictures(self, row: int) -> None:
        """Overwrite one clip's thumbnail and keyframe previews with zeros (erasure: pictures go
        at once, the other feature rows at :meth:`compact_forgotten`)."""
        self._require_writer()
        self._write_rows("thumbnails", int(row), np.zeros((1, *THUMB_SHAPE), np.uint8))
        self._write_rows("preview_jpeg", int(row), np.zeros((1, PREVIEW_BYTES), np.uint8))

    def compact_forgotten(self) -> dict:
        """Overwrite the feature rows of forgotten clips with zeros (the data is gone; zero chunks
        compress to almost nothing) and mark them compacted. Returns counts."""
        self._require_writer()
        todo = self.db.execute(
            "SELECT row, kf_start, kf_count FROM clips WHERE status='forgotten'"
            " AND json_extract(meta, '$.compacted') IS NULL").fetchall()
        kf_rows = 0
        for row, ks, n in todo:
            for name, (axis, trailing, dtype, _) in _ARRAYS.items():
                if name in _LATER_ARRAYS and not self._has_array(name):
                    continue
                lo, hi = (ks, ks + n) if axis == "kf" else (row, row + 1)
                if hi <= lo:
                    continue
                shape = (hi - lo, *((self.embedding_dim,) if trailing is None else trailing))
                self._write_rows(name, lo, np.zeros(shape, dtype=dtype))
            kf_rows += n
        with self.transaction() as db:
            db.executemany("UPDATE clips SET meta=json_set(meta, '$.compacted', ?) WHERE row=?",
                           [(time.time(), r) for r, _, _ in todo])
        self.db.execute("VACUUM")
        return {"clips": len(todo), "keyframes": kf_rows}

    def drop_tombstone(self, digest: str) -> None:
        """Remove a compacted tombstone so its source may be ingested again (``--force``)."""
        self._require_writer()
        with self.transaction() as db:
            db.execute("DELETE FROM clips WHERE digest=? AND status='forgotten'", (digest,))

    # erasure: keyed hashes of what was forgotten (clip ids, clip and recording digests), so
    # re-ingest is refused and ``forget`` is idempotent after the catalog has lost every trace
    def _erasure_key(self, create: bool) -> bytes | None:
        key = self.meta("erasure_key")
        if key is None and create:
            key = secrets.token_hex(32)
            with self.transaction():
                self._set_meta(erasure_key=key)
        return bytes.fromhex(key) if key else None

    @staticmethod
    def _keyed(key: bytes, values: Sequence[str]) -> list[str]:
        return [hmac.new(key, v.encode("utf-8"), hashlib.blake2b).hexdigest()[:48] for v in values if v]

    def record_erased(self, values: Sequence[str]) -> None:
        """Remember keyed hashes of ``values`` (never the values themselves)."""
        self._require_writer()
        key = self._erasure_key(create=True)
        assert key is not None
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS erased (hash TEXT PRIMARY KEY)")
            db.executemany("INSERT OR IGNORE INTO erased(hash) VALUES(?)",
                           [(h,) for h in self._keyed(key, values)])

    def is_erased(self, values: Sequence[str]) -> bool:
        """True when any of ``values`` was recorded by :meth:`record_erased` (reads only)."""
        key = self._erasure_key(create=False)
        if key is None or self.db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='erased'").fetchone() is None:
            return False
        hashes = self._keyed(key, values)
        if not hashes:
            return False
        q = ",".join("?" * len(hashes))
        return self.db.execute(f"SELECT 1 FROM erased WHERE hash IN ({q})", hashes).fetchone() is not None

    def erasable(self, clip_ids: Sequence[str]) -> dict[str, dict]:
        """Clips named in ``clip_ids`` that are active or forgotten but not yet scrubbed:
        clip id -> {row, status, digest, recording_id, source}."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(clips)")}
        rec = "recording_id" if "recording_id" in have else "''"
        out: dict[str, dict] = {}
        for i in range(0, len(clip_ids), 500):
            chunk = list(clip_ids[i:i + 500])
            q = ",".join("?" * len(chunk))
            for row, cid, status, digest, rid, source in self.db.execute(
                    f"SELECT row, clip_id, status, digest, {rec}, source FROM clips WHERE clip_id IN ({q})"
                    " AND status IN ('active', 'forgotten') AND json_extract(meta, '$.erased') IS NULL",
                    chunk):
                out[cid] = {"row": int(row), "status": status, "digest": digest, "recording_id": rid or "",
                            "source": source}
        return out

    def scrub_forgotten(self) -> dict:
        """Replace the catalog rows of compacted forgotten clips by placeholders (row and feature
        span only: no id, source, digest, codec or metadata), drop the recordings, job records and
        meta values that name them, then VACUUM and truncate the WAL so no old page survives in
        the catalog files. Sources and recordings still used by an active clip stay."""
        self._require_writer()
        gone = self.db.execute(
            "SELECT row, kf_start, kf_count FROM clips WHERE status='forgotten'"
            " AND json_extract(meta, '$.compacted') IS NOT NULL AND json_extract(meta, '$.erased') IS NULL"
        ).fetchall()
        if not gone:
            return {"scrubbed": 0}
        rows = [int(r) for r, _, _ in gone]
        have = {r[1] for r in self.db.execute("PRAGMA table_info(clips)")}
        rec = "recording_id" if "recording_id" in have else "''"
        q = ",".join("?" * len(rows))
        secrets_: set[str] = set()
        for cid, digest, rid, source in self.db.execute(
                f"SELECT clip_id, digest, {rec}, source FROM clips WHERE row IN ({q})", rows).fetchall():
            secrets_ |= {cid, digest}
            for shared, col in ((source, "source"), (rid, rec)):
                if shared and self.db.execute(f"SELECT 1 FROM clips WHERE status='active' AND {col}=?",
                                              (shared,)).fetchone() is None:
                    secrets_.add(shared)
        secrets_.discard("")
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        now = time.time()
        self.db.execute("PRAGMA secure_delete=ON")
        with self.transaction() as db:
            db.execute(f"DELETE FROM clips WHERE row IN ({q})", rows)
            db.executemany(
                "INSERT INTO clips(row, clip_id, digest, source, duration_s, kf_start, kf_count, quality_mean,"
                " embedding_version, status, ingested_at, meta)"
                " VALUES(?, 'erased.' || ?, 'erased:' || ?, '', 0, ?, ?, 0, '', 'forgotten', 0, ?)",
                [(r, r, r, ks, n, json.dumps({"erased": now, "compacted": now})) for r, ks, n in gone])
            if "recordings" in tables:
                for value in secrets_:
                    db.execute("DELETE FROM recordings WHERE recording_id=? OR source=?", (value, value))
            for table, key, cols in (("jobs", "job_id", ("summary",)), ("job_errors", "rowid", ("item", "error")),
                                     ("meta", "key", ("value",))):
                for key_value, *texts in db.execute(f"SELECT {key}, {', '.join(cols)} FROM {table}").fetchall():
                    new = [_redact(t, secrets_) for t in texts]
                    if new != texts:
                        db.execute(f"UPDATE {table} SET {', '.join(f'{c}=?' for c in cols)} WHERE {key}=?",
                                   [*new, key_value])
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"scrubbed": len(rows)}


    def mark_damaged(self, rows: Sequence[int], reason: str) -> list[tuple[str, str]]:
        """Take clips whose feature rows are unreadable out of the catalog: status 'damaged', their
        clip id and digest freed (kept in ``meta``) so the same source can simply be ingested
        again. Returns (clip id, source) of each. Never deletes the catalog row."""
        self._require_writer()
        rows = [int(r) for r in rows]
        if not rows:
            return []
        q = ",".join("?" * len(rows))
        out = self.db.execute(f"SELECT row, clip_id, source FROM clips WHERE row IN ({q})", rows).fetchall()
        self._take_out(rows, "UPDATE clips SET status='damaged', clip_id=clip_id || '.damaged-' || row,"
                       " digest='damaged:' || row || ':' || digest, meta=json_set(meta, '$.damaged_at',"
                       " ?, '$.damage', ?, '$.original_clip_id', clip_id, '$.original_digest', digest)"
                       " WHERE row=?", [(time.time(), reason, r) for r in rows], erase_vectors=False)
        return [(cid, src) for _, cid, src in sorted(out)]

    # ------------------------------------------------------------------ jobs
    def close_interrupted_jobs(self) -> int:
        """Under the writer lock no other job runs: any job still 'running' died. Mark it."""
        self._require_writer()
        with self.transaction() as db:
            return db.execute("UPDATE jobs SET status='interrupted' WHERE status='running'").rowcount

    def start_job(self, kind: str, job_id: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO jobs(job_id, kind, started, status) VALUES(?,?,?, 'running')",
                       (job_id, kind, time.time()))

    def record_error(self, job_id: str, item: str, error: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO job_errors(job_id, item, error) VALUES(?,?,?)", (job_id, item, error))

    def finish_job(self, job_id: str, status: str, summary: dict) -> None:
        with self.transaction() as db:
            db.execute("UPDATE jobs SET finished=?, status=?, summary=? WHERE job_id=?",
                       (time.time(), status, json.dumps(summary), job_id))

    def stats(self) -> dict:
        snap = self.snapshot()
        db = self.db
        n_active = db.execute("SELECT COUNT(*) FROM clips WHERE status='active'").fetchone()[0]
        n_forgotten = db.execute("SELECT COUNT(*) FROM clips WHERE status='forgotten'").fetchone()[0]
        n_damaged = db.execute("SELECT COUNT(*) FROM clips WHERE status='damaged'").fetchone()[0]
        dur = db.execute("SELECT COALESCE(SUM(duration_s),0) FROM clips WHERE status='active'").fetchone()[0]
        n_pairs = db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
        n_groups = db.execute("SELECT COUNT(DISTINCT group_id) FROM groups").fetchone()[0]
        last_job = db.execute(
            "SELECT job_id, kind, status, started, finished FROM jobs ORDER BY started DESC LIMIT 1"
        ).fetchone()
        return {
            "region": self.region.name,
            "path": str(self.path),
            "catalog_version": snap.version,
            "clips": n_active,
            "forgotten": n_forgotten,
            "damaged": n_damaged,
            "keyframes": snap.kf_end,
            "hours": round(dur / 3600.0, 3),
            "pairs": n_pairs,
            "groups": n_groups,
            "dedup_clip_end": int(self.meta("dedup_clip_end", "0")),
            "rarity_version": int(self.meta("rarity_version", "-1")),
            "index_rebuilt_at": self.meta("index_rebuilt_at", ""),
            "index_rebuild_reason": self.meta("index_rebuild_reason", ""),
            "last_job": dict(zip(("job_id", "kind", "status", "started", "finished"), last_job, strict=True))
            if last_job else None,
        }


def _num(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _redact(text, values: set[str]):
    """``text`` with every one of ``values`` replaced by ``(erased)`` (non-text unchanged)."""
    if not isinstance(text, str):
        return text
    for v in values:
        for form in (v, json.dumps(v)[1:-1]):  # as written, and as escaped inside JSON
            if form in text:
                text = text.replace(form, "(erased)")
    return text


