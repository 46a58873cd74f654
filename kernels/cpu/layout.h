/* layout.h: conversions between NCHW and the channel-blocked layout (NCHW16c with a zero halo), float32.

   The blocked layout (kernels/blocked.py has the whole contract): an (N, C, H, W) activation is held
   as (N, Cb, H + 2h, W + 2h, 16), Cb = ceil(C / 16), 16 channels innermost, a frame of h zero rows
   and columns around every plane, and the lanes of channels >= C zero.

   What it computes:
     to_blocked:   y[n, cb, h + i, h + j, l] = x[n, cb*16 + l, i, j]  (0 where cb*16 + l >= C), frame 0
     from_blocked: x[n, c, i, j] = y[n, c / 16, h + i, h + j, c % 16]
     pad_nchw:     y[n, c, h + i, h + j] = x[n, c, i, j], frame 0  (the NCHW stem's zero-padded input)
   How: the unit of work is one output row. A row is cut into tiles of 16 channels x 16 pixels; a
   tile is loaded as 16 channel rows of 16 pixels (masked at the row's end, zero rows for the padded
   channels), transposed in registers and stored as 16 pixel vectors (and the reverse for
   from_blocked). AVX-512: one zmm per row, a 4-stage unpack/shuffle transpose; AVX2: the tile as
   four 8 x 8 ymm transposes; the generic build: the same tile as a plain loop. Pure data movement:
   no arithmetic on the values, so NaN payloads and signed zeros pass unchanged.

   fingerprint: two 64-bit sums over the 32-bit words of an array (the weight cache's check that an
   array still holds what was packed; kernels/blocked_route.py says why it is enough):
     s1 = sum_i u_i,   s2 = sum_i (v_i * (v_i | 1) mod 2^32),  v_i = u_i ^ (i * 0x9E3779B1 mod 2^32),
   both sums mod 2^64, computed per chunk of FP_CHUNK words; sums mod 2^64 are exact in any order,
   so the result does not depend on how chunks are spread over threads. Integer arithmetic only.
*/
#ifndef CONVFORGE_LAYOUT_H
#define CONVFORGE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#define LBL 16                       /* lanes of a block */
#define FP_CHUNK ((ptrdiff_t)1 << 16) /* words per fingerprint chunk */

/* ---------------------------------------------------------------- 16 x 16 tiles */

#if defined(__AVX512F__)

/* r[i][j] -> r[j][i] for a 16 x 16 tile in 16 zmm. */
static inline void lay_t16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {                 /* pairs of rows, 32-bit interleave */
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {                 /* quads of rows: u[4i+k] holds column k of each lane */
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {                 /* a 4 x 4 transpose of 128-bit lanes per column k */
        const __m512 s0 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x44);
        const __m512 s1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xEE);
        const __m512 s2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x44);
        const __m512 s3 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xEE);
        r[k] = _mm512_shuffle_f32x4(s0, s2, 0x88);
        r[4 + k] = _mm512_shuffle_f32x4(s0, s2, 0xDD);
        r[8 + k] = _mm512_shuffle_f32x4(s1, s3, 0x88);
        r[12 + k] = _mm512_shuffle_f32x4(s1, s3, 0xDD);
    }
}

/* Channel rows x[c * xc + j] (c < nc, j < npx) -> pixel vectors y[j * 16 + c], lanes c >= nc zero. */
static inline void lay_tile_in(const float *restrict x, ptrdiff_t xc, int nc, int npx, float *restrict y)
{
    const __mmask16 m = (__mmask16)(npx >= 16 ? 0xFFFF : (1u << npx) - 1);
    __m512 r[16];
    for (int c = 0; c < 16; c++) r[c] = c < nc ? _mm512_maskz_loadu_ps(m, x + c * xc) : _mm512_setzero_ps();
    lay_t16(r);
    for (int j = 0; j < npx; j++) _mm512_storeu_ps(y + j * LBL, r[j]);
}

/* Pixel vectors x[j * 16 + c] (j < npx) -> channel rows y[c * yc + j] (c < nc). */
static inline void lay_tile_out(const float *restrict x, int npx, int nc, float *restrict y, ptrdiff_t yc)
{
    const __mmask16 m = (__mmask16)(npx >= 16 ? 0xFFFF : (1u << npx) - 1);
    __m512 r[16];
    for (int j = 0; j < 16; j++) r[j] = j < npx ? _mm512_loadu_ps(x + j * LBL) : _mm512_setzero_ps();
    lay_t16(r);
    for (int c = 0; c < nc; c++) _mm512_mask_storeu_ps(y + c * yc, m, r[c]);
}

#elif defined(__AVX2__)

/* r[i][j] -> r[j][i] for an 8 x 8 tile in 8 ymm. */
static inline void lay_t8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x20);
        r[4 + k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x31);
    }
}

static inline __m256i lay_mask8(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The 16 x 16 tile as four 8 x 8 quarters: channel half a, pixel half b. */
static inline void lay_tile_in(const float *restrict x, ptrdiff_t xc, int nc, int npx, float *restrict y)
{
    for (int b = 0; b < 2; b++) {
        const int n = npx - 8 * b > 8 ? 8 : npx - 8 * b;
        if (n <= 0) break;
        const __m256i m = lay_mask8(n);
        for (int a = 0; a < 2; a++) {
            __m256 r[8];
            for (int c = 0; c < 8; c++)
                r[c] = 8 * a + c < nc ? _mm256_maskload_ps(x + (8 * a + c) * xc + 8 * b, m) : _mm256_setzero_ps();
            lay_t8(r);
            for (int j = 0; j < n; j++) _mm256_storeu_ps(y + (8 * b + j) * LBL + 8 * a, r[j]);
        }
    }
}

static inline void lay_tile_out(const float *restrict x, int npx, int nc, float *restrict y, ptrdiff_t yc)
{
    for (int b = 0; b < 2; b++) {
        const int n = npx - 8 * b > 8 ? 8 : npx - 8 * b;
        if (n <= 0) break;
        const __m256i m = lay_mask8(n);
        for (int a = 0; a < 2 && 8 * a < nc; a++) {
            __m256 r[8];
            for (int j = 0; j < 8; j++)
                r[j] = j < n ? _mm256_loadu_ps(x + (8 * b + j) * LBL + 8 * a) : _mm256_setzero_ps();
            lay_t8(r);
            for (int c = 0; c < 8 && 8 * a + c < nc; c++) _mm256_maskstore_ps(y + (8 * a + c) * yc + 8 * b, m, r[c]);
        }
    }
}

#else

static inline void lay_tile_in(const float *restrict x, ptrdiff_t xc, int nc, int npx, float *restrict y)
{
    for (int j = 0; j < npx; j++)
        for (int c = 0; c < LBL; c++) y[j * LBL + c] = c < nc ? x[c * xc + j] : 0.0f;
}

static inline void lay_tile_out(const float *restrict x, int npx, int nc, float *restrict y, ptrdiff_t yc)
{
    for (int c = 0; c < nc; c++)
        for (int j = 0; j < npx; j++) y[c * yc + j] = x[j * LBL + c];
}

#endif

/* ---------------------------------------------------------------- rows */

/* One row of a blocked plane, `yrow` at its first (frame) pixel, W + 2h pixels; `x` at channel
   cb*16's input row, nc = the block's real channels, xc the channel stride of x. A frame row
   (x == NULL) is all zeros. */
static void lay_to_blocked_row(const float *x, ptrdiff_t xc, int nc, ptrdiff_t W, ptrdiff_t h, float *yrow)
{
    if (x == NULL) {
        memset(yrow, 0, (size_t)(W + 2 * h) * LBL * sizeof(float));
        return;
    }
    memset(yrow, 0, (size_t)h * LBL * sizeof(float));
    memset(yrow + (h + W) * LBL, 0, (size_t)h * LBL * sizeof(float));
    float *y = yrow + h * LBL;
    for (ptrdiff_t j0 = 0; j0 < W; j0 += LBL) {
        const int npx = (int)(W - j0 < LBL ? W - j0 : LBL);
        lay_tile_in(x + j0, xc, nc, npx, y + j0 * LBL);
    }
}

/* One interior row of a blocked plane (`xrow` at its first interior pixel) -> nc NCHW rows starting
   at `y`, channel stride yc. */
static void lay_from_blocked_row(const float *xrow, ptrdiff_t W, int nc, float *y, ptrdiff_t yc)
{
    for (ptrdiff_t j0 = 0; j0 < W; j0 += LBL) {
        const int npx = (int)(W - j0 < LBL ? W - j0 : LBL);
        lay_tile_out(xrow + j0 * LBL, npx, nc, y + j0, yc);
    }
}

/* One row of a zero-framed NCHW plane (W + 2h values at `yrow`); x is the input row or NULL for a
   frame row. */
static void lay_pad_row(const float *x, ptrdiff_t W, ptrdiff_t h, float *yrow)
{
    if (x == NULL) {
        memset(yrow, 0, (size_t)(W + 2 * h) * sizeof(float));
        return;
    }
    memset(yrow, 0, (size_t)h * sizeof(float));
    memcpy(yrow + h, x, (size_t)W * sizeof(float));
    memset(yrow + h + W, 0, (size_t)h * sizeof(float));
}

/* ---------------------------------------------------------------- fingerprint */

/* The sums of one chunk of n <= FP_CHUNK words whose first has global index i0. One vector of 16
   words per step (GCC vector extensions: a zmm, two ymm or four xmm); each lane sums the low and
   the high 16 bits of its words apart, in 32 bits, which cannot overflow within a chunk (at most
   FP_CHUNK / 16 = 4096 terms below 2^16 per lane), and the halves are joined in 64 bits at the end. */
#define FP_KEY 0x9E3779B1u
typedef uint32_t fp_v __attribute__((vector_size(64)));
typedef uint32_t fp_vu __attribute__((vector_size(64), aligned(4)));

static void lay_fingerprint_chunk(const uint32_t *restrict u, ptrdiff_t i0, ptrdiff_t n, uint64_t *s1, uint64_t *s2)
{
    fp_v alo = {0}, ahi = {0}, blo = {0}, bhi = {0}, key;
    for (int l = 0; l < LBL; l++) key[l] = (uint32_t)(i0 + l) * FP_KEY;
    const fp_v step = (fp_v){0} + (uint32_t)LBL * FP_KEY, low = (fp_v){0} + 0xFFFFu;
    ptrdiff_t i = 0;
    for (; i + LBL <= n; i += LBL) {
        const fp_v w = *(const fp_vu *)(u + i);
        const fp_v v = w ^ key;
        const fp_v p = v * (v | 1u);
        alo += w & low;
        ahi += w >> 16;
        blo += p & low;
        bhi += p >> 16;
        key += step;
    }
    uint64_t sa = 0, sb = 0;
    for (int l = 0; l < LBL; l++) {
        sa += (uint64_t)alo[l] + ((uint64_t)ahi[l] << 16);
        sb += (uint64_t)blo[l] + ((uint64_t)bhi[l] << 16);
    }
    for (; i < n; i++) {
        const uint32_t v = u[i] ^ ((uint32_t)(i0 + i) * FP_KEY);
        sa += u[i];
        sb += (uint32_t)(v * (v | 1u));
    }
    *s1 = sa;
    *s2 = sb;
}

#endif /* CONVFORGE_LAYOUT_H */
