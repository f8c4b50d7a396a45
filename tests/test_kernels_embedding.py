"""Clip embeddings separate driving scenarios and keep near-duplicates close."""

import numpy as np
import pytest

import kernels
from tests.test_kernels_frames import driving_scene

SCENARIOS = ["highway", "urban", "night", "rain", "fog", "hard_brake"]
H, W, KEYFRAMES = 72, 128, 6


def _telemetry(kind, n=60):
    t = np.linspace(0, 3, n)
    speed = {"highway": 30.0, "hard_brake": 28.0, "urban": 8.0, "night": 15.0, "rain": 18.0,
             "fog": 12.0}[kind]
    accel = np.zeros(n) + 0.2 * np.sin(t)
    if kind == "hard_brake":
        accel[n // 3: 2 * n // 3] = -7.0
    if kind == "urban":
        accel = 1.5 * np.sin(2 * t)
    speeds = np.maximum(speed + np.cumsum(accel) * (t[1] - t[0]), 0)
    yaw = 0.02 * np.sin(t) + (0.2 * np.sin(3 * t) if kind == "urban" else 0)
    values = np.stack([speeds, accel, yaw, 0.5 * yaw], axis=1).astype(np.float32)
    return t, values


def _variant(frames, which, rng):
    if which == "brighter":
        return np.clip(frames.astype(np.int16) + 15, 0, 255).astype(np.uint8)
    if which == "noisy":
        return np.clip(frames + rng.normal(0, 4, frames.shape), 0, 255).astype(np.uint8)
    if which == "downscaled":  # half resolution (2x2 box)
        small = frames.reshape(len(frames), H // 2, 2, W // 2, 2, 3).mean((2, 4))
        return np.rint(small).astype(np.uint8)
    return frames


def test_scenarios_separate_and_near_duplicates_stay_close():
    rng = np.random.default_rng(0)
    variants = ["original", "brighter", "noisy", "downscaled"]
    descriptors, counts, tel_time, tel_values, tel_counts, labels = [], [], [], [], [], []
    for kind in SCENARIOS:
        frames = np.stack([driving_scene(kind, 0.5 * k, H, W, rng) for k in range(KEYFRAMES)])
        t, values = _telemetry(kind)
        for v in variants:
            descriptors.append(kernels.keyframe_descriptors(_variant(frames, v, rng)))
            counts.append(KEYFRAMES)
            noisy_values = values + rng.normal(0, 0.05, values.shape).astype(np.float32)
            tel_time.append(t)
            tel_values.append(noisy_values)
            tel_counts.append(len(t))
            labels.append(kind)
    desc = np.concatenate(descriptors)
    kf_count = np.array(counts, np.int64)
    kf_start = np.concatenate([[0], np.cumsum(kf_count)[:-1]]).astype(np.int64)
    tel_count = np.array(tel_counts, np.int64)
    tel_start = np.concatenate([[0], np.cumsum(tel_count)[:-1]]).astype(np.int64)
    stats = kernels.telemetry_stats(np.concatenate(tel_time), np.concatenate(tel_values),
                                    tel_start, tel_count)
    emb = kernels.clip_embeddings(desc, kf_start, kf_count, stats,
                                  kernels.embedding_projection())
    sim = emb @ emb.T
    labels = np.array(labels)
    same = labels[:, None] == labels[None, :]
    off_diag = ~np.eye(len(labels), dtype=bool)
    near_dup = sim[same & off_diag]
    different = sim[~same]
    assert near_dup.min() > 0.9, near_dup.min()
    assert different.max() < near_dup.min() - 0.01, (different.max(), near_dup.min())
    # every clip's nearest neighbour is a variant of the same scenario
    nearest = np.argmax(np.where(off_diag, sim, -np.inf), axis=1)
    assert (labels[nearest] == labels).all()


def test_input_vectors_standardised_with_fixed_constants():
    """v2 input = (raw - CENTER) * gain, gain = weight / (max(SD, floor) * sqrt(block size));
    a clip without telemetry gets a zero telemetry block; matches the NumPy reference."""
    from kernels import reference as ref
    from kernels._embedding_calibration import INPUT_CENTER, INPUT_SD
    from kernels.embedding import (
        BLOCKS,
        EMBEDDING_INPUT_DIM,
        clip_input_vectors,
        input_standardisation,
    )

    rng = np.random.default_rng(5)
    frames = np.stack([driving_scene("highway", 0.5 * k, H, W, rng) for k in range(KEYFRAMES)])
    desc = np.concatenate([kernels.keyframe_descriptors(frames)] * 2)
    t, values = _telemetry("hard_brake")
    stats = kernels.telemetry_stats(t, values, np.array([0, 0], np.int64), np.array([len(t), 0], np.int64))
    start, count = np.array([0, KEYFRAMES], np.int64), np.array([KEYFRAMES, KEYFRAMES], np.int64)
    raw = clip_input_vectors(desc, start, count, stats, standardised=False)
    std = clip_input_vectors(desc, start, count, stats)
    offset, gain = input_standardisation()
    assert raw.shape == (2, EMBEDDING_INPUT_DIM)
    np.testing.assert_array_equal(offset, INPUT_CENTER)
    tel = slice(EMBEDDING_INPUT_DIM - BLOCKS[-1][1], EMBEDDING_INPUT_DIM)
    np.testing.assert_allclose(std[0], (raw[0] - INPUT_CENTER) * gain, rtol=1e-12, atol=1e-12)
    assert np.all(std[1, tel] == 0.0) and np.any(std[0, tel] != 0.0)
    # the gain of the first layout feature, by hand
    sd = INPUT_SD[: BLOCKS[0][1]]
    assert gain[0] == pytest.approx(BLOCKS[0][2] / (max(sd[0], 0.1 * sd.mean()) * np.sqrt(BLOCKS[0][1])))
    np.testing.assert_allclose(raw, ref.clip_embeddings(desc, start, count, stats,
                                                        kernels.embedding_projection(), standardised=False),
                               rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="calibration constants"):
        input_standardisation(np.zeros(3), np.ones(3))
