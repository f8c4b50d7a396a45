"""Triggers: named events computed at ingest from telemetry and frames, stored per clip with
their time spans, usable as query filters and selection quotas.

All thresholds live in :data:`DEFAULT_THRESHOLDS` (documented in the README) and can be
overridden per ingest. Every trigger works on whole arrays of one clip (no per-sample Python).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .types import Telemetry

#: what the stored triggers of a clip were computed with; ingest records it in the clip's meta.
#: 1: session 1-3; 2: jerk over a window, upper-half Weber contrast, glare, frozen camera vs a
#: standing car; 3: low light from the sky band too, robust-spread low visibility, snow. Stores
#: keep a clip's triggers until it is ingested again (they need the frames): ``clipdex rare``
#: says how many clips carry triggers of an older version.
TRIGGERS_VERSION = 3

DEFAULT_THRESHOLDS: dict[str, float] = {
    "hard_brake_accel": -4.0,  # m/s^2: deceleration at least this strong ...
    "hard_brake_min_s": 0.2,  # ... for at least this long
    "sharp_turn_yaw_rate": 0.35,  # rad/s
    "sharp_turn_min_speed": 3.0,  # m/s (turning on the spot is parking, not a sharp turn)
    "high_jerk": 8.0,  # m/s^3, the change of acceleration over high_jerk_window_s ...
    "high_jerk_window_s": 0.5,  # ... (differencing 10 Hz samples turns sensor noise into jerk)
    "stop_speed": 0.5,  # m/s: below this the car is stopped
    "go_speed": 3.0,  # m/s: above this it moves again
    "stop_and_go_cycles": 2,  # stops followed by moving again
    "low_light_luma": 60.0,  # mean luma 0-255 of a keyframe, or ...
    "low_light_sky_luma": 60.0,  # ... median luma of its top sixth (a night sky over a lit street)
    "low_light_fraction": 0.5,  # of keyframes
    "low_visibility_spread": 0.3,  # (p90 - p10) / median of the luma of the upper half
    "low_visibility_fraction": 0.5,  # of keyframes (fog, snow, a covered or misted lens)
    "snow_ground_ratio": 0.8,  # low visibility over a lower half at least this bright relative
    # to the upper half (snow on the ground reflects like the sky; fog leaves the road dark) ...
    "snow_ground_spread": 0.05,  # ... with at least this spread (tracks, kerbs: a uniform
    # picture is a covered or blown-out lens, not snow)
    "glare_luma": 250.0,  # a saturated pixel (luma 0-255) ...
    "glare_fraction": 0.25,  # ... covering at least this share of a keyframe (sun, tunnel exit)
    "frozen_camera_diff": 0.5,  # mean abs diff between consecutive keyframes (0-255)
    "frozen_camera_min_s": 1.0,  # ... for at least this long, unless telemetry says the car
    # stood still (speed <= stop_speed) all that time: a parked or waiting car sees a still picture
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


def _jerk_spans(t: np.ndarray, accel: np.ndarray, limit: float, window_s: float) -> list[tuple[float, float, float]]:
    """Spans where ``|a(t + w) - a(t)| / w >= limit``: jerk over a window of ``window_s`` (the
    first valid sample at least that far on), over the samples with a valid acceleration. With
    ``window_s`` 0 it is the sample-to-sample jerk."""
    ok = np.isfinite(accel)
    tv, av = t[ok], accel[ok].astype(np.float64)
    if len(tv) < 2:
        return []
    j = np.searchsorted(tv, tv + max(window_s, 0.0), side="left")
    j = np.maximum(j, np.arange(len(tv)) + 1)
    valid = j < len(tv)
    i = np.flatnonzero(valid)
    j = j[valid]
    dt = tv[j] - tv[i]
    jerk = (av[j] - av[i]) / np.where(dt > 0, dt, np.nan)
    with np.errstate(invalid="ignore"):
        hit = np.abs(jerk) >= limit
    out = []
    for s, e in _spans(hit, tv[i]):
        sel = hit & (tv[i] >= s) & (tv[i] <= e)
        out.append((s, float(tv[j[sel]].max()), float(np.nanmax(np.abs(jerk[sel])))))
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
            for s, e, value in _jerk_spans(t, accel, th["high_jerk"], th["high_jerk_window_s"]):
                out.append(("high_jerk", s, e, value))
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


def frame_triggers(thumbs: np.ndarray, times: np.ndarray, th: dict[str, float] | None = None,
                   telemetry: Telemetry | None = None) -> list[tuple[str, float, float, float]]:
    """Triggers from keyframe thumbnails ``uint8[k,h,w,3]`` at ``times`` (seconds); the clip's
    ``telemetry``, when given, tells a frozen camera from a car that stands still."""
    th = {**DEFAULT_THRESHOLDS, **(th or {})}
    if len(thumbs) == 0:
        return []
    luma = thumbs.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    flat = luma.reshape(len(luma), -1)
    mean = flat.mean(axis=1)
    out: list[tuple[str, float, float, float]] = []
    black = mean <= th["black_luma"]
    for s, e in _spans(black, times):
        out.append(("black_frames", s, e, float(mean[(times >= s) & (times <= e)].mean())))
    # low light: a dark picture, or a dark sky band (streetlights and headlights keep a night
    # street's mean luma at 70-120, but the sky above stays dark)
    rows = luma.shape[1]
    sky = np.median(luma[:, : max(1, rows // 6)].reshape(len(luma), -1), axis=1)
    dark = (mean <= th["low_light_luma"]) & ~black
    if (dark | ((sky <= th["low_light_sky_luma"]) & ~black)).mean() >= th["low_light_fraction"]:
        out.append(("low_light", float(times[0]), float(times[-1]), float(mean.mean())))
    # visibility: the spread of the upper half's luma, where a forward camera sees the far scene;
    # fog and falling snow wash it out while the near road keeps its contrast (the whole frame's
    # std hardly drops in fog). The middle 80 % of the pixels, relative to their median: a car
    # close ahead (a few bright or dark pixels) does not lift a foggy picture's contrast, as it
    # does the std. Dark frames are low light, not low visibility.
    upper = luma[:, : max(1, rows // 2)].reshape(len(luma), -1)
    p10, p50, p90 = np.percentile(upper, [10, 50, 90], axis=1)
    spread = (p90 - p10) / np.maximum(p50, 1.0)
    lowvis = (spread <= th["low_visibility_spread"]) & ~dark & ~black
    if lowvis.mean() >= th["low_visibility_fraction"]:
        out.append(("low_visibility", float(times[0]), float(times[-1]), float(spread.mean())))
        # snow: the washed-out far scene over a ground as bright as it (fog leaves the road dark)
        lower = luma[:, rows // 2:].reshape(len(luma), -1)
        ratio = lower.mean(axis=1) / np.maximum(upper.mean(axis=1), 1.0)
        q10, q50, q90 = np.percentile(lower, [10, 50, 90], axis=1)
        textured = (q90 - q10) / np.maximum(q50, 1.0) >= th["snow_ground_spread"]
        snowy = lowvis & (ratio >= th["snow_ground_ratio"]) & textured
        if snowy.mean() >= th["low_visibility_fraction"]:
            out.append(("snow", float(times[0]), float(times[-1]), float(ratio[snowy].mean())))
    glare = (flat >= th["glare_luma"]).mean(axis=1)
    for s, e in _spans(glare >= th["glare_fraction"], times):
        out.append(("glare", s, e, float(glare[(times >= s) & (times <= e)].max())))
    if len(luma) >= 3:
        diffs = np.abs(np.diff(luma, axis=0)).reshape(len(luma) - 1, -1).mean(axis=1)
        frozen = diffs <= th["frozen_camera_diff"]
        for s, e in _spans(frozen, times[1:], th["frozen_camera_min_s"]):
            if not _stood_still(telemetry, s, e, th["stop_speed"]):
                out.append(("frozen_camera", s, e, 0.0))
    return out


def _stood_still(tel: Telemetry | None, t0: float, t1: float, stop_speed: float) -> bool:
    """True when telemetry covers [t0, t1] and every speed sample in it is <= ``stop_speed``."""
    if tel is None or len(tel.time) == 0:
        return False
    speed = tel.channel("speed")
    sel = (tel.time >= t0 - 0.5) & (tel.time <= t1 + 0.5)
    vals = speed[sel]
    if vals.size == 0 or not np.isfinite(vals).all():
        return False
    return bool(tel.time[sel].min() <= t0 and tel.time[sel].max() >= t1 and (vals <= stop_speed).all())
