"""The inference plan's dense convolutions on AMX tiles (amx.h), as a prepared step like blocked.Conv.

Built for every ISA; only the avx512 variant is compiled with AMX, and `usable()` is False in the
others and on CPUs (or kernels) without the tile state, where no Conv can be made.
"""
from cython.parallel cimport prange
from libc.stdint cimport uint16_t

import numpy as np

from kernels.blocked import aligned_empty

cdef extern from "amx.h" nogil:
    ctypedef struct bamx:
        Py_ssize_t xn, xc, xr, yn, yc, yr, rn, rc, rr
        Py_ssize_t N, Cb, Kb, H, W, P, Q, R, S, sh, sw, dh, dw, pt, pl
        Py_ssize_t yh
        int act
        int im2col
        Py_ssize_t CI
        Py_ssize_t band, nband, kt, ngrp, nimg, nig, ncc, items
        Py_ssize_t want_band, want_kt, want_nimg, want_ncc
    int bamx_built()
    int bamx_usable()
    int bamx_geometry(bamx *g)
    void bamx_plan(bamx *g, int nthreads)
    int bamx_item(const bamx *g, const float *x, const float *s, const uint16_t *w, const float *bias,
                  const float *res, float *y, Py_ssize_t item)

_USABLE = bool(bamx_built()) and bool(bamx_usable())


def built():
    """Whether this variant was compiled with the AMX kernel."""
    return bool(bamx_built())


def usable():
    """Whether the AMX kernel runs here: built with it, a CPU with AMX-BF16 and AVX512-BF16, and the
    OS's permission for the tile state (asked once, at import, for the whole process)."""
    return _USABLE


cdef inline Py_ssize_t _st(a, int axis):
    return a.strides[axis] // 4


cdef class Conv:
    """Conv(x, x_halo, aw, y, y_halo, res=None, r_halo=0, act=0): y = act(conv(x, aw) + bias [+ res])
    on blocked float32 buffers with AmxWeights aw, its operands checked once; calling it with a
    thread count runs the kernel (an inference plan's step; it holds the arrays). The arguments are
    blocked.Conv's, and so is its float32 twin `exact`, which reruns a call whose input holds an
    infinity. The work partition is planned per thread count and kept; a call runs on a copy, so
    Python threads calling one Conv share no mutable state."""
    cdef bamx g
    cdef int planned
    cdef const float *xp
    cdef const float *sp
    cdef const uint16_t *wp
    cdef const float *bp
    cdef const float *rp
    cdef float *yp
    cdef object keep
    cdef readonly object exact
    cdef object scale           # scale_inputs' s, until the twin has been given it (see __call__)

    def __cinit__(self, x, Py_ssize_t x_halo, aw, y, Py_ssize_t y_halo, res=None, Py_ssize_t r_halo=0,
                  int act=0):
        from kernels.cpu import load
        if not _USABLE:
            raise RuntimeError("the AMX kernel does not run here (kernels.cpu.load('amx').usable() is False)")
        # the float32 twin checks every operand as blocked.Conv does (types, shapes, halos, act)
        self.exact = load("blocked").Conv(x, x_halo, aw.exact, y, y_halo, res, r_halo, act)
        cdef bamx *g = &self.g
        cdef const float[:, :, :, :, :] x5
        cdef const float[:, :, :, ::1] x4
        cdef float[:, :, :, :, :] y5 = y
        cdef const uint16_t[:, :, :, :, :, ::1] w6 = aw.w
        cdef const float[::1] b1 = aw.bias
        cdef const float[:, :, :, :, :] r5
        g.N, g.Kb = y.shape[0], y.shape[1]
        g.H, g.W = x.shape[2] - 2 * x_halo, x.shape[3] - 2 * x_halo
        g.P, g.Q = y.shape[2] - 2 * y_halo, y.shape[3] - 2 * y_halo
        g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl = aw.R, aw.S, aw.sh, aw.sw, aw.dh, aw.dw, aw.pt, aw.pl
        g.im2col = aw.nchw_input
        if g.im2col:        # the stem: x a zero-padded NCHW array, checked by the twin
            g.Cb, g.CI = 1, x.shape[1]
            fits = w6.shape[1] == (g.CI * g.R * g.S + 31) // 32 and w6.shape[2] == 1
        else:
            g.Cb, g.CI = x.shape[1], 16
            fits = w6.shape[1] == (g.Cb + 1) // 2 and w6.shape[2] == g.R * g.S
        if w6.shape[0] != g.Kb or not fits:
            raise ValueError(f"the AMX weights {aw.w.shape} do not fit x {x.shape} and y {y.shape}")
        g.xn, g.xc, g.xr = _st(x, 0), _st(x, 1), _st(x, 2)
        if not bamx_geometry(g):
            raise ValueError(f"the AMX kernel does not take {g.R}x{g.S} taps at stride ({g.sh}, {g.sw})")
        g.yn, g.yc, g.yr = _st(y, 0), _st(y, 1), _st(y, 2)
        g.rn = g.rc = g.rr = 0
        self.rp = NULL
        if res is not None:
            r5 = res
            g.rn, g.rc, g.rr = _st(res, 0), _st(res, 1), _st(res, 2)
            self.rp = &r5[0, 0, r_halo, r_halo, 0]
        g.act, g.yh = act, y_halo
        g.items = 0
        g.want_band = g.want_kt = g.want_nimg = g.want_ncc = 0
        if g.im2col:
            x4 = x
            self.xp = &x4[0, 0, x_halo, x_halo]
        else:
            x5 = x
            self.xp = &x5[0, 0, x_halo, x_halo, 0]
        self.sp = NULL
        self.wp, self.bp = &w6[0, 0, 0, 0, 0, 0], &b1[0]
        self.yp = &y5[0, 0, y_halo, y_halo, 0]
        self.planned = 0
        self.keep = (x, aw, y, res)

    def set_partition(self, Py_ssize_t band=0, Py_ssize_t images=0, Py_ssize_t blocks=0, Py_ssize_t chunk=0):
        """Fix parts of the work partition instead of the model's choice (0: the model's): rows per
        band, images per item (whole planes only), output blocks per group (a multiple of 4, or all)
        and input groups of 32 channels per weight chunk. Results are the same bits for every
        partition (each output's reduction order does not depend on it). For measuring the model."""
        g = &self.g
        if band < 0 or images < 0 or blocks < 0 or chunk < 0:
            raise ValueError(f"band, images, blocks and chunk must be >= 0, got {band}, {images}, {blocks}, {chunk}")
        if band > g.P or (band and images > 1 and band != g.P):
            raise ValueError(f"band must be at most the {g.P} rows, and all of them with several images, got {band}")
        # equal splits, in C's (truncating) integer division: ceil(n / ceil(n / k)) == k
        if images > g.N or (images and (g.N + (g.N + images - 1) // images - 1) // ((g.N + images - 1) // images) != images):
            raise ValueError(f"images must divide the batch of {g.N} into equal groups, got {images}")
        if blocks and blocks % 4 and blocks < g.Kb:
            raise ValueError(f"blocks must be a multiple of 4 or all {g.Kb}, got {blocks}")
        if band and (g.P + (g.P + band - 1) // band - 1) // ((g.P + band - 1) // band) != band:
            raise ValueError(f"band must split the {g.P} rows into equal bands, got {band}")
        g.want_band, g.want_nimg, g.want_kt, g.want_ncc = band, images, blocks, chunk
        self.planned = 0

    @property
    def partition(self):
        """{"band": rows per item, "bands", "blocks": output blocks per group, "groups", "images": per
        item, "image_groups", "chunk": input groups of 32 channels per weight chunk} planned for the
        last call; None before."""
        if not self.planned:
            return None
        g = self.g
        return {"band": g.band, "bands": g.nband, "blocks": g.kt, "groups": g.ngrp, "images": g.nimg,
                "image_groups": g.nig, "chunk": g.ncc}

    def __call__(self, int nthreads=1):
        cdef bamx g
        cdef Py_ssize_t i
        cdef int inf = 0, nomem = 0, r
        if nthreads < 1:
            raise ValueError(f"nthreads must be >= 1, got {nthreads}")
        if self.g.N * self.g.Kb * self.g.P * self.g.Q == 0:
            return
        if self.planned != nthreads:
            g = self.g
            bamx_plan(&g, nthreads)
            self.g, self.planned = g, nthreads
        g = self.g
        with nogil:
            for i in prange(g.items, num_threads=nthreads, schedule="static"):
                r = bamx_item(&g, self.xp, self.sp, self.wp, self.bp, self.rp, self.yp, i)
                if r > 0:
                    inf += 1
                elif r < 0:
                    nomem += 1
        if nomem:
            raise MemoryError("no memory for the AMX kernel's scratch")
        if inf:
            if self.scale is not None:
                # the twin folds the scale into per-image weights (its own way): made only now, as
                # this rerun is rare and the weights of every image take memory
                aw = self.keep[1]
                self.exact.scale_inputs(self.scale, aligned_empty((self.g.N,) + aw.exact.w.shape))
                self.scale = None
            self.exact(nthreads)


    def scale_inputs(self, s):
        """Scale the input channels per image by s (N, Cb*16) float32, C-contiguous, read at every
        call (a view of the buffer a previous step writes): each call then computes conv(x * s[n, c])
        with the scale applied as the input is converted to bf16, at no cost (a squeeze-and-excitation
        scale folded into the convolution that reads it)."""
        cdef const float[:, ::1] s2
        if self.g.im2col:
            raise ValueError("scale_inputs needs a blocked input (not the stem's NCHW one)")
        if not isinstance(s, np.ndarray) or s.dtype != np.float32 or s.ndim != 2 or not s.flags.c_contiguous:
            raise TypeError("s must be a 2-D C-contiguous float32 numpy array")
        if s.shape != (self.g.N, self.g.Cb * 16):
            raise ValueError(f"s must be ({self.g.N}, {self.g.Cb * 16}), got {s.shape}")
        self.scale = s if self.g.N else None
        if self.g.N == 0:
            return
        s2 = s
        self.sp = &s2[0, 0]
        self.keep = self.keep + (s,)


def conv(x, Py_ssize_t x_halo, aw, y, Py_ssize_t y_halo, res=None, Py_ssize_t r_halo=0, int act=0,
         int nthreads=1):
    """y = act(conv(x, aw) + bias [+ res]) on AMX tiles (kernels.amx.conv's contract)."""
    Conv(x, x_halo, aw, y, y_halo, res, r_halo, act)(nthreads)
