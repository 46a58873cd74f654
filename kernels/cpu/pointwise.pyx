"""Pointwise (1x1, no padding) convolution on the CPU as a GEMM on the data where it lies.

Per image n and group g:  Y[n, g] (Kg x P*Q) = W[g] (Kg x Cg) @ B (Cg x P*Q),
                          B[c, p*Q + q] = x[n, g*Cg + c, p*sh, q*sw].
With stride 1, B is x[n, g*Cg:(g+1)*Cg] itself viewed as (Cg, H*W): the GEMM of gemm.h reads it in
place (row length H*W), no copy at all. With a stride (or an image under 16 pixels, whose rows are
too short for the GEMM's whole-vector reads), `_pack_strided` gathers each k block of a job's columns
into the GEMM's panel layout in a per-thread workspace. The GEMM adds bias and the activation
at its final store.

Work is split by gemm_make_plan into jobs (image, group, row block, column block); small images
(7x7, 14x14 outputs) get row blocks so both threads have work. The k blocking depends on the shape
only, so the output is bit-identical for any thread count.
"""
import numpy as np

from kernels.cpu.checks import check_kernel_args

cimport cython
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport free

from kernels.cpu.amem cimport amalloc

from kernels.cpu.gemm cimport GEMM_NR_D, GEMM_NR_S, gemm_block_r, gemm_make_plan, gemm_plan, real


cdef struct Geom:
    Py_ssize_t N, C, H, W, K, P, Q, sh, sw, G, Cg, Kg, npix
    int act


cdef void _pack_strided(const real *xc, const Geom *g, Py_ssize_t kc, Py_ssize_t j0, Py_ssize_t nc,
                        real *dst) noexcept nogil:
    """Channels xc[0 .. kc-1] (each H x W), output columns j0 .. j0+nc-1 (j = p*Q + q reads
    x[c, p*sh, q*sw]) into panels of NR columns: (kk, jj) -> dst[(jj // NR)*kc*NR + kk*NR + jj % NR];
    a last, partial panel is filled up with zeros."""
    cdef Py_ssize_t NR = GEMM_NR_S if real is float else GEMM_NR_D      # a constant: no divisions
    cdef Py_ssize_t p0 = j0 // g.Q, q0 = j0 - (j0 // g.Q) * g.Q, sw = g.sw
    cdef Py_ssize_t kk, p, q, lane, left, take, t
    cdef const real *row
    cdef real *d
    for kk in range(kc):
        p, q, lane, left = p0, q0, 0, nc
        d = dst + kk * NR                            # row kk of the current panel
        while left > 0:
            take = min(g.Q - q, left, NR - lane)
            row = xc + (kk * g.H + p * g.sh) * g.W + q * sw
            for t in range(take):
                d[lane + t] = row[t * sw]
            left -= take
            lane += take
            q += take
            if lane == NR:
                lane = 0
                d += kc * NR
            if q == g.Q:
                q = 0
                p += 1
        if lane:                                     # zeros in the unused columns of a partial panel
            for t in range(lane, NR):
                d[t] = 0


cdef int _conv(const real[:, :, :, ::1] x, const real[:, :, :, ::1] w, const real[::1] bias,
               real[:, :, :, ::1] y, const Geom *g, int nthreads) except -1:
    cdef Py_ssize_t nr = GEMM_NR_S if real is float else GEMM_NR_D
    cdef const real *xp = &x[0, 0, 0, 0]
    cdef const real *wp = &w[0, 0, 0, 0]
    cdef real *yp = &y[0, 0, 0, 0]
    cdef const real *bp = NULL
    if bias is not None:
        bp = &bias[0]
    # B in place needs each row followed by >= 15 readable elements (gemm_block): the next row, when
    # rows hold >= 16. Strided B and smaller images are packed per job (a row block packs its columns
    # again: cheap next to its GEMM, and it keeps the small late layers on every thread)
    cdef bint packed = g.sh != 1 or g.sw != 1 or g.H * g.W < 16
    cdef gemm_plan pl
    gemm_make_plan(&pl, g.Kg, g.npix, g.Cg, nr, sizeof(real), g.N * g.G, nthreads, 1)
    cdef Py_ssize_t wsize = pl.kc * pl.nc if packed else 0
    cdef real *ws = NULL
    if packed:
        ws = <real *> amalloc(nthreads * wsize * sizeof(real))
        if ws == NULL:
            raise MemoryError(f"pointwise: cannot allocate a {nthreads} x {wsize} workspace")
    cdef Py_ssize_t HW = g.H * g.W
    cdef Py_ssize_t njobs = g.N * g.G * pl.nic * pl.njc
    cdef Py_ssize_t job, n, grp, ic, jc, i0, j0, mrows, ncols, pb, k0, kc
    cdef const real *xg
    cdef const real *bg
    cdef real *buf
    buf = NULL
    with nogil, parallel(num_threads=nthreads):
        buf = ws + threadid() * wsize if packed else NULL
        for job in prange(njobs, schedule="dynamic"):
            jc = job % pl.njc
            ic = (job // pl.njc) % pl.nic
            grp = (job // (pl.njc * pl.nic)) % g.G
            n = job // (pl.njc * pl.nic * g.G)
            i0 = ic * pl.mc
            j0 = jc * pl.nc
            mrows = min(pl.mc, g.Kg - i0)
            ncols = min(pl.nc, g.npix - j0)
            xg = xp + (n * g.C + grp * g.Cg) * HW
            bg = bp
            if bg != NULL:
                bg = bg + grp * g.Kg + i0
            for pb in range(pl.nkb):
                k0 = pb * pl.kc
                kc = min(pl.kc, g.Cg - k0)
                if packed:
                    _pack_strided(xg + k0 * HW, g, kc, j0, ncols, buf)
                    gemm_block_r(mrows, ncols, kc, wp + (grp * g.Kg + i0) * g.Cg + k0, g.Cg, buf, nr, kc * nr,
                          yp + (n * g.K + grp * g.Kg + i0) * g.npix + j0, g.npix,
                          pb == 0, pb == pl.nkb - 1, bg, g.act)
                else:
                    gemm_block_r(mrows, ncols, kc, wp + (grp * g.Kg + i0) * g.Cg + k0, g.Cg,
                          xg + k0 * HW + j0, HW, nr,
                          yp + (n * g.K + grp * g.Kg + i0) * g.npix + j0, g.npix,
                          pb == 0, pb == pl.nkb - 1, bg, g.act)
    free(ws)
    return 0


def conv2d(x, w, bias, y, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pad_top, Py_ssize_t pad_left,
           Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int act, int nthreads):
    """y = act(conv1x1(x, w) + bias), written into y (N, K, P, Q); see kernels/_conv.py for the
    contract. x (N, C, H, W), w (K, C // groups, 1, 1), bias (K,) or None, all C-contiguous of one
    dtype; no padding (dilation does not matter for a 1x1 kernel)."""
    cdef Geom g
    g.N, g.C, g.H, g.W = x.shape
    g.K = w.shape[0]
    g.Cg = w.shape[1]
    g.P, g.Q = y.shape[2], y.shape[3]
    if w.shape[2] != 1 or w.shape[3] != 1:
        raise ValueError(f"pointwise needs a 1x1 kernel, got w of shape {w.shape}")
    if pad_top != 0 or pad_left != 0:
        raise ValueError(f"pointwise takes no padding, got ({pad_top}, {pad_left})")
    check_kernel_args(x, w, bias, y, sh, sw, pad_top, pad_left, dh, dw, groups, act, nthreads)
    if (g.P - 1) * sh >= g.H or (g.Q - 1) * sw >= g.W:
        raise ValueError(f"y of shape {y.shape} does not fit x {x.shape} at stride ({sh}, {sw})")
    if y.size == 0:
        return
    g.sh, g.sw = sh, sw
    g.G, g.Kg = groups, g.K // groups
    g.npix = g.P * g.Q
    g.act = act
    if x.dtype == np.float32:
        _conv[float](x, w, bias, y, &g, nthreads)
    elif x.dtype == np.float64:
        _conv[double](x, w, bias, y, &g, nthreads)
    else:
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
