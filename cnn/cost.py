"""The cost model: what a convolution costs in arithmetic and in memory traffic, and what the classic
replacements (depthwise-separable convolution, a 1x1 bottleneck before a large filter) save.

Units, always named:
  MACs   multiply-accumulates; one MAC is one multiplication (the "multiplications" of the course's
         worked examples) and one addition.
  FLOPs  floating-point operations = 2 x MACs.
  params trainable numbers (weights, plus one bias per output channel when the layer has biases).
  bytes  the minimum memory traffic of a layer run as one kernel: its input, weights (and biases) and
         output each moved once, at `itemsize` bytes an element (4 for float32, 8 for float64).
  arithmetic intensity  FLOPs per byte, the x-axis of the roofline.

Notation of the course: an n_H x n_W x n_c input, n_c' filters of f x f, stride s, padding p; the output
is floor((n + 2p - f) / s) + 1 on each side. The size arithmetic is kernels.shapes', so the cost model and
the kernels never disagree.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from fractions import Fraction

from kernels.shapes import ConvGeometry, conv_geometry, output_size as _output_size, pair

__all__ = ["BottleneckCost", "ConvCost", "SeparableCost", "bottleneck", "conv", "conv_params",
           "depthwise_separable", "layer_cost", "output_size", "separable_ratio", "separable_ratio_closed_form"]


@dataclass(frozen=True)
class ConvCost:
    """Cost of one convolution layer. Element counts are whole-batch; bytes use `itemsize`."""
    geometry: ConvGeometry
    bias: bool
    itemsize: int

    @property
    def out_shape(self):
        """(N, K, P, Q): batch, n_c', n_H', n_W'."""
        return self.geometry.out_shape

    @property
    def macs(self):
        """Multiply-accumulates (= multiplications): N * P * Q * K * (C / groups) * R * S."""
        return self.geometry.macs

    @property
    def flops(self):
        """Floating-point operations: 2 x MACs (the bias adds are not counted)."""
        return 2 * self.macs

    @property
    def params(self):
        """Weights K * (C / groups) * R * S, plus K biases when the layer has them."""
        g = self.geometry
        return g.K * g.Cg * g.R * g.S + (g.K if self.bias else 0)

    @property
    def input_elements(self):
        g = self.geometry
        return g.N * g.C * g.H * g.W

    @property
    def output_elements(self):
        g = self.geometry
        return g.N * g.K * g.P * g.Q

    @property
    def bytes_moved(self):
        """Minimum traffic in bytes: input read once, weights (and biases) read once, output written once."""
        return (self.input_elements + self.params + self.output_elements) * self.itemsize

    @property
    def arithmetic_intensity(self):
        """FLOPs per byte of the minimum traffic."""
        return self.flops / self.bytes_moved


@dataclass(frozen=True)
class SeparableCost:
    """A depthwise f x f convolution (one filter per input channel) followed by a pointwise 1x1 one.
    The intermediate is written by the first kernel and read by the second, so it counts twice in bytes."""
    depthwise: ConvCost
    pointwise: ConvCost

    @property
    def macs(self):
        return self.depthwise.macs + self.pointwise.macs

    @property
    def flops(self):
        return 2 * self.macs

    @property
    def params(self):
        return self.depthwise.params + self.pointwise.params

    @property
    def bytes_moved(self):
        return self.depthwise.bytes_moved + self.pointwise.bytes_moved

    @property
    def arithmetic_intensity(self):
        return self.flops / self.bytes_moved


@dataclass(frozen=True)
class BottleneckCost:
    """A 1x1 convolution that reduces the channels (n_c -> n_c_mid) followed by the large filter."""
    reduce: ConvCost
    conv: ConvCost

    @property
    def macs(self):
        return self.reduce.macs + self.conv.macs

    @property
    def flops(self):
        return 2 * self.macs

    @property
    def params(self):
        return self.reduce.params + self.conv.params

    @property
    def bytes_moved(self):
        return self.reduce.bytes_moved + self.conv.bytes_moved

    @property
    def arithmetic_intensity(self):
        return self.flops / self.bytes_moved


def _itemsize(itemsize):
    if isinstance(itemsize, bool) or not isinstance(itemsize, int) or itemsize < 1:
        raise ValueError(f"itemsize must be a positive number of bytes, got {itemsize!r}")
    return itemsize


def output_size(n, f, stride=1, padding=0, dilation=1):
    """floor((n + 2p - d(f - 1) - 1) / s) + 1 along one axis, which is floor((n + 2p - f) / s) + 1
    without dilation. All arguments are ints."""
    for name, v in (("n", n), ("f", f), ("stride", stride), ("padding", padding), ("dilation", dilation)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {v!r}")
    if n < 1 or f < 1 or stride < 1 or dilation < 1:
        raise ValueError(f"n, f, stride and dilation must be positive, got n={n}, f={f}, stride={stride}, "
                         f"dilation={dilation}")
    if padding < 0:
        raise ValueError(f"padding must be non-negative, got {padding}")
    if dilation * (f - 1) + 1 > n + 2 * padding:
        raise ValueError(f"filter f={f} (dilation {dilation}) is larger than the padded input {n + 2 * padding}")
    return _output_size(n, f, stride, padding, padding, dilation)


def conv_params(n_c, n_c_out, f, *, groups=1, bias=True):
    """Parameters of n_c_out filters of f x f x (n_c / groups), plus one bias per filter when bias."""
    fh, fw = pair(f, "f")
    if n_c % groups:
        raise ValueError(f"groups={groups} does not divide n_c={n_c}")
    return n_c_out * ((n_c // groups) * fh * fw + (1 if bias else 0))


def layer_cost(x_shape, w_shape, *, stride=1, padding=0, dilation=1, groups=1, bias=False, itemsize=4):
    """Cost of kernels.conv2d(x, w, ...) on x (N, C, H, W) and w (K, C // groups, R, S): the per-layer
    figures of the roofline (MACs, bytes, arithmetic intensity)."""
    g = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    return ConvCost(g, bool(bias), _itemsize(itemsize))


def conv(n_h, n_w, n_c, n_c_out, f, *, stride=1, padding=0, groups=1, bias=False, batch=1, itemsize=4):
    """Cost of a convolution in the course's notation: an n_h x n_w x n_c input, n_c_out filters of
    f x f x (n_c / groups); padding an int or "same"/"valid"."""
    fh, fw = pair(f, "f")
    return layer_cost((batch, n_c, n_h, n_w), (n_c_out, n_c // groups if groups else n_c, fh, fw),
                      stride=stride, padding=padding, groups=groups, bias=bias, itemsize=itemsize)



def depthwise_separable(n_h, n_w, n_c, n_c_out, f, *, stride=1, padding=0, bias=False, batch=1, itemsize=4):
    """Cost of the depthwise-separable replacement of conv(n_h, n_w, n_c, n_c_out, f, ...): a depthwise
    f x f convolution (n_c filters of f x f x 1: f*f*n_c MACs per output pixel) carrying the stride and
    padding, then a pointwise 1x1 convolution (n_c * n_c_out MACs per output pixel)."""
    dw = conv(n_h, n_w, n_c, n_c, f, stride=stride, padding=padding, groups=n_c, bias=bias, batch=batch,
              itemsize=itemsize)
    _, _, p, q = dw.out_shape
    pw = conv(p, q, n_c, n_c_out, 1, bias=bias, batch=batch, itemsize=itemsize)
    return SeparableCost(dw, pw)


def separable_ratio(n_h, n_w, n_c, n_c_out, f, *, stride=1, padding=0):
    """MACs of the depthwise-separable version / MACs of the normal convolution, as an exact fraction."""
    normal = conv(n_h, n_w, n_c, n_c_out, f, stride=stride, padding=padding)
    separable = depthwise_separable(n_h, n_w, n_c, n_c_out, f, stride=stride, padding=padding)
    return Fraction(separable.macs, normal.macs)


def separable_ratio_closed_form(n_c_out, f):
    """The same ratio in closed form, 1/n_c' + 1/f^2: per output pixel the separable version does
    f^2 n_c + n_c n_c' MACs where the normal one does f^2 n_c n_c'."""
    return Fraction(1, n_c_out) + Fraction(1, f * f)


def bottleneck(n_h, n_w, n_c, n_c_mid, n_c_out, f, *, stride=1, padding="same", bias=False, batch=1,
               itemsize=4):
    """Cost of a 1x1 convolution down to n_c_mid channels followed by n_c_out filters of f x f (carrying
    the stride and padding); compare with conv(n_h, n_w, n_c, n_c_out, f, ...), the plain filter."""
    reduce = conv(n_h, n_w, n_c, n_c_mid, 1, bias=bias, batch=batch, itemsize=itemsize)
    big = conv(n_h, n_w, n_c_mid, n_c_out, f, stride=stride, padding=padding, bias=bias, batch=batch,
               itemsize=itemsize)
    return BottleneckCost(reduce, big)
