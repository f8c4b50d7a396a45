"""Plain data types passed between sources, ingest and the store."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: telemetry channels, in the column order of :attr:`Telemetry.values`
TELEMETRY_CHANNELS = ("speed", "accel", "yaw_rate", "steering")
#: units of the telemetry channels (documented in docs/guide.md)
TELEMETRY_UNITS = {"time": "s", "speed": "m/s", "accel": "m/s^2", "yaw_rate": "rad/s", "steering": "rad"}


@dataclass
class Telemetry:
    """Vehicle telemetry of one clip, aligned to the clip's own time axis.

    ``time`` is float64 seconds from the clip's start, strictly increasing; ``values`` is
    float32 ``[m, 4]`` with the columns of :data:`TELEMETRY_CHANNELS`; NaN marks a missing
    sample (a channel the vehicle does not report, or a gap).
    """

    time: np.ndarray
    values: np.ndarray
    issues: list[str] = field(default_factory=list)  # repairs made while loading (gaps, sorting)
    #: epoch seconds of ``time == 0`` when the sidecar carried epoch timestamps, else NaN
    epoch_start: float = float("nan")

    def channel(self, name: str) -> np.ndarray:
        return self.values[:, TELEMETRY_CHANNELS.index(name)]


@dataclass
class ClipSample:
    """One clip as a source hands it to ingest: keyframes already sampled in time.

    ``keyframes`` is ``uint8[k, H, W, 3]`` RGB, C-contiguous; ``keyframe_times`` float64 ``[k]``
    seconds from the clip start (the fixed-rate sample times, e.g. 0.0, 0.5, 1.0 … at 2 Hz).
    """

    clip_id: str
    source: str  # the file or store path the clip came from
    digest: str  # content digest of the source clip (hex); same content -> same digest
    keyframes: np.ndarray
    keyframe_times: np.ndarray
    duration_s: float
    telemetry: Telemetry | None = None
    region: str | None = None  # region named by the clip's own metadata, if any
    drive_id: str = ""
    vehicle_id: str = ""
    start_time: float = float("nan")  # epoch seconds of the clip's first frame, if known
    source_offset_s: float = 0.0  # where this clip starts inside its source recording
    fps: float = float("nan")  # nominal frame rate of the source
    meta: dict = field(default_factory=dict)
    #: the recording the clip was cut from (a whole-file digest for a video file), "" = its digest
    recording_id: str = ""
    camera: str = ""
    #: where drive_id, vehicle_id, camera and start_time came from (field -> source name)
    provenance: dict = field(default_factory=dict)
