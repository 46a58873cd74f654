// Helpers shared by every kernel file: the fused activation and the 64-bit grid-stride loop.
// Included by the .cu files; the loader splices it into each source before NVRTC sees it, so the
// compiled-module cache key covers the header's text too.
#pragma once

// act: 0 none, 1 ReLU, 2 ReLU6. Written with comparisons that are false for NaN so that NaN
// propagates (fmaxf(0, NaN) would return 0).
template <typename T>
__device__ __forceinline__ T activate(T v, int act) {
    if (act == 1) return v < T(0) ? T(0) : v;
    if (act == 2) return v < T(0) ? T(0) : (v > T(6) ? T(6) : v);
    return v;
}

// First flat index of this thread and the stride of a grid-stride loop, both 64-bit.
__device__ __forceinline__ long long global_thread_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_threads() {
    return (long long)gridDim.x * blockDim.x;
}
