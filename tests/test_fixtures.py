"""Tests of the synthetic fleet (fixtures/): determinism, transforms, scenarios, telemetry,
the on-disk format, ground-truth consistency and encoded video files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import av
import numpy as np
import pytest
import zarr

from fixtures import (
    ALL_TRANSFORMS,
    CLIP_FORMAT,
    GT_FORMAT,
    RARE_SCENARIOS,
    FleetSpec,
    iter_fleet_clips,
    load_ground_truth,
    plan_fleet,
    rare_clip_ids,
    true_pairs,
    write_fleet,
)
from fixtures import render as R
from fixtures import scenarios as S
from fixtures import transforms as X
from fixtures.video import write_fleet_videos

ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def luma(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.float64)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


@pytest.fixture(scope="module")
def tiny_plan():
    return plan_fleet(FleetSpec.tiny())


@pytest.fixture(scope="module")
def tiny_clips(tiny_plan):
    return {c.clip_id: c for c in iter_fleet_clips(tiny_plan)}


@pytest.fixture(scope="module")
def demo_gt():
    return plan_fleet(FleetSpec.demo()).ground_truth


def _drive(scenario, seed=3, region="us-west", cond=None, seconds=4.0):
    sc = S.SCENARIOS[scenario]
    route = S.build_route("r", region, sc.road, seed)
    if cond is None:
        cond = S.scenario_conditions(scenario, sc.road, region, np.random.default_rng(seed))
    return S.build_drive("d", "v", route, scenario, cond, 1.7e9, 800.0, 1, seconds, 10.0,
                         seed + 1)


def _render(drive, w=96, h=54):
    n = int(round(drive.duration * drive.fps))
    return drive.render(drive.margin_frames, n, w, h)


# ------------------------------------------------------------------------------------------
# determinism
# ------------------------------------------------------------------------------------------


def test_same_seed_same_fleet(tiny_plan, tiny_clips):
    again = plan_fleet(FleetSpec.tiny())
    assert json.dumps(again.ground_truth, sort_keys=True) == json.dumps(
        tiny_plan.ground_truth, sort_keys=True)
    for i, clip in enumerate(iter_fleet_clips(again)):
        ref = tiny_clips[clip.clip_id]
        assert clip.frames.tobytes() == ref.frames.tobytes()
        assert clip.frame_times.tobytes() == ref.frame_times.tobytes()
        for k, v in clip.telemetry.items():
            assert v.tobytes() == ref.telemetry[k].tobytes()
        if i >= 8:
            break


def test_other_seed_other_fleet(tiny_plan, tiny_clips):
    other = plan_fleet(FleetSpec.tiny(seed=1))
    assert json.dumps(other.ground_truth["clips"]) != json.dumps(
        tiny_plan.ground_truth["clips"])
    clip = next(iter_fleet_clips(other))
    ref = next(iter(tiny_clips.values()))
    assert clip.frames.shape != ref.frames.shape or not np.array_equal(clip.frames, ref.frames)


def test_render_independent_of_window():
    d = _drive("highway_cruise")
    whole = d.render(d.margin_frames, 20, 64, 36)
    part = d.render(d.margin_frames + 7, 5, 64, 36)
    assert np.array_equal(whole[7:12], part)


def test_import_compiles_nothing():
    code = ("import fixtures, fixtures.render as r; "
            "assert not r._render_frames.signatures, r._render_frames.signatures")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------
# transforms
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source_frames():
    return _render(_drive("rural_road", seconds=1.0))


def test_brightness_raises_luma(source_frames):
    out = X.apply_pixel_transform("brightness", source_frames, {"delta": 30})
    assert luma(out).mean() > luma(source_frames).mean() + 15


def test_contrast_and_gamma(source_frames):
    low = X.apply_pixel_transform("contrast", source_frames, {"factor": 0.6})
    assert luma(low).std() < 0.7 * luma(source_frames).std()
    bright = X.apply_pixel_transform("gamma", source_frames, {"gamma": 0.6})
    assert luma(bright).mean() > luma(source_frames).mean() + 10


def test_grayscale_channels_equal(source_frames):
    g = X.apply_pixel_transform("grayscale", source_frames, {})
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])


def test_letterbox_black_bars(source_frames):
    out = X.apply_pixel_transform("letterbox", source_frames, {"bar_frac": 0.1})
    bar = int(round(source_frames.shape[1] * 0.1))
    assert out.shape == source_frames.shape
    assert out[:, :bar].max() == 0 and out[:, -bar:].max() == 0
    assert out[:, bar:-bar].mean() > 20


def test_downscale_and_crop(source_frames):
    small = X.apply_pixel_transform("downscale", source_frames, {"width": 48, "height": 28})
    assert small.shape == (source_frames.shape[0], 28, 48, 3)
    crop = X.apply_pixel_transform("crop_rescale", source_frames,
                                   {"frac": 0.08, "fx": 0.5, "fy": 0.5})
    assert crop.shape == source_frames.shape
    assert not np.array_equal(crop, source_frames)


def test_reencode_blur_timestamp_close_but_changed(source_frames):
    for name, prm in [("reencode", {"quality": 25}),
                      ("blur_noise", {"radius": 1.0, "sigma": 4.0, "noise_seed": 1})]:
        out = X.apply_pixel_transform(name, source_frames, prm)
        diff = np.abs(out.astype(int) - source_frames.astype(int)).mean()
        assert 0.3 < diff < 20, name
    ts = X.apply_pixel_transform("timestamp_bar", source_frames,
                                 {"bar_frac": 0.12, "epoch": 1.7e9, "logo_rgb": [200, 30, 30]})
    bar = ts[:, -5:]
    assert (bar < 10).mean() > 0.5 and bar.max() > 200  # black bar with white text
    assert np.array_equal(ts[:, 10:-10, 5:-20], source_frames[:, 10:-10, 5:-20])


def test_wrong_dtype_is_type_error(source_frames):
    with pytest.raises(TypeError, match="uint8"):
        X.apply_pixel_transform("grayscale", source_frames.astype(np.float32), {})


def test_resample_fps():
    frames = np.arange(80, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    f15, t15 = X.resample_fps(frames, 10.0, 15.0)
    assert f15.shape[0] == 120 and np.allclose(t15, np.arange(120) / 15.0)
    f75, t75 = X.resample_fps(frames, 10.0, 7.5)
    assert f75.shape[0] == 60
    assert np.array_equal(f75[:, 0, 0, 0], np.floor(t75 * 10 + 1e-6).astype(np.uint8))


def test_fleet_copies_match_their_sources(tiny_plan, tiny_clips):
    seen = Counter()
    for clip in tiny_clips.values():
        g = clip.gt
        t = g["transform"]
        if t is None:
            continue
        src = tiny_clips[g["source_clip"]]
        fps = g["fps"]
        seen[t] += 1
        assert len(clip.frame_times) == clip.frames.shape[0]
        assert np.allclose(clip.frame_times, np.arange(len(clip.frame_times)) / fps)
        off = int(round(g["offset_s"] * src.gt["fps"]))
        if t == "exact":
            assert np.array_equal(clip.frames, src.frames)
        elif t == "trim":
            n = clip.frames.shape[0]
            assert np.array_equal(clip.frames, src.frames[off:off + n])
        elif t == "fps_change":
            assert fps != src.gt["fps"]
            assert clip.frames.shape[0] == int(round(g["duration_s"] * fps))
            assert clip.attrs["fps"] == fps
        elif t == "downscale":
            assert clip.frames.shape[1] < src.frames.shape[1]
            assert clip.attrs["height"] == clip.frames.shape[1]
        elif t == "splice":
            n1 = g["params"]["a_len"]
            assert np.array_equal(clip.frames[:n1], src.frames[off:off + n1])
            other = tiny_clips[g["second_source_clip"]]
            b0 = g["params"]["b_first"]
            assert np.array_equal(clip.frames[n1:], other.frames[b0:b0 + g["params"]["b_len"]])
        elif t == "reupload_roll":
            # the overlap renders identically: same drive time -> same pixels
            a, b = g["span_s"]
            ia, ib = int(round(a * fps)), int(round(b * fps))
            assert np.array_equal(clip.frames[ia:ib], src.frames[ia + off:ib + off])
            assert clip.attrs["drive_id"] == src.attrs["drive_id"]
        elif t == "grayscale":
            assert np.array_equal(clip.frames[..., 0], clip.frames[..., 2])
        # telemetry is the matching slice of the source's
        if t in X.PIXEL_TRANSFORMS:
            for k in ("speed", "accel", "yaw_rate", "steering"):
                assert np.array_equal(clip.telemetry[k], src.telemetry[k])
        elif t == "trim":
            m = len(clip.telemetry["time"])
            k0 = int(round(g["offset_s"] * 10))
            assert np.allclose(clip.telemetry["speed"], src.telemetry["speed"][k0:k0 + m])
    assert set(seen) == set(ALL_TRANSFORMS)


# ------------------------------------------------------------------------------------------
# scenarios look and move differently
# ------------------------------------------------------------------------------------------


def test_night_darker_than_day():
    day = _render(_drive("highway_cruise", cond=S.Conditions("day", "clear", 3000.0)))
    night = _render(_drive("highway_cruise", cond=S.Conditions("night", "clear", 3000.0)))
    assert luma(night).mean() < 0.5 * luma(day).mean()


def test_fog_lowers_contrast():
    clear = _render(_drive("highway_cruise", cond=S.Conditions("day", "clear", 3000.0)))
    fog = _render(_drive("dense_fog"))
    def detail(frames):  # mean absolute gradient: local contrast
        y = luma(frames)
        return np.abs(np.diff(y, axis=1)).mean() + np.abs(np.diff(y, axis=2)).mean()

    assert detail(fog) < 0.6 * detail(clear)
    assert luma(fog)[:, : fog.shape[1] // 2].std() < 0.5 * luma(clear)[:, : fog.shape[1] // 2].std()


def test_rain_has_streaks():
    d = _drive("night_rain_pedestrian")
    rain = _render(d)
    d.env[R.E_RAIN] = 0.0
    dry = _render(d)
    brighter = (luma(rain) - luma(dry)) > 8
    frac = brighter.mean()
    assert 0.01 < frac < 0.4
    # streaks move: the pattern differs between consecutive frames
    assert (brighter[0] != brighter[1]).mean() > 0.005


def test_scenario_frames_differ():
    means = {}
    for name in ("highway_cruise", "urban_stop_and_go", "snow", "tunnel_exit_glare"):
        means[name] = _render(_drive(name)).reshape(-1, 3).mean(axis=0)
    names = list(means)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert np.abs(means[names[i]] - means[names[j]]).max() > 5, (names[i], names[j])


def test_hard_brake_and_stop_and_go_telemetry():
    d = _drive("hard_brake_cut_in", seconds=8.0)
    tel = d.telemetry(np.arange(80) / 10.0)
    assert tel["accel"].min() < -4.0
    d = _drive("urban_stop_and_go", seconds=8.0)
    tel = d.telemetry(np.arange(80) / 10.0)
    assert tel["speed"].min() < 0.3 and tel["speed"].max() > 3.0


def test_speed_integral_matches_scenery_motion():
    d = _drive("following", seconds=6.0)
    t = np.linspace(0.0, 6.0, 601)
    tel = d.telemetry(t)
    travelled = np.trapezoid(tel["speed"], t)
    i0, i1 = d.frame_index(0.0), d.frame_index(6.0)
    rendered = d.frames["s"][i1] - d.frames["s"][i0]
    assert rendered == pytest.approx(travelled, rel=0.02)


def test_scenario_registry_is_consistent():
    assert set(S.COMMON_SCENARIOS) | set(RARE_SCENARIOS) == set(S.SCENARIOS)
    for name, sc in S.SCENARIOS.items():
        assert isinstance(sc, S.Scenario) and sc.name == name
        assert sc.road in S.ROAD_BUILDERS and 0 < sc.speed[0] < sc.speed[1]
    for region, mix in S.REGION_MIX.items():
        assert set(mix) == set(S.SCENARIOS), region


def test_scenario_events_show_in_the_drive():
    tunnel = _drive("tunnel_exit_glare")
    assert tunnel.tunnels.shape == (1, 2) and tunnel.frames["exposure"].max() > 2.0
    assert _drive("highway_cruise").tunnels.shape == (0, 2)
    lane = _drive("lane_change", seconds=8.0)
    assert np.ptp(lane.fine["u"]) > 2.5  # a 3.6 m lane over
    wrong = _drive("wrong_way_vehicle", seconds=8.0)
    assert (wrong.actors["kind"] == R.ACT_ONCOMING).sum() == 1  # highways have no other
    crossing = _drive("night_rain_pedestrian")
    assert (crossing.actors["kind"] == R.ACT_PEDESTRIAN).sum() == 1
    assert crossing.conditions.lighting == "night" and crossing.conditions.weather == "rain"


def test_unknown_road_type_and_transform_are_refused():
    with pytest.raises(ValueError, match="unknown road type 'gravel'"):
        S.build_route("r", "us-west", "gravel", 1)
    with pytest.raises(ValueError, match="unknown pixel transform 'sepia'"):
        X.draw_params("sepia", np.random.default_rng(0), 96, 54)


def test_same_place_same_scenery():
    route = S.build_route("r", "cn-east", "urban", 11)
    again = S.build_route("r", "cn-east", "urban", 11)
    for k, v in route.arrays.items():
        assert np.array_equal(v, again.arrays[k]), k


# ------------------------------------------------------------------------------------------
# on-disk format
# ------------------------------------------------------------------------------------------


def test_written_zarr_matches_format(tmp_path, tiny_plan):
    calls = []
    gt = write_fleet(tmp_path, FleetSpec.tiny(), progress=lambda d, n: calls.append((d, n)))
    assert calls[-1] == (len(gt["clips"]), len(gt["clips"]))
    loaded = load_ground_truth(tmp_path / "ground_truth.json")
    assert loaded == json.loads(json.dumps(tiny_plan.ground_truth))
    assert loaded["format"] == GT_FORMAT
    by_id = {c["clip_id"]: c for c in loaded["clips"]}
    found = set()
    for region in FleetSpec.tiny().regions:
        root = zarr.open_group(tmp_path / region / "clips.zarr", mode="r")
        for name, g in root.groups():
            found.add(name)
            assert ID_RE.match(name)
            fr = g["frames"]
            assert fr.dtype == np.uint8 and fr.ndim == 4 and fr.shape[-1] == 3
            t, h, w, _ = fr.shape
            assert fr.chunks == (min(t, 16), h, w, 3)
            ft = g["frame_times"][:]
            assert ft.dtype == np.float64 and ft.shape == (t,) and ft[0] == 0.0
            assert np.all(np.diff(ft) > 0)
            tel = g["telemetry"]
            assert tel["time"].dtype == np.float64
            m = tel["time"].shape[0]
            for k in ("speed", "accel", "yaw_rate", "steering"):
                assert tel[k].dtype == np.float32 and tel[k].shape == (m,)
            a = dict(g.attrs)
            assert a["format"] == CLIP_FORMAT and a["clip_id"] == name
            assert a["region"] == region and (a["width"], a["height"]) == (w, h)
            assert set(a) == {"clip_id", "region", "drive_id", "vehicle_id", "start_time",
                              "fps", "width", "height", "format"}
            assert by_id[name]["region"] == region
    assert found == set(by_id)


# ------------------------------------------------------------------------------------------
# ground truth
# ------------------------------------------------------------------------------------------


def test_ground_truth_consistent(demo_gt):
    gt = demo_gt
    ids = {c["clip_id"] for c in gt["clips"]}
    assert len(ids) == len(gt["clips"]) and all(ID_RE.match(i) for i in ids)
    pairs = true_pairs(gt)
    for p in gt["pairs"]:
        assert p["a"] in ids and p["b"] in ids and p["a"] != p["b"]
        assert p["relation"] in ("whole", "partial")
    for n in gt["hard_negatives"]:
        assert n["a"] in ids and n["b"] in ids
        assert frozenset((n["a"], n["b"])) not in pairs
    assert {n["kind"] for n in gt["hard_negatives"]} == {"same_route_other_day",
                                                        "adjacent_segment"}
    assert {c["transform"] for c in gt["clips"]} - {None} == set(FleetSpec.demo().transforms)
    for c in gt["clips"]:
        if c["source_clip"] is not None:
            assert frozenset((c["source_clip"], c["clip_id"])) in pairs
        if c["transform"] == "splice":
            assert frozenset((c["second_source_clip"], c["clip_id"])) in pairs
    assert any(p.get("cross_region") for p in gt["pairs"])
    for c in gt["clips"]:
        if c["transform"] == "trim":  # offsets are not on the 2 Hz keyframe grid
            assert abs(c["offset_s"] * 2 - round(c["offset_s"] * 2)) > 1e-6
    rare = rare_clip_ids(gt)
    for region in gt["spec"]["regions"]:
        n_rare = sum(1 for c in gt["clips"]
                     if c["region"] == region and c["rare"] and c["transform"] is None)
        assert n_rare >= 6
    # one rare event uploaded several times
    whole = Counter()
    for p in gt["pairs"]:
        if p["relation"] == "whole" and p["a"] in rare:
            whole[p["a"]] += 1
    assert max(whole.values()) >= 3


def test_pair_offsets_follow_provenance(demo_gt):
    by_id = {c["clip_id"]: c for c in demo_gt["clips"]}
    for p in demo_gt["pairs"]:
        b = by_id[p["b"]]
        if b["source_clip"] == p["a"] and b["transform"] != "splice":
            assert p["offset_s"] == pytest.approx(b["offset_s"])
    splices = [c for c in demo_gt["clips"] if c["transform"] == "splice"]
    assert splices
    for s in splices:
        rel = {(p["a"], p["b"]): p for p in demo_gt["pairs"] if s["clip_id"] in (p["a"], p["b"])}
        assert rel[(s["source_clip"], s["clip_id"])]["relation"] == "partial"
        second = rel[(s["second_source_clip"], s["clip_id"])]
        assert second["relation"] == "partial"
        assert second["offset_s"] == pytest.approx(s["second_offset_s"])


def test_quality_preset_shape():
    spec = FleetSpec.quality()
    assert spec.n_clips >= 1000 and len(spec.regions) >= 2
    assert (spec.width, spec.height, spec.fps, spec.clip_seconds) == (320, 180, 10.0, 10.0)
    assert spec.rare_event_drive_clips >= 2 and spec.rare_multi_uploads >= 3


def test_quality_fleet_labels_agree_with_its_frequencies():
    """In every region of the quality fleet, each rare scenario is filmed by fewer independent
    drives than each common one: a ranking by scenario frequency (the best any density could do)
    finds every rare clip."""
    from benchmarks.rarity_diagnostics import scenario_oracle_recall

    spec = FleetSpec.quality()
    gt = plan_fleet(spec).ground_truth
    info = {c["clip_id"]: c for c in gt["clips"]}
    for region in spec.regions:
        ids = [c["clip_id"] for c in gt["clips"] if c["region"] == region]
        drives: dict[str, set] = {}
        for c in ids:
            if info[c]["transform"] is None:
                drives.setdefault(info[c]["scenario"], set()).add(info[c]["drive_id"])
        rare = [len(d) for s, d in drives.items() if s in RARE_SCENARIOS]
        common = [len(d) for s, d in drives.items() if s not in RARE_SCENARIOS]
        assert max(rare) < min(common), (region, drives)
        assert scenario_oracle_recall(ids, info) == 1.0


def test_rare_event_over_consecutive_clips(tiny_plan):
    gt = tiny_plan.ground_truth
    per_drive = Counter(c["drive_id"] for c in gt["clips"]
                        if c["rare"] and c["transform"] is None)
    assert max(per_drive.values()) >= 2
    # a clip is rare when its footage is: its scenario's, or for a splice either part's
    for c in gt["clips"]:
        parts = {c["scenario"], c.get("second_scenario", c["scenario"])}
        assert c["rare"] == bool(parts & set(RARE_SCENARIOS)), c


def test_spec_validation():
    with pytest.raises(ValueError, match="even"):
        FleetSpec(width=95)
    with pytest.raises(ValueError, match="unknown transforms"):
        FleetSpec(transforms=("sepia",))
    with pytest.raises(ValueError, match="rare_clips_per_drive"):
        FleetSpec(rare_clips_per_drive=(3, 2))


# ------------------------------------------------------------------------------------------
# video files
# ------------------------------------------------------------------------------------------


def test_fleet_videos_decode(tmp_path):
    manifest = write_fleet_videos(tmp_path, FleetSpec.tiny(), n=4)
    assert {m["codec"] for m in manifest} == {"h264", "mpeg4", "libvpx-vp9", "mjpeg"}
    for m in manifest:
        with av.open(m["path"]) as c:
            frames = [f for f in c.decode(video=0)]
        assert len(frames) == m["frames"]
        assert (frames[0].width, frames[0].height) == (m["width"], m["height"])
        with open(m["csv"]) as fh:
            assert fh.readline().strip() == "time,speed,accel,yaw_rate,steering"
        tel = np.loadtxt(m["csv"], delimiter=",", skiprows=1)
        assert tel.shape[1] == 5 and np.all(np.diff(tel[:, 0]) > 0)
