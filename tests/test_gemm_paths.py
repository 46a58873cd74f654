"""The GEMM under im2col and pointwise (kernels/cpu/gemm.h) at its edges, through kernels.conv2d.

The shapes are drawn around the GEMM's blocking: output channels per group (the GEMM's M) around
multiples of the micro-tile's GEMM_MR = 6 rows, output pixels (N) around multiples of the panel
width (64 float32 / 32 float64 columns) and of the column blocks, Cg*R*S (k) beyond the k block
(384 float32 / 192 float64) so several k blocks accumulate, tiny and large sizes, groups, strides,
padding and dilation, both dtypes and every epilogue. Every case is also run at 1, 2 and 5 threads,
which moves it between the per-tile and the whole-image work splits: the outputs must be identical.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels

from .conftest import TOL, rel_error

THREADS = (1, 2, 5)


def run_threads(x, w, b, **conv):
    """conv2d at every thread count of THREADS; asserts they agree bit for bit, returns the output."""
    old = kernels.get_num_threads()
    try:
        ys = []
        for n in THREADS:
            kernels.set_num_threads(n)
            ys.append(kernels.conv2d(x, w, b, **conv))
    finally:
        kernels.set_num_threads(old)
    for n, y in zip(THREADS[1:], ys[1:]):
        assert np.array_equal(ys[0], y, equal_nan=True), f"{n} threads differ from {THREADS[0]}"
    return ys[0]


def check(case):
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    G = case["groups"]
    x = rng.standard_normal((case["N"], case["Cg"] * G, case["H"], case["W"])).astype(dt)
    w = rng.standard_normal((case["Kg"] * G, case["Cg"], case["R"], case["S"])).astype(dt)
    b = rng.standard_normal(case["Kg"] * G).astype(dt) if case["bias"] else None
    conv = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=G,
                activation=case["activation"])
    y = run_threads(x, w, b, algorithm=case["algorithm"], **conv)
    ref = kernels.reference.conv2d(x, w, b, **conv)
    assert y.dtype == x.dtype and y.shape == ref.shape
    # ||y - ref|| / ||ref||, except where the sums cancel (a few outputs of a long reduction can come
    # out far below their terms): the denominator is then the size a sum of k random terms has,
    # ||conv(|x|, |w|) + |b||| / sqrt(k), which is what float rounding is proportional to
    conv_abs = dict(conv, activation=None)
    size = kernels.reference.conv2d(np.abs(x), np.abs(w), None if b is None else np.abs(b), **conv_abs)
    k = case["Cg"] * case["R"] * case["S"]
    denom = max(np.linalg.norm(np.asarray(ref, np.float64)), np.linalg.norm(size) / np.sqrt(k))
    err = np.linalg.norm(kernels.reference.to_host64(y) - np.asarray(ref, np.float64)) / max(denom, 1e-300)
    assert err < TOL[dt], f"rel error {err:.3g} for {case}"


def _k_channels(draw, RS, dtype):
    """Input channels per group so that k = Cg*R*S is tiny, near one k block, or several blocks."""
    kc = 384 if dtype == np.float32 else 192
    k = draw(st.one_of(st.integers(1, 12), st.integers(kc - 8, kc + 8), st.integers(kc + 1, 3 * kc + 5)))
    return max(1, -(-k // RS))


@st.composite
def im2col_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    R, S = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, dh * (R - 1) + 1 - 2 * ph), 30))
    W = draw(st.integers(max(1, dw * (S - 1) + 1 - 2 * pw), 45))
    return dict(algorithm="im2col", dtype=dtype, N=draw(st.integers(1, 3)),
                groups=draw(st.sampled_from([1, 1, 2, 3])), Kg=draw(st.integers(1, 27)),
                Cg=_k_channels(draw, R * S, dtype), H=H, W=W, R=R, S=S,
                stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                bias=draw(st.booleans()), activation=draw(st.sampled_from([None, "relu", "relu6"])),
                seed=draw(st.integers(0, 2**31 - 1)))


@st.composite
def pointwise_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return dict(algorithm="pointwise", dtype=dtype, N=draw(st.integers(1, 3)),
                groups=draw(st.sampled_from([1, 1, 2, 4])), Kg=draw(st.integers(1, 40)),
                Cg=_k_channels(draw, 1, dtype), H=draw(st.integers(1, 24)), W=draw(st.integers(1, 40)),
                R=1, S=1, stride=(draw(st.sampled_from([1, 1, 2, 3])), draw(st.sampled_from([1, 1, 2]))),
                padding=0, dilation=1,
                bias=draw(st.booleans()), activation=draw(st.sampled_from([None, "relu", "relu6"])),
                seed=draw(st.integers(0, 2**31 - 1)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(im2col_case())
def test_im2col_gemm_edges(case):
    check(case)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pointwise_case())
def test_pointwise_gemm_edges(case):
    check(case)


# Fixed shapes that reach the blocking the random ones rarely do: many column blocks and several k
# blocks at once, row blocks of the whole-image split (few pixels, many output channels), a single
# pixel, a single output channel, and the shapes of the benchmark's late layers at reduced size.
FIXED = [
    # algorithm, N, groups, Kg, Cg, H, W, R, S, stride, padding
    ("im2col", 1, 1, 70, 96, 33, 37, 3, 3, 1, 1),       # N = 1221: column blocks; k = 864: 3 k blocks
    ("im2col", 1, 1, 131, 130, 7, 7, 3, 3, 1, 1),       # 7x7 output, M split by rows, k = 1170
    ("im2col", 2, 1, 64, 3, 61, 61, 7, 7, 2, 3),        # ResNet stem class, k = 147
    ("im2col", 1, 1, 1, 5, 1, 1, 1, 1, 1, 0),           # a single output element
    ("im2col", 1, 2, 7, 200, 9, 9, 2, 2, 1, 0),         # groups with k = 800 each
    ("pointwise", 1, 1, 320, 960, 7, 7, 1, 1, 1, 0),    # mv2.pw7
    ("pointwise", 1, 1, 100, 1000, 7, 7, 1, 1, 2, 0),   # strided, 4x4 output, k = 1000
    ("pointwise", 1, 1, 24, 144, 29, 31, 1, 1, 1, 0),   # mv2.pw56 class, N = 899
    ("pointwise", 2, 1, 70, 65, 40, 40, 1, 1, 1, 0),    # N = 1600: column blocks
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", FIXED, ids=lambda s: "-".join(map(str, s)))
def test_fixed_blocking_shapes(shape, dtype):
    algorithm, N, G, Kg, Cg, H, W, R, S, stride, padding = shape
    for activation in (None, "relu6"):
        check(dict(algorithm=algorithm, dtype=dtype, N=N, groups=G, Kg=Kg, Cg=Cg, H=H, W=W, R=R, S=S,
                   stride=stride, padding=padding, dilation=1, bias=True, activation=activation,
                   seed=Kg * 1000 + Cg))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("algorithm", ["im2col", "pointwise"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_epilogue_propagates_nan_and_inf(algorithm, dtype):
    """The fused bias + ReLU / ReLU6 at the GEMM's store: NaN stays NaN, +-Inf clamp like the
    reference (relu6(+inf) = 6, relu(-inf) = 0)."""
    rng = np.random.default_rng(11)
    R = 1 if algorithm == "pointwise" else 3
    x = rng.standard_normal((1, 7, 9, 70)).astype(dtype)
    w = rng.standard_normal((13, 7, R, R)).astype(dtype)
    w[4] = np.abs(w[4])
    w[5] = -np.abs(w[5])
    x[0, 0, 3, 5] = np.nan
    x[0, :, 6, 60] = np.inf                 # +inf in output channel 4, -inf in 5, NaN in the rest
    b = rng.standard_normal(13).astype(dtype)
    for activation in (None, "relu", "relu6"):
        y = kernels.conv2d(x, w, b, algorithm=algorithm, activation=activation)
        ref = kernels.reference.conv2d(x, w, b, activation=activation)
        assert np.array_equal(np.isnan(y), np.isnan(ref)), activation
        assert np.array_equal(y[np.isinf(ref)], ref[np.isinf(ref)]), activation
        finite = np.isfinite(ref)
        assert np.array_equal(finite, np.isfinite(y)), activation
        assert rel_error(y[finite], ref[finite]) < TOL[dtype]
