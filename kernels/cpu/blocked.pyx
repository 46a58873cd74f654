"""The inference plan's float32 kernels on the channel-blocked layout (blocked.h; the layout and the
simple NumPy version of each op are in kernels/blocked.py, with the same signatures).

Buffers are (N, Cb, H + 2h, W + 2h, 16) float32 arrays whose three innermost axes are contiguous (a
channel-block slice of a larger buffer qualifies: the N and block strides come from the array, so
the memoryviews are declared strided).
Every function releases the GIL and runs `nthreads` OpenMP threads over independent work items whose
reduction order depends on the geometry only, so results do not depend on the thread count. Each
writes its output's interior and zeroes its frame (the layout's invariant; the convolutions' work
items zero the frame of the rows they own, in the same parallel loop).
"""
from cython.parallel cimport prange

import numpy as np

from kernels.cpu import cpuid

cdef extern from "blocked.h" nogil:
    enum:
        BL
    ctypedef struct btcost:
        int bcast_q, spill_q
    ctypedef struct bconv:
        Py_ssize_t xn, xc, xr, yn, yc, yr, rn, rc, rr
        Py_ssize_t N, Cb, CI, Kb, P, Q, R, S, sh, sw, dh, dw
        Py_ssize_t ps, cs, x0, yh
        int act
        int kb, np
        Py_ssize_t ngrp, cbc, band, nband, items
        int flat
        int want_kb, want_np, want_flat
        Py_ssize_t want_cbc
        btcost cost
        Py_ssize_t wn
    int b_npmax(int kb)
    int b_fnpmax(int kb)
    void bconv_plan(bconv *g, int nthreads)
    void bconv_item(const bconv *g, const float *x, const float *w, const float *bias, const float *res,
                    float *y, Py_ssize_t item)
    void bconv_scale_weights(const bconv *g, const float *w, const float *s, float *out, Py_ssize_t kb)
    ctypedef struct bdw:
        Py_ssize_t xn, xc, xr, yn, yc, yr, rn, rc, rr
        Py_ssize_t N, Cb, P, Q, R, S, sh, sw, dh, dw
        Py_ssize_t x0, yh
        int act
        Py_ssize_t band, nband
        double *rs
    void bdw_plan(bdw *g, int nthreads)
    void bdw_item(const bdw *g, const float *x, const float *w, const float *bias, const float *res,
                  float *y, Py_ssize_t item)
    ctypedef struct bwino:
        Py_ssize_t xn, xc, xr, yn, yc, yr, rn, rc, rr
        Py_ssize_t N, Cb, Kb, P, Q
        Py_ssize_t x0, hl, wl, yh
        int act, m
        Py_ssize_t tp, tq, tb, items
        int kb, np
        btcost cost
    void bpool_plane(const float *x, Py_ssize_t xr, Py_ssize_t H, Py_ssize_t W, float *y, Py_ssize_t yr,
                     Py_ssize_t P, Py_ssize_t Q, int is_max, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                     Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, int include_pad)
    void bmean_plane(const float *x, Py_ssize_t xr, Py_ssize_t H, Py_ssize_t W, float *out)
    void bmean_rows(const double *rs, Py_ssize_t P, Py_ssize_t pixels, float *out)
    void bscale_plane(const float *x, Py_ssize_t xr, Py_ssize_t H, Py_ssize_t W, const float *s, float *y,
                      Py_ssize_t yr)
    void badd_plane(const float *a, Py_ssize_t ar, const float *b, Py_ssize_t br, Py_ssize_t H, Py_ssize_t W,
                    float *y, Py_ssize_t yr, int act)
    void bzero_frame(float *y, Py_ssize_t yr, Py_ssize_t H, Py_ssize_t W, Py_ssize_t h)


cdef extern from "winograd.h" nogil:
    void bwino_plan(bwino *g, int nthreads)
    int bwino_item(const bwino *g, const float *x, const float *U, const float *bias, const float *res,
                   float *y, Py_ssize_t item)


# The register-tile cost model's machine constants (blocked.h btcost, in quarter FMA slots: a broadcast
# load per pixel, the spill of 4 x 7), by CPU vendor, each fitted to `python -m benchmarks.tiles`
# on one host (tables in benchmarks/results/*/kernels/tiles.md). On an Intel Xeon (Emerald Rapids) the
# broadcasts compete with the weight loads and the spill is cheap: 4 x 7 ran 1-14% faster than 2 x 14.
# On an AMD EPYC (Zen 5) broadcasts cost nothing beside the FMAs and the spill costs about 3 slots:
# 2 x 14 ran 3-40% faster than 4 x 7 on 10 of the 15 layers (4 x 7 only where a row has 7 pixels).
TILE_COSTS = {"intel": (1, 2), "amd": (0, 12)}
TILE_COSTS["other"] = TILE_COSTS["amd"]
_MACHINE_COSTS = TILE_COSTS[cpuid.vendor()]


cdef btcost _costs(name) except *:
    """The btcost of TILE_COSTS[name] (None: this CPU's vendor)."""
    cdef btcost c
    if name is None:
        c.bcast_q, c.spill_q = _MACHINE_COSTS
    elif name in TILE_COSTS:
        c.bcast_q, c.spill_q = TILE_COSTS[name]
    else:
        raise ValueError(f"costs must be one of {sorted(TILE_COSTS)} or None, got {name!r}")
    return c


cdef inline Py_ssize_t _st(a, int axis):
    """The stride of an axis in elements."""
    return a.strides[axis] // 4


def _check(a, name, ndim=5):
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.ndim != ndim:
        raise TypeError(f"{name} must be a {ndim}-D float32 numpy array")
    if ndim == 5 and a.shape[4] != BL:
        raise ValueError(f"{name} must have {BL} lanes innermost, got shape {a.shape}")
    # the rows, pixels and lanes of a plane contiguous (the n and block strides may be a slice's)
    inner = (a.shape[3] * a.shape[4] * 4, a.shape[4] * 4, 4) if ndim == 5 else (a.shape[3] * 4, 4)
    if tuple(a.strides[-len(inner):]) != inner and a.size:
        raise ValueError(f"{name} must have contiguous planes (strides {a.strides})")


cdef const float *_residual(res, Py_ssize_t r_halo, y, Py_ssize_t y_halo, Py_ssize_t P, Py_ssize_t Q,
                            Py_ssize_t *rn, Py_ssize_t *rc, Py_ssize_t *rr) except? NULL:
    """The residual's interior origin and strides (NULL and zeros without one), checked against y.
    The pointer is into res's own buffer, which the caller holds for the call."""
    cdef const float[:, :, :, :, :] r5
    rn[0] = rc[0] = rr[0] = 0
    if res is None:
        return NULL
    _check(res, "res")
    if tuple(res.shape[:2]) != tuple(y.shape[:2]) or res.shape[2] - 2 * r_halo != P or res.shape[3] - 2 * r_halo != Q:
        raise ValueError(f"res {res.shape} (halo {r_halo}) does not match y {y.shape} (halo {y_halo})")
    r5 = res
    rn[0], rc[0], rr[0] = _st(res, 0), _st(res, 1), _st(res, 2)
    return &r5[0, 0, r_halo, r_halo, 0]


cdef int _check_act(int act) except -1:
    if not 0 <= act <= 4:
        raise ValueError(f"act must be 0 .. 4, got {act}")
    return 0


def _frame(float[:, :, :, :, :] y, Py_ssize_t halo, int nthreads):
    cdef Py_ssize_t i, N = y.shape[0], Cb = y.shape[1], H = y.shape[2] - 2 * halo, W = y.shape[3] - 2 * halo
    cdef Py_ssize_t yr = y.strides[2] // 4
    if halo == 0:
        return
    with nogil:
        for i in prange(N * Cb, num_threads=nthreads, schedule="static"):
            bzero_frame(&y[i // Cb, i % Cb, 0, 0, 0], yr, H, W, halo)


cdef class _Step:
    """A kernel call with its operands checked once: the buffers' origins (held by `keep`) and the
    thread count the kept work partition was planned for."""
    cdef int planned
    cdef const float *xp
    cdef const float *wp
    cdef const float *bp
    cdef const float *rp
    cdef float *yp
    cdef object keep


cdef class Conv(_Step):
    """conv(x, x_halo, cw, y, y_halo, res, r_halo, act) with its operands checked once: calling it with a
    thread count runs the kernel on those buffers (an inference plan's step; it holds the arrays).
    The work partition is planned per thread count and kept; the kernel runs on a copy of it, so
    Python threads calling one Conv never share mutable state (but the per-image weights of
    `scale_inputs`, which every call rewrites with the same values)."""
    cdef bconv g
    cdef const float *sp        # scale_inputs: the (N, Cb*16) scales, or NULL
    cdef float *swp             # ... and the (N,) + cw.w.shape buffer of each image's weights

    def __cinit__(self, x, Py_ssize_t x_halo, cw, y, Py_ssize_t y_halo, res=None, Py_ssize_t r_halo=0,
                  int act=0):
        cdef bconv *g = &self.g
        nchw = cw.nchw_input
        _check(x, "x", 4 if nchw else 5)
        _check(y, "y")
        if x_halo < max(cw.pt, cw.pl):
            raise ValueError(f"the input halo {x_halo} is smaller than the padding ({cw.pt}, {cw.pl})")
        cdef const float[:, :, :, ::1] x4
        cdef const float[:, :, :, :, :] x5
        cdef float[:, :, :, :, :] y5 = y
        cdef const float[:, :, :, :, :, ::1] w6 = cw.w
        cdef const float[::1] b1 = cw.bias
        g.N = y.shape[0]
        g.Kb = y.shape[1]
        g.P = y.shape[2] - 2 * y_halo
        g.Q = y.shape[3] - 2 * y_halo
        g.R, g.S, g.sh, g.sw, g.dh, g.dw = cw.R, cw.S, cw.sh, cw.sw, cw.dh, cw.dw
        if w6.shape[0] != g.Kb or w6.shape[5] != BL:
            raise ValueError(f"the packed weights {cw.w.shape} do not fit y {y.shape}")
        if nchw:
            x4 = x
            self.xp = &x4[0, 0, 0, 0]
            g.Cb, g.CI = 1, x.shape[1]
            g.ps, g.cs = 1, _st(x, 1)
        else:
            x5 = x
            self.xp = &x5[0, 0, 0, 0, 0]
            g.Cb, g.CI = x.shape[1], BL
            g.ps, g.cs = BL, 1
        g.xn, g.xc, g.xr = _st(x, 0), _st(x, 1), _st(x, 2)
        Hin, Win = x.shape[2] - 2 * x_halo, x.shape[3] - 2 * x_halo
        if w6.shape[1] != g.Cb or w6.shape[4] != g.CI or w6.shape[2] != g.R or w6.shape[3] != g.S:
            raise ValueError(f"the packed weights {cw.w.shape} do not fit x {x.shape}")
        # every tap of every output must lie inside the buffer (the frame covers the padding)
        if ((g.P - 1) * g.sh + (g.R - 1) * g.dh - cw.pt >= Hin + x_halo or
                (g.Q - 1) * g.sw + (g.S - 1) * g.dw - cw.pl >= Win + x_halo):
            raise ValueError(f"y {y.shape} reads past x {x.shape} (halo {x_halo})")
        g.x0 = (x_halo - cw.pt) * g.xr + (x_halo - cw.pl) * g.ps
        g.yn, g.yc, g.yr = _st(y, 0), _st(y, 1), _st(y, 2)
        self.rp = _residual(res, r_halo, y, y_halo, g.P, g.Q, &g.rn, &g.rc, &g.rr)
        _check_act(act)
        g.act = act
        g.yh = y_halo
        g.items = 0
        g.want_kb = g.want_np = g.want_flat = 0
        g.want_cbc = 0
        g.wn = 0
        self.sp, self.swp = NULL, NULL
        g.cost = _costs(None)
        self.wp, self.bp = &w6[0, 0, 0, 0, 0, 0], &b1[0]
        self.yp = &y5[0, 0, y_halo, y_halo, 0]
        self.planned = 0
        self.keep = (x, cw, y, res)

    def set_tile(self, int kb=0, int np=0, costs=None, Py_ssize_t cbc=0, bint flat=False):
        """Fix the register tile, kb output blocks x np pixels of a row (or, `flat`, of the rows
        joined end to end), instead of the cost model's choice (0, 0 restores it), or let the model
        choose with another machine's constants (`costs`, a key of TILE_COSTS; None: this CPU's).
        Results are the same bits for every tile: each output's reduction order does not depend on
        it. For measuring the model (benchmarks.tiles) and the plan's tuning."""
        if (kb == 0) != (np == 0):
            raise ValueError(f"kb and np are fixed together (both 0: the model's tile), got kb={kb}, np={np}")
        if flat and not kb:
            raise ValueError("flat tiles are fixed with their kb and np")
        if kb:
            if not 1 <= kb <= 4:
                raise ValueError(f"kb must be 1 .. 4 (the last group of output blocks takes the rest), got {kb}")
            npmax = b_fnpmax(kb) if flat else b_npmax(kb)
            if not 1 <= np <= npmax:
                raise ValueError(f"np must be 1 .. {npmax} with kb={kb}{' (flat)' if flat else ''} (the "
                                 f"vector and pointer registers), got {np}")
            if flat and self.g.ps != BL:
                raise ValueError("flat tiles read a blocked input; this convolution reads NCHW")
        if cbc < 0:
            raise ValueError(f"cbc must be >= 0 (0: the model's chunks), got {cbc}")
        self.g.cost = _costs(costs)
        self.g.want_kb, self.g.want_np, self.g.want_cbc, self.g.want_flat = kb, np, cbc, flat
        self.planned = 0

    @property
    def tile(self):
        """(kb, np) of the partition planned for the last call; None before the first."""
        return (self.g.kb, self.g.np) if self.planned else None

    @property
    def flat(self):
        """Whether the partition planned for the last call tiles the rows joined (None before)."""
        return bool(self.g.flat) if self.planned else None

    @property
    def chunk(self):
        """Input blocks per reduction chunk of the partition planned for the last call; None before."""
        return self.g.cbc if self.planned else None

    @property
    def block_bytes(self):
        """Bytes of the planned tile's weights per input block (a chunk holds `chunk` of them)."""
        return self.g.kb * self.g.R * self.g.S * self.g.CI * BL * 4 if self.planned else None

    def __call__(self, int nthreads=1):
        cdef bconv g
        cdef Py_ssize_t i
        cdef const float *wp = self.wp
        if nthreads < 1:
            raise ValueError(f"nthreads must be >= 1, got {nthreads}")
        if self.g.N * self.g.Kb * self.g.P * self.g.Q * self.g.Cb == 0:
            return
        if self.planned != nthreads:
            g = self.g
            bconv_plan(&g, nthreads)
            self.g, self.planned = g, nthreads
        g = self.g
        with nogil:
            if self.sp != NULL:
                for i in prange(g.N * g.Kb, num_threads=nthreads, schedule="static"):
                    bconv_scale_weights(&g, self.wp, self.sp + (i // g.Kb) * g.Cb * BL,
                                        self.swp + (i // g.Kb) * g.wn, i % g.Kb)
                wp = self.swp
            for i in prange(g.items, num_threads=nthreads, schedule="static"):
                bconv_item(&g, self.xp, wp, self.bp, self.rp, self.yp, i)

    def scale_inputs(self, s, weights):
        """Fold a per-image scale of the input channels into the weights (a squeeze-and-excitation
        scale): each call then first writes image n's weights, cw.w * s[n] along the input channels,
        into `weights`, and convolves x with them, which gives conv(x * s[n, c]) without a pass over
        x. s: (N, Cb*16) float32, C-contiguous (read at every call, so a view of the buffer a previous
        step writes); weights: (N,) + cw.w.shape float32, C-contiguous, this Conv's own."""
        cdef const float[:, ::1] s2
        cdef float[:, ::1] w2
        if self.g.ps != BL:
            raise ValueError("scale_inputs needs a blocked input (not the stem's NCHW one)")
        if not isinstance(s, np.ndarray) or s.dtype != np.float32 or s.ndim != 2 or not s.flags.c_contiguous:
            raise TypeError("s must be a 2-D C-contiguous float32 numpy array")
        if s.shape != (self.g.N, self.g.Cb * BL):
            raise ValueError(f"s must be ({self.g.N}, {self.g.Cb * BL}), got {s.shape}")
        shape = (self.g.N, self.g.Kb, self.g.Cb, self.g.R, self.g.S, self.g.CI, BL)
        if not isinstance(weights, np.ndarray) or weights.dtype != np.float32 or not weights.flags.c_contiguous:
            raise TypeError("weights must be a C-contiguous float32 numpy array")
        if weights.shape != shape:
            raise ValueError(f"weights must have shape {shape}, got {weights.shape}")
        s2 = s
        w2 = weights.reshape(self.g.N, -1)
        if self.g.N == 0:
            return
        self.sp, self.swp = &s2[0, 0], &w2[0, 0]
        self.g.wn = w2.shape[1]
        self.keep = self.keep + (s, weights)


def conv(x, Py_ssize_t x_halo, cw, y, Py_ssize_t y_halo, res=None, Py_ssize_t r_halo=0, int act=0,
         int nthreads=1):
    """y = act(conv(x, cw) + bias [+ res]) (kernels.blocked.conv's contract). x is a blocked buffer, or
    for cw.nchw_input a zero-padded NCHW array (N, C, H + 2h, W + 2h)."""
    Conv(x, x_halo, cw, y, y_halo, res, r_halo, act)(nthreads)


cdef class Winograd(_Step):
    """winograd(x, x_halo, ww, y, y_halo, res, r_halo, act) with its operands checked once (as Conv):
    a 3x3 stride-1 convolution by Winograd F(m x m, 3 x 3) with WinogradWeights ww."""
    cdef bwino g

    def __cinit__(self, x, Py_ssize_t x_halo, ww, y, Py_ssize_t y_halo, res=None, Py_ssize_t r_halo=0,
                  int act=0):
        cdef bwino *g = &self.g
        _check(x, "x")
        _check(y, "y")
        if x_halo < max(ww.pt, ww.pl):
            raise ValueError(f"the input halo {x_halo} is smaller than the padding ({ww.pt}, {ww.pl})")
        cdef const float[:, :, :, :, :] x5 = x
        cdef float[:, :, :, :, :] y5 = y
        cdef const float[:, :, :, :, ::1] w5 = ww.w
        cdef const float[::1] b1 = ww.bias
        A = (ww.m + 2) * (ww.m + 2)
        g.N, g.Cb, g.Kb = y.shape[0], x.shape[1], y.shape[1]
        g.P, g.Q = y.shape[2] - 2 * y_halo, y.shape[3] - 2 * y_halo
        if x.shape[0] != g.N or tuple(ww.w.shape[:3]) != (A, g.Kb, g.Cb) or w5.shape[4] != BL:
            raise ValueError(f"x {x.shape}, y {y.shape} and the packed weights {ww.w.shape} do not fit")
        Hin, Win = x.shape[2] - 2 * x_halo, x.shape[3] - 2 * x_halo
        if g.P - 1 + 2 - ww.pt >= Hin + x_halo or g.Q - 1 + 2 - ww.pl >= Win + x_halo:
            raise ValueError(f"y {y.shape} reads past x {x.shape} (halo {x_halo})")
        g.xn, g.xc, g.xr = _st(x, 0), _st(x, 1), _st(x, 2)
        g.yn, g.yc, g.yr = _st(y, 0), _st(y, 1), _st(y, 2)
        g.x0 = (x_halo - ww.pt) * g.xr + (x_halo - ww.pl) * BL
        g.hl, g.wl = Hin + x_halo + ww.pt, Win + x_halo + ww.pl
        self.rp = _residual(res, r_halo, y, y_halo, g.P, g.Q, &g.rn, &g.rc, &g.rr)
        _check_act(act)
        g.act, g.m = act, ww.m
        g.yh = y_halo
        g.items = 0
        g.cost = _costs(None)
        self.xp, self.wp, self.bp = &x5[0, 0, 0, 0, 0], &w5[0, 0, 0, 0, 0], &b1[0]
        self.yp = &y5[0, 0, y_halo, y_halo, 0]
        self.planned = 0
        self.keep = (x, ww, y, res)

    def __call__(self, int nthreads=1):
        cdef bwino g
        cdef Py_ssize_t i
        cdef int failed = 0
        if nthreads < 1:
            raise ValueError(f"nthreads must be >= 1, got {nthreads}")
        if self.g.N * self.g.Kb * self.g.P * self.g.Q == 0:
            return
        if self.planned != nthreads:
            g = self.g
            bwino_plan(&g, nthreads)
            self.g, self.planned = g, nthreads
        g = self.g
        with nogil:
            for i in prange(g.items, num_threads=nthreads, schedule="static"):
                failed += bwino_item(&g, self.xp, self.wp, self.bp, self.rp, self.yp, i)
        if failed:
            raise MemoryError("no memory for the Winograd scratch")
        _frame(self.keep[2], g.yh, nthreads)


def winograd(x, Py_ssize_t x_halo, ww, y, Py_ssize_t y_halo, res=None, Py_ssize_t r_halo=0, int act=0,
             int nthreads=1):
    """y = act(conv(x, ww) + bias [+ res]) by Winograd F(m x m, 3 x 3) (kernels.blocked.winograd's contract)."""
    Winograd(x, x_halo, ww, y, y_halo, res, r_halo, act)(nthreads)


cdef class Depthwise(_Step):
    """depthwise(x, x_halo, dwt, y, y_halo, res, r_halo, act) with its operands checked once (as Conv).
    rowsum: None, or a C-contiguous float64 (N, Cb, P, 16) array that each call fills with the sums of
    every output row (for mean_rows: a global average pool fused into this epilogue)."""
    cdef bdw g

    def __cinit__(self, x, Py_ssize_t x_halo, dwt, y, Py_ssize_t y_halo, res=None, Py_ssize_t r_halo=0,
                  int act=0, rowsum=None):
        cdef bdw *g = &self.g
        _check(x, "x")
        _check(y, "y")
        if x_halo < max(dwt.pt, dwt.pl):
            raise ValueError(f"the input halo {x_halo} is smaller than the padding ({dwt.pt}, {dwt.pl})")
        cdef const float[:, :, :, :, :] x5 = x
        cdef float[:, :, :, :, :] y5 = y
        cdef const float[:, :, :, ::1] w4 = dwt.w
        cdef const float[::1] b1 = dwt.bias
        g.N, g.Cb = y.shape[0], y.shape[1]
        g.P, g.Q = y.shape[2] - 2 * y_halo, y.shape[3] - 2 * y_halo
        g.R, g.S, g.sh, g.sw, g.dh, g.dw = dwt.R, dwt.S, dwt.sh, dwt.sw, dwt.dh, dwt.dw
        if x.shape[0] != g.N or x.shape[1] != g.Cb or w4.shape[0] != g.Cb or w4.shape[1] != g.R or w4.shape[2] != g.S:
            raise ValueError(f"x {x.shape}, y {y.shape} and the packed weights {dwt.w.shape} do not fit")
        Hin, Win = x.shape[2] - 2 * x_halo, x.shape[3] - 2 * x_halo
        if ((g.P - 1) * g.sh + (g.R - 1) * g.dh - dwt.pt >= Hin + x_halo or
                (g.Q - 1) * g.sw + (g.S - 1) * g.dw - dwt.pl >= Win + x_halo):
            raise ValueError(f"y {y.shape} reads past x {x.shape} (halo {x_halo})")
        g.xn, g.xc, g.xr = _st(x, 0), _st(x, 1), _st(x, 2)
        g.yn, g.yc, g.yr = _st(y, 0), _st(y, 1), _st(y, 2)
        g.x0 = (x_halo - dwt.pt) * g.xr + (x_halo - dwt.pl) * BL
        self.rp = _residual(res, r_halo, y, y_halo, g.P, g.Q, &g.rn, &g.rc, &g.rr)
        _check_act(act)
        g.act = act
        g.yh = y_halo
        g.nband = 0
        g.rs = NULL
        cdef double[:, :, :, ::1] rs4
        if rowsum is not None:
            if not isinstance(rowsum, np.ndarray) or rowsum.dtype != np.float64 or \
                    not rowsum.flags.c_contiguous or rowsum.shape != (g.N, g.Cb, g.P, BL):
                raise ValueError(f"rowsum must be a C-contiguous float64 array of shape {(g.N, g.Cb, g.P, BL)}, "
                                 f"got {type(rowsum).__name__} {getattr(rowsum, 'dtype', '')} "
                                 f"{getattr(rowsum, 'shape', '')}")
            if g.N * g.Cb * g.P:
                rs4 = rowsum
                g.rs = &rs4[0, 0, 0, 0]
        self.xp, self.wp, self.bp = &x5[0, 0, 0, 0, 0], &w4[0, 0, 0, 0], &b1[0]
        self.yp = &y5[0, 0, y_halo, y_halo, 0]
        self.planned = 0
        self.keep = (x, dwt, y, res, rowsum)

    def __call__(self, int nthreads=1):
        cdef bdw g
        cdef Py_ssize_t i
        if nthreads < 1:
            raise ValueError(f"nthreads must be >= 1, got {nthreads}")
        if self.g.N * self.g.Cb * self.g.P * self.g.Q == 0:
            return
        if self.planned != nthreads:
            g = self.g
            bdw_plan(&g, nthreads)
            self.g, self.planned = g, nthreads
        g = self.g
        with nogil:
            for i in prange(g.N * g.Cb * g.nband, num_threads=nthreads, schedule="static"):
                bdw_item(&g, self.xp, self.wp, self.bp, self.rp, self.yp, i)


def depthwise(x, Py_ssize_t x_halo, dwt, y, Py_ssize_t y_halo, res=None, Py_ssize_t r_halo=0, int act=0,
              int nthreads=1):
    """y = act(depthwise conv(x, dwt) + bias [+ res]) (kernels.blocked.depthwise's contract)."""
    Depthwise(x, x_halo, dwt, y, y_halo, res, r_halo, act)(nthreads)


def pool(x, Py_ssize_t x_halo, y, Py_ssize_t y_halo, bint is_max, kernel, stride, padding,
         bint count_include_pad=True, int nthreads=1):
    """Max or average pooling of the interior of x (kernels.blocked.pool's contract)."""
    _check(x, "x")
    _check(y, "y")
    cdef const float[:, :, :, :, :] x5 = x
    cdef float[:, :, :, :, :] y5 = y
    cdef Py_ssize_t kh = kernel[0], kw = kernel[1], sh = stride[0], sw = stride[1], ph = padding[0], pw = padding[1]
    cdef Py_ssize_t N = y.shape[0], Cb = y.shape[1], P = y.shape[2] - 2 * y_halo, Q = y.shape[3] - 2 * y_halo
    cdef Py_ssize_t H = x.shape[2] - 2 * x_halo, W = x.shape[3] - 2 * x_halo, i
    if x.shape[0] != N or x.shape[1] != Cb:
        raise ValueError(f"x {x.shape} and y {y.shape} do not fit")
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0 or 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"bad pooling window: kernel {kernel}, stride {stride}, padding {padding}")
    if (P - 1) * sh - ph >= H or (Q - 1) * sw - pw >= W:
        raise ValueError(f"y {y.shape} has a window past x {x.shape}")
    cdef Py_ssize_t xr = _st(x, 2), yr = _st(y, 2)
    cdef int mx = is_max, inc = count_include_pad
    if N * Cb * P * Q == 0:
        return
    with nogil:
        for i in prange(N * Cb, num_threads=nthreads, schedule="static"):
            bpool_plane(&x5[i // Cb, i % Cb, x_halo, x_halo, 0], xr, H, W, &y5[i // Cb, i % Cb, y_halo, y_halo, 0],
                        yr, P, Q, mx, kh, kw, sh, sw, ph, pw, inc)
    _frame(y, y_halo, nthreads)


def global_avg_pool(x, Py_ssize_t x_halo, float[:, ::1] out, int nthreads=1):
    """out (N, Cb*16) = each lane's mean over the interior plane (summed in float64)."""
    _check(x, "x")
    cdef const float[:, :, :, :, :] x5 = x
    cdef Py_ssize_t N = x.shape[0], Cb = x.shape[1], H = x.shape[2] - 2 * x_halo, W = x.shape[3] - 2 * x_halo, i
    cdef Py_ssize_t xr = _st(x, 2)
    if out.shape[0] != N or out.shape[1] != Cb * BL:
        raise ValueError(f"out must be ({N}, {Cb * BL}), got ({out.shape[0]}, {out.shape[1]})")
    if N * Cb == 0:
        return
    with nogil:
        for i in prange(N * Cb, num_threads=nthreads, schedule="static"):
            bmean_plane(&x5[i // Cb, i % Cb, x_halo, x_halo, 0], xr, H, W, &out[i // Cb, (i % Cb) * BL])


def mean_rows(const double[:, :, :, ::1] rowsum, Py_ssize_t pixels, float[:, ::1] out, int nthreads=1):
    """out (N, Cb*16) = each lane's mean over a plane of `pixels` pixels from its row sums (N, Cb, P, 16),
    as a Depthwise step with `rowsum` leaves them: the global average pool of that step's output."""
    cdef Py_ssize_t N = rowsum.shape[0], Cb = rowsum.shape[1], P = rowsum.shape[2], i
    if rowsum.shape[3] != BL:
        raise ValueError(f"rowsum must be (N, Cb, P, {BL}), got {tuple(rowsum.shape)}")
    if out.shape[0] != N or out.shape[1] != Cb * BL:
        raise ValueError(f"out must be ({N}, {Cb * BL}), got ({out.shape[0]}, {out.shape[1]})")
    if pixels < 1 or P < 1:
        raise ValueError(f"pixels must be >= 1 with at least one row, got {pixels} over {P} rows")
    with nogil:
        for i in prange(N * Cb, num_threads=nthreads, schedule="static"):
            bmean_rows(&rowsum[i // Cb, i % Cb, 0, 0], P, pixels, &out[i // Cb, (i % Cb) * BL])


def scale_channels(x, Py_ssize_t x_halo, const float[:, ::1] s, y, Py_ssize_t y_halo, int nthreads=1):
    """y = x * s[n, c] per channel, s (N, Cb*16): the squeeze-and-excitation scale."""
    _check(x, "x")
    _check(y, "y")
    cdef const float[:, :, :, :, :] x5 = x
    cdef float[:, :, :, :, :] y5 = y
    cdef Py_ssize_t N = x.shape[0], Cb = x.shape[1], H = x.shape[2] - 2 * x_halo, W = x.shape[3] - 2 * x_halo, i
    if tuple(y.shape[:2]) != (N, Cb) or y.shape[2] - 2 * y_halo != H or y.shape[3] - 2 * y_halo != W:
        raise ValueError(f"x {x.shape} and y {y.shape} do not fit")
    if s.shape[0] != N or s.shape[1] != Cb * BL:
        raise ValueError(f"s must be ({N}, {Cb * BL}), got ({s.shape[0]}, {s.shape[1]})")
    cdef Py_ssize_t xr = _st(x, 2), yr = _st(y, 2)
    if N * Cb * H * W == 0:
        return
    with nogil:
        for i in prange(N * Cb, num_threads=nthreads, schedule="static"):
            bscale_plane(&x5[i // Cb, i % Cb, x_halo, x_halo, 0], xr, H, W, &s[i // Cb, (i % Cb) * BL],
                         &y5[i // Cb, i % Cb, y_halo, y_halo, 0], yr)
    _frame(y, y_halo, nthreads)


def add(a, Py_ssize_t a_halo, b, Py_ssize_t b_halo, y, Py_ssize_t y_halo, int act=0, int nthreads=1):
    """y = act(a + b) elementwise over the interiors."""
    _check(a, "a")
    _check(b, "b")
    _check(y, "y")
    cdef const float[:, :, :, :, :] a5 = a
    cdef const float[:, :, :, :, :] b5 = b
    cdef float[:, :, :, :, :] y5 = y
    cdef Py_ssize_t N = y.shape[0], Cb = y.shape[1], H = y.shape[2] - 2 * y_halo, W = y.shape[3] - 2 * y_halo, i
    for name, t, h in (("a", a, a_halo), ("b", b, b_halo)):
        if tuple(t.shape[:2]) != (N, Cb) or t.shape[2] - 2 * h != H or t.shape[3] - 2 * h != W:
            raise ValueError(f"{name} {t.shape} (halo {h}) does not match y {y.shape} (halo {y_halo})")
    _check_act(act)
    cdef Py_ssize_t ar = _st(a, 2), br = _st(b, 2), yr = _st(y, 2)
    if N * Cb * H * W == 0:
        return
    with nogil:
        for i in prange(N * Cb, num_threads=nthreads, schedule="static"):
            badd_plane(&a5[i // Cb, i % Cb, a_halo, a_halo, 0], ar, &b5[i // Cb, i % Cb, b_halo, b_halo, 0], br,
                       H, W, &y5[i // Cb, i % Cb, y_halo, y_halo, 0], yr, act)
    _frame(y, y_halo, nthreads)
