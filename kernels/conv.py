"""Depthwise convolution with a per-channel scale, shift and ReLU6, fused (the costly layer of
the optional learned embedding, ``engine.scenes.learned``).

Input and output are NHWC float32: for every output pixel the kernel runs over the taps of the
window and, innermost, over the channels, which lie contiguous in memory, so each tap is one
vector multiply-add over the channels. TensorFlow "SAME" padding: the output has
ceil(input / stride) rows and columns, the odd pixel of padding falls after; taps outside the
input are skipped (zero padding). Rows of the output are spread over the cores.
"""

import numba
import numpy as np

from ._config import FLOAT_JIT, PARALLEL
from ._validate import check_array, check_int

__all__ = ["depthwise_conv2d", "same_padding"]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(output size, padding before) of TensorFlow "SAME" padding along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2


@numba.njit(**FLOAT_JIT, **PARALLEL)
def _depthwise(x, weight, stride, pad_top, pad_left, out_h, out_w, scale, shift, relu6):
    n, h, w, c = x.shape
    k = weight.shape[1]
    out = np.empty((n, out_h, out_w, c), np.float32)
    for job in numba.prange(n * out_h):
        b = job // out_h
        oy = job % out_h
        acc = np.empty(c, np.float32)
        for ox in range(out_w):
            acc[:] = 0.0
            for i in range(k):
                y = oy * stride + i - pad_top
                if y < 0 or y >= h:
                    continue
                for j in range(k):
                    xx = ox * stride + j - pad_left
                    if xx < 0 or xx >= w:
                        continue
                    src = x[b, y, xx]
                    for ch in range(c):
                        acc[ch] += src[ch] * weight[ch, i, j]
            dst = out[b, oy, ox]
            for ch in range(c):
                v = acc[ch] * scale[ch] + shift[ch]
                if relu6:
                    v = min(max(v, np.float32(0.0)), np.float32(6.0))
                dst[ch] = v
    return out


def depthwise_conv2d(x: np.ndarray, weight: np.ndarray, stride: int, scale: np.ndarray,
                     shift: np.ndarray, relu6: bool = True) -> np.ndarray:
    """``act(conv(x, weight) * scale + shift)`` per channel: ``x`` float32[n, H, W, C],
    ``weight`` float32[C, k, k] (one k x k filter per channel), ``scale``/``shift`` float32[C],
    SAME padding at ``stride``; ``act`` clamps to [0, 6] when ``relu6``. Returns
    float32[n, ceil(H/stride), ceil(W/stride), C]."""
    check_array("x", x, np.float32, 4, "float32[n,H,W,C]")
    check_array("weight", weight, np.float32, 3, "float32[C,k,k]")
    check_array("scale", scale, np.float32, 1, "float32[C]")
    check_array("shift", shift, np.float32, 1, "float32[C]")
    stride = check_int("stride", stride, 1)
    c = x.shape[3]
    if weight.shape[0] != c or weight.shape[1] != weight.shape[2] or weight.shape[1] < 1:
        raise ValueError(f"weight must be float32[C={c},k,k] with k >= 1; got shape {weight.shape}")
    if scale.shape[0] != c or shift.shape[0] != c:
        raise ValueError(f"scale and shift must have C={c} entries; got {scale.shape[0]} and {shift.shape[0]}")
    k = weight.shape[1]
    out_h, top = same_padding(x.shape[1], k, stride)
    out_w, left = same_padding(x.shape[2], k, stride)
    return _depthwise(x, weight, stride, top, left, out_h, out_w, scale, shift, bool(relu6))
