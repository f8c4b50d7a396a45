"""Zarr clip stores (format ``clipdex-clip-v1``, as written by :mod:`fixtures`).

A store is a zarr v3 group holding one child group per clip, or a single clip group. A clip group
has ``frames`` uint8[T,H,W,3] RGB, ``frame_times`` float64[T] (seconds from the clip start), an
optional ``telemetry`` group (``time`` float64[M] and float32 ``speed``, ``accel``, ``yaw_rate``,
``steering``), and attrs ``clip_id``, ``region``, ``drive_id``, ``vehicle_id``, ``start_time``,
``fps``. Only the keyframes are read (one chunk read per sample time at most).

Iteration yields a :class:`~engine.types.ClipSample` per good clip and a
:class:`~engine.errors.SourceError` *value* per bad clip, so one broken clip never stops the
others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.errors import InputError, SourceError
from engine.ids import validate_clip_id
from engine.sources.sampling import blend_keyframes, sample_times, tent_weights
from engine.types import TELEMETRY_CHANNELS, ClipSample, Telemetry

MAX_SIDE = 8192
#: frames (spread over the clip) read into its content key
CONTENT_KEY_FRAMES = 16


def _open(path: Path):
    import zarr

    try:
        return zarr.open_group(path, mode="r")
    except Exception as err:
        raise SourceError(
            f"{path}: not a readable zarr v3 group ({type(err).__name__}: {err}); "
            "pass a folder written by `clipdex synth` or in the clipdex-clip-v1 layout"
        ) from err


def list_zarr_clips(path: str | Path) -> list[tuple[str, object]]:
    """(clip name, zarr group) for every clip in the store at ``path``."""
    root = _open(Path(path))
    if "frames" in root.array_keys():
        return [(str(root.attrs.get("clip_id", Path(path).stem)), root)]
    return [(name, root[name]) for name in sorted(root.group_keys())]


def iter_zarr_clips(
    path: str | Path, *, keyframe_hz: float = 2.0, clip_id_base: str | None = None, **_ignored
) -> Iterator[ClipSample | SourceError]:
    path = Path(path)
    for name, group in list_zarr_clips(path):
        try:
            yield read_zarr_clip(group, f"{path}/{name}", keyframe_hz=keyframe_hz)
        except (SourceError, InputError) as err:
            yield err if isinstance(err, SourceError) else SourceError(str(err))
        except Exception as err:  # a corrupt chunk surfaces as codec/IO errors of many types
            yield SourceError(
                f"{path}/{name}: cannot read clip ({type(err).__name__}: {err}); "
                "re-export the clip or remove it from the store"
            )


def temporal_window_s(keyframe_hz: float) -> float:
    """Half-width of the temporal tent filter: one keyframe period."""
    return 1.0 / keyframe_hz


def read_zarr_clip(group, where: str, *, keyframe_hz: float = 2.0) -> ClipSample:
    attrs = dict(group.attrs)
    clip_id = validate_clip_id(str(attrs.get("clip_id", where.rsplit("/", 1)[-1])))
    keys = set(group.array_keys())
    if "frames" not in keys or "frame_times" not in keys:
        raise SourceError(f"{where}: missing 'frames' or 'frame_times' array; not a clipdex-clip-v1 clip")
    frames = group["frames"]
    if frames.dtype != np.uint8 or len(frames.shape) != 4 or frames.shape[3] != 3:
        raise SourceError(
            f"{where}: frames must be uint8[T,H,W,3] RGB, got {frames.dtype}{list(frames.shape)}; "
            "convert the frames to 8-bit RGB"
        )
    t, h, w, _ = frames.shape
    if t == 0:
        raise SourceError(f"{where}: the clip has no frames; remove it or re-export it")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise SourceError(f"{where}: frame size {w}x{h} exceeds {MAX_SIDE} px a side; downscale first")
    frame_times = np.asarray(group["frame_times"][:], dtype=np.float64)
    if frame_times.shape != (t,) or not np.all(np.isfinite(frame_times)):
        raise SourceError(f"{where}: frame_times must be {t} finite seconds; rewrite the timestamps")
    if t > 1 and not np.all(np.diff(frame_times) > 0):
        raise SourceError(f"{where}: frame_times are not strictly increasing; sort or fix them")
    frame_times = frame_times - frame_times[0]
    period = float(np.median(np.diff(frame_times))) if t > 1 else 1.0 / float(attrs.get("fps") or 10.0)
    duration = float(frame_times[-1] + period)
    times = sample_times(duration - period, keyframe_hz)
    keyframes = blend_keyframes(frames, tent_weights(frame_times, times, temporal_window_s(keyframe_hz)))

    telemetry = None
    if "telemetry" in set(group.group_keys()):
        telemetry = _read_telemetry(group["telemetry"], where)

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{clip_id}|{t}|{h}|{w}".encode())
    digest.update(frame_times.tobytes())
    # the frames' content: every keyframe plus the last frame (cheap yet content-bound)
    digest.update(keyframes.tobytes())
    digest.update(np.asarray(frames[t - 1]).tobytes())
    # the content key: frame times and a spread of frames, whatever the clip id or keyframe rate
    # (erasure recognises the same pictures under another name by it)
    key = hashlib.blake2b(f"zarr|{t}|{h}|{w}".encode(), digest_size=16)
    key.update(frame_times.tobytes())
    for i in np.unique(np.linspace(0, t - 1, min(t, CONTENT_KEY_FRAMES)).round().astype(np.int64)):
        key.update(np.asarray(frames[int(i)]).tobytes())
    fps = attrs.get("fps")
    start_time = attrs.get("start_time")
    return ClipSample(
        clip_id=clip_id,
        source=where,
        digest=digest.hexdigest(),
        keyframes=keyframes,
        keyframe_times=times,
        duration_s=duration,
        telemetry=telemetry,
        region=attrs.get("region"),
        drive_id=str(attrs.get("drive_id", "")),
        vehicle_id=str(attrs.get("vehicle_id", "")),
        start_time=float(start_time) if start_time is not None else float("nan"),
        fps=float(fps) if fps else 1.0 / period,
        meta={"width": w, "height": h, "frames": t, "content_key": key.hexdigest()},
    )


def clip_digest(source: str, *, keyframe_hz: float = 2.0) -> str:
    """The content digest ingest records for the clip at ``source`` (``<store>/<clip>``, as the
    catalog stores it) read at ``keyframe_hz``: used where the clip must still hold what was
    ingested, e.g. by ``export``. SourceError when it cannot be read."""
    store_path, _, name = source.rpartition("/")
    root = _open(Path(store_path))
    group = root[name] if name in root.group_keys() else root
    return read_zarr_clip(group, source, keyframe_hz=keyframe_hz).digest


def _read_telemetry(group, where: str) -> Telemetry | None:
    keys = set(group.array_keys())
    if "time" not in keys:
        raise SourceError(f"{where}/telemetry: missing 'time' array")
    t = np.asarray(group["time"][:], dtype=np.float64)
    m = len(t)
    values = np.full((m, len(TELEMETRY_CHANNELS)), np.nan, dtype=np.float32)
    for j, name in enumerate(TELEMETRY_CHANNELS):
        if name in keys:
            col = np.asarray(group[name][:], dtype=np.float32)
            if col.shape != (m,):
                raise SourceError(f"{where}/telemetry/{name}: length {len(col)} != time length {m}")
            values[:, j] = col
    issues = []
    bad_t = ~np.isfinite(t)
    if bad_t.any():
        issues.append(f"{int(bad_t.sum())} telemetry rows with non-finite time dropped")
        t, values = t[~bad_t], values[~bad_t]
    values[~np.isfinite(values)] = np.nan
    if np.isnan(values).any():
        issues.append(f"{int(np.isnan(values).sum())} missing telemetry values (NaN)")
    if len(t) > 1 and not np.all(np.diff(t) > 0):
        order = np.argsort(t, kind="stable")
        t, values = t[order], values[order]
        keep = np.concatenate([[True], np.diff(t) > 0])
        t, values = t[keep], values[keep]
        issues.append("telemetry timestamps were not increasing; sorted, duplicates dropped")
    if len(t) < 2 or np.isnan(values).all():
        return None
    return Telemetry(time=t, values=values, issues=issues)


def set_clip_attrs(path: str | Path, **attrs) -> int:
    """Set ``attrs`` on every clip of the zarr clip store at ``path`` (e.g. the region its
    clips name); returns the number of clips changed."""
    import zarr

    group = zarr.open_group(Path(path), mode="r+")
    n = 0
    for _, clip in group.groups():
        clip.attrs.update(attrs)
        n += 1
    return n
