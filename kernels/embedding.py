"""Keyframe descriptors, clip telemetry statistics and fixed-projection clip embeddings.

Descriptor of one keyframe (``float32[DESCRIPTOR_DIM]``), computed from a 32x32 RGB area
average of the frame (one fused pass over the frame, :mod:`kernels.luma`); Y in 0..1, Cb/Cr in
-0.5..0.5 (BT.601 full range):

=================  ==============  ==========================================================
block              offset, size    content
=================  ==============  ==========================================================
HOG                0, 128          4x4 cells (8x8 px) x 8 unsigned orientations, soft-binned
                                   linearly between the two nearest orientation bins; mean
                                   gradient magnitude per pixel (central differences, edges
                                   replicated); index ``(cy*4 + cx)*8 + o``
COLOUR             128, 48         4x4 grid means of (Y, Cb, Cr); index ``(cy*4 + cx)*3 + ch``
STATS              176, 8          mean Y, std Y, mean Cb, mean Cr, std Cb, std Cr, mean
                                   gradient magnitude, soft dark fraction mean(clip((0.3-Y)/0.2))
THUMB              184, 64         8x8 luma thumbnail (Y means of 4x4 px), for motion energy
=================  ==============  ==========================================================

Clip embedding input (``EMBEDDING_INPUT_DIM`` = 506), blocks concatenated in this order:

=============  ====  =========================================================  ======
block          size  content                                                    weight
=============  ====  =========================================================  ======
layout         128   mean over keyframes of HOG                                 0.5
appearance     56    mean of COLOUR (Y - 0.5) and STATS - STATS_CENTER          1.0
variability    176   std over keyframes of HOG and COLOUR                       0.5
structure      64    mean THUMB minus its own mean (brightness-free layout)     0.5
motion         66    per-cell mean |thumb[t+1] - thumb[t]|, then its mean and   0.5
                     the max over t of the per-step cell mean
telemetry      16    ``telemetry_stats`` row times TELEMETRY_SCALE              2.0
=============  ====  =========================================================  ======

``clipdex-emb-v2`` standardises every input feature before projecting: ``(x - CENTER) /
max(SD, floor)`` with fixed, versioned constants (:mod:`kernels._embedding_calibration`),
calibrated once on a fixture fleet (the command is in that module) and never refitted per
region, so embeddings of every region stay comparable. The floor is 0.1 x the block's mean SD
(features that barely vary cannot dominate). Each block is then divided by the root of its size
(every block has an expected squared norm of about 1) and multiplied by its weight. v1
L2-normalised raw blocks of mostly positive features: every vector pointed the same way and
per-block neighbour precision was 0.19-0.36 on the demo fleet; standardised, the embedding's
same-scenario precision@10 rose from 0.44 to 0.51 and rare recall@k from 0.47 to ~0.6 (see
docs/quality.md). A clip without telemetry gets a zero telemetry block (the neutral value).

Telemetry statistics per clip (``TELEMETRY_DIM`` = 16), NaN = missing, each over the non-NaN
samples of its channel (0 when a channel has none), population std, fractions over samples:
0 presence (1 if any channel has a value), 1-4 speed mean/std/min/max, 5-7 accel min/max/std,
8-9 mean/max |yaw_rate|, 10-11 jerk std / max |jerk| (jerk = d accel / dt between consecutive
valid accel samples, using the time array), 12 fraction accel < -3 m/s^2, 13 fraction speed <
0.5 m/s, 14-15 mean/max |steering|.
"""

import math

import numba
import numpy as np

from ._config import FLOAT_JIT, PARALLEL
from ._validate import check_array, check_frames, check_int
from .luma import FRAMES_PER_BLOCK, _accumulate_rows, _merge_sums, area_axis_weights

__all__ = [
    "DESCRIPTOR_DIM",
    "EMBEDDING_DIM",
    "EMBEDDING_INPUT_DIM",
    "EMBEDDING_VERSION",
    "TELEMETRY_DIM",
    "clip_embeddings",
    "embedding_projection",
    "keyframe_descriptors",
    "telemetry_stats",
]

EMBEDDING_VERSION = "clipdex-emb-v4"
EMBEDDING_DIM = 128
#: the last SCENE_DIMS output coordinates are the scene directions calibrated on labelled real
#: footage (lighting, weather, road type), the SCENE_DIMS before them the scenario directions
#: calibrated on the fixture fleet, each set scaled by SCENE_WEIGHT; the others are the seeded
#: random projection
SCENE_DIMS = 6
#: root of each direction set's variance relative to the whole input's
SCENE_WEIGHT = 1.0

WORK_SIZE = 32  # side of the working image
CELLS = 4  # HOG / colour grid side
ORIENTATIONS = 8
THUMB_SIZE = 8

HOG_OFFSET, HOG_SIZE = 0, CELLS * CELLS * ORIENTATIONS
COLOUR_OFFSET, COLOUR_SIZE = HOG_OFFSET + HOG_SIZE, CELLS * CELLS * 3
STATS_OFFSET, STATS_SIZE = COLOUR_OFFSET + COLOUR_SIZE, 8
THUMB_OFFSET, THUMB_SIZE_FLAT = STATS_OFFSET + STATS_SIZE, THUMB_SIZE * THUMB_SIZE
DESCRIPTOR_DIM = THUMB_OFFSET + THUMB_SIZE_FLAT  # 248

TELEMETRY_DIM = 16
#: fixed scales bringing each telemetry statistic to order 1
TELEMETRY_SCALE = np.array(
    [1.0, 1 / 30, 1 / 5, 1 / 30, 1 / 30, 1 / 5, 1 / 5, 1 / 2, 1 / 0.3, 1 / 0.5, 1 / 5, 1 / 10,
     1.0, 1.0, 1 / 0.3, 1 / 0.5], np.float32)
#: typical values subtracted from STATS before normalisation (so dark != bright after L2)
STATS_CENTER = np.array([0.5, 0.2, 0.0, 0.0, 0.05, 0.05, 0.03, 0.2], np.float32)

#: (name, size, weight) of the clip-embedding input blocks, in order
BLOCKS = (
    ("layout", HOG_SIZE, 0.5),
    ("appearance", COLOUR_SIZE + STATS_SIZE, 1.0),
    ("variability", HOG_SIZE + COLOUR_SIZE, 0.5),
    ("structure", THUMB_SIZE_FLAT, 0.5),
    ("motion", THUMB_SIZE_FLAT + 2, 0.5),
    ("telemetry", TELEMETRY_DIM, 2.0),
)
EMBEDDING_INPUT_DIM = sum(b[1] for b in BLOCKS)  # 506
_BLOCK_SIZES = np.array([b[1] for b in BLOCKS], np.int64)
#: SD floor per block, as a fraction of the block's mean calibrated SD
SD_FLOOR_FRACTION = 0.1


def input_standardisation(center=None, sd=None) -> tuple[np.ndarray, np.ndarray]:
    """(offset, gain) float64[EMBEDDING_INPUT_DIM]: input x becomes (x - offset) * gain.

    ``gain = weight / (max(sd, 0.1 * block mean sd) * sqrt(block size))``; by default from the
    fixed calibration constants of this embedding version.
    """
    if center is None or sd is None:
        from ._embedding_calibration import INPUT_CENTER, INPUT_SD

        center = INPUT_CENTER if center is None else center
        sd = INPUT_SD if sd is None else sd
    center = np.asarray(center, np.float64)
    sd = np.asarray(sd, np.float64)
    if center.shape != (EMBEDDING_INPUT_DIM,) or sd.shape != (EMBEDDING_INPUT_DIM,):
        raise ValueError(f"calibration constants must have {EMBEDDING_INPUT_DIM} values; got "
                         f"{center.shape} and {sd.shape}; regenerate kernels/_embedding_calibration.py")
    gain = np.empty(EMBEDDING_INPUT_DIM, np.float64)
    o = 0
    for _, size, weight in BLOCKS:
        block = sd[o:o + size]
        floor = SD_FLOOR_FRACTION * float(block.mean()) + 1e-12
        gain[o:o + size] = weight / (np.maximum(block, floor) * math.sqrt(size))
        o += size
    return np.ascontiguousarray(center), gain

_HARD_BRAKE = -3.0  # m/s^2
_STOPPED = 0.5  # m/s


# ---------------------------------------------------------------- keyframe descriptors
@numba.njit(**FLOAT_JIT)
def _bin_rgb(accf, c_start, c_count, c_weight, scale, out_row):
    for j in range(out_row.shape[0]):
        r = g = b = np.float32(0.0)
        base = 3 * c_start[j]
        for t in range(c_count[j]):
            w = c_weight[j, t]
            r += w * accf[base + 3 * t]
            g += w * accf[base + 3 * t + 1]
            b += w * accf[base + 3 * t + 2]
        out_row[j, 0] = r * scale
        out_row[j, 1] = g * scale
        out_row[j, 2] = b * scale


@numba.njit(**FLOAT_JIT)
def describe_small(rgb, ycc, desc):
    """Descriptor of one 32x32 RGB (0..255, float64) image into ``desc`` (float32)."""
    n = rgb.shape[0]
    for y in range(n):
        for x in range(n):
            r, g, b = rgb[y, x, 0], rgb[y, x, 1], rgb[y, x, 2]
            ycc[y, x, 0] = (0.299 * r + 0.587 * g + 0.114 * b) / 255.0
            ycc[y, x, 1] = (-0.168736 * r - 0.331264 * g + 0.5 * b) / 255.0
            ycc[y, x, 2] = (0.5 * r - 0.418688 * g - 0.081312 * b) / 255.0
    desc[:] = 0.0
    cell = n // CELLS
    tcell = n // THUMB_SIZE
    bin_width = math.pi / ORIENTATIONS
    grad_sum = 0.0
    dark = 0.0
    sums = np.zeros(3)
    sq = np.zeros(3)
    for y in range(n):
        for x in range(n):
            yv = ycc[y, x, 0]
            gx = 0.5 * (ycc[y, min(x + 1, n - 1), 0] - ycc[y, max(x - 1, 0), 0])
            gy = 0.5 * (ycc[min(y + 1, n - 1), x, 0] - ycc[max(y - 1, 0), x, 0])
            mag = math.sqrt(gx * gx + gy * gy)
            grad_sum += mag
            cidx = (y // cell) * CELLS + (x // cell)
            if mag > 0.0:
                theta = math.atan2(gy, gx)
                if theta < 0.0:
                    theta += math.pi
                pos = theta / bin_width - 0.5
                b0 = math.floor(pos)
                frac = pos - b0
                o0 = int(b0) % ORIENTATIONS
                o1 = (o0 + 1) % ORIENTATIONS
                desc[HOG_OFFSET + cidx * ORIENTATIONS + o0] += (1.0 - frac) * mag
                desc[HOG_OFFSET + cidx * ORIENTATIONS + o1] += frac * mag
            for ch in range(3):
                v = ycc[y, x, ch]
                desc[COLOUR_OFFSET + cidx * 3 + ch] += v
                sums[ch] += v
                sq[ch] += v * v
            desc[THUMB_OFFSET + (y // tcell) * THUMB_SIZE + (x // tcell)] += yv
            dark += min(max((0.3 - yv) / 0.2, 0.0), 1.0)
    per_cell = 1.0 / (cell * cell)
    for t in range(HOG_SIZE):
        desc[HOG_OFFSET + t] *= per_cell
    for t in range(COLOUR_SIZE):
        desc[COLOUR_OFFSET + t] *= per_cell
    for t in range(THUMB_SIZE_FLAT):
        desc[THUMB_OFFSET + t] *= 1.0 / (tcell * tcell)
    npx = float(n * n)
    mean = sums / npx
    std = np.sqrt(np.maximum(sq / npx - mean * mean, 0.0))
    desc[STATS_OFFSET + 0] = mean[0]
    desc[STATS_OFFSET + 1] = std[0]
    desc[STATS_OFFSET + 2] = mean[1]
    desc[STATS_OFFSET + 3] = mean[2]
    desc[STATS_OFFSET + 4] = std[1]
    desc[STATS_OFFSET + 5] = std[2]
    desc[STATS_OFFSET + 6] = grad_sum / npx
    desc[STATS_OFFSET + 7] = dark / npx


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _keyframe_descriptors(frames):
    n, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    out = np.empty((n, DESCRIPTOR_DIM), np.float32)
    r_start, r_count, r_weight = area_axis_weights(height, WORK_SIZE)
    c_start, c_count, c_weight = area_axis_weights(width, WORK_SIZE)
    scale = 1.0 / (float(height) * float(width))
    full_weight = np.float32(WORK_SIZE)
    n_blocks = (n + FRAMES_PER_BLOCK - 1) // FRAMES_PER_BLOCK
    for blk in numba.prange(n_blocks):
        acc16 = np.empty(3 * width, np.uint16)
        accf = np.empty(3 * width, np.float32)
        rgb = np.empty((WORK_SIZE, WORK_SIZE, 3), np.float64)
        ycc = np.empty((WORK_SIZE, WORK_SIZE, 3), np.float64)
        for f in range(blk * FRAMES_PER_BLOCK, min(n, (blk + 1) * FRAMES_PER_BLOCK)):
            flat = frames[f].reshape((height, width * 3))
            for i in range(WORK_SIZE):
                n_int, n_float = _accumulate_rows(flat, r_start[i], r_count[i], r_weight[i],
                                                  full_weight, acc16, accf)
                _merge_sums(acc16, accf, n_int, n_float, full_weight)
                _bin_rgb(accf, c_start, c_count, c_weight, scale, rgb[i])
            describe_small(rgb, ycc, out[f])
    return out


def keyframe_descriptors(frames: np.ndarray) -> np.ndarray:
    """Descriptor ``float32[n, DESCRIPTOR_DIM]`` of each RGB keyframe (layout: module doc)."""
    check_frames("frames", frames)
    return _keyframe_descriptors(frames)


# ---------------------------------------------------------------- telemetry statistics
@numba.njit(**FLOAT_JIT)
def _moments(values, col, lo, hi):
    """count, mean, std, min, max, mean |v|, max |v| of the non-NaN values of a column."""
    cnt = 0
    s = 0.0
    sa = 0.0
    vmin, vmax, amax = math.inf, -math.inf, 0.0
    for t in range(lo, hi):
        v = float(values[t, col])
        if not math.isnan(v):
            cnt += 1
            s += v
            sa += abs(v)
            vmin = min(vmin, v)
            vmax = max(vmax, v)
            amax = max(amax, abs(v))
    if cnt == 0:
        return 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    mean = s / cnt
    ss = 0.0
    for t in range(lo, hi):
        v = float(values[t, col])
        if not math.isnan(v):
            ss += (v - mean) * (v - mean)
    return cnt, mean, math.sqrt(ss / cnt), vmin, vmax, sa / cnt, amax


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _telemetry_stats(time, values, tel_start, tel_count):
    n_clips = tel_start.shape[0]
    out = np.zeros((n_clips, TELEMETRY_DIM), np.float32)
    for c in numba.prange(n_clips):
        lo, hi = tel_start[c], tel_start[c] + tel_count[c]
        ns, s_mean, s_std, s_min, s_max, _, _ = _moments(values, 0, lo, hi)
        na, _, a_std, a_min, a_max, _, _ = _moments(values, 1, lo, hi)
        ny, _, _, _, _, y_amean, y_amax = _moments(values, 2, lo, hi)
        nst, _, _, _, _, st_amean, st_amax = _moments(values, 3, lo, hi)
        if ns + na + ny + nst == 0:
            continue
        # jerk between consecutive valid accel samples
        nj = 0
        js = 0.0
        jss = 0.0
        jmax = 0.0
        prev = -1
        brake = 0
        for t in range(lo, hi):
            a = float(values[t, 1])
            if math.isnan(a):
                continue
            if a < _HARD_BRAKE:
                brake += 1
            if prev >= 0:
                dt = time[t] - time[prev]
                if dt > 0.0:
                    j = (a - float(values[prev, 1])) / dt
                    nj += 1
                    js += j
                    jss += j * j
                    jmax = max(jmax, abs(j))
            prev = t
        j_std = 0.0
        if nj > 0:
            jm = js / nj
            j_std = math.sqrt(max(jss / nj - jm * jm, 0.0))
        stopped = 0
        for t in range(lo, hi):
            v = float(values[t, 0])
            if not math.isnan(v) and v < _STOPPED:
                stopped += 1
        row = out[c]
        row[0] = 1.0
        row[1], row[2], row[3], row[4] = s_mean, s_std, s_min, s_max
        row[5], row[6], row[7] = a_min, a_max, a_std
        row[8], row[9] = y_amean, y_amax
        row[10], row[11] = j_std, jmax
        row[12] = brake / na if na > 0 else 0.0
        row[13] = stopped / ns if ns > 0 else 0.0
        row[14], row[15] = st_amean, st_amax
    return out


def telemetry_stats(time: np.ndarray, values: np.ndarray, tel_start: np.ndarray,
                    tel_count: np.ndarray) -> np.ndarray:
    """Per-clip telemetry statistics ``float32[C, TELEMETRY_DIM]`` (layout: module doc).

    Clip ``c`` owns samples ``tel_start[c] .. tel_start[c] + tel_count[c] - 1``; ``time`` is
    float64 seconds, increasing within a clip; ``values`` float32 ``[M, 4]`` (speed, accel,
    yaw_rate, steering), NaN = missing.
    """
    check_array("time", time, np.float64, 1, "float64[M]")
    check_array("values", values, np.float32, 2, "float32[M,4]")
    if values.shape != (time.shape[0], 4):
        raise ValueError(f"values must be float32[M,4] with M = len(time) = {time.shape[0]}; "
                         f"got shape {values.shape}")
    _check_spans("tel_start", tel_start, "tel_count", tel_count, time.shape[0])
    return _telemetry_stats(time, values, tel_start, tel_count)


def _check_spans(start_name, start, count_name, count, n_rows):
    check_array(start_name, start, np.int64, 1, "int64[C]")
    check_array(count_name, count, np.int64, 1, "int64[C]")
    if start.shape != count.shape:
        raise ValueError(f"{start_name} and {count_name} must have the same length; got "
                         f"{start.shape[0]} and {count.shape[0]}")
    if count.size and (count.min() < 0 or start.min() < 0 or (start + count).max() > n_rows):
        raise ValueError(f"{start_name}/{count_name} must address rows 0..{n_rows}; got "
                         "negative or out-of-range spans")


# ---------------------------------------------------------------- clip embeddings
@numba.njit(**FLOAT_JIT)
def clip_input_vector(descriptors, k0, nk, tel_row, tel_scale, stats_center, sizes, offset,
                      gain, x):
    """The standardised, weighted input vector of one clip (``x``: float64[D_in]).

    With ``gain`` all ones and ``offset`` all zeros it is the raw input vector (calibration)."""
    x[:] = 0.0
    if nk == 0:
        return
    o_layout = 0
    o_app = o_layout + sizes[0]
    o_var = o_app + sizes[1]
    o_struct = o_var + sizes[2]
    o_motion = o_struct + sizes[3]
    o_tel = o_motion + sizes[4]
    inv = 1.0 / nk
    # means and stds over keyframes
    for t in range(HOG_SIZE + COLOUR_SIZE + STATS_SIZE + THUMB_SIZE_FLAT):
        s = 0.0
        for k in range(nk):
            s += descriptors[k0 + k, t]
        mean = s * inv
        ss = 0.0
        for k in range(nk):
            d = descriptors[k0 + k, t] - mean
            ss += d * d
        std = math.sqrt(ss * inv)
        if t < HOG_SIZE:
            x[o_layout + t] = mean
            x[o_var + t] = std
        elif t < HOG_SIZE + COLOUR_SIZE:
            c = t - COLOUR_OFFSET
            x[o_app + c] = mean - 0.5 if c % 3 == 0 else mean
            x[o_var + t] = std
        elif t < THUMB_OFFSET:
            c = t - STATS_OFFSET
            x[o_app + COLOUR_SIZE + c] = mean - stats_center[c]
        else:
            x[o_struct + t - THUMB_OFFSET] = mean
    tm = 0.0
    for t in range(THUMB_SIZE_FLAT):
        tm += x[o_struct + t]
    tm /= THUMB_SIZE_FLAT
    for t in range(THUMB_SIZE_FLAT):
        x[o_struct + t] -= tm
    # motion energy
    if nk > 1:
        step_max = 0.0
        total = 0.0
        for k in range(nk - 1):
            step = 0.0
            for t in range(THUMB_SIZE_FLAT):
                d = abs(descriptors[k0 + k + 1, THUMB_OFFSET + t]
                        - descriptors[k0 + k, THUMB_OFFSET + t])
                x[o_motion + t] += d
                step += d
            step /= THUMB_SIZE_FLAT
            total += step
            step_max = max(step_max, step)
        for t in range(THUMB_SIZE_FLAT):
            x[o_motion + t] /= nk - 1
        x[o_motion + THUMB_SIZE_FLAT] = total / (nk - 1)
        x[o_motion + THUMB_SIZE_FLAT + 1] = step_max
    for t in range(TELEMETRY_DIM):
        x[o_tel + t] = tel_row[t] * tel_scale[t]
    # fixed standardisation and block weights
    for t in range(x.shape[0]):
        x[t] = (x[t] - offset[t]) * gain[t]
    if tel_row[0] == 0.0:  # no telemetry: the neutral (zero) block
        for t in range(TELEMETRY_DIM):
            x[o_tel + t] = 0.0


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _clip_embeddings(descriptors, kf_start, kf_count, tel_stats, projection, tel_scale,
                     stats_center, sizes, offset, gain):
    n_clips = kf_start.shape[0]
    d_in, d_out = projection.shape
    out = np.zeros((n_clips, d_out), np.float32)
    block = 32
    n_blocks = (n_clips + block - 1) // block
    for blk in numba.prange(n_blocks):
        x = np.empty(d_in, np.float64)
        y = np.empty(d_out, np.float64)
        for c in range(blk * block, min(n_clips, (blk + 1) * block)):
            if kf_count[c] == 0:
                continue
            clip_input_vector(descriptors, kf_start[c], kf_count[c], tel_stats[c], tel_scale,
                              stats_center, sizes, offset, gain, x)
            y[:] = 0.0
            for i in range(d_in):
                xi = x[i]
                if xi != 0.0:
                    for j in range(d_out):
                        y[j] += xi * projection[i, j]
            ss = 0.0
            for j in range(d_out):
                ss += y[j] * y[j]
            if ss > 0.0:
                f = 1.0 / math.sqrt(ss)
                for j in range(d_out):
                    out[c, j] = y[j] * f
    return out


def clip_embeddings(descriptors: np.ndarray, kf_start: np.ndarray, kf_count: np.ndarray,
                    tel_stats: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """L2-normalised clip embeddings ``float32[C, projection.shape[1]]`` (blocks: module doc).

    Clip ``c`` owns descriptor rows ``kf_start[c] .. kf_start[c] + kf_count[c] - 1`` in time
    order; a clip with no keyframes gets a zero vector.
    """
    check_array("descriptors", descriptors, np.float32, 2, "float32[N,DESCRIPTOR_DIM]")
    if descriptors.shape[1] != DESCRIPTOR_DIM:
        raise ValueError(f"descriptors must have {DESCRIPTOR_DIM} columns "
                         f"({EMBEDDING_VERSION}); got {descriptors.shape[1]}")
    _check_spans("kf_start", kf_start, "kf_count", kf_count, descriptors.shape[0])
    check_array("tel_stats", tel_stats, np.float32, 2, "float32[C,TELEMETRY_DIM]")
    if tel_stats.shape != (kf_start.shape[0], TELEMETRY_DIM):
        raise ValueError(f"tel_stats must be float32[C={kf_start.shape[0]}, {TELEMETRY_DIM}]; "
                         f"got shape {tel_stats.shape}")
    check_array("projection", projection, np.float32, 2, "float32[D_in,D_out]")
    if projection.shape[0] != EMBEDDING_INPUT_DIM or projection.shape[1] < 1:
        raise ValueError(f"projection must be float32[{EMBEDDING_INPUT_DIM}, D_out] (see "
                         f"embedding_projection()); got shape {projection.shape}")
    offset, gain = _standardisation()
    return _clip_embeddings(descriptors, kf_start, kf_count, tel_stats, projection,
                            TELEMETRY_SCALE, STATS_CENTER, _BLOCK_SIZES, offset, gain)


_STANDARDISATION: list = []


def _standardisation() -> tuple[np.ndarray, np.ndarray]:
    if not _STANDARDISATION:
        _STANDARDISATION.append(input_standardisation())
    return _STANDARDISATION[0]


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _clip_input_vectors(descriptors, kf_start, kf_count, tel_stats, tel_scale, stats_center,
                        sizes, offset, gain):
    n_clips = kf_start.shape[0]
    out = np.zeros((n_clips, offset.shape[0]), np.float64)
    for c in numba.prange(n_clips):
        clip_input_vector(descriptors, kf_start[c], kf_count[c], tel_stats[c], tel_scale,
                          stats_center, sizes, offset, gain, out[c])
    return out


def clip_input_vectors(descriptors: np.ndarray, kf_start: np.ndarray, kf_count: np.ndarray,
                       tel_stats: np.ndarray, standardised: bool = True) -> np.ndarray:
    """The input vectors ``float64[C, EMBEDDING_INPUT_DIM]`` that the projection sees;
    ``standardised=False`` gives the raw features (what the calibration is fitted on)."""
    check_array("descriptors", descriptors, np.float32, 2, "float32[N,DESCRIPTOR_DIM]")
    _check_spans("kf_start", kf_start, "kf_count", kf_count, descriptors.shape[0])
    check_array("tel_stats", tel_stats, np.float32, 2, "float32[C,TELEMETRY_DIM]")
    if standardised:
        offset, gain = _standardisation()
    else:
        offset, gain = np.zeros(EMBEDDING_INPUT_DIM), np.ones(EMBEDDING_INPUT_DIM)
    return _clip_input_vectors(descriptors, kf_start, kf_count, tel_stats, TELEMETRY_SCALE,
                               STATS_CENTER, _BLOCK_SIZES, offset, gain)


def embedding_projection(in_dim: int | None = None, out_dim: int = EMBEDDING_DIM,
                         seed: int = 20261126, scene_directions: np.ndarray | None = None,
                         scenario_directions: np.ndarray | None = None) -> np.ndarray:
    """Fixed projection ``float32[in_dim, out_dim]``: Gaussian entries N(0,1)/sqrt(out_dim),
    except that for the embedding's own input the last ``2 * SCENE_DIMS`` columns are
    ``SCENE_WEIGHT`` times the scenario directions and the scene directions (by default the
    calibrated ones of :mod:`kernels._embedding_calibration`)."""
    in_dim = EMBEDDING_INPUT_DIM if in_dim is None else check_int("in_dim", in_dim, 1)
    out_dim = check_int("out_dim", out_dim, 1)
    rng = np.random.default_rng(seed)
    proj = rng.standard_normal((in_dim, out_dim)) / np.sqrt(out_dim)
    if in_dim == EMBEDDING_INPUT_DIM and out_dim > 2 * SCENE_DIMS:
        from . import _embedding_calibration as calib

        for col, given, default in ((out_dim - SCENE_DIMS, scene_directions, calib.SCENE_DIRECTIONS),
                                    (out_dim - 2 * SCENE_DIMS, scenario_directions, calib.SCENARIO_DIRECTIONS)):
            directions = default if given is None else np.asarray(given, np.float64)
            if directions.shape != (EMBEDDING_INPUT_DIM, SCENE_DIMS):
                raise ValueError(f"directions must be [{EMBEDDING_INPUT_DIM}, {SCENE_DIMS}]; got {directions.shape}")
            proj[:, col:col + SCENE_DIMS] = SCENE_WEIGHT * directions
    return proj.astype(np.float32)
