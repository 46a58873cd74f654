// Pooling over NCHW planes.
//
// pool2d<T>: max or average pooling, y (N, C, P, Q), one thread per output, 1-D grid of 256-thread
//   blocks with a 64-bit grid-stride loop over N*C*P*Q. The window of output (p, q) is rows
//   p*sh - ph + r*dh (r < kh) and columns q*sw - pw + s*dw (s < kw).
//   mode 0, max: positions outside x count as -inf; NaN propagates (as PyTorch: a NaN, once seen,
//     is kept).
//   mode 1, average: the sum of the taps inside x over a divisor that counts, per axis, the taps in
//     [-ph, H + ph) when count_include_pad (the padded input; windows that run past it under
//     ceil_mode are clipped there) and only those in [0, H) otherwise, as PyTorch does.
//   Pooling is memory-bound and its windows overlap little: consecutive threads take consecutive q,
//   so each warp's reads cover a contiguous strip of rows that L1 serves to the neighbouring windows.
// global_avg_pool<T>: y[n, c] = mean of the plane x[n, c]; one warp per plane (a block-stride loop
//   over the N*C planes, 8 warps a block), lanes strided through the plane, then a shuffle
//   reduction: a fixed order, so the result is the same on every run.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ T neg_inf();
template <>
__device__ __forceinline__ float neg_inf<float>() { return -__int_as_float(0x7f800000); }
template <>
__device__ __forceinline__ double neg_inf<double>() { return -__longlong_as_double(0x7ff0000000000000LL); }

template <typename T>
__global__ void pool2d(const T* __restrict__ x, T* __restrict__ y, long long planes, int H, int W, int P, int Q,
                       int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int mode,
                       int count_include_pad) {
    const long long total = planes * P * Q;
    for (long long i = global_thread_index(); i < total; i += grid_threads()) {
        const int q = (int)(i % Q);
        const long long t = i / Q;
        const int p = (int)(t % P);
        const long long plane = t / P;
        const T* xp = x + plane * H * (long long)W;
        const int h0 = p * sh - ph, w0 = q * sw - pw;
        if (mode == 0) {
            T m = neg_inf<T>();
            for (int r = 0; r < kh; ++r) {
                const int h = h0 + r * dh;
                if ((unsigned)h >= (unsigned)H) continue;
                for (int s = 0; s < kw; ++s) {
                    const int ww = w0 + s * dw;
                    if ((unsigned)ww >= (unsigned)W) continue;
                    const T v = xp[(long long)h * W + ww];
                    if (v > m || v != v) m = v;
                }
            }
            y[i] = m;
        } else {
            T sum = T(0);
            int rows = 0, cols = 0;
            for (int r = 0; r < kh; ++r) {
                const int h = h0 + r * dh;
                if (count_include_pad ? h < H + ph : (unsigned)h < (unsigned)H) ++rows;
            }
            for (int s = 0; s < kw; ++s) {
                const int ww = w0 + s * dw;
                if (count_include_pad ? ww < W + pw : (unsigned)ww < (unsigned)W) ++cols;
            }
            for (int r = 0; r < kh; ++r) {
                const int h = h0 + r * dh;
                if ((unsigned)h >= (unsigned)H) continue;
                for (int s = 0; s < kw; ++s) {
                    const int ww = w0 + s * dw;
                    if ((unsigned)ww < (unsigned)W) sum += xp[(long long)h * W + ww];
                }
            }
            y[i] = sum / T(rows * cols);
        }
    }
}

template <typename T>
__global__ void global_avg_pool(const T* __restrict__ x, T* __restrict__ y, long long planes, long long HW) {
    const int lane = threadIdx.x & 31;
    const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
    for (long long plane = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); plane < planes;
         plane += warps) {
        const T* xp = x + plane * HW;
        T sum = T(0);
        for (long long i = lane; i < HW; i += 32) sum += xp[i];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        if (lane == 0) y[plane] = sum / T(HW);
    }
}

// Explicit instances (so that `nvcc` compiles every kernel the loader asks NVRTC for).
#define POOL_ARGS int, int, int, int, int, int, int, int, int, int, int, int, int, int
template __global__ void pool2d<float>(const float*, float*, long long, POOL_ARGS);
template __global__ void pool2d<double>(const double*, double*, long long, POOL_ARGS);
template __global__ void global_avg_pool<float>(const float*, float*, long long, long long);
template __global__ void global_avg_pool<double>(const double*, double*, long long, long long);
