/* amx.h: the inference plan's dense convolutions on Intel AMX tiles (blocked layout, float32 in/out).

   What it computes: bconv's convolution (blocked.h), y[n, k, p, q] = act(bias[k] + sum_{c, r, s}
   w[k, c, r, s] * x[n, c, p*sh + r*dh - pt, q*sw + s*dw - pl] [+ res[n, k, p, q]]), x and y NCHW16c.

   How: every product is taken as three bf16 products accumulated in float32 ("bf16x3"). With
   xh = bf16(x), xl = bf16(x - xh) and likewise wh, wl for the weights, x w ~ xh wh + xh wl + xl wh;
   what is left out (xl wl, and what a two-part split misses of x and w) is about 2^-16 of |x w|, so
   a sum's relative error is a few 1e-6 (measured 4e-6 on random data against float64: plain float32
   gives 4e-7, Winograd F(4x4, 3x3) 1e-5 .. 3e-5). One TDPBF16PS does 16 x 16 x 32 multiply-adds:
   1.6 TFLOP/s of bf16 on one core of the Xeon this was written on, 7x its float32 FMA rate, so the
   three products still run at ~2.3x the FMA peak.

   Data. A work item (image, group of output blocks, band of output rows) first converts the input
   it reads into a per-thread scratch (scratch.h) of bf16 pairs: per 32 channels (two input blocks)
   and pixel, 32 hi halves then 32 lo halves, 128 bytes, so that a tile row is one pixel's 32
   channels at a row stride of 128 bytes. The scratch is split into phases by row and column residue
   modulo the stride (one phase at stride 1), so that every tap reads consecutive pixels of one
   phase: the band's outputs are numbered f = u * wp + q (u the row in the band, wp a phase's width:
   Q plus the taps' reach), and tap (r, s) of output f reads pixel f + (r dh / sh) wp + s dw / sw of
   phase (r dh mod sh, s dw mod sw). A tile is 16 consecutive f, so a row's last pixels and the next
   row's first share one (a 7x7 plane takes 4 tiles, not 7); the f with q >= Q are computed and
   dropped. Padding is converted as zeros, so the input needs no halo.
   Weights (prepacked by kernels/blocked.py AmxWeights): per 16 output channels, 32 input channels
   and tap, a 16 x 32 tile of hi halves in TDPBF16PS's pair order, then one of lo halves.
   Tiles: 0-3 accumulate 4 x 16 output channels of 16 pixels, 4-5 hold the input's hi and lo, 6-7
   a weight tile's hi and lo: per 32 input channels and tap, 2 + 8 tile loads and 12 TDPBF16PS.
   The accumulators pass through a 4 KB buffer in L1, where AVX-512 adds the bias and residual and
   applies the activation on the way to y.

   Every output element is reduced in one order (32-channel groups, then r, s; hi*hi, hi*lo, lo*hi)
   whatever the tile, band and thread count: results do not depend on the partition. An infinite
   input (or one that rounds to an infinite bf16) makes the split meaningless (inf - inf): the item
   says so and the caller reruns the layer with float32 FMAs (bconv), so Inf propagates as IEEE says.

   Built only where the compiler targets AMX (the avx512 variant); elsewhere bamx_built() is 0 and
   nothing here runs. bamx_usable() checks the CPU and asks Linux for the tile state (arch_prctl).
*/
#ifndef CONVFORGE_AMX_H
#define CONVFORGE_AMX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "blocked.h"

#define BAMX_TAPS 64          /* most taps (R x S) of a kernel the tiles take */
#define BAMX_STRIDE 4         /* largest stride (phases per axis) */
#define BAMX_SCRATCH (768 * 1024)   /* converted input of an item: beside its weights in a 2 MB L2 */
#define BAMX_PIX 64           /* bf16 per pixel and 32 channels: 32 hi, then 32 lo */

typedef struct {
    /* element strides (floats): x (n, block, row), y and res (n, block, row) */
    ptrdiff_t xn, xc, xr, yn, yc, yr, rn, rc, rr;
    ptrdiff_t N, Cb, Kb, H, W, P, Q, R, S, sh, sw, dh, dw, pt, pl;
    ptrdiff_t yh;      /* y's halo: the items zero the frame around the rows they own */
    int act;
    /* the geometry of the taps */
    ptrdiff_t C2;      /* 32-channel groups (input blocks in pairs, the last one padded) */
    ptrdiff_t taps, wp, reach;            /* R x S; a phase's width; a phase's extra rows */
    int nph;                              /* phases the taps read */
    ptrdiff_t pha[BAMX_STRIDE * BAMX_STRIDE], phc[BAMX_STRIDE * BAMX_STRIDE];
    int tph[BAMX_TAPS];                   /* each tap's phase */
    ptrdiff_t tpx[BAMX_TAPS];             /* ... and its offset in that phase, in pixels */
    /* the plan */
    ptrdiff_t band, nband, kt, ngrp, items;
} bamx;

B_INLINE ptrdiff_t bamx_rows(const bamx *g, ptrdiff_t band) { return band + g->reach; }
/* pixels of one phase of an item's scratch: its rows, and a tail that the last tile may read */
B_INLINE ptrdiff_t bamx_pstride(const bamx *g, ptrdiff_t band) { return bamx_rows(g, band) * g->wp + g->wp + 16; }
B_INLINE size_t bamx_scratch_bytes(const bamx *g, ptrdiff_t band)
{
    return (size_t)g->C2 * g->nph * bamx_pstride(g, band) * BAMX_PIX * sizeof(uint16_t);
}
B_INLINE ptrdiff_t bamx_tiles(const bamx *g, ptrdiff_t band) { return b_cdiv((band - 1) * g->wp + g->Q, 16); }

/* The taps' phases and offsets; 0 when the geometry is past what the tiles take (the caller then
   keeps bconv). */
static int bamx_geometry(bamx *g)
{
    g->C2 = b_cdiv(g->Cb, 2);
    g->taps = g->R * g->S;
    if (g->taps > BAMX_TAPS || g->sh > BAMX_STRIDE || g->sw > BAMX_STRIDE || g->sh < 1 || g->sw < 1) return 0;
    g->wp = g->Q + ((g->S - 1) * g->dw) / g->sw;
    g->reach = ((g->R - 1) * g->dh) / g->sh;
    g->nph = 0;
    for (ptrdiff_t r = 0; r < g->R; r++)
        for (ptrdiff_t s = 0; s < g->S; s++) {
            const ptrdiff_t a = (r * g->dh) % g->sh, c = (s * g->dw) % g->sw;
            int ph = 0;
            while (ph < g->nph && (g->pha[ph] != a || g->phc[ph] != c)) ph++;
            if (ph == g->nph) g->pha[ph] = a, g->phc[ph] = c, g->nph++;
            g->tph[r * g->S + s] = ph;
            g->tpx[r * g->S + s] = ((r * g->dh) / g->sh) * g->wp + (s * g->dw) / g->sw;
        }
    return 1;
}

/* Choose the bands of rows and the groups of output blocks that minimise the busiest thread's
   work: its items' TDPs (16 cycles each, 3 per 16 x 16 x 32 block of products, a tile's input
   loads about a sixth of that), their input conversion (about 8 cycles a pixel per 32 channels)
   and a fixed cost per item; a band's scratch must fit BAMX_SCRATCH unless it is one row. Groups are
   whole multiples of 4 blocks (the accumulator tiles) or all the blocks. */
static void bamx_plan(bamx *g, int nthreads)
{
    double best = -1;
    const ptrdiff_t Kt = g->Kb;
    for (ptrdiff_t kt = 4; ; kt += 4) {
        const ptrdiff_t nkt = kt < Kt ? kt : Kt, ngrp = b_cdiv(Kt, nkt);
        for (ptrdiff_t nb = 1; nb <= g->P; nb++) {
            const ptrdiff_t band = b_cdiv(g->P, nb), nband = b_cdiv(g->P, band);
            if (nband != nb) continue;
            if (band > 1 && bamx_scratch_bytes(g, band) > BAMX_SCRATCH) continue;
            const ptrdiff_t items = g->N * ngrp * nband;
            const double tdp = (double)bamx_tiles(g, band) * nkt * g->C2 * g->taps * (3 * 16 + 3);
            const double conv = 8.0 * g->C2 * g->nph * bamx_rows(g, band) * g->wp;
            const double cost = (double)b_cdiv(items, nthreads) * (tdp + conv + 2000.0);
            if (best < 0 || cost < best) {
                best = cost;
                g->band = band, g->nband = nband, g->kt = nkt, g->ngrp = ngrp, g->items = items;
            }
        }
        if (kt >= Kt) break;
    }
}

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__)

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "scratch.h"

static int bamx_built(void) { return 1; }

/* CPUID: AMX-TILE and AMX-BF16 (leaf 7 EDX bits 24, 22), AVX512-BF16 (leaf 7.1 EAX bit 5); then
   Linux's permission for the tile data (ARCH_REQ_XCOMP_PERM, feature 18), which every thread of the
   process (and a forked child) inherits. Without it a tile instruction is an illegal instruction. */
static int bamx_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 22))) return 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return 0;
    unsigned long mask = 0;
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0) return 0;
    if (syscall(SYS_arch_prctl, 0x1022 /* ARCH_GET_XCOMP_PERM */, &mask) != 0) return 0;
    return (mask >> 18) & 1;
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} bamx_cfg;

/* Every tile 16 rows of 64 bytes. */
static void bamx_config(void)
{
    bamx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) c.colsb[t] = 64, c.rows[t] = 16;
    _tile_loadconfig(&c);
}

/* 16 channels of blocks a and b (32 channels) of one pixel as 32 hi then 32 lo bf16; nonzero when a
   hi half is infinite (an infinite input, or a finite one past bf16's range). */
B_INLINE int bamx_split(__m512 a, __m512 b, uint16_t *dst)
{
    const __m512i hi = (__m512i)_mm512_cvtne2ps_pbh(b, a);      /* a in the low 16, b in the high */
    const __m512 ha = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(hi)), 16));
    const __m512 hb = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(hi, 1)), 16));
    const __m512i lo = (__m512i)_mm512_cvtne2ps_pbh(_mm512_sub_ps(b, hb), _mm512_sub_ps(a, ha));
    _mm512_store_si512((void *)dst, hi);
    _mm512_store_si512((void *)(dst + 32), lo);
    return (int)(_mm512_fpclass_ps_mask(ha, 0x18) | _mm512_fpclass_ps_mask(hb, 0x18));
}

/* Convert the input of output rows [p0, p0 + band) of image xi into the scratch: for every 32-channel
   group and phase, the phase's rows x wp pixels (zeros outside the input), then a zeroed tail; each
   channel times si[c] when si is given (a squeeze-and-excitation scale folded into this conversion).
   -> nonzero when some input is infinite. */
static int bamx_convert(const bamx *g, const float *xi, const float *si, ptrdiff_t p0, ptrdiff_t band,
                        uint16_t *sc)
{
    const ptrdiff_t rows = bamx_rows(g, band), ps = bamx_pstride(g, band);
    int inf = 0;
    for (ptrdiff_t c2 = 0; c2 < g->C2; c2++) {
        const float *xa = xi + 2 * c2 * g->xc;
        const float *xb = 2 * c2 + 1 < g->Cb ? xa + g->xc : NULL;
        const __m512 one = _mm512_set1_ps(1.0f);
        const __m512 sa = si ? _mm512_loadu_ps(si + 2 * c2 * BL) : one;
        const __m512 sb = si && xb ? _mm512_loadu_ps(si + (2 * c2 + 1) * BL) : one;
        for (int ph = 0; ph < g->nph; ph++) {
            uint16_t *dst = sc + (c2 * g->nph + ph) * ps * BAMX_PIX;
            const ptrdiff_t a = g->pha[ph], c = g->phc[ph];
            /* the phase's columns j hold input column j sw + c - pl: [j0, j1) inside the input */
            ptrdiff_t j0 = b_cdiv(g->pl - c > 0 ? g->pl - c : 0, g->sw), j1 = b_cdiv(g->W + g->pl - c, g->sw);
            if (j1 > g->wp) j1 = g->wp;
            if (j0 > j1) j0 = j1;
            for (ptrdiff_t i = 0; i < rows; i++, dst += g->wp * BAMX_PIX) {
                const ptrdiff_t ih = (p0 + i) * g->sh - g->pt + a;   /* phase row i: band row i sh + a */
                if (ih < 0 || ih >= g->H || j0 == j1) {
                    memset(dst, 0, (size_t)g->wp * BAMX_PIX * sizeof(uint16_t));
                    continue;
                }
                memset(dst, 0, (size_t)j0 * BAMX_PIX * sizeof(uint16_t));
                const float *ra = xa + ih * g->xr + (j0 * g->sw + c - g->pl) * BL;
                const float *rb = xb ? xb + ih * g->xr + (j0 * g->sw + c - g->pl) * BL : NULL;
                const ptrdiff_t step = g->sw * BL;
                for (ptrdiff_t j = j0; j < j1; j++, ra += step) {
                    const __m512 va = _mm512_mul_ps(_mm512_loadu_ps(ra), sa);
                    const __m512 vb = rb ? _mm512_mul_ps(_mm512_loadu_ps(rb), sb) : _mm512_setzero_ps();
                    if (rb) rb += step;
                    inf |= bamx_split(va, vb, dst + j * BAMX_PIX);
                }
                memset(dst + j1 * BAMX_PIX, 0, (size_t)(g->wp - j1) * BAMX_PIX * sizeof(uint16_t));
            }
            memset(dst, 0, (size_t)(ps - rows * g->wp) * BAMX_PIX * sizeof(uint16_t));
        }
    }
    return inf;
}

/* One weight tile pair into accumulator T: hi*hi, hi*lo, lo*hi. */
#define BAMX_MUL(T, wt)                                                                    \
    do {                                                                                   \
        _tile_loadd(6, (wt), 64);                                                          \
        _tile_loadd(7, (wt) + 512, 64);                                                    \
        _tile_dpbf16ps(T, 4, 6);                                                           \
        _tile_dpbf16ps(T, 4, 7);                                                           \
        _tile_dpbf16ps(T, 5, 6);                                                           \
    } while (0)

/* The products of 16 outputs (from a0) x NT blocks of 16 output channels (weights from w0, wks
   apart) over every 32-channel group and tap, into tb (NT x 16 x 16 floats). */
#define BAMX_RUN(NT)                                                                                   \
    static void bamx_run##NT(const bamx *g, const uint16_t *a0, ptrdiff_t gs, const ptrdiff_t *toff,   \
                             const uint16_t *w0, ptrdiff_t wks, float *tb)                             \
    {                                                                                                  \
        _tile_zero(0);                                                                                 \
        if (NT > 1) _tile_zero(1);                                                                     \
        if (NT > 2) _tile_zero(2);                                                                     \
        if (NT > 3) _tile_zero(3);                                                                     \
        const uint16_t *wt = w0;                                                                       \
        for (ptrdiff_t c2 = 0; c2 < g->C2; c2++) {                                                     \
            const uint16_t *ac = a0 + c2 * gs;                                                         \
            for (ptrdiff_t t = 0; t < g->taps; t++, wt += 1024) {                                      \
                const uint16_t *a = ac + toff[t];                                                      \
                _tile_loadd(4, a, 2 * BAMX_PIX);                                                       \
                _tile_loadd(5, a + 32, 2 * BAMX_PIX);                                                  \
                BAMX_MUL(0, wt);                                                                       \
                if (NT > 1) BAMX_MUL(1, wt + wks);                                                     \
                if (NT > 2) BAMX_MUL(2, wt + 2 * wks);                                                 \
                if (NT > 3) BAMX_MUL(3, wt + 3 * wks);                                                 \
            }                                                                                          \
        }                                                                                              \
        _tile_stored(0, tb, 64);                                                                       \
        if (NT > 1) _tile_stored(1, tb + 256, 64);                                                     \
        if (NT > 2) _tile_stored(2, tb + 512, 64);                                                     \
        if (NT > 3) _tile_stored(3, tb + 768, 64);                                                     \
    }
BAMX_RUN(1)
BAMX_RUN(2)
BAMX_RUN(3)
BAMX_RUN(4)
#undef BAMX_RUN
#undef BAMX_MUL

/* tb's nt blocks x 16 outputs to y: + bias, + residual, activation; yo[m] < 0 drops output m. */
B_INLINE void bamx_store_act(const float *tb, int nt, const ptrdiff_t *yo, const ptrdiff_t *ro, float *y,
                             ptrdiff_t yc, const float *res, ptrdiff_t rc, const float *bias, const int ACT)
{
    for (int j = 0; j < nt; j++) {
        const bv b = BLD(bias + j * BL);
        for (int m = 0; m < 16; m++) {
            if (yo[m] < 0) continue;
            bv v = BLD(tb + j * 256 + m * BL) + b;
            if (res) v += BLD(res + j * rc + ro[m]);
            BST(y + j * yc + yo[m], b_vact(v, ACT));
        }
    }
}

static void bamx_store(const float *tb, int nt, const ptrdiff_t *yo, const ptrdiff_t *ro, float *y, ptrdiff_t yc,
                       const float *res, ptrdiff_t rc, const float *bias, int act)
{
    switch (act) {
    case 1: bamx_store_act(tb, nt, yo, ro, y, yc, res, rc, bias, 1); break;
    case 2: bamx_store_act(tb, nt, yo, ro, y, yc, res, rc, bias, 2); break;
    case 3: bamx_store_act(tb, nt, yo, ro, y, yc, res, rc, bias, 3); break;
    case 4: bamx_store_act(tb, nt, yo, ro, y, yc, res, rc, bias, 4); break;
    default: bamx_store_act(tb, nt, yo, ro, y, yc, res, rc, bias, 0); break;
    }
}

/* Work item `item` (image, group, band; the band fastest, so a thread's consecutive items share their
   weights). x, y, res at their interior origins; w the AmxWeights tiles; s NULL or the (N, Cb*16)
   scales of the input channels. -> 0, 1 when an input is infinite (y is then incomplete: the caller
   reruns the layer), -1 when the scratch could not be allocated (nothing written). */
static int bamx_item(const bamx *g, const float *x, const float *s, const uint16_t *w, const float *bias,
                     const float *res, float *y, ptrdiff_t item)
{
    const ptrdiff_t band_i = item % g->nband, grp = (item / g->nband) % g->ngrp, n = item / (g->nband * g->ngrp);
    const ptrdiff_t p0 = band_i * g->band, p1 = p0 + g->band < g->P ? p0 + g->band : g->P, band = p1 - p0;
    const ptrdiff_t k0 = grp * g->kt, k1 = k0 + g->kt < g->Kb ? k0 + g->kt : g->Kb;
    uint16_t *sc = (uint16_t *)b_scratch(bamx_scratch_bytes(g, band));
    if (!sc) return -1;
    if (bamx_convert(g, x + n * g->xn, s ? s + n * g->Cb * BL : NULL, p0, band, sc)) return 1;
    const ptrdiff_t ps = bamx_pstride(g, band), gs = g->nph * ps * BAMX_PIX, wks = g->C2 * g->taps * 1024;
    ptrdiff_t toff[BAMX_TAPS];
    for (ptrdiff_t t = 0; t < g->taps; t++) toff[t] = (g->tph[t] * ps + g->tpx[t]) * BAMX_PIX;
    float tb[4 * 256] __attribute__((aligned(64)));
    float *yi = y + n * g->yn + p0 * g->yr;
    const float *ri = res ? res + n * g->rn + p0 * g->rr : NULL;
    const ptrdiff_t tiles = bamx_tiles(g, band);
    bamx_config();
    for (ptrdiff_t kc = k0; kc < k1; kc += 4) {
        const int nt = (int)(k1 - kc < 4 ? k1 - kc : 4);
        const uint16_t *wk = w + kc * wks;
        for (ptrdiff_t t = 0; t < tiles; t++) {
            const ptrdiff_t f0 = t * 16;
            switch (nt) {
            case 1: bamx_run1(g, sc + f0 * BAMX_PIX, gs, toff, wk, wks, tb); break;
            case 2: bamx_run2(g, sc + f0 * BAMX_PIX, gs, toff, wk, wks, tb); break;
            case 3: bamx_run3(g, sc + f0 * BAMX_PIX, gs, toff, wk, wks, tb); break;
            default: bamx_run4(g, sc + f0 * BAMX_PIX, gs, toff, wk, wks, tb); break;
            }
            ptrdiff_t yo[16], ro[16];
            for (int m = 0; m < 16; m++) {
                const ptrdiff_t f = f0 + m, u = f / g->wp, q = f % g->wp;
                const int ok = q < g->Q && u < band;
                yo[m] = ok ? u * g->yr + q * BL : -1;
                ro[m] = ok ? u * g->rr + q * BL : 0;
            }
            bamx_store(tb, nt, yo, ro, yi + kc * g->yc, g->yc, ri ? ri + kc * g->rc : NULL, g->rc, bias + kc * BL,
                       g->act);
        }
    }
    _tile_release();
    for (ptrdiff_t k = k0; k < k1; k++) b_frame_rows(y + n * g->yn + k * g->yc, g->yr, g->Q, g->yh, p0, p1, g->P);
    return 0;
}

#else   /* no AMX in this build: the step is never made (bamx_usable() is 0) */

static int bamx_built(void) { return 0; }
static int bamx_usable(void) { return 0; }
static int bamx_item(const bamx *g, const float *x, const float *s, const uint16_t *w, const float *bias,
                     const float *res, float *y, ptrdiff_t item)
{
    (void)g, (void)x, (void)s, (void)w, (void)bias, (void)res, (void)y, (void)item;
    return -1;
}

#endif

#endif /* CONVFORGE_AMX_H */
