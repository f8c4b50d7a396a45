"""Peer implementations the kernel benchmarks time beside clipdex's kernels.

Each takes the kernel's benchmark arguments (see ``kernels.registry``) and does the same
work with another library. Optional libraries come from ``pip install '.[bench]'``; a peer
whose library is missing raises ImportError and is reported as skipped.
"""

from __future__ import annotations

import importlib

import numpy as np


def resolve(target: str):
    """The function a registry peer names as ``"module:function"``."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def imagehash_phash(frames: np.ndarray) -> list:
    """imagehash's pHash (PIL conversion included), one frame at a time."""
    import imagehash
    from PIL import Image

    return [imagehash.phash(Image.fromarray(f)) for f in frames]


def pdqhash_pdq(frames: np.ndarray) -> list:
    """Meta's PDQ in C++ (the ``pdqhash`` package) on each full frame."""
    import pdqhash

    return [pdqhash.compute(f) for f in frames]


def _binary_index(base: np.ndarray):
    import faiss

    index = faiss.IndexBinaryFlat(base.shape[1] * 8)
    index.add(base)
    return index


def faiss_binary_topk(queries: np.ndarray, base: np.ndarray, k: int = 10):
    """FAISS exact binary k-nearest search (index built inside: the same work as the kernel)."""
    return _binary_index(base).search(queries, k)


def faiss_binary_within(queries: np.ndarray, base: np.ndarray, radius: int = 100):
    """FAISS exact binary range search."""
    return _binary_index(base).range_search(queries, radius)
