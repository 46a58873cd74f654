"""The blocked (NCHW16c) kernels of the inference plan, each alone: the fast float32 kernels
(kernels.cpu.blocked) against the simple NumPy versions (kernels.blocked), and those against the
float64 reference, over random shapes with channel counts that are not multiples of 16."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels import blocked as B
from kernels import reference as ref
from kernels.cpu import load

FAST = load("blocked")
ACTS = {0: None, 1: "relu", 2: "relu6"}


def _blocked(x, halo):
    xb = np.full(B.blocked_shape(*x.shape, halo), np.nan, np.float32)
    B.to_blocked(x.astype(np.float32), xb, halo)
    return xb


def _nchw(yb, halo, C):
    N, _, Hh, Wh, _ = yb.shape
    y = np.empty((N, C, Hh - 2 * halo, Wh - 2 * halo))
    B.from_blocked(yb, halo, y)
    return y


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def _act64(y, act):
    return B.activate(y, act)


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 40), K=st.integers(1, 40), H=st.integers(1, 12), W=st.integers(1, 12),
       R=st.sampled_from([1, 3, 5]), stride=st.integers(1, 2), dil=st.integers(1, 2), act=st.integers(0, 4),
       residual=st.booleans(), seed=st.integers(0, 2**16), extra_halo=st.integers(0, 1))
def test_conv(N, C, K, H, W, R, stride, dil, act, residual, seed, extra_halo):
    pad = (R - 1) // 2 * dil
    if dil * (R - 1) + 1 > H + 2 * pad or dil * (R - 1) + 1 > W + 2 * pad:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C, R, R)) / np.sqrt(C * R * R)
    b = rng.standard_normal(K)
    r64 = ref.conv2d(x, w, b, stride=stride, padding=pad, dilation=dil)
    P, Q = r64.shape[2:]
    res = rng.standard_normal((N, K, P, Q)) if residual else None
    want = _act64(r64 + (res if residual else 0), act)
    xh = pad + extra_halo
    cw = B.ConvWeights(w.astype(np.float32), b.astype(np.float32), (stride, stride), (pad, pad), (dil, dil))
    rb = _blocked(res, 1) if residual else None
    yb = np.full(B.blocked_shape(N, K, P, Q, 1), np.nan, np.float32)
    FAST.conv(_blocked(x, xh), xh, cw, yb, 1, rb, 1, act, 2)
    assert _rel(_nchw(yb, 1, K), want) < 1e-5
    assert not np.isnan(yb).any()              # the frame written (zero), every lane finite
    assert np.all(yb[:, :, 0] == 0) and np.all(yb[:, :, :, -1] == 0)
    # the simple version agrees with the reference too
    y64 = np.empty(B.blocked_shape(N, K, P, Q, 0))
    B.conv(_blocked(x, xh).astype(np.float64), xh, cw, y64, 0, None if rb is None else B.interior(rb, 1), 0, act)
    assert _rel(_nchw(y64, 0, K), want) < 1e-5


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 70), K=st.integers(1, 70), H=st.integers(1, 17), W=st.integers(1, 17),
       m=st.sampled_from([2, 4]), pad=st.integers(0, 1), act=st.integers(0, 4), residual=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16), extra_halo=st.integers(0, 1))
def test_winograd(N, C, K, H, W, m, pad, act, residual, dtype, seed, extra_halo):
    """3x3 stride-1 by Winograd F(m x m, 3 x 3): tiles that overhang the plane, odd sizes, no padding,
    channels that are not multiples of 16; float32 weights, and float64 ones packed to float32."""
    if H + 2 * pad < 3 or W + 2 * pad < 3:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C, 3, 3)) / np.sqrt(C * 9)
    b = rng.standard_normal(K)
    r64 = ref.conv2d(x, w, b, padding=pad)
    P, Q = r64.shape[2:]
    res = rng.standard_normal((N, K, P, Q)) if residual else None
    want = _act64(r64 + (res if residual else 0), act)
    xh = pad + extra_halo
    ww = B.WinogradWeights(w.astype(dtype), b.astype(dtype), (pad, pad), m)
    if dtype is np.float64:
        ww.w, ww.bias = ww.w.astype(np.float32), ww.bias.astype(np.float32)
    yb = np.full(B.blocked_shape(N, K, P, Q, 1), np.nan, np.float32)
    FAST.winograd(_blocked(x, xh), xh, ww, yb, 1, None if res is None else _blocked(res, 1), 1, act, 2)
    assert _rel(_nchw(yb, 1, K), want) < (1e-5 if m == 2 else 3e-5)
    assert not np.isnan(yb).any() and np.all(yb[:, :, 0] == 0) and np.all(yb[:, :, :, -1] == 0)
    # the simple version is the convolution itself
    y64 = np.empty(B.blocked_shape(N, K, P, Q, 0))
    B.winograd(_blocked(x, xh).astype(np.float64), xh, ww, y64, 0, None if res is None else _blocked(res, 0), 0, act)
    assert _rel(_nchw(y64, 0, K), want) < 1e-5


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_large_channels(m):
    """Runs of tiles sized for a U that does not fit L2 (512 channels: one run per thread)."""
    rng = np.random.default_rng(m)
    x = rng.standard_normal((2, 512, 7, 9))
    w = rng.standard_normal((512, 512, 3, 3)) / np.sqrt(512 * 9)
    want = _act64(ref.conv2d(x, w, padding=1), 1)
    ww = B.WinogradWeights(w.astype(np.float32), None, (1, 1), m)
    yb = np.empty(B.blocked_shape(2, 512, 7, 9, 0), np.float32)
    FAST.winograd(_blocked(x, 1), 1, ww, yb, 0, None, 0, 1, 2)
    assert _rel(_nchw(yb, 0, 512), want) < 3e-5


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 2), C=st.integers(1, 6), K=st.integers(1, 70), H=st.integers(7, 30), R=st.sampled_from([3, 7]),
       stride=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_stem_reads_nchw(N, C, K, H, R, stride, seed):
    pad = R // 2
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, H))
    w = rng.standard_normal((K, C, R, R))
    want = _act64(ref.conv2d(x, w, stride=stride, padding=pad), 1)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).astype(np.float32)
    cw = B.ConvWeights(w.astype(np.float32), None, (stride, stride), (pad, pad), (1, 1), nchw_input=True)
    yb = np.empty(B.blocked_shape(N, K, *want.shape[2:], 0), np.float32)
    FAST.conv(xp, pad, cw, yb, 0, None, 0, 1, 2)
    assert _rel(_nchw(yb, 0, K), want) < 1e-5


@settings(max_examples=50, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 40), H=st.integers(1, 14), W=st.integers(1, 14),
       R=st.sampled_from([3, 5]), stride=st.integers(1, 3), act=st.integers(0, 4), residual=st.booleans(),
       seed=st.integers(0, 2**16))
def test_depthwise(N, C, H, W, R, stride, act, residual, seed):
    pad = R // 2
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((C, 1, R, R))
    b = rng.standard_normal(C)
    r64 = ref.conv2d(x, w, b, stride=stride, padding=pad, groups=C)
    res = rng.standard_normal(r64.shape) if residual else None
    want = _act64(r64 + (res if residual else 0), act)
    dw = B.DepthwiseWeights(w.astype(np.float32), b.astype(np.float32), (stride, stride), (pad, pad), (1, 1))
    yb = np.full(B.blocked_shape(N, C, *r64.shape[2:], 2), np.nan, np.float32)
    FAST.depthwise(_blocked(x, pad), pad, dw, yb, 2, None if res is None else _blocked(res, 0), 0, act, 2)
    assert _rel(_nchw(yb, 2, C), want) < 1e-5


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 40), H=st.integers(1, 17), W=st.integers(1, 17),
       R=st.sampled_from([3, 5]), stride=st.integers(1, 2), act=st.integers(0, 4), y_halo=st.integers(0, 1),
       seed=st.integers(0, 2**16))
def test_depthwise_row_sums_give_the_global_mean(N, C, H, W, R, stride, act, y_halo, seed):
    """A Depthwise step with `rowsum` (the plan's squeeze-and-excitation pool) leaves each output row's
    sums; mean_rows of them is the output's global mean, whatever the thread count."""
    pad = R // 2
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((C, 1, R, R))
    b = rng.standard_normal(C)
    want = _act64(ref.conv2d(x, w, b, stride=stride, padding=pad, groups=C), act)
    P, Q = want.shape[2:]
    size = np.abs(ref.conv2d(np.abs(x), np.abs(w), np.abs(b), stride=stride, padding=pad, groups=C)).mean(axis=(2, 3))
    dw = B.DepthwiseWeights(w.astype(np.float32), b.astype(np.float32), (stride, stride), (pad, pad), (1, 1))
    xb = _blocked(x, pad)
    got = []
    for threads in (1, 2, 3):
        yb = np.full(B.blocked_shape(N, C, P, Q, y_halo), np.nan, np.float32)
        rs = np.full((N, B.blocks(C), P, B.BLOCK), np.nan)
        FAST.Depthwise(xb, pad, dw, yb, y_halo, None, 0, act, rs)(threads)
        mean = np.empty((N, B.blocks(C) * B.BLOCK), np.float32)
        FAST.mean_rows(rs, P * Q, mean, threads)
        unfused = np.empty_like(mean)
        FAST.global_avg_pool(yb, y_halo, unfused, threads)
        assert _rel(_nchw(yb, y_halo, C), want) < 1e-5
        # a mean of a few outputs can cancel to 1% of their size: its error is bounded by theirs
        assert np.all(np.abs(mean[:, :C] - want.mean(axis=(2, 3))) <= 1e-5 * size)
        np.testing.assert_allclose(mean, unfused, rtol=1e-6, atol=1e-6)
        got.append(mean)
    assert all(np.array_equal(g, got[0]) for g in got)


def test_bad_row_sums_are_refused():
    xb = np.zeros(B.blocked_shape(1, 20, 5, 5, 1), np.float32)
    dw = B.DepthwiseWeights(np.ones((20, 1, 3, 3), np.float32), None, (1, 1), (1, 1), (1, 1))
    yb = np.zeros(B.blocked_shape(1, 20, 5, 5, 0), np.float32)
    for bad in (np.zeros((1, 2, 5, 16), np.float32), np.zeros((1, 2, 4, 16)), np.zeros((1, 2, 16, 5)).T,
                [[0.0]]):
        with pytest.raises(ValueError, match="rowsum"):
            FAST.Depthwise(xb, 1, dw, yb, 0, None, 0, 0, bad)
    with pytest.raises(ValueError, match="out must be"):
        FAST.mean_rows(np.zeros((1, 2, 5, 16)), 25, np.zeros((1, 16), np.float32))
    with pytest.raises(ValueError, match="pixels"):
        FAST.mean_rows(np.zeros((1, 2, 5, 16)), 0, np.zeros((1, 32), np.float32))


@settings(max_examples=50, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 40), K=st.integers(1, 70), H=st.integers(1, 15), W=st.integers(1, 15),
       R=st.sampled_from([1, 3]), stride=st.integers(1, 2), act=st.integers(0, 4), residual=st.booleans(),
       tile=st.sampled_from([None, (4, 6, True), (2, 14, False), (1, 3, False)]), seed=st.integers(0, 2**16))
def test_conv_with_input_scale_folded_into_its_weights(N, C, K, H, W, R, stride, act, residual, tile, seed):
    """Conv.scale_inputs (the plan's squeeze-and-excitation scale folded into the projection) gives
    conv(x * s[n, c]): against the float64 reference, per image scales, the same bits for every thread
    count and every call (the per-image weights are rewritten from s each time)."""
    pad = R // 2
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    s = rng.uniform(0.1, 1.0, (N, C))
    w = rng.standard_normal((K, C, R, R)) / np.sqrt(C * R * R)
    b = rng.standard_normal(K)
    r64 = ref.conv2d(x * s[:, :, None, None], w, b, stride=stride, padding=pad)
    res = rng.standard_normal(r64.shape) if residual else None
    want = _act64(r64 + (res if residual else 0), act)
    P, Q = r64.shape[2:]
    cw = B.ConvWeights(w.astype(np.float32), b.astype(np.float32), (stride, stride), (pad, pad), (1, 1))
    if tile and B.blocks(K) % tile[0]:
        tile = None
    xb = _blocked(x, pad)
    sb = np.zeros((N, B.blocks(C) * B.BLOCK), np.float32)
    sb[:, :C] = s
    got = []
    for threads in (1, 2, 3):
        yb = np.full(B.blocked_shape(N, K, P, Q, 1), np.nan, np.float32)
        call = FAST.Conv(xb, pad, cw, yb, 1, None if res is None else _blocked(res, 0), 0, act)
        if tile:
            call.set_tile(tile[0], tile[1], flat=tile[2])
        call.scale_inputs(sb, B.aligned_empty((N,) + cw.w.shape))
        call(threads)
        assert _rel(_nchw(yb, 1, K), want) < 1e-5
        assert not np.isnan(yb).any()
        got.append(yb.copy())
        call(threads)
        assert np.array_equal(yb, got[-1])
    assert all(np.array_equal(g, got[0]) for g in got)


def test_bad_input_scales_are_refused():
    xb = np.zeros(B.blocked_shape(2, 20, 5, 5, 0), np.float32)
    cw = B.ConvWeights(np.ones((24, 20, 1, 1), np.float32), None, (1, 1), (0, 0), (1, 1))
    yb = np.zeros(B.blocked_shape(2, 24, 5, 5, 0), np.float32)
    call = FAST.Conv(xb, 0, cw, yb, 0)
    good_w = np.zeros((2,) + cw.w.shape, np.float32)
    for bad in (np.zeros((2, 20), np.float32), np.zeros((1, 32), np.float32), np.zeros((2, 32, 1), np.float32),
                np.zeros((2, 32)), np.zeros((32, 2), np.float32).T, [[0.0]]):
        with pytest.raises((ValueError, TypeError), match="s must"):
            call.scale_inputs(bad, good_w)
    for bad in (np.zeros(cw.w.shape, np.float32), np.zeros((2,) + cw.w.shape), np.zeros((3,) + cw.w.shape, np.float32)):
        with pytest.raises((ValueError, TypeError), match="weights must"):
            call.scale_inputs(np.zeros((2, 32), np.float32), bad)
    stem = B.ConvWeights(np.ones((16, 3, 3, 3), np.float32), None, (2, 2), (1, 1), (1, 1), nchw_input=True)
    nchw = FAST.Conv(np.zeros((2, 3, 9, 9), np.float32), 1, stem, np.zeros(B.blocked_shape(2, 16, 4, 4, 0), np.float32), 0)
    with pytest.raises(ValueError, match="blocked input"):
        nchw.scale_inputs(np.zeros((2, 16), np.float32), np.zeros((2,) + stem.w.shape, np.float32))


@settings(max_examples=50, deadline=None)
@given(N=st.integers(1, 2), C=st.integers(1, 35), H=st.integers(2, 13), W=st.integers(2, 13), k=st.integers(1, 3),
       stride=st.integers(1, 3), pad=st.integers(0, 1), ceil=st.booleans(), is_max=st.booleans(),
       include=st.booleans(), seed=st.integers(0, 2**16))
def test_pool(N, C, H, W, k, stride, pad, ceil, is_max, include, seed):
    if 2 * pad > k or k > H + 2 * pad or k > W + 2 * pad:
        return
    x = np.random.default_rng(seed).standard_normal((N, C, H, W))
    want = (ref.max_pool2d(x, k, stride, pad, ceil_mode=ceil) if is_max else
            ref.avg_pool2d(x, k, stride, pad, ceil_mode=ceil, count_include_pad=include))
    yb = np.empty(B.blocked_shape(N, C, *want.shape[2:], 1), np.float32)
    FAST.pool(_blocked(x, 2), 2, yb, 1, is_max, (k, k), (stride, stride), (pad, pad), include, 2)
    assert _rel(_nchw(yb, 1, C), want) < 1e-6


@pytest.mark.parametrize("W", [511, 512, 513, 700])
def test_max_pool_wide_rows(W):
    """Rows up to 512 pixels take the separable max pool, wider ones the direct loop: both right."""
    x = np.random.default_rng(W).standard_normal((1, 20, 5, W))
    x[0, 17, 2, W - 1] = np.nan
    want = ref.max_pool2d(x, 3, 2, 1, ceil_mode=True)
    yb = np.empty(B.blocked_shape(1, 20, *want.shape[2:], 1), np.float32)
    FAST.pool(_blocked(x, 1), 1, yb, 1, True, (3, 3), (2, 2), (1, 1), True, 2)
    y = _nchw(yb, 1, 20)
    assert np.array_equal(np.isnan(y), np.isnan(want))
    assert _rel(np.nan_to_num(y), np.nan_to_num(want)) < 1e-6


@pytest.mark.parametrize("act", [3, 4])
def test_silu_and_sigmoid_epilogues_hold_float_accuracy(act):
    """The exp of the SiLU / sigmoid epilogue (blocked.h b_vexpneg) value by value, through an identity
    1x1 conv (exact sums) and the residual add: within 1e-6 relative of float64 from -100 to 100 (past
    the clamp at |v| = 87 too), NaN kept."""
    v = np.concatenate([np.linspace(-100, 100, 20011), np.linspace(-3, 3, 6007), [0.0, -0.0, 1e-30, -1e-30]])
    v = v.astype(np.float32).astype(np.float64)
    C, W = 16, v.size // 16 + 1
    x = np.zeros((1, C, 1, W))
    x.reshape(-1)[:v.size] = v
    cw = B.ConvWeights(np.eye(C, dtype=np.float32).reshape(C, C, 1, 1), None, (1, 1), (0, 0), (1, 1))
    for run in ("conv", "add"):
        if run == "add":                # a NaN stays one lane's (the conv would sum it into all 16)
            x[0, 5, 0, 3] = np.nan
        want = x / (1 + np.exp(-x)) if act == 3 else 1 / (1 + np.exp(-x))
        yb = np.empty(B.blocked_shape(1, C, 1, W, 0), np.float32)
        if run == "conv":
            FAST.conv(_blocked(x, 0), 0, cw, yb, 0, None, 0, act, 2)
        else:
            FAST.add(_blocked(x, 0), 0, _blocked(np.zeros_like(x), 0), 0, yb, 0, act, 2)
        y = _nchw(yb, 0, C)
        assert np.array_equal(np.isnan(y), np.isnan(want)), run
        ok = ~np.isnan(want) & (np.abs(want) > 1e-30)
        err = np.abs(y[ok] - want[ok]) / np.abs(want[ok])
        assert err.max() < 1e-6, (run, err.max(), x[ok][np.argmax(err)])


def test_pool_keeps_nan_and_small_ops():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 21, 6, 5))
    x[1, 3, 2, 2] = np.nan
    yb = np.empty(B.blocked_shape(2, 21, 3, 3, 0), np.float32)
    FAST.pool(_blocked(x, 0), 0, yb, 0, True, (3, 3), (2, 2), (1, 1), True, 2)
    y = _nchw(yb, 0, 21)
    assert np.isnan(y[1, 3]).sum() >= 1 and not np.isnan(np.delete(y.reshape(42, -1), 24, axis=0)).any()
    # global mean, SE scale, add
    xb = _blocked(x, 1)
    g = np.empty((2, 32), np.float32)
    FAST.global_avg_pool(xb, 1, g, 2)
    assert _rel(g[:, :21][~np.isnan(x.mean(axis=(2, 3)))], x.mean(axis=(2, 3))[~np.isnan(x.mean(axis=(2, 3)))]) < 1e-6
    z = np.nan_to_num(x)
    s = rng.standard_normal((2, 32)).astype(np.float32)
    yb = np.empty(B.blocked_shape(2, 21, 6, 5, 2), np.float32)
    FAST.scale_channels(_blocked(z, 1), 1, s, yb, 2, 2)
    assert _rel(_nchw(yb, 2, 21), z * s[:, :21, None, None]) < 1e-6
    FAST.add(_blocked(z, 1), 1, _blocked(2 * z, 0), 0, yb, 2, 1, 2)
    assert _rel(_nchw(yb, 2, 21), np.maximum(3 * z, 0)) < 1e-6


TILES = [(4, 7), (4, 6), (4, 1), (3, 9), (3, 2), (2, 14), (2, 5), (1, 14), (1, 1)]
FLAT_TILES = [(4, 6), (4, 3), (3, 8), (3, 1), (2, 8), (2, 5), (1, 8), (1, 1)]     # rows joined


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 2), C=st.integers(1, 60), Kb=st.integers(1, 11),
       H=st.integers(1, 20), R=st.sampled_from([1, 3]), stride=st.integers(1, 2), dil=st.integers(1, 2),
       act=st.integers(0, 4), residual=st.booleans(), seed=st.integers(0, 2**16))
def test_every_register_tile_gives_the_same_bits(N, C, Kb, H, R, stride, dil, act, residual, seed):
    """Conv.set_tile: each tile, row or flat (a band's rows joined end to end), its last group of
    fewer blocks where kb does not divide the output blocks, and its chunking of the reduction reduce
    every output in one order, so a fixed tile gives the cost model's result exactly, and both match
    the reference."""
    rng = np.random.default_rng(seed)
    K = 16 * Kb - int(rng.integers(0, 16))                  # Kb output blocks, a partial last one
    pad = dil * (R // 2)
    x64 = rng.standard_normal((N, C, H, H))
    x = _blocked(x64, pad)
    w = (rng.standard_normal((K, C, R, R)) / np.sqrt(C * R * R)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    cw = B.ConvWeights(w, b, (stride, stride), (pad, pad), (dil, dil))
    P = (H + 2 * pad - dil * (R - 1) - 1) // stride + 1
    res = _blocked(rng.standard_normal((N, K, P, P)), 0) if residual else None
    base = np.full(B.blocked_shape(N, K, P, P, 1), np.nan, np.float32)
    FAST.Conv(x, pad, cw, base, 1, res, 0, act)(2)
    want = _act64(ref.conv2d(x64, w, b, stride=stride, padding=pad, dilation=dil)
                  + (_nchw(res, 0, K) if residual else 0), act)
    assert _rel(_nchw(base, 1, K), want) < 1e-5
    for flat, tiles in ((False, TILES), (True, FLAT_TILES)):
        for tile in tiles:
            for cbc in (0, 1, 2):       # chunks of one and two input blocks: y carries the partial sums
                y = np.full_like(base, np.nan)
                step = FAST.Conv(x, pad, cw, y, 1, res, 0, act)
                step.set_tile(*tile, cbc=cbc, flat=flat)
                step(2)
                assert step.tile == (tile[0], tile[1] if flat else min(tile[1], P)) and step.flat == flat
                assert step.chunk == min(cbc or step.chunk, B.blocks(C))
                assert np.array_equal(y, base), (tile, flat, cbc)


def test_bad_tiles_are_refused():
    xb = np.zeros(B.blocked_shape(1, 16, 5, 5, 0), np.float32)
    step = FAST.Conv(xb, 0, B.ConvWeights(np.ones((48, 16, 1, 1), np.float32), None, (1, 1), (0, 0), (1, 1)),
                     np.zeros(B.blocked_shape(1, 48, 5, 5, 0), np.float32), 0)
    assert step.tile is None
    for bad, match in (((3, 10), "np must be 1 .. 9"), ((0, 4), "together"), ((5, 1), "kb must be"),
                       ((0, 1), "together"), ((4, 0), "together")):
        with pytest.raises(ValueError, match=match):
            step.set_tile(*bad)
    step.set_tile(3, 9)
    step(1)
    assert step.tile == (3, 5)
    step.set_tile(0, 0)
    step(1)
    assert step.tile is not None
    with pytest.raises(ValueError, match="costs must be one of"):
        step.set_tile(costs="arm")
    with pytest.raises(ValueError, match="cbc must be >= 0"):
        step.set_tile(cbc=-1)
    with pytest.raises(ValueError, match=r"np must be 1 .. 6 with kb=4 \(flat\)"):
        FAST.Conv(xb, 0, B.ConvWeights(np.ones((64, 16, 1, 1), np.float32), None, (1, 1), (0, 0), (1, 1)),
                  np.zeros(B.blocked_shape(1, 64, 5, 5, 0), np.float32), 0).set_tile(4, 7, flat=True)
    with pytest.raises(ValueError, match="fixed with their kb and np"):
        step.set_tile(flat=True)


def test_each_vendor_constants_pick_their_measured_tile():
    """The model's machine constants reach the plan: on a 14-pixel row the Intel constants (cheap
    spill, broadcasts that cost) pick 4 x 7 and the AMD ones (costly spill) 2 x 14, as measured by
    benchmarks.tiles on each; the bits are the same."""
    rng = np.random.default_rng(3)
    x = _blocked(rng.standard_normal((1, 64, 14, 14)), 0)
    cw = B.ConvWeights(rng.standard_normal((64, 64, 1, 1)).astype(np.float32), None, (1, 1), (0, 0), (1, 1))
    outs = {}
    for vendor, tile in (("intel", (4, 7)), ("amd", (2, 14))):
        outs[vendor] = np.zeros(B.blocked_shape(1, 64, 14, 14, 0), np.float32)
        step = FAST.Conv(x, 0, cw, outs[vendor], 0)
        step.set_tile(costs=vendor)
        step(2)
        assert step.tile == tile, vendor
    assert np.array_equal(outs["intel"], outs["amd"])


def test_bad_arguments_are_refused():
    xb = np.zeros(B.blocked_shape(1, 16, 5, 5, 0), np.float32)
    cw = B.ConvWeights(np.ones((16, 16, 3, 3), np.float32), None, (1, 1), (1, 1), (1, 1))
    yb = np.zeros(B.blocked_shape(1, 16, 5, 5, 0), np.float32)
    with pytest.raises(ValueError, match="halo"):
        FAST.conv(xb, 0, cw, yb, 0, None, 0, 0, 1)
    with pytest.raises(TypeError, match="float32"):
        FAST.conv(xb.astype(np.float64), 1, cw, yb, 0, None, 0, 0, 1)
    with pytest.raises(ValueError, match="act"):
        FAST.conv(np.zeros(B.blocked_shape(1, 16, 5, 5, 1), np.float32), 1, cw, yb, 0, None, 0, 7, 1)
    with pytest.raises(ValueError, match="do not fit"):
        FAST.conv(np.zeros(B.blocked_shape(1, 32, 5, 5, 1), np.float32), 1, cw, yb, 0, None, 0, 0, 1)
    ww = B.WinogradWeights(np.ones((16, 16, 3, 3), np.float32), None, (1, 1), 4)
    with pytest.raises(ValueError, match="halo"):
        FAST.winograd(xb, 0, ww, yb, 0, None, 0, 0, 1)
    with pytest.raises(ValueError, match="do not fit"):
        FAST.winograd(np.zeros(B.blocked_shape(1, 32, 5, 5, 1), np.float32), 1, ww, yb, 0, None, 0, 0, 1)
    with pytest.raises(ValueError, match="reads past"):
        FAST.winograd(np.zeros(B.blocked_shape(1, 16, 4, 5, 1), np.float32), 1, ww, yb, 0, None, 0, 0, 1)
    with pytest.raises(ValueError, match="3x3"):
        B.WinogradWeights(np.ones((16, 16, 5, 5), np.float32), None, (2, 2), 4)
    with pytest.raises(ValueError, match="m must be"):
        B.WinogradWeights(np.ones((16, 16, 3, 3), np.float32), None, (1, 1), 3)


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_thread_count_does_not_change_the_result(threads):
    rng = np.random.default_rng(5)
    x = _blocked(rng.standard_normal((2, 40, 15, 15)), 1)
    cw = B.ConvWeights(rng.standard_normal((70, 40, 3, 3)).astype(np.float32), None, (1, 1), (1, 1), (1, 1))
    ref_y = np.empty(B.blocked_shape(2, 70, 15, 15, 0), np.float32)
    FAST.conv(x, 1, cw, ref_y, 0, None, 0, 0, 1)
    y = np.empty_like(ref_y)
    FAST.conv(x, 1, cw, y, 0, None, 0, 0, threads)
    assert np.array_equal(y, ref_y)
    for m in (2, 4):
        ww = B.WinogradWeights(rng.standard_normal((70, 40, 3, 3)).astype(np.float32), None, (1, 1), m)
        FAST.winograd(x, 1, ww, ref_y, 0, None, 0, 0, 1)
        FAST.winograd(x, 1, ww, y, 0, None, 0, 0, threads)
        assert np.array_equal(y, ref_y)
