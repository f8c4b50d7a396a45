"""PDQ (Meta / ThreatExchange) 256-bit perceptual hash and its quality metric.

Faithful to the reference ``pdqhashing.cpp``: BT.601 luma; Jarosz tent filter = two passes of
(box along rows, box along columns) with ``full_window = ceil(dim / 128)`` per axis and the
reference's asymmetric edge handling (``half = (full + 2) // 2``, windows shrink at the borders);
decimation to 64x64 at ``int((i + 0.5) * dim / 64)``; quality = sum of truncated
``|delta| * 100 / 255`` of neighbouring 64x64 pixels, ``// 90``, capped at 100; DCT rows
``sqrt(2/64) cos(pi/128 (k+1)(2j+1))`` for k = 0..15 (DC skipped); threshold at the lower
median (Torben, the 128th smallest of 256) with ``>``. Frames smaller than 5 pixels on a side
hash to all zeros with quality 0, as in the reference.

Bit layout: bit ``k = 16*i + j`` of the 16x16 DCT block is set in the reference's
``Hash256.w[k >> 4] >> (k & 15)``; our 32 bytes are that hash's hex string as bytes
(``bytes.fromhex(hash.format())``), i.e. ``np.packbits(pdqhash.compute(img)[0])``.

Only what the 64x64 output needs is computed: the two box passes per axis collapse into one
sparse weight row per decimated sample (the tent), applied in the fused separable pass of
:mod:`kernels.luma`; input rows that no sample uses are never read.
"""

import math

import numba
import numpy as np

from ._config import FLOAT_JIT, PARALLEL
from ._dct import dct_low
from ._validate import check_frames
from .luma import FRAMES_PER_BLOCK, luma_column_weights, weighted_luma_frame

__all__ = ["PDQ_BYTES", "PDQ_MIN_DIM", "QUALITY_MAX_GAIN", "QUALITY_REF_STD", "pdq256", "pdq_axis_weights",
           "pdq_dct_matrix"]

PDQ_BYTES = 32
PDQ_MIN_DIM = 5  # the reference's MIN_HASHABLE_DIM
#: contrast-normalised quality (``pdq256(..., normalise_contrast=True)``): the gradients are
#: scaled by the gain that stretches the 64x64 luma's standard deviation to QUALITY_REF_STD
#: (never below 1, at most QUALITY_MAX_GAIN, floored to 1/16), so dark but valid footage
#: (night, mean luma 5-40, spread 5-20) scores like daylight, while a black or covered lens
#: (spread of a level or two) stays near 0. The hash does not depend on the gain.
QUALITY_REF_STD = 48.0
QUALITY_MAX_GAIN = 8.0
_DOWN = 64
_KEEP = 16


@numba.njit(**FLOAT_JIT)
def _box_range(k, n, full):
    half = (full + 2) // 2
    return max(0, k + half - full), min(n, k + half)


@numba.njit(**FLOAT_JIT)
def pdq_axis_weights(n_in):
    """Tent weights of one axis at the 64 decimation points: ``(start, count, weight)``.

    Row ``i`` is row ``int((i+0.5)*n_in/64)`` of ``C @ C`` where ``C`` is the reference's
    1-D box operator with ``full = ceil(n_in / 128)``.
    """
    full = (n_in + 2 * _DOWN - 1) // (2 * _DOWN)
    start = np.empty(_DOWN, np.int64)
    count = np.empty(_DOWN, np.int64)
    max_count = 0
    for i in range(_DOWN):
        centre = int(((i + 0.5) * n_in) / _DOWN)
        lo, hi = _box_range(centre, n_in, full)
        lo2, _ = _box_range(lo, n_in, full)
        _, hi2 = _box_range(hi - 1, n_in, full)
        start[i] = lo2
        count[i] = hi2 - lo2
        max_count = max(max_count, hi2 - lo2)
    weight = np.zeros((_DOWN, max_count), np.float32)
    dense = np.zeros(max_count, np.float64)
    for i in range(_DOWN):
        centre = int(((i + 0.5) * n_in) / _DOWN)
        lo, hi = _box_range(centre, n_in, full)
        dense[:] = 0.0
        for k in range(lo, hi):
            klo, khi = _box_range(k, n_in, full)
            wk = 1.0 / ((hi - lo) * (khi - klo))
            for r in range(klo, khi):
                dense[r - start[i]] += wk
        for t in range(count[i]):
            weight[i, t] = dense[t]
    return start, count, weight


@numba.njit(**FLOAT_JIT)
def pdq_dct_matrix():
    """The reference's 16x64 DCT matrix (rows 1..16 of the DCT-II, DC skipped)."""
    d = np.empty((_KEEP, _DOWN), np.float64)
    scale = math.sqrt(2.0 / _DOWN)
    for i in range(_KEEP):
        for j in range(_DOWN):
            d[i, j] = scale * math.cos((math.pi / 2.0 / _DOWN) * (i + 1) * (2 * j + 1))
    return d


@numba.njit(**FLOAT_JIT)
def _contrast_gain(img, max_gain):
    """1 when ``max_gain`` <= 1 (the reference's quality), else the gain of QUALITY_REF_STD."""
    if max_gain <= 1.0:
        return 1.0
    total = 0.0
    for i in range(_DOWN):
        for j in range(_DOWN):
            total += img[i, j]
    mean = total / (_DOWN * _DOWN)
    var = 0.0
    for i in range(_DOWN):
        for j in range(_DOWN):
            var += (img[i, j] - mean) ** 2
    std = math.sqrt(var / (_DOWN * _DOWN))
    if std * max_gain <= QUALITY_REF_STD:
        return max_gain
    return max(1.0, math.floor(QUALITY_REF_STD / std * 16.0) / 16.0)


@numba.njit(**FLOAT_JIT)
def _quality(img, gain):
    gradient_sum = 0
    scale = gain * 100.0
    for i in range(_DOWN - 1):
        for j in range(_DOWN):
            gradient_sum += abs(int(((img[i, j] - img[i + 1, j]) * scale) / 255.0))
    for i in range(_DOWN):
        for j in range(_DOWN - 1):
            gradient_sum += abs(int(((img[i, j] - img[i, j + 1]) * scale) / 255.0))
    return min(gradient_sum // 90, 100)


@numba.njit(**FLOAT_JIT)
def _pdq_bits(img, dct, tmp, coeffs, sorted_coeffs, out):
    dct_low(img, dct, _KEEP, tmp, coeffs)  # the 16 x 16 low block of the 64 x 64 DCT
    sorted_coeffs[:] = coeffs
    sorted_coeffs.sort()
    median = sorted_coeffs[127]  # Torben's median of 256 values: the 128th smallest
    for b in range(PDQ_BYTES):
        out[b] = 0
    for k in range(_KEEP * _KEEP):
        if coeffs[k] > median:
            pos = 255 - k  # hex string order: w[15] first, most significant bit first
            out[pos >> 3] |= np.uint8(1 << (7 - (pos & 7)))


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _pdq256(frames, max_gain):
    n, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    hashes = np.zeros((n, PDQ_BYTES), np.uint8)
    quality = np.zeros(n, np.uint8)
    if height < PDQ_MIN_DIM or width < PDQ_MIN_DIM:
        return hashes, quality
    r_start, r_count, r_weight = pdq_axis_weights(height)
    c_start, c_count, c_weight = pdq_axis_weights(width)
    c_w3 = luma_column_weights(c_weight)
    dct = pdq_dct_matrix()
    no_integer_rows = np.float32(-1.0)
    n_blocks = (n + FRAMES_PER_BLOCK - 1) // FRAMES_PER_BLOCK
    for b in numba.prange(n_blocks):
        acc16 = np.empty(3 * width, np.uint16)
        accf = np.empty(3 * width, np.float32)
        img = np.empty((_DOWN, _DOWN), np.float64)
        tmp = np.empty((_KEEP, _DOWN), np.float64)
        coeffs = np.empty(_KEEP * _KEEP, np.float64)
        sorted_coeffs = np.empty(_KEEP * _KEEP, np.float64)
        for f in range(b * FRAMES_PER_BLOCK, min(n, (b + 1) * FRAMES_PER_BLOCK)):
            weighted_luma_frame(frames[f], r_start, r_count, r_weight, no_integer_rows,
                                c_start, c_count, c_w3, 1.0, acc16, accf, img)
            quality[f] = _quality(img, _contrast_gain(img, max_gain))
            _pdq_bits(img, dct, tmp, coeffs, sorted_coeffs, hashes[f])
    return hashes, quality


def pdq256(frames: np.ndarray, *, normalise_contrast: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """PDQ hash and quality of each RGB frame: ``(uint8[n, 32], uint8[n])``, quality 0..100.

    Flat frames have quality 0 (the reference treats quality < 50 as unreliable). With
    ``normalise_contrast`` the quality is measured on the frame's contrast stretched towards
    :data:`QUALITY_REF_STD` (see there): dark footage is not mistaken for a flat frame.
    """
    check_frames("frames", frames)
    return _pdq256(frames, QUALITY_MAX_GAIN if normalise_contrast else 1.0)
