"""Picture conditions on real dashcam frames and clips: must fire, must not fire.

Needs the labelled real footage (the dev set layout, see benchmarks/real_scenes.py) in the folder
named by the environment variable CLIPDEX_REAL_CLIPS; skipped when it is unset. Each recording is
judged on its first three 5-s clips, as ingest cuts them (keyframes at 2 Hz, hashed view, 192x108
trigger views); a recording shows a condition when at least half of those clips fire it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.real_scenes import (
    ENV_VAR,
    MOMENTS,
    Unit,
    by_recording,
    iter_units,
    load_labels,
    recording_fires,
)

pytestmark = pytest.mark.skipif(not os.environ.get(ENV_VAR),
                                reason=f"{ENV_VAR} is not set: no labelled real footage to test on")

#: recordings that fire low_light without a night label, and why (each one is a real shortcoming
#: or a judgement call the labels make differently, kept in view rather than hidden)
NIGHT_FALSE_KNOWN = {
    "v29_ddad_tokyo_wet_composite.gif": "a composite on a black background: the sky band is dark",
    "frames/dusk/F04_loc2_return.jpg": "deep twilight: the sky is as dark as a night sky",
}
#: labelled recordings the picture rules do not recognise yet, and why
MISSED_KNOWN = {
    ("fog", "v23_fog_gui_screenrec.mp4"): "a screen recording: the GUI frames the foggy picture",
    ("dusk", "v23_fog_gui_screenrec.mp4"): "a screen recording: the GUI frames the picture",
    ("dusk", "frames/dusk/F04_loc2_return.jpg"): "deep twilight: judged night",
}


@pytest.fixture(scope="module")
def recordings() -> dict[str, list[Unit]]:
    folder = Path(os.environ[ENV_VAR])
    labels = load_labels(folder)
    return by_recording(list(iter_units(folder, labels, max_pieces=3)))


def fires(units: list[Unit], trigger: str, condition: str) -> bool:
    return recording_fires(units, trigger, condition in MOMENTS)


def with_label(recs: dict[str, list[Unit]], label: str) -> dict[str, list[Unit]]:
    return {name: us for name, us in recs.items() if label in us[0].labels}


def without_label(recs: dict[str, list[Unit]], *labels: str) -> dict[str, list[Unit]]:
    return {name: us for name, us in recs.items() if not set(labels) & us[0].labels}


def test_the_dev_set_has_every_condition(recordings):
    for label in ("night", "dusk", "fog", "snow", "glare", "overcast", "tunnel"):
        assert with_label(recordings, label), label


def test_no_black_frames_on_real_footage(recordings):
    """Real night (mean luma 5-40) is never a covered lens; nothing in the dev set is."""
    black = sorted({u.file for us in recordings.values() for u in us if "black_frames" in u.triggers})
    assert black == []


def test_night_driving_is_never_a_frozen_camera(recordings):
    """A night drive changes little on average (lit markings and lamps move in the dark, mean
    change 0.1-0.5 of 255): it is valid footage, never a frozen camera."""
    frozen = sorted({u.file for us in with_label(recordings, "night").values() for u in us
                     if "frozen_camera" in u.triggers})
    assert frozen == []


def test_night_fires_low_light(recordings):
    night = with_label(recordings, "night")
    assert len(night) >= 10
    missed = [name for name, us in night.items() if not fires(us, "low_light", "night")]
    assert missed == []


def share(units: list[Unit], trigger: str) -> float:
    """The share of a recording's keyframes that show ``trigger`` (clips weighted alike)."""
    return sum(u.shares[trigger] for u in units) / len(units)


def test_night_and_daylight_keep_a_margin(recordings):
    """The majority rule decides night with room on both sides: night recordings show low_light
    on most keyframes, daylit open roads and streets on almost none (but the known false alarms)."""
    night = {name: share(us, "low_light") for name, us in with_label(recordings, "night").items()}
    assert min(night.values()) >= 0.6, night
    day = {name: share(us, "low_light") for name, us in recordings.items()
           if {"highway-day", "rural-day", "urban-day"} & us[0].labels and name not in NIGHT_FALSE_KNOWN}
    assert max(day.values()) <= 0.1, sorted(day.items(), key=lambda kv: -kv[1])[:3]


def test_daylight_does_not_fire_low_light(recordings):
    day = without_label(recordings, "night")
    false = {name for name, us in day.items() if fires(us, "low_light", "night")}
    assert false <= set(NIGHT_FALSE_KNOWN), sorted(false - set(NIGHT_FALSE_KNOWN))
    highway_rural = {n for n, us in day.items() if {"highway-day", "rural-day"} & us[0].labels}
    assert not false & highway_rural


def check_condition(recordings, condition: str, trigger: str, not_with: tuple[str, ...] = ()) -> None:
    positives = with_label(recordings, condition)
    missed = {name for name, us in positives.items() if not fires(us, trigger, condition)}
    known = {name for cond, name in MISSED_KNOWN if cond == condition}
    assert missed <= known, sorted(missed - known)
    assert len(positives) - len(missed) >= 2
    negatives = without_label(recordings, condition, *not_with)
    false = sorted(name for name, us in negatives.items() if fires(us, trigger, condition))
    assert false == []


def test_fog(recordings):
    """Fog fires on foggy footage; overcast, rain under a grey sky, snow and haze-free low-contrast
    highways do not fire it."""
    check_condition(recordings, "fog", "low_visibility", not_with=("snow",))
    overcast = with_label(recordings, "overcast")
    assert not [name for name, us in overcast.items() if fires(us, "low_visibility", "fog")]


def test_a_misted_lens_is_low_visibility(recordings):
    """Fog seen through a lens covered with water (a sensor rig in fog and rain) keeps no fine
    detail: low visibility on most of its keyframes. Every recording without fog keeps its
    detail: at most a tenth of its keyframes (a phone video's softest moments) come near."""
    misted = recordings["S01_marcelsheeny_zed_left.mp4"]
    assert fires(misted, "low_visibility", "fog") and share(misted, "low_visibility") >= 0.6
    clear = {name: share(us, "low_visibility") for name, us in without_label(recordings, "fog").items()}
    assert max(clear.values()) <= 0.1, sorted(clear.items(), key=lambda kv: -kv[1])[:3]


def test_dusk(recordings):
    check_condition(recordings, "dusk", "dusk")


def test_snow_and_glare_never_fire_falsely(recordings):
    """Snow and glare are conservative on real footage: no false alarm (their recall is in the
    real_scenes benchmark)."""
    for condition, trigger in (("snow", "snow"), ("glare", "glare")):
        negatives = without_label(recordings, condition)
        assert not [name for name, us in negatives.items() if fires(us, trigger, condition)], condition


def test_urban_scene(recordings):
    """The urban label fires on most labelled city streets and on no labelled open road but a
    village street lined with trees (counted here, not hidden)."""
    typed = {n: us for n, us in recordings.items() if {"highway-day", "rural-day", "urban-day"} & us[0].labels}
    urban = {n for n, us in typed.items() if fires(us, "urban", "urban-day")}
    streets = {n for n, us in typed.items() if "urban-day" in us[0].labels}
    assert len(urban & streets) >= 5
    assert urban - streets <= {"v21_india_dashcam_cows.mp4"}, sorted(urban - streets)


def test_tunnel(recordings):
    """Tunnels fire (a sodium-lit interior, an expressway tunnel entered in rain and left again),
    and no open road, street, night drive or tree-lined road does; a tunnel is not night."""
    check_condition(recordings, "tunnel", "tunnel")
    tunnels = with_label(recordings, "tunnel")
    assert not [name for name, us in tunnels.items() if fires(us, "low_light", "night")]
