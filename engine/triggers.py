"""Triggers: named events computed at ingest from telemetry and frames, stored per clip with
their time spans, usable as query filters and selection quotas.

All thresholds live in :data:`DEFAULT_THRESHOLDS` (documented in the README) and can be
overridden per ingest. Every trigger works on whole arrays of one clip (no per-sample Python).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .types import Telemetry

DEFAULT_THRESHOLDS: dict[str, float] = {
    "hard_brake_accel": -4.0,  # m/s^2: deceleration at least this strong ...
    "hard_brake_min_s": 0.2,  # ... for at least this long
    "sharp_turn_yaw_rate": 0.35,  # rad/s
    "sharp_turn_min_speed": 3.0,  # m/s (turning on the spot is parking, not a sharp turn)
    "high_jerk": 8.0,  # m/s^3
    "stop_speed": 0.5,  # m/s: below this the car is stopped
    "go_speed": 3.0,  # m/s: above this it moves again
    "stop_and_go_cycles": 2,  # stops followed by moving again
    "low_light_luma": 60.0,  # mean luma 0-255 of a keyframe
    "low_light_fraction": 0.5,  # of keyframes
    "low_visibility_contrast": 18.0,  # std of luma 0-255 (fog, dense rain, covered lens)
    "low_visibility_fraction": 0.5,  # of keyframes
    "frozen_camera_diff": 0.5,  # mean abs diff between consecutive keyframes (0-255)
    "frozen_camera_min_s": 1.0,  # ... for at least this long
    "black_luma": 8.0,  # mean luma of a black frame
    "telemetry_gap_s": 1.0,  # a gap longer than this between samples
}


def parse_thresholds(items: list[str] | tuple[str, ...]) -> dict[str, float]:
    """``["hard_brake_accel=-5", ...]`` -> overrides of :data:`DEFAULT_THRESHOLDS`."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, val = item.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULT_THRESHOLDS:
            raise InputError(f"--trigger-threshold {item!r}: use NAME=VALUE with NAME one of "
                             f"{', '.join(sorted(DEFAULT_THRESHOLDS))}")
        try:
            value = float(val)
        except ValueError:
            raise InputError(f"--trigger-threshold {item!r}: {val!r} is not a number") from None
        if not np.isfinite(value):
            raise InputError(f"--trigger-threshold {item!r}: the value must be finite")
        out[name] = value
    return out


def _spans(mask: np.ndarray, times: np.ndarray, min_s: float = 0.0) -> list[tuple[float, float]]:
    """Time spans [t_start, t_end] where ``mask`` is True, at least ``min_s`` long."""
    if mask.size == 0 or not mask.any():
        return []
    m = mask.astype(np.int8)
    edges = np.diff(np.concatenate([[0], m, [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    out = []
    for s, e in zip(starts, ends, strict=True):
        if times[e] - times[s] >= min_s:
            out.append((float(times[s]), float(times[e])))
    return out


def telemetry_triggers(tel: Telemetry | None, th: dict[str, float] | None = None) -> list[tuple[str, float, float, float]]:
    """Triggers from telemetry: (name, t_start, t_end, value) tuples."""
    th = {**DEFAULT_THRESHOLDS, **(th or {})}
    if tel is None or len(tel.time) < 2:
        return []
    t = tel.time
    speed, accel, yaw = tel.channel("speed"), tel.channel("accel"), tel.channel("yaw_rate")
    out: list[tuple[str, float, float, float]] = []
    with np.errstate(invalid="ignore"):
        if np.isfinite(accel).any():
            hb = accel <= th["hard_brake_accel"]
            for s, e in _spans(hb, t, th["hard_brake_min_s"]):
                sel = (t >= s) & (t <= e)
                out.append(("hard_brake", s, e, float(np.nanmin(accel[sel]))))
            dt = np.diff(t)
            jerk = np.diff(accel) / np.where(dt > 0, dt, np.nan)
            hj = np.abs(jerk) >= th["high_jerk"]
            for s, e in _spans(hj, t[1:]):
                sel = (t[1:] >= s) & (t[1:] <= e)
                out.append(("high_jerk", s, e, float(np.nanmax(np.abs(jerk[sel])))))
        if np.isfinite(yaw).any():
            st = (np.abs(yaw) >= th["sharp_turn_yaw_rate"]) & (speed >= th["sharp_turn_min_speed"])
            for s, e in _spans(st, t):
                sel = (t >= s) & (t <= e)
                out.append(("sharp_turn", s, e, float(np.nanmax(np.abs(yaw[sel])))))
        if np.isfinite(speed).any():
            # hysteresis: stopped below stop_speed, moving above go_speed
            state = np.full(len(speed), -1, np.int8)
            state[speed <= th["stop_speed"]] = 0
            state[speed >= th["go_speed"]] = 1
            known = state[state >= 0]
            cycles = int(np.sum((known[1:] == 1) & (known[:-1] == 0))) if known.size > 1 else 0
            if cycles >= th["stop_and_go_cycles"]:
                out.append(("stop_and_go", float(t[0]), float(t[-1]), float(cycles)))
        gaps = np.diff(t) > th["telemetry_gap_s"]
        if gaps.any():
            i = np.flatnonzero(gaps)
            out.append(("telemetry_gap", float(t[i[0]]), float(t[i[-1] + 1]), float(np.max(np.diff(t)))))
    return out


def frame_triggers(thumbs: np.ndarray, times: np.ndarray, th: dict[str, float] | None = None) -> list[tuple[str, float, float, float]]:
    """Triggers from keyframe thumbnails ``uint8[k,h,w,3]`` at ``times`` (seconds)."""
    th = {**DEFAULT_THRESHOLDS, **(th or {})}
    if len(thumbs) == 0:
        return []
    luma = thumbs.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    mean = luma.reshape(len(luma), -1).mean(axis=1)
    std = luma.reshape(len(luma), -1).std(axis=1)
    out: list[tuple[str, float, float, float]] = []
    black = mean <= th["black_luma"]
    for s, e in _spans(black, times):
        out.append(("black_frames", s, e, float(mean[(times >= s) & (times <= e)].mean())))
    dark = (mean <= th["low_light_luma"]) & ~black
    if dark.mean() >= th["low_light_fraction"]:
        out.append(("low_light", float(times[0]), float(times[-1]), float(mean.mean())))
    lowvis = (std <= th["low_visibility_contrast"]) & ~black
    if lowvis.mean() >= th["low_visibility_fraction"]:
        out.append(("low_visibility", float(times[0]), float(times[-1]), float(std.mean())))
    if len(luma) >= 3:
        diffs = np.abs(np.diff(luma, axis=0)).reshape(len(luma) - 1, -1).mean(axis=1)
        frozen = diffs <= th["frozen_camera_diff"]
        for s, e in _spans(frozen, times[1:], th["frozen_camera_min_s"]):
            out.append(("frozen_camera", s, e, 0.0))
    return out
