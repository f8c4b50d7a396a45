"""JIT options for every kernel, in one place.

Integer kernels never use fastmath; float kernels use only the fastmath flags that keep
NaN/Inf semantics (no ``nnan``/``ninf``). Everything is ``nogil`` and cached on disk, so the
compile cost is paid once per machine. Set ``CLIPDEX_NUMBA_CACHE=0`` to disable the disk cache.
"""

import os

_CACHE = os.environ.get("CLIPDEX_NUMBA_CACHE", "1") != "0"

#: options for kernels over integers (hashes, Hamming distances, counts)
INT_JIT = {"cache": _CACHE, "nogil": True, "fastmath": False, "error_model": "numpy"}

#: options for kernels over floats (downsampling, DCT, embeddings)
FLOAT_JIT = {
    "cache": _CACHE,
    "nogil": True,
    "fastmath": {"contract", "arcp", "reassoc", "nsz"},
    "error_model": "numpy",
}

#: extra option for the outermost batch entry points only
PARALLEL = {"parallel": True}
