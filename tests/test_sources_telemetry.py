"""Telemetry sidecars: units, repairs and alignment."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.sources import load_telemetry
from engine.sources.telemetry import align_telemetry


def write(path, text):
    path.write_text(text)
    return path


def test_csv_default_columns(tmp_path):
    tel = load_telemetry(write(tmp_path / "t.csv", "time,speed,accel,yaw_rate,steering\n"
                               "0,1,0.1,0.01,0.0\n0.5,2,0.2,0.02,0.1\n1.0,3,0.3,0.03,0.2\n"))
    np.testing.assert_array_equal(tel.time, [0.0, 0.5, 1.0])
    assert tel.time.dtype == np.float64 and tel.values.dtype == np.float32
    assert tel.values.shape == (3, 4)
    np.testing.assert_allclose(tel.channel("speed"), [1, 2, 3])
    assert tel.issues == []


def test_csv_ms_kmh_nan_gaps_unsorted_duplicates(tmp_path):
    text = (
        "timestamp_ms,speed_kph,yaw\n"
        "2000,36,0\n"
        "0,72,0\n"
        "500,,0\n"        # empty cell
        "500,10,0\n"      # duplicate time
        "1000,abc,0\n"    # non-numeric
        "1500,inf,0\n"
        ",5,0\n"          # no time
        "4000,18,0\n"     # 2 s gap
    )
    tel = load_telemetry(write(tmp_path / "t.csv", text),
                         mapping={"time": "timestamp_ms", "speed": "speed_kph"}, time_unit="ms",
                         speed_unit="km/h")
    np.testing.assert_array_equal(tel.time, [0.0, 0.5, 1.0, 1.5, 2.0, 4.0])
    speed = tel.channel("speed")
    assert speed[0] == pytest.approx(20.0) and speed[-1] == pytest.approx(5.0)
    assert np.isnan(speed[1]) and np.isnan(speed[2]) and np.isnan(speed[3])
    issues = " | ".join(tel.issues)
    for words in ("sorted", "duplicate", "gaps > 1 s", "non-numeric", "infinite", "without a time",
                  "no accel column", "missing values"):
        assert words in issues


def test_csv_unit_from_column_name(tmp_path):
    tel = load_telemetry(write(tmp_path / "t.csv", "time_ms,speed_mph\n0,10\n100,20\n"))
    np.testing.assert_allclose(tel.time, [0.0, 0.1])
    np.testing.assert_allclose(tel.channel("speed"), [4.4704, 8.9408], rtol=1e-6)


def test_absolute_timestamps_are_rebased(tmp_path):
    tel = load_telemetry(write(tmp_path / "t.csv", "time,speed\n1700000000,1\n1700000001,2\n"))
    np.testing.assert_array_equal(tel.time, [0.0, 1.0])
    assert any("re-based" in issue for issue in tel.issues)


def test_npy_and_npz(tmp_path):
    array = np.array([[0.0, 1, 2, 3, 4], [0.1, 5, 6, 7, 8]])
    np.save(tmp_path / "t.npy", array)
    tel = load_telemetry(tmp_path / "t.npy")
    np.testing.assert_allclose(tel.values, array[:, 1:])
    np.savez(tmp_path / "t.npz", t_ms=np.array([0.0, 100.0]), speed=np.array([1.0, 2.0]))
    tel = load_telemetry(tmp_path / "t.npz", mapping={"time": "t_ms"}, time_unit="ms")
    np.testing.assert_allclose(tel.time, [0.0, 0.1])
    assert np.isnan(tel.channel("steering")).all()


@pytest.mark.parametrize(
    "text,match",
    [
        ("time,speed\n0,1\n", "1 usable rows"),
        ("time,speed\n0,\n1,nan\n", "no finite value"),
        ("speed,accel\n1,2\n3,4\n", "no time column"),
        ("", "empty"),
    ],
)
def test_unusable_csv_raises(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        load_telemetry(write(tmp_path / "t.csv", text))


def test_bad_mapping_and_units(tmp_path):
    path = write(tmp_path / "t.csv", "time,speed\n0,1\n1,2\n")
    with pytest.raises(InputError, match="not in"):
        load_telemetry(path, mapping={"speed": "velocity"})
    with pytest.raises(InputError, match="unknown keys"):
        load_telemetry(path, mapping={"velocity": "speed"})
    with pytest.raises(InputError, match="time unit"):
        load_telemetry(path, time_unit="minutes")
    with pytest.raises(InputError, match="suffix"):
        load_telemetry(write(tmp_path / "t.txt", "x"))


def test_align_slices_half_open_and_rebases(tmp_path):
    tel = load_telemetry(write(tmp_path / "t.csv", "time,speed\n" +
                               "".join(f"{i / 10},{i}\n" for i in range(50))))
    part = align_telemetry(tel, 1.0, 2.0)
    np.testing.assert_allclose(part.time, np.arange(10) / 10, atol=1e-9)
    np.testing.assert_allclose(part.channel("speed"), np.arange(10, 20))
    assert align_telemetry(tel, 10.0, 12.0).time.size == 0


def _sim_log(path, rows=20, hz=10.0, brake_at=10):
    """A driving-simulator log: no header; center,left,right image paths (Windows), steering,
    throttle, brake, speed in mph; times only in the image names."""
    lines = []
    speed = 40.0
    for i in range(rows):
        ms = int(round(i * 1000 / hz))
        stamp = f"2016_12_01_13_30_{48 + ms // 1000:02d}_{ms % 1000:03d}"
        if i >= brake_at:
            speed = max(0.0, speed - 2.5)  # mph per 0.1 s: ~ -11 m/s^2
        cams = [f"C:\\Users\\me\\sim\\IMG\\{c}_{stamp}.jpg" for c in ("center", "left", "right")]
        lines.append(",".join(cams + ["0.05", "0" if i >= brake_at else "0.8", "1" if i >= brake_at else "0",
                                      f"{speed:.3f}"]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_headerless_simulator_log_with_columns_mph_and_derived_accel(tmp_path):
    path = _sim_log(tmp_path / "driving_log.csv")
    tel = load_telemetry(path, mapping={"columns": "center,left,right,steering,throttle,brake,speed"},
                         speed_unit="mph")
    np.testing.assert_allclose(tel.time, np.arange(20) / 10.0, atol=1e-6)
    assert tel.channel("speed")[0] == pytest.approx(40 * 0.44704, rel=1e-5)
    np.testing.assert_allclose(tel.channel("steering"), 0.05, rtol=1e-6)
    accel = tel.channel("accel")
    assert np.nanmin(accel) < -8.0 and abs(accel[2]) < 0.5  # derived from speed: the brake shows
    issues = " | ".join(tel.issues)
    assert "times from the file names in column 'center'" in issues
    assert "columns not used: left, right, throttle, brake" in issues  # said, not dropped silently
    assert "derived from speed" in issues and "non-numeric" not in issues
    # a first row equal to the named columns is a header
    text = path.read_text()
    with_header = write(tmp_path / "h.csv", "center,left,right,steering,throttle,brake,speed\n" + text)
    again = load_telemetry(with_header, mapping={"columns": "center,left,right,steering,throttle,brake,speed"},
                           speed_unit="mph")
    np.testing.assert_array_equal(again.values, tel.values)


def test_headerless_log_without_times_and_bad_columns_say_the_fix(tmp_path):
    path = write(tmp_path / "t.csv", "1,2\n3,4\n")
    with pytest.raises(InputError, match="no time column"):
        load_telemetry(path, mapping={"columns": "speed,steering"})
    with pytest.raises(InputError, match="repeats a name"):
        load_telemetry(path, mapping={"columns": "speed,speed"})
    tel = load_telemetry(path, mapping={"columns": "time,speed"})
    np.testing.assert_allclose(tel.channel("speed"), [2, 4])


def test_speed_only_telemetry_fires_hard_brake(tmp_path):
    from engine.ingest.triggers import telemetry_triggers

    path = _sim_log(tmp_path / "driving_log.csv", rows=40, brake_at=15)
    tel = load_telemetry(path, mapping={"columns": "center,left,right,steering,throttle,brake,speed"},
                         speed_unit="mph")
    assert "hard_brake" in {name for name, *_ in telemetry_triggers(tel)}
