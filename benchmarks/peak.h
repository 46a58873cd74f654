/* The machine's ceilings, measured: peak FMA rate and memory bandwidth.
 *
 * peak_fma_f32 / peak_fma_f64: every thread runs NACC independent FMA chains (acc = acc * a + b) in
 * the widest vector registers this build targets (AVX-512 zmm, else AVX2 ymm, else scalar), so the FMA
 * units never wait on a chain's latency (4 cycles on Zen 4/5, 2 FMA pipes -> at least 8 chains).
 * The values converge to b / (1 - a) and stay normal: no denormal or overflow slow path.
 *
 * copy_seconds / sum_seconds: every thread streams its own contiguous slice of the arrays `reps`
 * times; a compiler barrier between passes keeps the repeated passes from being merged away.
 *
 * All functions open one OpenMP parallel region with exactly `nthreads` threads; after a barrier each
 * thread times its own work with omp_get_wtime into seconds[t]. Per-thread clocks keep a thread that the
 * OS parks (a machine shared with other processes) from stretching the others' times; the caller takes
 * each thread's best run and sums the rates.
 */
#ifndef CONVFORGE_PEAK_H
#define CONVFORGE_PEAK_H

#include <stddef.h>
#include <stdint.h>
#include <omp.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#define PEAK_BARRIER() __asm__ __volatile__("" ::: "memory")

#if defined(__AVX512F__)
#define PEAK_ISA "avx512"
#define PEAK_NACC 16
#define VF32 __m512
#define VF64 __m512d
#define VSET1_F32 _mm512_set1_ps
#define VSET1_F64 _mm512_set1_pd
#define VFMA_F32 _mm512_fmadd_ps
#define VFMA_F64 _mm512_fmadd_pd
#define VADD_F32 _mm512_add_ps
#define VADD_F64 _mm512_add_pd
#define VSUM_F32 _mm512_reduce_add_ps
#define VSUM_F64 _mm512_reduce_add_pd
#define LANES_F32 16
#define LANES_F64 8
#elif defined(__AVX2__) && defined(__FMA__)
#define PEAK_ISA "avx2"
#define PEAK_NACC 12
#define VF32 __m256
#define VF64 __m256d
#define VSET1_F32 _mm256_set1_ps
#define VSET1_F64 _mm256_set1_pd
#define VFMA_F32 _mm256_fmadd_ps
#define VFMA_F64 _mm256_fmadd_pd
#define VADD_F32 _mm256_add_ps
#define VADD_F64 _mm256_add_pd
static inline float peak_sum8(__m256 v) { float t[8]; _mm256_storeu_ps(t, v); return t[0]+t[1]+t[2]+t[3]+t[4]+t[5]+t[6]+t[7]; }
static inline double peak_sum4(__m256d v) { double t[4]; _mm256_storeu_pd(t, v); return t[0]+t[1]+t[2]+t[3]; }
#define VSUM_F32 peak_sum8
#define VSUM_F64 peak_sum4
#define LANES_F32 8
#define LANES_F64 4
#else
#define PEAK_ISA "scalar"
#define PEAK_NACC 8
#define VF32 float
#define VF64 double
#define VSET1_F32(v) ((float)(v))
#define VSET1_F64(v) ((double)(v))
#define VFMA_F32(x, a, b) ((x) * (a) + (b))
#define VFMA_F64(x, a, b) ((x) * (a) + (b))
#define VADD_F32(x, y) ((x) + (y))
#define VADD_F64(x, y) ((x) + (y))
#define VSUM_F32(v) (v)
#define VSUM_F64(v) (v)
#define LANES_F32 1
#define LANES_F64 1
#endif

static inline const char *peak_isa(void) { return PEAK_ISA; }
static inline int peak_lanes_f32(void) { return LANES_F32; }
static inline int peak_lanes_f64(void) { return LANES_F64; }
static inline int peak_chains(void) { return PEAK_NACC; }

/* One thread's FMA loop: PEAK_NACC chains x iters steps; returns a sum so the work stays live. */
#define PEAK_FMA_BODY(VT, SET1, FMA, ADD, SUM, STYPE)                                 \
    VT a = SET1(0.999999), b = SET1(1e-6);                                             \
    VT acc[PEAK_NACC];                                                                 \
    for (int j = 0; j < PEAK_NACC; j++) acc[j] = SET1(1.0 + 1e-3 * j);                 \
    for (int64_t i = 0; i < iters; i++) {                                              \
        _Pragma("GCC unroll 16")                                                       \
        for (int j = 0; j < PEAK_NACC; j++) acc[j] = FMA(acc[j], a, b);                \
    }                                                                                  \
    VT s = acc[0];                                                                     \
    for (int j = 1; j < PEAK_NACC; j++) s = ADD(s, acc[j]);                            \
    return (double)SUM(s);

static inline double peak_thread_f32(int64_t iters) { PEAK_FMA_BODY(VF32, VSET1_F32, VFMA_F32, VADD_F32, VSUM_F32, float) }
static inline double peak_thread_f64(int64_t iters) { PEAK_FMA_BODY(VF64, VSET1_F64, VFMA_F64, VADD_F64, VSUM_F64, double) }

/* Each of nthreads threads runs `iters` steps: seconds[t] its time, sink[t] its checksum. */
static void peak_fma_seconds(int64_t iters, int nthreads, int f64, double *sink, double *seconds)
{
    #pragma omp parallel num_threads(nthreads)
    {
        int t = omp_get_thread_num();
        #pragma omp barrier
        double t0 = omp_get_wtime();
        sink[t] = f64 ? peak_thread_f64(iters) : peak_thread_f32(iters);
        seconds[t] = omp_get_wtime() - t0;
    }
}

/* The slice [lo, hi) of n elements that thread t of nt owns. */
static inline void peak_slice(int64_t n, int t, int nt, int64_t *lo, int64_t *hi)
{
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

/* `reps` passes of dst[i] = src[i] over n floats, thread t copying its slice: seconds[t] its time. */
static void copy_seconds(float *dst, const float *src, int64_t n, int reps, int nthreads, double *seconds)
{
    #pragma omp parallel num_threads(nthreads)
    {
        int t = omp_get_thread_num();
        int64_t lo, hi;
        peak_slice(n, t, omp_get_num_threads(), &lo, &hi);
        #pragma omp barrier
        double t0 = omp_get_wtime();
        for (int r = 0; r < reps; r++) {
            #pragma omp simd
            for (int64_t i = lo; i < hi; i++) dst[i] = src[i];
            PEAK_BARRIER();
        }
        seconds[t] = omp_get_wtime() - t0;
    }
}

/* 16 floats as one GCC vector (one zmm; two ymm or emulated on narrower ISAs); unaligned loads. */
typedef float peak_vf __attribute__((vector_size(64)));
static inline peak_vf peak_load(const float *p) { peak_vf v; __builtin_memcpy(&v, p, sizeof v); return v; }

/* `reps` read-only passes summing n floats, thread t its slice: seconds[t] its time, sink[t] its sum. */
static void sum_seconds(const float *src, int64_t n, int reps, int nthreads, double *sink, double *seconds)
{
    #pragma omp parallel num_threads(nthreads)
    {
        int t = omp_get_thread_num();
        int64_t lo, hi;
        peak_slice(n, t, omp_get_num_threads(), &lo, &hi);
        float total = 0.0f;
        #pragma omp barrier
        double t0 = omp_get_wtime();
        for (int r = 0; r < reps; r++) {
            /* four independent vector partial sums (64 floats a step), so the loop is bound by
               loads, not by the latency of one chain of vector adds */
            peak_vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            int64_t i = lo;
            for (; i + 64 <= hi; i += 64) {
                a0 += peak_load(src + i);
                a1 += peak_load(src + i + 16);
                a2 += peak_load(src + i + 32);
                a3 += peak_load(src + i + 48);
            }
            peak_vf a = (a0 + a1) + (a2 + a3);
            float s = 0.0f;
            for (int j = 0; j < 16; j++) s += a[j];
            for (; i < hi; i++) s += src[i];
            total += s;
            PEAK_BARRIER();
        }
        seconds[t] = omp_get_wtime() - t0;
        sink[t] = total;
    }
}

#endif
