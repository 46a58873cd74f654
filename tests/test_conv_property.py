"""Every CPU algorithm against the float64 reference, over random shapes and configurations."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels
from kernels.shapes import check_algorithm, conv_geometry

from .conftest import TOL, assert_nan_inf_match, conv_operands, nan_inf_case, rel_error

DTYPES = (np.float32, np.float64)


def _accepts(algorithm, g):
    try:
        check_algorithm(algorithm, g)
        return True
    except ValueError:
        return False


def check_all_algorithms(x, w, bias, activation=None, **conv):
    ref = kernels.reference.conv2d(x, w, bias, activation=activation, **conv)
    g = conv_geometry(x.shape, w.shape, conv.get("stride", 1), conv.get("padding", 0),
                      conv.get("dilation", 1), conv.get("groups", 1))
    ran = []
    for algorithm in kernels.ALGORITHMS + ("auto",):
        if algorithm != "auto" and not _accepts(algorithm, g):
            continue
        y = kernels.conv2d(x, w, bias, algorithm=algorithm, activation=activation, **conv)
        assert y.dtype == x.dtype and y.shape == ref.shape, algorithm
        err = rel_error(y, ref)
        assert err < TOL[x.dtype.type], f"{algorithm}: rel error {err:.3g} on {g}"
        ran.append(algorithm)
    return ran


@st.composite
def conv_case(draw):
    groups_kind = draw(st.sampled_from(["dense", "dense", "grouped", "depthwise"]))
    R = draw(st.integers(1, 6))
    S = draw(st.integers(1, 6))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if groups_kind == "depthwise":
        C = draw(st.integers(1, 24))
        groups, K = C, C * draw(st.integers(1, 3))
    elif groups_kind == "grouped":
        groups = draw(st.integers(2, 4))
        C, K = groups * draw(st.integers(1, 5)), groups * draw(st.integers(1, 6))
    else:
        groups, C, K = 1, draw(st.integers(1, 20)), draw(st.integers(1, 40))
    pad_mode = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    if pad_mode == "same":
        sh = sw = 1
        padding = "same"
    elif pad_mode == "valid":
        padding = "valid"
    elif pad_mode == "int":
        padding = draw(st.integers(0, 3))
    else:
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    pt = padding if isinstance(padding, int) else (padding[0] if isinstance(padding, tuple) else 0)
    pl = padding if isinstance(padding, int) else (padding[1] if isinstance(padding, tuple) else 0)
    H = draw(st.integers(max(1, dh * (R - 1) + 1 - 2 * pt), 40))
    W = draw(st.integers(max(1, dw * (S - 1) + 1 - 2 * pl), 40))
    N = draw(st.sampled_from([1, 1, 2, 3]))
    dtype = draw(st.sampled_from(DTYPES))
    bias = draw(st.booleans())
    activation = draw(st.sampled_from([None, None, "relu", "relu6"]))
    seed = draw(st.integers(0, 2**31 - 1))
    return dict(N=N, C=C, H=H, W=W, K=K, R=R, S=S, groups=groups, dtype=dtype, bias=bias,
                activation=activation, seed=seed,
                conv=dict(stride=(sh, sw), padding=padding, dilation=(dh, dw), groups=groups))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_case())
def test_random_configurations_match_reference(case):
    x, w, b = conv_operands(case)
    check_all_algorithms(x, w, b, activation=case["activation"], **case["conv"])


# The benchmark layer classes at reduced size, so every specialised path runs at least once.
SPECIALISED = [
    # (N, C, H, K, R, stride, pad, groups)
    (2, 3, 35, 16, 11, 4, 0, 1),      # AlexNet conv1 shape class
    (1, 3, 33, 8, 7, 2, 3, 1),        # ResNet stem
    (1, 16, 17, 32, 3, 1, 1, 1),      # VGG / ResNet 3x3
    (2, 8, 13, 12, 5, 1, 2, 1),       # Inception 5x5
    (1, 24, 19, 48, 1, 1, 0, 1),      # pointwise
    (1, 24, 19, 48, 1, 2, 0, 1),      # strided pointwise (ResNet downsample)
    (1, 32, 23, 32, 3, 1, 1, 32),     # depthwise 3x3 s1
    (2, 32, 23, 32, 3, 2, 1, 32),     # depthwise 3x3 s2
    (1, 40, 15, 40, 5, 1, 2, 40),     # depthwise 5x5 s1
    (1, 40, 16, 40, 5, 2, 2, 40),     # depthwise 5x5 s2
    (1, 17, 9, 34, 3, 1, 1, 17),      # depthwise, channel multiplier 2
    (2, 1, 32, 6, 5, 1, 0, 1),        # LeNet C1
    (1, 12, 10, 24, 3, 1, 1, 4),      # grouped
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SPECIALISED, ids=lambda c: "x".join(map(str, c)))
def test_specialised_paths(case, dtype):
    N, C, H, K, R, stride, pad, groups = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, C, H, H + 1)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, R)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    for activation in (None, "relu6"):
        check_all_algorithms(x, w, b, activation=activation, stride=stride, padding=pad, groups=groups)


@pytest.mark.parametrize("algorithm", kernels.ALGORITHMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_count_gives_bit_identical_output(algorithm, dtype):
    rng = np.random.default_rng(7)
    C, K, R, groups = (48, 48, 3, 48) if algorithm == "depthwise" else (24, 40, 1 if algorithm == "pointwise" else 3, 1)
    x = rng.standard_normal((3, C, 29, 31)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, R)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    pad = 0 if algorithm == "pointwise" else 1
    old = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        y1 = kernels.conv2d(x, w, b, padding=pad, groups=groups, algorithm=algorithm)
        kernels.set_num_threads(2)
        y2 = kernels.conv2d(x, w, b, padding=pad, groups=groups, algorithm=algorithm)
        kernels.set_num_threads(5)
        y5 = kernels.conv2d(x, w, b, padding=pad, groups=groups, algorithm=algorithm)
    finally:
        kernels.set_num_threads(old)
    assert np.array_equal(y1, y2) and np.array_equal(y1, y5)


@pytest.mark.parametrize("algorithm", kernels.ALGORITHMS)
def test_nan_and_inf_propagate(algorithm):
    x, w, conv = nan_inf_case(algorithm)
    for activation in (None, "relu", "relu6"):
        y = kernels.conv2d(x, w, algorithm=algorithm, activation=activation, **conv)
        assert_nan_inf_match(y, kernels.reference.conv2d(x, w, activation=activation, **conv))
