/* pooling.h: per-plane kernels of max / average pooling, the plane mean and local response
 * normalisation, for float and double. kernels/cpu/pooling.pyx runs them in parallel over the
 * (n, c) planes; each output element is computed by one thread in a fixed order, so the result does
 * not depend on the thread count.
 *
 * Pooling is separable and memory-bound, so a plane is processed one output row at a time, all in L1:
 *   1. vertical: the valid input rows of the window are combined elementwise (max or sum) into a row
 *      buffer that carries the left/right padding as -inf (max) or 0 (sum);
 *   2. for stride sw > 1 the buffer is split into sw phases (phase b holds columns b, b+sw, ...), so
 *      that every tap s of the horizontal window reads one phase contiguously;
 *   3. horizontal: y[q] = combine over s of tap_s[q], the first three taps fused in one pass.
 * Fast paths: the 2x2 and 3x3 stride-2 windows (VGG, AlexNet, ResNet) skip step 2 and read the row
 * with stride 2 in one fused pass, and an unpadded 2x2 stride-2 window reads its two input rows
 * directly (no row buffer); stride 1 in both axes (Inception's 3x3 s1 p1) runs each step over
 * the whole plane as one long loop; a window covering a whole unpadded plane (ResNet's 7x7 average)
 * is the plane mean, summed in float64 with AVX-512 and masked tail loads.
 * Every loop is contiguous and elementwise, so GCC vectorises it with AVX-512. Max pooling
 * propagates NaN as PyTorch does (a NaN tap wins over any number); since that compare-and-blend costs
 * four instructions where a plain max costs one, each plane is first scanned for NaN (one vectorised
 * read, in cache for the pass that follows) and only planes holding one take the NaN-aware combine.
 */
#ifndef CONVFORGE_POOLING_H
#define CONVFORGE_POOLING_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef ptrdiff_t cf_idx;

/* m combined with a new value x: x wins when larger or NaN, so a NaN once taken stays. */
#define CF_NMAX(m, x) ((((x) > (m)) || ((x) != (x))) ? (x) : (m))

/* Row-buffer layout of one plane: L0 columns are touched by the windows (left padding, the input,
 * right padding and the ceil_mode overhang); Lp = ceil(L0 / sw) per phase; the buffer holds
 * sw * Lp row columns followed by sw * Lp phase columns. */
static inline cf_idx cf_pool_phase_len(cf_idx W, cf_idx Q, cf_idx kw, cf_idx sw, cf_idx pw, cf_idx dw)
{
    cf_idx l0 = (Q - 1) * sw + (kw - 1) * dw + 1;
    if (pw + W > l0) l0 = pw + W;
    return (l0 + sw - 1) / sw;
}

/* Workspace of one thread, in elements: the row buffer and its phases, or for stride 1 in both axes
 * the whole-plane vertical result and horizontal staging (P x W each). */
static inline cf_idx cf_pool_workspace(cf_idx W, cf_idx P, cf_idx Q, cf_idx kw, cf_idx sh, cf_idx sw,
                                       cf_idx pw, cf_idx dw)
{
    cf_idx rows = 2 * sw * cf_pool_phase_len(W, Q, kw, sw, pw, dw);
    cf_idx plane = (sh == 1 && sw == 1) ? 2 * P * W : 0;
    return rows > plane ? rows : plane;
}

/* Taps counted by the average's divisor along one axis, for output index o (PyTorch's rule). */
static inline cf_idx cf_avg_count(cf_idx o, cf_idx n, cf_idx f, cf_idx s, cf_idx pad, int include_pad)
{
    cf_idx start = o * s - pad, end = start + f;
    if (end > n + pad) end = n + pad;
    if (!include_pad) {
        if (start < 0) start = 0;
        if (end > n) end = n;
    }
    return end - start;
}

#if defined(__AVX512F__)
#include <immintrin.h>
/* Sum of n floats / doubles in float64: 16 elements a step into two 8-lane accumulators. */
static inline double cf_sum16_f32(const float *restrict x, cf_idx n)
{
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    cf_idx i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)));
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}
static inline double cf_sum16_f64(const double *restrict x, cf_idx n)
{
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    cf_idx i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm512_add_pd(a0, _mm512_loadu_pd(x + i));
        a1 = _mm512_add_pd(a1, _mm512_loadu_pd(x + i + 8));
    }
    if (i < n) {
        unsigned r = (unsigned)(n - i);
        __mmask8 m0 = (__mmask8)(r >= 8 ? 0xFFu : (1u << r) - 1u);
        __mmask8 m1 = (__mmask8)(r > 8 ? (1u << (r - 8)) - 1u : 0u);
        a0 = _mm512_add_pd(a0, _mm512_maskz_loadu_pd(m0, x + i));
        a1 = _mm512_add_pd(a1, _mm512_maskz_loadu_pd(m1, x + i + 8));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}
#else
/* Sum of n values in float64: 16 lanes (vectorisable), then added pairwise. */
#define CF_DEFINE_SUM16(T, SFX)                                                                      \
static inline double cf_sum16_##SFX(const T *restrict x, cf_idx n)                                   \
{                                                                                                    \
    double lane[16] = {0};                                                                           \
    cf_idx i = 0;                                                                                    \
    for (; i + 16 <= n; i += 16)                                                                     \
        for (int l = 0; l < 16; l++) lane[l] += (double)x[i + l];                                    \
    for (int l = 0; i + l < n; l++) lane[l] += (double)x[i + l];                                     \
    for (int w = 8; w >= 1; w /= 2)                                                                  \
        for (int l = 0; l < w; l++) lane[l] += lane[l + w];                                          \
    return lane[0];                                                                                  \
}
CF_DEFINE_SUM16(float, f32)
CF_DEFINE_SUM16(double, f64)
#endif

/* The three elementwise combines of a window, chosen per plane: a sum (average pooling), a plain max
 * (one vmaxps; a NaN among the new values would be dropped, so it runs on NaN-free planes only) and the
 * NaN-propagating max (PyTorch's rule, for planes that hold a NaN). */
enum { CF_SUM = 0, CF_MAX = 1, CF_NANMAX = 2 };
#define CF_OP_SUM(m, x) ((m) + (x))
#define CF_OP_MAX(m, x) (((x) > (m)) ? (x) : (m))
#define CF_OP_NANMAX(m, x) CF_NMAX(m, x)

/* comb2: dst = OP(a, b); comb3: dst = OP(OP(a, b), c); acc: dst = OP(dst, a), elementwise over n. */
#define CF_DEFINE_COMBINE(T, SFX, NAME, OP)                                                          \
static inline void cf_comb2_##NAME##_##SFX(T *restrict dst, const T *restrict a, const T *restrict b, \
                                           cf_idx n)                                                 \
{                                                                                                    \
    for (cf_idx i = 0; i < n; i++) { T m = a[i], x = b[i]; dst[i] = OP(m, x); }                      \
}                                                                                                    \
static inline void cf_comb3_##NAME##_##SFX(T *restrict dst, const T *restrict a, const T *restrict b, \
                                           const T *restrict c, cf_idx n)                            \
{                                                                                                    \
    for (cf_idx i = 0; i < n; i++) {                                                                 \
        T m = a[i], x = b[i], z = c[i];                                                              \
        m = OP(m, x);                                                                                \
        dst[i] = OP(m, z);                                                                           \
    }                                                                                                \
}                                                                                                    \
static inline void cf_acc_##NAME##_##SFX(T *restrict dst, const T *restrict a, cf_idx n)            \
{                                                                                                    \
    for (cf_idx i = 0; i < n; i++) { T m = dst[i], x = a[i]; dst[i] = OP(m, x); }                    \
}                                                                                                    \
/* The stride-2 horizontal windows of 2 and 3 taps read straight from the row (GCC vectorises the    \
 * stride-2 loads with permutes): dst[q] = OP over s of a[2q + s]. */                                \
static inline void cf_h2s2_##NAME##_##SFX(T *restrict dst, const T *restrict a, cf_idx n)           \
{                                                                                                    \
    for (cf_idx q = 0; q < n; q++) { T m = a[2 * q], x = a[2 * q + 1]; dst[q] = OP(m, x); }          \
}                                                                                                    \
static inline void cf_h3s2_##NAME##_##SFX(T *restrict dst, const T *restrict a, cf_idx n)           \
{                                                                                                    \
    for (cf_idx q = 0; q < n; q++) {                                                                 \
        T m = a[2 * q], x = a[2 * q + 1], z = a[2 * q + 2];                                          \
        m = OP(m, x);                                                                                \
        dst[q] = OP(m, z);                                                                           \
    }                                                                                                \
}

/* The whole 2x2 stride-2 window from two input rows a, b in one pass (no row buffer); sum and plain
 * max only (GCC leaves it scalar with the NaN-aware combine). */
#define CF_DEFINE_W22S2(T, SFX, NAME, OP)                                                            \
static inline void cf_w22s2_##NAME##_##SFX(T *restrict dst, const T *restrict a, const T *restrict b, \
                                           cf_idx n)                                                 \
{                                                                                                    \
    for (cf_idx q = 0; q < n; q++) {                                                                 \
        T m0 = a[2 * q], m1 = a[2 * q + 1], m2 = b[2 * q], m3 = b[2 * q + 1];                        \
        m0 = OP(m0, m1);                                                                             \
        m2 = OP(m2, m3);                                                                             \
        dst[q] = OP(m0, m2);                                                                         \
    }                                                                                                \
}

#define CF_DEFINE_POOL(T, SFX, ACC, SQRT, POW, UINT, ABSMASK, INFBITS)                                                       \
CF_DEFINE_COMBINE(T, SFX, sum, CF_OP_SUM)                                                            \
CF_DEFINE_COMBINE(T, SFX, max, CF_OP_MAX)                                                            \
CF_DEFINE_COMBINE(T, SFX, nanmax, CF_OP_NANMAX)                                                      \
CF_DEFINE_W22S2(T, SFX, sum, CF_OP_SUM)                                                              \
CF_DEFINE_W22S2(T, SFX, max, CF_OP_MAX)                                                              \
static inline void cf_comb2_##SFX(int op, T *restrict dst, const T *a, const T *b, cf_idx n)         \
{                                                                                                    \
    if (op == CF_SUM) cf_comb2_sum_##SFX(dst, a, b, n);                                              \
    else if (op == CF_MAX) cf_comb2_max_##SFX(dst, a, b, n);                                         \
    else cf_comb2_nanmax_##SFX(dst, a, b, n);                                                        \
}                                                                                                    \
static inline void cf_comb3_##SFX(int op, T *restrict dst, const T *a, const T *b, const T *c,       \
                                  cf_idx n)                                                          \
{                                                                                                    \
    if (op == CF_SUM) cf_comb3_sum_##SFX(dst, a, b, c, n);                                           \
    else if (op == CF_MAX) cf_comb3_max_##SFX(dst, a, b, c, n);                                      \
    else cf_comb3_nanmax_##SFX(dst, a, b, c, n);                                                     \
}                                                                                                    \
static inline void cf_acc_##SFX(int op, T *restrict dst, const T *a, cf_idx n)                       \
{                                                                                                    \
    if (op == CF_SUM) cf_acc_sum_##SFX(dst, a, n);                                                   \
    else if (op == CF_MAX) cf_acc_max_##SFX(dst, a, n);                                              \
    else cf_acc_nanmax_##SFX(dst, a, n);                                                             \
}                                                                                                    \
static inline void cf_hs2_##SFX(int op, cf_idx kw, T *restrict dst, const T *a, cf_idx n)          \
{                                                                                                    \
    if (kw == 2) {                                                                                   \
        if (op == CF_SUM) cf_h2s2_sum_##SFX(dst, a, n);                                              \
        else if (op == CF_MAX) cf_h2s2_max_##SFX(dst, a, n);                                         \
        else cf_h2s2_nanmax_##SFX(dst, a, n);                                                        \
    } else {                                                                                         \
        if (op == CF_SUM) cf_h3s2_sum_##SFX(dst, a, n);                                              \
        else if (op == CF_MAX) cf_h3s2_max_##SFX(dst, a, n);                                         \
        else cf_h3s2_nanmax_##SFX(dst, a, n);                                                        \
    }                                                                                                \
}                                                                                                    \
static inline void cf_w22s2_##SFX(int op, T *restrict dst, const T *a, const T *b, cf_idx n)        \
{                                                                                                    \
    if (op == CF_SUM) cf_w22s2_sum_##SFX(dst, a, b, n);                                              \
    else cf_w22s2_max_##SFX(dst, a, b, n);                                                           \
}                                                                                                    \
/* Whether any of n values is NaN: the largest magnitude bit pattern exceeds infinity's. An integer   \
 * max reduction (one and + one max a vector, no early exit), since integer max reassociates. */     \
static inline int cf_has_nan_##SFX(const T *restrict x, cf_idx n)                                    \
{                                                                                                    \
    const UINT *restrict u = (const UINT *)x;                                                        \
    UINT top = 0;                                                                                    \
    for (cf_idx i = 0; i < n; i++) { UINT m = u[i] & ABSMASK; top = m > top ? m : top; }             \
    return top > INFBITS;                                                                            \
}                                                                                                    \
                                                                                                     \
/* A streaming reduction of rows (each n long) into dst: the first three rows are combined in one     \
 * fused pass, every later row in place. st->nf counts the rows held back, st->started whether dst   \
 * holds a partial result. */                                                                        \
typedef struct { const T *first[3]; int nf, started; } cf_reducer_##SFX;                             \
static inline void cf_feed_##SFX(cf_reducer_##SFX *st, int op, T *restrict dst, const T *row,        \
                                 cf_idx n)                                                           \
{                                                                                                    \
    if (st->started) { cf_acc_##SFX(op, dst, row, n); return; }                                      \
    st->first[st->nf++] = row;                                                                       \
    if (st->nf == 3) {                                                                               \
        cf_comb3_##SFX(op, dst, st->first[0], st->first[1], st->first[2], n);                        \
        st->started = 1;                                                                             \
    }                                                                                                \
}                                                                                                    \
/* Finish a reduction of fewer than three rows; no row at all leaves `fill`. */                      \
static inline void cf_finish_##SFX(cf_reducer_##SFX *st, int op, T *restrict dst, cf_idx n, T fill)  \
{                                                                                                    \
    if (st->started) return;                                                                         \
    if (st->nf == 2) {                                                                               \
        cf_comb2_##SFX(op, dst, st->first[0], st->first[1], n);                                      \
    } else if (st->nf == 1) {                                                                        \
        memcpy(dst, st->first[0], (size_t)n * sizeof(T));                                            \
    } else {                                                                                         \
        for (cf_idx i = 0; i < n; i++) dst[i] = fill;                                                \
    }                                                                                                \
}                                                                                                    \
                                                                                                     \
/* The average's divisor: row count hc times each column's count wdiv[q]. */                       \
static inline void cf_avg_divide_##SFX(T *restrict yr, cf_idx Q, T hc, const T *restrict wdiv)       \
{                                                                                                    \
    for (cf_idx q = 0; q < Q; q++) yr[q] = yr[q] / (hc * wdiv[q]);                                   \
}                                                                                                    \
                                                                                                     \
/* One output element of a stride-1 horizontal window from vertical row v (W long), clipped to the   \
 * row: the edge columns the whole-plane pass leaves. */                                             \
static inline T cf_edge_##SFX(int op, const T *restrict v, cf_idx W, cf_idx q, cf_idx kw, cf_idx pw, \
                              cf_idx dw, T fill)                                                     \
{                                                                                                    \
    T m = fill;                                                                                      \
    int any = 0;                                                                                     \
    for (cf_idx s = 0; s < kw; s++) {                                                                \
        cf_idx c = q - pw + s * dw;                                                                  \
        if (c < 0 || c >= W) continue;                                                               \
        T x = v[c];                                                                                  \
        if (!any) m = x;                                                                             \
        else if (op == CF_SUM) m = CF_OP_SUM(m, x);                                                  \
        else if (op == CF_MAX) m = CF_OP_MAX(m, x);                                                  \
        else m = CF_OP_NANMAX(m, x);                                                                 \
        any = 1;                                                                                     \
    }                                                                                                \
    return m;                                                                                        \
}                                                                                                    \
                                                                                                     \
/* Stride 1 in both axes (Inception's 3x3 s1 p1 pools on 28x28 .. 7x7 planes): rows of a plane are    \
 * contiguous, so the vertical pass over all rows whose window lies inside the input is one long      \
 * loop, and so is the horizontal pass over the whole plane; the columns whose window wraps into the  \
 * neighbouring row (the padding edges) are then recomputed one by one. ws: 2 * P * W elements. */    \
static void cf_pool_plane_s1_##SFX(const T *restrict x, T *restrict y, int op, int include_pad,      \
                                   cf_idx H, cf_idx W, cf_idx P, cf_idx Q, cf_idx kh, cf_idx kw,     \
                                   cf_idx ph, cf_idx pw, cf_idx dh, cf_idx dw,                       \
                                   const T *restrict wdiv, T *restrict ws)                           \
{                                                                                                    \
    const T fill = op == CF_SUM ? (T)0 : (T)(-INFINITY);                                             \
    T *restrict v = ws, *restrict t = (Q == W) ? y : ws + P * W;                                     \
    cf_idx p, q, r, s;                                                                               \
    /* vertical, rows p in [ph, P - ph) in one pass: row p reads x rows p - ph + r*dh */             \
    if (P > 2 * ph) {                                                                                \
        cf_reducer_##SFX st = {{0, 0, 0}, 0, 0};                                                     \
        for (r = 0; r < kh; r++) cf_feed_##SFX(&st, op, v + ph * W, x + r * dh * W, (P - 2 * ph) * W); \
        cf_finish_##SFX(&st, op, v + ph * W, (P - 2 * ph) * W, fill);                                \
    }                                                                                                \
    for (p = 0; p < P; p++) {                                                                        \
        if (p >= ph && p < P - ph) continue;                                                         \
        cf_reducer_##SFX st = {{0, 0, 0}, 0, 0};                                                     \
        for (r = 0; r < kh; r++) {                                                                   \
            cf_idx ih = p - ph + r * dh;                                                             \
            if (ih >= 0 && ih < H) cf_feed_##SFX(&st, op, v + p * W, x + ih * W, W);                 \
        }                                                                                            \
        cf_finish_##SFX(&st, op, v + p * W, W, fill);                                                \
    }                                                                                                \
    /* horizontal over the flat plane: t[i] = OP over s of v[i - pw + s*dw], i in [pw, P*W - span + pw) */ \
    const cf_idx span = (kw - 1) * dw, lo = pw, hi = P * W - span + pw;                              \
    if (hi > lo) {                                                                                   \
        cf_reducer_##SFX st = {{0, 0, 0}, 0, 0};                                                     \
        for (s = 0; s < kw; s++) cf_feed_##SFX(&st, op, t + lo, v + s * dw, hi - lo);                \
        cf_finish_##SFX(&st, op, t + lo, hi - lo, fill);                                             \
    }                                                                                                \
    /* per row: columns [pw, Q - pw) come from the flat pass, the others are recomputed */           \
    cf_idx qa = pw, qb = Q - pw;                                                                     \
    if (qb <= qa || hi <= lo) { qa = 0; qb = 0; }                                                    \
    for (p = 0; p < P; p++) {                                                                        \
        T *restrict yr = y + p * Q;                                                                  \
        if (Q != W && qb > qa) memcpy(yr + qa, t + p * W + qa, (size_t)(qb - qa) * sizeof(T));       \
        for (q = 0; q < qa; q++) yr[q] = cf_edge_##SFX(op, v + p * W, W, q, kw, pw, dw, fill);        \
        for (q = qb; q < Q; q++) yr[q] = cf_edge_##SFX(op, v + p * W, W, q, kw, pw, dw, fill);        \
        if (op == CF_SUM) cf_avg_divide_##SFX(yr, Q, (T)cf_avg_count(p, H, kh, 1, ph, include_pad), wdiv); \
    }                                                                                                \
}                                                                                                    \
                                                                                                     \
/* One (n, c) plane: x (H, W) -> y (P, Q). ws: cf_pool_workspace(...) elements, per thread.          \
 * wdiv (Q): the horizontal divisor counts of the average (unused for max). */                      \
static void cf_pool_plane_##SFX(const T *restrict x, T *restrict y, int is_max, int include_pad,    \
                                cf_idx H, cf_idx W, cf_idx P, cf_idx Q, cf_idx kh, cf_idx kw,        \
                                cf_idx sh, cf_idx sw, cf_idx ph, cf_idx pw, cf_idx dh, cf_idx dw,    \
                                const T *restrict wdiv, T *restrict ws)                              \
{                                                                                                    \
    const T fill = is_max ? (T)(-INFINITY) : (T)0;                                                   \
    const int op = !is_max ? CF_SUM : cf_has_nan_##SFX(x, H * W) ? CF_NANMAX : CF_MAX;                \
    if (sh == 1 && sw == 1) {                                                                        \
        cf_pool_plane_s1_##SFX(x, y, op, include_pad, H, W, P, Q, kh, kw, ph, pw, dh, dw, wdiv, ws); \
        return;                                                                                      \
    }                                                                                                \
    /* VGG's 2x2 stride-2 window without padding or ceil_mode overhang: straight from the input     \
     * (NaN planes take the row path below) */                                                      \
    if (op != CF_NANMAX && kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0            \
        && dh == 1 && dw == 1 && 2 * P <= H && 2 * Q <= W) {                                         \
        for (cf_idx p = 0; p < P; p++) {                                                             \
            cf_w22s2_##SFX(op, y + p * Q, x + 2 * p * W, x + (2 * p + 1) * W, Q);                    \
            if (!is_max) cf_avg_divide_##SFX(y + p * Q, Q, (T)2, wdiv);                              \
        }                                                                                            \
        return;                                                                                      \
    }                                                                                                \
    const cf_idx Lp = cf_pool_phase_len(W, Q, kw, sw, pw, dw), L = sw * Lp;                          \
    T *restrict row = ws, *restrict phase = ws + L;                                                  \
    cf_idx i;                                                                                        \
    /* the padding columns of the row buffer never change within a plane */                          \
    for (i = 0; i < pw; i++) row[i] = fill;                                                          \
    for (i = pw + W; i < L; i++) row[i] = fill;                                                      \
    for (cf_idx p = 0; p < P; p++) {                                                                 \
        T *restrict yr = y + p * Q;                                                                  \
        /* 1. vertical: combine the window's rows that lie inside the input */                       \
        cf_reducer_##SFX v = {{0, 0, 0}, 0, 0};                                                      \
        for (cf_idx r = 0; r < kh; r++) {                                                            \
            cf_idx ih = p * sh - ph + r * dh;                                                        \
            if (ih >= 0 && ih < H) cf_feed_##SFX(&v, op, row + pw, x + ih * W, W);               \
        }                                                                                            \
        cf_finish_##SFX(&v, op, row + pw, W, fill);                                              \
        /* 2-3. the common 2x2 / 3x3 stride-2 windows: one fused horizontal pass */                  \
        if (sw == 2 && dw == 1 && (kw == 2 || kw == 3)) {                                            \
            cf_hs2_##SFX(op, kw, yr, row, Q);                                                        \
            if (!is_max) cf_avg_divide_##SFX(yr, Q, (T)cf_avg_count(p, H, kh, sh, ph, include_pad), wdiv); \
            continue;                                                                                \
        }                                                                                            \
        /* 2. split into stride phases, so that each tap reads contiguously */                       \
        const T *src = row;                                                                          \
        if (sw == 2) {                                                                               \
            T *restrict ev = phase, *restrict od = phase + Lp;                                       \
            for (i = 0; i < Lp; i++) { ev[i] = row[2 * i]; od[i] = row[2 * i + 1]; }                 \
            src = phase;                                                                             \
        } else if (sw > 2) {                                                                         \
            for (cf_idx b = 0; b < sw; b++) {                                                        \
                T *restrict dst = phase + b * Lp;                                                    \
                for (i = 0; i < Lp; i++) dst[i] = row[i * sw + b];                                   \
            }                                                                                        \
            src = phase;                                                                             \
        }                                                                                            \
        /* 3. horizontal: tap s starts at column s*dw = a*sw + b, i.e. phase b, offset a */          \
        cf_reducer_##SFX h = {{0, 0, 0}, 0, 0};                                                      \
        for (cf_idx s = 0; s < kw; s++) {                                                            \
            cf_idx off = s * dw;                                                                     \
            cf_feed_##SFX(&h, op, yr, src + (off % sw) * Lp + off / sw, Q);                      \
        }                                                                                            \
        cf_finish_##SFX(&h, op, yr, Q, fill);                                                    \
        /* the average divides by the counted taps: rows of this window times its columns */        \
        if (!is_max) cf_avg_divide_##SFX(yr, Q, (T)cf_avg_count(p, H, kh, sh, ph, include_pad), wdiv); \
    }                                                                                                \
}                                                                                                    \
                                                                                                     \
/* Mean of n contiguous values, summed in ACC. The sum order is fixed by n alone (never by alignment or \
 * threads): with AVX-512, two 8-lane double accumulators over 16-element steps, a masked load for     \
 * the tail and the lanes added by the fixed reduction; without it, 16 lanes added pairwise. */       \
static inline T cf_plane_mean_##SFX(const T *restrict x, cf_idx n)                                   \
{                                                                                                    \
    return (T)(cf_sum16_##SFX(x, n) / (ACC)n);                                                       \
}                                                                                                    \
                                                                                                     \
/* Local response normalisation of channel c of one sample xs (C, HW) into yc (HW):                  \
 * yc = x_c / (k + alpha/size * sum_{c' in window} x_c'^2) ** beta, window c - size/2 ..             \
 * c + (size-1)/2 clipped to [0, C) (zero padding). ws: HW elements. beta 0.75, 0.5 and 1 avoid pow. */ \
static void cf_lrn_plane_##SFX(const T *restrict xs, T *restrict yc, cf_idx c, cf_idx C, cf_idx HW,  \
                               cf_idx size, double alpha, double beta, double k, T *restrict ws)     \
{                                                                                                    \
    cf_idx lo = c - size / 2, hi = c + (size - 1) / 2, i;                                            \
    if (lo < 0) lo = 0;                                                                              \
    if (hi > C - 1) hi = C - 1;                                                                      \
    {                                                                                                \
        const T *restrict a = xs + lo * HW;                                                          \
        for (i = 0; i < HW; i++) ws[i] = a[i] * a[i];                                                \
    }                                                                                                \
    for (cf_idx cc = lo + 1; cc <= hi; cc++) {                                                       \
        const T *restrict a = xs + cc * HW;                                                          \
        for (i = 0; i < HW; i++) ws[i] += a[i] * a[i];                                               \
    }                                                                                                \
    const T *restrict xc = xs + c * HW;                                                              \
    const T scale = (T)(alpha / (double)size), kk = (T)k;                                            \
    if (beta == 0.75) {                                                                              \
        for (i = 0; i < HW; i++) { T d = kk + scale * ws[i]; yc[i] = xc[i] / SQRT(d * SQRT(d)); }    \
    } else if (beta == 0.5) {                                                                        \
        for (i = 0; i < HW; i++) { T d = kk + scale * ws[i]; yc[i] = xc[i] / SQRT(d); }              \
    } else if (beta == 1.0) {                                                                        \
        for (i = 0; i < HW; i++) { T d = kk + scale * ws[i]; yc[i] = xc[i] / d; }                    \
    } else {                                                                                         \
        const T bb = (T)beta;                                                                        \
        for (i = 0; i < HW; i++) { T d = kk + scale * ws[i]; yc[i] = xc[i] / POW(d, bb); }           \
    }                                                                                                \
}

CF_DEFINE_POOL(float, f32, double, sqrtf, powf, uint32_t, 0x7fffffffu, 0x7f800000u)
CF_DEFINE_POOL(double, f64, double, sqrt, pow, uint64_t, 0x7fffffffffffffffull, 0x7ff0000000000000ull)

#endif
