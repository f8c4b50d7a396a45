"""Which picture triggers enter rarity's event signatures: every lighting, weather and tunnel
condition does; the scene label and the data-quality flags do not."""

from __future__ import annotations

import numpy as np

from engine.ingest.triggers import frame_triggers
from engine.scenes.rarity import CONDITION_TRIGGERS, FRAME_TRIGGERS, SITUATION_TRIGGERS


def test_picture_conditions_are_situations():
    assert {"low_light", "dusk", "low_visibility", "snow", "glare", "tunnel"} == FRAME_TRIGGERS
    assert FRAME_TRIGGERS <= SITUATION_TRIGGERS
    assert CONDITION_TRIGGERS == {"low_light", "dusk", "low_visibility", "snow"}  # whole-clip ones
    assert not {"urban", "black_frames", "frozen_camera", "telemetry_gap"} & SITUATION_TRIGGERS


def test_every_picture_trigger_is_classified():
    """A trigger frame_triggers emits is a situation, the scene label or a data-quality flag."""
    rng = np.random.default_rng(0)
    times = np.arange(10) / 2.0
    emitted: set[str] = set()
    for luma in (5, 40, 110, 200, 252):
        for contrast in (0, 5, 40):
            f = np.clip(luma + contrast * rng.standard_normal((10, 36, 64, 3)), 0, 255).astype(np.uint8)
            f[:, :6] = np.clip(f[:, :6].astype(int) - 60, 0, 255)
            emitted |= {name for name, *_ in frame_triggers(f, times)}
    assert emitted
    assert emitted <= FRAME_TRIGGERS | {"urban", "black_frames", "frozen_camera"}, emitted
