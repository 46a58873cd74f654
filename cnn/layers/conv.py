"""Convolutions and batch normalisation, and the fused inference path Conv -> BatchNorm -> activation.

At inference a BatchNorm after a convolution is an affine map per output channel, so it folds into
the convolution: w' = w * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps). The folded
arrays are derived from the parameters and cached by their identity (see module.py), so loading new
weights or moving the network recomputes them on the next call. A following ReLU/ReLU6 goes into the
kernel's epilogue: the three layers run as one kernels.conv2d call.
"""
from __future__ import annotations

import math

import numpy as np

from kernels import ALGORITHMS

from . import ops as _ops
from .checks import (boolean, check_nchw, check_operand, conv_padding, float_dtype, positive_int, positive_pair,
                     real)
from .module import Module, _frozen


def _check_algorithm(algorithm, kernel_size, padding, groups, in_channels):
    """The algorithm a Conv2d asks kernels.conv2d for, checked against what that algorithm can do."""
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a string, got {algorithm!r}")
    if algorithm != "auto" and algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be 'auto' or one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "pointwise" and (kernel_size != (1, 1) or padding not in ((0, 0), "same", "valid")):
        raise ValueError(f"algorithm='pointwise' needs a 1x1 kernel without padding, got "
                         f"kernel_size={kernel_size}, padding={padding!r}")
    if algorithm == "depthwise" and groups != in_channels:
        raise ValueError(f"algorithm='depthwise' needs groups == in_channels, got groups={groups}, "
                         f"in_channels={in_channels}")
    return algorithm


class Conv2d(Module):
    """torch.nn.Conv2d's arguments, checks and parameter names; `algorithm` is passed to kernels.conv2d.
    stride, dilation and numeric padding are kept as (h, w) pairs, as torch keeps them.
    Weights are Kaiming-normal (fan_out, ReLU gain), biases zero; `rng` is a seed or a numpy Generator."""
    PARAMS = ("weight", "bias")

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, *, padding_mode="zeros", algorithm="auto", rng=None, dtype=np.float32):
        in_channels = positive_int(in_channels, "in_channels")
        out_channels = positive_int(out_channels, "out_channels")
        groups = positive_int(groups, "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        R, S = positive_pair(kernel_size, "kernel_size")
        self.stride = positive_pair(stride, "stride")
        self.dilation = positive_pair(dilation, "dilation")
        self.padding = conv_padding(padding, self.stride)
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' (the only padding the kernels do), got {padding_mode!r}")
        bias = boolean(bias, "bias")
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = (R, S)
        self.algorithm = _check_algorithm(algorithm, self.kernel_size, self.padding, groups, in_channels)
        rng = np.random.default_rng(rng)
        std = math.sqrt(2.0 / (out_channels // groups * R * S))
        w = rng.standard_normal((out_channels, in_channels // groups, R, S), dtype=np.float32) * np.float32(std)
        self.weight = _frozen(w.astype(dtype))
        self.bias = _frozen(np.zeros(out_channels, dtype=dtype)) if bias else None
        self._fold = None

    def _conv(self, x, w, b, activation=None):
        ops = _ops.current()
        check_operand(self, x, self.weight, ops.strict)
        check_nchw(self, x, self.in_channels)
        return ops.conv2d(x, w, b, stride=self.stride, padding=self.padding, dilation=self.dilation,
                          groups=self.groups, algorithm=self.algorithm, activation=activation)

    def forward(self, x):
        return self._conv(x, self.weight, self.bias)

    def folded(self, bn=None):
        """(weight, bias) with `bn` (a BatchNorm2d or None) folded in; cached until any source changes."""
        sources = (self.weight, self.bias)
        if bn is not None:
            sources += (bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
        cached = self._fold
        if cached is not None and len(cached[0]) == len(sources) and all(
                a is b or (isinstance(a, float) and a == b) for a, b in zip(cached[0], sources)):
            return cached[1], cached[2]
        w, b = self.weight, self.bias
        if bn is not None:
            if bn.num_features != self.out_channels:
                raise ValueError(f"BatchNorm2d({bn.num_features}) cannot follow a conv with "
                                 f"{self.out_channels} output channels")
            s = bn.weight.astype(np.float64) / (bn.running_var.astype(np.float64) + bn.eps) ** 0.5
            shift = bn.bias.astype(np.float64) - bn.running_mean.astype(np.float64) * s
            if b is not None:
                shift = shift + b.astype(np.float64) * s
            w = _frozen((w.astype(np.float64) * s.reshape(-1, 1, 1, 1)).astype(w.dtype))
            b = _frozen(shift.astype(self.weight.dtype))
        self._fold = (sources, w, b)
        return w, b

    def run_fused(self, x, bn=None, activation=None):
        """One kernel call: this conv, `bn` folded in, `activation` ("relu"/"relu6"/None) as epilogue."""
        w, b = self.folded(bn)
        return self._conv(x, w, b, activation)

    def extra_repr(self):
        # torch's format: the arguments that differ from their defaults
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"           # a string unquoted, as torch prints it
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.algorithm != "auto":
            s += f", algorithm={self.algorithm!r}"
        return s


class DepthwiseConv2d(Conv2d):
    """One filter per input channel (groups = channels), `multiplier` outputs per channel."""

    def __init__(self, channels, kernel_size, stride=1, padding=0, dilation=1, multiplier=1, bias=True,
                 **kw):
        channels = positive_int(channels, "channels")
        multiplier = positive_int(multiplier, "multiplier")
        super().__init__(channels, channels * multiplier, kernel_size, stride, padding, dilation,
                         groups=channels, bias=bias, **kw)


class SeparableConv2d(Module):
    """Depthwise k x k convolution then a 1x1 pointwise one (MobileNet's factorisation)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, *, rng=None,
                 dtype=np.float32):
        rng = np.random.default_rng(rng)
        self.depthwise = DepthwiseConv2d(in_channels, kernel_size, stride, padding, bias=bias, rng=rng,
                                         dtype=dtype)
        self.pointwise = Conv2d(in_channels, out_channels, 1, bias=bias, rng=rng, dtype=dtype)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class BatchNorm2d(Module):
    """Inference batch normalisation with running statistics: (x - mean) / sqrt(var + eps) * gamma + beta."""
    PARAMS = ("weight", "bias")
    BUFFERS = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, dtype=np.float32):
        self.num_features = positive_int(num_features, "num_features")
        self.eps = real(eps, "eps", low=0.0, low_open=True)
        # torch's running-average factor, kept for the record: nothing is trained here
        self.momentum = None if momentum is None else real(momentum, "momentum", low=0.0, high=1.0)
        dtype = float_dtype(dtype)
        self.weight = _frozen(np.ones(num_features, dtype=dtype))
        self.bias = _frozen(np.zeros(num_features, dtype=dtype))
        self.running_mean = _frozen(np.zeros(num_features, dtype=dtype))
        self.running_var = _frozen(np.ones(num_features, dtype=dtype))
        self.num_batches_tracked = _frozen(np.zeros((), dtype=np.int64))

    def forward(self, x):
        ops = _ops.current()
        check_operand(self, x, self.weight, ops.strict)
        check_nchw(self, x, self.num_features)
        return ops.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine=True, bias=True, "
                f"track_running_stats=True")


def conv_bn_act(x, conv, bn=None, act=None):
    """conv, then the optional BatchNorm2d `bn`, then the optional activation layer `act`.
    Where the op set fuses, conv and bn run as one kernel call and a ReLU/ReLU6 rides in its epilogue
    (any other activation runs after it, in place on the conv's fresh output); elsewhere each layer
    runs on its own (the reference check of the fold, and the summary's per-layer rows)."""
    if _ops.current().fuses:
        fused = getattr(act, "FUSED", None)
        y = conv.run_fused(x, bn, fused)
        return y if act is None or fused is not None else act(y)
    y = conv(x)
    if bn is not None:
        y = bn(y)
    return y if act is None else act(y)
