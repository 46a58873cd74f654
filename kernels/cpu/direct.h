/* direct.h: direct 2-D convolution (NCHW, cross-correlation), no im2col workspace.

   y[n, k, p, q] = act(bias[k] + sum_{c, r, s} w[k, c, r, s] * x[n, g*Cg + c, p*sh + r*dh - pt, q*sw + s*dw - pl])
   with k in group g and x read as zero outside [0, H) x [0, W).

   The work of one call is a list of independent items (direct_plan.items); direct.pyx runs them
   with an OpenMP prange. An item owns a fixed set of output elements and reduces each of them in a
   fixed order, so the result does not depend on the thread count. Three paths:

   simple  (DIRECT_SIMPLE) one item = one (n, k) output plane; for every (c, r, s) tap a row update
           y[p, q] += w * x[...] over the q range that lands inside the input. The obviously-correct
           version (llm.c's habit): it is the kernel of the AVX2 and generic builds (no AVX-512), which GCC
           auto-vectorises for stride 1, and the fast paths are tested against it.
   wvec    (DIRECT_WVEC, AVX-512, stride_w == 1) vectorised over output width. A register tile is
           WKB = 8 output channels x up to WNV = 3 vectors of LANES consecutive output pixels (each
           vector has its own output row, so narrow layers still fill the tile): 24 accumulators.
           Per tap: WNV masked loads of x where it lies, WKB weight broadcasts, WKB x WNV FMAs.
           Interior tiles (every tap inside x) loop c, r, s with the output-tail mask only; edge
           tiles loop (r, s) outside and c inside, with the mask that cuts the left/right padding
           and the row tail computed once per (r, s) (rows outside [0, H) are skipped). Weights are
           repacked once per call to [group][k block][r][s][c][WKB] (contiguous broadcasts) when
           each weight feeds enough tiles to pay for it, and read in place otherwise (layers like
           vgg.c5_2, whose weights outweigh their activations). Reduction in input-channel blocks
           of cb (weights of a block stay in L1), partial sums going through y. A work item is an
           image x up to 8 k blocks x a band of up to 24 output vectors: per channel block every k
           block sweeps the band, so the band's x rows stay in L2 and feed 64 output channels.
           Software prefetch brings the next channels' rows (a stride of H*W) into L1.
           Flattened mode (direct_ftile, stride 1 with Q == W, i.e. "same" layers): vectors run
           over the flattened output plane and cross row ends, so a 56- or 28-wide layer fills
           every lane instead of 7/8 of them; per-lane row/column masks come from int32 compares.
   kvec    (DIRECT_KVEC, AVX-512, strided in width, or narrow outputs with many channels) vectorised
           over output channels: a tile is 2 vectors of LANES output channels x 8 .. KNP = 12 output
           pixels of one row (as many as split Q evenly). Per tap: 2 weight loads
           ([group][k block][c][r][s][2*LANES]), up to KNP
           broadcasts of input pixels, 24 FMAs. The input rows an output row needs are copied once
           into a zero-padded per-thread row buffer (cb x R x wbuf), so strided and padded
           positions are plain broadcasts. wbuf spans the row's tiles at stride sw, so it grows
           with the stride: canonical geometries (sw, dw, pl <= 2*W + 8) keep it within about
           30 W; direct.pyx refuses any other. The tile is transposed through a small stack buffer at
           the store.
   Epilogue (all paths), at the store after the last input channel: + bias, then ReLU
   (max(0, v)) or ReLU6 (min(6, max(0, v))); both keep NaN (Intel's max/min return the second
   operand when either is NaN, so v goes second).

   The type-generic part below the plan is written once and included twice (float, double).
*/
#ifndef DIRECT_TEMPLATE_PASS
#ifndef CONVFORGE_DIRECT_H
#define CONVFORGE_DIRECT_H

#include <stddef.h>
#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define DIRECT_SIMPLE 0
#define DIRECT_WVEC 1
#define DIRECT_KVEC 2

#define WKB 8      /* wvec: output channels per register tile */
#define WNV 3      /* wvec: output vectors per register tile */
#define WPACK_TILES 16  /* wvec: repack the weights when each feeds at least this many tiles */
#define WITEMS 16  /* wvec: fewest work items before the item blocks shrink */
#define KNP 12     /* kvec: most output pixels per register tile (8 .. KNP are instantiated) */
#define L1_BYTES 32768
#define L2_BUF_BYTES 131072

typedef struct {
    /* geometry (from kernels.shapes) */
    ptrdiff_t N, C, H, W, K, R, S, P, Q;
    ptrdiff_t sh, sw, pt, pl, dh, dw, G, Cg, Kg;
    int act;
    /* the plan */
    int path;
    ptrdiff_t kblock;   /* output channels per block (wvec WKB, kvec 2*LANES, simple 1) */
    ptrdiff_t nkb;      /* blocks per group */
    ptrdiff_t vpr;      /* wvec: vectors per output row */
    int flat;           /* wvec: vectors run over the flattened output plane (see direct_ftile) */
    ptrdiff_t nvec;     /* wvec: output vectors per plane */
    ptrdiff_t bandv;    /* wvec: output vectors per work item (a band) */
    ptrdiff_t nband;    /* wvec: bands per image */
    ptrdiff_t kgrp;     /* wvec: k blocks per work item */
    ptrdiff_t nkg;      /* wvec: k-block groups per conv group */
    int wpack;          /* weights repacked (else read in place, for layers that use each once) */
    ptrdiff_t cb;       /* input channels per cache block */
    ptrdiff_t wbuf;     /* kvec: padded row width of the row buffer */
    ptrdiff_t knp;      /* kvec: output pixels per tile, 8 .. KNP, splitting Q evenly */
    ptrdiff_t items;    /* independent work items */
    ptrdiff_t npack;    /* weight blocks to repack (one prange iteration each) */
    ptrdiff_t packed;   /* elements of the repacked weights */
    ptrdiff_t scratch;  /* elements of per-thread scratch */
} direct_plan;

static inline ptrdiff_t direct_cdiv(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }

/* Stride 1 with Q == W: input column and row follow the flattened output index f = p*Q + q with
   one offset per tap, (r*dh - pt)*W + s*dw - pl, so a vector may run across output rows. Plane
   indices are computed in 32-bit lanes, and so are the bounds of a tap, -dr and H - dr with
   dr = r*dh - pt (|.| <= H + pt + (R-1)*dh), and likewise in width: all of them must stay below 2**30.
   (The geometry is canonical, kernels/canonical.py: padding and dilation are of the order of H and
   W, so these products cannot overflow.) */
static inline int direct_flat_ok(const direct_plan *p)
{
    const ptrdiff_t lim = (ptrdiff_t)1 << 30;
    return p->sh == 1 && p->sw == 1 && p->Q == p->W && p->P * p->Q < lim &&
           p->H + p->pt + (p->R - 1) * p->dh < lim && p->W + p->pl + (p->S - 1) * p->dw < lim;
}

/* Fill the plan for one call. itemsize 4 or 8; simple != 0 forces the simple path. */
static void direct_make_plan(direct_plan *p, ptrdiff_t itemsize, int simple)
{
    const ptrdiff_t lanes = 64 / itemsize;
    p->path = DIRECT_SIMPLE;
    p->kblock = 1;
    p->vpr = p->bandv = p->nband = p->kgrp = p->nkg = p->wbuf = p->knp = 0;
    p->wpack = p->flat = 0;
    p->nvec = 0;
    p->cb = p->Cg;
#ifdef __AVX512F__
    if (!simple) {
        /* lane efficiency of vectorising over width vs over output channels */
        const ptrdiff_t vpr = direct_cdiv(p->Q, lanes);
        double eff_w = (double)p->Q / (double)(vpr * lanes);
        if (direct_flat_ok(p) && direct_cdiv(p->P * p->Q, lanes) < p->P * vpr)
            eff_w = (double)(p->P * p->Q) / (double)(direct_cdiv(p->P * p->Q, lanes) * lanes);
        const double eff_k = (double)p->Kg / (double)(direct_cdiv(p->Kg, 2 * lanes) * 2 * lanes);
        p->path = (p->sw == 1 && eff_w * 1.25 >= eff_k) ? DIRECT_WVEC : DIRECT_KVEC;
    }
#else
    (void)simple;
#endif
    if (p->path == DIRECT_WVEC) {
        p->kblock = WKB;
        p->vpr = direct_cdiv(p->Q, lanes);
        /* flattened vectors when they waste fewer lanes than row-by-row ones */
        p->flat = direct_flat_ok(p) && direct_cdiv(p->P * p->Q, lanes) < p->P * p->vpr;
        p->nvec = p->flat ? direct_cdiv(p->P * p->Q, lanes) : p->P * p->vpr;
        /* L1 per input channel: WNV x rows of two lines each, plus the tile's weights */
        ptrdiff_t cb = L1_BYTES / (WNV * 128 + p->R * p->S * WKB * itemsize);
        if (cb < 4) cb = 4;
        p->cb = cb;
    } else if (p->path == DIRECT_KVEC) {
        p->kblock = 2 * lanes;
        p->knp = direct_cdiv(p->Q, direct_cdiv(p->Q, KNP));
        if (p->knp < 8) p->knp = 8;
        p->wbuf = (direct_cdiv(p->Q, p->knp) * p->knp - 1) * p->sw + (p->S - 1) * p->dw + 1;
        ptrdiff_t cb = L2_BUF_BYTES / (p->R * p->wbuf * itemsize);
        if (cb < 1) cb = 1;
        p->cb = cb;
    }
    if (p->cb > p->Cg) p->cb = p->Cg;
    /* equal channel blocks */
    p->cb = direct_cdiv(p->Cg, direct_cdiv(p->Cg, p->cb));
    p->nkb = direct_cdiv(p->Kg, p->kblock);
    if (p->path == DIRECT_WVEC) {
        /* a work item: up to 8 k blocks (64 channels) x 24 output vectors, so that its x band and
           its weights (per channel block) sit in L2 while every x row feeds 64 output channels;
           smaller items when the layer has too few to share among threads */
        const ptrdiff_t nvec = p->nvec;
        ptrdiff_t kg = p->nkb < 8 ? p->nkb : 8, bv = 8 * WNV;
        while (p->N * p->G * direct_cdiv(p->nkb, kg) * direct_cdiv(nvec, bv) < WITEMS) {
            if (bv > 4 * WNV) bv /= 2;
            else if (kg > 1) kg = direct_cdiv(kg, 2);
            else if (bv > WNV) bv /= 2;
            else break;
        }
        p->kgrp = kg;
        p->nkg = direct_cdiv(p->nkb, kg);
        p->bandv = bv;
        p->nband = direct_cdiv(nvec, bv);
        /* repacking costs about one pass over the weights: worth it when each weight feeds many tiles */
        p->wpack = p->N * nvec >= WPACK_TILES * WNV;
    }
    p->npack = p->G * p->nkb;
    p->packed = (p->path == DIRECT_KVEC || (p->path == DIRECT_WVEC && p->wpack)) ? p->npack * p->kblock * p->Cg * p->R * p->S : 0;
    p->scratch = p->path == DIRECT_KVEC ? p->cb * p->R * p->wbuf : 0;
    if (p->path == DIRECT_SIMPLE)
        p->items = p->N * p->K;
    else if (p->path == DIRECT_WVEC)
        p->items = p->N * p->G * p->nkg * p->nband;
    else
        p->items = p->npack * p->N * p->P;
}

#define DIRECT_CAT_(a, b) a##_##b
#define DIRECT_CAT(a, b) DIRECT_CAT_(a, b)

/* the type-generic body below is included once per type: this file includes itself */
#define DIRECT_TEMPLATE_PASS

/* ---- float instantiation ---- */
#define T float
#define SUF f32
#ifdef __AVX512F__
#define LANES 16
#define VEC __m512
#define MASK __mmask16
#define VLOADZ(m, p) _mm512_maskz_loadu_ps((m), (p))
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSTOREM(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VSET1(a) _mm512_set1_ps(a)
#define VZERO() _mm512_setzero_ps()
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VMAX(a, b) _mm512_max_ps((a), (b))
#define VMIN(a, b) _mm512_min_ps((a), (b))
#endif
#include "direct.h"
#undef T
#undef SUF
#ifdef __AVX512F__
#undef LANES
#undef VEC
#undef MASK
#undef VLOADZ
#undef VLOAD
#undef VSTORE
#undef VSTOREM
#undef VFMA
#undef VSET1
#undef VZERO
#undef VADD
#undef VMAX
#undef VMIN
#endif

/* ---- double instantiation ---- */
#define T double
#define SUF f64
#ifdef __AVX512F__
#define LANES 8
#define VEC __m512d
#define MASK __mmask8
#define VLOADZ(m, p) _mm512_maskz_loadu_pd((m), (p))
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSTORE(p, v) _mm512_storeu_pd((p), (v))
#define VSTOREM(p, m, v) _mm512_mask_storeu_pd((p), (m), (v))
#define VFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define VSET1(a) _mm512_set1_pd(a)
#define VZERO() _mm512_setzero_pd()
#define VADD(a, b) _mm512_add_pd((a), (b))
#define VMAX(a, b) _mm512_max_pd((a), (b))
#define VMIN(a, b) _mm512_min_pd((a), (b))
#endif
#include "direct.h"

#undef DIRECT_TEMPLATE_PASS
#endif /* CONVFORGE_DIRECT_H */

#else /* DIRECT_TEMPLATE_PASS: the body for one type T (suffix SUF) */

#define FN(name) DIRECT_CAT(name, SUF)

/* bias is added by the caller; ReLU / ReLU6 keep NaN (both comparisons are false for NaN) */
static inline T FN(direct_act)(T v, int act)
{
    if (act >= 1 && v < (T)0) v = (T)0;
    if (act == 2 && v > (T)6) v = (T)6;
    return v;
}

/* Repack the weights of one (group, k block) for the fast paths, zero-filling channels past Kg:
   wvec [r][s][c][kblock] (contiguous broadcasts along c), kvec [c][r][s][kblock] (vector loads).
   Written in destination order; the kblock source rows are read as kblock streams. */
static void FN(direct_pack)(const direct_plan *p, const T *w, T *wp, ptrdiff_t blk)
{
    const ptrdiff_t KB = p->kblock, Cg = p->Cg, RS = p->R * p->S, Kg = p->Kg;
    const ptrdiff_t g = blk / p->nkb, k0 = (blk % p->nkb) * KB;
    const ptrdiff_t kvalid = Kg - k0 < KB ? Kg - k0 : KB;
    const T *src = w + (g * Kg + k0) * Cg * RS;   /* row j: src + j * Cg * RS */
    T *d = wp + blk * KB * Cg * RS;
    if (p->path == DIRECT_WVEC) {
        for (ptrdiff_t rs = 0; rs < RS; rs++)
            for (ptrdiff_t c = 0; c < Cg; c++, d += KB) {
                ptrdiff_t j = 0;
                for (; j < kvalid; j++) d[j] = src[(j * Cg + c) * RS + rs];
                for (; j < KB; j++) d[j] = (T)0;
            }
    } else {
        for (ptrdiff_t e = 0; e < Cg * RS; e++, d += KB) {
            ptrdiff_t j = 0;
            for (; j < kvalid; j++) d[j] = src[j * Cg * RS + e];
            for (; j < KB; j++) d[j] = (T)0;
        }
    }
}

/* simple path: one (n, k) output plane, reduced in (c, r, s) order, row by row */
static void FN(direct_simple_item)(const direct_plan *p, const T *__restrict x, const T *__restrict w,
                                   const T *__restrict bias, T *__restrict y, ptrdiff_t item)
{
    const ptrdiff_t H = p->H, W = p->W, P = p->P, Q = p->Q, R = p->R, S = p->S;
    const ptrdiff_t sh = p->sh, sw = p->sw, dh = p->dh, dw = p->dw, pt = p->pt, pl = p->pl;
    const ptrdiff_t n = item / p->K, k = item % p->K, g = k / p->Kg;
    T *__restrict yk = y + (n * p->K + k) * P * Q;
    for (ptrdiff_t i = 0; i < P * Q; i++) yk[i] = (T)0;
    for (ptrdiff_t c = 0; c < p->Cg; c++) {
        const T *__restrict xc = x + (n * p->C + g * p->Cg + c) * H * W;
        const T *__restrict wc = w + (k * p->Cg + c) * R * S;
        for (ptrdiff_t r = 0; r < R; r++)
            for (ptrdiff_t s = 0; s < S; s++) {
                const T wv = wc[r * S + s];
                const ptrdiff_t off = s * dw - pl;   /* input column of output column 0 */
                /* output columns whose input column q*sw + off lies in [0, W) */
                const ptrdiff_t qlo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                ptrdiff_t qhi = off > W - 1 ? 0 : (W - 1 - off) / sw + 1;
                if (qhi > Q) qhi = Q;
                for (ptrdiff_t pp = 0; pp < P; pp++) {
                    const ptrdiff_t ih = pp * sh + r * dh - pt;
                    if (ih < 0 || ih >= H) continue;
                    const T *__restrict xr = xc + ih * W;
                    T *__restrict yr = yk + pp * Q;
                    for (ptrdiff_t q = qlo; q < qhi; q++) yr[q] += wv * xr[q * sw + off];
                }
            }
    }
    for (ptrdiff_t i = 0; i < P * Q; i++)
        yk[i] = FN(direct_act)(bias ? yk[i] + bias[k] : yk[i], p->act);
}

#ifdef __AVX512F__

/* wvec register tile: WKB output channels x nv (1..WNV) output vectors v0 .. v0+nv-1 (vector v
   covers output row v / vpr, columns (v % vpr) * LANES + 0 .. LANES-1), input channels [c0, c1).
   Partial sums of earlier channel blocks are read back from y; the last block applies the epilogue. */
static inline __attribute__((always_inline)) void FN(direct_wtile)(
    const direct_plan *p, const T *xg, const T *wk, T *yk, const T *bk, ptrdiff_t kvalid,
    ptrdiff_t v0, const int nv, const int packed, ptrdiff_t c0, ptrdiff_t c1)
{
    const ptrdiff_t H = p->H, W = p->W, Q = p->Q, S = p->S, Cg = p->Cg;
    const ptrdiff_t PQ = p->P * Q, HW = H * W, RS = p->R * S;
    ptrdiff_t vp[WNV], vq[WNV], nq[WNV];
    MASK om[WNV];
    for (int v = 0; v < nv; v++) {
        vp[v] = (v0 + v) / p->vpr;
        vq[v] = ((v0 + v) % p->vpr) * LANES;
        nq[v] = Q - vq[v] < LANES ? Q - vq[v] : LANES;
        om[v] = (MASK)((1u << nq[v]) - 1u);
    }
    VEC acc[WKB][WNV];
#pragma GCC unroll 8
    for (int j = 0; j < WKB; j++)
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            acc[j][v] = (c0 > 0 && j < kvalid) ? VLOADZ(om[v], yk + j * PQ + vp[v] * Q + vq[v]) : VZERO();

    /* interior tile: every tap of every vector lies inside x, the masks are the output masks */
    int interior = 1;
    for (int v = 0; v < nv; v++)
        interior &= vp[v] * p->sh - p->pt >= 0 && vp[v] * p->sh + (p->R - 1) * p->dh - p->pt < H &&
                    vq[v] - p->pl >= 0 && vq[v] + nq[v] - 1 + (S - 1) * p->dw - p->pl < W;

    if (interior) {
        /* no masks to compute: c, r, s loops with the output masks, (c, r, s) reduction order */
        const ptrdiff_t wrow = Cg * RS, wtap = packed ? Cg * WKB : 1;
        const T *xb[WNV];
        for (int v = 0; v < nv; v++) xb[v] = xg + (vp[v] * p->sh - p->pt) * W + vq[v] - p->pl;
        for (ptrdiff_t c = c0; c < c1; c++)
            for (ptrdiff_t r = 0; r < p->R; r++) {
                const T *wr = packed ? wk + (r * S * Cg + c) * WKB : wk + c * RS + r * S;
                const ptrdiff_t xoff = c * HW + r * p->dh * W;
                /* the same rows of the next channel: a stride of H*W that the hardware does not follow */
                for (int v = 0; v < nv; v++) {
                    _mm_prefetch((const char *)(xb[v] + xoff + HW), _MM_HINT_T0);
                    _mm_prefetch((const char *)(xb[v] + xoff + HW + (S - 1) * p->dw + LANES - 1), _MM_HINT_T0);
                }
                for (ptrdiff_t s = 0; s < S; s++) {
                    VEC xv[WNV];
#pragma GCC unroll 3
                    for (int v = 0; v < nv; v++) xv[v] = VLOADZ(om[v], xb[v] + xoff + s * p->dw);
#pragma GCC unroll 8
                    for (int j = 0; j < WKB; j++) {
                        const VEC wb = VSET1(packed ? wr[s * wtap + j] : wr[(j < kvalid ? j : 0) * wrow + s]);
#pragma GCC unroll 3
                        for (int v = 0; v < nv; v++) acc[j][v] = VFMA(wb, xv[v], acc[j][v]);
                    }
                }
            }
    }
    for (ptrdiff_t r = 0; r < p->R && !interior; r++) {
        ptrdiff_t rowoff[WNV];
        int rowok[WNV], anyrow = 0;
        for (int v = 0; v < nv; v++) {
            const ptrdiff_t ih = vp[v] * p->sh + r * p->dh - p->pt;
            rowok[v] = ih >= 0 && ih < H;
            rowoff[v] = rowok[v] ? ih * W : 0;
            anyrow |= rowok[v];
        }
        if (!anyrow) continue;
        for (ptrdiff_t s = 0; s < S; s++) {
            MASK m[WNV];
            const T *xp[WNV];
            unsigned any = 0;
            for (int v = 0; v < nv; v++) {
                /* lanes whose input column iw0 + lane lies in [0, W) and output column in [0, Q) */
                const ptrdiff_t iw0 = vq[v] + s * p->dw - p->pl;
                const ptrdiff_t lo = iw0 < 0 ? -iw0 : 0;
                const ptrdiff_t hi = W - iw0 < nq[v] ? W - iw0 : nq[v];
                m[v] = (rowok[v] && hi > lo) ? (MASK)(((1u << hi) - 1u) & ~((1u << lo) - 1u)) : (MASK)0;
                any |= m[v];
                /* masked-off lanes are never touched, so this may point before the row */
                xp[v] = xg + c0 * HW + rowoff[v] + iw0;
            }
            if (!any) continue;
            /* packed: [r][s][c][WKB]; else w itself, rows past kvalid repeat row 0 (never stored) */
            const T *wrs = packed ? wk + ((r * S + s) * Cg + c0) * WKB : wk + c0 * RS + r * S + s;
            const ptrdiff_t wrow = Cg * RS;
            for (ptrdiff_t c = 0; c < c1 - c0; c++) {
                VEC xv[WNV];
#pragma GCC unroll 3
                for (int v = 0; v < nv; v++) {
                    /* two channels ahead (prefetches never fault, even past the array) */
                    _mm_prefetch((const char *)(xp[v] + (c + 2) * HW), _MM_HINT_T0);
                    _mm_prefetch((const char *)(xp[v] + (c + 2) * HW + LANES - 1), _MM_HINT_T0);
                    xv[v] = VLOADZ(m[v], xp[v] + c * HW);
                }
#pragma GCC unroll 8
                for (int j = 0; j < WKB; j++) {
                    const VEC wb = VSET1(packed ? wrs[c * WKB + j] : wrs[(j < kvalid ? j : 0) * wrow + c * RS]);
#pragma GCC unroll 3
                    for (int v = 0; v < nv; v++) acc[j][v] = VFMA(wb, xv[v], acc[j][v]);
                }
            }
        }
    }

    const int last = c1 == Cg;
    const VEC zero = VZERO(), six = VSET1((T)6);
    /* fully unrolled (constant indices keep acc in registers); channels past Kg are not stored */
#pragma GCC unroll 8
    for (int j = 0; j < WKB; j++) {
        if (j >= kvalid) continue;
        const VEC b = (last && bk) ? VSET1(bk[j]) : zero;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            VEC a = acc[j][v];
            if (last) {
                if (bk) a = VADD(a, b);
                if (p->act >= 1) a = VMAX(zero, a);   /* NaN in a survives: max returns operand 2 */
                if (p->act == 2) a = VMIN(six, a);
            }
            VSTOREM(yk + j * PQ + vp[v] * Q + vq[v], om[v], a);
        }
    }
}

/* Flattened wvec tile (direct_flat_ok): vector v covers output plane positions f = v*LANES + lane,
   which may span output rows. Lane (p, q) = divmod(f, Q) is kept in int32 vectors; the mask of a tap
   (r, s) is the lanes with p + r*dh - pt in [0, H) and q + s*dw - pl in [0, W), and the load starts
   at x + f + (r*dh - pt)*W + s*dw - pl. Same loop order and reduction order as the edge tiles. */
static inline __attribute__((always_inline)) void FN(direct_ftile)(
    const direct_plan *p, const T *xg, const T *wk, T *yk, const T *bk, ptrdiff_t kvalid,
    ptrdiff_t v0, const int nv, const int packed, ptrdiff_t c0, ptrdiff_t c1)
{
    const ptrdiff_t H = p->H, W = p->W, Q = p->Q, S = p->S, Cg = p->Cg;
    const ptrdiff_t PQ = p->P * Q, HW = H * W, RS = p->R * S;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    ptrdiff_t f0[WNV];
    MASK om[WNV];
    __m512i pv[WNV], qv[WNV];
    for (int v = 0; v < nv; v++) {
        f0[v] = (v0 + v) * LANES;
        const ptrdiff_t nf = PQ - f0[v] < LANES ? PQ - f0[v] : LANES;
        om[v] = (MASK)((1u << nf) - 1u);
        /* q = q0 + lane, carried into p while q >= Q */
        __m512i q = _mm512_add_epi32(_mm512_set1_epi32((int)(f0[v] % Q)), iota);
        __m512i pp = _mm512_set1_epi32((int)(f0[v] / Q));
        const __m512i vQ = _mm512_set1_epi32((int)Q), one = _mm512_set1_epi32(1);
        for (__mmask16 wrap = _mm512_cmpge_epi32_mask(q, vQ); wrap; wrap = _mm512_cmpge_epi32_mask(q, vQ)) {
            q = _mm512_mask_sub_epi32(q, wrap, q, vQ);
            pp = _mm512_mask_add_epi32(pp, wrap, pp, one);
        }
        pv[v] = pp;
        qv[v] = q;
    }
    VEC acc[WKB][WNV];
#pragma GCC unroll 8
    for (int j = 0; j < WKB; j++)
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            acc[j][v] = (c0 > 0 && j < kvalid) ? VLOADZ(om[v], yk + j * PQ + f0[v]) : VZERO();

    for (ptrdiff_t r = 0; r < p->R; r++) {
        const ptrdiff_t dr = r * p->dh - p->pt;
        const __m512i rlo = _mm512_set1_epi32((int)-dr), rhi = _mm512_set1_epi32((int)(H - dr));
        MASK rm[WNV];
        unsigned anyrow = 0;
        for (int v = 0; v < nv; v++) {
            rm[v] = om[v] & (MASK)(_mm512_cmpge_epi32_mask(pv[v], rlo) & _mm512_cmplt_epi32_mask(pv[v], rhi));
            anyrow |= rm[v];
        }
        if (!anyrow) continue;
        for (ptrdiff_t s = 0; s < S; s++) {
            const ptrdiff_t ds = s * p->dw - p->pl;
            const __m512i clo = _mm512_set1_epi32((int)-ds), chi = _mm512_set1_epi32((int)(W - ds));
            MASK m[WNV];
            const T *xp[WNV];
            unsigned any = 0;
            for (int v = 0; v < nv; v++) {
                m[v] = rm[v] & (MASK)(_mm512_cmpge_epi32_mask(qv[v], clo) & _mm512_cmplt_epi32_mask(qv[v], chi));
                any |= m[v];
                /* masked-off lanes are never touched, so this may point outside the plane */
                xp[v] = xg + c0 * HW + f0[v] + dr * W + ds;
            }
            if (!any) continue;
            const T *wrs = packed ? wk + ((r * S + s) * Cg + c0) * WKB : wk + c0 * RS + r * S + s;
            const ptrdiff_t wrow = Cg * RS;
            for (ptrdiff_t c = 0; c < c1 - c0; c++) {
                VEC xv[WNV];
#pragma GCC unroll 3
                for (int v = 0; v < nv; v++) {
                    /* two channels ahead (prefetches never fault, even past the array) */
                    _mm_prefetch((const char *)(xp[v] + (c + 2) * HW), _MM_HINT_T0);
                    _mm_prefetch((const char *)(xp[v] + (c + 2) * HW + LANES - 1), _MM_HINT_T0);
                    xv[v] = VLOADZ(m[v], xp[v] + c * HW);
                }
#pragma GCC unroll 8
                for (int j = 0; j < WKB; j++) {
                    const VEC wb = VSET1(packed ? wrs[c * WKB + j] : wrs[(j < kvalid ? j : 0) * wrow + c * RS]);
#pragma GCC unroll 3
                    for (int v = 0; v < nv; v++) acc[j][v] = VFMA(wb, xv[v], acc[j][v]);
                }
            }
        }
    }

    const int last = c1 == Cg;
    const VEC zero = VZERO(), six = VSET1((T)6);
#pragma GCC unroll 8
    for (int j = 0; j < WKB; j++) {
        if (j >= kvalid) continue;
        const VEC b = (last && bk) ? VSET1(bk[j]) : zero;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            VEC a = acc[j][v];
            if (last) {
                if (bk) a = VADD(a, b);
                if (p->act >= 1) a = VMAX(zero, a);   /* NaN in a survives: max returns operand 2 */
                if (p->act == 2) a = VMIN(six, a);
            }
            VSTOREM(yk + j * PQ + f0[v], om[v], a);
        }
    }
}

static void FN(direct_ftile_any)(const direct_plan *p, const T *xg, const T *wk, T *yk, const T *bk,
                                 ptrdiff_t kvalid, ptrdiff_t v0, ptrdiff_t nv, int packed, ptrdiff_t c0,
                                 ptrdiff_t c1)
{
    if (packed) {
        if (nv >= 3) FN(direct_ftile)(p, xg, wk, yk, bk, kvalid, v0, 3, 1, c0, c1);
        else if (nv == 2) FN(direct_ftile)(p, xg, wk, yk, bk, kvalid, v0, 2, 1, c0, c1);
        else FN(direct_ftile)(p, xg, wk, yk, bk, kvalid, v0, 1, 1, c0, c1);
    } else {
        if (nv >= 3) FN(direct_ftile)(p, xg, wk, yk, bk, kvalid, v0, 3, 0, c0, c1);
        else if (nv == 2) FN(direct_ftile)(p, xg, wk, yk, bk, kvalid, v0, 2, 0, c0, c1);
        else FN(direct_ftile)(p, xg, wk, yk, bk, kvalid, v0, 1, 0, c0, c1);
    }
}

/* wvec item: image, group, a group of kgrp k blocks and a band of bandv output vectors; per input
   channel block every k block of the group sweeps the band (x band and weights stay in L2) */
static void FN(direct_wvec_item)(const direct_plan *p, const T *x, const T *w, const T *wp,
                                 const T *bias, T *y, ptrdiff_t item)
{
    const ptrdiff_t band = item % p->nband, kgi = (item / p->nband) % p->nkg;
    const ptrdiff_t g = (item / (p->nband * p->nkg)) % p->G, n = item / (p->nband * p->nkg * p->G);
    const ptrdiff_t HW = p->H * p->W, PQ = p->P * p->Q;
    const T *xg = x + (n * p->C + g * p->Cg) * HW;
    const ptrdiff_t vbeg = band * p->bandv, nvec = p->nvec;
    const ptrdiff_t vend = vbeg + p->bandv < nvec ? vbeg + p->bandv : nvec;
    const ptrdiff_t kb0 = kgi * p->kgrp, kb1 = kb0 + p->kgrp < p->nkb ? kb0 + p->kgrp : p->nkb;
    for (ptrdiff_t c0 = 0; c0 < p->Cg; c0 += p->cb) {
        const ptrdiff_t c1 = c0 + p->cb < p->Cg ? c0 + p->cb : p->Cg;
        for (ptrdiff_t kb = kb0; kb < kb1; kb++) {
            const ptrdiff_t blk = g * p->nkb + kb, k0 = kb * WKB;
            const ptrdiff_t kvalid = p->Kg - k0 < WKB ? p->Kg - k0 : WKB;
            const T *wk = p->wpack ? wp + blk * WKB * p->Cg * p->R * p->S
                                   : w + (g * p->Kg + k0) * p->Cg * p->R * p->S;
            T *yk = y + (n * p->K + g * p->Kg + k0) * PQ;
            const T *bk = bias ? bias + g * p->Kg + k0 : NULL;
            for (ptrdiff_t v0 = vbeg; v0 < vend; v0 += WNV) {
                const ptrdiff_t nv = vend - v0;
                if (p->flat) {
                    if (p->wpack)
                        FN(direct_ftile_any)(p, xg, wk, yk, bk, kvalid, v0, nv, 1, c0, c1);
                    else
                        FN(direct_ftile_any)(p, xg, wk, yk, bk, kvalid, v0, nv, 0, c0, c1);
                } else if (p->wpack) {
                    if (nv >= 3)
                        FN(direct_wtile)(p, xg, wk, yk, bk, kvalid, v0, 3, 1, c0, c1);
                    else if (nv == 2)
                        FN(direct_wtile)(p, xg, wk, yk, bk, kvalid, v0, 2, 1, c0, c1);
                    else
                        FN(direct_wtile)(p, xg, wk, yk, bk, kvalid, v0, 1, 1, c0, c1);
                } else {
                    if (nv >= 3)
                        FN(direct_wtile)(p, xg, wk, yk, bk, kvalid, v0, 3, 0, c0, c1);
                    else if (nv == 2)
                        FN(direct_wtile)(p, xg, wk, yk, bk, kvalid, v0, 2, 0, c0, c1);
                    else
                        FN(direct_wtile)(p, xg, wk, yk, bk, kvalid, v0, 1, 0, c0, c1);
                }
            }
        }
    }
}

/* kvec register tile: 2*LANES output channels x np output pixels q0 .. q0+np-1 of one output row,
   input channels [c0, c0+nc) taken from the zero-padded row buffer. Pixels past Q are computed on
   the buffer's zero tail and dropped at the store. */
static inline __attribute__((always_inline)) void FN(direct_ktile)(
    const direct_plan *p, const T *buf, const T *wc, T *yrow, const T *bk, ptrdiff_t kvalid,
    ptrdiff_t q0, const int np, ptrdiff_t nc, int first, int last)
{
    const ptrdiff_t R = p->R, S = p->S, sw = p->sw, dw = p->dw, wbuf = p->wbuf, PQ = p->P * p->Q;
    VEC a0[KNP], a1[KNP];
#pragma GCC unroll 12
    for (int j = 0; j < np; j++) a0[j] = a1[j] = VZERO();
    for (ptrdiff_t c = 0; c < nc; c++)
        for (ptrdiff_t r = 0; r < R; r++) {
            const T *br = buf + (c * R + r) * wbuf + q0 * sw;
            for (ptrdiff_t s = 0; s < S; s++) {
                const VEC w0 = VLOAD(wc), w1 = VLOAD(wc + LANES);
                wc += 2 * LANES;
                const T *bs = br + s * dw;
#pragma GCC unroll 12
                for (int j = 0; j < np; j++) {
                    const VEC xb = VSET1(bs[j * sw]);
                    a0[j] = VFMA(w0, xb, a0[j]);
                    a1[j] = VFMA(w1, xb, a1[j]);
                }
            }
        }
    if (first && last) {
        /* the whole reduction is in registers: epilogue on the vectors (lanes = channels) */
        const VEC zero = VZERO(), six = VSET1((T)6);
        const MASK m0 = (MASK)(kvalid >= LANES ? (1u << LANES) - 1u : (1u << kvalid) - 1u);
        const MASK m1 = (MASK)(kvalid >= 2 * LANES ? (1u << LANES) - 1u
                               : kvalid > LANES ? (1u << (kvalid - LANES)) - 1u : 0u);
        const VEC b0 = bk ? VLOADZ(m0, bk) : zero, b1 = bk ? VLOADZ(m1, bk + LANES) : zero;
#pragma GCC unroll 12
        for (int j = 0; j < np; j++) {
            a0[j] = VADD(a0[j], b0);
            a1[j] = VADD(a1[j], b1);
            if (p->act >= 1) {
                a0[j] = VMAX(zero, a0[j]);   /* NaN survives: max returns operand 2 */
                a1[j] = VMAX(zero, a1[j]);
            }
            if (p->act == 2) {
                a0[j] = VMIN(six, a0[j]);
                a1[j] = VMIN(six, a1[j]);
            }
        }
    }
    /* transpose through the stack: tmp[pixel][channel] */
    T tmp[KNP * 2 * LANES] __attribute__((aligned(64)));
#pragma GCC unroll 12
    for (int j = 0; j < np; j++) {
        VSTORE(tmp + j * 2 * LANES, a0[j]);
        VSTORE(tmp + j * 2 * LANES + LANES, a1[j]);
    }
    const ptrdiff_t nq = p->Q - q0 < np ? p->Q - q0 : np;
    for (ptrdiff_t k = 0; k < kvalid; k++) {
        T *yr = yrow + k * PQ + q0;
        for (ptrdiff_t j = 0; j < nq; j++) {
            T v = tmp[j * 2 * LANES + k];
            if (!first) {
                v = yr[j] + v;
                if (last) v = FN(direct_act)(bk ? v + bk[k] : v, p->act);
            }
            yr[j] = v;
        }
    }
}

static void FN(direct_ktile_any)(const direct_plan *p, const T *buf, const T *wc, T *yrow, const T *bk,
                                 ptrdiff_t kvalid, ptrdiff_t q0, ptrdiff_t nc, int first, int last)
{
    switch (p->knp) {
    case 8: FN(direct_ktile)(p, buf, wc, yrow, bk, kvalid, q0, 8, nc, first, last); break;
    case 9: FN(direct_ktile)(p, buf, wc, yrow, bk, kvalid, q0, 9, nc, first, last); break;
    case 10: FN(direct_ktile)(p, buf, wc, yrow, bk, kvalid, q0, 10, nc, first, last); break;
    case 11: FN(direct_ktile)(p, buf, wc, yrow, bk, kvalid, q0, 11, nc, first, last); break;
    default: FN(direct_ktile)(p, buf, wc, yrow, bk, kvalid, q0, KNP, nc, first, last); break;
    }
}

/* kvec item: (group, k block) outer, then image, then one output row. buf: cb * R * wbuf elements. */
static void FN(direct_kvec_item)(const direct_plan *p, const T *x, const T *wp, const T *bias, T *y,
                                 ptrdiff_t item, T *buf)
{
    const ptrdiff_t H = p->H, W = p->W, R = p->R, S = p->S, P = p->P, wbuf = p->wbuf, KB = p->kblock;
    const ptrdiff_t per_blk = p->N * P;
    const ptrdiff_t blk = item / per_blk, n = (item % per_blk) / P, prow = item % P;
    const ptrdiff_t g = blk / p->nkb, k0 = (blk % p->nkb) * KB;
    const ptrdiff_t kvalid = p->Kg - k0 < KB ? p->Kg - k0 : KB;
    const T *wk = wp + blk * KB * p->Cg * R * S;
    T *yrow = y + (n * p->K + g * p->Kg + k0) * P * p->Q + prow * p->Q;
    const T *bk = bias ? bias + g * p->Kg + k0 : NULL;
    /* buffer column b holds input column b - pl */
    const ptrdiff_t lz = p->pl < wbuf ? p->pl : wbuf;
    const ptrdiff_t ncopy = W < wbuf - lz ? W : wbuf - lz;
    for (ptrdiff_t c0 = 0; c0 < p->Cg; c0 += p->cb) {
        const ptrdiff_t nc = c0 + p->cb < p->Cg ? p->cb : p->Cg - c0;
        for (ptrdiff_t c = 0; c < nc; c++)
            for (ptrdiff_t r = 0; r < R; r++) {
                T *b = buf + (c * R + r) * wbuf;
                const ptrdiff_t ih = prow * p->sh + r * p->dh - p->pt;
                if (ih < 0 || ih >= H || ncopy <= 0) {
                    memset(b, 0, (size_t)wbuf * sizeof(T));
                    continue;
                }
                memset(b, 0, (size_t)lz * sizeof(T));
                memcpy(b + lz, x + ((n * p->C + g * p->Cg + c0 + c) * H + ih) * W, (size_t)ncopy * sizeof(T));
                memset(b + lz + ncopy, 0, (size_t)(wbuf - lz - ncopy) * sizeof(T));
            }
        const T *wc = wk + c0 * R * S * KB;
        for (ptrdiff_t q0 = 0; q0 < p->Q; q0 += p->knp)
            FN(direct_ktile_any)(p, buf, wc, yrow, bk, kvalid, q0, nc, c0 == 0, c0 + nc == p->Cg);
    }
}

#endif /* __AVX512F__ */

/* one work item of the plan; wp: repacked weights (fast paths), scratch: p->scratch elements */
static void FN(direct_item)(const direct_plan *p, const T *x, const T *w, const T *wp, const T *bias,
                            T *y, ptrdiff_t item, T *scratch)
{
#ifdef __AVX512F__
    if (p->path == DIRECT_WVEC) {
        FN(direct_wvec_item)(p, x, w, wp, bias, y, item);
        return;
    }
    if (p->path == DIRECT_KVEC) {
        FN(direct_kvec_item)(p, x, wp, bias, y, item, scratch);
        return;
    }
#endif
    (void)wp;
    (void)scratch;
    FN(direct_simple_item)(p, x, w, bias, y, item);
}

#undef FN
#endif /* DIRECT_TEMPLATE_PASS */
