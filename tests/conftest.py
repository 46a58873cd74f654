import numpy as np
import pytest

import kernels


@pytest.fixture
def fma_plans(monkeypatch):
    """Plans built in this test keep every layer on the float32 FMA kernels, also where the CPU has
    AMX tiles (which would otherwise take the dense convolutions): for tests of the FMA paths' own
    choices (Winograd's rule, tiles, the weight-folded SE scale)."""
    monkeypatch.setenv("CONVFORGE_AMX", "0")


def pytest_collection_modifyitems(config, items):
    if kernels.gpu_available():
        return
    skip = pytest.mark.skip(reason="no usable CUDA device (CuPy missing or no GPU)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def rel_error(y, ref):
    """||y - ref|| / ||ref|| in float64 (the project's accuracy measure)."""
    y = kernels.reference.to_host64(y)
    ref = np.asarray(ref, dtype=np.float64)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    denom = np.linalg.norm(ref.ravel())
    return float(np.linalg.norm((y - ref).ravel()) / (denom if denom > 0 else 1.0))


TOL = {np.float32: 1e-5, np.float64: 1e-12}


def nan_inf_case(algorithm):
    """Operands `algorithm` accepts, x holding a NaN and an Inf. -> (x, w, conv keyword arguments)."""
    rng = np.random.default_rng(3)
    C, K, R, groups = (8, 8, 3, 8) if algorithm == "depthwise" else (8, 16, 1 if algorithm == "pointwise" else 3, 1)
    x = rng.standard_normal((1, C, 12, 12)).astype(np.float32)
    x[0, 0, 5, 5] = np.nan
    x[0, C - 1, 2, 2] = np.inf
    w = rng.standard_normal((K, C // groups, R, R)).astype(np.float32)
    return x, w, dict(padding=0 if algorithm == "pointwise" else 1, groups=groups)


def assert_nan_inf_match(y, ref):
    """NaN and Inf where IEEE arithmetic puts them in the reference, the finite rest within float32 tolerance."""
    y = kernels.reference.to_host64(y)
    assert np.array_equal(np.isnan(y), np.isnan(ref))
    assert np.array_equal(np.isinf(y), np.isinf(ref))
    finite = np.isfinite(ref)
    assert rel_error(y[finite], ref[finite]) < 1e-5


def conv_operands(case):
    """x, w and bias (or None) of a drawn conv case (keys N, C, H, W, K, R, S, groups, bias, dtype, seed)."""
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = rng.standard_normal((case["N"], case["C"], case["H"], case["W"])).astype(dt)
    w = rng.standard_normal((case["K"], case["C"] // case["groups"], case["R"], case["S"])).astype(dt)
    b = rng.standard_normal(case["K"]).astype(dt) if case["bias"] else None
    return x, w, b


# The machine's ceilings as the benchmark tests fake them (no probe run inside a test).
FAKE_CEILINGS = {"isa": "test", "threads": 1, "peak_gflops": {"float32": 500.0, "float64": 250.0},
                 "peak_gflops_1thread": {"float32": 250.0},
                 "bandwidth_gbps": {"l2_copy": 400.0, "l3_copy": 100.0, "dram_copy": 40.0},
                 "roofline_bandwidth_gbps": 40.0, "roofline_bandwidth_name": "dram_copy"}
