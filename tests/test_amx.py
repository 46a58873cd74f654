"""The AMX tile kernel of the inference plan (kernels/cpu/amx.h, kernels/amx.py): its convolutions
against the float64 reference over random geometries (odd channel counts, strides, dilation,
padding, kernels up to 7x7, residuals, every activation, folded input scales), the same bits for
every thread count, IEEE specials, bad input; the weight packing everywhere. The kernel's tests skip
on CPUs (or ISA variants) without AMX."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import amx as A
from kernels import blocked as B
from kernels import reference as ref
from kernels.cpu import load

from .test_blocked import _act64, _blocked, _nchw, _rel

AMX = load("amx")
FAST = load("blocked")
needs_amx = pytest.mark.skipif(not AMX.usable(), reason="no AMX tiles here (CPU, OS or ISA variant)")


def _case(rng, N, C, K, H, W, R, S, stride, pad, dil, residual):
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C, R, S)) / np.sqrt(C * R * S)
    b = rng.standard_normal(K)
    r64 = ref.conv2d(x, w, b, stride=stride, padding=pad, dilation=dil)
    res = rng.standard_normal((K and N, K) + r64.shape[2:]) if residual else None
    aw = A.AmxWeights(w.astype(np.float32), b.astype(np.float32), stride, pad, dil)
    return x, aw, r64, res


def _magnitude(x, aw, res, stride, pad, dil):
    """The float64 sum of the absolute values of every term of each output: the scale of a float
    error bound where a sum cancels (a single output of a short reduction can be 10x smaller)."""
    w = np.abs(aw.exact.w.transpose(0, 5, 1, 4, 2, 3).reshape(B.blocks(aw.K) * 16, -1, aw.R, aw.S)[:aw.K, :aw.C])
    m = ref.conv2d(np.abs(x), w.astype(np.float64), np.abs(aw.bias[:aw.K]), stride=stride, padding=pad, dilation=dil)
    return m + (np.abs(res) if res is not None else 0)


def _within(y, want, mag):
    """bf16x3's error bound (amx.h): each term off by at most ~3 x 2^-16 of its size (2^-16 per part
    left out), plus float32 accumulation; and norm-wise 1e-5 of the terms' size."""
    assert np.all(np.abs(y - want) <= 6e-5 * mag + 1e-30)
    assert np.linalg.norm(y - want) <= 1e-5 * np.linalg.norm(mag)


def _run(xb, xh, aw, shape, res, act, nthreads, s=None):
    yb = np.full(B.blocked_shape(*shape, 1), np.nan, np.float32)
    call = AMX.Conv(xb, xh, aw, yb, 1, None if res is None else _blocked(res, 1), 1, act)
    if s is not None:
        call.scale_inputs(s)
    call(nthreads)
    return yb, call


@needs_amx
@settings(max_examples=80, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 100), K=st.integers(1, 90), H=st.integers(1, 20), W=st.integers(1, 20),
       R=st.sampled_from([1, 2, 3, 5, 7]), S=st.sampled_from([1, 3, 5]), sh=st.integers(1, 3), sw=st.integers(1, 3),
       dil=st.integers(1, 2), pt=st.integers(0, 3), pl=st.integers(0, 3), act=st.integers(0, 4),
       residual=st.booleans(), extra_halo=st.integers(0, 1), seed=st.integers(0, 2**16))
def test_amx_conv_matches_the_reference(N, C, K, H, W, R, S, sh, sw, dil, pt, pl, act, residual, extra_halo, seed):
    """Within bf16x3's bound of the float64 reference (amx.h: norm-wise it measures ~3e-6 where the
    sums do not cancel), the frame zero, and the same bits for 1, 2 and 3 threads."""
    if dil * (R - 1) + 1 > H + 2 * pt or dil * (S - 1) + 1 > W + 2 * pl:
        return
    rng = np.random.default_rng(seed)
    x, aw, r64, res = _case(rng, N, C, K, H, W, R, S, (sh, sw), (pt, pl), (dil, dil), residual)
    want = _act64(r64 + (res if residual else 0), act)
    xh = max(pt, pl) + extra_halo
    xb = _blocked(x, xh)
    y1, call = _run(xb, xh, aw, want.shape, res, act, 1)
    _within(_nchw(y1, 1, K), want, _magnitude(x, aw, res, (sh, sw), (pt, pl), (dil, dil)))
    assert not np.isnan(y1).any()               # every lane and the frame written
    assert np.all(y1[:, :, 0] == 0) and np.all(y1[:, :, -1] == 0) and np.all(y1[:, :, :, 0] == 0) \
        and np.all(y1[:, :, :, -1] == 0)
    for nt in (2, 3):
        assert np.array_equal(_run(xb, xh, aw, want.shape, res, act, nt)[0], y1)
    # the NumPy definition is the float32 convolution itself
    y64 = np.empty(B.blocked_shape(*want.shape, 0))
    A.conv(xb.astype(np.float64), xh, aw, y64, 0, None if res is None else _blocked(res, 0), 0, act)
    assert _rel(_nchw(y64, 0, K), want) < 1e-5


@needs_amx
@pytest.mark.parametrize("N, C, K, H, R, stride", [(2, 512, 512, 7, 3, 1), (1, 2048, 512, 7, 1, 1),
                                                    (1, 256, 1024, 14, 1, 2), (3, 64, 64, 56, 3, 1),
                                                    (1, 128, 128, 56, 3, 2), (8, 1024, 1024, 7, 1, 1),
                                                    (5, 512, 512, 7, 3, 1)])
def test_amx_conv_on_the_zoo_shapes(N, C, K, H, R, stride):
    """The partitions the plan meets (output groups, bands, several images per item, weights in
    chunks of input channels with partial sums between them), on 2 threads."""
    rng = np.random.default_rng(C + H)
    pad = R // 2
    x, aw, r64, res = _case(rng, N, C, K, H, H, R, R, (stride, stride), (pad, pad), (1, 1), True)
    want = _act64(r64 + res, 1)
    xb = _blocked(x, pad)
    y2, call = _run(xb, pad, aw, want.shape, res, 1, 2)
    assert _rel(_nchw(y2, 1, K), want) < 1e-5
    assert np.array_equal(_run(xb, pad, aw, want.shape, res, 1, 1)[0], y2)
    p = call.partition
    assert p["band"] * p["bands"] >= want.shape[2] > p["band"] * (p["bands"] - 1)
    assert p["blocks"] * p["groups"] >= B.blocks(K) and p["images"] * p["image_groups"] >= N
    assert p["chunk"] * (-(-((C + 31) // 32) // p["chunk"])) >= (C + 31) // 32


@needs_amx
@settings(max_examples=30, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 70), K=st.integers(1, 40), H=st.integers(1, 12),
       R=st.sampled_from([1, 3]), stride=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_amx_input_scales(N, C, K, H, R, stride, seed):
    """scale_inputs: conv(x * s[n, c]) with the scale applied as the input is converted (a folded
    squeeze-and-excitation scale), the same bits for every thread count."""
    rng = np.random.default_rng(seed)
    pad = R // 2
    x, aw, _, _ = _case(rng, N, C, K, H, H, R, R, (stride, stride), (pad, pad), (1, 1), False)
    s = rng.uniform(0, 1, (N, C))
    w = aw.exact.w.transpose(0, 5, 1, 4, 2, 3).reshape(B.blocks(K) * 16, -1, R, R)[:K, :C]
    want = ref.conv2d(x * s[:, :, None, None], w.astype(np.float64), aw.bias[:K], stride=stride, padding=pad)
    sp = np.zeros((N, B.blocks(C) * 16), np.float32)
    sp[:, :C] = s
    xb = _blocked(x, pad)
    y1, _ = _run(xb, pad, aw, want.shape, None, 0, 1, sp)
    _within(_nchw(y1, 1, K), want, _magnitude(x * s[:, :, None, None], aw, None, stride, pad, 1))
    assert np.array_equal(_run(xb, pad, aw, want.shape, None, 0, 2, sp)[0], y1)


@needs_amx
@pytest.mark.parametrize("special", [np.inf, -np.inf, 3.4e38])
def test_infinite_inputs_rerun_in_float32(special):
    """An input that is infinite (or rounds to an infinite bf16) has no bf16 split; the call reruns in
    float32 FMAs and gives exactly the float32 kernel's result, Inf and NaN as IEEE makes them."""
    rng = np.random.default_rng(1)
    x, aw, r64, res = _case(rng, 2, 40, 20, 9, 9, 3, 3, (1, 1), (1, 1), (1, 1), True)
    x[1, 7, 4, 4] = special
    xb = _blocked(x, 1)
    y, _ = _run(xb, 1, aw, r64.shape, res, 0, 2)
    y32 = np.full_like(y, np.nan)
    FAST.conv(xb, 1, aw.exact, y32, 1, _blocked(res, 1), 1, 0, 2)
    assert np.array_equal(y, y32, equal_nan=True)
    assert np.isinf(special) != np.isfinite(_nchw(y, 1, 20)[1, :, 3:6, 3:6]).all()
    assert np.isfinite(_nchw(y, 1, 20)[0]).all()


@needs_amx
def test_nan_inputs_propagate():
    rng = np.random.default_rng(2)
    x, aw, r64, _ = _case(rng, 1, 33, 17, 8, 8, 3, 3, (1, 1), (1, 1), (1, 1), False)
    x[0, 3, 2, 5] = np.nan
    y = _nchw(_run(_blocked(x, 1), 1, aw, r64.shape, None, 0, 2)[0], 1, 17)
    reach = np.zeros((8, 8), bool)
    reach[1:4, 4:7] = True
    assert np.isnan(y[0][:, reach]).all() and not np.isnan(y[0][:, ~reach]).any()


@needs_amx
def test_bad_input_is_refused():
    rng = np.random.default_rng(3)
    x, aw, r64, _ = _case(rng, 1, 20, 20, 6, 6, 3, 3, (1, 1), (1, 1), (1, 1), False)
    xb, yb = _blocked(x, 1), np.zeros(B.blocked_shape(1, 20, 6, 6, 1), np.float32)
    other = A.AmxWeights(rng.standard_normal((20, 40, 3, 3)).astype(np.float32), None, (1, 1), (1, 1), (1, 1))
    with pytest.raises(ValueError, match="weights"):
        AMX.Conv(xb, 1, other, yb, 1)
    with pytest.raises(TypeError, match="x"):
        AMX.Conv(xb.astype(np.float64), 1, aw, yb, 1)
    with pytest.raises(ValueError, match="act"):
        AMX.Conv(xb, 1, aw, yb, 1, act=7)
    with pytest.raises(ValueError, match="halo"):
        AMX.Conv(_blocked(x, 0), 0, aw, yb, 1)
    call = AMX.Conv(xb, 1, aw, yb, 1)
    with pytest.raises(ValueError, match="nthreads"):
        call(0)
    with pytest.raises(TypeError, match="s must"):
        call.scale_inputs(np.ones((1, 32)))
    with pytest.raises(ValueError, match="s must"):
        call.scale_inputs(np.ones((2, 32), np.float32))


def test_weights_pack_as_bf16_pairs():
    """hi + lo is the weight to 2^-16; each lands where TDPBF16PS reads it:
    w[kt, c2, r*S + s, part, i, 2*o + e] = part of weight[kt*16 + o, c2*32 + 2*i + e, r, s]."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((37, 45, 3, 2)).astype(np.float32)
    aw = A.AmxWeights(w, None, (2, 1), (1, 0), (1, 1))
    assert aw.w.shape == (3, 2, 6, 2, 16, 32) and aw.w.ctypes.data % 64 == 0
    v = A.bf16_value(aw.w[:, :, :, 0]).astype(np.float64) + A.bf16_value(aw.w[:, :, :, 1])
    k, c, r, s = 29, 41, 2, 1
    got = v[k // 16, c // 32, r * 2 + s, (c % 32) // 2, 2 * (k % 16) + c % 2]
    assert abs(got - w[k, c, r, s]) <= 2 ** -16 * abs(w[k, c, r, s])
    full = v.reshape(3, 2, 3, 2, 16, 16, 2).transpose(0, 5, 1, 4, 6, 2, 3).reshape(48, 64, 3, 2)
    assert np.all(full[37:] == 0) and np.all(full[:, 45:] == 0)
    assert np.all(np.abs(full[:37, :45] - w) <= 2 ** -16 * np.abs(w))
    # to nearest: 1 + 2^-9 + 2^-20 -> 1 and 2^-9 (bf16 keeps 8 bits); 1 + 2^-8 + 2^-20 rounds up
    hi, lo = A.bf16_split(np.array([-3.0, 1 + 2 ** -9 + 2 ** -20, 1 + 2 ** -8 + 2 ** -20], np.float32))
    assert list(A.bf16_value(hi)) == [-3.0, 1.0, 1 + 2 ** -7]
    assert list(A.bf16_value(lo)) == [0.0, 2 ** -9, -2 ** -8]


def test_weights_the_tiles_cannot_take_are_refused():
    with pytest.raises(ValueError, match="taps"):
        A.AmxWeights(np.ones((4, 4, 9, 9), np.float32), None, (1, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match="stride"):
        A.AmxWeights(np.ones((4, 4, 3, 3), np.float32), None, (5, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match="finite"):
        A.AmxWeights(np.full((4, 4, 1, 1), np.inf, np.float32), None, (1, 1), (0, 0), (1, 1))


def test_the_switch_and_where_the_kernel_cannot_run(monkeypatch):
    monkeypatch.setenv("CONVFORGE_AMX", "0")
    assert not A.available()
    monkeypatch.setenv("CONVFORGE_AMX", "1")
    assert A.available() == AMX.usable()
    if not AMX.usable():
        aw = A.AmxWeights(np.ones((16, 16, 1, 1), np.float32), None, (1, 1), (0, 0), (1, 1))
        buf = np.zeros(B.blocked_shape(1, 16, 2, 2, 0), np.float32)
        with pytest.raises(RuntimeError, match="AMX"):
            AMX.Conv(buf, 0, aw, buf.copy(), 0)


@needs_amx
@pytest.mark.parametrize("N, C, K, H, R", [(4, 300, 70, 7, 3), (6, 64, 90, 11, 1)])
def test_every_partition_gives_the_same_bits(N, C, K, H, R):
    """set_partition (the plan's tuner measures these): bands, images per item, output groups and
    weight chunks change the time, never a bit; bad partitions are refused naming the argument."""
    rng = np.random.default_rng(N * C)
    x, aw, r64, res = _case(rng, N, C, K, H, H, R, R, (1, 1), (R // 2, R // 2), (1, 1), True)
    xb, rb = _blocked(x, 1), _blocked(res, 1)
    outs = []
    for part in [(0, 0, 0, 0), (H, N, 0, 1), (H, N // 2, 4, 2), (H, 2, 0, 0), ((H + 1) // 2, 1, 0, 0), (1, 1, 4, 3)]:
        yb = np.full(B.blocked_shape(*r64.shape, 1), np.nan, np.float32)
        call = AMX.Conv(xb, 1, aw, yb, 1, rb, 1, 1)
        call.set_partition(*part)
        call(2)
        p = call.partition
        assert (not part[0] or p["band"] == part[0]) and (not part[1] or p["images"] == part[1])
        outs.append(yb)
    assert all(np.array_equal(o, outs[0]) for o in outs[1:])
    _within(_nchw(outs[0], 1, K), _act64(r64 + res, 1), _magnitude(x, aw, res, (1, 1), (R // 2, R // 2), (1, 1)))
    call = AMX.Conv(xb, 1, aw, np.zeros(B.blocked_shape(*r64.shape, 1), np.float32), 1)
    for bad, word in [((H + 1, 0, 0, 0), "band"), ((H - 1, 2, 0, 0), "band"), ((0, N + 1, 0, 0), "images"),
                      ((0, 0, 3, 0), "blocks"), ((-1, 0, 0, 0), "band")]:
        with pytest.raises(ValueError, match=word):
            call.set_partition(*bad)


@needs_amx
@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 2), C=st.integers(1, 6), K=st.integers(1, 70), H=st.integers(7, 30),
       R=st.sampled_from([3, 5, 7, 11]), stride=st.integers(1, 4), dil=st.integers(1, 2), act=st.integers(0, 2),
       seed=st.integers(0, 2**16))
def test_amx_stem_reads_nchw(N, C, K, H, R, stride, dil, act, seed):
    """A stem on zero-padded NCHW input: its im2col rows (c, r, s) are the reduction of one 1x1 tap
    (AlexNet's 11x11/4, ResNet's 7x7/2, the 3x3/2 of the MobileNets), within bf16x3's bound, the same
    bits for every thread count."""
    pad = R // 2 * dil
    if dil * (R - 1) + 1 > H + 2 * pad:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, H))
    w = rng.standard_normal((K, C, R, R))
    want = _act64(ref.conv2d(x, w, stride=stride, padding=pad, dilation=dil), act)
    aw = A.AmxWeights(w.astype(np.float32), None, (stride, stride), (pad, pad), (dil, dil), nchw_input=True)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).astype(np.float32)
    outs = []
    for nt in (1, 2, 3):
        yb = np.full(B.blocked_shape(N, K, *want.shape[2:], 1), np.nan, np.float32)
        AMX.Conv(xp, pad, aw, yb, 1, None, 0, act)(nt)
        outs.append(yb)
    assert all(np.array_equal(o, outs[0]) for o in outs[1:]) and not np.isnan(outs[0]).any()
    mag = ref.conv2d(np.abs(x), np.abs(w.astype(np.float32)).astype(np.float64), stride=stride, padding=pad,
                     dilation=dil)
    _within(_nchw(outs[0], 1, K), want, mag)
    xp[0, 0, pad, pad] = np.inf            # read by output (0, 0): the float32 rerun, exactly the FMA stem
    yb, y32 = (np.full(B.blocked_shape(N, K, *want.shape[2:], 1), np.nan, np.float32) for _ in range(2))
    AMX.Conv(xp, pad, aw, yb, 1, None, 0, act)(2)
    FAST.conv(xp, pad, aw.exact, y32, 1, None, 0, act, 2)
    assert np.array_equal(yb, y32, equal_nan=True)


def test_which_layers_the_plan_gives_the_tiles():
    assert A.takes(3, 3, 2, 2) and A.takes(7, 7, 1, 1) and not A.takes(9, 9, 1, 1) and not A.takes(1, 1, 5, 1)
    assert A.takes(11, 11, 4, 4, C=3, nchw_input=True) and not A.takes(17, 17, 1, 1, C=3, nchw_input=True)
    assert not A.takes(7, 7, 1, 1, C=30, nchw_input=True)          # an im2col row past 1024 channels
    assert A.faster(32, 24, 1, 1) and A.faster(64, 3, 7, 7, nchw_input=True)
    assert not A.faster(96, 16, 1, 1) and not A.faster(16, 32, 3, 3)   # one block of 16 on a side
    assert not A.faster(32, 3, 3, 3, nchw_input=True)              # the MobileNets' stem keeps FMAs


@needs_amx
def test_infinite_input_with_a_folded_scale_reruns_scaled():
    """The float32 rerun of a step with scale_inputs folds the same scale (into per-image weights,
    made at the first rerun): exactly the FMA kernel's scaled result."""
    rng = np.random.default_rng(5)
    x, aw, r64, _ = _case(rng, 2, 40, 24, 6, 6, 1, 1, (1, 1), (0, 0), (1, 1), False)
    s = np.zeros((2, 48), np.float32)
    s[:, :40] = rng.uniform(0, 1, (2, 40))
    x[1, 3, 2, 2] = np.inf
    xb = _blocked(x, 0)
    y, _ = _run(xb, 0, aw, r64.shape, None, 0, 2, s)
    y32 = np.full_like(y, np.nan)
    f = FAST.Conv(xb, 0, aw.exact, y32, 1)
    f.scale_inputs(s, B.aligned_empty((2,) + aw.exact.w.shape))
    f(2)
    assert np.array_equal(y, y32, equal_nan=True) and np.isinf(_nchw(y, 1, 24)[1, :, 2, 2]).any()
