/* Depthwise convolution kernels (groups == C, K = M * C), NCHW, float32 and float64.
 *
 * What it computes: y[n, k, p, q] = act(bias[k] + sum_{r, s} w[k, 0, r, s] *
 *                   x[n, k / M, p*sh + r*dh - pt, q*sw + s*dw - pl]),
 * with x read as zero outside [0, H) x [0, W). act: 0 none, 1 ReLU, 2 ReLU6; NaN propagates.
 *
 * How: one output plane (n, k) depends on one input plane, and NCHW planes are contiguous, so the
 * kernels vectorise over the output width (16 floats or 8 doubles per zmm register with AVX-512, 8 or
 * 4 per ymm with AVX2 + FMA; padding through fault-free masked loads) and keep the R*S weights broadcast in registers. The work is cut into
 * items (plane, band of output rows); dw_run_<t>() computes a range of items and the caller
 * (depthwise.pyx) gives each OpenMP thread one contiguous range. The cut depends on the geometry only,
 * and every output element is reduced by one thread in the fixed order bias, then taps r-major
 * s-minor, so the result does not depend on the thread count.
 *
 * The layer is memory-bound (2 * R * S FLOPs per 8 bytes moved in float32), so the paths are designed
 * against loads:
 *   - 3x3 and 5x5, stride 1 or 2, dilation 1: register-blocked over B output rows. Each input row of
 *     the band is loaded once per column chunk (S masked loads at stride 1; at stride 2, two loads per
 *     pair of taps de-interleaved into even/odd columns with vpermt2ps) and fed to every output row of
 *     the block that uses it. The next block's rows are prefetched to L1 while this one computes.
 *   - everything else: one accumulator per 16 (8) output columns, one load per tap (masked unaligned
 *     load at stride 1, two loads + de-interleave at stride 2, masked gather beyond).
 * The generic build (no vector intrinsics) has a plain C row-accumulation loop that the compiler
 * can vectorise, computing the same thing.
 *
 * The type-generic body is written once and instantiated for float and double by including this
 * file into itself with DW_T, DW_F64 and DW_SFX set (the classic C substitute for a template).
 */
#if !defined(DW_T)
#ifndef CONVFORGE_DEPTHWISE_H
#define CONVFORGE_DEPTHWISE_H

#include <stdint.h>
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define DW_SIMD 1
#else
#define DW_SIMD 0
#endif

#define DW_INLINE static inline __attribute__((always_inline))
/* Loops over compile-time taps and rows are unrolled fully so that their arrays live in registers. */
#define DW_UNROLL _Pragma("GCC unroll 32")

/* The geometry of one call and its cut into work items. */
typedef struct {
    int64_t N, C, H, W, K, M, R, S, P, Q;
    int64_t sh, sw, pt, pl, dh, dw;
    int act;
    int64_t band_rows;   /* output rows per work item */
    int64_t bands;       /* work items per output plane */
} dw_geom;

/* Output rows a register-blocked pass produces at once (a band is a multiple of it). */
#define DW_BLOCK_ROWS 8

/* Fill g and cut the output into items: whole planes when there are enough of them to share out,
 * otherwise bands of rows so that about 32 items exist. Depends on the geometry only. */
static void dw_geom_init(dw_geom *g, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                         int64_t R, int64_t S, int64_t P, int64_t Q, int64_t sh, int64_t sw,
                         int64_t pt, int64_t pl, int64_t dh, int64_t dw, int act)
{
    g->N = N; g->C = C; g->H = H; g->W = W; g->K = K; g->M = K / C;
    g->R = R; g->S = S; g->P = P; g->Q = Q;
    g->sh = sh; g->sw = sw; g->pt = pt; g->pl = pl; g->dh = dh; g->dw = dw;
    g->act = act;
    const int64_t planes = N * K, want_items = 32;
    int64_t bands = 1;
    if (planes < want_items) {
        bands = (want_items + planes - 1) / planes;
        const int64_t max_bands = (P + DW_BLOCK_ROWS - 1) / DW_BLOCK_ROWS;
        if (bands > max_bands) bands = max_bands;
        if (bands < 1) bands = 1;
    }
    int64_t rows = (P + bands - 1) / bands;
    rows = (rows + DW_BLOCK_ROWS - 1) / DW_BLOCK_ROWS * DW_BLOCK_ROWS;
    g->band_rows = rows;
    g->bands = (P + rows - 1) / rows;
}

static inline int64_t dw_items(const dw_geom *g) { return g->N * g->K * g->bands; }

#if DW_SIMD
/* Lanes j in [0, lanes) whose column a + j lies in [0, W): the mask of a fault-free partial load. */
DW_INLINE uint32_t dw_colmask(int64_t a, int64_t W, int lanes)
{
    int64_t lo = a < 0 ? -a : 0;
    int64_t hi = W - a;
    if (lo > lanes) lo = lanes;
    if (hi > lanes) hi = lanes;
    if (hi <= lo) return 0;
    return ((1u << hi) - 1u) & ~((1u << lo) - 1u);
}

/* Lanes j whose column a + j*step lies in [0, W) (step >= 1): the mask of a strided gather. */
DW_INLINE uint32_t dw_stridemask(int64_t a, int64_t step, int64_t W, int lanes)
{
    int64_t lo = a >= 0 ? 0 : (-a + step - 1) / step;
    int64_t hi = a >= W ? 0 : (W - 1 - a) / step + 1;
    if (lo > lanes) lo = lanes;
    if (hi > lanes) hi = lanes;
    if (hi <= lo) return 0;
    return ((1u << hi) - 1u) & ~((1u << lo) - 1u);
}
#if !defined(__AVX512F__)
/* AVX2 has no mask registers: lane mask bits -> all-ones lanes for vmaskmov (masked-off lanes are
 * neither read nor written, so a partial load never faults). */
DW_INLINE __m256i dw_lanes32(uint32_t m)
{
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)m), bit), bit);
}
DW_INLINE __m256i dw_lanes64(uint32_t m)
{
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x((long long)m), bit), bit);
}
#endif
#endif

/* float32 */
#define DW_T float
#define DW_F64 0
#define DW_SFX(name) name##_f32
#include "depthwise.h"
#undef DW_SFX
#undef DW_F64
#undef DW_T

/* float64 */
#define DW_T double
#define DW_F64 1
#define DW_SFX(name) name##_f64
#include "depthwise.h"
#undef DW_SFX
#undef DW_F64
#undef DW_T

#endif /* CONVFORGE_DEPTHWISE_H */


#else /* ------------------------------------------------------------------------------------------------
       * The type-generic body: DW_T is float (DW_F64 0) or double (DW_F64 1); DW_SFX(name) appends
       * _f32 or _f64 to a function name.
       * ---------------------------------------------------------------------------------------------- */

#if DW_SIMD

/* The vector vocabulary of DW_T: V holds L values, lane masks travel as uint32_t bits.
 * VEVEN/VODD de-interleave two vectors of consecutive columns into the even and odd ones (stride 2);
 * dw_gather reads lanes j of p[j * step] where the mask says (stride 3 and beyond). */
#if defined(__AVX512F__) && DW_F64
#define V __m512d
#define L 8
#define VZERO() _mm512_setzero_pd()
#define VSET1(a) _mm512_set1_pd(a)
#define VLOADM(m, p) _mm512_maskz_loadu_pd((__mmask8)(m), (p))
#define VSTORE(p, v) _mm512_storeu_pd((p), (v))
#define VSTOREM(p, m, v) _mm512_mask_storeu_pd((p), (__mmask8)(m), (v))
#define VFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define VMAX(a, b) _mm512_max_pd((a), (b))
#define VMIN(a, b) _mm512_min_pd((a), (b))
#define VEVEN(a, b) _mm512_permutex2var_pd((a), _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), (b))
#define VODD(a, b) _mm512_permutex2var_pd((a), _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1), (b))
DW_INLINE __m512d dw_gather_f64(const double *p, int64_t step, uint32_t m)
{
    const __m512i idx = _mm512_set_epi64(7 * step, 6 * step, 5 * step, 4 * step, 3 * step, 2 * step, step, 0);
    return _mm512_mask_i64gather_pd(_mm512_setzero_pd(), (__mmask8)m, idx, p, 8);
}
#elif defined(__AVX512F__)
#define V __m512
#define L 16
#define VZERO() _mm512_setzero_ps()
#define VSET1(a) _mm512_set1_ps(a)
#define VLOADM(m, p) _mm512_maskz_loadu_ps((__mmask16)(m), (p))
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSTOREM(p, m, v) _mm512_mask_storeu_ps((p), (__mmask16)(m), (v))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VMAX(a, b) _mm512_max_ps((a), (b))
#define VMIN(a, b) _mm512_min_ps((a), (b))
#define VEVEN(a, b) _mm512_permutex2var_ps((a), _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0), (b))
#define VODD(a, b) _mm512_permutex2var_ps((a), _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1), (b))
/* two 8-lane gathers with 64-bit offsets j * step */
DW_INLINE __m512 dw_gather_f32(const float *p, int64_t step, uint32_t m)
{
    const __m512i idx = _mm512_set_epi64(7 * step, 6 * step, 5 * step, 4 * step, 3 * step, 2 * step, step, 0);
    const __m256 lo = _mm512_mask_i64gather_ps(_mm256_setzero_ps(), (__mmask8)(m & 0xffu), idx, p, 4);
    const __m256 hi = _mm512_mask_i64gather_ps(_mm256_setzero_ps(), (__mmask8)(m >> 8), idx, p + 8 * step, 4);
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}
#elif DW_F64  /* AVX2 + FMA, double */
#define V __m256d
#define L 4
#define VZERO() _mm256_setzero_pd()
#define VSET1(a) _mm256_set1_pd(a)
#define VLOADM(m, p) _mm256_maskload_pd((p), dw_lanes64(m))
#define VSTORE(p, v) _mm256_storeu_pd((p), (v))
#define VSTOREM(p, m, v) _mm256_maskstore_pd((p), dw_lanes64(m), (v))
#define VFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define VMAX(a, b) _mm256_max_pd((a), (b))
#define VMIN(a, b) _mm256_min_pd((a), (b))
/* [a0 a1 a2 a3], [a4 .. a7] -> unpack [a0 a4 a2 a6] -> cross-lane permute [a0 a2 a4 a6] */
#define VEVEN(a, b) _mm256_permute4x64_pd(_mm256_unpacklo_pd((a), (b)), _MM_SHUFFLE(3, 1, 2, 0))
#define VODD(a, b) _mm256_permute4x64_pd(_mm256_unpackhi_pd((a), (b)), _MM_SHUFFLE(3, 1, 2, 0))
DW_INLINE __m256d dw_gather_f64(const double *p, int64_t step, uint32_t m)
{
    double t[4];
    for (int j = 0; j < 4; j++) t[j] = (m >> j) & 1u ? p[j * step] : 0.0;
    return _mm256_loadu_pd(t);
}
#else         /* AVX2 + FMA, float */
#define V __m256
#define L 8
#define VZERO() _mm256_setzero_ps()
#define VSET1(a) _mm256_set1_ps(a)
#define VLOADM(m, p) _mm256_maskload_ps((p), dw_lanes32(m))
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSTOREM(p, m, v) _mm256_maskstore_ps((p), dw_lanes32(m), (v))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VMAX(a, b) _mm256_max_ps((a), (b))
#define VMIN(a, b) _mm256_min_ps((a), (b))
/* in-lane shuffle [a0 a2 a8 a10 | a4 a6 a12 a14], then 64-bit cross-lane permute into order */
#define VEVEN(a, b) _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd( \
    _mm256_shuffle_ps((a), (b), _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)))
#define VODD(a, b) _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd( \
    _mm256_shuffle_ps((a), (b), _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)))
DW_INLINE __m256 dw_gather_f32(const float *p, int64_t step, uint32_t m)
{
    float t[8];
    for (int j = 0; j < 8; j++) t[j] = (m >> j) & 1u ? p[j * step] : 0.0f;
    return _mm256_loadu_ps(t);
}
#endif

/* The fused epilogue. vmaxps/vminps return their second operand when either is NaN, so the
 * accumulator goes second: a NaN sum stays NaN through ReLU and ReLU6. */
DW_INLINE V DW_SFX(dw_act)(V v, int act)
{
    if (act == 1) return VMAX(VZERO(), v);
    if (act == 2) return VMIN(VSET1((DW_T)6), VMAX(VZERO(), v));
    return v;
}

/* Store L outputs at yrow[q0..], masked when the chunk passes the row's end Q. */
DW_INLINE void DW_SFX(dw_store)(DW_T *yrow, int64_t q0, int64_t Q, V v)
{
    if (q0 + L <= Q) VSTORE(yrow + q0, v);
    else VSTOREM(yrow + q0, (1u << (Q - q0)) - 1u, v);
}

/* B output rows p0 .. p0+B-1 of one plane for an RxS kernel, stride ST (1 or 2) in both axes,
 * dilation 1; R, S, ST, B are compile-time constants after inlining, so the arrays below live in
 * registers. Per 16 (8) output columns, each input row of the block is loaded once and fed to the
 * B accumulators of the output rows that use it (output row b uses input rows t = b*ST + r). */
DW_INLINE void DW_SFX(dw_block)(const dw_geom *g, const DW_T *xp, DW_T *yp, const V *wv, V bias,
                                int64_t p0, const int R, const int S, const int ST, const int B, const int EDGE)
{
    const int64_t H = g->H, W = g->W, Q = g->Q;
    const int act = g->act;
    const int T = (B - 1) * ST + R;             /* input rows the block reads */
    const int NPAIR = (S + 1) / 2;              /* stride 2: taps (2u, 2u+1) share two loads */
    const int64_t iy0 = p0 * ST - g->pt;
    for (int64_t q0 = 0; q0 < Q; q0 += L) {
        const int64_t a0 = q0 * ST - g->pl;     /* input column of lane 0, tap s = 0 */
        uint32_t m[6];                          /* load masks: per tap (ST 1), per half-pair (ST 2) */
        if (ST == 1) {
            DW_UNROLL
            for (int s = 0; s < S; s++) m[s] = dw_colmask(a0 + s, W, L);
        } else {
            DW_UNROLL
            for (int u = 0; u < NPAIR; u++) {
                m[2 * u] = dw_colmask(a0 + 2 * u, W, L);
                m[2 * u + 1] = dw_colmask(a0 + 2 * u + L, W, L);
            }
        }
        V acc[DW_BLOCK_ROWS];
        DW_UNROLL
        for (int b = 0; b < B; b++) acc[b] = bias;
        DW_UNROLL
        for (int t = 0; t < T; t++) {
            const int64_t iy = iy0 + t;
            const DW_T *row = xp + iy * W + a0;
            V xv[5];                            /* input columns a0 + s + ST*j of row iy, per tap s */
            /* the same columns of the next block's rows, to L1 ahead of use: the hardware
             * prefetchers do not follow this row-strided pattern, and from DRAM this is worth 3x */
            DW_UNROLL
            for (int k = 0; k <= ST; k++)
                _mm_prefetch((const char *)(row + (int64_t)B * ST * W + k * L), _MM_HINT_T0);
            if (EDGE && (iy < 0 || iy >= H)) {
                /* an EDGE block reaches into the top/bottom padding: those taps multiply zeros */
                DW_UNROLL
                for (int s = 0; s < S; s++) xv[s] = VZERO();
            } else if (ST == 1) {
                DW_UNROLL
                for (int s = 0; s < S; s++) xv[s] = VLOADM(m[s], row + s);
            } else {
                DW_UNROLL
                for (int u = 0; u < NPAIR; u++) {
                    const V lo = VLOADM(m[2 * u], row + 2 * u);
                    const V hi = VLOADM(m[2 * u + 1], row + 2 * u + L);
                    xv[2 * u] = VEVEN(lo, hi);
                    if (2 * u + 1 < S) xv[2 * u + 1] = VODD(lo, hi);
                }
            }
            DW_UNROLL
            for (int b = 0; b < B; b++) {
                const int r = t - b * ST;
                if (r < 0 || r >= R) continue;
                DW_UNROLL
                for (int s = 0; s < S; s++) acc[b] = VFMA(wv[r * S + s], xv[s], acc[b]);
            }
        }
        DW_UNROLL
        for (int b = 0; b < B; b++)
            DW_SFX(dw_store)(yp + (p0 + b) * Q, q0, Q, DW_SFX(dw_act)(acc[b], act));
    }
}

/* B rows from p through dw_block, with the row checks only where the block's input rows
 * [p*ST - pt, p*ST - pt + T) leave [0, H). */
DW_INLINE void DW_SFX(dw_block_at)(const dw_geom *g, const DW_T *xp, DW_T *yp, const V *wv, V bias,
                                   int64_t p, const int R, const int ST, const int B)
{
    const int64_t iy0 = p * ST - g->pt;
    if (iy0 >= 0 && iy0 + (B - 1) * ST + R <= g->H)
        DW_SFX(dw_block)(g, xp, yp, wv, bias, p, R, R, ST, B, 0);
    else
        DW_SFX(dw_block)(g, xp, yp, wv, bias, p, R, R, ST, B, 1);
}

/* Output rows [p_begin, p_end) of one plane through dw_block: blocks of DW_BLOCK_ROWS rows, then the
 * remainder as one smaller block. */
DW_INLINE void DW_SFX(dw_rows_blocked)(const dw_geom *g, const DW_T *xp, DW_T *yp, const DW_T *wk, DW_T b,
                                       int64_t p_begin, int64_t p_end, const int R, const int ST)
{
    const V bias = VSET1(b);
    V wv[25];                                   /* the filter, broadcast once per plane */
    DW_UNROLL
    for (int i = 0; i < R * R; i++) wv[i] = VSET1(wk[i]);
    int64_t p = p_begin;
    for (; p + DW_BLOCK_ROWS <= p_end; p += DW_BLOCK_ROWS)
        DW_SFX(dw_block_at)(g, xp, yp, wv, bias, p, R, ST, DW_BLOCK_ROWS);
    switch (p_end - p) {
    case 7: DW_SFX(dw_block_at)(g, xp, yp, wv, bias, p, R, ST, 7); break;
    case 6: DW_SFX(dw_block_at)(g, xp, yp, wv, bias, p, R, ST, 6); break;
    case 5: DW_SFX(dw_block_at)(g, xp, yp, wv, bias, p, R, ST, 5); break;
    case 4: DW_SFX(dw_block_at)(g, xp, yp, wv, bias, p, R, ST, 4); break;
    case 3: DW_SFX(dw_block_at)(g, xp, yp, wv, bias, p, R, ST, 3); break;
    case 2: DW_SFX(dw_block_at)(g, xp, yp, wv, bias, p, R, ST, 2); break;
    case 1: DW_SFX(dw_block_at)(g, xp, yp, wv, bias, p, R, ST, 1); break;
    default: break;
    }
}

#define DW_ROWS_ARGS const dw_geom *g, const DW_T *xp, DW_T *yp, const DW_T *wk, DW_T b, \
                     int64_t p_begin, int64_t p_end
static void DW_SFX(dw_rows_3x3_s1)(DW_ROWS_ARGS) { DW_SFX(dw_rows_blocked)(g, xp, yp, wk, b, p_begin, p_end, 3, 1); }
static void DW_SFX(dw_rows_3x3_s2)(DW_ROWS_ARGS) { DW_SFX(dw_rows_blocked)(g, xp, yp, wk, b, p_begin, p_end, 3, 2); }
static void DW_SFX(dw_rows_5x5_s1)(DW_ROWS_ARGS) { DW_SFX(dw_rows_blocked)(g, xp, yp, wk, b, p_begin, p_end, 5, 1); }
static void DW_SFX(dw_rows_5x5_s2)(DW_ROWS_ARGS) { DW_SFX(dw_rows_blocked)(g, xp, yp, wk, b, p_begin, p_end, 5, 2); }

/* Any kernel size, stride and dilation: one accumulator per 16 (8) output columns of a row, one
 * vector per tap (a masked load at column stride 1, two loads de-interleaved at stride 2, a masked
 * gather beyond). Taps of rows outside the input multiply zeros, as the padded input would. */
static void DW_SFX(dw_rows_general)(DW_ROWS_ARGS)
{
    const int64_t H = g->H, W = g->W, Q = g->Q, R = g->R, S = g->S;
    const int64_t sh = g->sh, sw = g->sw, dh = g->dh, dw = g->dw;
    const V bias = VSET1(b);
    for (int64_t p = p_begin; p < p_end; p++) {
        for (int64_t q0 = 0; q0 < Q; q0 += L) {
            V acc = bias;
            /* this chunk's columns of the last input row of output row p + DW_BLOCK_ROWS, to L1
             * ahead of use (two lines per vector cover strides up to 2) */
            const DW_T *ahead = xp + ((p + DW_BLOCK_ROWS) * sh + (R - 1) * dh - g->pt) * W + q0 * sw - g->pl;
            _mm_prefetch((const char *)ahead, _MM_HINT_T0);
            _mm_prefetch((const char *)(ahead + L), _MM_HINT_T0);
            for (int64_t r = 0; r < R; r++) {
                const int64_t iy = p * sh + r * dh - g->pt;
                const int inside = iy >= 0 && iy < H;
                const DW_T *row = xp + iy * W;
                for (int64_t s = 0; s < S; s++) {
                    const int64_t a = q0 * sw + s * dw - g->pl;   /* input column of lane 0 */
                    V xv;
                    if (!inside) {
                        xv = VZERO();
                    } else if (sw == 1) {
                        xv = VLOADM(dw_colmask(a, W, L), row + a);
                    } else if (sw == 2) {
                        const V lo = VLOADM(dw_colmask(a, W, L), row + a);
                        const V hi = VLOADM(dw_colmask(a + L, W, L), row + a + L);
                        xv = VEVEN(lo, hi);
                    } else {
                        xv = DW_SFX(dw_gather)(row + a, sw, dw_stridemask(a, sw, W, L));
                    }
                    acc = VFMA(VSET1(wk[r * S + s]), xv, acc);
                }
            }
            DW_SFX(dw_store)(yp + p * Q, q0, Q, DW_SFX(dw_act)(acc, g->act));
        }
    }
}

#undef V
#undef L
#undef VZERO
#undef VSET1
#undef VLOADM
#undef VSTORE
#undef VSTOREM
#undef VFMA
#undef VMAX
#undef VMIN
#undef VEVEN
#undef VODD

#else /* generic build: no vector intrinsics */

#define DW_ROWS_ARGS const dw_geom *g, const DW_T *xp, DW_T *yp, const DW_T *wk, DW_T b, \
                     int64_t p_begin, int64_t p_end

/* Portable path: accumulate each output row tap by tap (y_row[q] += w * x_row[q*sw + off]), a
 * contiguous loop at stride 1 that the compiler vectorises. Columns and rows that fall in the padding
 * add w * 0, as the padded input would (0, or NaN for an infinite weight). */
static void DW_SFX(dw_rows_general)(DW_ROWS_ARGS)
{
    const int64_t H = g->H, W = g->W, Q = g->Q, R = g->R, S = g->S;
    const int64_t sh = g->sh, sw = g->sw, dh = g->dh, dw = g->dw;
    for (int64_t p = p_begin; p < p_end; p++) {
        DW_T *restrict yrow = yp + p * Q;
        for (int64_t q = 0; q < Q; q++) yrow[q] = b;
        for (int64_t r = 0; r < R; r++) {
            const int64_t iy = p * sh + r * dh - g->pt;
            const int inside = iy >= 0 && iy < H;
            const DW_T *restrict xrow = xp + (inside ? iy * W : 0);
            for (int64_t s = 0; s < S; s++) {
                const DW_T wv = wk[r * S + s], wz = wv * (DW_T)0;
                const int64_t off = s * dw - g->pl;         /* input column of output column 0 */
                /* output columns [qlo, qhi) read inside the row: 0 <= q*sw + off < W */
                int64_t qlo = 0, qhi = 0;
                if (inside) {
                    qlo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                    qhi = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;
                    if (qhi > Q) qhi = Q;
                    if (qlo > qhi) qlo = qhi;
                }
                for (int64_t q = 0; q < qlo; q++) yrow[q] += wz;
                if (sw == 1) {
                    for (int64_t q = qlo; q < qhi; q++) yrow[q] += wv * xrow[q + off];
                } else {
                    for (int64_t q = qlo; q < qhi; q++) yrow[q] += wv * xrow[q * sw + off];
                }
                for (int64_t q = qhi; q < Q; q++) yrow[q] += wz;
            }
        }
        if (g->act == 1) {
            for (int64_t q = 0; q < Q; q++) yrow[q] = yrow[q] < 0 ? (DW_T)0 : yrow[q];
        } else if (g->act == 2) {
            for (int64_t q = 0; q < Q; q++) yrow[q] = yrow[q] < 0 ? (DW_T)0 : (yrow[q] > 6 ? (DW_T)6 : yrow[q]);
        }
    }
}

#endif /* DW_SIMD */

/* Work items [item_begin, item_end) in order; an item is a band of output rows of plane (n, k),
 * which reads input plane (n, k / M) and filter w[k]. The path is chosen once per call. */
static void DW_SFX(dw_run)(const dw_geom *g, const DW_T *x, const DW_T *w, const DW_T *bias, DW_T *y,
                           int64_t item_begin, int64_t item_end)
{
    void (*rows)(DW_ROWS_ARGS) = DW_SFX(dw_rows_general);
#if DW_SIMD
    if (g->dh == 1 && g->dw == 1 && g->sh == g->sw && g->R == g->S) {
        const int s1 = g->sh == 1, s2 = g->sh == 2;
        if (g->R == 3 && s1) rows = DW_SFX(dw_rows_3x3_s1);
        if (g->R == 3 && s2) rows = DW_SFX(dw_rows_3x3_s2);
        if (g->R == 5 && s1) rows = DW_SFX(dw_rows_5x5_s1);
        if (g->R == 5 && s2) rows = DW_SFX(dw_rows_5x5_s2);
    }
#endif
    const int64_t in_plane = g->H * g->W, out_plane = g->P * g->Q, taps = g->R * g->S;
    /* the counters of item_begin (plane = n*K + k, k = c*M + j), then stepped without divisions */
    int64_t plane = item_begin / g->bands, band = item_begin % g->bands;
    int64_t n = plane / g->K, k = plane % g->K, c = k / g->M, j = k % g->M;
    for (int64_t item = item_begin; item < item_end; item++) {
        const int64_t p_begin = band * g->band_rows;
        const int64_t p_end = p_begin + g->band_rows < g->P ? p_begin + g->band_rows : g->P;
        rows(g, x + (n * g->C + c) * in_plane, y + plane * out_plane, w + k * taps,
             bias ? bias[k] : (DW_T)0, p_begin, p_end);
        if (++band < g->bands) continue;
        band = 0;
        plane++;
        k++;
        if (++j == g->M) { j = 0; c++; }
        if (k == g->K) { k = 0; c = 0; n++; }
    }
}

#undef DW_ROWS_ARGS

#endif /* DW_T */
