"""im2col + GEMM convolution on the CPU: any kernel size, stride, padding, dilation and groups.

Per image n and group g the convolution is one matrix product
    Y[n, g] (Kg x P*Q) = W[g] (Kg x Cg*R*S) @ B (Cg*R*S x P*Q),
    B[(c*R + r)*S + s, p*Q + q] = x[n, g*Cg + c, ih, iw]
with ih = p*sh + r*dh - pad_top, iw = q*sw + s*dw - pad_left (zero outside the input). B is never
built whole: `_pack_cols` writes one block of it (kc rows x nc columns) straight into the panel layout
the GEMM of gemm.h reads, and that GEMM multiplies it by the weights read in place, adding bias and
the activation at its final store.

Two ways to share the work between the OpenMP threads, chosen per shape by _conv:
- tiles (enough columns): each job is (image, group, block of columns); its thread packs each k block
  of its columns into its own L2-sized workspace and runs the GEMM on it.
- whole images (few columns: late layers with 14x14 or 7x7 outputs): the threads first pack all of one
  image's B in parallel into a shared workspace, then split the GEMM by rows and columns, so no row
  block packs the same columns again.
The k blocking is gemm_make_plan's, a function of the shape only, so the output is bit-identical for
any thread count.
"""
import numpy as np

from kernels.cpu.checks import check_kernel_args

cimport cython
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport free

from kernels.cpu.amem cimport amalloc

from kernels.cpu.gemm cimport GEMM_NR_D, GEMM_NR_S, gemm_block_r, gemm_copy_run_r, gemm_make_plan, gemm_plan, real


cdef struct Geom:
    Py_ssize_t N, C, H, W, K, R, S, P, Q, sh, sw, pt, pl, dh, dw
    Py_ssize_t G, Cg, Kg, kdim, npix
    int act


cdef void _pack_cols(const real *xc, const Geom *g, Py_ssize_t k0, Py_ssize_t kc, Py_ssize_t j0,
                     Py_ssize_t nc, real *dst) noexcept nogil:
    """Rows k0 .. k0+kc-1 and columns j0 .. j0+nc-1 of one image-and-group's B (xc: its first input
    channel) into panels of NR columns: element (kk, jj) goes to dst[(jj // NR)*kc*NR + kk*NR + jj % NR].
    The rows come in groups of S that share (c, r), hence one input row per output row p. The columns
    are walked once per group in runs that share p and a panel; a run is copied for every s of the
    group from the input row at stride sw, with zeros where it leaves the input (padding). At stride 1
    a copy is a few masked vector moves (gemm_copy_run). A last, partial panel is filled up with zeros."""
    cdef Py_ssize_t NR = GEMM_NR_S if real is float else GEMM_NR_D      # a constant: no divisions
    cdef Py_ssize_t H = g.H, W = g.W, Q = g.Q, S = g.S, sw = g.sw, dws = g.dw
    cdef Py_ssize_t p0 = j0 // Q, q0 = j0 - (j0 // Q) * Q
    cdef Py_ssize_t cr, cr_end, c, ihb, s_lo, s_hi, s, kb, p, q, lane, left, take, ih, base
    cdef Py_ssize_t tlo, thi, t
    cdef const real *xrow
    cdef real *d
    cdef real *ds
    cr_end = (k0 + kc + S - 1) // S
    for cr in range(k0 // S, cr_end):                # row group (c, r): rows cr*S .. cr*S + S-1
        c = cr // g.R
        ihb = (cr - c * g.R) * g.dh - g.pt           # ih = p*sh + ihb
        s_lo = max(k0 - cr * S, 0)
        s_hi = min(k0 + kc - cr * S, S)
        kb = cr * S - k0                             # row of s = 0 in this block (may be < 0)
        p, q, lane, left = p0, q0, 0, nc
        d = dst                                      # the current panel
        while left > 0:
            take = min(Q - q, left, NR - lane)
            ih = p * g.sh + ihb
            if ih < 0 or ih >= H:
                for s in range(s_lo, s_hi):          # rows of padding
                    gemm_copy_run_r(d + (kb + s) * NR + lane, xc, take, 0, 0)
            else:
                xrow = xc + (c * H + ih) * W
                for s in range(s_lo, s_hi):
                    ds = d + (kb + s) * NR + lane
                    base = q * sw + s * dws - g.pl   # input column of the run's first element
                    if sw == 1:
                        gemm_copy_run_r(ds, xrow + base, take, -base, W - base)
                    else:
                        # the run's elements t with 0 <= base + t*sw < W; zeros around them
                        tlo = 0 if base >= 0 else (sw - 1 - base) // sw
                        thi = 0 if base >= W else (W - 1 - base) // sw + 1
                        tlo = min(tlo, take)
                        thi = max(min(thi, take), tlo)
                        for t in range(tlo):
                            ds[t] = 0
                        for t in range(tlo, thi):
                            ds[t] = xrow[base + t * sw]
                        for t in range(thi, take):
                            ds[t] = 0
            left -= take
            lane += take
            q += take
            if lane == NR:
                lane = 0
                d += kc * NR
            if q == Q:
                q = 0
                p += 1
        if lane:                                     # zeros in the unused columns of a partial panel
            for s in range(s_lo, s_hi):
                gemm_copy_run_r(d + (kb + s) * NR + lane, xc, NR - lane, 0, 0)


cdef int _run_tiles(const real *x, const real *w, const real *bias, real *y, const Geom *g,
                    const gemm_plan *pl, Py_ssize_t nr, int nthreads) except -1:
    """Jobs (image, group, column block), each packing its own B blocks into a per-thread workspace."""
    cdef Py_ssize_t wsize = pl.kc * pl.nc
    cdef real *ws = <real *> amalloc(nthreads * wsize * sizeof(real))
    if ws == NULL:
        raise MemoryError(f"im2col: cannot allocate a {nthreads} x {wsize} workspace")
    cdef Py_ssize_t njobs = g.N * g.G * pl.njc
    cdef Py_ssize_t job, n, grp, jc, j0, ncols, pb, k0, kc
    cdef real *buf
    cdef const real *xg
    cdef const real *bg
    buf = NULL
    with nogil, parallel(num_threads=nthreads):
        buf = ws + threadid() * wsize
        for job in prange(njobs, schedule="dynamic"):
            n = job // (g.G * pl.njc)
            grp = (job // pl.njc) % g.G
            jc = job % pl.njc
            j0 = jc * pl.nc
            ncols = min(pl.nc, g.npix - j0)
            xg = x + (n * g.C + grp * g.Cg) * g.H * g.W
            bg = bias
            if bg != NULL:
                bg = bg + grp * g.Kg
            for pb in range(pl.nkb):
                k0 = pb * pl.kc
                kc = min(pl.kc, g.kdim - k0)
                _pack_cols(xg, g, k0, kc, j0, ncols, buf)
                gemm_block_r(g.Kg, ncols, kc, w + grp * g.Kg * g.kdim + k0, g.kdim, buf, nr, kc * nr,
                      y + (n * g.K + grp * g.Kg) * g.npix + j0, g.npix,
                      pb == 0, pb == pl.nkb - 1, bg, g.act)
    free(ws)
    return 0


cdef int _run_images(const real *x, const real *w, const real *bias, real *y, const Geom *g,
                     const gemm_plan *pl, Py_ssize_t nr, int nthreads) except -1:
    """Per image: pack all of B (every group, every k block) in parallel, then the GEMM jobs (group,
    row block, column block) in parallel, all reading the one packed copy."""
    cdef Py_ssize_t npad = (g.npix + nr - 1) // nr * nr      # columns of B rounded up to whole panels
    cdef Py_ssize_t gsize = g.kdim * npad
    cdef real *ws = <real *> amalloc(g.G * gsize * sizeof(real))
    if ws == NULL:
        raise MemoryError(f"im2col: cannot allocate a {g.G} x {gsize} workspace")
    cdef Py_ssize_t npieces = g.G * pl.nkb, njobs = g.G * pl.nic * pl.njc
    cdef Py_ssize_t n, piece, job, grp, pb, ic, jc, i0, j0, k0, kc, mrows, ncols
    cdef const real *bg
    # two parallel loops per image: Cython's prange inside one parallel block ends without a barrier,
    # and every GEMM job needs all of the packing done
    with nogil:
        for n in range(g.N):
            for piece in prange(npieces, schedule="dynamic", num_threads=nthreads):
                grp = piece // pl.nkb
                k0 = (piece % pl.nkb) * pl.kc
                kc = min(pl.kc, g.kdim - k0)
                _pack_cols(x + (n * g.C + grp * g.Cg) * g.H * g.W, g, k0, kc, 0, g.npix,
                           ws + grp * gsize + k0 * npad)
            for job in prange(njobs, schedule="dynamic", num_threads=nthreads):
                grp = job // (pl.nic * pl.njc)
                ic = (job // pl.njc) % pl.nic
                jc = job % pl.njc
                i0 = ic * pl.mc
                j0 = jc * pl.nc
                mrows = min(pl.mc, g.Kg - i0)
                ncols = min(pl.nc, g.npix - j0)
                bg = bias
                if bg != NULL:
                    bg = bg + grp * g.Kg + i0
                for pb in range(pl.nkb):
                    k0 = pb * pl.kc
                    kc = min(pl.kc, g.kdim - k0)
                    gemm_block_r(mrows, ncols, kc, w + (grp * g.Kg + i0) * g.kdim + k0, g.kdim,
                          ws + grp * gsize + k0 * npad + j0 * kc, nr, kc * nr,
                          y + (n * g.K + grp * g.Kg + i0) * g.npix + j0, g.npix,
                          pb == 0, pb == pl.nkb - 1, bg, g.act)
    free(ws)
    return 0


cdef int _conv(const real[:, :, :, ::1] x, const real[:, :, :, ::1] w, const real[::1] bias,
               real[:, :, :, ::1] y, Geom *g, int nthreads) except -1:
    cdef Py_ssize_t nr = GEMM_NR_S if real is float else GEMM_NR_D
    cdef const real *xp = &x[0, 0, 0, 0] if g.H * g.W > 0 else NULL
    cdef const real *bp = NULL
    if bias is not None:
        bp = &bias[0]
    cdef gemm_plan pl
    # tiles when the columns of all images give every thread several jobs, else whole images
    gemm_make_plan(&pl, g.Kg, g.npix, g.kdim, nr, sizeof(real), g.N * g.G, nthreads, 0)
    if g.N * g.G * pl.njc >= 4 * nthreads:
        return _run_tiles(xp, &w[0, 0, 0, 0], bp, &y[0, 0, 0, 0], g, &pl, nr, nthreads)
    gemm_make_plan(&pl, g.Kg, g.npix, g.kdim, nr, sizeof(real), g.G, nthreads, 1)
    return _run_images(xp, &w[0, 0, 0, 0], bp, &y[0, 0, 0, 0], g, &pl, nr, nthreads)


def conv2d(x, w, bias, y, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pad_top, Py_ssize_t pad_left,
           Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int act, int nthreads):
    """y = act(conv(x, w) + bias), written into y (N, K, P, Q); see kernels/_conv.py for the contract.
    x (N, C, H, W), w (K, C // groups, R, S), bias (K,) or None, all C-contiguous of one dtype."""
    cdef Geom g
    g.N, g.C, g.H, g.W = x.shape
    g.K, g.Cg, g.R, g.S = w.shape
    g.P, g.Q = y.shape[2], y.shape[3]
    check_kernel_args(x, w, bias, y, sh, sw, pad_top, pad_left, dh, dw, groups, act, nthreads)
    if y.size == 0:
        return
    g.sh, g.sw, g.pt, g.pl, g.dh, g.dw = sh, sw, pad_top, pad_left, dh, dw
    g.G, g.Kg = groups, g.K // groups
    g.kdim, g.npix = g.Cg * g.R * g.S, g.P * g.Q
    g.act = act
    if x.dtype == np.float32:
        _conv[float](x, w, bias, y, &g, nthreads)
    elif x.dtype == np.float64:
        _conv[double](x, w, bias, y, &g, nthreads)
    else:
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
