"""Layers without weights (activations, pooling, LRN, reshaping) and Linear."""
from __future__ import annotations

import math

import numpy as np

from kernels.shapes import pair

from . import ops as _ops
from .module import Module, _frozen


class Activation(Module):
    """An elementwise function. `inplace=True` lets it overwrite its input: set it only where the input
    is an intermediate the network owns (after a conv), never on the caller's array. FUSED names the
    conv epilogue that computes it ("relu", "relu6"), or None."""
    FUSED = None
    OP = ""

    def __init__(self, inplace=False):
        self.inplace = bool(inplace)

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
        self.dim = dim

    def forward(self, x):
        return _ops.current().softmax(x, self.dim)


class MaxPool2d(Module):
    """torch.nn.MaxPool2d's arguments and semantics (padding reads as -inf, ceil_mode)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x):
        return _ops.current().max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                         self.ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """torch.nn.AvgPool2d's arguments and semantics (count_include_pad, ceil_mode)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        return _ops.current().avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                         self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class GlobalAvgPool2d(Module):
    """Mean over H and W: (N, C, H, W) -> (N, C, 1, 1), like AdaptiveAvgPool2d(1)."""

    def forward(self, x):
        return _ops.current().global_avg_pool2d(x)


class AdaptiveAvgPool2d(Module):
    """torch.nn.AdaptiveAvgPool2d: mean over the windows [floor(i*H/oh), ceil((i+1)*H/oh)) per axis."""

    def __init__(self, output_size):
        self.output_size = pair(output_size, "output_size")

    def forward(self, x):
        return _ops.current().adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class LocalResponseNorm(Module):
    """torch.nn.LocalResponseNorm: x / (k + alpha / size * sum over `size` neighbouring channels of x^2)^beta.
    (AlexNet's paper writes alpha for the sum itself: its alpha=1e-4, n=5 is alpha=5e-4 here.)"""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return _ops.current().local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class Linear(Module):
    """y = x @ weight.T + bias, weight (out_features, in_features) as in torch.nn.Linear.
    Init: weight uniform in +-1/sqrt(in_features) (Kaiming-uniform with a=sqrt(5), PyTorch's default), bias zero."""
    PARAMS = ("weight", "bias")

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
        self.in_features, self.out_features = int(in_features), int(out_features)
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {in_features}, {out_features}")
        rng = np.random.default_rng(rng)
        bound = 1.0 / math.sqrt(self.in_features)
        w = rng.random((self.out_features, self.in_features), dtype=np.float32)   # in [0, 1)
        w *= np.float32(2 * bound)
        w -= np.float32(bound)
        self.weight = _frozen(w.astype(dtype, copy=False))
        self.bias = _frozen(np.zeros(self.out_features, dtype=dtype)) if bias else None

    def forward(self, x):
        return _ops.current().linear(x, self.weight, self.bias)

    def macs(self, in_shape, out_shape):
        return math.prod(out_shape) * self.in_features

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    def __init__(self, start_dim=1):
        self.start_dim = start_dim

    def forward(self, x):
        return _ops.current().flatten(x, self.start_dim)


class Dropout(Module):
    """Identity at inference (the probability is kept for the record)."""

    def __init__(self, p=0.5):
        self.p = p

    def forward(self, x):
        return x

    def extra_repr(self):
        return f"p={self.p}"
