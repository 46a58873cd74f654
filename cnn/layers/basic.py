"""Layers without weights (activations, pooling, LRN, reshaping) and Linear."""
from __future__ import annotations

import math

import numpy as np

from . import ops as _ops
from .checks import (boolean, check_operand, float_dtype, integer, pool_padding, positive_int, positive_pair,
                     real)
from .module import Module, _frozen


def _arg(pair):
    """An (h, w) argument as torch prints it when given as one int: 2 for (2, 2)."""
    return pair[0] if pair[0] == pair[1] else pair


class Activation(Module):
    """An elementwise function. `inplace=True` lets it overwrite its input: set it only where the input
    is an intermediate the network owns (after a conv), never on the caller's array. FUSED names the
    conv epilogue that computes it ("relu", "relu6"), or None."""
    FUSED = None
    OP = ""

    def __init__(self, inplace=False):
        self.inplace = boolean(inplace, "inplace")

    def forward(self, x):
        return getattr(_ops.current(), self.OP)(x, self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ReLU(Activation):
    FUSED, OP = "relu", "relu"


class ReLU6(Activation):
    FUSED, OP = "relu6", "relu6"


class Sigmoid(Activation):
    OP = "sigmoid"


class Tanh(Activation):
    OP = "tanh"


class SiLU(Activation):
    """x * sigmoid(x) (swish), EfficientNet's activation."""
    OP = "silu"


class Softmax(Module):
    def __init__(self, dim=1):
        self.dim = integer(dim, "dim")

    def forward(self, x):
        return _ops.current().softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class MaxPool2d(Module):
    """torch.nn.MaxPool2d's arguments and semantics (padding reads as -inf, ceil_mode)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else positive_pair(stride, "stride")
        self.padding = pool_padding(padding, self.kernel_size)
        self.dilation = positive_pair(dilation, "dilation")
        self.ceil_mode = boolean(ceil_mode, "ceil_mode")

    def forward(self, x):
        return _ops.current().max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                         self.ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={_arg(self.kernel_size)}, stride={_arg(self.stride)}, padding={_arg(self.padding)}, "
                f"dilation={_arg(self.dilation)}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """torch.nn.AvgPool2d's arguments and semantics (count_include_pad, ceil_mode)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else positive_pair(stride, "stride")
        self.padding = pool_padding(padding, self.kernel_size)
        self.ceil_mode = boolean(ceil_mode, "ceil_mode")
        self.count_include_pad = boolean(count_include_pad, "count_include_pad")

    def forward(self, x):
        return _ops.current().avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                         self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={_arg(self.kernel_size)}, stride={_arg(self.stride)}, padding={_arg(self.padding)}"


class GlobalAvgPool2d(Module):
    """Mean over H and W: (N, C, H, W) -> (N, C, 1, 1), like AdaptiveAvgPool2d(1)."""

    def forward(self, x):
        return _ops.current().global_avg_pool2d(x)


class AdaptiveAvgPool2d(Module):
    """torch.nn.AdaptiveAvgPool2d: mean over the windows [floor(i*H/oh), ceil((i+1)*H/oh)) per axis."""

    def __init__(self, output_size):
        self.output_size = positive_pair(output_size, "output_size")

    def forward(self, x):
        return _ops.current().adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={_arg(self.output_size)}"


class LocalResponseNorm(Module):
    """torch.nn.LocalResponseNorm: x / (k + alpha / size * sum over `size` neighbouring channels of x^2)^beta.
    (AlexNet's paper writes alpha for the sum itself: its alpha=1e-4, n=5 is alpha=5e-4 here.)"""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        self.size = positive_int(size, "size")
        self.alpha, self.beta, self.k = real(alpha, "alpha"), real(beta, "beta"), real(k, "k")

    def forward(self, x):
        return _ops.current().local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class Linear(Module):
    """y = x @ weight.T + bias, weight (out_features, in_features) as in torch.nn.Linear.
    Init: weight uniform in +-1/sqrt(in_features) (Kaiming-uniform with a=sqrt(5), PyTorch's default), bias zero."""
    PARAMS = ("weight", "bias")

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        bias = boolean(bias, "bias")
        dtype = float_dtype(dtype)
        rng = np.random.default_rng(rng)
        bound = 1.0 / math.sqrt(self.in_features)
        w = rng.random((self.out_features, self.in_features), dtype=np.float32)   # in [0, 1)
        w *= np.float32(2 * bound)
        w -= np.float32(bound)
        self.weight = _frozen(w.astype(dtype, copy=False))
        self.bias = _frozen(np.zeros(self.out_features, dtype=dtype)) if bias else None

    def forward(self, x):
        ops = _ops.current()
        check_operand(self, x, self.weight, ops.strict)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            hint = " (a 4-D activation needs a Flatten() before the Linear)" if x.ndim == 4 else ""
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) expects {self.in_features} input "
                             f"features (x.shape[-1]), got x of shape {tuple(x.shape)}{hint}")
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Dimensions start_dim..end_dim folded into one, as torch.nn.Flatten (an empty batch included)."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = integer(start_dim, "start_dim"), integer(end_dim, "end_dim")

    def forward(self, x):
        return _ops.current().flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Identity at inference (the probability is kept for the record)."""

    def __init__(self, p=0.5, inplace=False):
        self.p = real(p, "p", low=0.0, high=1.0)
        self.inplace = boolean(inplace, "inplace")

    def forward(self, x):
        return x

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
