"""Temporal keyframe accumulation straight from decoded YUV planes.

A video keyframe is the tent-weighted mean of the decoded frames around its sample time (see
``engine/sources/sampling.py``). Converting every decoded frame to full-size RGB first costs
more than decoding it, so this kernel reads the 8-bit planar Y, U and V planes as FFmpeg hands
them over (4:2:0, 4:2:2 or 4:4:4, any line padding), area-averages each plane to the working
size of the accumulator with exact separable area weights (:func:`kernels.luma.area_axis_weights`;
chroma planes are averaged from their own resolution, so subsampled chroma is handled without
an upsampling pass), converts the result to RGB (BT.601 or BT.709, limited or full range, values
clipped to 0..255 per frame like an ``rgb24`` conversion) and adds ``weight * rgb`` into every
accumulator slot the frame belongs to (a frame sits in at most 2-3 keyframe windows).
"""

import numba
import numpy as np

from ._config import FLOAT_JIT
from ._validate import check_array

__all__ = ["YUV_MATRICES", "yuv_area_accumulate"]

#: (Cr->R, Cb->G, Cr->G, Cb->B) coefficients for the two colour matrices
YUV_MATRICES = {
    "bt601": (1.402, -0.344136, -0.714136, 1.772),
    "bt709": (1.5748, -0.187324, -0.468124, 1.8556),
}


@numba.njit(**FLOAT_JIT)
def _box_plane(plane, fy, fx, out, rowacc, pairs):
    """Mean of each ``fy x fx`` block of ``plane`` into ``out`` float32[out_h, out_w].

    Rows are summed in uint16 (fy <= 256); columns by pairwise halving while ``fx`` is even
    (contiguous, vectorised), then by a strided sum for any odd remainder.
    """
    out_h, out_w = out.shape
    width = out_w * fx
    norm = np.float32(1.0 / (fy * fx))
    for i in range(out_h):
        row = plane[i * fy]
        for x in range(width):
            rowacc[x] = np.uint16(row[x])
        for t in range(1, fy):
            row = plane[i * fy + t]
            for x in range(width):
                rowacc[x] += np.uint16(row[x])
        src = rowacc
        dst_pairs = pairs
        n = width
        f = fx
        while f % 2 == 0:  # ping-pong between two buffers: no aliasing, vectorised
            n //= 2
            for x in range(n):
                dst_pairs[x] = src[2 * x] + src[2 * x + 1]
            src, dst_pairs = dst_pairs, src
            f //= 2
        dst = out[i]
        if f == 1:
            for j in range(out_w):
                dst[j] = np.float32(src[j]) * norm
        else:
            for j in range(out_w):
                s = np.uint32(0)
                for t in range(f):
                    s += np.uint32(src[j * f + t])
                dst[j] = np.float32(s) * norm


@numba.njit(**FLOAT_JIT)
def _yuv_area_accumulate(y, u, v, fy, fx, cfy, cfx, acc, slots, weights, full_range, coeffs,
                         planes):
    out_h = acc.shape[2]
    out_w = acc.shape[3]
    rowacc = np.empty(out_w * max(fx, cfx), np.uint16)
    pairs = np.empty(out_w * max(fx, cfx), np.uint16)
    _box_plane(y, fy, fx, planes[0], rowacc, pairs)
    _box_plane(u, cfy, cfx, planes[1], rowacc, pairs)
    _box_plane(v, cfy, cfx, planes[2], rowacc, pairs)
    if full_range:
        y_off, y_scale, c_scale = np.float32(0.0), np.float32(1.0), np.float32(1.0)
    else:
        y_off, y_scale, c_scale = np.float32(16.0), np.float32(255.0 / 219.0), \
            np.float32(255.0 / 224.0)
    cr_r = np.float32(coeffs[0])
    cb_g = np.float32(coeffs[1])
    cr_g = np.float32(coeffs[2])
    cb_b = np.float32(coeffs[3])
    zero = np.float32(0.0)
    top = np.float32(255.0)
    for i in range(out_h):
        py = planes[0, i]
        pu = planes[1, i]
        pv = planes[2, i]
        for j in range(out_w):
            luma = (py[j] - y_off) * y_scale
            cb = (pu[j] - np.float32(128.0)) * c_scale
            cr = (pv[j] - np.float32(128.0)) * c_scale
            py[j] = min(max(luma + cr_r * cr, zero), top)
            pu[j] = min(max(luma + cb_g * cb + cr_g * cr, zero), top)
            pv[j] = min(max(luma + cb_b * cb, zero), top)
    for k in range(slots.shape[0]):
        w = weights[k]
        a = acc[slots[k]]
        for c in range(3):
            for i in range(out_h):
                src = planes[c, i]
                dst = a[c, i]
                for j in range(out_w):
                    dst[j] += w * src[j]


def yuv_area_accumulate(y, u, v, factor, chroma_factor, acc, slots, weights, full_range=False,
                        matrix="bt601", scratch=None):
    """Add ``weights[k] * rgb`` to ``acc[slots[k]]`` for one planar 8-bit YUV frame.

    ``y`` uint8[H, line] and ``u``/``v`` uint8[Hc, line_c] (line padding allowed), ``acc``
    float32[K, 3, out_h, out_w] planar RGB accumulators, ``slots`` int64[m] indices into ``acc``,
    ``weights`` float32[m]. ``rgb`` is the frame box-averaged over ``factor`` = (fy, fx) luma
    pixels per output pixel (chroma over ``chroma_factor``, e.g. (fy/2, fx/2) for 4:2:0), pixels
    past ``out * factor`` ignored, converted with ``matrix`` ("bt601"/"bt709") from limited
    (16-235) or ``full_range`` levels and clipped to 0..255. Modifies ``acc`` in place.
    """
    check_array("y", y, np.uint8, 2, "uint8[H, line]")
    check_array("u", u, np.uint8, 2, "uint8[Hc, line]")
    check_array("v", v, np.uint8, 2, "uint8[Hc, line]")
    check_array("acc", acc, np.float32, 4, "float32[K, 3, h, w]")
    check_array("slots", slots, np.int64, 1, "int64[m]")
    check_array("weights", weights, np.float32, 1, "float32[m]")
    if matrix not in YUV_MATRICES:
        raise ValueError(f"matrix {matrix!r} is unknown; use one of {sorted(YUV_MATRICES)}")
    if u.shape != v.shape:
        raise ValueError(f"u {u.shape} and v {v.shape} planes differ in shape; pass one frame")
    (fy, fx), (cfy, cfx) = (int(f) for f in factor), (int(f) for f in chroma_factor)
    if min(fy, fx, cfy, cfx) < 1 or max(fy, cfy) > 256:
        raise ValueError(f"factors {factor}/{chroma_factor} must be integers in 1..256")
    _, three, out_h, out_w = acc.shape
    if three != 3 or out_h < 1 or out_w < 1:
        raise ValueError(f"acc shape {acc.shape} must be [K, 3, h>=1, w>=1]")
    if out_h * fy > y.shape[0] or out_w * fx > y.shape[1] or out_h * cfy > u.shape[0] \
            or out_w * cfx > u.shape[1]:
        raise ValueError(f"acc {out_h}x{out_w} times factors {factor}/{chroma_factor} exceeds "
                         f"the planes {y.shape}/{u.shape}; shrink the output")
    if slots.shape != weights.shape:
        raise ValueError(f"slots {slots.shape} and weights {weights.shape} differ in length")
    if slots.size and (slots.min() < 0 or slots.max() >= acc.shape[0]):
        raise ValueError(f"slots {slots.tolist()} out of range for {acc.shape[0]} accumulators")
    if scratch is None:
        scratch = np.empty((3, out_h, out_w), np.float32)
    check_array("scratch", scratch, np.float32, 3, "float32[3, h, w]")
    if scratch.shape != (3, out_h, out_w):
        raise ValueError(f"scratch shape {scratch.shape} must be {(3, out_h, out_w)}")
    _yuv_area_accumulate(y, u, v, fy, fx, cfy, cfx, acc, slots, weights, bool(full_range),
                         YUV_MATRICES[matrix], scratch)
