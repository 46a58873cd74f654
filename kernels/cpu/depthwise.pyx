"""Depthwise convolution (groups == C, K = M * C output channels, any kernel, stride, padding, dilation).

Output channel k reads input channel k // M with its own R x S filter w[k, 0]. The kernels are in
depthwise.h (AVX-512 and AVX2 intrinsics, a plain C path in the generic build); this module checks the arrays it
is handed, cuts the output into work items (planes, or bands of rows when planes are few) and runs the
items on `nthreads` OpenMP threads without the GIL.
"""
import numpy as np

from kernels.cpu.checks import check_kernel_args

cimport cython
from cython.parallel cimport prange
from libc.stdint cimport int64_t

cdef extern from "depthwise.h" nogil:
    ctypedef struct dw_geom:
        pass
    void dw_geom_init(dw_geom *g, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                      int64_t R, int64_t S, int64_t P, int64_t Q, int64_t sh, int64_t sw,
                      int64_t pt, int64_t pl, int64_t dh, int64_t dw, int act)
    int64_t dw_items(const dw_geom *g)
    void dw_run_f32(const dw_geom *g, const float *x, const float *w, const float *bias, float *y,
                    int64_t item_begin, int64_t item_end)
    void dw_run_f64(const dw_geom *g, const double *x, const double *w, const double *bias, double *y,
                    int64_t item_begin, int64_t item_end)


cdef void _run(const cython.floating[:, :, :, ::1] x, const cython.floating[:, :, :, ::1] w,
               const cython.floating[::1] bias, cython.floating[:, :, :, ::1] y,
               const dw_geom *g, int nthreads) noexcept:
    """Run the work items of g, one contiguous range per thread (the items' results do not depend on
    the split); x may be empty (all of it padding) when y is not."""
    cdef const cython.floating *xp = NULL
    cdef const cython.floating *wp = &w[0, 0, 0, 0]
    cdef const cython.floating *bp = NULL
    if x.shape[2] * x.shape[3] > 0:
        xp = &x[0, 0, 0, 0]
    if bias is not None:
        bp = &bias[0]
    cdef cython.floating *yp = &y[0, 0, 0, 0]
    cdef int64_t t, n = dw_items(g)
    if nthreads > n:
        nthreads = <int>n
    with nogil:
        for t in prange(nthreads, num_threads=nthreads, schedule="static", chunksize=1):
            if cython.floating is float:
                dw_run_f32(g, xp, wp, bp, yp, n * t // nthreads, n * (t + 1) // nthreads)
            else:
                dw_run_f64(g, xp, wp, bp, yp, n * t // nthreads, n * (t + 1) // nthreads)


def conv2d(x, w, bias, y, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pad_top, Py_ssize_t pad_left,
           Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int act, int nthreads):
    """y = act(depthwise_conv(x, w) + bias), written into y (N, K, P, Q); see kernels/_conv.py for the
    contract. x (N, C, H, W), w (K, 1, R, S), bias (K,) or None, all C-contiguous of one dtype."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = w.shape[0], R = w.shape[2], S = w.shape[3]
    cdef Py_ssize_t P = y.shape[2], Q = y.shape[3]
    if groups != C or C < 1 or K % C or w.shape[1] != 1:
        raise ValueError(f"depthwise needs groups == C and w of shape (M*C, 1, R, S), got groups={groups}, "
                         f"x {x.shape}, w {w.shape}")
    check_kernel_args(x, w, bias, y, sh, sw, pad_top, pad_left, dh, dw, groups, act, nthreads)
    cdef dw_geom g
    dw_geom_init(&g, N, C, H, W, K, R, S, P, Q, sh, sw, pad_top, pad_left, dh, dw, act)
    if dw_items(&g) == 0:
        return
    dtype = x.dtype
    if dtype == np.float32:
        _run[float](x, w, bias, y, &g, nthreads)
    elif dtype == np.float64:
        _run[double](x, w, bias, y, &g, nthreads)
    else:
        raise TypeError(f"x must be float32 or float64, got {dtype}")
