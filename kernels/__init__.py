"""clipdex compute kernels: Numba JIT, one public validating wrapper per kernel.

Importing this package compiles nothing; each kernel compiles on its first call and is cached
on disk (see ``kernels/_config.py``). ``kernels.reference`` holds a pure-NumPy twin of every
public kernel, used by the tests.
"""

from .align import Alignment, align_keyframe_pairs
from .bands import band_collisions, band_masks, band_recall
from .conv import depthwise_conv2d
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
from .kcentre import greedy_kcentre, min_sq_distances
from .luma import luma_area_downsample
from .pdq import pdq256
from .phash import phash64, phash64_boxes
from .retime import RetimeLines, retime_lines
from .temporal import yuv_area_accumulate

__all__ = [
    "DESCRIPTOR_DIM",
    "EMBEDDING_DIM",
    "EMBEDDING_INPUT_DIM",
    "EMBEDDING_VERSION",
    "TELEMETRY_DIM",
    "Alignment",
    "RetimeLines",
    "align_keyframe_pairs",
    "band_collisions",
    "band_masks",
    "band_recall",
    "clip_embeddings",
    "depthwise_conv2d",
    "embedding_projection",
    "greedy_kcentre",
    "hamming_matrix",
    "hamming_topk",
    "hamming_within",
    "keyframe_descriptors",
    "luma_area_downsample",
    "min_sq_distances",
    "pdq256",
    "phash64",
    "phash64_boxes",
    "retime_lines",
    "telemetry_stats",
    "yuv_area_accumulate",
]
