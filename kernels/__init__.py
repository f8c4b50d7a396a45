"""clipdex compute kernels: Numba JIT, one public validating wrapper per kernel.

Importing this package compiles nothing; each kernel compiles on its first call and is cached
on disk (see ``kernels/_config.py``). ``kernels.reference`` holds a pure-NumPy twin of every
public kernel, used by the tests.
"""

from .align import Alignment, align_keyframe_pairs
from .embedding import (
    DESCRIPTOR_DIM,
    EMBEDDING_DIM,
    EMBEDDING_INPUT_DIM,
    EMBEDDING_VERSION,
    TELEMETRY_DIM,
    clip_embeddings,
    embedding_projection,
    keyframe_descriptors,
    telemetry_stats,
)
from .hamming import hamming_matrix, hamming_topk, hamming_within
from .luma import luma_area_downsample
from .pdq import pdq256
from .phash import phash64

__all__ = [
    "DESCRIPTOR_DIM",
    "EMBEDDING_DIM",
    "EMBEDDING_INPUT_DIM",
    "EMBEDDING_VERSION",
    "TELEMETRY_DIM",
    "Alignment",
    "align_keyframe_pairs",
    "clip_embeddings",
    "embedding_projection",
    "hamming_matrix",
    "hamming_topk",
    "hamming_within",
    "keyframe_descriptors",
    "luma_area_downsample",
    "pdq256",
    "phash64",
    "telemetry_stats",
]
