"""Pooling, global average pooling and local response normalisation against the float64 reference,
against torch.nn.functional where torch imports, and on bad input."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels

from .conftest import TOL, rel_error

DTYPES = (np.float32, np.float64)


@st.composite
def pool_case(draw):
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = draw(st.sampled_from([1, 1, 2, 3])), draw(st.sampled_from([1, 1, 2, 3]))
    mode = draw(st.sampled_from(["max", "avg"]))
    if mode == "avg":
        dh = dw = 1
    H = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 40))
    W = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 40))
    return dict(mode=mode, N=draw(st.sampled_from([1, 1, 2, 3])), C=draw(st.integers(1, 9)), H=H, W=W,
                kernel_size=(kh, kw), stride=draw(st.sampled_from([None, (sh, sw)])), padding=(ph, pw),
                dilation=(dh, dw), ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()),
                dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 2**31 - 1)))


def run_pool(module, case, x):
    if case["mode"] == "max":
        return module.max_pool2d(x, case["kernel_size"], case["stride"], case["padding"], case["dilation"],
                                 case["ceil_mode"])
    return module.avg_pool2d(x, case["kernel_size"], case["stride"], case["padding"], case["ceil_mode"],
                             case["count_include_pad"])


def operand(case):
    rng = np.random.default_rng(case["seed"])
    return rng.standard_normal((case["N"], case["C"], case["H"], case["W"])).astype(case["dtype"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_case())
def test_pool_matches_reference(case):
    x = operand(case)
    y = run_pool(kernels, case, x)
    ref = run_pool(kernels.reference, case, x)
    assert y.dtype == x.dtype and y.shape == ref.shape
    if case["mode"] == "max":
        assert np.array_equal(y, ref.astype(x.dtype))  # max is exact
    else:
        assert rel_error(y, ref) < TOL[x.dtype.type]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_case())
def test_pool_matches_torch(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = operand(case)
    t = torch.from_numpy(x)
    stride = case["stride"] if case["stride"] is not None else None
    if case["mode"] == "max":
        expect = F.max_pool2d(t, case["kernel_size"], stride, case["padding"], case["dilation"],
                              case["ceil_mode"]).numpy()
        assert np.array_equal(run_pool(kernels, case, x), expect)
    else:
        expect = F.avg_pool2d(t, case["kernel_size"], stride, case["padding"], case["ceil_mode"],
                              case["count_include_pad"]).numpy()
        y = run_pool(kernels, case, x)
        assert y.shape == expect.shape
        assert rel_error(y, expect.astype(np.float64)) < TOL[x.dtype.type] * 10


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_case())
def test_stride_one_matches_reference(case):
    # stride 1 in both axes takes the whole-plane path (its own edge handling): cover it on purpose
    case = dict(case, stride=(1, 1))
    x = operand(case)
    y = run_pool(kernels, case, x)
    ref = run_pool(kernels.reference, case, x)
    if case["mode"] == "max":
        assert np.array_equal(y, ref.astype(x.dtype))
    else:
        assert rel_error(y, ref) < TOL[x.dtype.type]


# stride 1, the fused stride-2 2- and 3-tap windows, and the general phase-split path
NAN_GEOMETRIES = [(3, 1, 1, 1), (3, 1, 0, 2), (2, 2, 0, 1), (3, 2, 1, 1), (3, 2, 0, 1), (5, 3, 2, 1), (2, 2, 1, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", NAN_GEOMETRIES, ids=lambda g: "k{}s{}p{}d{}".format(*g))
def test_max_pool_propagates_nan_wherever_it_lies(geometry, dtype):
    k, s, p, d = geometry
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    x = rng.standard_normal((2, 4, 15, 17)).astype(dtype)
    for _ in range(6):   # NaNs on edges, corners and inside, in some planes only
        x[rng.integers(2), rng.integers(3), rng.integers(15), rng.choice([0, 16, rng.integers(17)])] = np.nan
    y = kernels.max_pool2d(x, k, s, p, d, ceil_mode=True)
    ref = kernels.reference.max_pool2d(x, k, s, p, d, ceil_mode=True)
    assert np.isnan(y).any() and not np.isnan(y[:, 3]).any()
    assert np.array_equal(y, ref.astype(dtype), equal_nan=True)


# The network layers' pools (reduced in channels), so every fast path runs at least once.
NETWORK_POOLS = [
    # (mode, shape, kernel, stride, padding, ceil_mode)
    ("max", (1, 5, 55, 55), 3, 2, 0, False),      # AlexNet
    ("max", (2, 4, 112, 112), 3, 2, 1, False),    # ResNet stem
    ("max", (1, 4, 224, 224), 2, 2, 0, False),    # VGG
    ("max", (1, 6, 28, 28), 3, 1, 1, False),      # Inception branch pool
    ("max", (1, 6, 112, 112), 3, 2, 0, True),     # GoogLeNet (ceil_mode)
    ("avg", (2, 16, 7, 7), 7, 1, 0, False),       # ResNet / GoogLeNet head
    ("avg", (1, 6, 28, 28), 2, 2, 0, False),      # LeNet subsampling
    ("avg", (1, 3, 10, 10), 3, 3, 1, True),       # ceil overhang past the padding
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", NETWORK_POOLS, ids=lambda c: f"{c[0]}{c[2]}s{c[3]}p{c[4]}{'c' if c[5] else ''}")
def test_network_pools(case, dtype):
    mode, shape, k, s, p, ceil_mode = case
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    if mode == "max":
        y = kernels.max_pool2d(x, k, s, p, ceil_mode=ceil_mode)
        assert np.array_equal(y, kernels.reference.max_pool2d(x, k, s, p, ceil_mode=ceil_mode).astype(dtype))
    else:
        for cip in (True, False):
            y = kernels.avg_pool2d(x, k, s, p, ceil_mode, cip)
            assert rel_error(y, kernels.reference.avg_pool2d(x, k, s, p, ceil_mode, cip)) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 2048, 7, 7), (2, 5, 1, 1), (3, 7, 13, 17), (1, 3, 64, 64)])
def test_global_avg_pool(shape, dtype):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    y = kernels.global_avg_pool2d(x)
    assert y.shape == shape[:2] + (1, 1) and y.dtype == dtype
    assert rel_error(y, kernels.reference.global_avg_pool2d(x)) < TOL[dtype]
    torch = pytest.importorskip("torch")
    expect = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy()
    assert rel_error(y, expect.astype(np.float64)) < TOL[dtype] * 10


@st.composite
def lrn_case(draw):
    return dict(N=draw(st.sampled_from([1, 2])), C=draw(st.integers(1, 20)), H=draw(st.integers(1, 12)),
                W=draw(st.integers(1, 12)), size=draw(st.integers(1, 9)),
                alpha=draw(st.sampled_from([1e-4, 1e-2, 0.5])), beta=draw(st.sampled_from([0.75, 0.5, 1.0, 0.6])),
                k=draw(st.sampled_from([1.0, 2.0, 0.5])), dtype=draw(st.sampled_from(DTYPES)),
                seed=draw(st.integers(0, 2**31 - 1)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lrn_case())
def test_local_response_norm(case):
    x = operand(case)
    args = (case["size"], case["alpha"], case["beta"], case["k"])
    y = kernels.local_response_norm(x, *args)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert rel_error(y, kernels.reference.local_response_norm(x, *args)) < TOL[x.dtype.type]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 2.0), (3, 0.1, 0.6, 1.0), (4, 0.5, 1.0, 1.0)])
def test_local_response_norm_matches_torch(size, alpha, beta, k, dtype):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(size).standard_normal((2, 11, 9, 8)).astype(dtype) * 3
    expect = torch.nn.functional.local_response_norm(torch.from_numpy(x), size, alpha, beta, k).numpy()
    y = kernels.local_response_norm(x, size, alpha, beta, k)
    assert rel_error(y, expect.astype(np.float64)) < TOL[dtype] * 10


def test_max_pool_nan_and_inf():
    x = np.random.default_rng(2).standard_normal((1, 2, 8, 8)).astype(np.float32)
    x[0, 0, 3, 3] = np.nan
    x[0, 1, 6, 6] = np.inf
    x[0, 1, 0, 0] = -np.inf
    y = kernels.max_pool2d(x, 3, 2, 1)
    ref = kernels.reference.max_pool2d(x, 3, 2, 1)
    assert np.array_equal(np.isnan(y), np.isnan(ref)) and np.isnan(y).sum() == 4
    assert np.array_equal(y[~np.isnan(y)], ref[~np.isnan(ref)].astype(np.float32))
    torch = pytest.importorskip("torch")
    expect = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1).numpy()
    assert np.array_equal(y, expect, equal_nan=True)


def test_all_padding_window_reads_minus_infinity():
    # kernel 2, dilation 3, padding 1: the first window's taps are row -1 and row 2 (inside)
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    y = kernels.max_pool2d(x, 2, 1, 1, dilation=3)
    assert np.array_equal(y, kernels.reference.max_pool2d(x, 2, 1, 1, dilation=3))


@pytest.mark.parametrize("op", ["max", "avg", "global", "lrn"])
def test_thread_count_gives_bit_identical_output(op):
    x = np.random.default_rng(5).standard_normal((3, 13, 29, 31)).astype(np.float32)
    f = {"max": lambda: kernels.max_pool2d(x, 3, 2, 1, ceil_mode=True),
         "avg": lambda: kernels.avg_pool2d(x, 3, 2, 1, True, False),
         "global": lambda: kernels.global_avg_pool2d(x),
         "lrn": lambda: kernels.local_response_norm(x, 5, 0.1, 0.6, 2.0)}[op]
    old = kernels.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 5):
            kernels.set_num_threads(n)
            outs.append(f())
    finally:
        kernels.set_num_threads(old)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_non_contiguous_and_read_only_inputs_are_not_modified():
    base = np.random.default_rng(4).standard_normal((2, 6, 20, 22)).astype(np.float64)
    x = base[:, ::2, :, ::-1]
    x_ro = base.copy()
    x_ro.flags.writeable = False
    before = base.copy()
    for a in (x, x_ro):
        ref = np.ascontiguousarray(a)
        assert np.array_equal(kernels.max_pool2d(a, 3, 2), kernels.max_pool2d(ref, 3, 2))
        assert np.array_equal(kernels.avg_pool2d(a, 3, 2, 1), kernels.avg_pool2d(ref, 3, 2, 1))
        assert np.array_equal(kernels.global_avg_pool2d(a), kernels.global_avg_pool2d(ref))
        assert np.array_equal(kernels.local_response_norm(a, 3), kernels.local_response_norm(ref, 3))
    assert np.array_equal(base, before) and np.array_equal(x_ro, before)


def test_empty_batch_gives_empty_output():
    x = np.zeros((0, 3, 8, 8), np.float32)
    assert kernels.max_pool2d(x, 2).shape == (0, 3, 4, 4)
    assert kernels.avg_pool2d(x, 3, 1, 1).shape == (0, 3, 8, 8)
    assert kernels.global_avg_pool2d(x).shape == (0, 3, 1, 1)
    assert kernels.local_response_norm(x, 5).shape == (0, 3, 8, 8)


X = np.ones((1, 2, 8, 8), np.float32)


@pytest.mark.parametrize("call,exc,word", [
    (lambda: kernels.max_pool2d(X[0], 2), ValueError, "x"),
    (lambda: kernels.max_pool2d(X.astype(np.int32), 2), TypeError, "x"),
    (lambda: kernels.max_pool2d(X.astype(np.complex64), 2), TypeError, "x"),
    (lambda: kernels.max_pool2d([[1.0]], 2), TypeError, "x"),
    (lambda: kernels.max_pool2d(X, 0), ValueError, "kernel_size"),
    (lambda: kernels.max_pool2d(X, (2, 2, 2)), ValueError, "kernel_size"),
    (lambda: kernels.max_pool2d(X, 2.0), TypeError, "kernel_size"),
    (lambda: kernels.max_pool2d(X, 2, 0), ValueError, "stride"),
    (lambda: kernels.max_pool2d(X, 2, -1), ValueError, "stride"),
    (lambda: kernels.max_pool2d(X, 2, 2, -1), ValueError, "padding"),
    (lambda: kernels.max_pool2d(X, 3, 1, 2), ValueError, "padding"),
    (lambda: kernels.max_pool2d(X, 2, 1, 0, 0), ValueError, "dilation"),
    (lambda: kernels.max_pool2d(X, 9), ValueError, "kernel_size"),
    (lambda: kernels.max_pool2d(X, 3, dilation=4), ValueError, "kernel_size"),
    (lambda: kernels.max_pool2d(X, 2, ceil_mode="yes"), TypeError, "ceil_mode"),
    (lambda: kernels.avg_pool2d(X, 2, count_include_pad=None), TypeError, "count_include_pad"),
    (lambda: kernels.avg_pool2d(X, 5, 1, 3), ValueError, "padding"),
    (lambda: kernels.max_pool2d(np.ones((1, 0, 4, 4), np.float32), 2), ValueError, "x"),
    (lambda: kernels.global_avg_pool2d(X[0]), ValueError, "x"),
    (lambda: kernels.global_avg_pool2d(X.astype(np.float16)), TypeError, "x"),
    (lambda: kernels.local_response_norm(X, 0), ValueError, "size"),
    (lambda: kernels.local_response_norm(X, 2.5), TypeError, "size"),
    (lambda: kernels.local_response_norm(X, 3, alpha="a"), TypeError, "alpha"),
    (lambda: kernels.local_response_norm(X, 3, beta=float("nan")), ValueError, "beta"),
    (lambda: kernels.local_response_norm(X.astype(np.int64), 3), TypeError, "x"),
])
def test_bad_input_raises_naming_the_argument(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cupy_input_runs_the_cuda_kernels(dtype):
    import cupy
    x = np.random.default_rng(9).standard_normal((2, 6, 19, 23)).astype(dtype)
    xg = cupy.asarray(x)
    tol = TOL[dtype]
    for y, ref in (
            (kernels.max_pool2d(xg, 3, 2, 1, ceil_mode=True), kernels.reference.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
            (kernels.max_pool2d(xg[:, :, ::2], (2, 3), 1, (1, 1), 2), kernels.reference.max_pool2d(x[:, :, ::2], (2, 3), 1, (1, 1), 2)),
            (kernels.avg_pool2d(xg, 3, 2, 1, True, False), kernels.reference.avg_pool2d(x, 3, 2, 1, True, False)),
            (kernels.global_avg_pool2d(xg), kernels.reference.global_avg_pool2d(x)),
            (kernels.local_response_norm(xg, 5, 0.1, 0.75, 2.0), kernels.reference.local_response_norm(x, 5, 0.1, 0.75, 2.0))):
        assert isinstance(y, cupy.ndarray) and y.dtype == dtype
        assert rel_error(y, ref) < tol
