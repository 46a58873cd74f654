"""Fast conversions between NCHW and the channel-blocked layout (layout.h; the layout's contract and the
simple NumPy versions of to_blocked / from_blocked are in kernels/blocked.py, with the same meaning).

    to_blocked(x, out, halo, nthreads)      x (N, C, H, W) -> out (N, ceil(C/16), H + 2h, W + 2h, 16)
    from_blocked(xb, halo, out, nthreads)   xb (N, Cb, H + 2h, W + 2h, 16) -> out (N, C, H, W)
    pad_nchw(x, out, halo, nthreads)        x (N, C, H, W) -> out (N, C, H + 2h, W + 2h), frame zero
    fingerprint(a, nthreads)                (s1, s2): two 64-bit sums of a's 32-bit words

float32 only. NCHW arrays are C-contiguous; a blocked buffer needs its three innermost axes
contiguous (a channel-block slice of a larger buffer qualifies). to_blocked writes every element of
out (the frame and the lanes of channels >= C as zeros); pad_nchw writes every element of its out.
Every function releases the GIL and splits its rows over `nthreads` OpenMP threads; the work is pure
data movement (and, for fingerprint, sums that are exact in any order), so results never depend on
the thread count. Inputs may be read-only.
"""
from cython.parallel cimport prange
from libc.stdint cimport uint32_t, uint64_t

import numpy as np

cdef extern from "layout.h" nogil:
    enum:
        LBL
    Py_ssize_t FP_CHUNK
    void lay_to_blocked_row(const float *x, Py_ssize_t xc, int nc, Py_ssize_t W, Py_ssize_t h, float *yrow)
    void lay_from_blocked_row(const float *xrow, Py_ssize_t W, int nc, float *y, Py_ssize_t yc)
    void lay_pad_row(const float *x, Py_ssize_t W, Py_ssize_t h, float *yrow)
    void lay_fingerprint_chunk(const uint32_t *u, Py_ssize_t i0, Py_ssize_t n, uint64_t *s1, uint64_t *s2)


def _nchw(a, name):
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.ndim != 4:
        raise TypeError(f"{name} must be a 4-D float32 numpy array (N, C, H, W), got "
                        f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")


def _blocked(a, name):
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.ndim != 5 or a.shape[4] != LBL:
        raise TypeError(f"{name} must be a 5-D float32 numpy array (N, Cb, H + 2h, W + 2h, {LBL}), got "
                        f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}")
    if a.size and (a.strides[4] != 4 or a.strides[3] != 4 * LBL or a.strides[2] != 4 * LBL * a.shape[3]):
        raise ValueError(f"{name} must have its three innermost axes contiguous, got strides {a.strides}")


def _halo(halo):
    if halo < 0:
        raise ValueError(f"halo must be >= 0, got {halo}")


def _threads(nthreads):
    if nthreads < 1:
        raise ValueError(f"nthreads must be >= 1, got {nthreads}")


def to_blocked(x, out, Py_ssize_t halo, int nthreads=1):
    """out = x in the blocked layout with a zero frame of `halo` and zero padded lanes."""
    _nchw(x, "x")
    _blocked(out, "out")
    _halo(halo)
    _threads(nthreads)
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Cb = (C + LBL - 1) // LBL, Hp = H + 2 * halo
    if tuple(out.shape) != (N, Cb, Hp, W + 2 * halo, LBL):
        raise ValueError(f"out must have shape {(N, Cb, Hp, W + 2 * halo, LBL)} for x {x.shape} and halo "
                         f"{halo}, got {out.shape}")
    if out.size == 0:
        return
    cdef const float[:, :, :, ::1] xv = x
    cdef float[:, :, :, :, :] yv = out         # strided: a channel-block slice qualifies
    cdef Py_ssize_t yn = out.strides[0] // 4, yc = out.strides[1] // 4, yr = out.strides[2] // 4
    cdef const float *xp = &xv[0, 0, 0, 0]
    cdef float *yp = &yv[0, 0, 0, 0, 0]
    cdef Py_ssize_t item, n, cb, r, i
    cdef int nc
    with nogil:
        for item in prange(N * Cb * Hp, num_threads=nthreads, schedule="static"):
            n = item // (Cb * Hp)
            cb = (item // Hp) % Cb
            r = item % Hp
            i = r - halo
            nc = <int>(C - cb * LBL if C - cb * LBL < LBL else LBL)
            lay_to_blocked_row(xp + ((n * C + cb * LBL) * H + i) * W if 0 <= i < H else NULL, H * W, nc, W, halo,
                               yp + n * yn + cb * yc + r * yr)


def from_blocked(xb, Py_ssize_t halo, out, int nthreads=1):
    """out (N, C, H, W) = the interior of the blocked xb (its first C channels)."""
    _blocked(xb, "xb")
    _nchw(out, "out")
    _halo(halo)
    _threads(nthreads)
    cdef Py_ssize_t N = out.shape[0], C = out.shape[1], H = out.shape[2], W = out.shape[3]
    cdef Py_ssize_t Cb = (C + LBL - 1) // LBL
    if tuple(xb.shape) != (N, Cb, H + 2 * halo, W + 2 * halo, LBL):
        raise ValueError(f"xb must have shape {(N, Cb, H + 2 * halo, W + 2 * halo, LBL)} for out {out.shape} "
                         f"and halo {halo}, got {xb.shape}")
    if out.size == 0:
        return
    cdef const float[:, :, :, :, :] xv = xb   # strided: a channel-block slice qualifies
    cdef float[:, :, :, ::1] yv = out
    cdef Py_ssize_t xn = xb.strides[0] // 4, xc = xb.strides[1] // 4, xr = xb.strides[2] // 4
    cdef const float *xp = &xv[0, 0, 0, 0, 0]
    cdef float *yp = &yv[0, 0, 0, 0]
    cdef Py_ssize_t item, n, cb, i
    cdef int nc
    with nogil:
        for item in prange(N * Cb * H, num_threads=nthreads, schedule="static"):
            n = item // (Cb * H)
            cb = (item // H) % Cb
            i = item % H
            nc = <int>(C - cb * LBL if C - cb * LBL < LBL else LBL)
            lay_from_blocked_row(xp + n * xn + cb * xc + (i + halo) * xr + halo * LBL, W, nc,
                                 yp + ((n * C + cb * LBL) * H + i) * W, H * W)


def pad_nchw(x, out, Py_ssize_t halo, int nthreads=1):
    """out (N, C, H + 2h, W + 2h) = x with a zero frame of `halo` (the blocked stem's NCHW input)."""
    _nchw(x, "x")
    _nchw(out, "out")
    _halo(halo)
    _threads(nthreads)
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3], Hp = H + 2 * halo
    if tuple(out.shape) != (N, C, Hp, W + 2 * halo):
        raise ValueError(f"out must have shape {(N, C, Hp, W + 2 * halo)} for x {x.shape} and halo {halo}, "
                         f"got {out.shape}")
    if out.size == 0:
        return
    cdef const float[:, :, :, ::1] xv = x
    cdef float[:, :, :, ::1] yv = out
    cdef const float *xp = &xv[0, 0, 0, 0]
    cdef float *yp = &yv[0, 0, 0, 0]
    cdef Py_ssize_t item, r, i, Wp = W + 2 * halo
    with nogil:
        for item in prange(N * C * Hp, num_threads=nthreads, schedule="static"):
            r = item % Hp
            i = r - halo
            lay_pad_row(xp + ((item // Hp) * H + i) * W if 0 <= i < H else NULL, W, halo, yp + item * Wp)


def fingerprint(a, int nthreads=1):
    """(s1, s2), two 64-bit sums over the 32-bit words of a C-contiguous array whose item size is a
    multiple of 4 (layout.h has the formula). Any change of one word changes s1; s2 mixes each word
    with its position, so reorderings and other changes show in it too (by chance alone can both sums
    survive a change: a check of content, not a cryptographic hash)."""
    if not isinstance(a, np.ndarray) or a.dtype.itemsize % 4 or not a.flags.c_contiguous:
        raise TypeError("a must be a C-contiguous numpy array with items of 4 or 8 bytes")
    _threads(nthreads)
    if a.size == 0:
        return (0, 0)
    cdef const uint32_t[::1] u = a.reshape(-1).view(np.uint32)
    cdef Py_ssize_t n = u.shape[0], nchunk = (n + FP_CHUNK - 1) // FP_CHUNK, k, i0
    cdef uint64_t s1 = 0, s2 = 0, c1, c2
    with nogil:
        for k in prange(nchunk, num_threads=nthreads, schedule="static"):
            i0 = k * FP_CHUNK
            c1 = 0     # assigned here, so each thread has its own (written only through the pointers below,
            c2 = 0     # Cython would share them between the threads)
            lay_fingerprint_chunk(&u[i0], i0, FP_CHUNK if n - i0 > FP_CHUNK else n - i0, &c1, &c2)
            s1 += c1
            s2 += c2
    return (int(s1), int(s2))
