"""Every kernel of ``kernels.registry`` against its NumPy reference, on every test case of
its entry, and at one and two Numba threads."""

from __future__ import annotations

import zlib

import numba
import numpy as np
import pytest

import kernels
from kernels.registry import NOT_KERNELS, REGISTRY, outputs

CASES = [pytest.param(spec, case, id=f"{spec.name}-{case}")
         for spec in REGISTRY for case in spec.cases]


def _assert_same(spec, got, want):
    got, want = outputs(spec, got), outputs(spec, want)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape, f"{spec.name} output {k}: shape {g.shape} != {w.shape}"
        if g.dtype.kind in "iub" or (spec.rtol == 0 and spec.atol == 0):
            np.testing.assert_array_equal(g, w, err_msg=f"{spec.name} output {k}")
        else:
            np.testing.assert_allclose(g, w, rtol=spec.rtol, atol=spec.atol,
                                       err_msg=f"{spec.name} output {k}")


def test_registry_lists_every_public_kernel():
    named = {spec.name for spec in REGISTRY}
    missing = set(kernels.__all__) - named - NOT_KERNELS
    assert not missing, f"public kernels without a registry entry: {sorted(missing)}"
    assert len(named) == len(REGISTRY), "two registry entries share a name"


@pytest.mark.parametrize("spec, case", CASES)
def test_kernel_matches_reference(spec, case):
    args = spec.cases[case](np.random.default_rng(zlib.crc32(f"{spec.name}-{case}".encode())))
    _assert_same(spec, spec.kernel(*args), spec.reference(*args))


@pytest.mark.parametrize("spec", REGISTRY, ids=lambda s: s.name)
def test_kernel_identical_at_one_and_two_threads(spec):
    case = next(iter(spec.cases.values()))
    args = case(np.random.default_rng(7))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = outputs(spec, spec.kernel(*args))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        double = outputs(spec, spec.kernel(*args))
    finally:
        numba.set_num_threads(before)
    for s, d in zip(single, double, strict=True):
        np.testing.assert_array_equal(s, d)


@pytest.mark.parametrize("spec", REGISTRY, ids=lambda s: s.name)
def test_benchmark_input_runs(spec):
    """The tiny benchmark input is valid for the kernel (the benchmarks never fail on input)."""
    args = spec.bench(np.random.default_rng(0), "tiny")
    spec.kernel(*args)
    assert spec.count(args) >= 1
