"""The cost model reproduces the course's worked examples exactly and agrees with kernels.shapes."""
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn import cost
from kernels.shapes import conv_geometry


def test_six_by_six_by_three_with_five_filters_costs_2160_multiplications():
    c = cost.conv(6, 6, 3, 5, 3, padding="valid")
    assert c.out_shape == (1, 5, 4, 4)
    assert c.macs == 2160 == 4 * 4 * 5 * (3 * 3 * 3)
    assert c.flops == 4320


def test_depthwise_separable_costs_432_plus_240():
    s = cost.depthwise_separable(6, 6, 3, 5, 3, padding=0)
    assert s.depthwise.macs == 432 and s.pointwise.macs == 240 and s.macs == 672
    assert s.normal.macs == 2160 and s.ratio == Fraction(672, 2160)
    ratio = cost.separable_ratio(6, 6, 3, 5, 3, padding=0)
    assert ratio == Fraction(672, 2160) == Fraction(1, 5) + Fraction(1, 9)
    assert ratio == cost.separable_ratio_closed_form(5, 3)


def test_course_functions_pad_same_by_default():
    """conv, depthwise_separable, separable_ratio and bottleneck all default to "same" (the course's
    choice); layer_cost keeps kernels.conv2d's default of 0."""
    assert cost.conv(6, 6, 3, 5, 3).out_shape == (1, 5, 6, 6) == cost.conv(6, 6, 3, 5, 3, padding="same").out_shape
    s = cost.depthwise_separable(6, 6, 3, 5, 3)
    assert s.depthwise.out_shape == (1, 3, 6, 6) and s.pointwise.out_shape == (1, 5, 6, 6)
    assert s.normal.out_shape == (1, 5, 6, 6) and s.depthwise.macs == 36 * 27
    assert cost.separable_ratio(6, 6, 3, 5, 3) == Fraction(36 * 27 + 36 * 15, 36 * 5 * 27)
    assert cost.bottleneck(6, 6, 8, 2, 5, 3).conv.out_shape == (1, 5, 6, 6)
    assert cost.layer_cost((1, 3, 6, 6), (5, 3, 3, 3)).out_shape == (1, 5, 4, 4)
    # an even filter pads the extra row and column at the bottom / right, as kernels.conv2d does
    assert cost.conv(6, 6, 3, 5, 4).out_shape == (1, 5, 6, 6)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: cost.conv(224, 224, 3, 64, 7, stride=2), ValueError, "padding=3"),
    (lambda: cost.conv(8, 8, 3, 4, 3, padding="SAME"), ValueError, "lower case"),
    (lambda: cost.conv(8, 8, 3, 4, 3, padding=-1), ValueError, "padding"),
    (lambda: cost.conv(8.0, 8, 3, 4, 3), TypeError, "n_h"),
    (lambda: cost.conv(8, 8, 0, 4, 3), ValueError, "n_c"),
    (lambda: cost.conv(8, 8, 6, 4, 3, groups=4), ValueError, "groups"),
    (lambda: cost.conv(4, 4, 3, 4, 7, padding=0), ValueError, "larger than the padded input"),
    (lambda: cost.conv(8, 8, 3, 4, 3, roofline=(500, 50)), TypeError, "Roofline"),
    (lambda: cost.Roofline(0, 50), ValueError, "peak_gflops"),
    (lambda: cost.conv_params(3, 4, 3, groups=2), ValueError, "groups"),
])
def test_bad_arguments_are_refused_by_name(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_roofline_prediction():
    roof = cost.Roofline(500.0, 50.0)
    assert roof.ridge == 10.0
    assert roof.time(1e9, 1e8) == pytest.approx(2e-3)       # compute-bound: 1 GFLOP at 500 GFLOP/s
    assert roof.time(1e9, 1e9) == pytest.approx(2e-2)       # memory-bound: 1 GB at 50 GB/s
    c = cost.conv(56, 56, 64, 64, 3, roofline=roof)
    assert c.roofline_s == roof.time(c.flops, c.bytes_moved)
    s = cost.depthwise_separable(40, 40, 96, 160, 3, roofline=roof)
    assert s.roofline_s == s.depthwise.roofline_s + s.pointwise.roofline_s        # one kernel per stage
    assert s.roofline_ratio == pytest.approx(s.roofline_s / s.normal.roofline_s)
    assert s.bytes_ratio == pytest.approx(s.bytes_moved / s.normal.bytes_moved)
    assert s.depthwise.roofline_s == s.depthwise.bytes_moved / 50e9                   # under the ridge
    assert s.normal.roofline_s == s.normal.flops / 500e9                               # over it
    assert cost.conv(8, 8, 3, 4, 3).roofline == cost.DEFAULT_ROOFLINE


def test_cost_objects_print_as_tables():
    s = cost.depthwise_separable(40, 40, 96, 160, 3)
    text = str(s)
    assert repr(s) == text
    lines = text.splitlines()
    assert lines[0] == "depthwise-separable 3x3, 96 -> 160 channels, on 1x96x40x40"
    assert lines[1].split() == ["layer", "output", "MACs", "params", "bytes", "FLOP/B", "roofline"]
    assert lines[2].startswith("normal conv 3x3 96->160") and "1x160x40x40" in lines[2] and "221 M" in lines[2]
    assert lines[3].startswith("depthwise 3x3 96->96") and "1.38 M" in lines[3]
    assert lines[4].startswith("pointwise 1x1 96->160") and "24.6 M" in lines[4]
    assert lines[5].startswith("replacement total")
    assert f"MACs {float(s.ratio):.4f} (= 1/160 + 1/9)" in lines[6]
    assert f"roofline time {s.roofline_ratio:.3f}" in lines[6] and f"bytes {s.bytes_ratio:.3f}" in lines[6]
    assert lines[7].startswith("roofline: 545 GFLOP/s, 50 GB/s")
    c = str(cost.conv(56, 56, 64, 64, 3))
    assert c.splitlines()[0].startswith("conv 3x3 64->64 on 1x64x56x56") and "116 M" in c and "131.9" in c
    b = str(cost.bottleneck(28, 28, 192, 16, 32, 5))
    assert "normal conv 5x5 192->32" in b and "pointwise 1x1 192->16" in b and "conv 5x5 16->32" in b


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
