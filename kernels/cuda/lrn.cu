// Local response normalisation across channels (AlexNet), PyTorch's semantics:
//
//   y[n, c, i] = x[n, c, i] / (k + alpha / size * sum_{j = c - size/2}^{c + (size-1)/2} x[n, j, i]^2) ^ beta
//
// with channels outside [0, C) contributing zero (the window is zero-padded, and the divisor is
// always `size`). One thread per output element, 1-D grid of 256-thread blocks, 64-bit
// grid-stride loop over N*C*H*W; consecutive threads take consecutive pixels i of one channel, so
// each of the `size` reads of a warp is a coalesced row (neighbouring channels' threads re-read
// the same rows from L1/L2). The window sum is taken directly, not as a running sum, so no
// cancellation creeps in.
#include "common.cuh"

__device__ __forceinline__ float power(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double power(double a, double b) { return pow(a, b); }

template <typename T>
__global__ void lrn(const T* __restrict__ x, T* __restrict__ y, long long total, int C, long long HW, int size,
                    T alpha, T beta, T k) {
    const int before = size / 2, after = (size - 1) / 2;
    for (long long i = global_thread_index(); i < total; i += grid_threads()) {
        const long long pix = i % HW;
        const long long nc = i / HW;
        const int c = (int)(nc % C);
        const T* xn = x + (nc - c) * HW + pix;   // channel 0 of this image at this pixel
        const int lo = max(0, c - before), hi = min(C - 1, c + after);
        T sum = T(0);
        for (int j = lo; j <= hi; ++j) {
            const T v = xn[(long long)j * HW];
            sum += v * v;
        }
        y[i] = x[i] / power(k + alpha / T(size) * sum, beta);
    }
}

// Explicit instances (so that `nvcc` compiles every kernel the loader asks NVRTC for).
template __global__ void lrn<float>(const float*, float*, long long, int, long long, int, float, float, float);
template __global__ void lrn<double>(const double*, double*, long long, int, long long, int, double, double,
                                     double);
