"""The CUDA kernels (kernels/cuda) against the float64 reference, on a real device.

Every test carries the `gpu` marker: conftest.py skips them where kernels.gpu_available() is False.
CuPy and the CUDA modules are imported inside the tests, so collection works without CuPy.
"""
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import kernels
from kernels.shapes import conv_geometry

from .conftest import TOL, assert_nan_inf_match, conv_operands, nan_inf_case, rel_error
from .test_conv_property import SPECIALISED, _accepts, conv_case

pytestmark = pytest.mark.gpu

DTYPES = (np.float32, np.float64)


@pytest.fixture(scope="module")
def cp():
    import cupy
    return cupy


def _ops():
    from kernels.cuda import ops
    return ops


def _poison(cp, monkeypatch):
    """Make every cupy.empty of the ops start as NaN, so an output element the kernels leave unwritten
    shows up as NaN instead of passing on zeros left in the memory pool."""
    ops = _ops()
    real_empty = cp.empty

    def empty(shape, dtype=float, order="C"):
        a = real_empty(shape, dtype=dtype, order=order)
        a.fill(np.nan)
        return a

    monkeypatch.setattr(ops.cupy, "empty", empty)


def check_gpu_algorithms(cp, x, w, b, activation=None, **conv):
    """Every algorithm that accepts the geometry (and auto, and the simple kernel) on the device against
    kernels.reference; returns the algorithms run."""
    ref = kernels.reference.conv2d(x, w, b, activation=activation, **conv)
    g = conv_geometry(x.shape, w.shape, conv.get("stride", 1), conv.get("padding", 0),
                      conv.get("dilation", 1), conv.get("groups", 1))
    xd, wd = cp.asarray(x), cp.asarray(w)
    bd = None if b is None else cp.asarray(b)
    ran = []
    for algorithm in kernels.ALGORITHMS + ("auto",):
        if algorithm != "auto" and not _accepts(algorithm, g):
            continue
        y = kernels.conv2d(xd, wd, bd, algorithm=algorithm, activation=activation, **conv)
        assert isinstance(y, cp.ndarray) and y.dtype == x.dtype and y.shape == ref.shape, algorithm
        err = rel_error(y, ref)
        assert err < TOL[x.dtype.type], f"{algorithm}: rel error {err:.3g} on {g}"
        ran.append(algorithm)
    act = kernels._conv.ACTIVATIONS[activation]
    err = rel_error(_ops().conv2d_simple(xd, wd, bd, g, act), ref)
    assert err < TOL[x.dtype.type], f"conv2d_naive: rel error {err:.3g} on {g}"
    return ran


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(case=conv_case())
def test_random_configurations_match_reference(cp, case):
    x, w, b = conv_operands(case)
    check_gpu_algorithms(cp, x, w, b, activation=case["activation"], **case["conv"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SPECIALISED, ids=lambda c: "x".join(map(str, c)))
def test_specialised_paths(cp, case, dtype, monkeypatch):
    _poison(cp, monkeypatch)
    N, C, H, K, R, stride, pad, groups = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, C, H, H + 1)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, R)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    for activation in (None, "relu", "relu6"):
        check_gpu_algorithms(cp, x, w, b, activation=activation, stride=stride, padding=pad, groups=groups)


# Shapes that make the GPU tilings take their other branches: several tiles per plane, several planes
# per block, channel blocks that end part-way, many channel chunks, odd sizes.
GPU_SHAPES = [
    # (N, C, H, W, K, R, S, stride, pad, dilation, groups)
    (2, 16, 70, 67, 16, 3, 3, 1, 1, 1, 16),       # depthwise 3x3 s1, 3x3 tiles per plane
    (2, 24, 71, 66, 24, 3, 3, 2, 1, 1, 24),       # depthwise 3x3 s2 (even/odd staged columns)
    (1, 40, 45, 45, 40, 5, 5, 1, 2, 1, 40),       # depthwise 5x5 s1
    (2, 40, 45, 46, 80, 5, 5, 2, 2, 1, 40),       # depthwise 5x5 s2, multiplier 2
    (3, 96, 7, 7, 96, 3, 3, 1, 1, 1, 96),         # depthwise 7x7 planes: 16 planes a block
    (1, 50, 14, 14, 150, 3, 3, 1, 1, 1, 50),      # depthwise 14x14, multiplier 3
    (2, 8, 30, 30, 8, 3, 5, (1, 2), (2, 1), (2, 1), 8),   # depthwise general path
    (1, 70, 33, 35, 100, 3, 3, 1, 1, 1, 1),       # dense 3x3: K block ends part-way, 3 C chunks
    (2, 37, 9, 11, 65, 3, 3, 1, 1, 1, 1),         # small image, 8x2 register blocking
    (1, 3, 67, 67, 40, 11, 11, 4, 2, 1, 1),       # AlexNet-like stride 4
    (2, 12, 20, 20, 24, 3, 3, 1, 2, 2, 3),        # dilated, grouped
    (1, 64, 28, 28, 48, 1, 1, 1, 0, 1, 1),        # pointwise
    (3, 64, 28, 28, 48, 1, 1, 2, 0, 1, 1),        # strided pointwise: im2col gather
    (2, 32, 17, 19, 64, 1, 1, 1, 0, 1, 4),        # grouped pointwise
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GPU_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gpu_tilings(cp, shape, dtype, monkeypatch):
    _poison(cp, monkeypatch)
    N, C, H, W, K, R, S, stride, pad, dilation, groups = shape
    rng = np.random.default_rng(H * W + K)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    check_gpu_algorithms(cp, x, w, b, activation="relu", stride=stride, padding=pad, dilation=dilation,
                         groups=groups)


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_shared_memory_and_workspace_budgets(cp, dtype, monkeypatch):
    """With tiny budgets the direct kernel stages kernel rows and columns in chunks (and falls back to
    the naive kernel), depthwise falls back to direct and im2col multiplies one image a chunk."""
    _poison(cp, monkeypatch)
    rng = np.random.default_rng(11)
    ops = _ops()
    cases = [((2, 6, 23, 21), (10, 6, 7, 5), dict(stride=2, padding=3, dilation=(1, 2))),
             ((2, 8, 23, 21), (8, 1, 7, 5), dict(stride=1, padding=2, dilation=2, groups=8)),
             ((3, 5, 19, 17), (9, 5, 3, 3), dict(stride=1, padding=1))]
    for smem in (12 * 1024, 3 * 1024, 256):
        monkeypatch.setattr(ops, "SMEM_BYTES", smem)
        monkeypatch.setattr(ops, "WORKSPACE_BYTES", 4096)
        for xs, ws, conv in cases:
            x = rng.standard_normal(xs).astype(dtype)
            w = rng.standard_normal(ws).astype(dtype)
            b = rng.standard_normal(ws[0]).astype(dtype)
            check_gpu_algorithms(cp, x, w, b, activation="relu6", **conv)
    # several images a chunk, the last chunk short
    monkeypatch.setattr(ops, "SMEM_BYTES", 48 * 1024)
    x = rng.standard_normal((7, 5, 12, 12)).astype(dtype)
    w = rng.standard_normal((6, 5, 3, 3)).astype(dtype)
    per_image = (5 * 9 + 6) * 12 * 12 * x.itemsize
    monkeypatch.setattr(ops, "WORKSPACE_BYTES", 3 * per_image)
    check_gpu_algorithms(cp, x, w, rng.standard_normal(6).astype(dtype), padding=1)


@pytest.mark.parametrize("algorithm", kernels.ALGORITHMS)
def test_nan_and_inf_propagate(cp, algorithm):
    x, w, conv = nan_inf_case(algorithm)
    for activation in (None, "relu", "relu6"):
        y = kernels.conv2d(cp.asarray(x), cp.asarray(w), algorithm=algorithm, activation=activation, **conv)
        assert_nan_inf_match(y, kernels.reference.conv2d(x, w, activation=activation, **conv))


def test_cpu_and_gpu_arrays_mixed_raise_type_error(cp):
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    b = np.ones(3, np.float32)
    with pytest.raises(TypeError, match="same device"):
        kernels.conv2d(x, cp.asarray(w))
    with pytest.raises(TypeError, match="same device"):
        kernels.conv2d(cp.asarray(x), w)
    with pytest.raises(TypeError, match="same device"):
        kernels.conv2d(cp.asarray(x), cp.asarray(w), b)
    with pytest.raises(TypeError, match="same device"):
        kernels.conv2d(x, w, cp.asarray(b))


def test_compiled_once(cp):
    from kernels.cuda import loader
    rng = np.random.default_rng(5)
    x = cp.asarray(rng.standard_normal((1, 4, 9, 9)).astype(np.float32))
    w = cp.asarray(rng.standard_normal((6, 4, 3, 3)).astype(np.float32))
    first = kernels.conv2d(x, w, padding=1, algorithm="direct", activation="relu")
    modules = loader.compiled_modules()
    assert any(key[0] == "conv_direct" for key in modules)
    kern = loader.kernel("conv_direct", "conv2d_tiled<float, 4, 8>")
    second = kernels.conv2d(x, w, padding=1, algorithm="direct", activation="relu")
    assert loader.compiled_modules() == modules
    assert loader.kernel("conv_direct", "conv2d_tiled<float, 4, 8>") is kern
    assert cp.array_equal(first, second)


def test_loader_is_thread_safe(cp):
    from kernels.cuda import loader
    got, errors = [], []

    def fetch():
        try:
            got.append(loader.kernel("lrn", "lrn<double>"))
        except Exception as e:           # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 8 and all(k is got[0] for k in got)
    assert sum(key[0] == "lrn" for key in loader.compiled_modules()) == 1


@pytest.mark.parametrize("algorithm", kernels.ALGORITHMS)
def test_empty_batch(cp, algorithm):
    C, K, R, groups = (4, 8, 3, 4) if algorithm == "depthwise" else (4, 6, 1 if algorithm == "pointwise" else 3, 1)
    x = cp.zeros((0, C, 8, 8), cp.float32)
    w = cp.ones((K, C // groups, R, R), cp.float32)
    y = kernels.conv2d(x, w, groups=groups, algorithm=algorithm)
    assert isinstance(y, cp.ndarray) and y.shape == (0, K, 8 - R + 1, 8 - R + 1)


@pytest.mark.parametrize("algorithm", kernels.ALGORITHMS)
def test_non_contiguous_inputs_are_not_modified(cp, algorithm):
    rng = np.random.default_rng(9)
    C, K, R, groups = (6, 12, 3, 6) if algorithm == "depthwise" else (6, 10, 1 if algorithm == "pointwise" else 3, 1)
    big = cp.asarray(rng.standard_normal((2, C, 30, 26)).astype(np.float32))
    x = big[:, :, ::2, 1::2]                                     # strided view
    w = cp.asarray(rng.standard_normal((K, C // groups, R, 2 * R)).astype(np.float32))[..., ::2]
    b = cp.asarray(rng.standard_normal(2 * K).astype(np.float32))[::2]
    assert not x.flags.c_contiguous and not w.flags.c_contiguous and not b.flags.c_contiguous
    before = big.copy(), w.copy(), b.copy()
    y = kernels.conv2d(x, w, b, groups=groups, algorithm=algorithm)
    ref = kernels.reference.conv2d(x, w, b, groups=groups)
    assert rel_error(y, ref) < 1e-5
    assert cp.array_equal(big, before[0]) and cp.array_equal(w, before[1]) and cp.array_equal(b, before[2])


def test_runs_on_the_current_stream(cp):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    ref = kernels.reference.conv2d(x, w, padding=1, groups=16)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        y = kernels.conv2d(cp.asarray(x), cp.asarray(w), padding=1, groups=16, algorithm="depthwise")
        z = _ops().global_avg_pool2d(y)
    stream.synchronize()
    assert rel_error(y, ref) < 1e-5
    assert rel_error(z, ref.mean(axis=(2, 3), keepdims=True)) < 1e-5


# --------------------------------------------------------------------------------------------------
# Pooling, LRN and the epilogue: the public ops (kernels/pooling.py) on cupy arrays, against
# kernels.reference.

POOLS = [
    # (mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad)
    ("max", 3, 2, 1, 1, False, True),               # ResNet stem
    ("max", 3, 2, 0, 1, True, True),                # GoogLeNet / AlexNet ceil_mode
    ("max", 2, 2, 0, 1, False, True),               # VGG
    ("max", (3, 2), (1, 2), 1, 2, True, True),      # dilated, ceil_mode
    ("avg", 2, 2, 0, 1, False, True),               # LeNet
    ("avg", 3, 1, 1, 1, False, True),
    ("avg", 3, 1, 1, 1, False, False),
    ("avg", 3, 2, 1, 1, True, True),                # windows clipped at the padded edge
    ("avg", 3, 2, 1, 1, True, False),
    ("avg", (5, 3), (3, 2), (2, 1), 1, True, True),
]


def _pool(x, spec, module):
    mode, kernel, stride, padding, dilation, ceil_mode, cip = spec
    if mode == "max":
        return module.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
    return module.avg_pool2d(x, kernel, stride, padding, ceil_mode, cip)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", POOLS, ids=lambda s: "-".join(map(str, s)))
def test_pool2d(cp, spec, dtype):
    rng = np.random.default_rng(2)
    for shape in ((2, 3, 13, 14), (1, 5, 8, 9), (0, 3, 8, 8)):
        x = rng.standard_normal(shape).astype(dtype)
        y = _pool(cp.asarray(x), spec, kernels)
        ref = _pool(x, spec, kernels.reference)
        assert isinstance(y, cp.ndarray) and y.shape == ref.shape and y.dtype == x.dtype
        if x.size:
            assert rel_error(y, ref) < TOL[dtype]


def test_max_pool_propagates_nan(cp):
    x = np.random.default_rng(0).standard_normal((1, 2, 8, 8)).astype(np.float32)
    x[0, 1, 3, 3] = np.nan
    y = kernels.max_pool2d(cp.asarray(x), 3, 2, 1).get()
    assert np.array_equal(np.isnan(y), np.isnan(kernels.reference.max_pool2d(x, 3, 2, 1)))
    assert np.isnan(y).sum() == 4


def test_avg_pool_with_dilation(cp):
    """ops.pool2d also takes a dilation for average pooling (the public op does not): against the
    mean of the taps, every window inside the input."""
    x = np.random.default_rng(1).standard_normal((2, 3, 11, 12))
    y = _ops().pool2d(cp.asarray(x), "avg", 3, 2, 1, 2, 0, 0, 2, 3, 7, 5, False).get()
    taps = [x[:, :, r * 2:r * 2 + 7, s * 3:s * 3 + 9:2] for r in range(3) for s in range(2)]
    assert rel_error(y, sum(taps) / 6) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_avg_pool2d(cp, dtype):
    rng = np.random.default_rng(6)
    for shape in ((2, 5, 7, 7), (3, 17, 1, 1), (1, 3, 40, 33), (0, 4, 5, 5)):
        x = rng.standard_normal(shape).astype(dtype)
        y = kernels.global_avg_pool2d(cp.asarray(x))
        assert isinstance(y, cp.ndarray) and y.shape == shape[:2] + (1, 1) and y.dtype == x.dtype
        if x.size:
            assert rel_error(y, kernels.reference.global_avg_pool2d(x)) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 2, 5, 6])
def test_local_response_norm(cp, size, dtype):
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, 11, 9, 8)).astype(dtype)
    for alpha, beta, k in ((1e-4, 0.75, 2.0), (0.5, 0.9, 1.0)):
        y = kernels.local_response_norm(cp.asarray(x), size, alpha, beta, k)
        assert isinstance(y, cp.ndarray) and y.dtype == x.dtype
        assert rel_error(y, kernels.reference.local_response_norm(x, size, alpha, beta, k)) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_act_in_place(cp, dtype):
    rng = np.random.default_rng(8)
    y0 = rng.standard_normal((3, 7, 5, 6)).astype(dtype) * 8
    y0[0, 0, 0, 0] = np.nan
    b = rng.standard_normal(7).astype(dtype)
    for bias, act, name in ((b, 1, "relu"), (b, 2, "relu6"), (None, 2, "relu6"), (b, 0, None)):
        y = cp.asarray(y0)
        out = _ops().bias_act(y, None if bias is None else cp.asarray(bias), act)
        assert out is y
        ref = y0.astype(np.float64) + (0 if bias is None else bias.astype(np.float64).reshape(1, -1, 1, 1))
        ref = kernels.reference.apply_activation(ref, name)
        got = y.get()
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        finite = ~np.isnan(ref)
        assert rel_error(got[finite], ref[finite]) < TOL[dtype]
