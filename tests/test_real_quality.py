"""The real-footage dedup benchmark on the dev set (``benchmarks.real_quality --quick``).

Runs only where ``CLIPDEX_REAL_CLIPS`` names the dev set folder (its footage is never in the
repository); marked slow: generating and ingesting the quick variant set takes about 2 minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import real_quality as rq

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    folder = os.environ.get(rq.ENV_VAR)
    if not folder or not (Path(folder) / "ground_truth.csv").exists():
        pytest.skip(f"{rq.ENV_VAR} does not name a folder of real clips with ground_truth.csv; "
                    "set it to the dev set folder to run the real-footage benchmark")
    return rq.run(Path(folder), rq.BenchOptions.quick(), tmp_path_factory.mktemp("real"), say=lambda _: None)


def test_no_hard_negative_is_a_whole_duplicate(result):
    hard = result["scores"]["hard_negatives"]
    assert hard["pairs"] >= 6  # the dev set's own and the adjacent segments cut from 2 recordings
    assert hard["whole"] == 0, hard["claims"]


def test_devset_third_party_video_pairs_found(result):
    classes = result["scores"]["classes"]
    for name in ("devset_reencode", "devset_partial", "devset_annotated"):
        assert classes[name]["recall"] == 1.0, (name, classes[name]["missed"])


def test_precision_and_plain_variants(result):
    scores = result["scores"]
    # unrelated recordings never matched (partial claims between adjacent segments of one
    # recording are counted apart, in hard_negatives)
    assert scores["false_pairs"] == []
    for name in ("reencode_x264_crf36", "reencode_hevc", "downscale_320", "splice"):
        assert scores["classes"][name]["recall"] == 1.0, (name, scores["classes"][name]["missed"])
    assert scores["offset_error_max_s"] <= 0.5


def test_table_fits_80_columns(result):
    lines = rq.table_lines(result)
    assert max(map(len, lines)) <= 80
    assert any(line.startswith("overall: precision") for line in lines)


def test_missing_folder_names_the_fix(monkeypatch):
    monkeypatch.delenv(rq.ENV_VAR, raising=False)
    with pytest.raises(SystemExit, match="--clips DIR"):
        rq.clips_folder(None)
