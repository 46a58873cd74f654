"""Canonical geometries: what the kernels are handed, whatever integers the caller passed.

A caller may pass any stride, dilation and padding (and, to pooling, any kernel size) that the size
arithmetic of kernels.shapes accepts, up to 2**62 and beyond. The kernels index in 64-bit (in places
32-bit) arithmetic and size buffers and loops by the geometry (direct's kvec row buffer, pooling's
row workspace and window loops), so they are only ever handed geometries whose numbers are of the
order of the input's extent. A geometry's `plan` (kernels.shapes) is resolved here on first use and
kept with the geometry; the CPU kernels, the GPU kernels and kernels.reference all run the plan:

1. Free simplifications: an axis with a one-tap window has dilation 1, a convolution's far-side
   padding counts only as far as its windows reach, and an axis with one output (P == 1) gets the
   smallest stride that still gives one output (span + 1, not 1: the geometry stays self-consistent,
   output_size(...) == P, which kernels rely on; the pointwise kernels read x in place at stride 1,
   as if the output had all H x W pixels).
2. An axis is tame when its padding (each side), stride and dilation are at most 2*n + 8, n the
   input's extent on that axis. A tame axis reaches the kernels as the caller gave it (step 1 only
   where the original values are not tame), so every ordinary layer runs exactly as before.
3. An untame convolution axis is rewritten by a gather: idx[p, r] = p*s - pad + r*d (Python ints, no
   overflow), and x' has P*R rows along the axis, x'[p*R + r] = x[idx[p, r]] where 0 <= idx < n, else
   0; its geometry is n' = P*R, stride R, dilation 1, padding 0: the same output, read from rows the
   output actually uses (memory of the order of output rows x kernel rows).
4. An untame pooling axis: the kernel size is only a number, so only the taps inside the input are
   gathered: each distinct window's valid rows (at most min(k, n)), padded with -inf (max) or 0 (avg)
   to M, the most any window holds; geometry k' = M, stride M, dilation 1, padding 0 (ceil_mode is
   already in P), one output per distinct window, copied to the outputs that share it (a huge padding
   at a small stride gives every output the whole axis: one window, not P copies of it). The
   average's divisor is separable per axis (PyTorch: with count_include_pad the window's part inside
   [-pad, n + pad), else only the valid taps), so after the kernel divides by M on a gathered axis,
   `PoolPlan.finish` multiplies output p by M / divisor[p].
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass

import numpy as np

from ._device import is_cupy

# Arithmetic below 2**61 cannot overflow int64 in the index computations; beyond it, Python ints.
_INT64_SAFE = 2**61


def tame_bound(n):
    """The largest padding, stride or dilation a kernel is handed on an axis of extent n."""
    return 2 * n + 8


def _module(a):
    """numpy or cupy, whichever `a` belongs to (cupy is imported only for a cupy array)."""
    return importlib.import_module("cupy") if is_cupy(a) else np


@dataclass(frozen=True, eq=False)
class AxisGather:
    """Rows `src` of x along `axis` (2: H, 3: W), in that order; the rows at positions `fill_at` read
    the fill value instead (their `src` is a placeholder 0)."""
    axis: int
    src: np.ndarray        # int64, every entry in [0, n)
    fill_at: np.ndarray    # int64 positions along the new axis that hold the fill

    def apply(self, x, fill):
        xp = _module(x)
        src, fill_at = (self.src, self.fill_at) if xp is np else (xp.asarray(self.src), xp.asarray(self.fill_at))
        out = xp.take(x, src, axis=self.axis)          # a new C-contiguous array; x is never modified
        if self.fill_at.size:
            out[(slice(None),) * self.axis + (fill_at,)] = fill
        return out


def _gather(axis, src):
    """An AxisGather from src with -1 where the fill goes."""
    fill = src < 0
    return AxisGather(axis, np.where(fill, 0, src).astype(np.int64), np.flatnonzero(fill).astype(np.int64))


def _window_taps(n, P, k, s, pad, d):
    """Per output p of an axis, the taps t in [0, k) whose input row p*s - pad + t*d lies in [0, n):
    t0[p] .. t0[p] + count[p] - 1, at rows first[p] + j*d. -> (first, count, t0): first and count are
    int64 (first is 0 where count is 0); t0 (0 where count is 0, below k) stays in Python ints when
    the numbers are big. Exact for any Python ints; the big ones are never held in int64."""
    if max(P * s, pad, k * d, n) < _INT64_SAFE:
        base = np.arange(P, dtype=np.int64) * s - pad
    else:
        base = np.array([p * s - pad for p in range(P)], dtype=object)
    t0 = np.maximum(-(base // d), 0)                    # ceil((pad - p*s) / d), at least 0
    t1 = np.minimum((n - 1 - base) // d, k - 1)
    count = np.maximum(t1 - t0 + 1, 0)
    has = count > 0
    first = np.where(has, base + t0 * d, 0)
    return first.astype(np.int64), count.astype(np.int64), np.where(has, t0, 0)


# --------------------------------------------------------------------------------------------------
# Convolution

@dataclass(frozen=True, eq=False)
class ConvPlan:
    """`geometry`: the ConvGeometry the kernels run (tame); `gathers`: what turns x into its input."""
    geometry: object
    gathers: tuple = ()

    def gather(self, x):
        for g in self.gathers:
            x = g.apply(x, 0)
        return x


def _conv_axis(n, P, R, s, d, lo, hi):
    """One axis of a convolution -> ((n, s, d, lo, hi) for the kernels, src of a gather or None)."""
    if max(lo, hi, s, d) <= tame_bound(n):
        return (n, s, d, lo, hi), None
    d = 1 if R == 1 else d
    hi = max(0, (P - 1) * s + (R - 1) * d + 1 - n - lo)  # far-side padding the last window reaches
    if P == 1:
        s = n + lo + hi - (R - 1) * d                    # span + 1: the smallest stride of one output
    if max(lo, hi, s, d) <= tame_bound(n):
        return (n, s, d, lo, hi), None
    first, count, t0 = _window_taps(n, P, R, s, lo, d)
    j = np.arange(R, dtype=np.int64)[None, :] - t0.astype(np.int64)[:, None]   # t0 < R
    inside = (j >= 0) & (j < count[:, None])
    src = np.where(inside, first[:, None] + j * min(d, n), -1).reshape(-1)   # d >= n: at most one tap
    return (P * R, R, 1, 0, 0), src


def conv_plan(g):
    """The ConvPlan of a ConvGeometry (kernels.shapes calls it once per geometry)."""
    (H, sh, dh, pt, pb), src_h = _conv_axis(g.H, g.P, g.R, g.sh, g.dh, g.pad_top, g.pad_bottom)
    (W, sw, dw, pl, pr), src_w = _conv_axis(g.W, g.Q, g.S, g.sw, g.dw, g.pad_left, g.pad_right)
    kg = g
    if (H, sh, dh, pt, pb, W, sw, dw, pl, pr) != (g.H, g.sh, g.dh, g.pad_top, g.pad_bottom,
                                                  g.W, g.sw, g.dw, g.pad_left, g.pad_right):
        kg = dataclasses.replace(g, H=H, sh=sh, dh=dh, pad_top=pt, pad_bottom=pb, W=W, sw=sw, dw=dw,
                                 pad_left=pl, pad_right=pr)
    gathers = tuple(_gather(axis, src) for axis, src in ((2, src_h), (3, src_w)) if src is not None)
    return ConvPlan(kg, gathers)


# --------------------------------------------------------------------------------------------------
# Pooling

@dataclass(frozen=True, eq=False)
class AxisExpand:
    """Output rows along `axis` (2: P, 3: Q) from the kernel's distinct windows: row p is `rows[p]`."""
    axis: int
    rows: np.ndarray       # int64, P entries


@dataclass(frozen=True, eq=False)
class PoolPlan:
    """`geometry`: the PoolGeometry the kernels run (tame; along a gathered axis it has one output per
    distinct window); `gathers`: what turns x into its input; `expands`: what turns its output into the
    caller's; `scales`: per gathered axis (axis, M / divisor with count_include_pad, M / divisor
    without), the average's true divisors."""
    geometry: object
    gathers: tuple = ()
    expands: tuple = ()
    scales: tuple = ()

    def gather(self, x, mode):
        fill = -np.inf if mode == "max" else 0
        for g in self.gathers:
            x = g.apply(x, fill)
        return x

    def finish(self, y, mode, count_include_pad):
        """The kernel's output y (geometry.out_shape) -> the caller's: each window's row copied to
        every output that has that window, and the average divided by its true divisor."""
        if not self.gathers:
            return y
        xp = _module(y)
        for e in self.expands:
            y = xp.take(y, e.rows if xp is np else xp.asarray(e.rows), axis=e.axis)
        if mode == "max":
            return y
        for axis, with_pad, without_pad in self.scales:
            f = with_pad if count_include_pad else without_pad
            shape = (1, 1, -1, 1) if axis == 2 else (1, 1, 1, -1)
            y *= xp.asarray(f.astype(y.dtype)).reshape(shape)
        return y


def _avg_divisors(n, P, k, s, pad):
    """PyTorch's average divisor per output p of one axis, as float64 (with, without the padding)."""
    starts = [p * s - pad for p in range(P)]
    ends = [min(a + k, n + pad) for a in starts]
    with_pad = np.array([float(b - a) for a, b in zip(starts, ends)])
    without_pad = np.array([float(min(b, n) - max(a, 0)) for a, b in zip(starts, ends)])
    return with_pad, without_pad


def _pool_axis(n, P, k, s, pad, d):
    """One axis of a pooling window -> ((n, k, s, pad, d, P) for the kernels, (src, M, rows) or None).

    Windows that hold the same input rows pool alike, so each distinct one is gathered once and its
    result copied to its outputs (`rows`): a huge padding at a small stride makes every window the
    whole axis, and the gather then holds n rows, not P * n."""
    if max(pad, s, d) <= tame_bound(n):
        return (n, k, s, pad, d, P), None
    d = 1 if k == 1 else d
    if P == 1:
        s = n + 2 * pad - (k - 1) * d                    # span + 1: the smallest stride of one output
    if max(pad, s, d) <= tame_bound(n):
        return (n, k, s, pad, d, P), None
    first, count, _ = _window_taps(n, P, k, s, pad, d)
    windows, rows = np.unique(np.stack([first, count], axis=1), axis=0, return_inverse=True)
    U, M = len(windows), max(1, int(count.max()))        # M: at most min(k, n)
    j = np.arange(M, dtype=np.int64)[None, :]
    src = np.where(j < windows[:, 1:2], windows[:, 0:1] + j * min(d, n), -1).reshape(-1)
    return (U * M, M, M, 0, 1, U), (src, M, rows.reshape(-1).astype(np.int64))


def pool_plan(g):
    """The PoolPlan of a PoolGeometry (kernels.shapes calls it once per geometry)."""
    (H, kh, sh, ph, dh, P), gh = _pool_axis(g.H, g.P, g.kh, g.sh, g.ph, g.dh)
    (W, kw, sw, pw, dw, Q), gw = _pool_axis(g.W, g.Q, g.kw, g.sw, g.pw, g.dw)
    kg = g
    if (H, kh, sh, ph, dh, P, W, kw, sw, pw, dw, Q) != (g.H, g.kh, g.sh, g.ph, g.dh, g.P,
                                                        g.W, g.kw, g.sw, g.pw, g.dw, g.Q):
        kg = dataclasses.replace(g, H=H, kh=kh, sh=sh, ph=ph, dh=dh, P=P, W=W, kw=kw, sw=sw, pw=pw, dw=dw, Q=Q)
    gathers, expands, scales = [], [], []
    for axis, found, (n, out, k, s, pad) in ((2, gh, (g.H, g.P, g.kh, g.sh, g.ph)),
                                            (3, gw, (g.W, g.Q, g.kw, g.sw, g.pw))):
        if found is None:
            continue
        src, M, rows = found
        gathers.append(_gather(axis, src))
        if not np.array_equal(rows, np.arange(out)):
            expands.append(AxisExpand(axis, rows))
        with_pad, without_pad = _avg_divisors(n, out, k, s, pad)
        scales.append((axis, M / with_pad, M / without_pad))
    return PoolPlan(kg, tuple(gathers), tuple(expands), tuple(scales))
