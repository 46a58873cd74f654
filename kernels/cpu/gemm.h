/* gemm.h: the hand-written GEMM under the im2col and pointwise kernels.

   Computes one block of C (m x n, row-major, leading dimension ldc) = A (m x kc) @ B (kc x n):
     A  the weights, read where they lie: row i at a + i*lda, consecutive k contiguous (no packing:
        an MR-row micro-panel of A is small enough to stay in L1 while it is reused);
     B  n columns in panels of GEMM_NR columns: panel p starts at b + p*bpanel, row kk of a panel at
        + kk*ldb, its columns contiguous. A packed panel has ldb = GEMM_NR and bpanel = kc*GEMM_NR;
        a row-major matrix read in place (pointwise, stride 1) has ldb = its row length and bpanel = GEMM_NR.
   GotoBLAS/BLIS structure with the roles of the operands swapped to suit NCHW: the micro-kernel
   vectorises over n (the output pixels, contiguous in y) and broadcasts A (one weight per output
   channel). A GEMM_MR x GEMM_NR tile lives in GEMM_MR * GEMM_NV zmm accumulators for the whole k
   block; the caller keeps the B block (kc x n) in L2 and streams it once per A micro-panel.

   k is reduced in blocks of gemm_plan.kc, a function of k and the dtype only, never of the thread
   count: `first` starts the accumulators at zero, later blocks reload C; `last` applies the fused
   epilogue (+ bias[i], then act 1 = ReLU, 2 = ReLU6) at the final store. Each element of C is
   therefore summed in one fixed order whatever the tiling of the other axes, so the threads (which
   split m and n, never k) give bit-identical results for every thread count.

   Edges: the last panel's columns beyond n are never written (masked stores) and never affect a
   result (their lanes are computed on and dropped; see gemm_block for the memory this reads); the
   last rows use a micro-kernel with fewer accumulators. The same micro-kernel is written once over
   the V_* vector macros for AVX-512 (zmm, mask registers) and AVX2 + FMA (ymm, vmaskmov); in the
   generic build a plain C micro-kernel with the same blocking and summation order replaces it.

   The type-generic part is written once and instantiated for float (suffix _s) and double (_d)
   by including this file twice with CONVFORGE_GEMM_TEMPLATE defined.
*/
#ifndef CONVFORGE_GEMM_H
#define CONVFORGE_GEMM_H

#include <stddef.h>
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define GEMM_SIMD 1
#else
#define GEMM_SIMD 0
#endif

/* Micro-tile: GEMM_MR rows (output channels) x GEMM_NV vectors of pixels. AVX-512: 6 x 4 zmm = 24
   accumulators + 4 B vectors + 1 broadcast fit the 32 zmm registers; AVX2: 6 x 2 ymm = 12 + 2 + 1
   fit the 16 ymm registers. Two FMA pipes need >= 8 independent chains: 24 (12) hide the FMA
   latency. */
#define GEMM_MR 6
#if defined(__AVX512F__)
#define GEMM_NV 4
#define GEMM_VL_S 16
#define GEMM_VL_D 8
#elif GEMM_SIMD
#define GEMM_NV 2
#define GEMM_VL_S 8
#define GEMM_VL_D 4
#else
#define GEMM_NV 4
#define GEMM_VL_S 16
#define GEMM_VL_D 8
#endif
#define GEMM_NR_S (GEMM_NV * GEMM_VL_S)
#define GEMM_NR_D (GEMM_NV * GEMM_VL_D)
_Static_assert(GEMM_MR == 6 && GEMM_NV >= 2 && GEMM_NV <= 4, "gemm_micro's switch lists 6 rows x 2..4 vectors");

#if GEMM_SIMD && !defined(__AVX512F__)
/* AVX2 has no mask registers: a lane mask (bit j = lane j) becomes a vector of all-ones lanes for
   vmaskmov, whose masked-off lanes are neither read nor written (no fault past an array's end). */
static inline __m256i gemm_lanes32(unsigned m)
{
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)m), bit), bit);
}
static inline __m256i gemm_lanes64(unsigned m)
{
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x((long long)m), bit), bit);
}
#endif

/* Cache budgets (bytes): one k block of an A micro-panel (GEMM_MR x kc) stays in L1 (48 KiB here),
   the B block (kc x nc) in half of L2 (1 MiB per core here). */
#define GEMM_KC_BYTES 1536
#define GEMM_L2_BYTES (512 * 1024)

typedef struct {
    ptrdiff_t kc;   /* k block (the last one may be shorter) */
    ptrdiff_t nkb;  /* number of k blocks */
    ptrdiff_t nc;   /* columns per job, a multiple of the panel width */
    ptrdiff_t njc;  /* column blocks */
    ptrdiff_t mc;   /* rows per job, a multiple of GEMM_MR */
    ptrdiff_t nic;  /* row blocks */
} gemm_plan;

static inline ptrdiff_t gemm_cdiv(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }

/* Blocking of C (M x N) = A (M x K) @ B (K x N) for `outer` independent such products (images x
   groups) on `nthreads` threads; nr = panel width, elsize = sizeof(element).
   kc depends on K and elsize only (bit-identical results for any thread count). Columns are cut
   into blocks that keep a kc x nc block of B in L2, of equal size. The aim is >= 4 jobs per thread.
   split_rows = 1 when row blocks cost nothing extra (B shared by the jobs, or read in place): the
   rows are split first, so each job keeps whole column blocks (an A micro-panel then meets many B
   panels while it is in L1), then the columns if the rows are too few.
   split_rows = 0 when each job packs its own B (a row split would pack the same columns again):
   only the column blocks shrink, down to one panel. */
static inline void gemm_make_plan(gemm_plan *pl, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                                  ptrdiff_t nr, ptrdiff_t elsize, ptrdiff_t outer, int nthreads,
                                  int split_rows)
{
    ptrdiff_t kcmax = GEMM_KC_BYTES / elsize;
    pl->nkb = gemm_cdiv(K, kcmax);
    pl->kc = gemm_cdiv(K, pl->nkb);

    const ptrdiff_t want = 4 * (ptrdiff_t)nthreads;
    const ptrdiff_t np = gemm_cdiv(N, nr);                 /* panels of columns */
    const ptrdiff_t nmp = gemm_cdiv(M, GEMM_MR);           /* micro-panels of rows */
    ptrdiff_t ppmax = GEMM_L2_BYTES / (pl->kc * elsize * nr);
    if (ppmax < 1) ppmax = 1;
    ptrdiff_t njc = gemm_cdiv(np, ppmax), nic = 1;
    if (split_rows && outer * njc < want) {
        nic = gemm_cdiv(want, outer * njc);
        if (nic > nmp) nic = nmp;
    }
    while (njc < np && outer * njc * nic < want)
        njc++;
    const ptrdiff_t pp = gemm_cdiv(np, njc);               /* panels per column block */
    pl->nc = pp * nr;
    pl->njc = gemm_cdiv(np, pp);
    pl->mc = gemm_cdiv(nmp, nic) * GEMM_MR;
    pl->nic = gemm_cdiv(M, pl->mc);
}

/* ---- instantiate the type-generic part for float and double ---- */
#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)
#define GEMM_FN(name) GEMM_CAT(name, GEMM_SFX)

#define CONVFORGE_GEMM_TEMPLATE
#define GEMM_T float
#define GEMM_SFX _s
#define GEMM_VL GEMM_VL_S
#ifdef __AVX512F__
#define V_T __m512
#define M_T __mmask16
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_MLOAD(m, p) _mm512_maskz_loadu_ps(m, p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_MSTORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_MIN(a, b) _mm512_min_ps(a, b)
#endif
#if GEMM_SIMD && !defined(__AVX512F__)
#define V_T __m256
#define M_T unsigned
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_MLOAD(m, p) _mm256_maskload_ps(p, gemm_lanes32(m))
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_MSTORE(p, m, v) _mm256_maskstore_ps(p, gemm_lanes32(m), v)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_MIN(a, b) _mm256_min_ps(a, b)
#endif
#include "gemm.h"
#undef GEMM_T
#undef GEMM_SFX
#undef GEMM_VL
#if GEMM_SIMD
#undef V_T
#undef M_T
#undef V_ZERO
#undef V_SET1
#undef V_LOAD
#undef V_MLOAD
#undef V_STORE
#undef V_MSTORE
#undef V_FMA
#undef V_ADD
#undef V_MAX
#undef V_MIN
#endif

#define GEMM_T double
#define GEMM_SFX _d
#define GEMM_VL GEMM_VL_D
#ifdef __AVX512F__
#define V_T __m512d
#define M_T __mmask8
#define V_ZERO() _mm512_setzero_pd()
#define V_SET1(x) _mm512_set1_pd(x)
#define V_LOAD(p) _mm512_loadu_pd(p)
#define V_MLOAD(m, p) _mm512_maskz_loadu_pd(m, p)
#define V_STORE(p, v) _mm512_storeu_pd(p, v)
#define V_MSTORE(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_ADD(a, b) _mm512_add_pd(a, b)
#define V_MAX(a, b) _mm512_max_pd(a, b)
#define V_MIN(a, b) _mm512_min_pd(a, b)
#endif
#if GEMM_SIMD && !defined(__AVX512F__)
#define V_T __m256d
#define M_T unsigned
#define V_ZERO() _mm256_setzero_pd()
#define V_SET1(x) _mm256_set1_pd(x)
#define V_LOAD(p) _mm256_loadu_pd(p)
#define V_MLOAD(m, p) _mm256_maskload_pd(p, gemm_lanes64(m))
#define V_STORE(p, v) _mm256_storeu_pd(p, v)
#define V_MSTORE(p, m, v) _mm256_maskstore_pd(p, gemm_lanes64(m), v)
#define V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define V_ADD(a, b) _mm256_add_pd(a, b)
#define V_MAX(a, b) _mm256_max_pd(a, b)
#define V_MIN(a, b) _mm256_min_pd(a, b)
#endif
#include "gemm.h"
#undef CONVFORGE_GEMM_TEMPLATE

#endif /* CONVFORGE_GEMM_H */

/* ======================= type-generic part (included twice) ======================= */
#if defined(CONVFORGE_GEMM_TEMPLATE)

#define GEMM_NR_T (GEMM_NV * GEMM_VL)

#if GEMM_SIMD
/* One mr x (nv vectors) tile over kc steps. mr, nv and masked are compile-time constants at every
   call site (always_inline + the switch below), so the loops unroll and acc[][] lives in registers.
   masked: the last vector holds fewer than GEMM_VL valid columns; its loads and stores use mlast.
   The epilogue's max(0, v) / min(6, v) return v when v is NaN (vmaxps/vminps return their second
   operand when either is NaN), so NaN propagates as IEEE arithmetic says. */
static inline __attribute__((always_inline)) void
GEMM_FN(gemm_tile)(const int mr, const int nv, const int masked, ptrdiff_t kc,
                   const GEMM_T *restrict a, ptrdiff_t lda, const GEMM_T *restrict b, ptrdiff_t ldb,
                   GEMM_T *restrict c, ptrdiff_t ldc, M_T mlast, int first, int last,
                   const GEMM_T *restrict bias, int act)
{
    V_T acc[GEMM_MR][GEMM_NV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) {
            if (first)
                acc[i][v] = V_ZERO();
            else if (masked && v == nv - 1)
                acc[i][v] = V_MLOAD(mlast, c + i * ldc + v * GEMM_VL);
            else
                acc[i][v] = V_LOAD(c + i * ldc + v * GEMM_VL);
        }
    const GEMM_T *ar[GEMM_MR];
    for (int i = 0; i < mr; i++)
        ar[i] = a + i * lda;
    /* All k steps but a masked tile's last read whole vectors of B: the lanes past the last column
       belong to the padded panel or to the next row of B (see gemm_block). Only the last step masks
       them: a masked load inside the loop would make GCC keep acc[][] in memory. */
    const ptrdiff_t kfull = masked ? kc - 1 : kc;
#pragma GCC unroll 2
    for (ptrdiff_t kk = 0; kk < kfull; kk++) {
        V_T bv[GEMM_NV];
        for (int v = 0; v < nv; v++)
            bv[v] = V_LOAD(b + v * GEMM_VL);
        for (int i = 0; i < mr; i++) {
            V_T av = V_SET1(ar[i][kk]);
            for (int v = 0; v < nv; v++)
                acc[i][v] = V_FMA(av, bv[v], acc[i][v]);
        }
        b += ldb;
    }
    if (masked) {
        V_T bv[GEMM_NV];
        for (int v = 0; v < nv; v++)
            bv[v] = v == nv - 1 ? V_MLOAD(mlast, b + v * GEMM_VL) : V_LOAD(b + v * GEMM_VL);
        for (int i = 0; i < mr; i++) {
            V_T av = V_SET1(ar[i][kc - 1]);
            for (int v = 0; v < nv; v++)
                acc[i][v] = V_FMA(av, bv[v], acc[i][v]);
        }
    }
    if (last) {
        const V_T zero = V_ZERO(), six = V_SET1((GEMM_T)6);
        for (int i = 0; i < mr; i++) {
            V_T bi = bias ? V_SET1(bias[i]) : zero;
            for (int v = 0; v < nv; v++) {
                V_T t = bias ? V_ADD(acc[i][v], bi) : acc[i][v];
                if (act >= 1) t = V_MAX(zero, t);
                if (act == 2) t = V_MIN(six, t);
                acc[i][v] = t;
            }
        }
    }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) {
            if (masked && v == nv - 1)
                V_MSTORE(c + i * ldc + v * GEMM_VL, mlast, acc[i][v]);
            else
                V_STORE(c + i * ldc + v * GEMM_VL, acc[i][v]);
        }
}

/* Pick the instance for mr rows and ncols (1..GEMM_NR_T) columns (the cases list GEMM_MR = 6 rows
   and up to 4 vectors, clamped to GEMM_NV; a static assertion at the top guards them). */
#define GEMM_NVC(v) ((v) < GEMM_NV ? (v) : GEMM_NV)
#define GEMM_TILE_CALL(MRC, NVC, MSK) \
    GEMM_FN(gemm_tile)(MRC, NVC, MSK, kc, a, lda, b, ldb, c, ldc, m, first, last, bias, act)
#define GEMM_TILE_NV(MRC)                                   \
    case MRC:                                               \
        if (!masked) GEMM_TILE_CALL(MRC, GEMM_NV, 0);       \
        else if (nv == 1) GEMM_TILE_CALL(MRC, 1, 1);        \
        else if (nv == 2) GEMM_TILE_CALL(MRC, 2, 1);        \
        else if (nv == 3) GEMM_TILE_CALL(MRC, GEMM_NVC(3), 1); \
        else GEMM_TILE_CALL(MRC, GEMM_NVC(4), 1);           \
        break;

static void GEMM_FN(gemm_micro)(int mr, int ncols, ptrdiff_t kc, const GEMM_T *a, ptrdiff_t lda,
                                const GEMM_T *b, ptrdiff_t ldb, GEMM_T *c, ptrdiff_t ldc,
                                int first, int last, const GEMM_T *bias, int act)
{
    const int masked = ncols < GEMM_NR_T;
    const int nv = (ncols + GEMM_VL - 1) / GEMM_VL;
    const int tail = ncols - (nv - 1) * GEMM_VL;
    const M_T m = (M_T)((1u << tail) - 1u);
    switch (mr) {
        GEMM_TILE_NV(1)
        GEMM_TILE_NV(2)
        GEMM_TILE_NV(3)
        GEMM_TILE_NV(4)
        GEMM_TILE_NV(5)
        GEMM_TILE_NV(6)
    }
}
#undef GEMM_TILE_NV
#undef GEMM_TILE_CALL
#undef GEMM_NVC

#else /* portable C micro-kernel: same tiles, same summation order per element */

static void GEMM_FN(gemm_micro)(int mr, int ncols, ptrdiff_t kc, const GEMM_T *a, ptrdiff_t lda,
                                const GEMM_T *b, ptrdiff_t ldb, GEMM_T *c, ptrdiff_t ldc,
                                int first, int last, const GEMM_T *bias, int act)
{
    GEMM_T acc[GEMM_MR][GEMM_NR_T];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < ncols; j++)
            acc[i][j] = first ? (GEMM_T)0 : c[i * ldc + j];
    for (ptrdiff_t kk = 0; kk < kc; kk++) {
        for (int i = 0; i < mr; i++) {
            const GEMM_T av = a[i * lda + kk];
            for (int j = 0; j < ncols; j++)
                acc[i][j] += av * b[j];
        }
        b += ldb;
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < ncols; j++) {
            GEMM_T t = acc[i][j];
            if (last) {
                if (bias) t += bias[i];
                if (act >= 1 && t < 0) t = 0;     /* comparisons with NaN are false: NaN stays */
                if (act == 2 && t > 6) t = 6;
            }
            c[i * ldc + j] = t;
        }
}

#endif /* GEMM_SIMD */

/* C (m x n) (+)= A (m x kc) @ B (kc x n) for one k block; see the top of the file for the layouts.
   Loop order: each A micro-panel (GEMM_MR x kc, L1) sweeps all B panels of the block (L2).
   Readable memory past the last column: rows 0 .. kc-2 of the last panel are read as whole vectors,
   up to GEMM_VL - 1 elements past column n-1. A packed B must therefore hold whole panels (its
   unused columns zero-filled, so that no garbage is computed on); a B read in place must have at
   least GEMM_VL - 1 more elements after each such row (the next row, when ldb >= GEMM_VL). */
static void GEMM_FN(gemm_block)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t kc,
                                const GEMM_T *a, ptrdiff_t lda,
                                const GEMM_T *b, ptrdiff_t ldb, ptrdiff_t bpanel,
                                GEMM_T *c, ptrdiff_t ldc, int first, int last,
                                const GEMM_T *bias, int act)
{
    for (ptrdiff_t i0 = 0; i0 < m; i0 += GEMM_MR) {
        const int mr = (int)(m - i0 < GEMM_MR ? m - i0 : GEMM_MR);
        for (ptrdiff_t j0 = 0, p = 0; j0 < n; j0 += GEMM_NR_T, p++) {
            const int ncols = (int)(n - j0 < GEMM_NR_T ? n - j0 : GEMM_NR_T);
            GEMM_FN(gemm_micro)(mr, ncols, kc, a + i0 * lda, lda, b + p * bpanel, ldb,
                                c + i0 * ldc + j0, ldc, first, last, bias ? bias + i0 : NULL, act);
        }
    }
}

/* Packing helper for B: dst[t] = src[t] for lo <= t < hi and 0 elsewhere, for 0 <= t < n.
   src[t] is only read for t in [lo, hi) (src itself may point before or after the array: a run of
   im2col columns that starts or ends in the padding). With AVX-512 a run is a few masked vector
   moves, whatever its length: im2col's runs are short (one output row of a panel) and many. */
static inline void GEMM_FN(gemm_copy_run)(GEMM_T *restrict dst, const GEMM_T *restrict src,
                                          ptrdiff_t n, ptrdiff_t lo, ptrdiff_t hi)
{
#if GEMM_SIMD
    if (lo <= 0 && hi >= n) {                     /* inside the input: a plain copy */
        ptrdiff_t t0 = 0;
        for (; t0 + GEMM_VL <= n; t0 += GEMM_VL)
            V_STORE(dst + t0, V_LOAD(src + t0));
        if (t0 < n) {
            const M_T m = (M_T)((1u << (n - t0)) - 1u);
            V_MSTORE(dst + t0, m, V_MLOAD(m, src + t0));
        }
        return;
    }
    for (ptrdiff_t t0 = 0; t0 < n; t0 += GEMM_VL) {
        const ptrdiff_t rem = n - t0 < GEMM_VL ? n - t0 : GEMM_VL;
        ptrdiff_t a = lo - t0, b = hi - t0;
        a = a < 0 ? 0 : (a > GEMM_VL ? GEMM_VL : a);
        b = b < 0 ? 0 : (b > GEMM_VL ? GEMM_VL : b);
        const M_T mstore = (M_T)((1u << rem) - 1u);
        const M_T mload = b > a ? (M_T)(((1u << b) - 1u) & ~((1u << a) - 1u)) : (M_T)0;
        V_MSTORE(dst + t0, mstore, V_MLOAD(mload, src + t0));
    }
#else
    for (ptrdiff_t t = 0; t < n; t++)
        dst[t] = (t >= lo && t < hi) ? src[t] : (GEMM_T)0;
#endif
}

#undef GEMM_NR_T
#endif /* CONVFORGE_GEMM_TEMPLATE */
