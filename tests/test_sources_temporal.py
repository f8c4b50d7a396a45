"""The YUV-plane keyframe accumulator (kernels.temporal) against its NumPy twin, and the
telemetry option parser used by ``clipdex ingest``."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from engine.errors import InputError
from engine.sources.sampling import working_factor
from engine.sources.telemetry import load_telemetry, parse_telemetry_options
from kernels import reference as ref


@pytest.mark.parametrize("factor,chroma,full_range,matrix", [
    ((4, 4), (2, 2), False, "bt601"),  # 4:2:0, limited range
    ((2, 2), (1, 1), True, "bt709"),  # 4:2:0 full range
    ((2, 4), (2, 2), False, "bt601"),  # 4:2:2
    ((3, 3), (3, 3), True, "bt601"),  # 4:4:4, odd factor (strided column sum)
    ((8, 8), (4, 4), False, "bt709"),  # 4K 4:2:0 (generic column sum; chroma unrolled by 4)
    ((1, 1), (1, 1), False, "bt601"),  # no downsampling
])
def test_yuv_area_accumulate_matches_reference(factor, chroma, full_range, matrix):
    rng = np.random.default_rng(5)
    out_h, out_w = 7, 11
    y = rng.integers(0, 256, (out_h * factor[0] + 1, out_w * factor[1] + 9), dtype=np.uint8)
    c_rows, c_cols = out_h * chroma[0] + 1, out_w * chroma[1] + 5
    u = rng.integers(0, 256, (c_rows, c_cols), dtype=np.uint8)
    v = rng.integers(0, 256, (c_rows, c_cols), dtype=np.uint8)
    got = rng.random((3, 3, out_h, out_w)).astype(np.float32)
    want = got.copy()
    slots, weights = np.array([2, 0]), np.array([0.25, 0.75], np.float32)
    kernels.yuv_area_accumulate(y, u, v, factor, chroma, got, slots, weights, full_range, matrix)
    ref.yuv_area_accumulate(y, u, v, factor, chroma, want, slots, weights, full_range, matrix)
    np.testing.assert_allclose(got, want, atol=2e-3)
    np.testing.assert_array_equal(got[1], want[1])  # untouched slot


@pytest.mark.parametrize("factor,chroma,rows", [
    ((4, 4), (2, 2), (2, 2)),  # 720p/1080p 4:2:0 as video ingest reads it: half the luma rows
    ((8, 8), (4, 4), (4, 2)),  # 4K 4:2:0
    ((4, 4), (4, 4), (1, 3)),  # uneven: offset (fy - rows) // 2 rounds down
])
def test_yuv_area_accumulate_central_rows_match_reference(factor, chroma, rows):
    rng = np.random.default_rng(11)
    out_h, out_w = 5, 9
    y = rng.integers(0, 256, (out_h * factor[0], out_w * factor[1] + 7), dtype=np.uint8)
    u = rng.integers(0, 256, (out_h * chroma[0], out_w * chroma[1] + 3), dtype=np.uint8)
    v = rng.integers(0, 256, u.shape, dtype=np.uint8)
    got = np.zeros((1, 3, out_h, out_w), np.float32)
    want = got.copy()
    args = (np.array([0]), np.ones(1, np.float32))
    kernels.yuv_area_accumulate(y, u, v, factor, chroma, got, *args, rows=rows)
    ref.yuv_area_accumulate(y, u, v, factor, chroma, want, *args, rows=rows)
    np.testing.assert_allclose(got, want, atol=2e-3)
    # only the central rows are read: changing the others changes nothing
    first = (factor[0] - rows[0]) // 2
    y2 = y.copy()
    y2[[r for r in range(y.shape[0]) if not first <= r % factor[0] < first + rows[0]]] = 0
    again = np.zeros_like(got)
    kernels.yuv_area_accumulate(y2, u, v, factor, chroma, again, *args, rows=rows)
    np.testing.assert_array_equal(again, got)
    with pytest.raises(ValueError, match="rows"):
        kernels.yuv_area_accumulate(y, u, v, factor, chroma, got, *args,
                                    rows=(factor[0] + 1, 1))


def test_yuv_area_accumulate_exact_grey_levels():
    y = np.full((8, 8), 235, np.uint8)
    u = v = np.full((4, 4), 128, np.uint8)
    acc = np.zeros((1, 3, 2, 2), np.float32)
    kernels.yuv_area_accumulate(y, u, v, (4, 4), (2, 2), acc, np.array([0]),
                                np.ones(1, np.float32))
    np.testing.assert_allclose(acc, 255.0, atol=1e-3)  # limited-range white -> 255


def test_yuv_area_accumulate_refuses_wrong_types():
    y = np.zeros((8, 8), np.uint8)
    acc = np.zeros((1, 3, 2, 2), np.float32)
    with pytest.raises(TypeError, match="float32"):
        kernels.yuv_area_accumulate(y, y[:4, :4].copy(), y[:4, :4].copy(), (4, 4), (2, 2),
                                    acc.astype(np.float64), np.array([0]), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="out of range"):
        kernels.yuv_area_accumulate(y, y[:4, :4].copy(), y[:4, :4].copy(), (4, 4), (2, 2),
                                    acc, np.array([0, 3]), np.ones(2, np.float32))
    assert not acc.any()  # checked before anything is added


@pytest.mark.parametrize("size,factor", [((160, 96), 1), ((480, 270), 1), ((1280, 720), 4),
                                         ((1920, 1080), 4), ((3840, 2160), 8), ((481, 10), 2)])
def test_working_factor(size, factor):
    assert working_factor(*size) == factor


def test_telemetry_options(tmp_path):
    mapping, units = parse_telemetry_options("time=ts_ms, speed=v", "speed=km/h")
    assert mapping == {"time": "ts_ms", "speed": "v"} and units == {"speed": "km/h"}
    with pytest.raises(InputError, match="velocity"):
        parse_telemetry_options("velocity=v", None)
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_telemetry_options("time", None)
    with pytest.raises(InputError, match="furlongs"):
        parse_telemetry_options(None, "speed=furlongs")
    csv = tmp_path / "t.csv"
    csv.write_text("timestamp_ms,v\n0,36\n500,72\n")
    tel = load_telemetry(csv, mapping={"time": "timestamp_ms", "speed": "v"}, speed_unit="km/h")
    np.testing.assert_allclose(tel.time, [0.0, 0.5])  # unit implied by the mapped name
    np.testing.assert_allclose(tel.channel("speed"), [10.0, 20.0])
