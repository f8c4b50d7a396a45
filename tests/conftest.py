from __future__ import annotations

import numpy as np
import pytest

from engine.sovereignty.regions import Home
from engine.store.region import THUMB_SHAPE, NewClip


@pytest.fixture
def home(tmp_path) -> Home:
    h = Home.open(tmp_path / "home", create=True)
    h.add_region("us-west", jurisdiction="US", export_fields=("ids", "scores", "hashes"), export_to=("*",))
    h.add_region("cn-east", jurisdiction="CN")
    return h


def make_new_clip(rng: np.random.Generator, clip_id: str, k: int = 8, dim: int = 128, **kw) -> NewClip:
    emb = rng.standard_normal(dim).astype(np.float32)
    emb /= np.linalg.norm(emb)
    return NewClip(
        clip_id=clip_id,
        digest=f"digest-{clip_id}",
        source=f"/src/{clip_id}",
        duration_s=k / 2.0,
        keyframe_hashes=rng.integers(0, 256, (k, 32), dtype=np.uint8),
        keyframe_phash=rng.integers(0, 256, (k, 8), dtype=np.uint8),
        keyframe_quality=np.full(k, 80, np.uint8),
        keyframe_times=(np.arange(k) / 2.0).astype(np.float32),
        embedding=emb,
        thumbnail=np.zeros(THUMB_SHAPE, np.uint8),
        **kw,
    )
