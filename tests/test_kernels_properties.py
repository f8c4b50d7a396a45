"""Properties, edge cases, input validation and thread-count invariance of the kernels."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import kernels
from tests.test_kernels_frames import natural_frames


def bits(a, b):
    return np.bitwise_count(a ^ b).sum(axis=-1)


# ------------------------------------------------------------------ Hamming properties
def test_hamming_symmetry_zero_diagonal_and_k_flips():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    m = kernels.hamming_matrix(codes, codes)
    assert m.dtype == np.uint16
    np.testing.assert_array_equal(m, m.T)
    assert not np.diag(m).any()
    for k in (0, 1, 7, 64, 256):
        flipped = codes[:1].copy()
        unpacked = np.unpackbits(flipped[0])
        unpacked[rng.choice(256, k, replace=False)] ^= 1
        flipped[0] = np.packbits(unpacked)
        assert kernels.hamming_matrix(codes[:1], flipped)[0, 0] == k


def test_hamming_topk_pads_when_k_exceeds_base():
    rng = np.random.default_rng(1)
    q, b = rng.integers(0, 256, (3, 8), dtype=np.uint8), rng.integers(0, 256, (2, 8), dtype=np.uint8)
    dist, idx = kernels.hamming_topk(q, b, 4)
    assert dist.dtype == np.int32 and idx.dtype == np.int64
    assert (dist[:, 2:] == -1).all() and (idx[:, 2:] == -1).all()
    assert (np.sort(idx[:, :2], axis=1) == [0, 1]).all()


def test_hamming_ties_break_by_index():
    q = np.zeros((1, 8), np.uint8)
    b = np.zeros((5, 8), np.uint8)
    b[[1, 3], 0] = 1
    dist, idx = kernels.hamming_topk(q, b, 5)
    assert idx[0].tolist() == [0, 2, 4, 1, 3] and dist[0].tolist() == [0, 0, 0, 1, 1]


def test_hamming_empty_inputs():
    e = np.zeros((0, 8), np.uint8)
    one = np.zeros((1, 8), np.uint8)
    assert kernels.hamming_matrix(e, one).shape == (0, 1)
    assert kernels.hamming_matrix(one, e).shape == (1, 0)
    d, i = kernels.hamming_topk(one, e, 3)
    assert (d == -1).all() and (i == -1).all() and d.shape == (1, 3)
    assert kernels.hamming_topk(e, one, 3)[0].shape == (0, 3)
    q, b, dd = kernels.hamming_within(e, one, 5)
    assert q.shape == b.shape == dd.shape == (0,) and dd.dtype == np.uint16


# ------------------------------------------------------------------ hash behaviour
@pytest.mark.parametrize("hash_fn", [kernels.phash64, lambda f: kernels.pdq256(f)[0]])
def test_hash_robust_to_brightness_and_noise_but_not_content(hash_fn):
    rng = np.random.default_rng(2)
    frames = natural_frames(12, 90, 160, rng)
    nbits = hash_fn(frames[:1]).shape[1] * 8
    brighter = np.clip(frames.astype(np.int16) + 12, 0, 255).astype(np.uint8)
    noisy = np.clip(frames + rng.normal(0, 4, frames.shape), 0, 255).astype(np.uint8)
    h, hb, hn = hash_fn(frames), hash_fn(brighter), hash_fn(noisy)
    assert bits(h, hb).mean() <= 0.06 * nbits
    assert bits(h, hn).mean() <= 0.12 * nbits  # PDQ keeps 16x16 frequencies: noisier
    other = bits(h[:6], h[6:])
    assert other.mean() >= 0.3 * nbits


def test_constant_frames_have_pdq_quality_zero():
    frames = np.zeros((3, 40, 50, 3), np.uint8)
    frames[1] = 255
    frames[2] = 77
    hashes, quality = kernels.pdq256(frames)
    assert (quality == 0).all()
    textured = natural_frames(2, 128, 128, np.random.default_rng(3))
    assert (kernels.pdq256(textured)[1] >= 30).all()
    assert (kernels.pdq256(frames, normalise_contrast=True)[1] == 0).all()


def test_contrast_normalised_pdq_quality_keeps_dark_footage():
    """Night footage (the picture at 1/8 of its contrast, mean luma ~15) keeps a usable
    quality and its hash; a covered lens (a level of noise on black) stays near 0."""
    day = natural_frames(4, 180, 320, np.random.default_rng(8))
    night = (day // 8).astype(np.uint8)
    h_day, q_day = kernels.pdq256(day, normalise_contrast=True)
    h_night, q_night = kernels.pdq256(night, normalise_contrast=True)
    assert (kernels.pdq256(night)[1] < 20).all()  # the reference quality: below the floor
    assert (q_night >= 0.8 * q_day.astype(float)).all() and (q_night >= 30).all()
    assert (np.bitwise_count(h_day ^ h_night).sum(axis=1) <= 16).all()
    np.testing.assert_array_equal(h_day, kernels.pdq256(day)[0])  # the hash ignores the option
    covered = np.random.default_rng(9).integers(0, 2, (3, 180, 320, 3)).astype(np.uint8)
    assert (kernels.pdq256(covered, normalise_contrast=True)[1] <= 5).all()


@pytest.mark.parametrize("shape", [(1, 1), (37, 53)])
@pytest.mark.parametrize("n", [0, 1])
def test_frame_kernels_shapes_for_tiny_batches(n, shape):
    frames = natural_frames(n, *shape, np.random.default_rng(4))
    assert kernels.phash64(frames).shape == (n, 8)
    hashes, quality = kernels.pdq256(frames)
    assert hashes.shape == (n, 32) and hashes.dtype == np.uint8 and quality.shape == (n,)
    assert kernels.luma_area_downsample(frames, 3, 5).shape == (n, 3, 5)
    assert kernels.keyframe_descriptors(frames).shape == (n, kernels.DESCRIPTOR_DIM)


def test_one_pixel_frame_upsamples_to_its_luma():
    frame = np.array([[[[10, 200, 30]]]], np.uint8)
    out = kernels.luma_area_downsample(frame, 4, 3)
    np.testing.assert_allclose(out, 0.299 * 10 + 0.587 * 200 + 0.114 * 30, rtol=1e-6)


# ------------------------------------------------------------------ agreement with peers
def test_phash64_agrees_with_imagehash():
    imagehash = pytest.importorskip("imagehash")
    frames = natural_frames(24, 180, 320, np.random.default_rng(5))
    ours = kernels.phash64(frames)
    theirs = np.array([np.packbits(imagehash.phash(Image.fromarray(f)).hash.flatten())
                       for f in frames])
    assert bits(ours, theirs).mean() <= 1.0


def test_pdq256_agrees_with_pdqhash():
    pdqhash = pytest.importorskip("pdqhash", reason="pdqhash is an optional bench dependency")
    frames = natural_frames(12, 180, 320, np.random.default_rng(6))
    ours, quality = kernels.pdq256(frames)
    for f, h, q in zip(frames, ours, quality, strict=True):
        vector, their_q = pdqhash.compute(f)
        assert bits(h, np.packbits(vector.astype(np.uint8))) <= 2
        assert abs(int(q) - their_q) <= 1


# ------------------------------------------------------------------ alignment behaviour
def _two_clips(a_codes, b_codes):
    hashes = np.ascontiguousarray(np.concatenate([a_codes, b_codes]))
    starts = np.array([0, len(a_codes)], np.int64)
    counts = np.array([len(a_codes), len(b_codes)], np.int64)
    return hashes, np.ones(len(hashes), bool), starts, counts


def test_align_finds_planted_shift_and_span():
    rng = np.random.default_rng(7)
    seq = rng.integers(0, 256, (30, 32), dtype=np.uint8)
    a, b = seq[5:25], seq[12:30]  # b[j] == a[j + 7] for j < 13
    noisy_b = b ^ (rng.random(b.shape) < 0.02).astype(np.uint8)
    hashes, valid, starts, counts = _two_clips(a, noisy_b)
    res = kernels.align_keyframe_pairs(hashes, valid, starts, counts, np.array([0], np.int64),
                                       np.array([1], np.int64), 24, -1)
    assert res.shift[0] == 7 and res.matches[0] == 13 and res.overlap[0] == 13
    assert (res.first_a[0], res.last_a[0]) == (7, 19)
    assert 0 <= res.mean_dist[0] <= 24
    limited = kernels.align_keyframe_pairs(hashes, valid, starts, counts,
                                           np.array([0], np.int64), np.array([1], np.int64), 24, 3)
    assert abs(limited.shift[0]) <= 3 and limited.matches[0] == 0


def test_align_no_match_for_unrelated_sequences():
    rng = np.random.default_rng(8)
    hashes, valid, starts, counts = _two_clips(rng.integers(0, 256, (20, 32), dtype=np.uint8),
                                               rng.integers(0, 256, (20, 32), dtype=np.uint8))
    res = kernels.align_keyframe_pairs(hashes, valid, starts, counts, np.array([0], np.int64),
                                       np.array([1], np.int64), 30, -1)
    assert res.matches[0] == 0 and res.first_a[0] == -1 and res.shift[0] == 0
    assert res.overlap[0] == 20 and res.mean_dist[0] == 0


# ------------------------------------------------------------------ validation
GOOD = np.zeros((2, 8, 8, 3), np.uint8)


@pytest.mark.parametrize("fn", [kernels.phash64, kernels.pdq256, kernels.keyframe_descriptors,
                                lambda f: kernels.luma_area_downsample(f, 4, 4)])
@pytest.mark.parametrize("bad, error, fix", [
    (GOOD.astype(np.float32), TypeError, "np.ascontiguousarray(frames, dtype=np.uint8)"),
    (GOOD[:, :, ::2], TypeError, "np.ascontiguousarray(frames, dtype=np.uint8)"),
    (GOOD[0], TypeError, "uint8[n,H,W,3]"),
    (GOOD.tolist(), TypeError, "np.ascontiguousarray"),
    (np.zeros((2, 8, 8, 4), np.uint8), ValueError, "channels"),
])
def test_frame_kernels_refuse_bad_input(fn, bad, error, fix):
    with pytest.raises(error) as info:
        fn(bad)
    assert fix in str(info.value)


def test_code_kernels_refuse_bad_input():
    codes = np.zeros((3, 8), np.uint8)
    with pytest.raises(TypeError, match=r"np\.ascontiguousarray\(a, dtype=np\.uint8\)"):
        kernels.hamming_matrix(codes.astype(np.int64), codes)
    with pytest.raises(TypeError, match="C-contiguous"):
        kernels.hamming_matrix(np.zeros((3, 16), np.uint8)[:, ::2], codes)
    with pytest.raises(ValueError, match="multiple of 8"):
        kernels.hamming_matrix(np.zeros((3, 5), np.uint8), np.zeros((3, 5), np.uint8))
    with pytest.raises(ValueError, match="same code width"):
        kernels.hamming_matrix(codes, np.zeros((3, 16), np.uint8))
    with pytest.raises(TypeError, match="int"):
        kernels.hamming_topk(codes, codes, 2.0)
    with pytest.raises(TypeError, match="int64"):
        kernels.align_keyframe_pairs(codes, np.ones(3, bool), np.zeros(1, np.int32),
                                     np.ones(1, np.int64), np.zeros(1, np.int64),
                                     np.zeros(1, np.int64), 4, -1)
    with pytest.raises(ValueError, match="out-of-range"):
        kernels.align_keyframe_pairs(codes, np.ones(3, bool), np.zeros(1, np.int64),
                                     np.full(1, 9, np.int64), np.zeros(1, np.int64),
                                     np.zeros(1, np.int64), 4, -1)
    one_clip = (codes, np.ones(3, bool), np.zeros(1, np.int64), np.full(1, 3, np.int64),
                np.zeros(1, np.int64), np.zeros(1, np.int64))
    rates = np.array([0.5, 1.0, 2.0])
    with pytest.raises(ValueError, match="out-of-range"):
        kernels.retime_lines(*one_clip[:3], np.full(1, 9, np.int64), *one_clip[4:], rates, 1,
                             rates != 1, 4, 3)
    with pytest.raises(ValueError, match="finite and positive"):
        kernels.retime_lines(*one_clip, np.array([0.0, 1.0]), 1, np.ones(2, bool), 4, 3)
    with pytest.raises(ValueError, match="one must index rates"):
        kernels.retime_lines(*one_clip, rates, 3, rates != 1, 4, 3)
    with pytest.raises(ValueError, match="flag each"):
        kernels.retime_lines(*one_clip, rates, 1, np.ones(2, bool), 4, 3)
    with pytest.raises(TypeError, match="float32"):
        kernels.clip_embeddings(np.zeros((1, kernels.DESCRIPTOR_DIM)), np.zeros(1, np.int64),
                                np.ones(1, np.int64),
                                np.zeros((1, kernels.TELEMETRY_DIM), np.float32),
                                kernels.embedding_projection())


def test_import_compiles_nothing():
    code = (
        "import kernels, numba\n"
        "from numba.core.registry import CPUDispatcher\n"
        "import kernels.align, kernels.embedding, kernels.hamming, kernels.luma, kernels.pdq, "
        "kernels.phash\n"
        "mods = [kernels.align, kernels.embedding, kernels.hamming, kernels.luma, kernels.pdq, "
        "kernels.phash]\n"
        "disp = [v for m in mods for v in vars(m).values() if isinstance(v, CPUDispatcher)]\n"
        "assert len(disp) > 20, len(disp)\n"
        "compiled = [d.py_func.__name__ for d in disp if d.signatures]\n"
        "assert not compiled, compiled\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
