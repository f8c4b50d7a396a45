"""Keyframe sampling by presentation time (seconds), never by frame number.

A clip re-encoded at another frame rate has the same sample times (0, 1/hz, 2/hz, ...), and the
frame picked for each time is the one whose presentation time is nearest (ties -> earlier).
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import InputError

#: tolerance (seconds) for "t <= duration": container time bases round timestamps (Matroska to
#: 1 ms), so a 30 fps and a 10 fps encode of the same 4 s must both count the sample at 4.0 s.
TIME_TOLERANCE_S = 1e-3


#: the tent filter averages at most this many frames a second: a frame contributes only when at
#: least ``1 / BLEND_MAX_HZ`` (less 2 ms of container timestamp rounding) after the last one that
#: did (30 fps video: every other frame; 60 fps: every fourth; 15 fps and slower: every frame).
#: 15 Hz is far above the 2 Hz keyframe rate the filter smooths for -- the blend stays a dense sum
#: over its +-0.5 s window -- and it halves the per-frame work of ingesting 30 fps video (the
#: accumulation, not the decoding, which every frame needs).
BLEND_MAX_HZ = 15.0
BLEND_MIN_GAP_S = 1.0 / BLEND_MAX_HZ - 2e-3


def blend_mask(frame_times: np.ndarray) -> np.ndarray:
    """bool per frame (presentation order): whether it contributes to tent-filtered keyframes
    (see :data:`BLEND_MAX_HZ`; :class:`BlendGate` is the streaming form)."""
    gate = BlendGate()
    return np.array([gate.take(t) for t in np.asarray(frame_times, np.float64)], bool)


class BlendGate:
    """Streaming :func:`blend_mask`: ``take(t)`` for each frame time in presentation order."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = -math.inf

    def take(self, time_s: float) -> bool:
        if time_s - self.last >= BLEND_MIN_GAP_S:
            self.last = time_s
            return True
        return False


def _check_hz(hz: float) -> float:
    hz = float(hz)
    if not math.isfinite(hz) or hz <= 0:
        raise InputError(f"keyframe rate hz={hz!r} must be a finite number > 0; pass e.g. hz=2.0")
    return hz


def sample_times(duration_s: float, hz: float) -> np.ndarray:
    """Sample times ``0, 1/hz, 2/hz, ... <= duration_s`` as float64 seconds.

    At least one sample (t=0) for any ``duration_s >= 0``. ``t <= duration`` allows
    :data:`TIME_TOLERANCE_S` of timestamp rounding. Times are computed as ``j / hz`` (not by
    accumulation), so they are bit-identical for every clip sampled at the same rate.
    """
    hz = _check_hz(hz)
    duration_s = float(duration_s)
    if not math.isfinite(duration_s) or duration_s < 0:
        raise InputError(
            f"clip duration {duration_s!r} s must be a finite number >= 0; check the source's "
            "timestamps (a negative or NaN duration means a broken file)"
        )
    count = int(math.floor((duration_s + TIME_TOLERANCE_S) * hz)) + 1
    return np.arange(count, dtype=np.float64) / hz


def pick_nearest(frame_times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the frame whose presentation time is nearest each target (ties -> earlier).

    ``frame_times`` float64 ``[T]``, non-decreasing (presentation order), T >= 1;
    ``targets`` float64 ``[k]``. Returns int64 ``[k]``.
    """
    frame_times = np.asarray(frame_times)
    targets = np.asarray(targets)
    if frame_times.dtype != np.float64 or targets.dtype != np.float64:
        raise TypeError(
            f"pick_nearest needs float64 seconds, got frame_times {frame_times.dtype} and "
            f"targets {targets.dtype}; convert with np.asarray(x, dtype=np.float64)"
        )
    if frame_times.ndim != 1 or targets.ndim != 1:
        raise InputError(
            f"pick_nearest needs 1-d arrays, got shapes {frame_times.shape} and {targets.shape}; "
            "pass one time per frame / per target"
        )
    if frame_times.size == 0:
        raise InputError("pick_nearest got no frame times; a clip needs at least one frame")
    if np.any(np.diff(frame_times) < 0):
        raise InputError(
            "frame_times are not in presentation order (they decrease somewhere); sort them "
            "with np.sort and keep the permutation to map picks back"
        )
    right = np.searchsorted(frame_times, targets, side="left")  # first frame with time >= t
    right = np.clip(right, 0, frame_times.size - 1)
    left = np.clip(right - 1, 0, frame_times.size - 1)
    take_right = np.abs(frame_times[right] - targets) < np.abs(targets - frame_times[left])
    return np.where(take_right, right, left).astype(np.int64)


def tent_weights(
    frame_times: np.ndarray, targets: np.ndarray, half_width_s: float
) -> list[tuple[int, int, np.ndarray]]:
    """Temporal anti-aliasing weights: for each target time, ``(first, stop, weights)`` over the
    frames ``first:stop`` whose times lie within ``half_width_s`` of it, tent-shaped
    (``1 - |t - target| / half_width``) and summing to 1.

    Sampling a moving scene at 2 Hz without a temporal low-pass aliases: two copies of one video
    whose frames fall at other phases (a trim at 1.3 s, a 15 fps re-encode) would hash different
    instants. A keyframe that is the tent-weighted mean of the frames around its time changes
    smoothly with the phase, so their hashes stay close. A target with no frame inside its window
    (sparse image sequences) takes its nearest frame alone. Frames faster than
    :data:`BLEND_MAX_HZ` get weight 0 except the first of each time bucket (:func:`blend_mask`).
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    nearest = pick_nearest(frame_times, targets)
    keep = blend_mask(frame_times)
    lo = np.searchsorted(frame_times, targets - half_width_s, side="right")
    hi = np.searchsorted(frame_times, targets + half_width_s, side="left")
    out = []
    for j, t in enumerate(targets):
        a, b = int(lo[j]), int(hi[j])
        w = (1.0 - np.abs(frame_times[a:b] - t) / half_width_s) * keep[a:b] \
            if b > a and half_width_s > 0 else None
        if w is None or w.sum() <= 0:
            n = int(nearest[j])
            out.append((n, n + 1, np.ones(1, np.float32)))
        else:
            out.append((a, b, (w / w.sum()).astype(np.float32)))
    return out


def blend_keyframes(frames, windows: list[tuple[int, int, np.ndarray]]) -> np.ndarray:
    """Tent-filtered keyframes ``uint8[k,H,W,3]`` from ``frames`` (any array-like indexable by
    slices, e.g. a zarr array) and :func:`tent_weights` windows; reads each frame once."""
    first = min(a for a, _, _ in windows)
    stop = max(b for _, b, _ in windows)
    block = np.asarray(frames[first:stop])
    out = np.empty((len(windows), *block.shape[1:]), dtype=np.uint8)
    for j, (a, b, w) in enumerate(windows):
        if b - a == 1:
            out[j] = block[a - first]
        else:
            acc = np.tensordot(w, block[a - first : b - first].astype(np.float32), axes=1)
            np.rint(acc, out=acc)
            out[j] = acc.astype(np.uint8)
    return out


#: keyframes from video files and image folders are area-averaged to a working size whose
#: longest side is at most this (hashes and embeddings downsample to 64x64 / 32x32 anyway)
WORKING_MAX_SIDE = 480


def working_factor(width: int, height: int) -> int:
    """Power-of-two area-downsampling factor: the smallest ``f`` with
    ``max(width, height) / f <= WORKING_MAX_SIDE`` (1 for frames already that small).
    The working size is ``(width // f, height // f)``; up to ``f - 1`` edge pixels are dropped."""
    longest = max(int(width), int(height), 1)
    factor = 1
    while longest / factor > WORKING_MAX_SIDE:
        factor *= 2
    return factor


def temporal_half_width(keyframe_hz: float) -> float:
    """Half-width (s) of the keyframe tent filter: one keyframe period (as zarr clips use)."""
    return 1.0 / _check_hz(keyframe_hz)
