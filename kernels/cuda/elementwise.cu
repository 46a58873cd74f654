// Convolution epilogues: bias + activation over an output y (N, K, P, Q).
//
// bias_act:     y[n, k, i] = act(y[n, k, i] + bias[k]), in place.
// bias_act_nk:  y[n, k, i] = act(t[k, n, i] + bias[k]). The im2col path multiplies a whole batch
//               chunk in one GEMM, which leaves it as t (K, n, P*Q); this pass moves it into NCHW
//               while it adds the bias, so the reordering costs no pass of its own.
// bias may be null (no bias); act is 0 none, 1 ReLU, 2 ReLU6 (NaN propagates).
//
// Launch: blocks of 256 threads; grid.y walks the N*K planes (a block-stride loop, since a plane
// count can pass gridDim.y's 65535), grid.x the P*Q elements of a plane (grid-stride, 64-bit).
// One division per plane instead of a 64-bit division per element. Memory-bound: one read and one
// write per element, consecutive threads on consecutive elements, so every warp access is
// coalesced (the reads of t are contiguous runs of P*Q too).
#include "common.cuh"

template <typename T>
__global__ void bias_act(T* __restrict__ y, const T* __restrict__ bias, long long planes, long long PQ,
                         int K, int act) {
    for (long long plane = blockIdx.y; plane < planes; plane += gridDim.y) {
        const T b = bias != nullptr ? bias[plane % K] : T(0);
        T* row = y + plane * PQ;
        for (long long i = global_thread_index(); i < PQ; i += grid_threads())
            row[i] = activate(row[i] + b, act);
    }
}

template <typename T>
__global__ void bias_act_nk(const T* __restrict__ t, T* __restrict__ y, const T* __restrict__ bias,
                            long long planes, long long PQ, int K, long long Nb, int act) {
    for (long long plane = blockIdx.y; plane < planes; plane += gridDim.y) {
        const int k = (int)(plane % K);
        const long long n = plane / K;
        const T b = bias != nullptr ? bias[k] : T(0);
        const T* src = t + ((long long)k * Nb + n) * PQ;
        T* dst = y + plane * PQ;
        for (long long i = global_thread_index(); i < PQ; i += grid_threads())
            dst[i] = activate(src[i] + b, act);
    }
}

template __global__ void bias_act<float>(float*, const float*, long long, long long, int, int);
template __global__ void bias_act<double>(double*, const double*, long long, long long, int, int);
template __global__ void bias_act_nk<float>(const float*, float*, const float*, long long, long long, int,
                                            long long, int);
template __global__ void bias_act_nk<double>(const double*, double*, const double*, long long, long long,
                                             int, long long, int);
