"""64-bit perceptual hash (pHash), bit-compatible in layout with ``imagehash.phash``.

Per frame, in one fused pass: BT.601 luma area-averaged to 32x32 (:mod:`kernels.luma`), the
top-left 8x8 of its 2-D DCT-II (DC included, as imagehash does), thresholded at the median of
those 64 values (mean of the two middle ones, as ``np.median``). Bit ``8*r + c`` (row-major
over the 8x8 block) is stored MSB-first, i.e. ``np.packbits(bits.ravel())``: the bytes equal
``np.packbits(imagehash.phash(img).hash.flatten())``. imagehash resizes with Lanczos from an
8-bit 'L' image, so the two hashes agree closely, not exactly (see the tests).

Arithmetic: exact integer row sums (uint16, flushed to float32 every 256 rows; partially
covered rows weighted in float32), column binning in float32, DCT and median in float64. The
NumPy twin computes the same means in float64, so the 32x32 images differ by float32 rounding
(~1e-5) and the hashes are equal unless a DCT coefficient ties the median to that precision
(frames of a few pixels, whose 32x32 image is constant along an axis, do; natural frames do not).
"""

import math

import numba
import numpy as np

from ._config import FLOAT_JIT, PARALLEL
from ._dct import dct_low
from ._validate import check_array, check_frames
from .luma import FRAMES_PER_BLOCK, area_axis_weights, area_luma_frame, padded_luma_column_weights

__all__ = ["PHASH_BYTES", "dct_ii_matrix", "phash64", "phash64_boxes"]

PHASH_BYTES = 8
_SMALL = 32  # side of the downsampled luma image
_KEEP = 8  # side of the kept low-frequency DCT block


@numba.njit(**FLOAT_JIT)
def dct_ii_matrix(n_keep, n):
    """Unnormalised DCT-II rows ``cos(pi * k * (2 i + 1) / (2 n))`` for ``k < n_keep``."""
    d = np.empty((n_keep, n), np.float64)
    for k in range(n_keep):
        for i in range(n):
            d[k, i] = math.cos(math.pi * k * (2 * i + 1) / (2.0 * n))
    return d


@numba.njit(**FLOAT_JIT)
def _insertion_sort(values):
    for i in range(1, values.shape[0]):
        v = values[i]
        j = i - 1
        while j >= 0 and values[j] > v:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = v


@numba.njit(**FLOAT_JIT)
def _phash_bits(small, dct, tmp, coeffs, sorted_coeffs, out):
    """32x32 luma -> 8 bytes (DCT low 8x8, median threshold, MSB-first packing)."""
    dct_low(small, dct, _KEEP, tmp, coeffs)  # the 8 x 8 low block of the 32 x 32 DCT
    for t in range(_KEEP * _KEEP):
        sorted_coeffs[t] = coeffs[t]
    _insertion_sort(sorted_coeffs)
    median = 0.5 * (sorted_coeffs[31] + sorted_coeffs[32])
    for b in range(PHASH_BYTES):
        byte = 0
        for t in range(8):
            if coeffs[8 * b + t] > median:
                byte |= 1 << (7 - t)
        out[b] = byte


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _phash64(frames):
    n, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    out = np.empty((n, PHASH_BYTES), np.uint8)
    r_start, r_count, r_weight = area_axis_weights(height, _SMALL)
    c_start, _, c_weight = area_axis_weights(width, _SMALL)
    full_weight = np.float32(_SMALL)
    c_w3p, c_w3f = padded_luma_column_weights(c_weight, full_weight)
    scratch = 3 * width + c_w3p.shape[1]
    scale = 1.0 / (float(height) * float(width))
    dct = dct_ii_matrix(_KEEP, _SMALL)
    n_blocks = (n + FRAMES_PER_BLOCK - 1) // FRAMES_PER_BLOCK
    for b in numba.prange(n_blocks):
        acc16 = np.zeros(scratch, np.uint16)
        accf = np.zeros(scratch, np.float32)  # the zero tail past 3W is read (times 0)
        small = np.empty((_SMALL, _SMALL), np.float64)
        tmp = np.empty((_KEEP, _SMALL), np.float64)
        coeffs = np.empty(_KEEP * _KEEP, np.float64)
        sorted_coeffs = np.empty(_KEEP * _KEEP, np.float64)
        for f in range(b * FRAMES_PER_BLOCK, min(n, (b + 1) * FRAMES_PER_BLOCK)):
            area_luma_frame(frames[f], r_start, r_count, r_weight, full_weight, c_start, c_w3p,
                            c_w3f, scale, acc16, accf, small)
            _phash_bits(small, dct, tmp, coeffs, sorted_coeffs, out[f])
    return out


def phash64(frames: np.ndarray) -> np.ndarray:
    """pHash of each RGB frame: ``uint8[n, 8]`` (see the module doc for the bit layout)."""
    check_frames("frames", frames)
    return _phash64(frames)


@numba.njit(**FLOAT_JIT)
def _box_bin(lo, hi, n_cells, k, weights, first):
    """Area weights of output bin ``k`` of ``[lo, hi)`` (cell units) over the input cells: the
    cells' overlap with the bin, divided by the bin's width. Returns the number of cells used;
    ``first[0]`` receives the first cell."""
    width = (hi - lo) / _SMALL
    b0, b1 = lo + k * width, lo + (k + 1) * width
    c0 = max(0, int(math.floor(b0)))
    c1 = min(n_cells, int(math.ceil(b1)))
    first[0] = c0
    n = 0
    for c in range(c0, c1):
        weights[n] = (min(b1, c + 1.0) - max(b0, float(c))) / width
        n += 1
    return n


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _phash64_boxes(luma, boxes):
    n, size_h, size_w = luma.shape
    n_boxes = boxes.shape[0]
    out = np.zeros((n, n_boxes, PHASH_BYTES), np.uint8)
    dct = dct_ii_matrix(_KEEP, _SMALL)
    for job in numba.prange(n * n_boxes):
        f, v = job // n_boxes, job % n_boxes
        y0, y1 = boxes[v, 0] * size_h, boxes[v, 1] * size_h
        x0, x1 = boxes[v, 2] * size_w, boxes[v, 3] * size_w
        if y1 - y0 <= 0.0 or x1 - x0 <= 0.0:
            continue
        rows = np.empty((_SMALL, size_w), np.float64)  # bins of rows, all columns
        small = np.empty((_SMALL, _SMALL), np.float64)
        wts = np.empty(size_h + size_w + 2, np.float64)
        first = np.zeros(1, np.int64)
        for i in range(_SMALL):
            m = _box_bin(y0, y1, size_h, i, wts, first)
            for j in range(size_w):
                rows[i, j] = 0.0
            for t in range(m):
                w = wts[t]
                r = first[0] + t
                for j in range(size_w):
                    rows[i, j] += w * luma[f, r, j]
        for j in range(_SMALL):
            m = _box_bin(x0, x1, size_w, j, wts, first)
            for i in range(_SMALL):
                s = 0.0
                for t in range(m):
                    s += wts[t] * rows[i, first[0] + t]
                small[i, j] = s
        tmp = np.empty((_KEEP, _SMALL), np.float64)
        coeffs = np.empty(_KEEP * _KEEP, np.float64)
        sorted_coeffs = np.empty(_KEEP * _KEEP, np.float64)
        _phash_bits(small, dct, tmp, coeffs, sorted_coeffs, out[f, v])
    return out


def phash64_boxes(luma: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """pHash of boxes of luma images: ``uint8[n, b, 8]``, one hash per image and box.

    ``luma`` is ``float32[n, H, W]`` (e.g. from :func:`kernels.luma_area_downsample`);
    ``boxes`` is ``float64[b, 4]`` of ``(top, bottom, left, right)`` as fractions of the image
    (0..1). Each box is area-averaged to 32x32 with fractional coverage of its border cells
    and hashed as :func:`phash64` hashes its 32x32 image; an empty box hashes to zeros. Many
    views of one frame cost one luma pass instead of one per view.
    """
    check_array("luma", luma, np.float32, 3, "float32[n,H,W]")
    check_array("boxes", boxes, np.float64, 2, "float64[b,4]")
    if boxes.shape[1] != 4:
        raise ValueError(f"boxes must be float64[b,4] (top, bottom, left, right); got shape {boxes.shape}")
    if len(boxes) and (not np.isfinite(boxes).all() or boxes.min() < 0.0 or boxes.max() > 1.0):
        raise ValueError("boxes must be fractions of the image in [0, 1]; clip them with np.clip(boxes, 0, 1)")
    return _phash64_boxes(luma, boxes)
