"""Input checks shared by the index classes."""

from __future__ import annotations

import numpy as np


def check_array(name: str, arr: np.ndarray, dtype, ndim: int) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != ndim:
        got = f"{arr.dtype}{list(arr.shape)}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise TypeError(
            f"{name} must be a {np.dtype(dtype).name} array with {ndim} dims, got {got}; "
            f"convert with np.ascontiguousarray({name}, dtype=np.{np.dtype(dtype).name})"
        )
