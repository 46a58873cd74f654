"""Slow, obviously-correct float64 NumPy versions of every op: the oracle the tests compare against.

Each function takes the same arguments as its fast counterpart, computes in float64 and returns a
float64 numpy array (cupy inputs are brought to the host first). Like the kernels, they run each
geometry's canonical plan (kernels/canonical.py), so a huge stride, dilation, padding or pooling
window costs what the output costs, never what the number says.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .shapes import conv_geometry


def to_host64(a):
    """Any array (numpy or cupy) -> float64 numpy array."""
    if a is None:
        return None
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        a = a.get()
    return np.asarray(a, dtype=np.float64)


def pad_input(x, g):
    """Zero-pad x (N, C, H, W) so that every tap of every output position lies inside."""
    need_h = (g.P - 1) * g.sh + (g.R - 1) * g.dh + 1 if g.P else 0
    need_w = (g.Q - 1) * g.sw + (g.S - 1) * g.dw + 1 if g.Q else 0
    bottom = max(0, need_h - g.H - g.pad_top)
    right = max(0, need_w - g.W - g.pad_left)
    return np.pad(x, ((0, 0), (0, 0), (g.pad_top, bottom), (g.pad_left, right)))


def conv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, activation=None):
    """y[n, k, p, q] = bias[k] + sum_{c, r, s} w[k, c, r, s] * x[n, g*Cg + c, p*sh + r*dh - pt, q*sw + s*dw - pl]
    with k in group g; computed per (r, s) tap as a batched matrix product over the group's channels."""
    x, w, bias = to_host64(x), to_host64(w), to_host64(bias)
    g = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    x, g = g.plan.gather(x), g.plan.geometry
    G, Cg, Kg = g.groups, g.Cg, g.Kg
    xp = pad_input(x, g)
    wg = w.reshape(G, Kg, Cg, g.R, g.S)
    y = np.zeros((g.N, G, Kg, g.P * g.Q))
    for r in range(g.R):
        for s in range(g.S):
            h0, w0 = r * g.dh, s * g.dw
            tap = xp[:, :, h0:h0 + (g.P - 1) * g.sh + 1:g.sh, w0:w0 + (g.Q - 1) * g.sw + 1:g.sw]
            y += np.matmul(wg[None, :, :, :, r, s], tap.reshape(g.N, G, Cg, g.P * g.Q))
    y = y.reshape(g.out_shape)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return apply_activation(y, activation)


def apply_activation(y, activation):
    """The fused epilogues: None, "relu" (max(0, y)) or "relu6" (min(max(0, y), 6)); NaN propagates."""
    if activation is None:
        return y
    if activation == "relu":
        return np.maximum(y, 0.0)
    if activation == "relu6":
        return np.minimum(np.maximum(y, 0.0), 6.0)
    raise ValueError(f"activation must be None, 'relu' or 'relu6', got {activation!r}")


# Pooling and normalisation references (the ops of kernels/pooling.py).
from .shapes import pool_geometry  # noqa: E402


def _pool_taps(x, g, fill):
    """Pad x with `fill` so every window of g lies inside, and yield each tap (r, s) as an (N, C, P, Q) view."""
    bottom = max(0, (g.P - 1) * g.sh + (g.kh - 1) * g.dh + 1 - g.H - g.ph)
    right = max(0, (g.Q - 1) * g.sw + (g.kw - 1) * g.dw + 1 - g.W - g.pw)
    xp = np.pad(x, ((0, 0), (0, 0), (g.ph, bottom), (g.pw, right)), constant_values=fill)
    for r in range(g.kh):
        for s in range(g.kw):
            h0, w0 = r * g.dh, s * g.dw
            yield xp[:, :, h0:h0 + (g.P - 1) * g.sh + 1:g.sh, w0:w0 + (g.Q - 1) * g.sw + 1:g.sw]


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """y[n, c, p, q] = max over the window's taps inside the input (padding reads -inf); NaN propagates."""
    x = to_host64(x)
    g = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    plan = g.plan
    x, g = plan.gather(x, "max"), plan.geometry
    y = np.full(g.out_shape, -np.inf)
    for tap in _pool_taps(x, g, -np.inf):
        y = np.maximum(y, tap)
    return plan.finish(y, "max", True)


def _avg_divisor(n, f, stride, pad, out, count_include_pad):
    """Per output index along one axis: how many taps the divisor counts (PyTorch's rule: padding counts
    when count_include_pad, the ceil_mode overhang past the padding never does)."""
    start = np.arange(out) * stride - pad
    end = np.minimum(start + f, n + pad)
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, n)
    return (end - start).astype(np.float64)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """y[n, c, p, q] = sum of the window's taps (padding reads 0) / the divisor PyTorch uses."""
    x = to_host64(x)
    g = pool_geometry(x.shape, kernel_size, stride, padding, 1, ceil_mode)
    plan = g.plan
    x, g = plan.gather(x, "avg"), plan.geometry
    y = np.zeros(g.out_shape)
    for tap in _pool_taps(x, g, 0.0):
        y += tap
    div_h = _avg_divisor(g.H, g.kh, g.sh, g.ph, g.P, count_include_pad)
    div_w = _avg_divisor(g.W, g.kw, g.sw, g.pw, g.Q, count_include_pad)
    return plan.finish(y / np.multiply.outer(div_h, div_w), "avg", count_include_pad)


def global_avg_pool2d(x):
    """(N, C, H, W) -> (N, C, 1, 1): the mean of each plane."""
    x = to_host64(x)
    return x.mean(axis=(2, 3), keepdims=True)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """y = x / (k + alpha / size * sum of x^2 over channels c - size//2 .. c + (size-1)//2) ** beta,
    channels outside [0, C) reading as zero (PyTorch's local_response_norm). Any size: the window is
    clipped to the channels, and alpha / size is rounded once from the exact quotient."""
    x = to_host64(x)
    C = x.shape[1]
    window = np.zeros_like(x)
    for c in range(C):
        lo, hi = max(0, c - size // 2), min(C - 1, c + (size - 1) // 2)
        window[:, c] = (x[:, lo:hi + 1] ** 2).sum(axis=1)
    return x / (k + float(Fraction(alpha) / size) * window) ** beta
