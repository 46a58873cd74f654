"""Pooling and local response normalisation: check the arguments once, then run one backend kernel.

numpy input runs the Cython kernels of kernels/cpu/pooling.pyx, cupy input the CUDA kernels of
kernels.cuda.ops; the result is the same kind of array, of x's dtype (float32 or float64), NCHW.
The semantics are PyTorch's (torch.nn.functional): see each function.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import _threads, cpu
from ._device import array_kind
from .shapes import MAX_ELEMENTS, pool_geometry


def _check_x(x):
    """x must be a 4-D float32/float64 numpy or cupy array. -> 'cpu' or 'gpu'."""
    kind = array_kind(x, "x")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    return kind


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _pool(x, mode, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad):
    kind = _check_x(x)
    ceil_mode = _check_bool(ceil_mode, "ceil_mode")
    count_include_pad = _check_bool(count_include_pad, "count_include_pad")
    g = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    # the tame window the kernels run, the gathers that bring x to it, and what brings its output back
    # (a pooling plan is of the order of the input: computing it for an empty batch costs nothing)
    plan = g.plan
    kg = plan.geometry
    if kind == "gpu":
        from .cuda import ops
        y = ops.pool2d(plan.gather(x, mode), mode, kg.kh, kg.kw, kg.sh, kg.sw, kg.ph, kg.pw, kg.dh, kg.dw,
                       kg.P, kg.Q, count_include_pad)
        return plan.finish(y, mode, count_include_pad)
    y = np.empty(kg.out_shape, dtype=x.dtype)
    if y.size == 0:
        return np.empty(g.out_shape, dtype=x.dtype)
    _threads.run(cpu.load("pooling").pool2d, np.ascontiguousarray(plan.gather(x, mode)), y, mode == "max",
                 kg.kh, kg.kw, kg.sh, kg.sw, kg.ph, kg.pw, kg.dh, kg.dw, count_include_pad)
    return plan.finish(y, mode, count_include_pad)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max over each kernel_size window of x (N, C, H, W) -> (N, C, P, Q).

    stride defaults to kernel_size; padding (at most half the kernel) reads as -inf; dilation spaces the
    taps; ceil_mode rounds the output size up, keeping a last window only when it starts inside the input
    or the left padding. NaN in a window gives NaN (as torch.nn.functional.max_pool2d)."""
    return _pool(x, "max", kernel_size, stride, padding, dilation, ceil_mode, True)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over each kernel_size window of x (N, C, H, W) -> (N, C, P, Q).

    padding reads as 0; the divisor counts the padding taps when count_include_pad, and never the
    ceil_mode overhang past the padding (as torch.nn.functional.avg_pool2d)."""
    return _pool(x, "avg", kernel_size, stride, padding, 1, ceil_mode, count_include_pad)


def _check_planes(x):
    """Channel-wise ops need non-empty planes and a size the kernels index. -> (N, C, H, W)."""
    N, C, H, W = x.shape
    if C < 1 or H < 1 or W < 1:
        raise ValueError(f"x must have non-empty C, H and W (only the batch may be empty), got shape {x.shape}")
    if N * C * H * W >= MAX_ELEMENTS:
        raise ValueError(f"x has {N * C * H * W} elements, more than this package indexes ({MAX_ELEMENTS})")
    return N, C, H, W


def global_avg_pool2d(x):
    """Mean of each (H, W) plane of x (N, C, H, W) -> (N, C, 1, 1) (adaptive_avg_pool2d(x, 1))."""
    kind = _check_x(x)
    N, C, H, W = _check_planes(x)
    if kind == "gpu":
        from .cuda import ops
        return ops.global_avg_pool2d(x)
    y = np.empty((N, C, 1, 1), dtype=x.dtype)
    if y.size == 0:
        return y
    _threads.run(cpu.load("pooling").global_avg_pool2d, np.ascontiguousarray(x), y)
    return y


def _check_real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def lrn_window(size, alpha, C):
    """(size, alpha) -> the same normalisation with a window of at most 2C + 1 channels: every window
    of 2C + 1 or more covers all C channels (it reaches C before and after each), so the kernels, which
    scale by alpha / size, get the smaller window and alpha * small / size (size / small in exact
    integer division, correctly rounded for any size). Sizes up to 2C + 1 pass unchanged."""
    small = 2 * C + 1
    if size <= small:
        return size, alpha
    return small, alpha * (small / size)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels (AlexNet), PyTorch's definition:

        y[n, c] = x[n, c] / (k + alpha / size * sum_{c'} x[n, c']^2) ** beta,

    c' over size neighbouring channels, size // 2 before c and (size - 1) // 2 after, channels outside
    [0, C) reading as zero. Any size works: a window past 2C + 1 channels covers all C of them, so the
    kernels get that window and the scale alpha / size of the true size."""
    kind = _check_x(x)
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"size must be an int, got {size!r}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    alpha, beta, k = _check_real(alpha, "alpha"), _check_real(beta, "beta"), _check_real(k, "k")
    size = int(size)
    N, C, H, W = _check_planes(x)
    size, alpha = lrn_window(size, alpha, C)
    if kind == "gpu":
        from .cuda import ops
        return ops.local_response_norm(x, size, alpha, beta, k)
    y = np.empty(x.shape, dtype=x.dtype)
    if y.size == 0:
        return y
    _threads.run(cpu.load("pooling").local_response_norm, np.ascontiguousarray(x), y, size, alpha, beta, k)
    return y
