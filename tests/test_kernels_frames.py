"""Synthetic frames for the kernel tests and benchmarks (helpers; one sanity test)."""

import numpy as np

from kernels.registry import natural_frames


def driving_scene(kind: str, t: float, height: int, width: int,
                  rng: np.random.Generator) -> np.ndarray:
    """A crude synthetic driving frame of a scenario at time ``t`` (seconds)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    v, u = yy / height, xx / width
    img = np.zeros((height, width, 3))
    horizon = 0.45
    sky = v < horizon
    img[sky] = (120, 170, 230)
    img[~sky] = (90, 90, 95)
    shift = {"highway": 2.0, "hard_brake": 2.0, "urban": 0.6, "night": 1.2, "rain": 1.0,
             "fog": 1.0}[kind] * t
    road_w = np.clip((v - horizon) / (1 - horizon), 0, 1)
    lane = (np.abs(u - 0.5) < 0.01 + 0.02 * road_w) & ~sky & (((v * 12 + shift) % 1.0) < 0.5)
    img[lane] = (235, 235, 220)
    edges = (np.abs(np.abs(u - 0.5) - 0.45 * road_w) < 0.008 + 0.01 * road_w) & ~sky
    img[edges] = (240, 240, 240)
    if kind == "urban":
        for k in range(10):
            x0 = (k * 0.1 + 0.03 * np.sin(k * 7.0) + 0.01 * t) % 1.0
            w = 0.04 + 0.03 * ((k * 37) % 5) / 5
            top = 0.05 + 0.3 * ((k * 53) % 7) / 7
            building = (np.abs(u - x0) < w) & (v > top) & (v < 0.7) & (np.abs(u - 0.5) > 0.15)
            img[building] = (150 + 10 * (k % 3), 110 + 12 * (k % 4), 90)
            windows = building & ((yy % 12) < 5) & ((xx % 10) < 4)
            img[windows] = (60, 70, 90)
    if kind == "night":
        img *= 0.15
        for x0 in (0.42, 0.58):
            light = np.exp(-((u - x0) ** 2 + (v - 0.55) ** 2) / 0.0006)
            img += 255 * light[..., None]
    if kind == "rain":
        img = 0.6 * img + 0.4 * 130
        streaks = ((xx + 3 * yy + 40 * t) % 23 < 1.2) & (rng.random((height, width)) < 0.6)
        img[streaks] += 60
    if kind == "fog":
        fog = np.clip(1.2 - v * 1.1, 0.4, 1.0)[..., None]
        img = img * (1 - fog) + 205 * fog
    img += rng.normal(0, 2.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def test_natural_frames_are_varied():
    frames = natural_frames(2, 24, 40, np.random.default_rng(0))
    assert frames.dtype == np.uint8 and frames.shape == (2, 24, 40, 3)
    assert frames.std() > 10 and not np.array_equal(frames[0], frames[1])
