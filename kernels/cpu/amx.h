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

   Data. A work item (images, group of output blocks, band of output rows) first converts the input
   it reads into a per-thread scratch (scratch.h) of bf16 pairs: per 32 channels (two input blocks)
   and pixel, 32 hi halves then 32 lo halves, 128 bytes, so that a tile row is one pixel's 32
   channels at a row stride of 128 bytes. The scratch is split into phases by row and column residue
   modulo the stride (one phase at stride 1), so that every tap reads consecutive pixels of one
   phase: the band's outputs are numbered f = u * wp + q (u the row in the band, wp a phase's width:
   Q plus the taps' reach), and tap (r, s) of output f reads pixel f + (r dh / sh) wp + s dw / sw of
   phase (r dh mod sh, s dw mod sw). A tile is 16 consecutive f, so a row's last pixels and the next
   row's first share one (a 7x7 plane takes 4 tiles, not 7); the f with q >= Q are computed and
   dropped. Padding is converted as zeros, so the input needs no halo.
   A stem on NCHW input (few channels) is one 1x1 tap over its im2col rows instead: each pixel's
   C x R x S taps (c, r, s in order) are its "channels".
   Weights (prepacked by kernels/amx.py AmxWeights): per 16 output channels, 32 input channels
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

/* the blocked kernels' epilogue helpers; the rest of blocked.h is unused here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "blocked.h"
#pragma GCC diagnostic pop

#define BAMX_TAPS 64          /* most taps (R x S) of a kernel the tiles take */
#define BAMX_STRIDE 4         /* largest stride (phases per axis) */
#define BAMX_L2 (1536 * 1024) /* an item's converted input, partial sums and two weight chunks: in a 2 MB L2 */
#define BAMX_CHUNK (512 * 1024)     /* most weights of one chunk (4 output blocks x some input groups) */
#define BAMX_INPUT (768 * 1024)     /* most converted input of an item of several rows or images */
#define BAMX_PIX 64           /* bf16 per pixel and 32 channels: 32 hi, then 32 lo */
#define BAMX_STAGE 1024       /* most channels of a stem's im2col row (C x R x S, rounded up to 32) */
#define BAMX_PIECES 96        /* most pieces of a stem's im2col row built in registers */
#define BAMX_CYC_BYTE 0.2     /* cycles per weight byte streamed from L3 or memory into one core */

typedef struct {
    /* element strides (floats): x (n, block, row), y and res (n, block, row) */
    ptrdiff_t xn, xc, xr, yn, yc, yr, rn, rc, rr;
    ptrdiff_t N, Cb, Kb, H, W, P, Q, R, S, sh, sw, dh, dw, pt, pl;
    ptrdiff_t yh;      /* y's halo: the items zero the frame around the rows they own */
    int act;
    /* a stem: x is zero-padded NCHW of CI channels (its halo holds the padding) and every tap of every
       channel is a channel of the reduction (c, r, s in that order: an im2col row per pixel) */
    int im2col;
    ptrdiff_t CI;
    int npc;                              /* pieces of a pixel's im2col row (0: gathered one by one) */
    uint16_t pmask[BAMX_PIECES];          /* ... each the lanes of one vector that a row segment fills */
    int pvec[BAMX_PIECES];                /* ... that vector (16 channels of the row) */
    ptrdiff_t poff[BAMX_PIECES];          /* ... and where its first lane is read, from the pixel's tap (0, 0) */
    /* the geometry of the taps */
    ptrdiff_t C2;      /* 32-channel groups (input blocks in pairs, the last one padded) */
    ptrdiff_t taps, wp, reach;            /* R x S; a phase's width; a phase's extra rows */
    int nph;                              /* phases the taps read */
    ptrdiff_t pha[BAMX_STRIDE * BAMX_STRIDE], phc[BAMX_STRIDE * BAMX_STRIDE];
    int tph[BAMX_TAPS];                   /* each tap's phase */
    ptrdiff_t tpx[BAMX_TAPS];             /* ... and its offset in that phase, in pixels */
    /* the plan: items are (group of nimg images, group of kt output blocks, band of rows); within one,
       the weights pass in chunks of up to 4 output blocks x ncc input groups */
    ptrdiff_t band, nband, kt, ngrp, nimg, nig, ncc, items;
    ptrdiff_t want_band, want_kt, want_nimg, want_ncc;   /* fixed by the caller (0: the model's choice) */
} bamx;

B_INLINE ptrdiff_t bamx_rows(const bamx *g, ptrdiff_t band) { return band + g->reach; }
/* pixels of one image in a phase of the scratch (several images follow one another) */
B_INLINE ptrdiff_t bamx_ppi(const bamx *g, ptrdiff_t band) { return bamx_rows(g, band) * g->wp; }
/* pixels of one (input group, phase) of the scratch: its images, and a tail the last tile may read */
B_INLINE ptrdiff_t bamx_region(const bamx *g, ptrdiff_t band, ptrdiff_t nimg)
{
    return nimg * bamx_ppi(g, band) + g->wp + 16;
}
B_INLINE ptrdiff_t bamx_tiles(const bamx *g, ptrdiff_t band, ptrdiff_t nimg)
{
    return b_cdiv((nimg - 1) * bamx_ppi(g, band) + (band - 1) * g->wp + g->Q, 16);
}
B_INLINE size_t bamx_input_bytes(const bamx *g, ptrdiff_t band, ptrdiff_t nimg)
{
    return (size_t)g->C2 * g->nph * bamx_region(g, band, nimg) * BAMX_PIX * sizeof(uint16_t);
}
/* the partial sums of every tile between input chunks (none when one chunk takes every group) */
B_INLINE size_t bamx_partial_bytes(const bamx *g, ptrdiff_t band, ptrdiff_t nimg, ptrdiff_t ncc)
{
    return ncc < g->C2 ? (size_t)bamx_tiles(g, band, nimg) * 4 * 256 * sizeof(float) : 0;
}

/* The taps' phases and offsets; 0 when the geometry is past what the tiles take (the caller then
   keeps bconv). */
static int bamx_geometry(bamx *g)
{
    if (g->im2col) {
        /* one 1x1 "tap" over C x R x S channels: a pixel's scratch row is its im2col row */
        if (g->S > BL || g->sh < 1 || g->sw < 1 || b_cdiv(g->CI * g->R * g->S, 32) * 32 > BAMX_STAGE) return 0;
        g->C2 = b_cdiv(g->CI * g->R * g->S, 32);
        g->taps = 1, g->wp = g->Q, g->reach = 0, g->nph = 1;
        g->pha[0] = g->phc[0] = 0, g->tph[0] = 0, g->tpx[0] = 0;
        /* the S taps of one (c, r) are consecutive input columns (dilation 1) and consecutive lanes
           of the row: each segment is one or two masked expanding loads, split at vector bounds */
        g->npc = 0;
        for (ptrdiff_t c = 0; c < g->CI && g->dw == 1; c++)
            for (ptrdiff_t r = 0; r < g->R; r++) {
                ptrdiff_t k = (c * g->R + r) * g->S, e = k + g->S, src = c * g->xc + r * g->dh * g->xr;
                while (k < e) {
                    const ptrdiff_t v = k / BL, end = (v + 1) * BL < e ? (v + 1) * BL : e;
                    if (g->npc == BAMX_PIECES) { g->npc = -1; break; }
                    g->pvec[g->npc] = (int)v;
                    g->pmask[g->npc] = (uint16_t)(((1u << (end - k)) - 1) << (k % BL));
                    g->poff[g->npc] = src;
                    g->npc++;
                    src += end - k, k = end;
                }
                if (g->npc < 0) break;
            }
        if (g->npc < 0 || g->dw != 1) g->npc = 0;
        return 1;
    }
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

/* Choose the work items that minimise the busiest thread's cycles under OpenMP's static schedule.
   An item costs its TDPs (16 cycles each, 3 per 16 x 16 x 32 block of products, plus a sixth of
   that for the input tiles' loads), or the streaming of its weights from L3 or memory (read once
   per item: a chunk stays in L2 while every tile of the item uses it), whichever is more, plus its
   input conversion (about 8 cycles a pixel per 32 channels) and a fixed cost. More images per item
   (whole planes only) read the weights once for all of them, and fill the tiles across the images
   (a 7x7 plane alone wastes a quarter of its 4 tiles); more groups of output blocks or bands give
   threads work. An item's converted input must fit BAMX_INPUT (unless it is one row of one image),
   and its weight chunks are sized so that two (the one in use and the next, which the hardware
   prefetcher streams in) fit BAMX_L2
   beside the input and the partial sums; each chunk boundary costs a store and a load of the
   accumulators. (Prefetching the next chunk by software, spread over the current one's use, was
   measured and removed: 0.91x on ResNet-50 at batch 1, whose 7x7 layers stream their weights from
   memory, and 1.02x at best elsewhere.) */
static void bamx_plan(bamx *g, int nthreads)
{
    double best = -1;
    const ptrdiff_t Kt = g->Kb, wbytes_kt = g->C2 * g->taps * 2048, group_bytes = 4 * g->taps * 2048;
    for (ptrdiff_t kt = 4; kt < Kt + 4; kt += 4) {
        const ptrdiff_t nkt = kt < Kt ? kt : Kt, ngrp = b_cdiv(Kt, nkt);
        if (g->want_kt && nkt != (g->want_kt < Kt ? g->want_kt : Kt)) continue;
        for (ptrdiff_t nimg = 1; nimg <= g->N; nimg++) {
            const ptrdiff_t nig = b_cdiv(g->N, nimg);
            if (b_cdiv(g->N, nig) != nimg || (g->want_nimg && nimg != g->want_nimg)) continue;
            for (ptrdiff_t nb = 1; nb <= (nimg > 1 ? 1 : g->P); nb++) {
                const ptrdiff_t band = b_cdiv(g->P, nb), nband = b_cdiv(g->P, band);
                if (nband != nb || (g->want_band && band != g->want_band)) continue;
                const size_t in = bamx_input_bytes(g, band, nimg);
                if (!g->want_band && (band > 1 || nimg > 1) && in > BAMX_INPUT) continue;
                /* the weight chunks: as many input groups as leave room for two beside the input and
                   the partial sums (equal chunks; at least one group) */
                const size_t room = BAMX_L2 - (in + bamx_partial_bytes(g, band, nimg, 1) < BAMX_L2 ?
                                               in + bamx_partial_bytes(g, band, nimg, 1) : BAMX_L2);
                ptrdiff_t ncc = (ptrdiff_t)(room / 2 / group_bytes);
                if (ncc > BAMX_CHUNK / group_bytes) ncc = BAMX_CHUNK / group_bytes;
                if (ncc < 1) ncc = 1;
                if (ncc >= g->C2) ncc = g->C2;
                if (g->want_ncc) ncc = g->want_ncc < g->C2 ? g->want_ncc : g->C2;
                ncc = b_cdiv(g->C2, b_cdiv(g->C2, ncc));
                const ptrdiff_t items = nig * ngrp * nband, tiles = bamx_tiles(g, band, nimg);
                double tdp = (double)tiles * nkt * g->C2 * g->taps * (3 * 16 + 3);
                if (ncc < g->C2) tdp += (double)tiles * nkt * b_cdiv(g->C2, ncc) * 2 * 32;  /* partial sums */
                const double mem = BAMX_CYC_BYTE * (double)nkt * wbytes_kt;
                const double conv = (g->im2col ? 3.0 * g->CI * g->R : 0) * band * g->Q * nimg +
                                    8.0 * g->C2 * g->nph * bamx_rows(g, band) * g->wp * nimg;
                const double cost = (double)b_cdiv(items, nthreads) * ((tdp > mem ? tdp : mem) + conv + 2000.0);
                if (best < 0 || cost < best) {
                    best = cost;
                    g->band = band, g->nband = nband, g->kt = nkt, g->ngrp = ngrp, g->nimg = nimg, g->nig = nig;
                    g->ncc = ncc, g->items = items;
                }
            }
        }
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

/* Convert the input of output rows [p0, p0 + band) of image xi into image slot `img` of the scratch:
   for every 32-channel group and phase, the phase's rows x wp pixels (zeros outside the input); each
   channel times si[c] when si is given (a squeeze-and-excitation scale folded into this conversion).
   The tail after the last slot is zeroed by the caller. -> nonzero when some input is infinite. */
static int bamx_convert(const bamx *g, const float *xi, const float *si, ptrdiff_t p0, ptrdiff_t band,
                        uint16_t *sc, ptrdiff_t region, ptrdiff_t img)
{
    const ptrdiff_t rows = bamx_rows(g, band);
    int inf = 0;
    for (ptrdiff_t c2 = 0; c2 < g->C2; c2++) {
        const float *xa = xi + 2 * c2 * g->xc;
        const float *xb = 2 * c2 + 1 < g->Cb ? xa + g->xc : NULL;
        const __m512 one = _mm512_set1_ps(1.0f);
        const __m512 sa = si ? _mm512_loadu_ps(si + 2 * c2 * BL) : one;
        const __m512 sb = si && xb ? _mm512_loadu_ps(si + (2 * c2 + 1) * BL) : one;
        for (int ph = 0; ph < g->nph; ph++) {
            uint16_t *dst = sc + ((c2 * g->nph + ph) * region + img * rows * g->wp) * BAMX_PIX;
            const ptrdiff_t a = g->pha[ph], c = g->phc[ph];
            /* the phase's columns j hold input column j sw + c - pl: [j0, j1) inside the input */
            ptrdiff_t j0 = b_cdiv(g->pl - c > 0 ? g->pl - c : 0, g->sw), j1 = b_cdiv(g->W + g->pl - c, g->sw);
            if (j1 > g->wp) j1 = g->wp;
            if (j1 < 0) j1 = 0;
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
        }
    }
    return inf;
}

/* The stem's conversion: for each output pixel of rows [p0, p0 + band) of image xi (zero-padded NCHW
   at its interior origin), the im2col row x[c, p sh + r dh - pt, q sw + s dw - pl] over (c, r, s),
   split into image slot `img` of the scratch: built in registers from its pieces (bamx_geometry)
   where it has at most BAMX_PIECES, else gathered into a float32 staging row (a masked load and
   store of S taps per (c, r); dilated columns one by one). -> nonzero when an input is infinite. */
static int bamx_convert_im2col(const bamx *g, const float *xi, ptrdiff_t p0, ptrdiff_t band, uint16_t *sc,
                               ptrdiff_t region, ptrdiff_t img)
{
    if (g->npc) {
        /* the row in registers, 32 lanes at a time from its pieces (in lane order) */
        int inf = 0;
        for (ptrdiff_t u = 0; u < band; u++)
            for (ptrdiff_t q = 0; q < g->Q; q++) {
                const float *px = xi + ((p0 + u) * g->sh - g->pt) * g->xr + q * g->sw - g->pl;
                uint16_t *out = sc + (img * band * g->wp + u * g->wp + q) * BAMX_PIX;
                int i = 0;
                for (ptrdiff_t c2 = 0; c2 < g->C2; c2++) {
                    __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
                    for (; i < g->npc && g->pvec[i] == 2 * c2; i++)
                        a = _mm512_mask_expandloadu_ps(a, g->pmask[i], px + g->poff[i]);
                    for (; i < g->npc && g->pvec[i] == 2 * c2 + 1; i++)
                        b = _mm512_mask_expandloadu_ps(b, g->pmask[i], px + g->poff[i]);
                    inf |= bamx_split(a, b, out + c2 * region * BAMX_PIX);
                }
            }
        return inf;
    }
    float stage[BAMX_STAGE] __attribute__((aligned(64)));
    const __mmask16 mask = (__mmask16)((1u << g->S) - 1);
    int inf = 0;
    memset(stage, 0, sizeof stage);
    for (ptrdiff_t u = 0; u < band; u++)
        for (ptrdiff_t q = 0; q < g->Q; q++) {
            const float *px = xi + ((p0 + u) * g->sh - g->pt) * g->xr + q * g->sw - g->pl;
            for (ptrdiff_t c = 0; c < g->CI; c++)
                for (ptrdiff_t r = 0; r < g->R; r++) {
                    const float *row = px + c * g->xc + r * g->dh * g->xr;
                    float *dst = stage + (c * g->R + r) * g->S;
                    if (g->dw == 1) {
                        _mm512_mask_storeu_ps(dst, mask, _mm512_maskz_loadu_ps(mask, row));
                    } else {
                        for (ptrdiff_t s = 0; s < g->S; s++) dst[s] = row[s * g->dw];
                    }
                }
            uint16_t *out = sc + (img * band * g->wp + u * g->wp + q) * BAMX_PIX;
            for (ptrdiff_t c2 = 0; c2 < g->C2; c2++)
                inf |= bamx_split(_mm512_load_ps(stage + 32 * c2), _mm512_load_ps(stage + 32 * c2 + 16),
                                  out + c2 * region * BAMX_PIX);
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

/* The products of 16 outputs (input from a0, groups gs apart) x NT blocks of 16 output channels
   (weights from w0, wks apart) over ncc 32-channel groups and every tap, added to the partial sums
   cin (NULL: from zero), stored to cout (NT x 16 x 16 floats). */
#define BAMX_RUN(NT)                                                                                   \
    static void bamx_run##NT(const bamx *g, const uint16_t *a0, ptrdiff_t gs, const ptrdiff_t *toff,   \
                             ptrdiff_t ncc, const uint16_t *w0, ptrdiff_t wks, const float *cin,       \
                             float *cout)                                                              \
    {                                                                                                  \
        if (cin) {                                                                                     \
            _tile_loadd(0, cin, 64);                                                                   \
            if (NT > 1) _tile_loadd(1, cin + 256, 64);                                                 \
            if (NT > 2) _tile_loadd(2, cin + 512, 64);                                                 \
            if (NT > 3) _tile_loadd(3, cin + 768, 64);                                                 \
        } else {                                                                                       \
            _tile_zero(0);                                                                             \
            if (NT > 1) _tile_zero(1);                                                                 \
            if (NT > 2) _tile_zero(2);                                                                 \
            if (NT > 3) _tile_zero(3);                                                                 \
        }                                                                                              \
        const uint16_t *wt = w0;                                                                       \
        for (ptrdiff_t c2 = 0; c2 < ncc; c2++) {                                                       \
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
        _tile_stored(0, cout, 64);                                                                     \
        if (NT > 1) _tile_stored(1, cout + 256, 64);                                                   \
        if (NT > 2) _tile_stored(2, cout + 512, 64);                                                   \
        if (NT > 3) _tile_stored(3, cout + 768, 64);                                                   \
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

/* Work item `item` (image group, output-block group, band; the band fastest, so a thread's
   consecutive items share their weights): convert the input of its images' rows, then for each
   chunk of weights (4 output blocks x ncc input groups) every tile, the partial sums kept in the scratch between input chunks, the epilogue after the last.
   x, y, res at their interior origins; w the AmxWeights tiles; s NULL or the (N, Cb*16) scales of
   the input channels. -> 0, 1 when an input is infinite (y is then incomplete: the caller reruns
   the layer), -1 when the scratch could not be allocated (nothing written). */
static int bamx_item(const bamx *g, const float *x, const float *s, const uint16_t *w, const float *bias,
                     const float *res, float *y, ptrdiff_t item)
{
    const ptrdiff_t band_i = item % g->nband, grp = (item / g->nband) % g->ngrp, ig = item / (g->nband * g->ngrp);
    const ptrdiff_t p0 = band_i * g->band, p1 = p0 + g->band < g->P ? p0 + g->band : g->P, band = p1 - p0;
    const ptrdiff_t n0 = ig * g->nimg, nimg = n0 + g->nimg < g->N ? g->nimg : g->N - n0;
    const ptrdiff_t k0 = grp * g->kt, k1 = k0 + g->kt < g->Kb ? k0 + g->kt : g->Kb;
    const ptrdiff_t region = bamx_region(g, band, g->nimg), ppi = bamx_ppi(g, band), rows = bamx_rows(g, band);
    const size_t inb = bamx_input_bytes(g, band, g->nimg);
    uint16_t *sc = (uint16_t *)b_scratch(inb + bamx_partial_bytes(g, band, g->nimg, g->ncc));
    if (!sc) return -1;
    float *part = (float *)((char *)sc + inb);
    for (ptrdiff_t i = 0; i < nimg; i++)
        if (g->im2col ? bamx_convert_im2col(g, x + (n0 + i) * g->xn, p0, band, sc, region, i)
                      : bamx_convert(g, x + (n0 + i) * g->xn, s ? s + (n0 + i) * g->Cb * BL : NULL, p0, band, sc,
                                     region, i))
            return 1;
    for (ptrdiff_t r = 0; r < g->C2 * g->nph; r++)           /* the tails: what the last tile reads past */
        memset(sc + (r * region + nimg * ppi) * BAMX_PIX, 0, (size_t)(region - nimg * ppi) * BAMX_PIX * 2);
    const ptrdiff_t gs = g->nph * region * BAMX_PIX, wks = g->C2 * g->taps * 1024;
    ptrdiff_t toff[BAMX_TAPS];
    for (ptrdiff_t t = 0; t < g->taps; t++) toff[t] = (g->tph[t] * region + g->tpx[t]) * BAMX_PIX;
    float tb[4 * 256] __attribute__((aligned(64)));
    float *yi = y + n0 * g->yn + p0 * g->yr;
    const float *ri = res ? res + n0 * g->rn + p0 * g->rr : NULL;
    const ptrdiff_t tiles = b_cdiv((nimg - 1) * ppi + (band - 1) * g->wp + g->Q, 16);
    bamx_config();
    for (ptrdiff_t kc = k0; kc < k1; kc += 4) {
        const int nt = (int)(k1 - kc < 4 ? k1 - kc : 4);
        for (ptrdiff_t cc = 0; cc < g->C2; cc += g->ncc) {
            const ptrdiff_t ncc = cc + g->ncc < g->C2 ? g->ncc : g->C2 - cc;
            const int first = cc == 0, last = cc + ncc == g->C2;
            const uint16_t *wk = w + kc * wks + cc * g->taps * 1024;
            ptrdiff_t fi = 0, fu = 0, fq = 0;      /* image, row and column of the tile's first output */
            for (ptrdiff_t t = 0; t < tiles; t++) {
                const uint16_t *a0 = sc + cc * gs + t * 16 * BAMX_PIX;
                const float *cin = first ? NULL : part + t * 1024;
                float *cout = last ? tb : part + t * 1024;
                switch (nt) {
                case 1: bamx_run1(g, a0, gs, toff, ncc, wk, wks, cin, cout); break;
                case 2: bamx_run2(g, a0, gs, toff, ncc, wk, wks, cin, cout); break;
                case 3: bamx_run3(g, a0, gs, toff, ncc, wk, wks, cin, cout); break;
                default: bamx_run4(g, a0, gs, toff, ncc, wk, wks, cin, cout); break;
                }
                if (!last) continue;
                ptrdiff_t yo[16], ro[16];
                for (int m = 0; m < 16; m++) {
                    const int ok = fi < nimg && fu < band && fq < g->Q;
                    yo[m] = ok ? fi * g->yn + fu * g->yr + fq * BL : -1;
                    ro[m] = ok ? fi * g->rn + fu * g->rr + fq * BL : 0;
                    if (++fq == g->wp && (fq = 0, ++fu == rows)) fu = 0, fi++;
                }
                bamx_store(tb, nt, yo, ro, yi + kc * g->yc, g->yc, ri ? ri + kc * g->rc : NULL, g->rc,
                           bias + kc * BL, g->act);
            }
        }
    }
    _tile_release();
    for (ptrdiff_t i = n0; i < n0 + nimg; i++)
        for (ptrdiff_t k = k0; k < k1; k++)
            b_frame_rows(y + i * g->yn + k * g->yc, g->yr, g->Q, g->yh, p0, p1, g->P);
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
