"""The low-frequency block of a separable 2-D DCT, shared by the perceptual hashes."""

from __future__ import annotations

import numba

from ._config import FLOAT_JIT


@numba.njit(**FLOAT_JIT)
def dct_low(img, dct, keep, tmp, coeffs):
    """``coeffs[k * keep + m]`` = (D @ img @ D.T)[k, m] for k, m < ``keep``, with ``tmp`` a
    ``keep x n`` scratch (``img`` is ``n x n``, ``dct`` the DCT-II matrix rows)."""
    n = img.shape[0]
    for k in range(keep):  # tmp = D @ img  (keep x n)
        for j in range(n):
            tmp[k, j] = 0.0
        for i in range(n):
            dk = dct[k, i]
            for j in range(n):
                tmp[k, j] += dk * img[i, j]
    for k in range(keep):  # coeffs = tmp @ D.T  (keep x keep)
        for m in range(keep):
            s = 0.0
            for j in range(n):
                s += tmp[k, j] * dct[m, j]
            coeffs[k * keep + m] = s
