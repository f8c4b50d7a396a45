"""Reference checks the registry cannot express: exact means, uint16 flushing, the embedding's
zero and unit-norm rows. Every kernel against its NumPy twin is in test_kernels_registry.py."""

import numpy as np

import kernels
from kernels import reference as ref
from tests.test_kernels_frames import natural_frames


def test_luma_area_downsample_exact_means():
    frames = np.random.default_rng(2).integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    got = kernels.luma_area_downsample(frames, 8, 8)
    want = (frames @ np.array([0.299, 0.587, 0.114])).reshape(2, 8, 8, 8, 12).mean((2, 4))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_luma_area_downsample_flushes_uint16_sums():
    """Bins taller than 256 rows of 255s overflow uint16 unless the partial sums are flushed."""
    frames = np.full((2, 601, 7, 3), 255, np.uint8)
    frames[1, ::2] = 0  # alternate rows: the flushed and unflushed parts must add up exactly
    got = kernels.luma_area_downsample(frames, 2, 3)
    np.testing.assert_allclose(got, ref.luma_area_downsample(frames, 2, 3), rtol=1e-6)
    np.testing.assert_allclose(got[0], 255.0, rtol=1e-6)


def test_clip_embeddings_match_reference():
    rng = np.random.default_rng(9)
    frames = natural_frames(10, 24, 32, rng)
    desc = kernels.keyframe_descriptors(frames)
    starts = np.array([0, 3, 3, 4], np.int64)
    counts = np.array([3, 0, 1, 6], np.int64)
    tel = rng.normal(0, 1, (4, kernels.TELEMETRY_DIM)).astype(np.float32)
    proj = kernels.embedding_projection()
    got = kernels.clip_embeddings(desc, starts, counts, tel, proj)
    want = ref.clip_embeddings(desc, starts, counts, tel, proj)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert not got[1].any()
    np.testing.assert_allclose(np.linalg.norm(got[[0, 2, 3]], axis=1), 1, rtol=1e-5)


def test_embedding_projection_is_deterministic():
    p = kernels.embedding_projection()
    assert p.shape == (kernels.EMBEDDING_INPUT_DIM, kernels.EMBEDDING_DIM)
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p, kernels.embedding_projection())
    np.testing.assert_array_equal(p, ref.embedding_projection())
    assert not np.array_equal(p, kernels.embedding_projection(seed=1))
