"""The direct kernel (kernels/cpu/direct.pyx) on its own edge cases, against the float64 reference.

Its paths (direct.plan_path): "wvec" vectorises over output rows with masked loads (tile tails,
left/right padding, weights repacked or read in place), "wflat" over the flattened output plane
(stride 1, Q == W: vectors cross row ends), "kvec" over output channels from a padded row buffer
(strided layers, narrow outputs), "simple" is the plain version the fast ones are checked against
and the kernel of portable builds.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels
from kernels.shapes import conv_geometry

from .conftest import TOL, rel_error

from kernels.cpu import direct  # noqa: E402  (the chosen ISA's variant)

DTYPES = (np.float32, np.float64)
ACTS = {0: None, 1: "relu", 2: "relu6"}
FAST = direct.plan_path((1, 8, 40, 40), (8, 8, 3, 3), (1, 8, 40, 40), 1, 1, 1, 1, 1) != "simple"


def run(fn, x, w, b, stride=1, padding=0, dilation=1, groups=1, act=0, nthreads=2):
    g = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    y = np.full(g.out_shape, np.nan, dtype=x.dtype)   # the kernel must write every element
    fn(x, w, b, y, g.sh, g.sw, g.pad_top, g.pad_left, g.dh, g.dw, g.groups, act, nthreads)
    return y


def path_of(x, w, stride=1, padding=0, dilation=1, groups=1):
    g = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    return direct.plan_path(x.shape, w.shape, g.out_shape, g.sh, g.sw, g.dh, g.dw, g.groups, x.itemsize)


def operands(rng, N, C, H, W, K, R, S, groups, dtype, bias=True):
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if bias else None
    return x, w, b


def check(x, w, b, act=0, **conv):
    """direct.conv2d and direct.conv2d_simple against the reference; returns the fast result."""
    ref = kernels.reference.conv2d(x, w, b, activation=ACTS[act], **conv)
    y = run(direct.conv2d, x, w, b, act=act, **conv)
    ys = run(direct.conv2d_simple, x, w, b, act=act, **conv)
    tol = TOL[x.dtype.type]
    assert y.dtype == x.dtype and y.shape == ref.shape
    err, errs = rel_error(y, ref), rel_error(ys, ref)
    assert err < tol, f"direct ({path_of(x, w, **conv)}): rel error {err:.3g}"
    assert errs < tol, f"direct simple: rel error {errs:.3g}"
    return y


@st.composite
def direct_case(draw):
    """Shapes around the kernel's block sizes: output widths near multiples of 8 and 16 (tile
    tails), channels not multiples of the 8/16/32 blocks, padding wider than the kernel,
    dilation with stride, grouped and depthwise-like groups."""
    R, S = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    sh, sw = draw(st.sampled_from([1, 1, 1, 2, 3])), draw(st.sampled_from([1, 1, 1, 2, 4]))
    dh, dw = draw(st.sampled_from([1, 1, 2, 3])), draw(st.sampled_from([1, 1, 2, 3]))
    ph, pw = draw(st.integers(0, 9)), draw(st.integers(0, 9))
    kind = draw(st.sampled_from(["dense", "dense", "dense", "grouped", "depthwise"]))
    if kind == "dense":
        groups, C, K = 1, draw(st.integers(1, 40)), draw(st.integers(1, 70))
    elif kind == "grouped":
        groups = draw(st.integers(2, 4))
        C, K = groups * draw(st.integers(1, 9)), groups * draw(st.integers(1, 20))
    else:
        C = draw(st.integers(1, 20))
        groups, K = C, C * draw(st.integers(1, 2))
    H = draw(st.integers(max(1, dh * (R - 1) + 1 - 2 * ph), 24))
    W = draw(st.one_of(st.integers(max(1, dw * (S - 1) + 1 - 2 * pw), 70),
                       st.sampled_from([7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 49])))
    W = max(W, dw * (S - 1) + 1 - 2 * pw)
    return dict(N=draw(st.sampled_from([1, 1, 2, 3])), C=C, H=H, W=W, K=K, R=R, S=S, groups=groups,
                dtype=draw(st.sampled_from(DTYPES)), bias=draw(st.booleans()),
                act=draw(st.sampled_from([0, 0, 1, 2])), seed=draw(st.integers(0, 2**31 - 1)),
                conv=dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(direct_case())
def test_random_edge_cases_match_reference(case):
    rng = np.random.default_rng(case["seed"])
    x, w, b = operands(rng, case["N"], case["C"], case["H"], case["W"], case["K"], case["R"], case["S"],
                       case["groups"], case["dtype"], case["bias"])
    check(x, w, b, act=case["act"], **case["conv"])


# (name, N, C, H, W, K, R, S, stride, padding, dilation, groups, expected fast path)
CASES = [
    ("wvec row tails 15/17 wide", 2, 5, 9, 19, 11, 3, 3, 1, 0, 1, 1, "wvec"),
    ("wvec wide rows, packed weights", 1, 12, 20, 74, 20, 3, 3, 1, 0, 1, 1, "wvec"),
    ("wvec channel blocks (C > block)", 1, 100, 12, 34, 16, 3, 3, 1, (1, 0), 1, 1, "wvec"),
    ("wvec 11x11, many channel blocks", 1, 20, 16, 40, 10, 11, 11, 1, (5, 2), 1, 1, "wvec"),
    ("wvec padding wider than kernel", 1, 4, 5, 19, 9, 3, 3, 1, (6, 7), 1, 1, "wvec"),
    ("wvec dilated", 2, 6, 15, 37, 13, 3, 3, 1, (2, 1), 2, 1, "wvec"),
    ("wvec grouped", 1, 12, 10, 21, 24, 3, 3, 1, 0, 1, 4, "wvec"),
    ("wvec depthwise-like", 1, 16, 12, 35, 16, 3, 3, 1, (1, 0), 1, 16, "wvec"),
    ("wflat tails, rows of 17", 2, 5, 9, 17, 11, 3, 3, 1, 1, 1, 1, "wflat"),
    ("wflat 1 wide", 1, 3, 6, 1, 9, 3, 3, 1, 1, 1, 1, "wflat"),
    ("wflat 5x5 same, packed weights", 1, 12, 20, 28, 20, 5, 5, 1, 2, 1, 1, "wflat"),
    ("wflat channel blocks (C > block)", 1, 100, 12, 14, 16, 3, 3, 1, 1, 1, 1, "wflat"),
    ("wflat dilated same", 2, 6, 15, 33, 13, 3, 3, 1, 2, 2, 1, "wflat"),
    ("wflat narrow plane, many channels", 1, 40, 5, 5, 70, 3, 3, 1, 1, 1, 1, "wflat"),
    ("wflat grouped", 1, 12, 10, 21, 24, 3, 3, 1, 1, 1, 4, "wflat"),
    ("kvec stride 4 11x11 (AlexNet conv1)", 1, 3, 47, 47, 40, 11, 11, 4, 0, 1, 1, "kvec"),
    ("kvec stride 2 7x7 (ResNet stem)", 2, 3, 29, 30, 35, 7, 7, 2, 3, 1, 1, "kvec"),
    ("kvec narrow rows, many channels", 1, 40, 7, 5, 70, 3, 3, 1, 0, 1, 1, "kvec"),
    ("kvec dilation with stride", 1, 5, 23, 26, 33, 3, 3, (2, 3), 4, (2, 3), 1, "kvec"),
    ("kvec padding wider than kernel", 1, 3, 6, 9, 17, 2, 2, 2, 5, 1, 1, "kvec"),
    ("kvec channel blocks (row buffer > L2 share)", 1, 140, 5, 200, 20, 3, 3, 2, 1, 1, 1, "kvec"),
    ("kvec grouped", 2, 8, 11, 13, 8, 3, 3, 2, 1, 1, 2, "kvec"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_paths(case, dtype):
    _, N, C, H, W, K, R, S, stride, padding, dilation, groups, path = case
    rng = np.random.default_rng(len(case[0]))
    x, w, b = operands(rng, N, C, H, W, K, R, S, groups, dtype)
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if FAST and dtype == np.float32:
        assert path_of(x, w, **conv) == path
    for act in (0, 1, 2):
        check(x, w, b, act=act, **conv)
    check(x, w, None, **conv)


@pytest.mark.parametrize("fn", ["conv2d", "conv2d_simple"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES[::3], ids=[c[0] for c in CASES[::3]])
def test_thread_count_gives_bit_identical_output(case, dtype, fn):
    _, N, C, H, W, K, R, S, stride, padding, dilation, groups, _ = case
    rng = np.random.default_rng(11)
    x, w, b = operands(rng, N, C, H, W, K, R, S, groups, dtype)
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    ys = [run(getattr(direct, fn), x, w, b, act=2, nthreads=n, **conv) for n in (1, 2, 5)]
    assert np.array_equal(ys[0], ys[1]) and np.array_equal(ys[0], ys[2])


@pytest.mark.parametrize("fn", ["conv2d", "conv2d_simple"])
@pytest.mark.parametrize("shape", [(8, 20, 40, 16, 1, 0, "wvec"), (8, 20, 40, 16, 1, 1, "wflat"),
                                   (8, 9, 40, 40, 2, 1, "kvec"), (8, 7, 5, 40, 1, 0, "kvec")],
                         ids=["wvec", "wflat", "kvec-strided", "kvec-narrow"])
def test_nan_and_inf_propagate(shape, fn):
    C, H, W, K, stride, pad, path = shape
    rng = np.random.default_rng(3)
    x, w, b = operands(rng, 1, C, H, W, K, 3, 3, 1, np.float32)
    x[0, 0, 2, 3] = np.nan
    x[0, C - 1, H - 2, W - 3] = np.inf
    if FAST:
        assert path_of(x, w, stride=stride, padding=pad) == path
    for act in (0, 1, 2):
        y = run(getattr(direct, fn), x, w, b, stride=stride, padding=pad, act=act)
        ref = kernels.reference.conv2d(x, w, b, stride=stride, padding=pad, activation=ACTS[act])
        assert np.array_equal(np.isnan(y), np.isnan(ref)), ACTS[act]
        assert np.array_equal(np.isinf(y), np.isinf(ref)), ACTS[act]
        finite = np.isfinite(ref)
        assert rel_error(y[finite], ref[finite]) < TOL[np.float32]


def test_read_only_inputs_are_accepted_and_left_alone():
    rng = np.random.default_rng(5)
    x, w, b = operands(rng, 2, 6, 11, 13, 10, 3, 3, 1, np.float32)
    copies = [a.copy() for a in (x, w, b)]
    for a in (x, w, b):
        a.setflags(write=False)
    check(x, w, b, act=1, padding=1)
    check(x, w, b, stride=2, padding=1)
    for a, c in zip((x, w, b), copies):
        assert np.array_equal(a, c)


def test_through_the_public_api():
    rng = np.random.default_rng(9)
    x, w, b = operands(rng, 2, 7, 15, 18, 12, 5, 5, 1, np.float64)
    y = kernels.conv2d(x, w, b, padding="same", algorithm="direct", activation="relu6")
    ref = kernels.reference.conv2d(x, w, b, padding="same", activation="relu6")
    assert rel_error(y, ref) < TOL[np.float64]


def test_arrays_that_do_not_fit_are_refused():
    x = np.zeros((1, 4, 8, 8), np.float32)
    w = np.zeros((6, 4, 3, 3), np.float32)
    y = np.zeros((1, 6, 6, 6), np.float32)
    with pytest.raises(ValueError, match="y"):
        direct.conv2d(x, w, None, np.zeros((1, 5, 6, 6), np.float32), 1, 1, 0, 0, 1, 1, 1, 0, 1)
    with pytest.raises(ValueError, match="bias"):
        direct.conv2d(x, w, np.zeros(5, np.float32), y, 1, 1, 0, 0, 1, 1, 1, 0, 1)
    with pytest.raises(ValueError, match="groups"):
        direct.conv2d(x, w, None, y, 1, 1, 0, 0, 1, 1, 3, 0, 1)
    with pytest.raises(ValueError, match="act"):
        direct.conv2d(x, w, None, y, 1, 1, 0, 0, 1, 1, 1, 3, 1)
    with pytest.raises(ValueError, match="nthreads"):
        direct.conv2d(x, w, None, y, 1, 1, 0, 0, 1, 1, 1, 0, 0)
    with pytest.raises((TypeError, ValueError)):
        direct.conv2d(x, w.astype(np.float64), None, y, 1, 1, 0, 0, 1, 1, 1, 0, 1)
