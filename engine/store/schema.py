"""The catalog's SQLite schema and the columns added to it since its first version."""

from __future__ import annotations

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clips (
    row INTEGER PRIMARY KEY,
    clip_id TEXT NOT NULL UNIQUE,
    digest TEXT NOT NULL,
    source TEXT NOT NULL,
    source_offset_s REAL NOT NULL DEFAULT 0,
    duration_s REAL NOT NULL,
    fps REAL,
    drive_id TEXT NOT NULL DEFAULT '',
    vehicle_id TEXT NOT NULL DEFAULT '',
    start_time REAL,
    kf_start INTEGER NOT NULL,
    kf_count INTEGER NOT NULL,
    quality_mean REAL NOT NULL,
    width INTEGER, height INTEGER,
    embedding_version TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    ingested_at REAL NOT NULL,
    job_id TEXT,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS clips_digest ON clips(digest);
CREATE INDEX IF NOT EXISTS clips_drive ON clips(drive_id);
CREATE TABLE IF NOT EXISTS triggers (
    clip_row INTEGER NOT NULL, name TEXT NOT NULL,
    t_start REAL NOT NULL, t_end REAL NOT NULL, value REAL
);
CREATE INDEX IF NOT EXISTS triggers_clip ON triggers(clip_row);
CREATE INDEX IF NOT EXISTS triggers_name ON triggers(name);
CREATE TABLE IF NOT EXISTS pairs (
    a INTEGER NOT NULL, b INTEGER NOT NULL, relation TEXT NOT NULL,
    offset_s REAL NOT NULL, a_start REAL, a_end REAL, b_start REAL, b_end REAL,
    matches INTEGER, overlap INTEGER, mean_dist REAL, rate REAL NOT NULL DEFAULT 1.0,
    mirrored INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (a, b)
);
CREATE INDEX IF NOT EXISTS pairs_b ON pairs(b);
CREATE TABLE IF NOT EXISTS groups (
    clip_row INTEGER PRIMARY KEY, group_id INTEGER NOT NULL, representative INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rarity (
    clip_row INTEGER PRIMARY KEY, score REAL NOT NULL, percentile REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS spaces (
    name TEXT PRIMARY KEY, dim INTEGER NOT NULL, count INTEGER NOT NULL, version INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT '', imported_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS space_vectors (
    space TEXT NOT NULL, clip_row INTEGER NOT NULL, vec_row INTEGER NOT NULL, PRIMARY KEY (space, clip_row)
);
CREATE TABLE IF NOT EXISTS space_rarity (
    space TEXT NOT NULL, clip_row INTEGER NOT NULL, score REAL NOT NULL, percentile REAL NOT NULL,
    PRIMARY KEY (space, clip_row)
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS job_errors (job_id TEXT NOT NULL, item TEXT NOT NULL, error TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recordings (
    recording_id TEXT PRIMARY KEY, source TEXT NOT NULL, duration_s REAL,
    clip_seconds REAL, job_id TEXT, finished_at REAL NOT NULL
);
"""

#: clips columns added after the first release: (name, SQL declaration); a writable store gains
#: them when opened, a read-only one reads their defaults
#: the start time that relations may trust: a container's creation_time is shown and filtered on
#: but never trusted (re-encoders and editors rewrite it), so the clip table reads it as unknown
_RECORDED_START = ("CASE WHEN json_extract(meta, '$.provenance.start_time') = 'container'"
                   " THEN NULL ELSE start_time END")

_LATER_COLUMNS = (
    ("recording_id", "TEXT NOT NULL DEFAULT ''"),
    ("camera", "TEXT NOT NULL DEFAULT ''"),
)

#: pair columns added after the first release, with their defaults (what older pairs mean)
_LATER_PAIR_COLUMNS = (
    ("rate", "REAL NOT NULL DEFAULT 1.0"),
    ("mirrored", "INTEGER NOT NULL DEFAULT 0"),
)
