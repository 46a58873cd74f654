"""Ops on the channel-blocked activation layout of an inference plan (NCHW16c with a zero halo).

A blocked buffer holds an (N, C, H, W) activation as an array of shape (N, Cb, H + 2h, W + 2h, 16):
Cb = ceil(C / 16) blocks of 16 channels (a zmm register of float32) innermost, and a frame of h zero
rows and columns around every plane, so that a convolution whose padding is at most h reads its
padding as plain zeros, with no edge branches. Invariants every producer keeps:
  - the frame (halo) of its output is zero;
  - the lanes of channels >= C (the padding of the last block) are finite (the weights that read
    them are zero, so they never reach a real channel, but 0 * NaN would).
A consumer may read a buffer with a larger halo than it needs; `interior(buf, h)` is the (N, Cb, H, W,
16) view without the frame. A channel-block slice buf[:, a:b] is a valid buffer too: branches of a
concatenation write their slices of one buffer, so the concatenation costs nothing.

Epilogue of the convolutions (`act` codes): y = act(acc + bias [+ residual]), with act 0 none,
1 ReLU, 2 ReLU6, 3 SiLU (x * sigmoid(x)), 4 sigmoid; the residual is a blocked buffer of y's shape.

This module holds the layout arithmetic, the weight packing, and the simple NumPy version of every op
(any float dtype): the obviously-correct code the fast kernels (kernels/cpu/blocked.pyx) are tested
against; kernels.cpu.blocked has the fast ones, float32, with the same signatures.
"""
from __future__ import annotations

import numpy as np

BLOCK = 16
ACTS = {None: 0, "relu": 1, "relu6": 2, "silu": 3, "sigmoid": 4}


def blocks(C):
    """Channel blocks of 16 that hold C channels."""
    return -(-C // BLOCK)


def blocked_shape(N, C, H, W, halo=0):
    return (N, blocks(C), H + 2 * halo, W + 2 * halo, BLOCK)


def interior(buf, halo):
    """The (N, Cb, H, W, 16) view of a buffer without its frame."""
    if halo == 0:
        return buf
    return buf[:, :, halo:buf.shape[2] - halo, halo:buf.shape[3] - halo, :]


def zero_frame(buf, halo):
    """Zero the halo of a buffer (the producer's duty)."""
    if halo:
        buf[:, :, :halo] = 0
        buf[:, :, buf.shape[2] - halo:] = 0
        buf[:, :, :, :halo] = 0
        buf[:, :, :, buf.shape[3] - halo:] = 0


def activate(v, act):
    if act == 0:
        return v
    if act == 1:
        return np.maximum(v, 0)
    if act == 2:
        return np.minimum(np.maximum(v, 0), 6)
    if act == 3:
        return v / (1 + np.exp(-v))
    if act == 4:
        return 1 / (1 + np.exp(-v))
    raise ValueError(f"act must be 0 .. 4, got {act}")


# ---------------------------------------------------------------- aligned buffers

ALIGN_BYTES = 64    # a cache line and a zmm register


def aligned_empty(shape, dtype=np.float32):
    """An uninitialised C-contiguous array whose data starts on a 64-byte line. NumPy's own large
    arrays start 16 bytes past a page (glibc's mmap header), so every 64-byte vector load of them
    spans two cache lines; the blocked kernels' weights and activations measured 1.05-1.45x slower so
    (one layer at a time, interleaved, on an Intel Xeon)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n + ALIGN_BYTES, dtype=np.uint8)
    off = -raw.ctypes.data % ALIGN_BYTES
    return raw[off:off + n].view(dtype).reshape(shape)


def aligned_zeros(shape, dtype=np.float32):
    out = aligned_empty(shape, dtype)
    out[...] = 0
    return out


def aligned(a, dtype=None):
    """A 64-byte-aligned C-contiguous copy of `a` (as `dtype`)."""
    a = np.asarray(a)
    out = aligned_empty(a.shape, a.dtype if dtype is None else dtype)
    out[...] = a
    return out


# ---------------------------------------------------------------- packing (plan time, once per layer)

class ConvWeights:
    """A convolution prepacked for blocked input and output (groups == 1):
    w[kb, cb, r, s, ci, ko] = weight[kb*16 + ko, cb*16 + ci, r, s] (zero past K or C), bias padded to
    Kb*16. `nchw_input`: the input is a zero-padded NCHW array instead (a stem with few channels, as
    the network's input arrives): then w has one "block" of all C input channels, w[kb, 0, r, s, c, ko].
    Geometry: stride (sh, sw), dilation (dh, dw), padding (top, left); the output size comes from the
    output buffer."""

    def __init__(self, weight, bias, stride, padding, dilation, nchw_input=False):
        K, C, R, S = weight.shape
        self.K, self.C, self.R, self.S = K, C, R, S
        self.sh, self.sw = stride
        self.pt, self.pl = padding
        self.dh, self.dw = dilation
        self.nchw_input = nchw_input
        Kb = blocks(K)
        ci = C if nchw_input else BLOCK
        Cb = 1 if nchw_input else blocks(C)
        wp = np.zeros((Kb * BLOCK, Cb * ci, R, S), dtype=weight.dtype)
        wp[:K, :C] = weight
        # (kb, ko, cb, ci, r, s) -> (kb, cb, r, s, ci, ko)
        self.w = aligned(wp.reshape(Kb, BLOCK, Cb, ci, R, S).transpose(0, 2, 4, 5, 3, 1))
        self.bias = aligned_zeros(Kb * BLOCK, dtype=weight.dtype)
        if bias is not None:
            self.bias[:K] = bias


class DepthwiseWeights:
    """A depthwise convolution (groups == C == K) prepacked: w[cb, r, s, ci] = weight[cb*16 + ci, 0, r, s]."""

    def __init__(self, weight, bias, stride, padding, dilation):
        C, one, R, S = weight.shape
        if one != 1:
            raise ValueError(f"weight must be (C, 1, R, S), got {weight.shape}")
        self.C, self.R, self.S = C, R, S
        self.sh, self.sw = stride
        self.pt, self.pl = padding
        self.dh, self.dw = dilation
        Cb = blocks(C)
        wp = np.zeros((Cb * BLOCK, R, S), dtype=weight.dtype)
        wp[:C] = weight[:, 0]
        self.w = aligned(wp.reshape(Cb, BLOCK, R, S).transpose(0, 2, 3, 1))
        self.bias = aligned_zeros(Cb * BLOCK, dtype=weight.dtype)
        if bias is not None:
            self.bias[:C] = bias


# Winograd F(m x m, 3 x 3): the filter transform G per output tile size m (interpolation points
# 0, 1, -1 for m = 2; 0, 1, -1, 2, -2 for m = 4; and infinity), matching winograd.h's B and A.
WINOGRAD_G = {
    2: np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
    4: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
}


WINOGRAD_L2_WEIGHTS = 2_500_000  # U bytes that stay in L2 between a layer's items
WINOGRAD_F4_TILES = 32           # 4x4 tiles that amortise reading a larger U from memory
WINOGRAD_F2_TILES = 49           # 2x2 tiles that do, for a U of at most
WINOGRAD_F2_WEIGHTS = 17_000_000  # bytes (512 x 512 channels: measured 1.35-1.4x at 14x14)


def winograd_tile(N, C, K, P, Q):
    """The Winograd tile m (4 or 2) for a 3x3 stride-1 convolution of this geometry, or 0 where the
    direct kernel is faster. Geometry only (never the thread count), so a plan's results do not
    depend on its threads. The transformed weights U (36 C K floats for F(4, 3), 16 C K for F(2, 3),
    against 9 C K) come from memory once per layer, so Winograd's saving in multiplies must outweigh
    reading more weights. Measured on the zoo's layers with every call's weights from memory
    (2 threads, `python -m benchmarks.winograd`; benchmarks/results/cpu-epyc-zen5-2t-2026-12-01/
    kernels/winograd.md): F(4, 3) 1.6-2.4x faster than direct where U fits L2 or there are 32 or
    more 4x4 tiles; F(2, 3) 1.1-1.45x where there are 49 tiles of 2x2 (256 and 512 channels at
    14x14, AlexNet's 13x13); 512 channels on one 7x7 image (16 tiles of 2x2) run faster direct."""
    t4 = N * -(-P // 4) * -(-Q // 4)
    t2 = N * -(-P // 2) * -(-Q // 2)
    if 36 * 4 * C * K <= WINOGRAD_L2_WEIGHTS or t4 >= WINOGRAD_F4_TILES:
        return 4
    if t2 >= WINOGRAD_F2_TILES and 16 * 4 * C * K <= WINOGRAD_F2_WEIGHTS:
        return 2
    return 0


class WinogradWeights:
    """A 3x3 stride-1 convolution (groups 1, dilation 1) prepacked for Winograd F(m x m, 3 x 3) on
    blocked input and output: per transform point xi = (i, j) of the (m+2) x (m+2) tile,
    w[xi, kb, cb, ci, ko] = (G g G^T)[i, j] of filter (kb*16 + ko, cb*16 + ci), computed in float64
    and rounded once. `direct` holds the same convolution for the NumPy version (its definition)."""

    def __init__(self, weight, bias, padding, m=4):
        K, C, R, S = weight.shape
        if (R, S) != (3, 3):
            raise ValueError(f"Winograd F(m, 3) needs a 3x3 filter, got {R}x{S}")
        if m not in WINOGRAD_G:
            raise ValueError(f"m must be one of {sorted(WINOGRAD_G)}, got {m}")
        self.m, self.K, self.C = m, K, C
        self.pt, self.pl = padding
        self.direct = ConvWeights(weight, bias, (1, 1), padding, (1, 1))
        G = WINOGRAD_G[m]
        A = m + 2
        u = np.einsum("ir,kcrs,js->ijkc", G, weight.astype(np.float64), G)
        Kb, Cb = blocks(K), blocks(C)
        up = np.zeros((A, A, Kb * BLOCK, Cb * BLOCK))
        up[:, :, :K, :C] = u
        # (i, j, kb, ko, cb, ci) -> (i*A + j, kb, cb, ci, ko)
        up = up.reshape(A * A, Kb, BLOCK, Cb, BLOCK).transpose(0, 1, 3, 4, 2)
        self.w = aligned(up, dtype=weight.dtype)
        self.bias = self.direct.bias


# ---------------------------------------------------------------- the simple NumPy ops

def to_blocked(x, out, halo):
    """NCHW x -> blocked out (frame and padded lanes zero)."""
    N, C, H, W = x.shape
    out[...] = 0
    v = interior(out, halo)
    Cb = out.shape[1]
    xp = np.zeros((N, Cb * BLOCK, H, W), dtype=out.dtype)
    xp[:, :C] = x
    v[...] = xp.reshape(N, Cb, BLOCK, H, W).transpose(0, 1, 3, 4, 2)


def from_blocked(xb, halo, out):
    """blocked xb -> NCHW out (N, C, H, W), C = out.shape[1]."""
    v = interior(xb, halo)
    N, Cb, H, W, _ = v.shape
    out[...] = v.transpose(0, 1, 4, 2, 3).reshape(N, Cb * BLOCK, H, W)[:, :out.shape[1]]


def _taps(xpad, R, S, sh, sw, dh, dw, P, Q, r0, s0):
    """Yield (r, s, view of xpad at every output's tap (r, s)); xpad's [r0, s0] is the output origin."""
    for r in range(R):
        for s in range(S):
            h0, w0 = r0 + r * dh, s0 + s * dw
            yield r, s, xpad[..., h0:h0 + (P - 1) * sh + 1:sh, w0:w0 + (Q - 1) * sw + 1:sw, :] \
                if xpad.ndim == 5 else xpad[..., h0:h0 + (P - 1) * sh + 1:sh, w0:w0 + (Q - 1) * sw + 1:sw]


def _epilogue(acc, bias, residual, r_halo, act, yb, y_halo):
    acc = acc + bias.reshape(-1, BLOCK)[None, :, None, None, :]
    if residual is not None:
        acc = acc + interior(residual, r_halo)
    zero_frame(yb, y_halo)
    interior(yb, y_halo)[...] = activate(acc, act)


def conv(xb, x_halo, cw, yb, y_halo, residual=None, r_halo=0, act=0):
    """yb = act(conv(x) + bias [+ residual]) for prepacked ConvWeights cw."""
    yv = interior(yb, y_halo)
    N, Kb, P, Q, _ = yv.shape
    if x_halo < max(cw.pt, cw.pl):
        raise ValueError(f"the input halo {x_halo} is smaller than the padding ({cw.pt}, {cw.pl})")
    acc = np.zeros(yv.shape, dtype=np.float64)
    r0, s0 = x_halo - cw.pt, x_halo - cw.pl
    if cw.nchw_input:
        # xb: (N, C, H + 2h, W + 2h) zero-padded NCHW
        for r, s, tap in _taps(xb, cw.R, cw.S, cw.sh, cw.sw, cw.dh, cw.dw, P, Q, r0, s0):
            acc += np.einsum("nchw,kco->nkhwo", tap, cw.w[:, 0, r, s])
    else:
        for r, s, tap in _taps(xb, cw.R, cw.S, cw.sh, cw.sw, cw.dh, cw.dw, P, Q, r0, s0):
            acc += np.einsum("nbhwi,kbio->nkhwo", tap, cw.w[:, :, r, s])
    _epilogue(acc, cw.bias, residual, r_halo, act, yb, y_halo)


def winograd(xb, x_halo, ww, yb, y_halo, residual=None, r_halo=0, act=0):
    """yb = act(conv(x) + bias [+ residual]) for WinogradWeights ww: the convolution it computes."""
    conv(xb, x_halo, ww.direct, yb, y_halo, residual, r_halo, act)


def depthwise(xb, x_halo, dw, yb, y_halo, residual=None, r_halo=0, act=0):
    """yb = act(depthwise conv(x) + bias [+ residual]) for prepacked DepthwiseWeights dw."""
    yv = interior(yb, y_halo)
    N, Cb, P, Q, _ = yv.shape
    if x_halo < max(dw.pt, dw.pl):
        raise ValueError(f"the input halo {x_halo} is smaller than the padding ({dw.pt}, {dw.pl})")
    acc = np.zeros(yv.shape, dtype=np.float64)
    for r, s, tap in _taps(xb, dw.R, dw.S, dw.sh, dw.sw, dw.dh, dw.dw, P, Q, x_halo - dw.pt, x_halo - dw.pl):
        acc += tap * dw.w[None, :, r, s][:, :, None, None, :]
    _epilogue(acc, dw.bias, residual, r_halo, act, yb, y_halo)


def pool(xb, x_halo, yb, y_halo, is_max, kernel, stride, padding, count_include_pad=True):
    """Max or average pooling (PyTorch's rules; the output size comes from yb, so ceil_mode is the
    caller's choice of P, Q). Reads only the interior of x: padding is -inf (max) or 0 (average)."""
    xv = interior(xb, x_halo)
    yv = interior(yb, y_halo)
    N, Cb, H, W, _ = xv.shape
    _, _, P, Q, _ = yv.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    fill = -np.inf if is_max else 0.0
    bottom = max(0, (P - 1) * sh + kh - H - ph)
    right = max(0, (Q - 1) * sw + kw - W - pw)
    xp = np.pad(xv.astype(np.float64), ((0, 0), (0, 0), (ph, bottom), (pw, right), (0, 0)), constant_values=fill)
    acc = np.full(yv.shape, fill)
    for _, _, tap in _taps(xp, kh, kw, sh, sw, 1, 1, P, Q, 0, 0):
        acc = np.maximum(acc, tap) if is_max else acc + tap
    if not is_max:
        def div(n, k, s, p, out):
            start = np.arange(out) * s - p
            end = np.minimum(start + k, n + p)
            if not count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, n)
            return (end - start).astype(np.float64)
        acc = acc / np.multiply.outer(div(H, kh, sh, ph, P), div(W, kw, sw, pw, Q))[None, None, :, :, None]
    zero_frame(yb, y_halo)
    yv[...] = acc


def global_avg_pool(xb, x_halo, out):
    """out (N, Cb*16) = the mean of each channel's plane (padded lanes included: callers slice [:C])."""
    xv = interior(xb, x_halo)
    N, Cb = xv.shape[:2]
    out[...] = xv.astype(np.float64).mean(axis=(2, 3)).reshape(N, Cb * BLOCK)


def scale_channels(xb, x_halo, s, yb, y_halo):
    """yb = xb * s[n, c] per channel (the squeeze-and-excitation scale); s is (N, Cb*16)."""
    xv = interior(xb, x_halo)
    N, Cb = xv.shape[:2]
    zero_frame(yb, y_halo)
    interior(yb, y_halo)[...] = xv * s.reshape(N, Cb, 1, 1, BLOCK)


def add(ab, a_halo, bb, b_halo, yb, y_halo, act=0):
    """yb = act(a + b), elementwise (an addition no conv epilogue could take)."""
    zero_frame(yb, y_halo)
    interior(yb, y_halo)[...] = activate(interior(ab, a_halo) + interior(bb, b_halo), act)
