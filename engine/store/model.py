"""What the store holds and hands out: the committed-clip table, a new clip, a snapshot,
and the sizes of the stored features."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SCHEMA_VERSION = 1

HASH_BYTES = 32

PHASH_BYTES = 8

#: crop views per keyframe (engine.ingest.features.crop_view_boxes: 8 scales x 5 x 5 positions)
N_CROP_VIEWS = 200

#: names of imported embedding spaces (they name zarr groups and index files)
SPACE_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")

THUMB_SHAPE = (36, 64, 3)

#: per clip, ``kernels.telemetry_stats`` (unscaled; row of NaN where the clip had no telemetry
#: or was ingested before clipdex stored them)
TELEMETRY_STATS_DIM = 16

#: keyframe previews a person can read (report, app): up to PREVIEW_FRAMES keyframes spread over
#: the clip, each letterboxed into PREVIEW_SIZE (w, h), side by side in one JPEG strip, stored in
#: a fixed slot of PREVIEW_BYTES per clip (4-byte little-endian length, then the JPEG, then
#: zeros, which compress to nothing); their times in ``preview_times`` (NaN: no frame)
PREVIEW_FRAMES = 4

PREVIEW_SIZE = (192, 108)

PREVIEW_BYTES = 32768

@dataclass
class NewClip:
    """Everything ingest computed for one clip, ready to be committed."""

    clip_id: str
    digest: str
    source: str
    duration_s: float
    keyframe_hashes: np.ndarray  # uint8[k, 32]
    keyframe_phash: np.ndarray  # uint8[k, 8]
    keyframe_quality: np.ndarray  # uint8[k]
    keyframe_times: np.ndarray  # float32[k]
    embedding: np.ndarray  # float32[d]
    thumbnail: np.ndarray  # uint8[36, 64, 3]
    telemetry_stats: np.ndarray | None = None  # float32[16]; None: no telemetry
    source_offset_s: float = 0.0
    fps: float = float("nan")
    drive_id: str = ""
    vehicle_id: str = ""
    start_time: float = float("nan")
    width: int = 0
    height: int = 0
    triggers: Sequence[tuple[str, float, float, float]] = ()  # (name, t_start, t_end, value)
    meta: dict | None = None
    recording_id: str = ""  # the recording (source) the clip's span was cut from
    camera: str = ""
    preview: np.ndarray | None = None  # uint8[PREVIEW_BYTES] slot (engine.ingest.features); None: none
    preview_times: np.ndarray | None = None  # float32[PREVIEW_FRAMES], NaN past the last frame
    view_phash: np.ndarray | None = None  # uint8[k, N_CROP_VIEWS, 8]; None: not computed (zeros)
    mirror_phash: np.ndarray | None = None  # uint8[k, 8]; None: not computed (zeros)
    learned: np.ndarray | None = None  # float32[d]: its vector in the learned space (ingest --learned)

@dataclass(frozen=True)
class FinishedRecording:
    """A recording whose every clip is committed, with the split it was cut with (NaN: whole)."""

    recording_id: str
    source: str
    duration_s: float = float("nan")
    clip_seconds: float = float("nan")

@dataclass(frozen=True)
class Snapshot:
    """The committed state a reader sees: ends of the committed rows and the catalog version."""

    version: int
    kf_end: int
    clip_end: int

@dataclass
class ClipTable:
    """Committed clips as parallel column arrays, ordered by clip row."""

    snapshot: Snapshot
    rows: np.ndarray  # int64
    clip_ids: list[str]
    drive_ids: list[str]
    vehicle_ids: list[str]
    start_time: np.ndarray
    duration_s: np.ndarray
    kf_start: np.ndarray  # int64
    kf_count: np.ndarray  # int64
    quality_mean: np.ndarray
    sources: list[str]
    source_offset_s: np.ndarray
    recording_ids: list[str]  # clips cut from one recording share it
    cameras: list[str]

    @classmethod
    def from_batches(cls, batches, snap: Snapshot) -> ClipTable:
        """The table from batches of catalog rows (row, clip_id, drive_id, vehicle_id,
        start_time, duration_s, kf_start, kf_count, quality_mean, source, source_offset_s,
        recording_id, camera), consumed one at a time: numbers go to arrays batch by batch, and
        repeated ids (drives, vehicles, recordings, cameras) share one string object, so a
        region of millions of clips never holds all its rows as tuples at once."""
        numeric = {0: np.int64, 4: np.float64, 5: np.float64, 6: np.int64, 7: np.int64, 8: np.float64,
                   10: np.float64}
        shared = (2, 3, 11, 12)
        arrays: dict[int, list[np.ndarray]] = {i: [] for i in numeric}
        lists: dict[int, list] = {i: [] for i in range(13) if i not in numeric}
        seen: dict[str, str] = {}
        for batch in batches:
            if not batch:
                continue
            cols = list(zip(*batch, strict=True))
            for i, dtype in numeric.items():
                vals = cols[i]
                if i == 4:  # a start time not recorded is NULL
                    vals = [np.nan if v is None else v for v in vals]
                arrays[i].append(np.asarray(vals, dtype=dtype))
            for i, out in lists.items():
                if i in shared:
                    out.extend(seen.setdefault(v, v) for v in cols[i])
                else:
                    out.extend(cols[i])
            del cols

        def arr(i: int) -> np.ndarray:
            return np.concatenate(arrays[i]) if arrays[i] else np.zeros(0, numeric[i])

        return cls(snap, arr(0), lists[1], lists[2], lists[3], arr(4), arr(5), arr(6), arr(7), arr(8),
                   lists[9], arr(10), lists[11], lists[12])

    def drive_keys(self) -> list[str]:
        """Per clip, what it counts as "one drive" by: its drive id, else its recording."""
        return [d or f"rec:{r}" for d, r in zip(self.drive_ids, self.recording_ids, strict=True)]

    def __len__(self) -> int:
        return len(self.rows)

    def position(self) -> dict[int, int]:
        """clip row -> position in this table."""
        return {int(r): i for i, r in enumerate(self.rows)}

def span_rows(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Keyframe rows of clips given their starts and counts:
    ``concatenate([arange(s, s + n) for s, n in zip(starts, counts)])``, vectorised."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    return np.repeat(np.asarray(starts, np.int64) - (ends - counts), counts) + np.arange(total)
