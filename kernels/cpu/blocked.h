/* blocked.h: the inference plan's kernels on the channel-blocked layout (NCHW16c, float32).

   Layout (kernels/blocked.py has the whole contract): an activation is (N, Cb, H + 2h, W + 2h, 16),
   16 channels innermost, a zero frame of h rows/columns around each plane. A convolution whose
   padding is at most the input's halo reads its padding as zeros: no edge branches anywhere.

   Written once over GCC vector extensions (bv = 16 floats): one zmm with AVX-512, two ymm with
   AVX2, four xmm in the generic build, compiled per ISA like every kernel here.

   Convolution (bconv_*): y[n, k, p, q] = act(bias[k] + sum_{c, r, s} w[k, c, r, s] *
   x[n, c, p*sh + r*dh - pt, q*sw + s*dw - pl] [+ res[n, k, p, q]]). Register tile: KB output blocks
   (16 channels each) x NP output pixels of one row, KB * NP <= 28 zmm accumulators; per input channel
   of a tap, KB weight vectors are loaded and each pixel's input value is broadcast (the stride is
   only the broadcast step). The input-channel reduction runs in chunks of `cbc` blocks whose weights
   (KB x cbc x R x S x 16 x 16) stay in L2 while the chunk sweeps every row of the work item; between
   chunks the partial sums go through y (one load and store per 16 x cbc x R x S FMAs). The same code
   reads a zero-padded NCHW input (the stem: few channels, as the network's input arrives): the
   "channel" step is then a plane and the pixel step 1. A flat tile (bconv_ftile) takes its pixels in
   the flattened order of the work item's rows instead, each with an input pointer of its own, so a
   plane whose width is no multiple of the tile (10x10, 15x15) keeps every tile full; 4 x 6 needs no
   spilled accumulator. A work item is (image, KB-block group, band
   of rows); every output element is reduced in one fixed order (chunks, then c, r, s), whatever the
   thread count.

   Depthwise (bdw_*): per block of 16 channels, acc[j] += w[r][s] * x[pixel j, tap r, s], the input
   vectors of a row loaded once and shared by the taps that reuse them (stride 1 or 2); 3x3 and 5x5
   layers compute two output rows at once, so each input row serves both and 2 x NP independent
   accumulators hide the FMA latency (measured 1.3-1.4x on MobileNetV2's 3x3 layers).
   Epilogue (all): + bias, + residual, then act 0 none, 1 ReLU, 2 ReLU6, 3 SiLU, 4 sigmoid; ReLU and
   ReLU6 keep NaN (v < 0 is false for NaN); exp is a vectorisable polynomial (max rel. error ~2e-7,
   b_vexpneg).
*/
#ifndef CONVFORGE_BLOCKED_H
#define CONVFORGE_BLOCKED_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define BL 16                      /* lanes of a block */
#define BKB_MAX 4                  /* most output blocks in a register tile */
#define BNP_MAX 14                 /* most pixels in a register tile */
#define BCHUNK_BYTES (256 * 1024)  /* weights of one reduction chunk (kept in L2) */
#define B_L2_SHARE (384 * 1024)    /* what a work item may count on keeping in a core's L2 */

typedef float bv __attribute__((vector_size(64)));
typedef float bvu __attribute__((vector_size(64), aligned(4)));
#define BLD(p) (*(const bvu *)(p))
#define BST(p, v) (*(bvu *)(p) = (v))
#define B_INLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------- epilogue */

typedef int32_t bvi __attribute__((vector_size(64)));

/* m ? a : b per lane (m from a vector comparison: all ones or zero) */
B_INLINE bv b_sel(bvi m, bv a, bv b) { return (bv)(((bvi)a & m) | ((bvi)b & ~m)); }

/* exp(-v), v clamped to |v| <= 87 (exp(87) and exp(-87) are normal floats; NaN stays NaN):
   n = round(-v / ln2), s = v + n ln2 (ln2 in two parts, so s is exact enough) = -r with |r| <= ln2/2,
   exp(r) by a degree-5 polynomial fitted for least relative error on that interval (max rel. error
   1.9e-7 in float32) evaluated in s (odd coefficients negated), then 2^n. Taking -v inside the
   reduction and the polynomial's degree keep SiLU at 16 vector operations against the 21 of the
   Cephes degree-7 exp it replaces (measured on EfficientNet-B0: 1.05x at batch 1 and 8). */
B_INLINE bv b_vexpneg(bv v)
{
    const bv magic = (bv){0} + 12582912.0f;                 /* 1.5 * 2^23: adds then subtracts = round */
#if defined(__AVX512F__)
    /* max/min return their second operand when either is NaN, so NaN stays NaN (vrangeps, one
       instruction, would turn it into 87: sigmoid(NaN) = 1) */
    const bv x = (bv)_mm512_min_ps(_mm512_set1_ps(87.0f), _mm512_max_ps(_mm512_set1_ps(-87.0f), (__m512)v));
#else
    const bv lim = (bv){0} + 87.0f;                         /* comparisons with NaN are false */
    bv x = b_sel(v > lim, lim, v);
    x = b_sel(x < -lim, -lim, x);
#endif
    const bv n = (x * -1.44269504088896341f + magic) - magic;
    bv s = n * 0.693359375f + x;
    s = n * -2.12194440e-4f + s;
    bv p = (bv){0} - 8.2976380363e-03f;
    p = p * s + 4.1915364563e-02f;
    p = p * s - 1.6667574644e-01f;
    p = p * s + 4.9998894334e-01f;
    p = p * s - 9.9999970198e-01f;
    p = p * s + 1.0000001192e+00f;
#if defined(__AVX512F__)
    return (bv)_mm512_scalef_ps((__m512)p, (__m512)n);
#else
    return p * (bv)((__builtin_convertvector(n, bvi) + 127) << 23);
#endif
}

/* The activation of the epilogue; ReLU/ReLU6 keep NaN (v < 0 is false for NaN). */
B_INLINE bv b_vact(bv v, const int act)
{
    const bv zero = {0}, six = zero + 6.0f;
    switch (act) {
    case 1: return b_sel(v < zero, zero, v);
    case 2: v = b_sel(v < zero, zero, v); return b_sel(v > six, six, v);
    case 3: return v / (1.0f + b_vexpneg(v));
    case 4: return 1.0f / (1.0f + b_vexpneg(v));
    default: return v;
    }
}

/* The epilogue of a finished tile of kb blocks (block stride yc) x np pixels, still in L1:
   y = act(y + bias [+ res]) (bias or res NULL: none; res is the residual's tile, block stride rc). */
B_INLINE void b_epi_act(float *y, ptrdiff_t yc, int kb, int np, const float *bias, const float *res,
                        ptrdiff_t rc, const int ACT)
{
    for (int k = 0; k < kb; k++) {
        const bv b = bias ? BLD(bias + k * BL) : (bv){0};
        float *yk = y + k * yc;
        const float *rk = res ? res + k * rc : NULL;
        for (int j = 0; j < np; j++) {
            bv v = BLD(yk + j * BL) + b;
            if (rk) v += BLD(rk + j * BL);
            BST(yk + j * BL, b_vact(v, ACT));
        }
    }
}

static void b_epi(float *y, ptrdiff_t yc, int kb, int np, const float *bias, const float *res, ptrdiff_t rc,
                  int act)
{
    switch (act) {
    case 1: b_epi_act(y, yc, kb, np, bias, res, rc, 1); break;
    case 2: b_epi_act(y, yc, kb, np, bias, res, rc, 2); break;
    case 3: b_epi_act(y, yc, kb, np, bias, res, rc, 3); break;
    case 4: b_epi_act(y, yc, kb, np, bias, res, rc, 4); break;
    default: b_epi_act(y, yc, kb, np, bias, res, rc, 0); break;
    }
}

/* Scalar exp / activation for the plain (non-blocked) ops. */
static inline float b_act(float v, int act)
{
    bv t = (bv){0} + v;
    return b_vact(t, act)[0];
}

/* Zero the frame (halo h) of output rows [p0, p1) of one plane whose interior origin is y (row stride
   yr, Q pixels a row): their left and right h pixels, and the h rows above the first / below the last
   row of the plane when the range holds it. Each work item zeroes the frame of what it writes, so a
   layer's frame costs no pass of its own. */
static inline void b_frame_rows(float *y, ptrdiff_t yr, ptrdiff_t Q, ptrdiff_t h, ptrdiff_t p0, ptrdiff_t p1,
                                ptrdiff_t P)
{
    if (h == 0) return;
    const size_t side = (size_t)h * BL * sizeof(float), full = (size_t)(Q + 2 * h) * BL * sizeof(float);
    for (ptrdiff_t p = p0; p < p1; p++) {
        memset(y + p * yr - h * BL, 0, side);
        memset(y + p * yr + Q * BL, 0, side);
    }
    if (p0 == 0)
        for (ptrdiff_t r = 1; r <= h; r++) memset(y - r * yr - h * BL, 0, full);
    if (p1 == P)
        for (ptrdiff_t r = 0; r < h; r++) memset(y + (P + r) * yr - h * BL, 0, full);
}

/* ---------------------------------------------------------------- convolution */

/* What a tile's cost counts beyond its FMAs, in quarter FMA slots: it differs between cores, so the
   caller sets it from the CPU (kernels/cpu/blocked.pyx TILE_COSTS, measured with benchmarks/tiles.py). */
typedef struct {
    int bcast_q;       /* one broadcast load of an input value per pixel */
    int spill_q;       /* the spilled accumulator of 4 x 7 */
} btcost;

typedef struct {
    /* element strides (floats): x (n, c-block or NCHW channel, row), y and res (n, block, row) */
    ptrdiff_t xn, xc, xr, yn, yc, yr, rn, rc, rr;
    ptrdiff_t N, Cb, CI, Kb, P, Q, R, S, sh, sw, dh, dw;
    ptrdiff_t ps;      /* pixel step of x: 16 (blocked) or 1 (NCHW) */
    ptrdiff_t cs;      /* input-channel step inside a block: 1 (blocked) or xc (NCHW) */
    ptrdiff_t x0;      /* offset of output (0, 0)'s tap (0, 0) from x's origin */
    ptrdiff_t yh;      /* y's halo: the items zero the frame around the rows they own */
    int act;
    /* the plan */
    int kb;            /* output blocks per tile */
    int np;            /* pixels per tile (the row's last tile may be shorter) */
    ptrdiff_t ngrp;    /* KB-block groups */
    ptrdiff_t cbc;     /* input blocks per reduction chunk */
    ptrdiff_t band;    /* output rows per work item */
    ptrdiff_t nband;
    ptrdiff_t items;
    int ginner;        /* item = (n, band, group) with the group fastest, else (n, group, band) */
    int flat;          /* tiles over the band's pixels in flattened order (rows joined), else row by row */
    int want_kb, want_np;   /* a tile the caller fixes (0: the cost model's choice); valid ones only */
    int want_flat;          /* with want_kb: 1 flat tiles, 0 row tiles */
    ptrdiff_t want_cbc;     /* input blocks per chunk the caller fixes (0: BCHUNK_BYTES of weights) */
    btcost cost;
    ptrdiff_t wn;      /* weights per image (an input scale folded in: bconv_scale_weights), 0: shared */
} bconv;

static inline ptrdiff_t b_cdiv(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }

/* Most pixels of a KB-block tile: the KB x NP accumulators, KB weight vectors and one broadcast fit
   the 32 vector registers (4 x 7 spills one accumulator, measured to cost less than the 4 x 6 + 4 x 1
   split of a row of 7 or 14). */
static inline int b_npmax(int kb) { return kb == 4 ? 7 : (kb == 3 ? 9 : BNP_MAX); }
/* Most pixels of a flat tile (each pixel's input has a pointer of its own, so fewer pixels; none
   spills: 4 x 6 is 24 accumulators, 4 weights and a broadcast). */
#define BFNP_MAX 8
static inline int b_fnpmax(int kb) { return kb == 4 ? 6 : BFNP_MAX; }

/* Cost of a tile per input channel, in quarter FMA slots: its FMAs; the weight loads and the loop
   (2 slots); one broadcast per pixel (a tile with fewer output blocks re-reads each input value once
   more per extra group of blocks); the spill of 4 x 7. */
static inline ptrdiff_t b_tile_cost(const btcost *c, int kb, int np)
{
    return 4 * (ptrdiff_t)kb * np + 8 + (ptrdiff_t)c->bcast_q * np + c->spill_q * (kb * np + kb + 1 > 32);
}

/* The busiest thread's rows under OpenMP's static schedule (thread t runs a contiguous run of
   items / T or items / T + 1 items) when an item is a band of rows, `nband` bands make a plane and
   the band index of item k is (k / inner) % nband. */
static ptrdiff_t b_busiest_rows(ptrdiff_t items, ptrdiff_t nband, ptrdiff_t band, ptrdiff_t P, ptrdiff_t inner,
                                int nthreads)
{
    const ptrdiff_t q = items / nthreads, r = items % nthreads;
    ptrdiff_t worst = 0, i = 0;
    for (int t = 0; t < nthreads && i < items; t++) {
        const ptrdiff_t n = q + (t < r);
        ptrdiff_t rows = 0;
        if (nband == 1) {
            rows = n * P;
        } else {
            for (ptrdiff_t k = i; k < i + n; k++) {
                const ptrdiff_t b = (k / inner) % nband;
                rows += b == nband - 1 ? P - b * band : band;
            }
        }
        if (rows > worst) worst = rows;
        i += n;
    }
    return worst;
}

/* Choose the tile (kb blocks x np pixels), the chunks and the work items: the tile and the bands of
   rows that minimise the busiest thread's work (its rows x a row's tiles x their cost, and a small
   cost per item, whose weights come through L1 again). kb need not divide the output blocks: the
   last group takes the rest (7 blocks as 4 + 3, not 7 x 1: a 1-block tile loads a broadcast per
   FMA, and measured half the 4-block tile's rate on EfficientNet's 112-channel projections).
   `nthreads` only sizes the work items; the reduction order of an output element never depends on
   it (one tile, its chunks in order), nor on the tile (partial sums pass through y exactly), so a
   caller may fix the tile (want_kb, want_np: benchmarks/tiles.py measures each against the model's
   choice).
   Where three or more groups of output blocks would each read an input image bigger than its share
   of L2 while all the weights fit there (1x1 layers with few input channels on large planes), the
   groups are the innermost index of the items, over bands of rows whose input fits: a band's input
   then comes from memory once for all the groups instead of once per group (measured at batch 8:
   1.2x on ResNet-50's 64->256 at 56x56, 1.14x on MobileNetV2's 16->96 at 112x112; with 16 or more
   input blocks, or two groups, it measured slower, and is not used). */
static void bconv_plan(bconv *g, int nthreads)
{
    ptrdiff_t best = -1;
    const ptrdiff_t rowin = g->Cb * g->sh * (g->Q * g->sw + g->S - 1) * g->CI * (ptrdiff_t)sizeof(float);
    const ptrdiff_t wbytes = g->Kb * g->Cb * g->R * g->S * g->CI * BL * (ptrdiff_t)sizeof(float);
    for (int kb = BKB_MAX; kb >= 1; kb--) {
        if (g->want_kb ? kb != g->want_kb : kb > g->Kb) continue;
        const ptrdiff_t ngrp = b_cdiv(g->Kb, kb);
        const int kbl = (int)(g->Kb - (ngrp - 1) * kb);        /* the last group's blocks: the rest */
        const int ginner = ngrp >= 3 && g->Cb <= 8 && g->ps == BL && rowin * g->P > B_L2_SHARE &&
                           wbytes <= B_L2_SHARE;
        ptrdiff_t nbmin = ginner ? b_cdiv(rowin * g->P, B_L2_SHARE / 3) : 1;
        if (nbmin > g->P) nbmin = g->P;
        /* more bands only while the planes x groups alone leave threads short of about 8 items each */
        ptrdiff_t nbmax = g->N * ngrp >= 8 * (ptrdiff_t)nthreads ? 1 : b_cdiv(8 * (ptrdiff_t)nthreads, g->N * ngrp);
        if (nbmax > g->P) nbmax = g->P;
        if (nbmax < nbmin) nbmax = nbmin;
        for (int flat = 0; flat <= (g->ps == BL); flat++) {
            if (g->want_kb && flat != g->want_flat) continue;
            /* row tiles: np from a row's fewest tiles up; flat ones: the widest tile or one narrower */
            const ptrdiff_t span = flat ? (ptrdiff_t)b_fnpmax(kb) : g->Q;
            const ptrdiff_t wnp = g->want_np < span ? g->want_np : span;         /* 0: the model's */
            const ptrdiff_t n0 = flat ? (wnp ? wnp : span) : b_cdiv(g->Q, wnp ? wnp : b_npmax(kb));
            for (ptrdiff_t v = 0; v <= (wnp ? 0 : (flat ? 1 : 2)); v++) {
                const int np = (int)(flat ? n0 - v : (wnp ? wnp : b_cdiv(g->Q, n0 + v)));
                if (np < 1 || (!flat && n0 + v > g->Q)) break;
                for (ptrdiff_t nb = nbmin; nb <= nbmax; nb++) {
                    const ptrdiff_t band = b_cdiv(g->P, nb), nband = b_cdiv(g->P, band);
                    const ptrdiff_t items = g->N * ngrp * nband;
                    const ptrdiff_t rows = b_busiest_rows(items, nband, band, g->P, ginner ? ngrp : 1, nthreads);
                    const ptrdiff_t px = rows * g->Q;
                    /* a flat tile's pixels are computed one by one: half a slot per tile */
                    const ptrdiff_t full = b_tile_cost(&g->cost, kb, np), part = b_tile_cost(&g->cost, kbl, np);
                    ptrdiff_t work = flat ? px / np * (full + 2) +
                                            (px % np ? b_tile_cost(&g->cost, kb, (int)(px % np)) + 2 : 0)
                                          : rows * b_cdiv(g->Q, np) * full;
                    /* a last group of fewer blocks costs its share (the average over the groups) */
                    work = work * ((ngrp - 1) * full + part) / (ngrp * full);
                    const ptrdiff_t cost = work + b_cdiv(items, nthreads) * 32;
                    if (best < 0 || cost < best) {
                        best = cost;
                        g->kb = kb, g->np = np, g->ngrp = ngrp, g->band = band, g->nband = nband, g->items = items;
                        g->ginner = ginner, g->flat = flat;
                    }
                }
            }
        }
    }
    const ptrdiff_t per_block = (ptrdiff_t)g->kb * g->R * g->S * g->CI * BL * (ptrdiff_t)sizeof(float);
    g->cbc = g->want_cbc > 0 ? g->want_cbc : BCHUNK_BYTES / per_block;
    if (g->cbc < 1) g->cbc = 1;
    if (g->cbc > g->Cb) g->cbc = g->Cb;
    g->cbc = b_cdiv(g->Cb, b_cdiv(g->Cb, g->cbc));     /* equal chunks */
}

/* What a tile does at its ends: the first chunk starts from the bias, the last adds the residual
   and applies ReLU / ReLU6 in registers before the one store (SiLU and sigmoid, whose exp would
   multiply the tile's code, run as a pass over the stored tile while it is in L1). */
typedef struct {
    const float *bias;      /* the tile's first block's bias */
    const float *res;       /* the residual's tile, or NULL */
    ptrdiff_t rc;           /* the residual's block stride */
    int act, first, last;
} bepi;

/* One accumulator's store at a tile's end; ro is its residual's offset from e->res. */
B_INLINE void b_tile_store(bv v, float *y, ptrdiff_t ro, const bepi *e)
{
    if (e->last && e->res) v += BLD(e->res + ro);
    if (e->last && (e->act == 1 || e->act == 2)) v = b_vact(v, e->act);
    BST(y, v);
}

/* One tile: KB blocks x NP pixels at output row p, columns q0 .. q0+NP-1, input blocks
   [cb0, cb0 + ncb). xp points at x's image n; wp at the weights of the group's first block. */
/* MODE 1: blocked input at stride 1, 2: at stride 2 (the channel, pixel and broadcast steps are then
   compile-time constants); 3: a 3-channel NCHW input at stride 2; 0: any (other stems and strides). */
B_INLINE void bconv_tile(const bconv *g, const int KB, const int NP, const int MODE, const float *restrict xp,
                         const float *restrict wp, ptrdiff_t p, ptrdiff_t q0, ptrdiff_t cb0, ptrdiff_t ncb,
                         float *restrict yp, const bepi *e)
{
    const ptrdiff_t R = g->R, S = g->S;
    const ptrdiff_t CI = MODE == 3 ? 3 : (MODE ? BL : g->CI), cs = MODE == 3 ? g->cs : (MODE ? 1 : g->cs);
    const ptrdiff_t ps = MODE == 3 ? 1 : (MODE ? BL : g->ps);
    const ptrdiff_t js = MODE == 1 ? BL : (MODE == 2 ? 2 * BL : (MODE == 3 ? 2 : g->sw * g->ps));
    const ptrdiff_t wkb = g->Cb * R * S * CI * BL;          /* between output blocks */
    bv acc[BKB_MAX][BNP_MAX];
    for (int k = 0; k < KB; k++)
        for (int j = 0; j < NP; j++)
            acc[k][j] = e->first ? BLD(e->bias + k * BL) : BLD(yp + k * g->yc + j * BL);
    const float *xrow = xp + g->x0 + p * g->sh * g->xr + q0 * js;
    for (ptrdiff_t cb = cb0; cb < cb0 + ncb; cb++) {
        for (ptrdiff_t r = 0; r < R; r++) {
            for (ptrdiff_t s = 0; s < S; s++) {
                const float *xt = xrow + cb * g->xc + r * g->dh * g->xr + s * g->dw * ps;
                const float *wt = wp + ((cb * R + r) * S + s) * CI * BL;
                /* the next input block's lines of this tap, 16 channels x the tile's FMAs ahead: the
                   stream prefetchers miss the jump of a plane (measured 1.35-1.38x at batch 8 on
                   ResNet-50's 1024->256 @14 and 512->128 @28 1x1 layers, 0.98-1.06x elsewhere) */
                if (cb + 1 < cb0 + ncb)
                    for (int j = 0; j < NP; j++) __builtin_prefetch(xt + g->xc + j * js);
                for (ptrdiff_t ci = 0; ci < CI; ci++) {
                    bv wv[BKB_MAX];
                    for (int k = 0; k < KB; k++) wv[k] = BLD(wt + k * wkb + ci * BL);
                    const float *xc = xt + ci * cs;
                    for (int j = 0; j < NP; j++) {
                        const float xs = xc[j * js];
                        for (int k = 0; k < KB; k++) acc[k][j] += wv[k] * xs;
                    }
                }
            }
        }
    }
    for (int k = 0; k < KB; k++)
        for (int j = 0; j < NP; j++)
            b_tile_store(acc[k][j], yp + k * g->yc + j * BL, k * e->rc + j * BL, e);
}

#define BCONV_CALL(KBC, NPC) bconv_tile(g, KBC, NPC, MODE, xp, wp, p, q0, cb0, ncb, yp, e)
#define BCONV_NP_CASES_1_8(KBC)                                                      \
    case 1: BCONV_CALL(KBC, 1); break; case 2: BCONV_CALL(KBC, 2); break;            \
    case 3: BCONV_CALL(KBC, 3); break; case 4: BCONV_CALL(KBC, 4); break;            \
    case 5: BCONV_CALL(KBC, 5); break; case 6: BCONV_CALL(KBC, 6); break;            \
    case 7: BCONV_CALL(KBC, 7); break; case 8: BCONV_CALL(KBC, 8); break;
#define BCONV_NP_CASES_9_14(KBC)                                                     \
    case 9: BCONV_CALL(KBC, 9); break; case 10: BCONV_CALL(KBC, 10); break;          \
    case 11: BCONV_CALL(KBC, 11); break; case 12: BCONV_CALL(KBC, 12); break;        \
    case 13: BCONV_CALL(KBC, 13); break; default: BCONV_CALL(KBC, 14); break;

/* The tile instance for (kb, np): every case is a compile-time shape, so acc[][] lives in registers. */
B_INLINE void bconv_tile_mode(const bconv *g, const int MODE, int kb, int np, const float *xp, const float *wp,
                              ptrdiff_t p, ptrdiff_t q0, ptrdiff_t cb0, ptrdiff_t ncb, float *yp, const bepi *e)
{
    switch (kb) {
    case 1: switch (np) { BCONV_NP_CASES_1_8(1) BCONV_NP_CASES_9_14(1) } break;
    case 2: switch (np) { BCONV_NP_CASES_1_8(2) BCONV_NP_CASES_9_14(2) } break;
    case 3: switch (np) { BCONV_NP_CASES_1_8(3) default: BCONV_CALL(3, 9); break; } break;
    default: switch (np) { case 1: BCONV_CALL(4, 1); break; case 2: BCONV_CALL(4, 2); break;
                           case 3: BCONV_CALL(4, 3); break; case 4: BCONV_CALL(4, 4); break;
                           case 5: BCONV_CALL(4, 5); break; case 6: BCONV_CALL(4, 6); break;
                           default: BCONV_CALL(4, 7); break; }
    }
}
#undef BCONV_NP_CASES_1_8
#undef BCONV_NP_CASES_9_14
#undef BCONV_CALL

static void bconv_tile_s1(const bconv *g, int kb, int np, const float *xp, const float *wp, ptrdiff_t p,
                          ptrdiff_t q0, ptrdiff_t cb0, ptrdiff_t ncb, float *yp, const bepi *e)
{ bconv_tile_mode(g, 1, kb, np, xp, wp, p, q0, cb0, ncb, yp, e); }
static void bconv_tile_s2(const bconv *g, int kb, int np, const float *xp, const float *wp, ptrdiff_t p,
                          ptrdiff_t q0, ptrdiff_t cb0, ptrdiff_t ncb, float *yp, const bepi *e)
{ bconv_tile_mode(g, 2, kb, np, xp, wp, p, q0, cb0, ncb, yp, e); }
static void bconv_tile_gen(const bconv *g, int kb, int np, const float *xp, const float *wp, ptrdiff_t p,
                           ptrdiff_t q0, ptrdiff_t cb0, ptrdiff_t ncb, float *yp, const bepi *e)
{ bconv_tile_mode(g, 0, kb, np, xp, wp, p, q0, cb0, ncb, yp, e); }

/* A flat tile: KB blocks x NP pixels taken in the flattened order of a band's rows, so that a row's
   last pixels and the next row's first share a tile: planes such as 7x7 and 14x14 keep every tile
   full with a tile that needs no spill (4 x 6). Each pixel has its own input offset xo[j] (its tap
   (0, 0) from the image's x), output offset yo[j] (from the group's first block) and residual offset
   ro[j]; the reduction is the row tile's (chunks, then c, r, s, in order), so the bits are the same.
   Blocked input only; the stride is in the offsets. */
B_INLINE void bconv_ftile(const bconv *g, const int KB, const int NP, const float *restrict xp,
                          const float *restrict wp, const ptrdiff_t *xo, ptrdiff_t cb0, ptrdiff_t ncb,
                          float *restrict yp, const ptrdiff_t *yo, const ptrdiff_t *ro, const bepi *e)
{
    const ptrdiff_t R = g->R, S = g->S;
    const ptrdiff_t wkb = g->Cb * R * S * BL * BL;          /* between output blocks */
    const ptrdiff_t sstep = g->dw * BL, rstep = g->dh * g->xr, cstep = g->xc;
    bv acc[BKB_MAX][BFNP_MAX];
    for (int k = 0; k < KB; k++)
        for (int j = 0; j < NP; j++)
            acc[k][j] = e->first ? BLD(e->bias + k * BL) : BLD(yp + yo[j] + k * g->yc);
    const float *xj[BFNP_MAX];
    for (int j = 0; j < NP; j++) xj[j] = xp + xo[j] + cb0 * cstep;
    for (ptrdiff_t cb = cb0; cb < cb0 + ncb; cb++) {
        for (ptrdiff_t r = 0; r < R; r++) {
            for (ptrdiff_t s = 0; s < S; s++) {
                const ptrdiff_t t = r * rstep + s * sstep;
                const float *wt = wp + ((cb * R + r) * S + s) * BL * BL;
                if (cb + 1 < cb0 + ncb)
                    for (int j = 0; j < NP; j++) __builtin_prefetch(xj[j] + t + cstep);
                for (ptrdiff_t ci = 0; ci < BL; ci++) {
                    bv wv[BKB_MAX];
                    for (int k = 0; k < KB; k++) wv[k] = BLD(wt + k * wkb + ci * BL);
                    for (int j = 0; j < NP; j++) {
                        const float xs = xj[j][t + ci];
                        for (int k = 0; k < KB; k++) acc[k][j] += wv[k] * xs;
                    }
                }
            }
        }
        for (int j = 0; j < NP; j++) xj[j] += cstep;
    }
    for (int k = 0; k < KB; k++)
        for (int j = 0; j < NP; j++)
            b_tile_store(acc[k][j], yp + yo[j] + k * g->yc, ro[j] + k * e->rc, e);
}

#define BFTILE_CALL(KBC, NPC) bconv_ftile(g, KBC, NPC, xp, wp, xo, cb0, ncb, yp, yo, ro, e)
#define BFTILE_NP_CASES_1_5(KBC)                                                     \
    case 1: BFTILE_CALL(KBC, 1); break; case 2: BFTILE_CALL(KBC, 2); break;          \
    case 3: BFTILE_CALL(KBC, 3); break; case 4: BFTILE_CALL(KBC, 4); break;          \
    case 5: BFTILE_CALL(KBC, 5); break;
#define BFTILE_NP_CASES_6_8(KBC)                                                     \
    case 6: BFTILE_CALL(KBC, 6); break; case 7: BFTILE_CALL(KBC, 7); break;          \
    default: BFTILE_CALL(KBC, 8); break;

/* The flat tile instance for (kb, np), each a compile-time shape. */
static void bconv_ftile_any(const bconv *g, int kb, int np, const float *xp, const float *wp, const ptrdiff_t *xo,
                            ptrdiff_t cb0, ptrdiff_t ncb, float *yp, const ptrdiff_t *yo, const ptrdiff_t *ro,
                            const bepi *e)
{
    switch (kb) {
    case 1: switch (np) { BFTILE_NP_CASES_1_5(1) BFTILE_NP_CASES_6_8(1) } break;
    case 2: switch (np) { BFTILE_NP_CASES_1_5(2) BFTILE_NP_CASES_6_8(2) } break;
    case 3: switch (np) { BFTILE_NP_CASES_1_5(3) BFTILE_NP_CASES_6_8(3) } break;
    default: switch (np) { BFTILE_NP_CASES_1_5(4) default: BFTILE_CALL(4, 6); break; }
    }
}
#undef BFTILE_NP_CASES_1_5
#undef BFTILE_NP_CASES_6_8
#undef BFTILE_CALL

/* Flat tiles over rows [p0, p1) of image n, group kb0: each chunk sweeps the band's pixels NP at a time. */
static void bconv_item_flat(const bconv *g, int kb, const float *xp, const float *wp, const float *bias,
                            const float *res, float *y, ptrdiff_t n, ptrdiff_t kb0, ptrdiff_t p0, ptrdiff_t p1)
{
    float *yg = y + n * g->yn + kb0 * g->yc;
    const float *rg = res ? res + n * g->rn + kb0 * g->rc : NULL;
    const ptrdiff_t f1 = p1 * g->Q;
    ptrdiff_t xo[BFNP_MAX], yo[BFNP_MAX], ro[BFNP_MAX];
    for (ptrdiff_t cb0 = 0; cb0 < g->Cb; cb0 += g->cbc) {
        const ptrdiff_t ncb = cb0 + g->cbc < g->Cb ? g->cbc : g->Cb - cb0;
        const int last = cb0 + ncb == g->Cb;
        for (ptrdiff_t f0 = p0 * g->Q; f0 < f1; f0 += g->np) {
            const int np = (int)(f1 - f0 < g->np ? f1 - f0 : g->np);
            ptrdiff_t p = f0 / g->Q, q = f0 % g->Q;
            for (int j = 0; j < np; j++) {
                xo[j] = g->x0 + p * g->sh * g->xr + q * g->sw * BL;
                yo[j] = p * g->yr + q * BL;
                ro[j] = p * g->rr + q * BL;
                if (++q == g->Q) q = 0, p++;
            }
            const bepi e = {bias + kb0 * BL, rg, g->rc, g->act, cb0 == 0, last};
            bconv_ftile_any(g, kb, np, xp, wp, xo, cb0, ncb, yg, yo, ro, &e);
            if (last && g->act >= 3)   /* SiLU / sigmoid of the final tile while it is in L1 */
                for (int j = 0; j < np; j++) b_epi(yg + yo[j], g->yc, kb, 1, NULL, NULL, 0, g->act);
        }
    }
}

/* The stem: an NCHW input of 3 channels at stride 2 (every zoo network's first layer), its channel
   loop unrolled, for the tiles the plan picks on the zoo's 224 and 112 pixel rows; others as MODE 0. */
static void bconv_tile_stem(const bconv *g, int kb, int np, const float *xp, const float *wp, ptrdiff_t p,
                            ptrdiff_t q0, ptrdiff_t cb0, ptrdiff_t ncb, float *yp, const bepi *e)
{
    if (kb == 4 && np == 7) bconv_tile(g, 4, 7, 3, xp, wp, p, q0, cb0, ncb, yp, e);
    else if (kb == 2 && np == 14) bconv_tile(g, 2, 14, 3, xp, wp, p, q0, cb0, ncb, yp, e);
    else if (kb == 3 && np == 8) bconv_tile(g, 3, 8, 3, xp, wp, p, q0, cb0, ncb, yp, e);
    else bconv_tile_mode(g, 0, kb, np, xp, wp, p, q0, cb0, ncb, yp, e);
}

/* Work item `item`: image n, KB-block group, band of rows; all chunks, all rows, all tiles, then the
   epilogue of each finished row. */
static void bconv_item(const bconv *g, const float *x, const float *w, const float *bias, const float *res,
                       float *y, ptrdiff_t item)
{
    const ptrdiff_t band = g->ginner ? (item / g->ngrp) % g->nband : item % g->nband;
    const ptrdiff_t grp = g->ginner ? item % g->ngrp : (item / g->nband) % g->ngrp;
    const ptrdiff_t n = item / (g->nband * g->ngrp);
    const ptrdiff_t p0 = band * g->band, p1 = p0 + g->band < g->P ? p0 + g->band : g->P;
    const ptrdiff_t kb0 = grp * g->kb;
    const int kb = (int)(g->Kb - kb0 < g->kb ? g->Kb - kb0 : g->kb);    /* the last group: the rest */
    const float *xp = x + n * g->xn;
    const float *wp = w + n * g->wn + kb0 * g->Cb * g->R * g->S * g->CI * BL;
    if (g->flat) {
        bconv_item_flat(g, kb, xp, wp, bias, res, y, n, kb0, p0, p1);
        for (int k = 0; k < kb; k++)
            b_frame_rows(y + n * g->yn + (kb0 + k) * g->yc, g->yr, g->Q, g->yh, p0, p1, g->P);
        return;
    }
    void (*tile)(const bconv *, int, int, const float *, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                 ptrdiff_t, float *, const bepi *) = bconv_tile_gen;
    if (g->ps == BL && g->CI == BL && g->cs == 1 && g->sw == 1) tile = bconv_tile_s1;
    if (g->ps == BL && g->CI == BL && g->cs == 1 && g->sw == 2) tile = bconv_tile_s2;
    if (g->ps == 1 && g->CI == 3 && g->sw == 2) tile = bconv_tile_stem;
    for (ptrdiff_t cb0 = 0; cb0 < g->Cb; cb0 += g->cbc) {
        const ptrdiff_t ncb = cb0 + g->cbc < g->Cb ? g->cbc : g->Cb - cb0;
        const int last = cb0 + ncb == g->Cb;
        for (ptrdiff_t p = p0; p < p1; p++) {
            float *yrow = y + n * g->yn + kb0 * g->yc + p * g->yr;
            const float *rrow = res ? res + n * g->rn + kb0 * g->rc + p * g->rr : NULL;
            for (ptrdiff_t q0 = 0; q0 < g->Q; q0 += g->np) {
                const int np = (int)(g->Q - q0 < g->np ? g->Q - q0 : g->np);
                const bepi e = {bias + kb0 * BL, rrow ? rrow + q0 * BL : NULL, g->rc, g->act, cb0 == 0, last};
                tile(g, kb, np, xp, wp, p, q0, cb0, ncb, yrow + q0 * BL, &e);
                if (last && g->act >= 3)   /* SiLU / sigmoid of the final tile while it is in L1 */
                    b_epi(yrow + q0 * BL, g->yc, kb, np, NULL, NULL, 0, g->act);
            }
        }
    }
    for (int k = 0; k < kb; k++)
        b_frame_rows(y + n * g->yn + (kb0 + k) * g->yc, g->yr, g->Q, g->yh, p0, p1, g->P);
}

/* Output block kb's weights for one image whose input channels are scaled by s (a squeeze-and-
   excitation scale folded into the convolution that reads it): out[cb, r, s, ci, :] =
   w[kb, cb, r, s, ci, :] * s[cb * 16 + ci], so that conv(x, out) = conv(x * s) with no pass over x.
   Where the weights of an image are smaller than its input (the projections after the early SE
   blocks) this writes less than the scaled copy of x it replaces. */
static void bconv_scale_weights(const bconv *g, const float *restrict w, const float *restrict s,
                                float *restrict out, ptrdiff_t kb)
{
    const ptrdiff_t taps = g->R * g->S, per_kb = g->Cb * taps * g->CI * BL;
    w += kb * per_kb;
    out += kb * per_kb;
    for (ptrdiff_t cb = 0; cb < g->Cb; cb++)
        for (ptrdiff_t t = 0; t < taps; t++)
            for (ptrdiff_t ci = 0; ci < g->CI; ci++) {
                const ptrdiff_t o = ((cb * taps + t) * g->CI + ci) * BL;
                BST(out + o, BLD(w + o) * s[cb * g->CI + ci]);
            }
}

/* ---------------------------------------------------------------- depthwise */

typedef struct {
    ptrdiff_t xn, xc, xr, yn, yc, yr, rn, rc, rr;
    ptrdiff_t N, Cb, P, Q, R, S, sh, sw, dh, dw;
    ptrdiff_t x0, yh;
    int act;
    ptrdiff_t band, nband;   /* output rows per work item, items per plane */
    double *rs;              /* NULL, or each output row's sums per lane: rs[((n * Cb + cb) * P + p) * BL] */
} bdw;

/* The row sums of a finished tile of np pixels (in L1) at q0 of its row, added in pixel order in
   float64: a global average pool over the output that follows (squeeze-and-excitation) reads these
   instead of the whole output again (bmean_rows). */
B_INLINE void b_rowsum(double *restrict rs, const float *restrict y, int np, int first)
{
    double s[BL];
    for (int l = 0; l < BL; l++) s[l] = first ? 0.0 : rs[l];
    for (int j = 0; j < np; j++)
        for (int l = 0; l < BL; l++) s[l] += (double)y[j * BL + l];
    for (int l = 0; l < BL; l++) rs[l] = s[l];
}

/* Bands of rows so that a layer with few planes still gives every thread work (>= 4 items each). */
static void bdw_plan(bdw *g, int nthreads)
{
    const ptrdiff_t planes = g->N * g->Cb;
    ptrdiff_t nb = b_cdiv(4 * (ptrdiff_t)nthreads, planes > 0 ? planes : 1);
    if (nb > g->P) nb = g->P;
    if (nb < 1) nb = 1;
    g->band = b_cdiv(g->P, nb);
    g->nband = b_cdiv(g->P, g->band);
}

#define BDW_NP 8

/* NP pixels of row p of block cb. KS (3 or 5, with dilation 1) and SW (1 or 2) compile-time: the input
   vectors of a tap row are loaded once (NP*SW + KS - SW of them) and shared by the KS taps that reuse
   them; KS 0: any kernel and dilation, one load per tap. */
B_INLINE void bdw_tile(const bdw *g, const int NP, const int SW, const int KS, const float *restrict xb,
                       const float *restrict wb, ptrdiff_t p, ptrdiff_t q0, float *restrict yp)
{
    bv acc[BDW_NP];
    for (int j = 0; j < NP; j++) acc[j] = (bv){0};
    const ptrdiff_t S = KS ? KS : g->S, R = KS ? KS : g->R, dw = KS ? 1 : g->dw, dh = KS ? 1 : g->dh;
    for (ptrdiff_t r = 0; r < R; r++) {
        const float *row = xb + g->x0 + (p * g->sh + r * dh) * g->xr + q0 * SW * BL;
        const float *wr = wb + r * S * BL;
        if (KS) {
            bv xin[BDW_NP * 2 + 4];
            const int nin = (NP - 1) * SW + KS;
            for (int i = 0; i < nin; i++) xin[i] = BLD(row + i * BL);
            for (int s = 0; s < KS; s++) {
                const bv wv = BLD(wr + s * BL);
                for (int j = 0; j < NP; j++) acc[j] += wv * xin[j * SW + s];
            }
        } else {
            for (ptrdiff_t s = 0; s < S; s++) {
                const bv wv = BLD(wr + s * BL);
                const float *xs = row + s * dw * BL;
                for (int j = 0; j < NP; j++) acc[j] += wv * BLD(xs + j * SW * BL);
            }
        }
    }
    for (int j = 0; j < NP; j++) BST(yp + j * BL, acc[j]);
}

/* The tile instance (TILE: bdw_tile or bdw_tile2) for np pixels: each a compile-time shape. */
#define BDW_CASES(TILE, SWC, KSC)                                                                \
    switch (np) {                                                                                \
    case 1: TILE(g, 1, SWC, KSC, xb, wb, p, q0, yp); break;                                      \
    case 2: TILE(g, 2, SWC, KSC, xb, wb, p, q0, yp); break;                                      \
    case 3: TILE(g, 3, SWC, KSC, xb, wb, p, q0, yp); break;                                      \
    case 4: TILE(g, 4, SWC, KSC, xb, wb, p, q0, yp); break;                                      \
    case 5: TILE(g, 5, SWC, KSC, xb, wb, p, q0, yp); break;                                      \
    case 6: TILE(g, 6, SWC, KSC, xb, wb, p, q0, yp); break;                                      \
    case 7: TILE(g, 7, SWC, KSC, xb, wb, p, q0, yp); break;                                      \
    default: TILE(g, 8, SWC, KSC, xb, wb, p, q0, yp); break;                                     \
    }

/* Two output rows p, p + 1 at once (KS 3 or 5, dilation 1): every input row is loaded once for both,
   and 2 x NP independent accumulators keep the FMA pipes busy through each chain of KS x KS. */
B_INLINE void bdw_tile2(const bdw *g, const int NP, const int SW, const int KS, const float *restrict xb,
                        const float *restrict wb, ptrdiff_t p, ptrdiff_t q0, float *restrict yp)
{
    bv acc[2][BDW_NP];
    for (int o = 0; o < 2; o++)
        for (int j = 0; j < NP; j++) acc[o][j] = (bv){0};
    const int nin = (NP - 1) * SW + KS;
#pragma GCC unroll 8
    for (int i = 0; i < SW + KS; i++) {
        const float *row = xb + g->x0 + (p * g->sh + i) * g->xr + q0 * SW * BL;
        bv xin[BDW_NP * 2 + 4];
        for (int t = 0; t < nin; t++) xin[t] = BLD(row + t * BL);
        for (int o = 0; o < 2; o++) {
            const int r = i - o * SW;
            if (r < 0 || r >= KS) continue;
            for (int s = 0; s < KS; s++) {
                const bv wv = BLD(wb + (r * KS + s) * BL);
                for (int j = 0; j < NP; j++) acc[o][j] += wv * xin[j * SW + s];
            }
        }
    }
    for (int o = 0; o < 2; o++)
        for (int j = 0; j < NP; j++) BST(yp + o * g->yr + j * BL, acc[o][j]);
}

/* Rows p and p + 1 of a 3x3 or 5x5 stride 1 or 2 layer (dilation 1, equal strides): 0 where it does not apply. */
static int bdw_pair(const bdw *g, int np, const float *xb, const float *wb, ptrdiff_t p, ptrdiff_t q0, float *yp)
{
    const int ks = g->R == g->S && g->dh == 1 && g->dw == 1 && g->sh == g->sw ? (int)g->R : 0;
    if (g->sw == 1 && ks == 3) { BDW_CASES(bdw_tile2, 1, 3) }
    else if (g->sw == 1 && ks == 5) { BDW_CASES(bdw_tile2, 1, 5) }
    else if (g->sw == 2 && ks == 3) { BDW_CASES(bdw_tile2, 2, 3) }
    else if (g->sw == 2 && ks == 5) { BDW_CASES(bdw_tile2, 2, 5) }
    else return 0;
    return 1;
}

static void bdw_tile_any(const bdw *g, int np, const float *xb, const float *wb, ptrdiff_t p, ptrdiff_t q0,
                         float *yp)
{
    const int ks = g->R == g->S && g->dh == 1 && g->dw == 1 && (g->R == 3 || g->R == 5) ? (int)g->R : 0;
    if (g->sw == 1 && ks == 3) { BDW_CASES(bdw_tile, 1, 3) }
    else if (g->sw == 1 && ks == 5) { BDW_CASES(bdw_tile, 1, 5) }
    else if (g->sw == 2 && ks == 3) { BDW_CASES(bdw_tile, 2, 3) }
    else if (g->sw == 2 && ks == 5) { BDW_CASES(bdw_tile, 2, 5) }
    else if (g->sw == 1) { BDW_CASES(bdw_tile, 1, 0) }
    else if (g->sw == 2) { BDW_CASES(bdw_tile, 2, 0) }
    else {
        /* any other stride: one pixel at a time */
        for (int j = 0; j < np; j++) {
            bv acc = (bv){0};
            for (ptrdiff_t r = 0; r < g->R; r++)
                for (ptrdiff_t s = 0; s < g->S; s++)
                    acc += BLD(wb + (r * g->S + s) * BL) *
                           BLD(xb + g->x0 + (p * g->sh + r * g->dh) * g->xr + ((q0 + j) * g->sw + s * g->dw) * BL);
            BST(yp + j * BL, acc);
        }
    }
}
#undef BDW_CASES

/* Work item: a band of rows of one (image, block) plane. */
static void bdw_item(const bdw *g, const float *x, const float *w, const float *bias, const float *res,
                     float *y, ptrdiff_t item)
{
    /* band-major: with two or more bands, each thread takes whole bands of rows of every plane, as the
       row-banded convolutions before and after it do, so each reads what it wrote */
    const ptrdiff_t planes = g->N * g->Cb, band = item / planes, plane = item % planes;
    const ptrdiff_t n = plane / g->Cb, cb = plane % g->Cb;
    const ptrdiff_t p0 = band * g->band, p1 = p0 + g->band < g->P ? p0 + g->band : g->P;
    const float *xb = x + n * g->xn + cb * g->xc;
    const float *wb = w + cb * g->R * g->S * BL;
    const ptrdiff_t tq = b_cdiv(g->Q, b_cdiv(g->Q, BDW_NP));      /* equal tiles of at most BDW_NP */
    double *rs = g->rs ? g->rs + (n * g->Cb + cb) * g->P * BL : NULL;
    for (ptrdiff_t p = p0; p < p1; p++) {
        float *yrow = y + n * g->yn + cb * g->yc + p * g->yr;
        const float *rrow = res ? res + n * g->rn + cb * g->rc + p * g->rr : NULL;
        const int pair = p + 1 < p1;
        for (ptrdiff_t q0 = 0; q0 < g->Q; q0 += tq) {
            const int np = (int)(g->Q - q0 < tq ? g->Q - q0 : tq);
            if (pair && bdw_pair(g, np, xb, wb, p, q0, yrow + q0 * BL)) {
                b_epi(yrow + g->yr + q0 * BL, 0, 1, np, bias + cb * BL, rrow ? rrow + g->rr + q0 * BL : NULL, 0,
                      g->act);
            } else {
                bdw_tile_any(g, np, xb, wb, p, q0, yrow + q0 * BL);
                if (pair)   /* a geometry without the pair kernel: row p + 1 alone */
                    bdw_tile_any(g, np, xb, wb, p + 1, q0, yrow + g->yr + q0 * BL),
                    b_epi(yrow + g->yr + q0 * BL, 0, 1, np, bias + cb * BL, rrow ? rrow + g->rr + q0 * BL : NULL,
                          0, g->act);
            }
            b_epi(yrow + q0 * BL, 0, 1, np, bias + cb * BL, rrow ? rrow + q0 * BL : NULL, 0, g->act);
            if (rs) {
                b_rowsum(rs + p * BL, yrow + q0 * BL, np, q0 == 0);
                if (pair) b_rowsum(rs + (p + 1) * BL, yrow + g->yr + q0 * BL, np, q0 == 0);
            }
        }
        p += pair;
    }
    b_frame_rows(y + n * g->yn + cb * g->yc, g->yr, g->Q, g->yh, p0, p1, g->P);
}

/* ---------------------------------------------------------------- pooling and small ops */

/* max(a, b) that keeps NaN from either side: a where a > b or a is NaN, else b. */
B_INLINE bv b_vmax(bv a, bv b) { return b_sel((a > b) | (a != a), a, b); }

#define BPOOL_W 512      /* widest row the separable max pool keeps on the stack */

/* Max pooling of one plane as two passes per output row: the column maxima of the row's (clipped)
   window rows, then each output's maximum over its (clipped) window of those: (kh - 1) maxima per
   input column plus (kw - 1) per output, instead of kh x kw - 1 per output. W <= BPOOL_W. */
static void bpool_max_sep(const float *restrict x, ptrdiff_t xr, ptrdiff_t H, ptrdiff_t W, float *restrict y,
                          ptrdiff_t yr, ptrdiff_t P, ptrdiff_t Q, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,
                          ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw)
{
    bv col[BPOOL_W];
    for (ptrdiff_t p = 0; p < P; p++) {
        const ptrdiff_t h0 = p * sh - ph, he = h0 + kh;
        const ptrdiff_t ha = h0 < 0 ? 0 : h0, hb = he > H ? H : he;
        for (ptrdiff_t c = 0; c < W; c++) {
            bv m = BLD(x + ha * xr + c * BL);
            for (ptrdiff_t h = ha + 1; h < hb; h++) m = b_vmax(BLD(x + h * xr + c * BL), m);
            col[c] = m;
        }
        float *out = y + p * yr;
        for (ptrdiff_t q = 0; q < Q; q++) {
            const ptrdiff_t w0 = q * sw - pw, we = w0 + kw;
            const ptrdiff_t wa = w0 < 0 ? 0 : w0, wb = we > W ? W : we;
            bv m = col[wa];
            if (kw == 3 && wa == w0 && wb == we) {
                m = b_vmax(col[wa + 1], m);
                m = b_vmax(col[wa + 2], m);
            } else {
                for (ptrdiff_t c = wa + 1; c < wb; c++) m = b_vmax(col[c], m);
            }
            BST(out + q * BL, m);
        }
    }
}

/* Max or average pooling of one (image, block) plane, reading only the interior [0, H) x [0, W)
   (x points at the interior origin); the divisor follows PyTorch (count_include_pad counts the
   padding inside [-pad, n + pad), never the ceil_mode overhang). */
static void bpool_plane(const float *restrict x, ptrdiff_t xr, ptrdiff_t H, ptrdiff_t W, float *restrict y,
                        ptrdiff_t yr, ptrdiff_t P, ptrdiff_t Q, int is_max, ptrdiff_t kh, ptrdiff_t kw,
                        ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw, int include_pad)
{
    if (is_max && W <= BPOOL_W) {
        bpool_max_sep(x, xr, H, W, y, yr, P, Q, kh, kw, sh, sw, ph, pw);
        return;
    }
    for (ptrdiff_t p = 0; p < P; p++) {
        const ptrdiff_t h0 = p * sh - ph, he = h0 + kh;
        const ptrdiff_t ha = h0 < 0 ? 0 : h0, hb = he > H ? H : he;
        for (ptrdiff_t q = 0; q < Q; q++) {
            const ptrdiff_t w0 = q * sw - pw, we = w0 + kw;
            const ptrdiff_t wa = w0 < 0 ? 0 : w0, wb = we > W ? W : we;
            bv acc = (bv){0} + (is_max ? -INFINITY : 0.0f);
            for (ptrdiff_t h = ha; h < hb; h++)
                for (ptrdiff_t c = wa; c < wb; c++) {
                    const bv v = BLD(x + h * xr + c * BL);
                    /* max that keeps NaN: take v where v > acc or v is NaN */
                    acc = is_max ? b_sel((v > acc) | (v != v), v, acc) : acc + v;
                }
            float *out = y + p * yr + q * BL;
            if (!is_max) {
                ptrdiff_t cnt;
                if (include_pad) {
                    const ptrdiff_t hh = (he < H + ph ? he : H + ph) - h0, ww = (we < W + pw ? we : W + pw) - w0;
                    cnt = hh * ww;
                } else {
                    cnt = (hb - ha) * (wb - wa);
                }
                acc *= 1.0f / (float)cnt;
            }
            BST(out, acc);
        }
    }
}

/* Mean of each lane over an H x W plane (x at the interior origin), summed in float64. */
static void bmean_plane(const float *restrict x, ptrdiff_t xr, ptrdiff_t H, ptrdiff_t W, float *restrict out)
{
    double acc[BL] = {0};
    for (ptrdiff_t h = 0; h < H; h++)
        for (ptrdiff_t c = 0; c < W; c++)
            for (int l = 0; l < BL; l++) acc[l] += (double)x[h * xr + c * BL + l];
    for (int l = 0; l < BL; l++) out[l] = (float)(acc[l] / (double)(H * W));
}

/* out[l] = the mean of a plane from its P row sums rs[p * BL + l] (b_rowsum) over `pixels` pixels. */
static void bmean_rows(const double *restrict rs, ptrdiff_t P, ptrdiff_t pixels, float *restrict out)
{
    double acc[BL] = {0};
    for (ptrdiff_t p = 0; p < P; p++)
        for (int l = 0; l < BL; l++) acc[l] += rs[p * BL + l];
    for (int l = 0; l < BL; l++) out[l] = (float)(acc[l] / (double)pixels);
}

/* y = x * s (per lane) over an H x W plane: the squeeze-and-excitation scale. */
static void bscale_plane(const float *restrict x, ptrdiff_t xr, ptrdiff_t H, ptrdiff_t W, const float *restrict s,
                         float *restrict y, ptrdiff_t yr)
{
    for (ptrdiff_t h = 0; h < H; h++)
        for (ptrdiff_t c = 0; c < W; c++)
            for (int l = 0; l < BL; l++) y[h * yr + c * BL + l] = x[h * xr + c * BL + l] * s[l];
}

/* y = act(a + b) over an H x W plane: a residual addition that no convolution's epilogue took. */
static void badd_plane(const float *restrict a, ptrdiff_t ar, const float *restrict b, ptrdiff_t br,
                       ptrdiff_t H, ptrdiff_t W, float *restrict y, ptrdiff_t yr, int act)
{
    for (ptrdiff_t h = 0; h < H; h++)
        for (ptrdiff_t c = 0; c < W * BL; c++) {
            float v = a[h * ar + c] + b[h * br + c];
            if (act == 1 || act == 2) {
                v = v < 0.0f ? 0.0f : v;
                if (act == 2) v = v > 6.0f ? 6.0f : v;
            } else if (act) {
                v = b_act(v, act);
            }
            y[h * yr + c] = v;
        }
}

/* Zero the frame of h rows/columns around an (H + 2h) x (W + 2h) plane (row stride yr; y at the
   buffer's origin). */
static void bzero_frame(float *restrict y, ptrdiff_t yr, ptrdiff_t H, ptrdiff_t W, ptrdiff_t h)
{
    if (h == 0) return;
    const ptrdiff_t rows = H + 2 * h;
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = y + r * yr;
        if (r < h || r >= H + h) {
            memset(row, 0, (size_t)(W + 2 * h) * BL * sizeof(float));
        } else {
            memset(row, 0, (size_t)h * BL * sizeof(float));
            memset(row + (W + h) * BL, 0, (size_t)h * BL * sizeof(float));
        }
    }
}

#endif /* CONVFORGE_BLOCKED_H */
