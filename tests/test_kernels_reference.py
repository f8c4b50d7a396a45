"""Every public kernel against its pure-NumPy twin in ``kernels.reference`` (house rule 1)."""

import numpy as np
import pytest

import kernels
from kernels import reference as ref
from tests.test_kernels_frames import natural_frames

SIZES = [(1, 1), (4, 6), (37, 53), (64, 64), (90, 160), (131, 67)]


def bit_diff(a, b):
    return np.bitwise_count(a ^ b).sum(axis=-1)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("out", [(1, 1), (8, 8), (32, 32), (5, 9)])
def test_luma_area_downsample_matches_reference(shape, out):
    frames = natural_frames(3, *shape, np.random.default_rng(1))
    got = kernels.luma_area_downsample(frames, *out)
    want = ref.luma_area_downsample(frames, *out)
    assert got.dtype == np.float32 and got.shape == (3, *out)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


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


@pytest.mark.parametrize("shape", [(37, 53), (64, 64), (90, 160), (200, 131), (360, 640)])
def test_phash64_matches_reference(shape):
    frames = natural_frames(8, *shape, np.random.default_rng(3))
    np.testing.assert_array_equal(kernels.phash64(frames), ref.phash64(frames))


@pytest.mark.parametrize("normalise_contrast", [False, True])
@pytest.mark.parametrize("shape", [(4, 7), (5, 5), (37, 53), (64, 64), (200, 131), (360, 640)])
def test_pdq256_matches_reference(shape, normalise_contrast):
    frames = natural_frames(6, *shape, np.random.default_rng(4))
    frames[3:] //= np.array([4, 12, 60], np.uint8)[:, None, None, None]  # dark, night, near black
    hashes, quality = kernels.pdq256(frames, normalise_contrast=normalise_contrast)
    want_hashes, want_quality = ref.pdq256(frames, normalise_contrast=normalise_contrast)
    np.testing.assert_array_equal(hashes, want_hashes)
    np.testing.assert_array_equal(quality, want_quality)


@pytest.mark.parametrize("nbytes", [8, 32, 24])
def test_hamming_kernels_match_reference(nbytes):
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (37, nbytes), dtype=np.uint8)
    b = rng.integers(0, 256, (203, nbytes), dtype=np.uint8)
    b[:20] = a[:20] ^ (rng.random((20, nbytes)) < 0.05).astype(np.uint8)  # some near pairs
    np.testing.assert_array_equal(kernels.hamming_matrix(a, b), ref.hamming_matrix(a, b))
    for k in (1, 5, 203, 250):
        for got, want in zip(kernels.hamming_topk(a, b, k), ref.hamming_topk(a, b, k),
                             strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    radius = 8 * nbytes // 2 - 10
    for got, want in zip(kernels.hamming_within(a, b, radius), ref.hamming_within(a, b, radius),
                         strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def _clips(rng, n_clips=12, nbytes=8):
    counts = rng.integers(0, 9, n_clips).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    base = rng.integers(0, 256, (40, nbytes), dtype=np.uint8)
    hashes = np.empty((int(counts.sum()), nbytes), np.uint8)
    for c in range(n_clips):  # clips are noisy windows of one long sequence: real overlaps
        off = rng.integers(0, 40 - 8)
        hashes[starts[c]:starts[c] + counts[c]] = base[off:off + counts[c]]
    hashes ^= (rng.random(hashes.shape) < 0.04).astype(np.uint8) << rng.integers(0, 8, hashes.shape).astype(np.uint8)
    valid = rng.random(len(hashes)) < 0.9
    return hashes, valid, starts, counts


@pytest.mark.parametrize("max_shift", [-1, 0, 2])
def test_align_keyframe_pairs_matches_reference(max_shift):
    rng = np.random.default_rng(6)
    hashes, valid, starts, counts = _clips(rng)
    pa, pb = np.divmod(np.arange(144, dtype=np.int64), 12)
    got = kernels.align_keyframe_pairs(hashes, valid, starts, counts, pa, pb, 6, max_shift)
    want = ref.align_keyframe_pairs(hashes, valid, starts, counts, pa, pb, 6, max_shift)
    for name in got._fields:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


@pytest.mark.parametrize("shape", [(1, 1), (37, 53), (64, 64), (90, 160)])
def test_keyframe_descriptors_match_reference(shape):
    frames = natural_frames(3, *shape, np.random.default_rng(7))
    got = kernels.keyframe_descriptors(frames)
    assert got.shape == (3, kernels.DESCRIPTOR_DIM) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref.keyframe_descriptors(frames), rtol=1e-4, atol=1e-5)


def _telemetry(rng):
    counts = np.array([0, 1, 5, 40, 12, 30], np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    time = np.concatenate([np.sort(rng.uniform(0, 10, c)) for c in counts])
    values = rng.normal([10, -1, 0, 0], [5, 3, 0.2, 0.1], (len(time), 4)).astype(np.float32)
    values[rng.random(values.shape) < 0.15] = np.nan
    values[starts[4]:starts[4] + counts[4]] = np.nan  # a clip with no usable telemetry
    values[starts[5]:starts[5] + counts[5], 2] = np.nan  # a missing channel
    return time, values, starts, counts


def test_telemetry_stats_match_reference():
    time, values, starts, counts = _telemetry(np.random.default_rng(8))
    got = kernels.telemetry_stats(time, values, starts, counts)
    want = ref.telemetry_stats(time, values, starts, counts)
    assert got.shape == (6, kernels.TELEMETRY_DIM)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert got[0].sum() == 0 and got[4].sum() == 0 and got[3, 0] == 1


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
