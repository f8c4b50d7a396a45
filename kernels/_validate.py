"""Input checks shared by the public kernel wrappers: refuse, never cast.

A wrong dtype, dimensionality or memory layout raises ``TypeError`` whose message names the
fix; a bad shape or value raises ``ValueError``. Nothing here copies or converts an array.
"""

import numpy as np

__all__ = [
    "check_array",
    "check_clip_pairs",
    "check_codes",
    "check_frames",
    "check_int",
    "check_same_width",
]


def _describe(array) -> str:
    if not isinstance(array, np.ndarray):
        return type(array).__name__
    layout = "C-contiguous" if array.flags.c_contiguous else "non-contiguous"
    return f"{array.dtype}{list(array.shape)} {layout}"


def check_array(name: str, array, dtype, ndim: int, spec: str) -> np.ndarray:
    """Return ``array`` unchanged if it is a C-contiguous ``dtype`` array of ``ndim`` dims.

    ``spec`` is the human-readable expected type, e.g. ``"uint8[n,H,W,3]"``.
    """
    dtype = np.dtype(dtype)
    fix = f"convert with np.ascontiguousarray({name}, dtype=np.{dtype.name})"
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array {spec} C-contiguous; got {_describe(array)} — {fix}"
        )
    if array.dtype != dtype:
        raise TypeError(
            f"{name} must be {spec} C-contiguous; got {array.dtype} — {fix}"
        )
    if array.ndim != ndim:
        raise TypeError(
            f"{name} must be {spec} ({ndim} dimensions); got {array.ndim} dimensions "
            f"with shape {array.shape} — reshape it to {spec}"
        )
    if not array.flags.c_contiguous:
        raise TypeError(
            f"{name} must be {spec} C-contiguous; got a non-contiguous view "
            f"(strides {array.strides}) — {fix}"
        )
    return array


def check_frames(name: str, frames) -> np.ndarray:
    """``uint8[n, H, W, 3]`` C-contiguous RGB frames with ``H, W >= 1``."""
    check_array(name, frames, np.uint8, 4, "uint8[n,H,W,3]")
    if frames.shape[3] != 3:
        raise ValueError(
            f"{name} must be RGB uint8[n,H,W,3]; got {frames.shape[3]} channels "
            f"(shape {frames.shape}) — drop alpha or expand grey to 3 channels first"
        )
    if frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ValueError(
            f"{name} must have H >= 1 and W >= 1; got shape {frames.shape}"
        )
    return frames


def check_codes(name: str, codes) -> np.ndarray:
    """``uint8[n, B]`` binary codes with ``B`` a positive multiple of 8 (whole uint64 words)."""
    check_array(name, codes, np.uint8, 2, "uint8[n,B]")
    nbytes = codes.shape[1]
    if nbytes == 0 or nbytes % 8 != 0:
        raise ValueError(
            f"{name} must have a byte width B that is a positive multiple of 8 "
            f"(whole 64-bit words); got B={nbytes} — pad the codes with zero bytes"
        )
    return codes


def check_same_width(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same code width; got "
            f"{a.shape[1]} and {b.shape[1]} bytes"
        )


def check_int(name: str, value, minimum: int | None = None) -> int:
    """A Python or NumPy integer (not bool, not float) >= ``minimum``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{name} must be an int; got {type(value).__name__} {value!r} — pass int({name})"
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value


def check_clip_pairs(hashes, valid, clip_start, clip_count, pair_a, pair_b) -> None:
    """Codes ``uint8[N, B]`` with ``valid`` ``bool[N]``, clips as ``int64[C]`` spans of rows, and
    pairs of clip indices as ``int64[P]`` (the batch kernels over clip pairs)."""
    check_codes("hashes", hashes)
    n = hashes.shape[0]
    check_array("valid", valid, np.bool_, 1, "bool[N]")
    if valid.shape[0] != n:
        raise ValueError(f"valid must have one flag per hash row ({n}); got {valid.shape[0]}")
    for name, arr in (("clip_start", clip_start), ("clip_count", clip_count),
                      ("pair_a", pair_a), ("pair_b", pair_b)):
        check_array(name, arr, np.int64, 1, "int64[" + ("C]" if name.startswith("clip") else "P]"))
    if clip_start.shape != clip_count.shape:
        raise ValueError(f"clip_start and clip_count must have the same length; got "
                         f"{clip_start.shape[0]} and {clip_count.shape[0]}")
    if pair_a.shape != pair_b.shape:
        raise ValueError(f"pair_a and pair_b must have the same length; got "
                         f"{pair_a.shape[0]} and {pair_b.shape[0]}")
    if clip_count.size and (clip_count.min() < 0 or clip_start.min() < 0
                            or (clip_start + clip_count).max() > n):
        raise ValueError(f"clip_start/clip_count must address rows inside hashes (0..{n}); "
                         "got negative or out-of-range spans")
    n_clips = clip_start.shape[0]
    if pair_a.size and (min(pair_a.min(), pair_b.min()) < 0
                        or max(pair_a.max(), pair_b.max()) >= n_clips):
        raise ValueError(f"pair_a/pair_b must be clip indices in 0..{n_clips - 1}")
