"""Recordings on real dashcam footage (the dev set named by ``CLIPDEX_REAL_CLIPS``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL = os.environ.get("CLIPDEX_REAL_CLIPS")
pytestmark = pytest.mark.skipif(
    not (REAL and Path(REAL).is_dir()),
    reason="real footage not available: set CLIPDEX_REAL_CLIPS to the dev set folder "
           "(../shared/devset) to run the real-footage checks")


def test_split_real_recordings_never_match_themselves():
    from benchmarks.real_recordings import run

    out = run(Path(REAL), clip_seconds=5.0, limit=12)
    assert out["clips"] > 2 * out["files"], "the dev set's videos must split into several clips"
    assert out["ingest_failed"] == []
    assert out["self_pairs"] == [] and out["self_groups"] == []
    assert out["query_own_recording_hits"] == 0
    # without the rule the pieces of one recording are each other's nearest neighbours
    assert out["query_own_recording_hits_if_kept"] > out["clips"]
    assert out["split_recordings_on_both_sides"] == 0 and out["split_recordings"] > 1
