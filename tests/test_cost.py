"""The cost model reproduces the course's worked examples exactly and agrees with kernels.shapes."""
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn import cost
from kernels.shapes import conv_geometry


def test_six_by_six_by_three_with_five_filters_costs_2160_multiplications():
    c = cost.conv(6, 6, 3, 5, 3)
    assert c.out_shape == (1, 5, 4, 4)
    assert c.macs == 2160 == 4 * 4 * 5 * (3 * 3 * 3)
    assert c.flops == 4320


def test_depthwise_separable_costs_432_plus_240():
    s = cost.depthwise_separable(6, 6, 3, 5, 3)
    assert s.depthwise.macs == 432 and s.pointwise.macs == 240 and s.macs == 672
    ratio = cost.separable_ratio(6, 6, 3, 5, 3)
    assert ratio == Fraction(672, 2160) == Fraction(1, 5) + Fraction(1, 9)
    assert ratio == cost.separable_ratio_closed_form(5, 3)


def test_inception_bottleneck_before_a_5x5():
    plain = cost.conv(28, 28, 192, 32, 5, padding="same")
    assert plain.out_shape == (1, 32, 28, 28)
    assert plain.macs == 120_422_400
    b = cost.bottleneck(28, 28, 192, 16, 32, 5)
    assert b.reduce.macs == 2_408_448 and b.conv.macs == 10_035_200 and b.macs == 12_443_648
    assert b.conv.out_shape == plain.out_shape


def test_ten_3x3x3_filters_with_biases_hold_280_parameters():
    assert cost.conv_params(3, 10, 3) == 280
    assert cost.conv_params(3, 10, 3, bias=False) == 270
    assert cost.conv(32, 32, 3, 10, 3, bias=True).params == 280
    assert cost.conv_params(32, 32, 3, groups=32, bias=False) == 288


@pytest.mark.parametrize("n,f,s,p,expect", [
    (6, 3, 1, 0, 4), (6, 3, 1, 1, 6), (7, 3, 2, 0, 3), (8, 3, 2, 1, 4), (227, 11, 4, 0, 55),
    (224, 7, 2, 3, 112), (112, 3, 2, 1, 56), (5, 5, 1, 0, 1), (6, 2, 2, 0, 3), (7, 2, 2, 0, 3),
])
def test_output_size_formula(n, f, s, p, expect):
    assert cost.output_size(n, f, s, p) == expect == (n + 2 * p - f) // s + 1


@pytest.mark.parametrize("args,exc", [((6, 7), ValueError), ((6, 3, 0), ValueError), ((6, 3, 1, -1), ValueError),
                                      ((6.0, 3), TypeError)])
def test_output_size_rejects_bad_arguments(args, exc):
    with pytest.raises(exc):
        cost.output_size(*args)


def test_bytes_and_arithmetic_intensity():
    c = cost.conv(56, 56, 64, 64, 3, padding=1, bias=True, itemsize=4)
    inp, w, out = 64 * 56 * 56, 64 * 64 * 9 + 64, 64 * 56 * 56
    assert c.params == w and c.bytes_moved == 4 * (inp + w + out)
    assert c.arithmetic_intensity == pytest.approx(2 * c.macs / c.bytes_moved)
    assert cost.conv(56, 56, 64, 64, 3, padding=1, bias=True, itemsize=8).bytes_moved == 2 * c.bytes_moved
    # the separable version's intermediate is written by one kernel and read by the next
    s = cost.depthwise_separable(56, 56, 64, 64, 3, padding=1, itemsize=4)
    assert s.bytes_moved == 4 * ((inp + 64 * 9 + 64 * 56 * 56) + (64 * 56 * 56 + 64 * 64 + out))
    # depthwise layers do far less arithmetic per byte than the dense 3x3 they replace
    assert s.depthwise.arithmetic_intensity < 3 < c.arithmetic_intensity


def test_layer_cost_matches_the_benchmark_layer_notation():
    c = cost.layer_cost((1, 144, 56, 56), (144, 1, 3, 3), stride=1, padding=1, groups=144)
    assert c.macs == 144 * 56 * 56 * 9 and c.out_shape == (1, 144, 56, 56)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 64), f=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3),
       c_in=st.integers(1, 64), c_out=st.integers(1, 64), batch=st.integers(1, 3))
def test_macs_equal_kernels_shapes(n, f, s, p, c_in, c_out, batch):
    if f > n + 2 * p:
        return
    g = conv_geometry((batch, c_in, n, n + 1), (c_out, c_in, f, f), s, p)
    c = cost.conv(n, n + 1, c_in, c_out, f, stride=s, padding=p, batch=batch)
    assert c.macs == g.macs
    assert c.out_shape == g.out_shape
    assert c.out_shape[2] == cost.output_size(n, f, s, p)
    sep = cost.depthwise_separable(n, n + 1, c_in, c_out, f, stride=s, padding=p, batch=batch)
    assert sep.depthwise.macs == conv_geometry((batch, c_in, n, n + 1), (c_in, 1, f, f), s, p, 1, c_in).macs
    assert cost.separable_ratio(n, n + 1, c_in, c_out, f, stride=s, padding=p) == \
        cost.separable_ratio_closed_form(c_out, f)
