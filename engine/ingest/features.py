"""From sampled keyframes to stored features: hashes, quality, embedding, thumbnail, triggers.

The kernels do the per-pixel work; this module only loops over clips.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image

import kernels
from engine.errors import InputError
from engine.ingest.triggers import (
    TRIGGERS_VERSION,
    frame_triggers,
    telemetry_triggers,
    trigger_view,
)
from engine.store.region import (
    N_CROP_VIEWS,
    PREVIEW_BYTES,
    PREVIEW_FRAMES,
    PREVIEW_SIZE,
    THUMB_SHAPE,
    NewClip,
)
from engine.types import ClipSample, Telemetry


@lru_cache(maxsize=1)
def projection() -> np.ndarray:
    """The fixed, seeded projection shared by every region (so embeddings are comparable)."""
    return kernels.embedding_projection()


def thumbnails(frames: np.ndarray) -> np.ndarray:
    """Box-filtered 64x36 RGB thumbnails, uint8[k, 36, 64, 3]."""
    h, w, _ = THUMB_SHAPE
    out = np.empty((len(frames), h, w, 3), np.uint8)
    for i, f in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(f).resize((w, h), Image.Resampling.BOX))
    return out


def preview_strip(keyframes: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The clip's keyframe preview (``store.PREVIEW_*``): up to PREVIEW_FRAMES keyframes spread
    evenly over the clip, each fitted whole into PREVIEW_SIZE (letterboxed on dark grey), side by
    side in one JPEG, as (uint8[PREVIEW_BYTES] slot, float32[PREVIEW_FRAMES] times, NaN-padded).
    Encoded once at ingest: the report and the app copy these bytes, never decode sources."""
    w, h = PREVIEW_SIZE
    k = len(keyframes)
    picks = np.unique(np.round(np.linspace(0, k - 1, min(k, PREVIEW_FRAMES))).astype(np.int64))
    strip = Image.new("RGB", (w * len(picks), h), (24, 24, 24))
    for i, j in enumerate(picks.tolist()):
        img = Image.fromarray(keyframes[j])
        scale = min(w / img.width, h / img.height)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        strip.paste(img, (i * w + (w - size[0]) // 2, (h - size[1]) // 2))
    for quality in (82, 70, 55, 40, 25):
        buf = io.BytesIO()
        strip.save(buf, format="JPEG", quality=quality, optimize=True)
        data = buf.getvalue()
        if len(data) <= PREVIEW_BYTES - 4:
            break
    else:  # cannot happen at these sizes; keep the slot valid (no preview) rather than fail
        data = b""
    slot = np.zeros(PREVIEW_BYTES, np.uint8)
    slot[:4] = np.frombuffer(len(data).to_bytes(4, "little"), np.uint8)
    slot[4:4 + len(data)] = np.frombuffer(data, np.uint8)
    out_times = np.full(PREVIEW_FRAMES, np.nan, np.float32)
    if data:
        out_times[:len(picks)] = np.asarray(times, np.float32)[picks]
    return slot, out_times


#: fraction of the content cropped off top/bottom and left/right before hashing ("safe area"):
#: burned-in timestamp bars, logos and overlays live there
SAFE_MARGIN = (0.10, 0.05)
#: a letterbox/pillarbox bar: rows/columns no brighter than this in every keyframe ...
BAR_MAX_LUMA = 24
#: ... that end in a sharp edge (a step of the brightest or the mean value of at least this),
#: at most this fraction a side. (A "flat rows" test that also caught bars lifted to grey by a
#: brightness change was tried and dropped: noise in a copy breaks flatness, so the copy and its
#: source were cropped differently -- blur/noise and fps-change recall fell 10-15 points.)
BAR_EDGE_STEP = 16.0
BAR_MAX_FRACTION = 0.25
#: letterbox and pillarbox bars come in pairs around a centred picture: the two bars of an axis
#: differ by at most this many rows/columns or this fraction of the larger. A dark band on one
#: side only is picture -- a night sky or a dark verge, whose extent depends on which keyframes
#: were sampled, so a copy cut from the same drive would be framed differently -- not a bar.
BAR_PAIR_SLACK_PX = 2
BAR_PAIR_SLACK = 0.10
#: share of an overlay bar row's pixels that stay dark in every keyframe (the text is the rest)
OVERLAY_DARK_SHARE = 0.75
#: ... reaching at least this fraction of the frame's height past any clean bar ...
OVERLAY_MIN_EXTRA = 0.03
#: ... with text at least this bright in those rows
OVERLAY_TEXT_LUMA = 160


def _bar_length(profile_max: np.ndarray, profile_mean: np.ndarray) -> int:
    """Leading rows of a black bar: dark everywhere, ended by a sharp step into the picture."""
    limit = int(len(profile_max) * BAR_MAX_FRACTION)
    dark = profile_max[:limit] <= BAR_MAX_LUMA
    n = int(np.argmin(dark)) if not dark.all() else limit
    if n < 2 or n >= limit:
        return 0
    step = max(float(profile_max[n]) - float(profile_max[n - 1]), float(profile_mean[n] - profile_mean[n - 1]))
    return n if step >= BAR_EDGE_STEP else 0


def _profiles(keyframes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[H, W] brightest value and mean over keyframes and channels. Reduced over the frames
    first (contiguous, vectorised), then the 3 channels: the same values as
    max/mean(axis=(0, 3)) (the sums are exact integers) but ~13x faster (50 -> 4 ms a clip)."""
    k, _, _, c = keyframes.shape
    mx = np.maximum.reduce(keyframes, axis=0).max(axis=2)
    mean = keyframes.sum(axis=0, dtype=np.uint32).sum(axis=2).astype(np.float32) / np.float32(k * c)
    return mx, mean


def paired_bars(first: int, second: int) -> tuple[int, int]:
    """The two bars of one axis when they pair up (see BAR_PAIR_SLACK), else no bars."""
    if first and second and abs(first - second) <= max(BAR_PAIR_SLACK_PX, BAR_PAIR_SLACK * max(first, second)):
        return first, second
    return 0, 0


def _box(mx: np.ndarray, mean: np.ndarray) -> tuple[int, int, int, int]:
    h, w = mx.shape
    rmax, rmean, cmax, cmean = mx.max(axis=1), mean.mean(axis=1), mx.max(axis=0), mean.mean(axis=0)
    top, bottom = paired_bars(_bar_length(rmax, rmean), _bar_length(rmax[::-1], rmean[::-1]))
    left, right = paired_bars(_bar_length(cmax, cmean), _bar_length(cmax[::-1], cmean[::-1]))
    return top, h - bottom, left, w - right


def content_box(keyframes: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the picture inside paired letterbox/pillarbox bars, per clip."""
    return _box(*_profiles(keyframes))


def overlay_bars(mx: np.ndarray, mean: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int]:
    """(top, bottom) rows of burned-in overlay bars inside ``box``: a dark band along the top or
    bottom edge that carries text (a timestamp, a speed readout), so it is not a clean
    letterbox bar. A row belongs to it when at least OVERLAY_DARK_SHARE of its pixels stay
    dark (<= BAR_MAX_LUMA) in every keyframe -- the text's pixels are the rest -- and the band
    ends in a sharp step into the picture, like a letterbox bar."""
    top, bottom, left, right = box
    inner = mx[top:bottom, left:right]
    if inner.shape[0] < 8 or inner.shape[1] < 8:
        return 0, 0
    q = int(round(OVERLAY_DARK_SHARE * (inner.shape[1] - 1)))
    level = np.partition(inner, q, axis=1)[:, q].astype(np.float32)  # row's OVERLAY_DARK_SHARE quantile
    rmean = mean[top:bottom, left:right].mean(axis=1)
    return _bar_length(level, rmean), _bar_length(level[::-1], rmean[::-1])


#: a video shown inside an application window (a screen recording, a player's frame): the
#: pixels whose value moves by more than WINDOW_ACTIVE_RANGE over the keyframes are the
#: moving picture; rows and columns where at least WINDOW_ACTIVE_SHARE of them move seed
#: the window, which grows outward until a line of the surround (static and flat: at most
#: WINDOW_SURROUND_ACTIVE of its pixels move, spatial std of its mean at most
#: WINDOW_SURROUND_STD) -- so a static sky or bonnet inside the picture stays in it
WINDOW_ACTIVE_RANGE = 12
WINDOW_ACTIVE_SHARE = 0.25
WINDOW_SURROUND_ACTIVE = 0.05
WINDOW_SURROUND_STD = 4.0
#: a window is accepted only when the surround is clearly an interface: at least this many
#: sides of at least WINDOW_MIN_SIDE of the frame, area between WINDOW_AREA, the surround
#: static (at most WINDOW_OUTSIDE_ACTIVE of it moves) and not black (mean luma at least
#: WINDOW_SURROUND_MIN_LUMA: black surrounds are letterbox or pillarbox bars, or night)
WINDOW_MIN_SIDES = 3
WINDOW_MIN_SIDE = 0.03
WINDOW_AREA = (0.2, 0.9)
WINDOW_OUTSIDE_ACTIVE = 0.03
WINDOW_SURROUND_MIN_LUMA = 24.0
#: a band of moving rows at most this fraction of the frame high, just above or below the
#: rest behind a static gap no wider, is a widget of the interface (a progress bar): outside
#: the window, and not part of the surround's test
WINDOW_WIDGET_ROWS = 0.04
#: keyframes needed to tell the moving picture from a static interface
WINDOW_MIN_KEYFRAMES = 3


def _sides(top: int, bottom: int, left: int, right: int, h: int, w: int) -> int:
    return sum(m >= WINDOW_MIN_SIDE for m in (top / h, (h - bottom) / h, left / w, (w - right) / w))


def _runs(on: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of True in ``on``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    return edges[0::2], edges[1::2]


def window_box(keyframes: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of a video playing inside a static interface (a screen
    recording of a player, a video embedded in a page), or None. The window is what moves;
    the surround is static, flat between its widgets, and not black, on at least three sides.
    A dashcam's own static parts (sky, bonnet, night-time darkness) fail those tests.

    A widget that moves on its own beside the video (a player's progress bar: a thin band of
    moving rows just above or below it, behind a thin static gap) is left outside the window
    and is not held against the surround."""
    k, h, w, _ = keyframes.shape
    if k < WINDOW_MIN_KEYFRAMES or h < 32 or w < 32:
        return None
    span = np.maximum.reduce(keyframes, axis=0).astype(np.int16) - np.minimum.reduce(keyframes, axis=0)
    active = span.max(axis=2) > WINDOW_ACTIVE_RANGE
    thin = max(2, int(WINDOW_WIDGET_ROWS * h))
    starts, ends = _runs(active.mean(axis=1) >= WINDOW_ACTIVE_SHARE)
    # a thin band of moving rows just above or below the rest, behind a thin static gap, is
    # a widget (a progress bar under the video), not picture; a static stretch of picture (a
    # sky) between moving rows is wide
    while len(starts) > 1 and ends[-1] - starts[-1] <= thin and starts[-1] - ends[-2] <= thin:
        starts, ends = starts[:-1], ends[:-1]
    while len(starts) > 1 and ends[0] - starts[0] <= thin and starts[1] - ends[0] <= thin:
        starts, ends = starts[1:], ends[1:]
    cols = np.flatnonzero(active.mean(axis=0) >= WINDOW_ACTIVE_SHARE)
    if not len(starts) or ends[-1] - starts[0] < 8 or len(cols) < 8:
        return None
    top, bottom, left, right = int(starts[0]), int(ends[-1]), int(cols[0]), int(cols[-1]) + 1
    if _sides(top, bottom, left, right, h, w) < WINDOW_MIN_SIDES:  # growing only narrows them
        return None
    mean = keyframes.mean(axis=(0, 3), dtype=np.float32)

    def surround(line_active: np.ndarray, line_mean: np.ndarray) -> bool:
        return line_active.mean() <= WINDOW_SURROUND_ACTIVE and line_mean.std() <= WINDOW_SURROUND_STD

    while top > 0 and not surround(active[top - 1, left:right], mean[top - 1, left:right]):
        top -= 1
    while bottom < h and not surround(active[bottom, left:right], mean[bottom, left:right]):
        bottom += 1
    while left > 0 and not surround(active[top:bottom, left - 1], mean[top:bottom, left - 1]):
        left -= 1
    while right < w and not surround(active[top:bottom, right], mean[top:bottom, right]):
        right += 1
    sides = _sides(top, bottom, left, right, h, w)
    outside = np.ones((h, w), bool)
    outside[top:bottom, left:right] = False
    # a widget that moves on its own (a progress bar): a thin band of moving rows across the
    # window's columns, apart from it; the rest of the surround is judged without it
    band = active[:, left:right].mean(axis=1) >= WINDOW_ACTIVE_SHARE
    band[top:bottom] = False
    for s, e in zip(*_runs(band), strict=True):
        if e - s <= thin:
            outside[s:e, left:right] = False
    area = (bottom - top) * (right - left) / (h * w)
    if (sides < WINDOW_MIN_SIDES or not WINDOW_AREA[0] <= area <= WINDOW_AREA[1]
            or active[outside].mean() > WINDOW_OUTSIDE_ACTIVE
            or mean[outside].mean() < WINDOW_SURROUND_MIN_LUMA):
        return None
    return top, bottom, left, right


#: ``window`` argument default: detect the window (callers that already did pass theirs)
_DETECT = object()


def view_box(keyframes: np.ndarray, window=_DETECT) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of what is hashed and described: :func:`picture_view_box` of
    the picture, which is the whole frame or, for a video inside an interface, its window
    (:func:`window_box`): a screen recording hashes as the video it shows."""
    win = window_box(keyframes) if window is _DETECT else window
    if win is None:
        return picture_view_box(keyframes)
    top, bottom, left, right = win
    t, b, lo, r = picture_view_box(np.ascontiguousarray(keyframes[:, top:bottom, left:right]))
    return top + t, top + b, left + lo, left + r


def picture_view_box(keyframes: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of what is hashed and described of a picture: the picture inside letterbox
    bars, minus the safe-area margins of that picture, minus any overlay bar reaching past them.

    A clean letterbox bar shrinks the picture (the margins are taken of what is left). An
    overlay bar (:func:`overlay_bars`, a dark band with text, possibly clean below the text) is
    drawn *over* the picture: that edge keeps the frame's geometry and only the band's rows are
    dropped, so a copy with a 12 % timestamp bar is its source's view less 2 % of rows at the
    bottom, not a differently framed picture."""
    mx, mean = _profiles(keyframes)
    height = mx.shape[0]
    top, bottom, left, right = _box(mx, mean)
    o_top, o_bottom = overlay_bars(mx, mean, (0, height, left, right))
    # an overlay is a band reaching well past any clean bar with bright text in what it adds;
    # a row or two of resampling blur at a letterbox edge is neither
    min_extra = max(3, int(round(OVERLAY_MIN_EXTRA * height)))

    def text_band(rows: slice, extra: int) -> bool:
        return extra >= min_extra and int(mx[rows, left:right].max()) >= OVERLAY_TEXT_LUMA

    o_top = o_top if text_band(slice(top, o_top), o_top - top) else 0
    o_bottom = o_bottom if text_band(slice(height - o_bottom, bottom), o_bottom - (height - bottom)) else 0
    g_top, g_bottom = (0 if o_top else top), (height if o_bottom else bottom)
    h, w = g_bottom - g_top, right - left
    mh, mw = int(round(h * SAFE_MARGIN[0])), int(round(w * SAFE_MARGIN[1]))
    if h - 2 * mh < 8 or w - 2 * mw < 8:
        return top, bottom, left, right
    v_top, v_bottom = max(g_top + mh, o_top), min(g_bottom - mh, height - o_bottom)
    if v_bottom - v_top < 8:
        v_top, v_bottom = g_top + mh, g_bottom - mh
    return v_top, v_bottom, left + mw, right - mw


#: crop views: the part of the picture a copy cropped to each of these fractions of the frame
#: (both axes) would hash, at each of these positions per axis (0: left/top edge, 0.5:
#: centred, 1: right/bottom edge) -- 200 views, described by a 64-bit pHash each (1,600 bytes a
#: keyframe). pHash moves ~5 bits for a 5 % scale error and ~10 for a 2 % shift, so this grid
#: puts a view within 10 bits of ~93 % of crops of 60-95 % of the frame (half of them
#: centred, half anywhere) on the dev set's frames, and of ~1 % of unrelated frames; the
#: 256-bit hash moves ~45 bits for a 5 % scale error or a 1 % shift and reaches none of them
CROP_VIEW_SCALES = (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)
CROP_VIEW_POSITIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
assert N_CROP_VIEWS == len(CROP_VIEW_SCALES) * len(CROP_VIEW_POSITIONS) ** 2  # the store's layout


def picture_box(keyframes: np.ndarray, window=_DETECT) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the picture: the window of a video inside an interface,
    else the frame, less paired letterbox/pillarbox bars; no safe margins."""
    win = window_box(keyframes) if window is _DETECT else window
    top, left = (win[0], win[2]) if win else (0, 0)
    inner = keyframes if win is None else np.ascontiguousarray(keyframes[:, win[0]:win[1], win[2]:win[3]])
    t, b, lo, r = content_box(inner)
    return top + t, top + b, left + lo, left + r


#: side of the luma image of the picture that the crop views are cut from (a 70 % view spans
#: 67 of its pixels, over twice pHash's 32)
CROP_VIEW_LUMA = 96


@lru_cache(maxsize=1)
def crop_view_boxes() -> np.ndarray:
    """``float64[N_CROP_VIEWS, 4]``: (top, bottom, left, right) of each crop view as fractions
    of the picture: for each scale and position, the crop window less the safe margins that a
    copy of that crop hashes as its own view."""
    out = []
    for s in CROP_VIEW_SCALES:
        mh, mw = s * SAFE_MARGIN[0], s * SAFE_MARGIN[1]
        for py in CROP_VIEW_POSITIONS:
            for px in CROP_VIEW_POSITIONS:
                y0, x0 = py * (1 - s), px * (1 - s)
                out.append((y0 + mh, y0 + s - mh, x0 + mw, x0 + s - mw))
    return np.clip(np.array(out, np.float64), 0.0, 1.0)


def crop_view_phash(keyframes: np.ndarray, window=_DETECT) -> tuple[np.ndarray, np.ndarray]:
    """64-bit pHashes from one luma image of the picture (:func:`picture_box`) per keyframe:
    every crop view (:func:`crop_view_boxes`), ``uint8[k, N_CROP_VIEWS, 8]``, and the whole
    view mirrored left to right, ``uint8[k, 8]`` (for opt-in mirrored matching); all zeros for
    a picture too small to crop."""
    k = len(keyframes)
    views, mirror = np.zeros((k, N_CROP_VIEWS, 8), np.uint8), np.zeros((k, 8), np.uint8)
    top, bottom, left, right = picture_box(keyframes, window)
    if min(bottom - top, right - left) < 32:
        return views, mirror
    luma = kernels.luma_area_downsample(np.ascontiguousarray(keyframes[:, top:bottom, left:right]),
                                        CROP_VIEW_LUMA, CROP_VIEW_LUMA)
    views = kernels.phash64_boxes(luma, crop_view_boxes())
    whole = np.array([[SAFE_MARGIN[0], 1 - SAFE_MARGIN[0], SAFE_MARGIN[1], 1 - SAFE_MARGIN[1]]], np.float64)
    mirror = kernels.phash64_boxes(np.ascontiguousarray(luma[:, :, ::-1]), whole)[:, 0]
    return views, mirror


def hash_view(keyframes: np.ndarray, window=_DETECT) -> np.ndarray:
    """The part of each keyframe that is hashed and described (:func:`view_box`).
    C-contiguous uint8[k, h, w, 3]."""
    top, bottom, left, right = view_box(keyframes, window)
    return np.ascontiguousarray(keyframes[:, top:bottom, left:right])


def _check_sample(s: ClipSample) -> None:
    kf = s.keyframes
    if not isinstance(kf, np.ndarray) or kf.dtype != np.uint8 or kf.ndim != 4 or kf.shape[3] != 3:
        got = f"{kf.dtype}{list(kf.shape)}" if isinstance(kf, np.ndarray) else type(kf).__name__
        raise InputError(f"clip {s.clip_id}: keyframes must be uint8[k,H,W,3] RGB, got {got}")
    if len(kf) == 0:
        raise InputError(f"clip {s.clip_id}: no keyframes could be sampled; the source is empty")
    if len(s.keyframe_times) != len(kf):
        raise InputError(f"clip {s.clip_id}: {len(kf)} keyframes but {len(s.keyframe_times)} times")


def query_features(sample: ClipSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keyframe hashes, qualities, embedding) of one clip, without storing anything."""
    new = compute_features([sample])[0]
    return new.keyframe_hashes, new.keyframe_quality, new.embedding


def compute_features(samples: Sequence[ClipSample], thresholds: dict | None = None) -> list[NewClip]:
    """Features of a batch of clips. Raises :class:`InputError` for a bad clip."""
    for s in samples:
        _check_sample(s)
    descs, hashes, quals, phashes, thumbs, views, previews = [], [], [], [], [], [], []
    crops = []
    for s in samples:
        win = window_box(s.keyframes)  # once: the hashed view and the crop views share it
        crops.append(crop_view_phash(s.keyframes, win))
        kf = hash_view(s.keyframes, win)
        h, q = kernels.pdq256(kf)
        hashes.append(h)
        quals.append(q)
        phashes.append(kernels.phash64(kf))
        descs.append(kernels.keyframe_descriptors(kf))
        mid = len(s.keyframes) // 2  # the stored thumbnail: the middle keyframe, whole frame
        thumbs.append(thumbnails(np.ascontiguousarray(s.keyframes[mid:mid + 1]))[0])
        # frame triggers judge the hashed view: the picture without letterbox or pillarbox bars,
        # burned-in overlay bars and the safe margins where timestamps and logos live
        views.append(trigger_view(kf))
        previews.append(preview_strip(s.keyframes, s.keyframe_times))
    counts = np.array([len(d) for d in descs], dtype=np.int64)
    kf_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    tel_time, tel_vals, tel_start, tel_count = _stack_telemetry([s.telemetry for s in samples])
    tel_stats = kernels.telemetry_stats(tel_time, tel_vals, tel_start, tel_count)
    emb = kernels.clip_embeddings(np.concatenate(descs), kf_start, counts, tel_stats, projection())
    out = []
    for i, s in enumerate(samples):
        trig = telemetry_triggers(s.telemetry, thresholds) + frame_triggers(
            views[i], s.keyframe_times, thresholds, s.telemetry
        )
        meta = dict(s.meta)
        meta["triggers_version"] = TRIGGERS_VERSION
        if s.telemetry is not None and s.telemetry.issues:
            meta["telemetry_issues"] = s.telemetry.issues
        out.append(
            NewClip(
                clip_id=s.clip_id,
                digest=s.digest,
                source=s.source,
                duration_s=float(s.duration_s),
                keyframe_hashes=hashes[i],
                keyframe_phash=phashes[i],
                view_phash=crops[i][0],
                mirror_phash=crops[i][1],
                keyframe_quality=quals[i],
                keyframe_times=np.asarray(s.keyframe_times, dtype=np.float32),
                embedding=emb[i],
                thumbnail=thumbs[i],
                preview=previews[i][0],
                preview_times=previews[i][1],
                # the dynamics view of rarity (engine.scenes.rarity) compares these across the region
                telemetry_stats=tel_stats[i] if tel_count[i] and tel_stats[i, 0] > 0 else None,
                source_offset_s=float(s.source_offset_s),
                fps=float(s.fps),
                drive_id=s.drive_id,
                vehicle_id=s.vehicle_id,
                camera=s.camera,
                recording_id=s.recording_id or s.digest,
                start_time=float(s.start_time),
                width=int(s.keyframes.shape[2]),
                height=int(s.keyframes.shape[1]),
                triggers=trig,
                meta=meta,
            )
        )
    return out


def _stack_telemetry(tels: Sequence[Telemetry | None]):
    times, vals, counts = [], [], []
    for t in tels:
        if t is None:
            counts.append(0)
            continue
        times.append(np.asarray(t.time, dtype=np.float64))
        vals.append(np.asarray(t.values, dtype=np.float32))
        counts.append(len(t.time))
    count = np.asarray(counts, dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    if times:
        return np.concatenate(times), np.ascontiguousarray(np.concatenate(vals)), start, count
    return np.zeros(0, np.float64), np.zeros((0, 4), np.float32), start, count
