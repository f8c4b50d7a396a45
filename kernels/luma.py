"""RGB -> luma and exact area-average downsampling, fused in one pass over each frame.

The building block shared by pHash, PDQ and the keyframe descriptors is a *separable weighted
downsample*: output row ``I`` is ``sum_t row_weight[I, t] * frame[row_start[I] + t]`` and output
column ``J`` likewise over columns. Each kernel only supplies its per-axis weights:

* area averaging (:func:`area_axis_weights`): the integer overlap, in units of 1/(n_out*n_in)
  pixel, of input pixel ``i`` ([i*n_out, (i+1)*n_out)) with output bin ``k`` ([k*n_in,
  (k+1)*n_in)); the weights of one bin sum to ``n_in``. Being small integers they accumulate
  exactly in float32. Up-sampling (n_in < n_out, e.g. 1x1 frames) works the same way.
* PDQ's Jarosz tent (:mod:`kernels.pdq`): the rows of the two-pass box operator at the
  decimation points.

Per output row, the kernel sums the weighted input rows over the *interleaved* RGB bytes (one
contiguous FMA stream, no de-interleaving in the hot loop), then converts the ``3W`` sums to luma
once and bins the columns. Rows that no output needs are never read.

:func:`area_luma_frame` is the area-weights fast path (pHash, :func:`luma_area_downsample`):
fully covered rows summed in uint16 two at a time, the merge folded into the binning, and the
binning dot products over zero-padded contiguous slices (an indexed ``acc[base + t]`` made LLVM
emit gathers for the negative-index wraparound; slices do not). PDQ keeps
:func:`weighted_luma_frame`, whose arithmetic its bit-exactness tests pin down.
"""

import numba
import numpy as np

from ._config import FLOAT_JIT, INT_JIT, PARALLEL
from ._validate import check_frames, check_int

__all__ = ["LUMA_COEFFS", "area_axis_weights", "luma_area_downsample"]

#: column-weight rows are zero-padded to a multiple of this many float32 lanes, so the binning
#: dot products run whole vector iterations (no scalar remainder loop)
BIN_PAD = 32

#: BT.601 luma weights of R, G, B
LUMA_COEFFS = (0.299, 0.587, 0.114)
_LR, _LG, _LB = LUMA_COEFFS

#: frames per parallel work item (each item allocates its own scratch)
FRAMES_PER_BLOCK = 2


@numba.njit(**INT_JIT)
def area_axis_weights(n_in, n_out):
    """Exact area-coverage weights of one axis: ``(start int64[n_out], count int64[n_out],
    weight float32[n_out, max_count])``; ``weight`` is the integer overlap (see module doc)."""
    start = np.empty(n_out, np.int64)
    count = np.empty(n_out, np.int64)
    max_count = 0
    for k in range(n_out):
        lo = (k * n_in) // n_out  # first pixel overlapping [k*n_in, (k+1)*n_in) / n_out
        hi = ((k + 1) * n_in + n_out - 1) // n_out  # one past the last
        start[k] = lo
        count[k] = hi - lo
        if hi - lo > max_count:
            max_count = hi - lo
    weight = np.zeros((n_out, max_count), np.float32)
    for k in range(n_out):
        b_lo = k * n_in
        b_hi = (k + 1) * n_in
        for t in range(count[k]):
            i = start[k] + t
            lo = max(b_lo, i * n_out)
            hi = min(b_hi, (i + 1) * n_out)
            weight[k, t] = max(hi - lo, 0)
    return start, count, weight


@numba.njit(**FLOAT_JIT)
def _add_scaled(src, accf, width3, fresh, w):
    """``accf[:width3] (=|+=) w * src[:width3]`` (``fresh``: accf holds nothing yet): the
    exact uint16 sums of full rows, or one partially covered row."""
    if fresh:
        for k in range(width3):
            accf[k] = w * np.float32(src[k])
    else:
        for k in range(width3):
            accf[k] += w * np.float32(src[k])


@numba.njit(**FLOAT_JIT)
def _accumulate_rows(flat, first, count, weights, full_weight, acc16, accf):
    """Weighted sum of the rows ``flat[first:first+count]`` (interleaved RGB bytes).

    Rows whose weight equals ``full_weight`` (fully covered rows of an area bin) are summed
    exactly in ``acc16`` (uint16: twice the SIMD width of float32, the memory-bound hot loop);
    the others are summed with their weight in ``accf``. Returns ``(n_int, n_float)``: whether
    each accumulator holds data; the value is ``accf + full_weight * acc16``. uint16 is flushed
    into ``accf`` every 256 rows so it never overflows.
    """
    width3 = flat.shape[1]
    n_int = 0
    n_float = 0
    for t in range(count):
        w = weights[t]
        row = flat[first + t]
        if w == full_weight:
            if n_int == 0:
                for k in range(width3):
                    acc16[k] = row[k]
            else:
                for k in range(width3):
                    acc16[k] = np.uint16(acc16[k] + np.uint16(row[k]))
            n_int += 1
            if n_int == 256:
                _add_scaled(acc16, accf, width3, n_float == 0, full_weight)
                n_float += 1
                n_int = 0
        else:
            _add_scaled(row, accf, width3, n_float == 0, w)
            n_float += 1
    return n_int, n_float


@numba.njit(**FLOAT_JIT)
def luma_column_weights(c_weight):
    """Fold the BT.601 coefficients into the column weights: ``float32[n_out, 3*max_count]``
    over interleaved RGB, so binning is one contiguous dot product per output pixel."""
    n_out, max_count = c_weight.shape
    w3 = np.empty((n_out, 3 * max_count), np.float32)
    for j in range(n_out):
        for t in range(max_count):
            w3[j, 3 * t] = c_weight[j, t] * _LR
            w3[j, 3 * t + 1] = c_weight[j, t] * _LG
            w3[j, 3 * t + 2] = c_weight[j, t] * _LB
    return w3


@numba.njit(**FLOAT_JIT)
def _merge_sums(acc16, accf, n_int, n_float, full_weight):
    """Leave the weighted row sums in ``accf`` (``accf + full_weight * acc16``)."""
    if n_int == 0:
        return
    _add_scaled(acc16, accf, accf.shape[0], n_float == 0, full_weight)


@numba.njit(**FLOAT_JIT)
def _bin_columns(accf, c_start, c_count, c_w3, scale, out_row):
    for j in range(out_row.shape[0]):
        base = 3 * c_start[j]
        w = c_w3[j]
        s = np.float32(0.0)
        for t in range(3 * c_count[j]):
            s += w[t] * accf[base + t]
        out_row[j] = s * scale


@numba.njit(**FLOAT_JIT)
def weighted_luma_frame(frame, r_start, r_count, r_weight, full_weight, c_start, c_count,
                        c_w3, scale, acc16, accf, out):
    """One frame ``uint8[H,W,3]`` -> luma ``out[out_h, out_w]`` with separable weights.

    ``c_w3`` comes from :func:`luma_column_weights`; ``acc16`` uint16[3W] and ``accf``
    float32[3W] are caller scratch. Row weights equal to ``full_weight`` take the exact
    integer path (pass a value no weight equals, e.g. -1.0, to disable it).
    """
    height, width = frame.shape[0], frame.shape[1]
    flat = frame.reshape((height, width * 3))
    for i in range(out.shape[0]):
        n_int, n_float = _accumulate_rows(flat, r_start[i], r_count[i], r_weight[i],
                                          full_weight, acc16, accf)
        _merge_sums(acc16, accf, n_int, n_float, full_weight)
        _bin_columns(accf, c_start, c_count, c_w3, scale, out[i])


@numba.njit(**FLOAT_JIT)
def padded_luma_column_weights(c_weight, full_weight):
    """:func:`luma_column_weights` zero-padded to ``BIN_PAD`` lanes: ``(w3, w3 * full_weight)``.

    Scratch rows must then be ``3W + w3.shape[1]`` long (see :func:`area_luma_frame`).
    """
    w3 = luma_column_weights(c_weight)
    n_out, n3 = w3.shape
    pad = (n3 + BIN_PAD - 1) // BIN_PAD * BIN_PAD
    w3p = np.zeros((n_out, pad), np.float32)
    w3f = np.zeros((n_out, pad), np.float32)
    for j in range(n_out):
        for t in range(n3):
            w3p[j, t] = w3[j, t]
            w3f[j, t] = w3[j, t] * full_weight
    return w3p, w3f


@numba.njit(**FLOAT_JIT)
def _sum_full_rows(flat, first, count, acc16, fresh):
    """``acc16[:3W]`` (``=`` if ``fresh`` else ``+=``) the sum of ``count`` rows from ``first``,
    two rows per pass (half the accumulator loads/stores of a row-at-a-time loop)."""
    width3 = flat.shape[1]
    t = 0
    if fresh:
        if count >= 2:
            r0 = flat[first]
            r1 = flat[first + 1]
            for k in range(width3):
                acc16[k] = np.uint16(r0[k]) + np.uint16(r1[k])
            t = 2
        else:
            r0 = flat[first]
            for k in range(width3):
                acc16[k] = np.uint16(r0[k])
            t = 1
    while t + 2 <= count:
        r0 = flat[first + t]
        r1 = flat[first + t + 1]
        for k in range(width3):
            acc16[k] = np.uint16(acc16[k] + np.uint16(np.uint16(r0[k]) + np.uint16(r1[k])))
        t += 2
    if t < count:
        r0 = flat[first + t]
        for k in range(width3):
            acc16[k] = np.uint16(acc16[k] + np.uint16(r0[k]))


@numba.njit(**FLOAT_JIT)
def area_luma_frame(frame, r_start, r_count, r_weight, full_weight, c_start, c_w3p, c_w3f,
                    scale, acc16, accf, out):
    """Area-average luma of one frame ``uint8[H,W,3]`` into ``out[out_h, out_w]``, fused.

    The fast twin of :func:`weighted_luma_frame` for area weights (``full_weight`` = the
    weight of a row wholly inside a bin, i.e. ``out_h``): per output row, fully covered rows are
    summed exactly in uint16 two at a time, the (at most a few) partially covered rows in
    float32 ``accf``, and the merge of the two is folded into the column binning, which reads
    ``acc16`` directly with the pre-scaled weights ``c_w3f`` when no partial row was seen. The
    binning dot products take contiguous zero-padded slices (``c_w3p``/``c_w3f`` from
    :func:`padded_luma_column_weights`): no negative-index wraparound, hence no gathers, and
    no scalar remainder. ``acc16``/``accf`` are caller scratch of length ``3W + pad`` whose
    tail past ``3W`` is zero (``np.zeros``) and is never written here.
    """
    height, width = frame.shape[0], frame.shape[1]
    flat = frame.reshape((height, width * 3))
    width3 = flat.shape[1]
    pad = c_w3p.shape[1]
    for i in range(out.shape[0]):
        first = r_start[i]
        count = r_count[i]
        weights = r_weight[i]
        n_int = 0
        n_float = 0
        t = 0
        while t < count:
            w = weights[t]
            if w == full_weight:
                run = 1
                while t + run < count and weights[t + run] == full_weight and n_int + run < 256:
                    run += 1
                _sum_full_rows(flat, first + t, run, acc16, n_int == 0)
                n_int += run
                t += run
                if n_int == 256:  # uint16 holds 257 * 255: flush before it could overflow
                    _add_scaled(acc16, accf, width3, n_float == 0, full_weight)
                    n_float += 1
                    n_int = 0
            else:
                _add_scaled(flat[first + t], accf, width3, n_float == 0, w)
                n_float += 1
                t += 1
        out_row = out[i]
        for j in range(out_row.shape[0]):
            base = 3 * c_start[j]
            a16 = acc16[base:base + pad]
            af = accf[base:base + pad]
            s = np.float32(0.0)
            if n_float == 0:
                wf = c_w3f[j]
                for u in range(pad):
                    s += wf[u] * np.float32(a16[u])
            elif n_int == 0:
                wp = c_w3p[j]
                for u in range(pad):
                    s += wp[u] * af[u]
            else:
                wp = c_w3p[j]
                for u in range(pad):
                    s += wp[u] * (af[u] + full_weight * np.float32(a16[u]))
            out_row[j] = s * scale


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _luma_area_downsample(frames, out_h, out_w):
    n, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    out = np.empty((n, out_h, out_w), np.float32)
    r_start, r_count, r_weight = area_axis_weights(height, out_h)
    c_start, _, c_weight = area_axis_weights(width, out_w)
    full_weight = np.float32(out_h)  # the weight of a row lying wholly inside one bin
    c_w3p, c_w3f = padded_luma_column_weights(c_weight, full_weight)
    scale = 1.0 / (float(height) * float(width))
    n_blocks = (n + FRAMES_PER_BLOCK - 1) // FRAMES_PER_BLOCK
    for b in numba.prange(n_blocks):
        acc16 = np.zeros(3 * width + c_w3p.shape[1], np.uint16)
        accf = np.zeros(3 * width + c_w3p.shape[1], np.float32)
        for f in range(b * FRAMES_PER_BLOCK, min(n, (b + 1) * FRAMES_PER_BLOCK)):
            area_luma_frame(frames[f], r_start, r_count, r_weight, full_weight, c_start, c_w3p,
                            c_w3f, scale, acc16, accf, out[f])
    return out


def luma_area_downsample(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """BT.601 luma of RGB ``frames`` area-averaged to ``float32[n, out_h, out_w]`` (0..255).

    Each output pixel is the exact mean of the luma over its rectangle of the frame, with
    fractional coverage of the border pixels when the sizes are not multiples; smaller frames
    (even 1x1) are up-sampled by the same rule (each output pixel takes the pixel it lies in).
    """
    check_frames("frames", frames)
    out_h = check_int("out_h", out_h, 1)
    out_w = check_int("out_w", out_w, 1)
    return _luma_area_downsample(frames, out_h, out_w)
