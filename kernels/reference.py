"""Slow, obviously-correct float64 NumPy versions of every op: the oracle the tests compare against.

Each function takes the same arguments as its fast counterpart, computes in float64 and returns a
float64 numpy array (cupy inputs are brought to the host first).
"""
from __future__ import annotations

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
