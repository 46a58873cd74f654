"""The GPU ops on cupy arrays: convolution (four algorithms), pooling, LRN and the bias + activation
epilogue, launched on CuPy's current stream through the kernels of kernels/cuda/*.cu.

Every op runs on the device of its input array, reads its inputs through cupy.ascontiguousarray (any
strides work; nothing the caller passed is modified) and returns a new array, except bias_act, which
works in place. Sizes are computed in Python integers and passed as 64-bit where a flat index can
pass 2**31; the kernels walk their elements with grid-stride (or block-stride) loops, so the grids
are capped at the hardware's limits without losing work.
"""
from __future__ import annotations

import functools
import math

import cupy
import numpy as np

from . import loader

THREADS = 256
MAX_GRID_X = 2**31 - 1
MAX_GRID_Y = 65535
# Dynamic shared memory a block may use without opting in: every tiling below fits in it.
SMEM_BYTES = 48 * 1024
# Bound on the im2col workspace (columns + the GEMM result of a batch chunk).
WORKSPACE_BYTES = 256 * 2**20


def _ctype(dtype):
    if dtype == np.float32:
        return "float"
    if dtype == np.float64:
        return "double"
    raise TypeError(f"the GPU kernels take float32 or float64 arrays, got {dtype}")


def _scalar(dtype, value):
    return np.float32(value) if dtype == np.float32 else np.float64(value)


def _ptr_or_null(a):
    """A device array, or a null pointer for an absent optional operand (bias=None)."""
    return a if a is not None else np.uint64(0)


def _grid1d(count, per_block=THREADS):
    return (max(1, min(-(-count // per_block), MAX_GRID_X)),)


@functools.lru_cache(maxsize=None)
def _multiprocessors(device_id):
    return cupy.cuda.Device(device_id).attributes["MultiProcessorCount"]


def _check_device(x, *others):
    for name, a in others:
        if a is not None and a.device.id != x.device.id:
            raise ValueError(f"{name} is on GPU {a.device.id} but x is on GPU {x.device.id}")


def _contiguous(a):
    return None if a is None else cupy.ascontiguousarray(a)


# --------------------------------------------------------------------------------------------------
# Epilogue

def bias_act(y, bias, act):
    """In place on a C-contiguous (N, K, P, Q) array: y = act(y + bias[k]); bias may be None;
    act 0 none, 1 ReLU, 2 ReLU6. Returns y."""
    if not y.flags.c_contiguous or y.ndim != 4:
        raise ValueError("bias_act needs a C-contiguous (N, K, P, Q) array")
    if (bias is None and act == 0) or y.size == 0:
        return y
    N, K, P, Q = y.shape
    with y.device:
        _check_device(y, ("bias", bias))
        bias = _contiguous(bias)
        planes, PQ = N * K, P * Q
        k = loader.kernel("elementwise", f"bias_act<{_ctype(y.dtype)}>")
        k((min(-(-PQ // THREADS), MAX_GRID_Y), min(planes, MAX_GRID_Y)), (THREADS,),
          (y, _ptr_or_null(bias), np.int64(planes), np.int64(PQ), np.int32(K), np.int32(act)))
    return y


def _bias_act_nk(t, y, bias, act, K, Nb, PQ):
    """y (Nb, K, P*Q) = act(t (K, Nb, P*Q) + bias): the im2col GEMM result moved into NCHW."""
    planes = Nb * K
    k = loader.kernel("elementwise", f"bias_act_nk<{_ctype(y.dtype)}>")
    k((min(-(-PQ // THREADS), MAX_GRID_Y), min(planes, MAX_GRID_Y)), (THREADS,),
      (t, y, _ptr_or_null(bias), np.int64(planes), np.int64(PQ), np.int32(K), np.int64(Nb), np.int32(act)))


# --------------------------------------------------------------------------------------------------
# Convolution

def conv2d(x, w, bias, g, algorithm, act):
    """y (g.out_shape, x's dtype) = act(conv(x, w) + bias) by `algorithm` ("direct", "im2col",
    "pointwise" or "depthwise", already checked capable of g by shapes.check_algorithm)."""
    run = _ALGORITHMS.get(algorithm)
    if run is None:
        raise ValueError(f"algorithm must be one of {tuple(_ALGORITHMS)}, got {algorithm!r}")
    with x.device:
        _check_device(x, ("w", w), ("bias", bias))
        y = cupy.empty(g.out_shape, dtype=x.dtype)
        if y.size == 0:
            return y
        run(cupy.ascontiguousarray(x), cupy.ascontiguousarray(w), _contiguous(bias), y, g, act)
    return y


def conv2d_simple(x, w, bias, g, act):
    """The simple correct version (conv2d_naive: one thread per output, no tiling), kept beside the
    fast kernels as their cross-check; also the fallback of shapes no tiling fits."""
    with x.device:
        _check_device(x, ("w", w), ("bias", bias))
        y = cupy.empty(g.out_shape, dtype=x.dtype)
        if y.size:
            _naive(cupy.ascontiguousarray(x), cupy.ascontiguousarray(w), _contiguous(bias), y, g, act)
    return y


def _geometry_args(g):
    return tuple(np.int32(v) for v in (g.C, g.H, g.W, g.K, g.R, g.S, g.sh, g.sw, g.pad_top, g.pad_left,
                                       g.dh, g.dw, g.groups, g.P, g.Q))


def _naive(x, w, bias, y, g, act):
    k = loader.kernel("conv_direct", f"conv2d_naive<{_ctype(x.dtype)}>")
    k(_grid1d(y.size), (THREADS,),
      (x, w, _ptr_or_null(bias), y, np.int32(g.N)) + _geometry_args(g) + (np.int32(act),))


@functools.lru_cache(maxsize=4096)
def _direct_tiling(g, itemsize, sms, smem_bytes):
    """-> (kpt, ppt, tq, cc, rc, sc, smem bytes) for conv2d_tiled, or None when no staging fits
    (cached: a network asks for the same few geometries on every forward pass).

    The register blocking and tile width minimise an estimate of the time: waves of blocks (two
    resident per SM) x the padded work of one block, so that neither tile padding (K or P, Q not
    multiples of the tile) nor too few blocks for the machine is wasted. The channel chunk CC then
    takes what is left of the shared memory (up to 32 channels a stage)."""
    best = None
    for kpt, ppt in loader.DIRECT_CONFIGS:
        tk = 8 * kpt
        for tq in (32, 16, 8):
            tp = (32 // tq) * ppt
            blocks = g.N * -(-g.P // tp) * -(-g.Q // tq) * g.groups * -(-g.Kg // tk)
            cost = -(-blocks // (2 * sms)) * tk * tp * tq
            if best is None or cost < best[0]:
                best = (cost, kpt, ppt, tq)
    _, kpt, ppt, tq = best
    tk, tp = 8 * kpt, (32 // tq) * ppt
    budget = smem_bytes // itemsize

    def elements(cc, rc, sc):
        tile = cc * ((tp - 1) * g.sh + (rc - 1) * g.dh + 1) * ((tq - 1) * g.sw + (sc - 1) * g.dw + 1)
        return ((tile + 3) & ~3) + cc * rc * sc * tk

    rc, sc = g.R, g.S
    while elements(1, rc, sc) > budget:
        if rc > 1:
            rc = -(-rc // 2)
        elif sc > 1:
            sc = -(-sc // 2)
        else:
            return None
    cc = min(g.Cg, 32)
    while cc > 1 and elements(cc, rc, sc) > budget:
        cc -= 1
    return kpt, ppt, tq, cc, rc, sc, elements(cc, rc, sc) * itemsize


def _direct(x, w, bias, y, g, act):
    tiling = _direct_tiling(g, x.itemsize, _multiprocessors(x.device.id), SMEM_BYTES)
    if tiling is None:            # a stride so large that even one row of taps overflows: naive
        _naive(x, w, bias, y, g, act)
        return
    kpt, ppt, tq, cc, rc, sc, smem = tiling
    tk, tp = 8 * kpt, (32 // tq) * ppt
    n_x = g.N * -(-g.P // tp) * -(-g.Q // tq)
    n_y = g.groups * -(-g.Kg // tk)
    k = loader.kernel("conv_direct", f"conv2d_tiled<{_ctype(x.dtype)}, {kpt}, {ppt}>")
    k((min(n_x, MAX_GRID_X), min(n_y, MAX_GRID_Y)), (THREADS,),
      (x, w, _ptr_or_null(bias), y) + _geometry_args(g)
      + (np.int32(act), np.int32(tq), np.int32(cc), np.int32(rc), np.int32(sc), np.int64(n_x), np.int32(n_y)),
      shared_mem=smem)


def _im2col_gemm(x, w, bias, y, g, act):
    """Columns of a batch chunk (im2col.cu), one GEMM per group over the whole chunk (cuBLAS through
    cupy.matmul), then the bias + activation epilogue that also reorders (K, n, PQ) into NCHW.
    The chunk is as many images as fit WORKSPACE_BYTES (at least one); with one image a chunk the
    GEMM writes y directly and the epilogue runs in place."""
    N, C, K, G = g.N, g.C, g.K, g.groups
    PQ, RS = g.P * g.Q, g.R * g.S
    CgRS = g.Cg * RS
    itemsize = x.itemsize
    nb = max(1, min(N, WORKSPACE_BYTES // ((C * RS + K) * PQ * itemsize)))
    col_buf = cupy.empty(C * RS * nb * PQ, dtype=x.dtype)
    t_buf = cupy.empty(K * nb * PQ, dtype=x.dtype) if nb > 1 else None
    im2col = loader.kernel("im2col", f"im2col<{_ctype(x.dtype)}>")
    wg = w.reshape(G, g.Kg, CgRS)
    for n0 in range(0, N, nb):
        b = min(nb, N - n0)
        col = col_buf[:C * RS * b * PQ]
        im2col(_grid1d(C * b * PQ), (THREADS,),
               (x[n0:n0 + b], col) + tuple(np.int32(v) for v in (
                   C, g.H, g.W, g.R, g.S, g.sh, g.sw, g.pad_top, g.pad_left, g.dh, g.dw, g.P, g.Q))
               + (np.int64(b),))
        out = y[n0] if nb == 1 else t_buf[:K * b * PQ]
        if G == 1:
            cupy.matmul(wg[0], col.reshape(CgRS, b * PQ), out=out.reshape(K, b * PQ))
        else:
            cupy.matmul(wg, col.reshape(G, CgRS, b * PQ), out=out.reshape(G, g.Kg, b * PQ))
        if nb > 1:
            _bias_act_nk(out, y[n0:n0 + b], bias, act, K, b, PQ)
    if nb == 1:
        bias_act(y, bias, act)


def _pointwise(x, w, bias, y, g, act):
    """1x1: at stride 1 the GEMM runs on x where it lies, w (K, C) @ x[n] viewed (C, H*W), batched
    over the images (and the groups); at a larger stride im2col with R = S = 1 is the strided gather."""
    if g.sh != 1 or g.sw != 1:
        _im2col_gemm(x, w, bias, y, g, act)
        return
    N, G, HW = g.N, g.groups, g.H * g.W
    if G == 1 and N == 1:
        cupy.matmul(w.reshape(g.K, g.C), x.reshape(g.C, HW), out=y.reshape(g.K, HW))
    elif G == 1:
        cupy.matmul(w.reshape(g.K, g.C), x.reshape(N, g.C, HW), out=y.reshape(N, g.K, HW))
    else:
        cupy.matmul(w.reshape(G, g.Kg, g.Cg), x.reshape(N, G, g.Cg, HW), out=y.reshape(N, G, g.Kg, HW))
    bias_act(y, bias, act)


def _pow2_at_least(n):
    return 1 << max(0, math.ceil(math.log2(max(1, n))))


@functools.lru_cache(maxsize=4096)
def _depthwise_tiling(g, opt, itemsize, smem_bytes):
    """-> (TW, TR, PB, smem bytes) for the depthwise kernels, or None when not even a one-output
    tile fits in shared memory. TW covers the row (up to 32), TR * opt the rows (up to 256 threads),
    PB planes fill the rest of the 256 threads (up to 32); shrunk, PB first, until the tiles fit."""
    tw = min(32, max(4, _pow2_at_least(g.Q)))
    tr = min(THREADS // tw, _pow2_at_least(-(-g.P // opt)))
    pb = min(32, THREADS // (tw * tr), _pow2_at_least(g.N * g.K))

    def smem(tw, tr, pb):
        ih = (tr * opt - 1) * g.sh + (g.R - 1) * g.dh + 1
        iw = (tw - 1) * g.sw + (g.S - 1) * g.dw + 1
        return pb * ih * iw * itemsize

    while smem(tw, tr, pb) > smem_bytes:
        if pb > 1:
            pb //= 2
        elif tr > 1:
            tr //= 2
        elif tw > 1:
            tw //= 2
        else:
            return None
    return tw, tr, pb, smem(tw, tr, pb)


def _depthwise(x, w, bias, y, g, act):
    M = g.K // g.C
    planes = g.N * g.K
    specialised = (g.R == g.S and g.sh == g.sw and g.dh == g.dw == 1
                   and (g.R, g.sh) in loader.DEPTHWISE_SPECIALISED)
    opt = 4 if specialised else 1
    tiling = _depthwise_tiling(g, opt, x.itemsize, SMEM_BYTES)
    if tiling is None:            # huge dilated kernels: the direct kernel stages them in chunks
        _direct(x, w, bias, y, g, act)
        return
    tw, tr, pb, smem = tiling
    n_blocks = -(-planes // pb) * -(-g.P // (tr * opt)) * -(-g.Q // tw)
    grid, block = (min(n_blocks, MAX_GRID_X),), (tw * tr * pb,)
    t = _ctype(x.dtype)
    tail = (np.int32(act), np.int64(planes), np.int32(tw), np.int32(tr), np.int32(pb), np.int64(n_blocks))
    if specialised:
        k = loader.kernel("depthwise", f"depthwise_rs<{t}, {g.R}, {g.sh}>")
        args = (x, w, _ptr_or_null(bias), y) + tuple(np.int32(v) for v in (
            g.C, g.H, g.W, M, g.P, g.Q, g.pad_top, g.pad_left)) + tail
    else:
        k = loader.kernel("depthwise", f"depthwise_general<{t}>")
        args = (x, w, _ptr_or_null(bias), y) + tuple(np.int32(v) for v in (
            g.C, g.H, g.W, M, g.R, g.S, g.sh, g.sw, g.pad_top, g.pad_left, g.dh, g.dw, g.P, g.Q)) + tail
    k(grid, block, args, shared_mem=smem)


_ALGORITHMS = {"direct": _direct, "im2col": _im2col_gemm, "pointwise": _pointwise, "depthwise": _depthwise}


# --------------------------------------------------------------------------------------------------
# Pooling and normalisation

def pool2d(x, mode, kh, kw, sh, sw, ph, pw, dh, dw, P, Q, count_include_pad):
    """Max ("max") or average ("avg") pooling of x (N, C, H, W) -> (N, C, P, Q), PyTorch's semantics:
    padding is -inf for max; for avg it counts in the divisor only when count_include_pad (and
    windows that run past the padded input under ceil_mode are clipped there). Max takes a dilation."""
    modes = {"max": 0, "avg": 1}
    if mode not in modes:
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    N, C, H, W = x.shape
    with x.device:
        y = cupy.empty((N, C, P, Q), dtype=x.dtype)
        if y.size == 0:
            return y
        x = cupy.ascontiguousarray(x)
        k = loader.kernel("pooling", f"pool2d<{_ctype(x.dtype)}>")
        k(_grid1d(y.size), (THREADS,),
          (x, y, np.int64(N * C)) + tuple(np.int32(v) for v in (
              H, W, P, Q, kh, kw, sh, sw, ph, pw, dh, dw, modes[mode], bool(count_include_pad))))
    return y


def global_avg_pool2d(x):
    """Mean over each (H, W) plane: (N, C, H, W) -> (N, C, 1, 1)."""
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    N, C, H, W = x.shape
    with x.device:
        y = cupy.empty((N, C, 1, 1), dtype=x.dtype)
        if y.size == 0:
            return y
        x = cupy.ascontiguousarray(x)
        k = loader.kernel("pooling", f"global_avg_pool<{_ctype(x.dtype)}>")
        warps_per_block = THREADS // 32
        k(_grid1d(N * C, warps_per_block), (THREADS,), (x, y, np.int64(N * C), np.int64(H * W)))
    return y


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """PyTorch's LocalResponseNorm: x / (k + alpha / size * sum of x^2 over the `size` channels
    centred on each (size // 2 before, (size - 1) // 2 after, zero-padded)) ** beta."""
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if int(size) < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    N, C, H, W = x.shape
    with x.device:
        y = cupy.empty(x.shape, dtype=x.dtype)
        if y.size == 0:
            return y
        x = cupy.ascontiguousarray(x)
        kern = loader.kernel("lrn", f"lrn<{_ctype(x.dtype)}>")
        kern(_grid1d(y.size), (THREADS,),
             (x, y, np.int64(y.size), np.int32(C), np.int64(H * W), np.int32(size),
              _scalar(x.dtype, alpha), _scalar(x.dtype, beta), _scalar(x.dtype, k)))
    return y
