"""Every trigger fires on crafted telemetry/frames made for it, and stays silent on a near miss."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.ingest.triggers import (
    CLIP_CONDITIONS,
    DEFAULT_THRESHOLDS,
    TRIGGER_VIEW,
    ceiling_taper,
    frame_triggers,
    keyframe_conditions,
    parse_thresholds,
    picture_measures,
    telemetry_triggers,
    trigger_view,
)
from engine.types import Telemetry

HZ = 10.0


def tel(speed, accel=None, yaw=None, time=None) -> Telemetry:
    speed = np.asarray(speed, np.float32)
    n = len(speed)
    t = np.arange(n) / HZ if time is None else np.asarray(time, np.float64)
    accel = np.zeros(n, np.float32) if accel is None else np.asarray(accel, np.float32)
    yaw = np.zeros(n, np.float32) if yaw is None else np.asarray(yaw, np.float32)
    return Telemetry(t, np.stack([speed, accel, yaw, np.zeros(n, np.float32)], axis=1))


def names(trigs) -> dict[str, list]:
    out: dict[str, list] = {}
    for name, *rest in trigs:
        out.setdefault(name, []).append(rest)
    return out


def cruise(n=100, v=15.0):
    return np.full(n, v, np.float32)


# ----------------------------------------------------------------------------- telemetry
def test_hard_brake():
    a = np.zeros(100, np.float32)
    a[30:36] = -6.0  # 0.5 s at -6 m/s^2
    got = names(telemetry_triggers(tel(cruise(), a)))
    assert got["hard_brake"] == [[3.0, 3.5, -6.0]]
    a_short = np.zeros(100, np.float32)
    a_short[30] = -6.0  # a single sample spike: shorter than hard_brake_min_s
    a_soft = np.full(100, -3.5, np.float32)  # sustained but gentle
    assert "hard_brake" not in names(telemetry_triggers(tel(cruise(), a_short)))
    assert "hard_brake" not in names(telemetry_triggers(tel(cruise(), a_soft)))


def test_sharp_turn():
    yaw = np.zeros(100, np.float32)
    yaw[50:60] = 0.5
    got = names(telemetry_triggers(tel(cruise(), yaw=yaw)))
    assert got["sharp_turn"][0][:2] == [5.0, 5.9]
    assert "sharp_turn" not in names(telemetry_triggers(tel(cruise(), yaw=yaw * 0.6)))  # 0.3 rad/s
    assert "sharp_turn" not in names(telemetry_triggers(tel(cruise(v=1.0), yaw=yaw)))  # parking speed


def test_high_jerk():
    a = np.zeros(100, np.float32)
    a[40:] = -5.0  # braking that bites in 0.1 s: 5 m/s^2 change within the 0.5 s window
    got = names(telemetry_triggers(tel(cruise(), a)))
    assert got["high_jerk"][0][2] == pytest.approx(10.0)  # 5 m/s^2 over 0.5 s
    assert got["high_jerk"][0][:2] == pytest.approx([3.5, 4.4])  # windows that contain the step
    smooth = np.linspace(0, 2, 100).astype(np.float32)  # 0.2 m/s^3
    assert "high_jerk" not in names(telemetry_triggers(tel(cruise(), smooth)))
    spike = np.zeros(100, np.float32)
    spike[40] = 1.5  # one noisy sample: 15 m/s^3 sample to sample, not a jerk of the car
    assert "high_jerk" not in names(telemetry_triggers(tel(cruise(), spike)))
    # with no window the sample-to-sample jerk is used, and the spike fires
    raw = telemetry_triggers(tel(cruise(), spike), {"high_jerk_window_s": 0.0})
    assert names(raw)["high_jerk"][0][2] == pytest.approx(15.0)


def test_high_jerk_skips_missing_acceleration():
    a = np.zeros(100, np.float32)
    a[40:] = -5.0
    a[41:44] = np.nan  # gaps in the channel: the window reaches the next valid sample
    got = names(telemetry_triggers(tel(cruise(), a)))
    assert "high_jerk" in got
    assert all(np.isfinite(v[2]) for v in got["high_jerk"])


def test_stop_and_go():
    phase = np.tile(np.r_[np.zeros(10), np.full(10, 5.0)], 3)  # stop, go, stop, go, stop, go
    got = names(telemetry_triggers(tel(phase)))
    assert got["stop_and_go"][0][2] == 3.0  # three restarts
    once = np.r_[np.zeros(10), np.full(50, 5.0)]
    assert "stop_and_go" not in names(telemetry_triggers(tel(once)))
    creep = np.tile(np.r_[np.zeros(10), np.full(10, 2.0)], 3)  # never reaches go_speed
    assert "stop_and_go" not in names(telemetry_triggers(tel(creep)))


def test_telemetry_gap():
    t = np.r_[np.arange(0, 3, 0.1), np.arange(5, 8, 0.1)]  # 2 s without samples
    got = names(telemetry_triggers(tel(np.full(len(t), 10.0), time=t)))
    assert got["telemetry_gap"][0][0] == pytest.approx(2.9) and got["telemetry_gap"][0][1] == pytest.approx(5.0)
    t_ok = np.r_[np.arange(0, 3, 0.1), np.arange(3.8, 8, 0.1)]  # 0.9 s: under telemetry_gap_s
    assert "telemetry_gap" not in names(telemetry_triggers(tel(np.full(len(t_ok), 10.0), time=t_ok)))


def test_quiet_drive_fires_nothing_and_missing_telemetry_is_fine():
    assert telemetry_triggers(tel(cruise())) == []
    assert telemetry_triggers(None) == []


# ----------------------------------------------------------------------------- frames
def frames(k=10, luma=128.0, contrast=40.0, seed=0, moving=True):
    rng = np.random.default_rng(seed)
    out = np.empty((k, 36, 64, 3), np.float32)
    base = rng.standard_normal((36, 64, 1))
    for i in range(k):
        noise = rng.standard_normal((36, 64, 1)) if moving else base
        out[i] = luma + contrast * noise
    return np.clip(out, 0, 255).astype(np.uint8)


TIMES = np.arange(10) / 2.0


def test_quiet_frames_fire_nothing():
    """Grey noise fires no condition and no event (its texture is all edges: a scene label may
    call it urban)."""
    assert [t for t in frame_triggers(frames(), TIMES) if t[0] != "urban"] == []


def test_urban_is_a_far_scene_full_of_vertical_edges():
    open_road = frames(luma=120.0, contrast=0.0)
    open_road[:, :12] = 190  # sky
    open_road[:, 12:18] = 110  # fields up to the horizon
    assert "urban" not in names(frame_triggers(open_road, TIMES))
    street = open_road.copy()
    street[:, :18, ::4] = 40  # facades and poles: a dark vertical every 4 columns
    street[:, :18, 1::4] = 40
    got = names(frame_triggers(street, TIMES))
    assert "urban" in got
    dark = (street.astype(np.float32) * 0.1).astype(np.uint8)  # the same street at night
    got = names(frame_triggers(dark, TIMES))
    assert "low_light" in got and "urban" not in got


def test_low_light():
    got = names(frame_triggers(frames(luma=35.0, contrast=20.0), TIMES))
    assert "low_light" in got and "black_frames" not in got
    assert "low_light" not in names(frame_triggers(frames(luma=75.0, contrast=20.0), TIMES))


def test_low_light_sees_a_night_sky_over_a_lit_street():
    """Streetlights and headlights lift a night street's mean luma well above the dark-picture
    threshold; the sky band above stays dark. A dusk sky (luma 90) over the same street does not
    fire."""
    night = frames(luma=110.0, contrast=30.0)
    night[:, :6] = frames(luma=12.0, contrast=4.0)[:, :6]  # top sixth: a dark sky
    assert night.astype(np.float32).mean() > 90
    assert "low_light" in names(frame_triggers(night, TIMES))
    dusk = frames(luma=110.0, contrast=30.0)
    dusk[:, :6] = tinted(frames(luma=90.0, contrast=4.0)[:, :6], 0.2)  # a blue sky, luma ~75
    assert "low_light" not in names(frame_triggers(dusk, TIMES))
    assert "low_light" in names(frame_triggers(dusk, TIMES, {"low_light_sky_luma": 95.0}))


def test_low_light_is_not_a_daylit_sky_between_tree_crowns():
    """Dark tree crowns fill the sky band by day, but a tenth of it stays near white; a night
    street lit by colourful lamps and signs still counts as night."""
    trees = frames(luma=110.0, contrast=20.0)
    trees[:, :6] = (30, 60, 30)  # dark green crowns over the top sixth ...
    trees[:, :6, ::6] = 240  # ... with the sky showing between them
    assert "low_light" not in names(frame_triggers(trees, TIMES))
    assert "low_light" in names(frame_triggers(trees, TIMES, {"daylight_sky_luma": 250.0}))
    lamps = tinted(trees, 0.8)  # the same layout in saturated colour: lamps and lit signs
    assert "low_light" in names(frame_triggers(lamps, TIMES))


def tinted(f: np.ndarray, saturation: float) -> np.ndarray:
    """Grey frames given a colour: blue kept, red and green scaled down (saturation = 1 - scale)."""
    out = f.astype(np.float32)
    out[..., :2] *= 1.0 - saturation
    return out.astype(np.uint8)


def test_low_visibility():
    """Fog: a flat, colourless, bright far scene. A flat but colourful scene (sunny, low
    contrast) and a flat but dim grey one (a dull day) are not fog."""
    # gaussian texture: (p90 - p10) / median = 2.56 * contrast / luma
    got = names(frame_triggers(frames(luma=200.0, contrast=12.0), TIMES))  # fog: bright, flat (0.15)
    assert "low_visibility" in got
    assert "low_visibility" not in names(frame_triggers(frames(luma=200.0, contrast=45.0), TIMES))  # 0.58
    assert "low_visibility" not in names(frame_triggers(tinted(frames(luma=200.0, contrast=12.0), 0.3), TIMES))
    dull = frames(luma=130.0, contrast=10.0)
    dull[:, 18:] = frames(luma=70.0, contrast=20.0)[:, 18:]  # a dim grey sky over a darker road
    assert "low_visibility" not in names(frame_triggers(dull, TIMES))


def test_low_visibility_ignores_a_car_close_ahead():
    """A car close ahead puts a few dark and bright pixels into a foggy far scene: the std of the
    upper half doubles, its robust spread (p90 - p10 over the median) hardly moves."""
    fog = frames(luma=200.0, contrast=8.0)
    fog[:, 10:18, 28:36] = 30  # 1/18 of the upper half: a dark car body ...
    fog[:, 12:14, 29:31] = 250  # ... with lit tail lights
    upper = fog[:, :18].astype(np.float32).mean(axis=-1).reshape(len(fog), -1)
    assert (upper.std(axis=1) / upper.mean(axis=1)).min() > 0.15  # the old std/mean test missed it
    assert "low_visibility" in names(frame_triggers(fog, TIMES))


def test_snow_is_low_visibility_over_a_bright_ground():
    """Snow on the ground reflects like the sky; fog leaves the road dark. Both wash out the far
    scene (low visibility); only the bright ground adds ``snow``."""
    snow = frames(luma=170.0, contrast=8.0)
    snow[:, 18:] = frames(luma=160.0, contrast=20.0)[:, 18:]  # a white ground with tyre tracks
    got = names(frame_triggers(snow, TIMES))
    assert "low_visibility" in got and "snow" in got
    fog = frames(luma=200.0, contrast=8.0)
    fog[:, 18:] = frames(luma=95.0, contrast=20.0)[:, 18:]  # a grey road
    got = names(frame_triggers(fog, TIMES))
    assert "low_visibility" in got and "snow" not in got
    bright_clear = frames(luma=170.0, contrast=40.0)  # a bright ground under a clear far scene
    assert "snow" not in names(frame_triggers(bright_clear, TIMES))
    blank = np.full((10, 36, 64, 3), 230, np.uint8)  # a blown-out or covered lens: no ground to see
    got = names(frame_triggers(blank, TIMES))
    assert "low_visibility" in got and "snow" not in got


def test_low_visibility_looks_at_the_far_scene():
    """Fog washes out the upper half (the far scene) while the near road keeps its contrast:
    the whole frame's contrast stays high, the trigger still fires; a clear far scene over a
    flat road does not."""
    fog = frames(luma=200.0, contrast=8.0)
    fog[:, 18:] = frames(luma=90.0, contrast=60.0)[:, 18:]  # contrasty near road
    assert fog.astype(np.float32).std() > 30
    assert "low_visibility" in names(frame_triggers(fog, TIMES))
    clear = frames(luma=150.0, contrast=40.0)
    clear[:, 18:] = 100  # a flat, uniform road surface under a detailed far scene
    assert "low_visibility" not in names(frame_triggers(clear, TIMES))
    night = frames(luma=30.0, contrast=2.0)  # dark and flat: low light, not low visibility
    got = names(frame_triggers(night, TIMES))
    assert "low_light" in got and "low_visibility" not in got


def test_glare():
    f = frames()
    f[4:6, :18] = 255  # the upper half blown out for two keyframes (a tunnel exit, the sun)
    got = names(frame_triggers(f, TIMES))
    assert got["glare"] == [[2.0, 2.5, 0.5]]
    g = frames()
    g[4:6, :6] = 255  # a bright sky strip: 1/6 of the picture
    assert "glare" not in names(frame_triggers(g, TIMES))
    h = frames()
    h[4:6, :18] = 240  # bright but not saturated: glare only with a lower glare_luma
    assert "glare" not in names(frame_triggers(h, TIMES))
    assert "glare" in names(frame_triggers(h, TIMES, {"glare_luma": 235.0}))


def tunnel_frames(ceiling=35.0, walls=110.0, green=0.0) -> np.ndarray:
    """A lamp-lit tunnel: a dim ceiling (top sixth), lit side walls and road."""
    f = frames(luma=walls, contrast=10.0).astype(np.float32)
    f[:, :6] = ceiling
    f[..., 1] += green
    return np.clip(f, 0, 255).astype(np.uint8)


def test_tunnel_is_an_enclosure_lit_from_its_walls():
    got = names(frame_triggers(tunnel_frames(), TIMES))
    assert got["tunnel"][0][:2] == [0.0, 4.5]
    assert "low_light" not in got  # a dim ceiling over lit walls is a tunnel, not a night sky
    night = tunnel_frames(ceiling=10.0, walls=25.0)  # a night street: the sides stay dark
    assert "tunnel" not in names(frame_triggers(night, TIMES))
    canopy = tunnel_frames(green=12.0)  # trees close the sky too, but they are green
    assert "tunnel" not in names(frame_triggers(canopy, TIMES))
    day = tunnel_frames(ceiling=200.0)  # a daylit sky is the brightest band
    assert "tunnel" not in names(frame_triggers(day, TIMES))
    overpass = frames(luma=110.0, contrast=10.0)
    overpass[3:5] = tunnel_frames()[3:5]  # 0.5 s under a bridge
    assert "tunnel" not in names(frame_triggers(overpass, TIMES))


def tunnel_views(k=10, vanish=(96.0, 50.0), seed=0):
    """Trigger views of a drive through a lamp-lit tunnel, drawn in perspective: a dim ceiling
    over the camera narrowing to the vanishing point, lit side walls streaked along the tunnel,
    a road, and a row of ceiling lamps that stream outwards as the car moves on."""
    rng = np.random.default_rng(seed)
    h, w = TRIGGER_VIEW
    xv, yv = vanish
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = x - xv, yv - y  # dy > 0 above the vanishing point
    ceiling = (dy > 0) & (np.abs(dx) < 1.4 * dy)  # half-width 1.4x the ceiling's height over the camera
    road = (dy < 0) & (np.abs(dx) < 3.5 * -dy)
    # lamps all along light the walls evenly; their texture streaks towards the vanishing point
    streaks = 12.0 * np.sin(np.arctan2(dy, dx) * 40.0)
    far_end = np.hypot(dx, dy) < 5.0
    out = np.empty((k, h, w, 3), np.float32)
    for i in range(k):
        f = np.zeros((h, w, 3), np.float32)
        lum = np.where(ceiling, 40.0, np.where(road, 85.0, 135.0 + streaks))
        lum = np.where(far_end, 70.0, lum)
        f[:] = lum[..., None] * np.array([1.1, 0.95, 0.8], np.float32)  # warm lamp light
        for z in np.arange(6.0, 80.0, 6.0) - (i * 2.5) % 6.0:  # lamps every 6 m, 2.5 m a keyframe
            ly, size = yv - 250.0 / z, max(1.0, 12.0 / z)
            if ly < 0:
                continue
            f[(np.abs(y - ly) <= size) & (np.abs(x - xv) <= 2 * size)] = (255, 225, 160)
        out[i] = f + rng.normal(0, 2.0, f.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def lorry_views(k=10, seed=0):
    """Trigger views of a dark lorry close ahead in a street of lit facades: its back a box that
    reaches the top of the view and stands on the road, the facades beside it streaming by."""
    rng = np.random.default_rng(seed)
    h, w = TRIGGER_VIEW
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((k, h, w, 3), np.float32)
    for i in range(k):
        f = np.zeros((h, w, 3), np.float32)
        f[:] = (190, 185, 175)  # facades
        shift = 5 * i
        windows = ((x + shift * np.sign(x - w / 2)) % 16 < 10) & (y % 14 < 9)
        f[windows] = (50, 55, 70)
        f[y >= 50] = (90, 90, 92)  # road from the horizon down
        f[(y >= 70) & (np.abs(x - w / 2) < 2)] = 230  # lane line
        box = (y < 66) & (np.abs(x - w / 2) < 40)
        f[box] = (28, 24, 26)
        f[(y >= 56) & (y < 62) & (np.abs(np.abs(x - w / 2) - 34) < 4)] = (200, 20, 20)  # tail lights
        out[i] = f + rng.normal(0, 2.0, f.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def test_a_tunnel_ceiling_narrows_in_perspective_a_lorry_ahead_does_not():
    """A ceiling is a plane over the camera: in perspective it narrows to the vanishing point,
    wherever the horizon sits and with its lamps streaming by. A dark lorry close ahead between
    lit facades darkens the top of the view over lit sides as well, but its back is a box that
    keeps its width down to the road: with the perspective test off, it would be a tunnel."""
    for vanish in ((96.0, 50.0), (70.0, 62.0), (120.0, 40.0), (90.0, 80.0)):  # horizon at 0.37-0.74
        assert (picture_measures(tunnel_views(vanish=vanish)).ceiling_taper <= 0.6).all(), vanish
    for vanish in ((96.0, 50.0), (70.0, 62.0), (90.0, 80.0)):  # enough ceiling in the top sixth
        got = names(frame_triggers(tunnel_views(vanish=vanish), TIMES))
        assert got["tunnel"][0][:2] == [0.0, 4.5] and "low_light" not in got, vanish
    lorry = lorry_views()
    assert (picture_measures(lorry).ceiling_taper >= 0.8).all()
    assert "tunnel" not in names(frame_triggers(lorry, TIMES))
    assert "tunnel" in names(frame_triggers(lorry, TIMES, {"tunnel_ceiling_taper": np.inf}))


def test_ceiling_taper_bridges_lamps_and_reads_the_run_around_the_darkest_column():
    """The dim run's width around the top sixth's darkest column, rows 1/3-1/2 over the top
    sixth; a bright gap of up to two columns (a lamp) stays inside the run; no dim top: inf."""
    luma = np.full((1, 36, 64), 200.0, np.float32)
    luma[:, :, 10:40] = 20.0
    luma[:, :, 20:22] = 250.0  # lamps in the ceiling
    luma[:, :, 30] = 250.0
    luma[:, 12:18, 25:40] = 200.0  # lower down the dark run is half as wide
    assert ceiling_taper(luma, np.array([200.0]), 0.85)[0] == pytest.approx(15 / 30)
    luma[:, :, 20:23] = 250.0  # three columns: the edge of a run 10 columns wide ...
    luma[:, 12:18, 15:20] = 200.0  # ... and 5 lower down
    assert ceiling_taper(luma, np.array([200.0]), 0.85)[0] == pytest.approx(5 / 10)
    assert ceiling_taper(np.full((1, 36, 64), 200.0, np.float32), np.array([200.0]), 0.85)[0] == np.inf


def test_black_frames():
    f = frames()
    f[3:6] = 0
    got = names(frame_triggers(f, TIMES))
    assert got["black_frames"] == [[1.5, 2.5, 0.0]]
    dim = frames(luma=20.0, contrast=4.0)  # very dark but not black
    assert "black_frames" not in names(frame_triggers(dim, TIMES))


def test_black_frames_is_a_covered_lens_not_night():
    """A black frame (a covered lens: sensor noise only) fires black_frames. Real night footage
    has a mean luma of 5-40 but always some lit things in view (headlights, lamps, markings):
    low_light, never black_frames."""
    rng = np.random.default_rng(1)
    covered = rng.integers(0, 12, (10, 36, 64, 3)).astype(np.uint8)
    got = names(frame_triggers(covered, TIMES))
    assert got["black_frames"] == [[0.0, 4.5, pytest.approx(5.5, abs=0.5)]]
    night = rng.integers(0, 12, (10, 36, 64, 3)).astype(np.uint8)
    night[:, 20:23, 10:12] = 240  # a pair of headlights
    night[:, 22:24, 40:41] = 200  # a tail light
    night[:, 28:36, 24:40] = 45  # the road lit by the own headlights
    night[:, 2:3, 55:57] = 230  # a street lamp
    assert night.astype(np.float32).mean() < 15
    got = names(frame_triggers(night, TIMES))
    assert "low_light" in got and "black_frames" not in got


def test_dusk_is_a_dim_ground_under_a_lit_blue_sky():
    dusk = frames(luma=40.0, contrast=10.0)
    dusk[:, :12] = tinted(frames(luma=130.0, contrast=10.0), 0.3)[:, :12]  # a blue, lit sky band
    got = names(frame_triggers(dusk, TIMES))
    assert "dusk" in got and "low_light" not in got
    backlit = dusk.copy()
    backlit[:, :12] = 252  # a daylit sky blown out over a dark, backlit street: not dusk
    assert "dusk" not in names(frame_triggers(backlit, TIMES))
    night = dusk.copy()
    night[:, :12] = frames(luma=15.0, contrast=4.0)[:, :12]  # the sky gone dark: night
    got = names(frame_triggers(night, TIMES))
    assert "low_light" in got and "dusk" not in got


def test_frozen_camera():
    f = frames()
    f[2:8] = f[2]  # the same picture for 3 s
    got = names(frame_triggers(f, TIMES))
    assert got["frozen_camera"][0][:2] == [1.5, 3.5]
    g = frames()
    g[2:4] = g[2]  # one repeated keyframe (0.5 s) is not a frozen camera
    assert "frozen_camera" not in names(frame_triggers(g, TIMES))


def test_frozen_camera_needs_the_whole_picture_still():
    """Night driving moves only its lit markings and lamps, and a video shown in a still
    interface only its window: their mean change is tiny (0.1-0.5 of 255 on the dev set's night
    drive), but the blocks that move move far. Neither is a frozen camera."""
    night = np.full((10, 36, 64, 3), 4, np.uint8)  # a dark road ...
    for i in range(10):
        night[i, 20 + i % 3: 23 + i % 3, 24:40] = 20  # ... and a dim lit marking that moves down
    assert np.abs(np.diff(night.astype(np.float32), axis=0)).mean() < 0.5
    assert "frozen_camera" not in names(frame_triggers(night, TIMES))
    gui = np.repeat(frames(k=1, seed=1), 10, axis=0)  # a still interface ...
    gui[:, 4:12, 40:56] = frames(seed=2)[:, 4:12, 40:56]  # ... playing a video in a small window
    assert "frozen_camera" not in names(frame_triggers(gui, TIMES))
    gui[2:8, 4:12, 40:56] = gui[2, 4:12, 40:56]  # the video paused for 3 s
    assert names(frame_triggers(gui, TIMES))["frozen_camera"][0][:2] == [1.5, 3.5]


def test_frozen_camera_is_not_a_car_standing_still():
    """A car waiting at a red light sees a still picture: with telemetry showing it stopped over
    the whole span, that is not a frozen camera; moving, or without telemetry, it is."""
    f = frames()
    f[2:8] = f[2]
    n = 50  # 5 s at 10 Hz covers the keyframes at 0..4.5 s
    stopped = tel(np.zeros(n, np.float32))
    moving = tel(np.full(n, 12.0, np.float32))
    assert "frozen_camera" not in names(frame_triggers(f, TIMES, telemetry=stopped))
    assert "frozen_camera" in names(frame_triggers(f, TIMES, telemetry=moving))
    gappy = tel(np.r_[np.zeros(20), np.full(30, np.nan)].astype(np.float32))  # speed unknown later
    assert "frozen_camera" in names(frame_triggers(f, TIMES, telemetry=gappy))
    short = tel(np.zeros(20, np.float32))  # telemetry ends at 1.9 s: it cannot vouch for 3.5 s
    assert "frozen_camera" in names(frame_triggers(f, TIMES, telemetry=short))


# ----------------------------------------------------------------------------- thresholds
def test_thresholds_are_configurable():
    a = np.zeros(100, np.float32)
    a[30:36] = -3.0
    assert "hard_brake" not in names(telemetry_triggers(tel(cruise(), a)))
    th = parse_thresholds(["hard_brake_accel=-2.5"])
    assert th == {"hard_brake_accel": -2.5}
    assert "hard_brake" in names(telemetry_triggers(tel(cruise(), a), th))
    assert "low_light" in names(frame_triggers(frames(luma=75.0, contrast=20.0), TIMES, {"low_light_luma": 90.0}))
    with pytest.raises(InputError, match="NAME one of"):
        parse_thresholds(["hard_brak=1"])
    with pytest.raises(InputError, match="not a number"):
        parse_thresholds(["high_jerk=fast"])
    assert set(DEFAULT_THRESHOLDS) >= {"low_visibility_fraction", "frozen_camera_min_s"}


def test_cli_ingest_refuses_unknown_threshold(home, tmp_path):
    from typer.testing import CliRunner

    from engine.surfaces.cli import app

    r = CliRunner().invoke(app, ["ingest", str(tmp_path), "--home", str(home.path), "--region", "us-west",
                                 "--trigger-threshold", "hard_brake=-5"])
    assert r.exit_code == 2 and "hard_brake_accel" in r.output


def test_keyframe_conditions_decide_the_frame_triggers():
    """Clips mixing night, fog, black, glare and daylight keyframes: a whole-clip condition fires
    exactly when the share of keyframes that show it reaches its fraction, and black frames and
    glare mark exactly the keyframes that show them."""
    rng = np.random.default_rng(5)
    night = frames(luma=35.0, contrast=20.0)
    fog = frames(luma=200.0, contrast=12.0)
    black = frames(luma=3.0, contrast=1.0)
    glare = frames(luma=120.0, contrast=20.0)
    glare[:, :12] = 255
    day = frames(luma=128.0, contrast=40.0)
    kinds = np.stack([night, fog, black, glare, day])
    fired_any: set[str] = set()
    for _ in range(40):
        pick = rng.choice(len(kinds), len(TIMES), p=rng.dirichlet(np.full(len(kinds), 0.5)))
        clip = kinds[pick, np.arange(len(TIMES))]
        shown = keyframe_conditions(picture_measures(clip), TIMES, DEFAULT_THRESHOLDS)
        got = names(frame_triggers(clip, TIMES))
        fired_any |= set(got)
        for name, fraction in CLIP_CONDITIONS.items():
            assert (name in got) == (shown[name].mean() >= DEFAULT_THRESHOLDS[fraction]), name
        for name in ("black_frames", "glare"):
            covered = np.zeros(len(TIMES), bool)
            for start, end, _ in got.get(name, []):
                covered |= (TIMES >= start) & (TIMES <= end)
            assert np.array_equal(covered, shown[name]), name
        assert not (shown["low_light"] & shown["black_frames"]).any()
    assert {"low_light", "low_visibility", "black_frames", "glare"} <= fired_any


# ----------------------------------------------------------------------------- trigger views
def street_views(k=10, seed=0) -> np.ndarray:
    """Trigger views (192x108) of a sharp street: a sky, sharp-edged facades, poles and signs,
    a road with a lane line and a little sensor noise."""
    rng = np.random.default_rng(seed)
    h, w = TRIGGER_VIEW
    out = np.empty((k, h, w, 3), np.float32)
    for i in range(k):
        f = np.zeros((h, w, 3), np.float32)
        f[: h // 3] = (150, 170, 200)
        f[h // 3: h // 2] = (110, 115, 100)
        for _ in range(25):
            y0, x0 = rng.integers(h // 6, h // 2), rng.integers(0, w - 4)
            f[y0:y0 + rng.integers(4, 30), x0:x0 + rng.integers(2, 20)] = rng.uniform(30, 230, 3)
        f[h // 2:] = (90, 90, 92)
        f[h // 2:, w // 2 - 1: w // 2 + 1] = 230
        out[i] = f + rng.normal(0, 3, (h, w, 1))
    return np.clip(out, 0, 255).astype(np.uint8)


def gaussian_blur(views: np.ndarray, sigma: float) -> np.ndarray:
    """Views blurred by a Gaussian of ``sigma`` pixels (separable, edges repeated)."""
    r = int(np.ceil(3 * sigma))
    g = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    f = views.astype(np.float32)
    pad = np.pad(f, ((0, 0), (r, r), (0, 0), (0, 0)), mode="edge")
    f = sum(g[j] * pad[:, j:j + f.shape[1]] for j in range(len(g)))
    pad = np.pad(f, ((0, 0), (0, 0), (r, r), (0, 0)), mode="edge")
    f = sum(g[j] * pad[:, :, j:j + f.shape[2]] for j in range(len(g)))
    return np.clip(np.round(f), 0, 255).astype(np.uint8)


def test_sharpness_falls_with_blur_whatever_the_scene():
    """The threshold's origin: a sharp street measures ~0.9; blurred by a Gaussian of 1.5 view
    pixels it falls under low_visibility_sharpness, at 1.1 pixels (the quality fleet's
    strongest blurred copies) it stays over it; dimming the picture changes nothing."""
    limit = DEFAULT_THRESHOLDS["low_visibility_sharpness"]
    for seed in range(3):
        sharp = street_views(seed=seed)
        assert np.median(picture_measures(sharp).sharpness) > 0.6
        assert (picture_measures(gaussian_blur(sharp, 1.5)).sharpness <= limit).all()
        assert (picture_measures(gaussian_blur(sharp, 1.1)).sharpness > limit).all()
        dim = (sharp.astype(np.float32) * 0.5).astype(np.uint8)
        assert np.allclose(picture_measures(dim).sharpness, picture_measures(sharp).sharpness, rtol=0.1)


def test_a_misted_lens_is_low_visibility():
    """A picture without fine detail (water or mist on the lens) is low visibility; the same
    street sharp, or softened less than the threshold's blur, is not. At night it stays night."""
    assert "low_visibility" not in names(frame_triggers(street_views(), TIMES))
    assert "low_visibility" not in names(frame_triggers(gaussian_blur(street_views(), 1.0), TIMES))
    misted = gaussian_blur(street_views(), 2.0)
    got = names(frame_triggers(misted, TIMES))
    assert "low_visibility" in got and "snow" not in got
    night = (misted.astype(np.float32) * 0.1).astype(np.uint8)
    got = names(frame_triggers(night, TIMES))
    assert "low_light" in got and "low_visibility" not in got


def coarse_of(views: np.ndarray) -> np.ndarray:
    k, h, w, _ = views.shape
    return np.round(views.reshape(k, h // 3, 3, w // 3, 3, 3).astype(np.float32).mean(axis=(2, 4))).astype(np.uint8)


def test_coarse_conditions_read_the_block_means_of_the_trigger_view():
    """Every condition but the sharpness is judged on the 64x36 block means of the trigger view:
    the view and its rounded block means fire the same triggers (the sharpness needs the view)."""
    big = np.repeat(np.repeat(frames(), 3, axis=1), 3, axis=2)  # 36x64 scenes shown at 192x108
    for clip in (street_views(), big, np.repeat(np.repeat(tunnel_frames(), 3, axis=1), 3, axis=2)):
        got = sorted(set(names(frame_triggers(clip, TIMES))) - {"low_visibility"})
        assert got == sorted(set(names(frame_triggers(coarse_of(clip), TIMES))) - {"low_visibility"})
    assert np.isnan(picture_measures(frames()).sharpness).all()
    assert "low_visibility" not in names(frame_triggers(frames(luma=120.0, contrast=1.0), TIMES))


def test_trigger_view_size_and_bad_views():
    kf = np.random.default_rng(0).integers(0, 255, (3, 360, 640, 3)).astype(np.uint8)
    assert trigger_view(kf).shape == (3, *TRIGGER_VIEW, 3)
    with pytest.raises(TypeError, match="trigger_view"):
        picture_measures(np.zeros((2, 50, 80, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        picture_measures(np.zeros((2, *TRIGGER_VIEW, 3), np.float32))
