"""Extreme integer arguments: strides, dilations, paddings, kernel and pool sizes up to 2**62 (and
past it), in every algorithm and in pooling, each either refused with a ValueError naming the argument
or computed exactly; memory bounded by the output, never by the number; empty planes refused.

The oracles here are independent of kernels.canonical and kernels.reference: brute force over the
tiny output with explicit Python-int index arithmetic (no padding is ever materialised)."""
import subprocess
import sys
import textwrap
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import kernels
from kernels.shapes import conv_geometry, output_size, pool_geometry

from .conftest import TOL, conv_operands, rel_error

DTYPES = (np.float32, np.float64)
BIG = st.integers(2**20, 2**62)
LIMIT = 2**62                    # shapes.MAX_ELEMENTS: larger outputs are refused
MAX_OUT = 400                    # outputs the brute-force oracles compute (larger ones are skipped)


# --------------------------------------------------------------------------------------------------
# Independent oracles

def conv_out(n, f, s, lo, hi, d):
    """Output size of one conv axis, or None when the dilated kernel is larger than the padded input."""
    span = n + lo + hi - d * (f - 1) - 1
    return None if span < 0 else span // s + 1


def brute_conv(x, w, b, stride, pads, dilation, groups):
    """y[n, k, p, q] = b[k] + sum over taps inside x of w * x, in float64, Python-int indices."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, pads
    P, Q = conv_out(H, R, sh, pt, pb, dh), conv_out(W, S, sw, pl, pr, dw)
    Kg = K // groups
    y = np.zeros((N, K, P, Q))
    for p in range(P):
        rows = [(r, p * sh - pt + r * dh) for r in range(R) if 0 <= p * sh - pt + r * dh < H]
        for q in range(Q):
            cols = [(s, q * sw - pl + s * dw) for s in range(S) if 0 <= q * sw - pl + s * dw < W]
            for g in range(groups):
                for r, ih in rows:
                    for s, iw in cols:
                        y[:, g * Kg:(g + 1) * Kg, p, q] += (x[:, g * Cg:(g + 1) * Cg, ih, iw]
                                                            @ w[g * Kg:(g + 1) * Kg, :, r, s].T)
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y


def pool_out(n, k, s, pad, d, ceil_mode):
    """PyTorch's pooling output size of one axis, or None when the window does not fit."""
    span = n + 2 * pad - d * (k - 1) - 1
    if span < 0:
        return None
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + pad:
        out -= 1
    return out


def window_rows(n, p, k, s, pad, d):
    """Input rows of output p's window: scan the input (never the window, which may be 2**62 long)."""
    start = p * s - pad
    return [i for i in range(n) if (i - start) % d == 0 and 0 <= (i - start) // d < k]


def avg_divisor(n, p, k, s, pad, include_pad):
    start = p * s - pad
    end = min(start + k, n + pad)
    return end - start if include_pad else min(end, n) - max(start, 0)


def brute_pool(x, mode, kernel, stride, pad, dilation, ceil_mode, include_pad):
    x = x.astype(np.float64)
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    P, Q = pool_out(H, kh, sh, ph, dh, ceil_mode), pool_out(W, kw, sw, pw, dw, ceil_mode)
    y = np.empty((N, C, P, Q))
    for p in range(P):
        rows = window_rows(H, p, kh, sh, ph, dh)
        for q in range(Q):
            cols = window_rows(W, q, kw, sw, pw, dw)
            taps = x[:, :, rows][:, :, :, cols].reshape(N, C, -1)
            if mode == "max":
                y[:, :, p, q] = taps.max(axis=2) if taps.shape[2] else -np.inf
            else:
                div = avg_divisor(H, p, kh, sh, ph, include_pad) * avg_divisor(W, q, kw, sw, pw, include_pad)
                y[:, :, p, q] = taps.sum(axis=2) / float(div)
    return y


def close(y, ref, dtype):
    """rel_error within the project's tolerance; results so small that they round into the subnormals
    (an average over a 2**62 x 2**62 window) are held to their absolute spacing there."""
    assert y.dtype == dtype and y.shape == ref.shape, (y.dtype, y.shape, ref.shape)
    err = np.linalg.norm((kernels.reference.to_host64(y) - ref).ravel())
    floor = 4 * ref.size * float(np.finfo(dtype).smallest_subnormal)
    assert err <= TOL[dtype] * np.linalg.norm(ref.ravel()) + floor, (rel_error(y, ref), err)


# --------------------------------------------------------------------------------------------------
# Convolution: every algorithm

@st.composite
def conv_axis(draw, n, R, padded):
    """stride, dilation, (pad_begin, pad_end) of one axis: small or huge, with paddings that keep the
    output small (spaced by the stride, or reaching as far as the dilated kernel) or plain huge."""
    s = draw(st.one_of(st.integers(1, 4), BIG))
    d = draw(BIG) if draw(st.integers(0, 2)) == 0 else draw(st.integers(1, 3))
    if not padded:
        return s, d, 0
    kind = draw(st.sampled_from(["small", "stride", "reach", "huge"]))
    if kind == "small":
        pad = draw(st.integers(0, 3))
    elif kind == "stride":
        pad = s * draw(st.integers(0, 2)) + draw(st.integers(-2, 2))
    elif kind == "reach":
        pad = d * (R - 1) // 2 + draw(st.integers(-3, 3))
    else:
        pad = draw(BIG)
    return s, d, max(pad, 0)


@st.composite
def conv_case(draw):
    algorithm = draw(st.sampled_from(["direct", "im2col", "pointwise", "depthwise", "auto"]))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    C = draw(st.integers(1, 4))
    if algorithm == "depthwise":
        groups, K = C, C * draw(st.integers(1, 2))
    else:
        groups = draw(st.sampled_from([g for g in (1, 2) if C % g == 0]))
        K = groups * draw(st.integers(1, 3))
    R, S = (1, 1) if algorithm == "pointwise" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padded = algorithm != "pointwise"
    sh, dh, ph = draw(conv_axis(H, R, padded))
    sw, dw, pw = draw(conv_axis(W, S, padded))
    same = padded and draw(st.integers(0, 4)) == 0
    if same:
        sh = sw = 1
    return dict(algorithm=algorithm, N=draw(st.integers(1, 2)), C=C, H=H, W=W, K=K, R=R, S=S,
                groups=groups, stride=(sh, sw), dilation=(dh, dw), padding="same" if same else (ph, pw),
                bias=draw(st.booleans()), dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 2**16)))


def resolved_pads(case):
    """(top, bottom, left, right) as the caller asked: 'same' pads dilation*(f-1), extra at the end."""
    if case["padding"] == "same":
        th, tw = case["dilation"][0] * (case["R"] - 1), case["dilation"][1] * (case["S"] - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = case["padding"]
    return ph, ph, pw, pw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(conv_case())
def test_conv_with_extreme_arguments_is_exact_or_refused(case):
    x, w, b = conv_operands(case)
    pt, pb, pl, pr = resolved_pads(case)
    P = conv_out(case["H"], case["R"], case["stride"][0], pt, pb, case["dilation"][0])
    Q = conv_out(case["W"], case["S"], case["stride"][1], pl, pr, case["dilation"][1])
    kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    if P is None or Q is None:
        event("refused: kernel larger than the padded input")
        with pytest.raises(ValueError, match="kernel"):
            kernels.conv2d(x, w, b, algorithm=case["algorithm"], **kw)
        return
    if case["N"] * case["K"] * P * Q >= LIMIT:
        event("refused: output too large to index")
        with pytest.raises(ValueError, match="output"):
            kernels.conv2d(x, w, b, algorithm=case["algorithm"], **kw)
        return
    assume(P * Q <= MAX_OUT)          # between: a real output too large to compute here
    event(f"computed, {len(conv_geometry(x.shape, w.shape, **kw).plan.gathers)} axes gathered")
    y = kernels.conv2d(x, w, b, algorithm=case["algorithm"], **kw)
    ref = brute_conv(x, w, b, case["stride"], (pt, pb, pl, pr), case["dilation"], case["groups"])
    close(y, ref, case["dtype"])
    # the float64 reference runs the same canonical plan, and agrees with brute force too
    close(kernels.reference.conv2d(x.astype(np.float64), w.astype(np.float64),
                                   None if b is None else b.astype(np.float64), **kw), ref, np.float64)


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "depthwise", "auto"])
@pytest.mark.parametrize("big", [2**24, 2**31, 2**40, 2**62, 2**62 + 1, 2**100])
def test_conv_huge_stride_padding_and_dilation_together(algorithm, big):
    # the probe of the issue, and past 2**62: a 9x9 input, output 3x3 or 9x9 of mostly padding
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 2, 9, 9)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3) if algorithm == "depthwise" else (3, 2, 3, 3)).astype(np.float32)
    groups = 2 if algorithm == "depthwise" else 1
    for stride, padding, dilation in [(big, 0, 1), (big, big, 1), (1, big, big), (big, (big, 1), (1, 2)),
                                      (1, "same", big), ((big, 1), (big - 1, 1), (big // 3 + 1, 1))]:
        if padding == "same":
            pads = (big, big, big, big)
        else:
            ph, pw = padding if isinstance(padding, tuple) else (padding, padding)
            pads = (ph, ph, pw, pw)
        st_ = stride if isinstance(stride, tuple) else (stride, stride)
        dl = dilation if isinstance(dilation, tuple) else (dilation, dilation)
        y = kernels.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                           algorithm=algorithm)
        close(y, brute_conv(x, w, None, st_, pads, dl, groups), np.float32)


@pytest.mark.parametrize("big", [2**24, 2**62, 2**100])
def test_pointwise_huge_stride(big):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 9, 7))
    w = rng.standard_normal((4, 3, 1, 1))
    for stride, dilation in [(big, 1), ((big, 2), big), ((3, big), (big, 5))]:
        y = kernels.conv2d(x, w, stride=stride, dilation=dilation, algorithm="pointwise")
        st_ = stride if isinstance(stride, tuple) else (stride, stride)
        close(y, brute_conv(x, w, None, st_, (0, 0, 0, 0), (1, 1), 1), np.float64)


def test_tame_geometries_reach_the_kernels_unchanged():
    # the per-call path of ordinary layers: no gather, the very same numbers
    for x_shape, w_shape, s, p, d in [((1, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
                                      ((1, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1),
                                      ((1, 8, 9, 9), (8, 8, 3, 3), 26, 26, 13)]:
        g = conv_geometry(x_shape, w_shape, s, p, d)
        assert g.plan.geometry == g and g.plan.gathers == ()
        assert conv_geometry(x_shape, w_shape, s, p, d).plan is g.plan      # memoised with the geometry
    g = pool_geometry((1, 64, 112, 112), 3, 2, 1)
    assert g.plan.geometry == g and g.plan.gathers == ()


def test_kernel_geometries_are_tame():
    # what the kernels are handed never exceeds 2 * extent + 8, however large the arguments
    for s, p, d in [(2**62, 2**62, 1), (1, 2**62, 2**62), (2**62, (2**62, 0), (1, 3)), (5, 40, 7)]:
        g = conv_geometry((1, 2, 9, 9), (3, 2, 3, 3), s, p, d)
        kg = g.plan.geometry
        assert kg.out_shape == g.out_shape
        assert max(kg.sh, kg.dh, kg.pad_top, kg.pad_bottom) <= 2 * kg.H + 8
        assert max(kg.sw, kg.dw, kg.pad_left, kg.pad_right) <= 2 * kg.W + 8
        # self-consistent: its own size arithmetic gives the same output (kernels rely on it)
        assert output_size(kg.H, kg.R, kg.sh, kg.pad_top, kg.pad_bottom, kg.dh) == kg.P
        assert output_size(kg.W, kg.S, kg.sw, kg.pad_left, kg.pad_right, kg.dw) == kg.Q
    for k, s, p, ceil in [(2**62, 1, 2**61, True), (3, 2**62, 1, True), (2**62, 2**40, 2**61 - 2, False)]:
        g = pool_geometry((1, 2, 9, 9), k, s, p, 1, ceil)
        kg = g.plan.geometry
        assert max(kg.sh, kg.dh, kg.ph, kg.kh) <= 2 * kg.H + 8 and max(kg.sw, kg.dw, kg.pw, kg.kw) <= 2 * kg.W + 8
        assert output_size(kg.H, kg.kh, kg.sh, kg.ph, kg.ph, kg.dh) == kg.P
        assert kg.H <= 2 * g.H            # one gathered copy per distinct window: of the input's order


# --------------------------------------------------------------------------------------------------
# Pooling

@st.composite
def pool_axis(draw, mode):
    k = draw(st.one_of(st.integers(1, 4), BIG))
    pad = draw(st.integers(0, k // 2)) if k <= 8 else k // 2 - draw(st.integers(0, 4))
    # dilation (max pooling only): mostly 1; a huge one fits only a one-tap window
    d = 1 if mode == "avg" or draw(st.booleans()) else (draw(BIG) if draw(st.integers(0, 3)) == 0
                                                         else draw(st.integers(2, 3)))
    s = draw(st.one_of(st.integers(1, 4), BIG))
    return k, s, pad, d


@st.composite
def pool_case(draw):
    mode = draw(st.sampled_from(["max", "avg"]))
    (kh, sh, ph, dh), (kw, sw, pw, dw) = draw(pool_axis(mode)), draw(pool_axis(mode))
    default_stride = draw(st.integers(0, 3)) == 0
    return dict(mode=mode, N=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)), H=draw(st.integers(1, 7)),
                W=draw(st.integers(1, 7)), kernel=(kh, kw), stride=None if default_stride else (sh, sw),
                padding=(ph, pw), dilation=(dh, dw), ceil_mode=draw(st.booleans()),
                count_include_pad=draw(st.booleans()), dtype=draw(st.sampled_from(DTYPES)),
                seed=draw(st.integers(0, 2**16)))


def run_pool(module, case, x):
    if case["mode"] == "max":
        return module.max_pool2d(x, case["kernel"], case["stride"], case["padding"], case["dilation"],
                                 case["ceil_mode"])
    return module.avg_pool2d(x, case["kernel"], case["stride"], case["padding"], case["ceil_mode"],
                             case["count_include_pad"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(pool_case())
def test_pool_with_extreme_arguments_is_exact_or_refused(case):
    x = np.random.default_rng(case["seed"]).standard_normal(
        (case["N"], case["C"], case["H"], case["W"])).astype(case["dtype"])
    stride = case["kernel"] if case["stride"] is None else case["stride"]
    P = pool_out(case["H"], case["kernel"][0], stride[0], case["padding"][0], case["dilation"][0], case["ceil_mode"])
    Q = pool_out(case["W"], case["kernel"][1], stride[1], case["padding"][1], case["dilation"][1], case["ceil_mode"])
    if P is None or Q is None or P < 1 or Q < 1:
        event("refused: window larger than the padded input")
        with pytest.raises(ValueError, match="kernel_size"):
            run_pool(kernels, case, x)
        return
    assume(P * Q <= MAX_OUT)
    dilation = case["dilation"] if case["mode"] == "max" else 1
    g = pool_geometry(x.shape, case["kernel"], case["stride"], case["padding"], dilation, case["ceil_mode"])
    event(f"computed, {len(g.plan.gathers)} axes gathered")
    y = run_pool(kernels, case, x)
    ref = brute_pool(x, case["mode"], case["kernel"], stride, case["padding"], case["dilation"],
                     case["ceil_mode"], case["count_include_pad"])
    if case["mode"] == "max":      # max is exact (and -inf where a window holds only padding)
        assert y.dtype == x.dtype and np.array_equal(y, ref.astype(x.dtype))
        assert np.array_equal(run_pool(kernels.reference, case, x), ref)
    else:
        close(y, ref, case["dtype"])
        close(run_pool(kernels.reference, case, x), ref, np.float64)


@pytest.mark.parametrize("big", [2**24, 2**31, 2**40, 2**62, 2**100])
def test_pool_huge_window_stride_and_padding(big):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 2, 9, 8))
    for k, s, p, ceil in [(big, None, big // 2, False), (big, 1, big // 2, True), (3, big, 1, True),
                          ((big, 3), (2, big), (big // 2 - 1, 1), True), (big + 1, big // 4, big // 2, False)]:
        k2 = k if isinstance(k, tuple) else (k, k)
        s2 = k2 if s is None else (s if isinstance(s, tuple) else (s, s))
        p2 = p if isinstance(p, tuple) else (p, p)
        for include in (True, False):
            y = kernels.avg_pool2d(x, k, s, p, ceil, include)
            close(y, brute_pool(x, "avg", k2, s2, p2, (1, 1), ceil, include), np.float64)
        y = kernels.max_pool2d(x, k, s, p, 1, ceil)
        assert np.array_equal(y, brute_pool(x, "max", k2, s2, p2, (1, 1), ceil, True))


def test_pool_huge_dilation():
    # a huge dilation is right where only one tap is left (kernel 1), and refused where it cannot fit
    x = np.random.default_rng(10).standard_normal((1, 1, 5, 5))
    y = kernels.max_pool2d(x, (1, 3), (2**62, 1), 0, (2**62, 1))
    assert np.array_equal(y, brute_pool(x, "max", (1, 3), (2**62, 1), (0, 0), (1, 1), False, True))
    with pytest.raises(ValueError, match="kernel_size"):
        kernels.max_pool2d(x, 3, 1, 1, 2**62)


@pytest.mark.parametrize("size", [2**20, 2**62, 2**62 + 3, 2**200])
def test_lrn_huge_size(size):
    # a window past 2C + 1 channels covers them all: the sum over every channel, scaled alpha / size
    x = np.random.default_rng(11).standard_normal((2, 5, 3, 4))
    alpha, beta, k = 1e10, 0.75, 1.0
    y = kernels.local_response_norm(x, size, alpha, beta, k)
    ref = x / (k + float(Fraction(alpha) / size) * (x ** 2).sum(axis=1, keepdims=True)) ** beta
    close(y, ref, np.float64)
    close(kernels.reference.local_response_norm(x, size, alpha, beta, k), ref, np.float64)


# --------------------------------------------------------------------------------------------------
# Empty planes and empty batches

@pytest.mark.parametrize("algorithm", ["direct", "im2col", "pointwise", "depthwise", "auto"])
@pytest.mark.parametrize("x_shape", [(1, 2, 0, 5), (1, 2, 5, 0), (0, 2, 0, 5), (2, 2, 0, 0)])
def test_conv_on_an_empty_plane_raises_as_torch(algorithm, x_shape):
    w = np.ones((2, 1, 1, 1) if algorithm in ("depthwise", "pointwise") else (3, 2, 3, 3), np.float32)
    groups = 2 if algorithm == "depthwise" else 1
    if algorithm == "pointwise":
        w = np.ones((3, 2, 1, 1), np.float32)
    for padding in (0, 1, 3):
        if algorithm == "pointwise" and padding:
            continue
        with pytest.raises(ValueError, match="x must have a non-empty plane"):
            kernels.conv2d(np.ones(x_shape, np.float32), w, padding=padding, groups=groups, algorithm=algorithm)
    with pytest.raises(ValueError, match="x must have a non-empty plane"):
        kernels.reference.conv2d(np.ones(x_shape), w, padding=1 if algorithm != "pointwise" else 0, groups=groups)


def test_empty_batch_with_extreme_arguments_gives_empty_output():
    x = np.ones((0, 2, 9, 9), np.float32)
    y = kernels.conv2d(x, np.ones((3, 2, 3, 3), np.float32), stride=2**62, padding=2**62)
    assert y.shape == (0, 3, 3, 3)
    assert kernels.max_pool2d(x, 2**62, None, 2**61).shape == (0, 2, 1, 1)
    assert kernels.avg_pool2d(x, 3, 2**62, 1).shape == (0, 2, 1, 1)
    assert kernels.avg_pool2d(x, 2**62, 1, 2**61, True).shape == (0, 2, 10, 10)
    # the GPU path hands finish() the kernel's empty output (one column per distinct window)
    plan = pool_geometry(x.shape, 2**62, 1, 2**61, 1, True).plan
    y = np.empty(plan.geometry.out_shape, np.float32)
    assert y.shape == (0, 2, 1, 1) and plan.finish(y, "avg", False).shape == (0, 2, 10, 10)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pool_on_an_empty_plane_raises(pool):
    fn = kernels.max_pool2d if pool == "max" else kernels.avg_pool2d
    with pytest.raises(ValueError, match="non-empty"):
        fn(np.ones((1, 2, 0, 4), np.float32), 1, 1, 0)


# --------------------------------------------------------------------------------------------------
# The kernels themselves refuse what the canonical plan would have rewritten

def test_kernel_modules_refuse_untame_geometries():
    from kernels import cpu
    x = np.ones((1, 2, 9, 9), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    y = np.empty((1, 3, 1, 1), np.float32)
    with pytest.raises(ValueError, match="stride"):
        cpu.load("direct").conv2d(x, w, None, y, 2**40, 1, 0, 0, 1, 1, 1, 0, 1)
    yp = np.empty((1, 2, 1, 1), np.float32)
    with pytest.raises(ValueError, match="stride"):
        cpu.load("pooling").pool2d(x, yp, True, 3, 3, 2**40, 1, 0, 0, 1, 1, True, 1)
    with pytest.raises(ValueError, match="kernel"):
        cpu.load("pooling").pool2d(x, yp, True, 2**40, 3, 1, 1, 0, 0, 1, 1, True, 1)


# --------------------------------------------------------------------------------------------------
# Memory and crashes: huge cases in a child process under a 2 GiB address-space limit

CHILD = textwrap.dedent("""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    import numpy as np
    import kernels
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 64, 64)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    wd = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    for big in (2**24, 2**31, 2**40, 2**62, 2**100):
        for algorithm, ww, groups in (("direct", w, 1), ("im2col", w, 1), ("depthwise", wd, 16),
                                      ("pointwise", w[:, :, :1, :1].copy(), 1), ("auto", w, 1)):
            for padding in (0,) if algorithm == "pointwise" else (0, big, (big, 1)):
                y = kernels.conv2d(x, ww, stride=big, padding=padding, groups=groups, algorithm=algorithm)
                assert y.shape[2] * y.shape[3] <= 9, y.shape
                assert np.isfinite(y).all()
            if algorithm != "pointwise":
                y = kernels.conv2d(x, ww, padding="same", dilation=big, groups=groups, algorithm=algorithm)
                assert y.shape[2:] == (64, 64)
        assert kernels.max_pool2d(x, 3, big, 1).shape == (2, 16, 1, 1)
        assert kernels.max_pool2d(x, big, None, big // 2, 1, True).shape[2:] in ((1, 1), (2, 2))
        assert kernels.avg_pool2d(x, big, 1, big // 2).shape[2] >= 1
        assert kernels.local_response_norm(x, big).shape == x.shape
        kernels.reference.conv2d(x[:1, :2], w[:2, :2], stride=big, padding=big)
        kernels.reference.avg_pool2d(x[:1, :2], big, 1, big // 2, False, False)
    print("ok")
""")


def test_huge_arguments_stay_in_small_memory_and_never_crash():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stdout[-2000:], r.stderr[-4000:])
