"""The depthwise kernel (kernels/cpu/depthwise.pyx + depthwise.h) against the float64 reference, on its
own edge cases: widths around the 16- and 8-lane vector boundaries, every path (3x3 and 5x5 at stride 1
and 2, the general one), row blocks and bands, padding up to the kernel size, channel multipliers,
the fused epilogue with NaN, and bit-identical results for any thread count."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels
from kernels.cpu import depthwise
from kernels.shapes import conv_geometry

from .conftest import TOL, rel_error

DTYPES = (np.float32, np.float64)
ACTS = {None: 0, "relu": 1, "relu6": 2}
# widths at and around one and two vectors of float32 (16 lanes) and float64 (8 lanes)
EDGE_WIDTHS = (1, 2, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49)


def operands(N, C, M, H, W, R, S, dtype, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C * M, 1, R, S)).astype(dtype)
    b = rng.standard_normal(C * M).astype(dtype) if bias else None
    return x, w, b


def run_kernel(x, w, b, nthreads=2, activation=None, **conv):
    """Call the kernel module directly with a given thread count, as kernels.conv2d does."""
    g = conv_geometry(x.shape, w.shape, conv.get("stride", 1), conv.get("padding", 0),
                      conv.get("dilation", 1), x.shape[1])
    y = np.full(g.out_shape, np.nan, dtype=x.dtype)          # every element must be written
    depthwise.conv2d(x, w, b, y, g.sh, g.sw, g.pad_top, g.pad_left, g.dh, g.dw, g.groups,
                     ACTS[activation], nthreads)
    return y


def check(x, w, b, activation=None, **conv):
    ref = kernels.reference.conv2d(x, w, b, groups=x.shape[1], activation=activation, **conv)
    y = kernels.conv2d(x, w, b, groups=x.shape[1], algorithm="depthwise", activation=activation, **conv)
    assert y.dtype == x.dtype and y.shape == ref.shape
    err = rel_error(y, ref)
    assert err < TOL[x.dtype.type], f"rel error {err:.3g}, x {x.shape}, w {w.shape}, {conv}, {activation}"


@st.composite
def depthwise_case(draw):
    # the specialised shapes (3x3 / 5x5, equal strides 1 or 2, no dilation) half of the time
    if draw(st.booleans()):
        R = S = draw(st.sampled_from([3, 5]))
        sh = sw = draw(st.sampled_from([1, 2]))
        dh = dw = 1
    else:
        R, S = draw(st.integers(1, 6)), draw(st.integers(1, 6))
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, R)), draw(st.integers(0, S))
    W = draw(st.sampled_from(EDGE_WIDTHS) | st.integers(1, 70))
    H = draw(st.integers(1, 40))
    # the dilated kernel must fit the padded input
    H = max(H, dh * (R - 1) + 1 - 2 * ph)
    W = max(W, dw * (S - 1) + 1 - 2 * pw)
    return dict(
        N=draw(st.sampled_from([1, 1, 2, 3])), C=draw(st.integers(1, 9)), M=draw(st.integers(1, 3)),
        H=H, W=W, R=R, S=S, dtype=draw(st.sampled_from(DTYPES)), bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)), activation=draw(st.sampled_from(list(ACTS))),
        conv=dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depthwise_case())
def test_random_depthwise_configurations_match_reference(case):
    x, w, b = operands(case["N"], case["C"], case["M"], case["H"], case["W"], case["R"], case["S"],
                       case["dtype"], case["bias"], case["seed"])
    check(x, w, b, activation=case["activation"], **case["conv"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("R, stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
@pytest.mark.parametrize("W", EDGE_WIDTHS)
def test_specialised_paths_at_vector_boundaries(W, R, stride, dtype):
    # H = 19 rows: two full 8-row blocks, a remainder, and blocks that touch the top and bottom padding
    x, w, b = operands(2, 3, 2, 19, W + R // 2, R, R, dtype, True, W * R + stride)
    for activation in ACTS:
        check(x, w, b, activation=activation, stride=stride, padding=R // 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H", range(1, 18))
def test_every_row_block_remainder(H, dtype):
    # P = H output rows: every remainder 1..7 of the 8-row blocks, with and without the edge rows
    x, w, b = operands(1, 4, 1, H, 21, 3, 3, dtype, True, H)
    check(x, w, b, padding=1)
    if H >= 3:
        check(x, w, b, padding=(0, 1))
    x, w, b = operands(1, 4, 1, H + 4, 13, 5, 5, dtype, False, H)
    check(x, w, b, padding=2, stride=2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_few_planes_are_cut_into_row_bands(dtype):
    # one or two planes: the work is cut into bands of rows, which must join up exactly
    for N, C, M, H, R, stride in [(1, 1, 1, 150, 3, 1), (1, 1, 2, 97, 5, 2), (2, 1, 1, 61, 4, 3)]:
        x, w, b = operands(N, C, M, H, 37, R, R, dtype, True, H)
        check(x, w, b, padding=R // 2, stride=stride)


@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_wider_than_the_kernel_and_empty_input_rows(dtype):
    x, w, b = operands(1, 2, 2, 5, 6, 3, 3, dtype, True, 1)
    check(x, w, b, padding=(4, 7))                       # outputs made of padding alone
    check(x, w, b, padding=(3, 3), stride=2, dilation=2)
    # an input of no rows at all is refused, as PyTorch refuses it, padding or not
    x0 = np.zeros((1, 2, 0, 3), dtype=dtype)
    w1, b1 = operands(1, 2, 1, 1, 1, 1, 1, dtype, True, 2)[1:]
    with pytest.raises(ValueError, match="x must have a non-empty plane"):
        kernels.conv2d(x0, w1, b1, padding=1, groups=2, algorithm="depthwise")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conv", [
    dict(padding=1), dict(padding=1, stride=2), dict(padding=2), dict(padding=2, stride=2),
    dict(padding=(2, 1), stride=(1, 3), dilation=(1, 2)),
], ids=["3x3s1", "3x3s2", "5x5s1", "5x5s2", "general"])
def test_thread_count_gives_bit_identical_output(conv, dtype):
    R = 5 if conv.get("padding") == 2 else 3
    # many planes (split by planes) and a single plane (split by row bands)
    for N, C, M, H, W in [(3, 10, 2, 29, 45), (1, 1, 1, 203, 33)]:
        x, w, b = operands(N, C, M, H, W, R, R, dtype, True, 5)
        y1 = run_kernel(x, w, b, 1, "relu6", **conv)
        for n in (2, 3, 5):
            assert np.array_equal(run_kernel(x, w, b, n, "relu6", **conv), y1), n
        ref = kernels.reference.conv2d(x, w, b, groups=C, activation="relu6", **conv)
        assert rel_error(y1, ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conv", [dict(padding=1), dict(padding=1, stride=2), dict(padding=2),
                                  dict(padding=(1, 2), stride=3, dilation=2)])
def test_nan_and_inf_propagate_through_the_epilogue(conv, dtype):
    R = 5 if conv["padding"] == 2 else 3
    x, w, b = operands(1, 3, 2, 20, 35, R, R, dtype, True, 9)
    x[0, 0, 4, 5] = np.nan
    x[0, 1, 10, 17] = np.inf
    x[0, 2, 0, 0] = -np.inf
    w[5, 0, 0, 0] = np.inf                                # an infinite weight times zero padding is NaN
    for activation in ACTS:
        y = kernels.conv2d(x, w, b, groups=3, algorithm="depthwise", activation=activation, **conv)
        with np.errstate(invalid="ignore"):
            ref = kernels.reference.conv2d(x, w, b, groups=3, activation=activation, **conv)
        assert np.array_equal(np.isnan(y), np.isnan(ref)), activation
        assert np.array_equal(np.isposinf(y), np.isposinf(ref)), activation
        assert np.array_equal(np.isneginf(y), np.isneginf(ref)), activation
        finite = np.isfinite(ref)
        assert rel_error(y[finite], ref[finite]) < TOL[dtype]


def test_relu_keeps_nan_in_every_lane():
    # NaN in each of the 16 lanes of a vector and in the masked tail of a row
    x = np.ones((1, 1, 3, 37), dtype=np.float32)
    x[0, 0, 1, :] = np.nan
    w = np.ones((1, 1, 1, 1), dtype=np.float32)
    for activation in ("relu", "relu6"):
        y = kernels.conv2d(x, w, groups=1, algorithm="depthwise", activation=activation)
        assert np.isnan(y[0, 0, 1]).all() and not np.isnan(y[0, 0, [0, 2]]).any()
        assert (y[0, 0, [0, 2]] == 1).all()


def test_inputs_are_not_modified_and_read_only_inputs_work():
    x, w, b = operands(2, 4, 2, 11, 19, 3, 3, np.float32, True, 3)
    copies = [a.copy() for a in (x, w, b)]
    for a in (x, w, b):
        a.flags.writeable = False
    check(x, w, b, padding=1, activation="relu")
    for a, c in zip((x, w, b), copies):
        assert np.array_equal(a, c)


@pytest.mark.parametrize("call, message", [
    (lambda x, w, y: depthwise.conv2d(x, w, None, y, 1, 1, 1, 1, 1, 1, 3, 0, 1), "groups"),
    (lambda x, w, y: depthwise.conv2d(x, w, None, y[:1], 1, 1, 1, 1, 1, 1, 4, 0, 1), "y must"),
    (lambda x, w, y: depthwise.conv2d(x, w, np.ones(3, np.float32), y, 1, 1, 1, 1, 1, 1, 4, 0, 1), "bias"),
    (lambda x, w, y: depthwise.conv2d(x, w, None, y, 0, 1, 1, 1, 1, 1, 4, 0, 1), "stride"),
    (lambda x, w, y: depthwise.conv2d(x, w, None, y, 1, 1, -1, 1, 1, 1, 4, 0, 1), "padding"),
    (lambda x, w, y: depthwise.conv2d(x, w, None, y, 1, 1, 1, 1, 1, 1, 4, 3, 1), "act"),
    (lambda x, w, y: depthwise.conv2d(x, w, None, y, 1, 1, 1, 1, 1, 1, 4, 0, 0), "nthreads"),
    (lambda x, w, y: depthwise.conv2d(x.astype(np.int32), w, None, y, 1, 1, 1, 1, 1, 1, 4, 0, 1), "float32"),
])
def test_kernel_module_refuses_inconsistent_arguments(call, message):
    x, w, _ = operands(2, 4, 2, 6, 6, 3, 3, np.float32, False, 0)
    y = np.empty((2, 8, 6, 6), dtype=np.float32)
    with pytest.raises((ValueError, TypeError), match=message):
        call(x, w, y)
