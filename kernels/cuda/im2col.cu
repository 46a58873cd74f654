// im2col for the GEMM path: unfold a batch chunk of x (N, C, H, W) into columns.
//
//   col[(c*R + r)*S + s][n*P*Q + p*Q + q] = x[n0 + n, c, p*sh - pt + r*dh, q*sw - pl + s*dw]
//   (zero where the tap falls in the padding)
//
// col is (C*R*S, Nb*P*Q): the rows of group g are the contiguous block [g*Cg*R*S, (g+1)*Cg*R*S), so
// the convolution of the whole chunk is one GEMM per group, w_g (Kg, Cg*R*S) @ col_g, whose result
// (K, Nb, P*Q) elementwise.cu's bias_act_nk moves into NCHW. With R = S = 1 this is the strided
// gather of the pointwise path at stride > 1.
//
// Launch: 1-D grid of 256-thread blocks, grid-stride over the C*Nb*P*Q (channel, image, pixel)
// triples with 64-bit indices; each thread writes its pixel's R*S column entries. Consecutive
// threads take consecutive pixels, so the writes of a warp are coalesced and its reads are
// too at stride 1 (strided with the stride otherwise, served by L1/L2 across the r, s taps).
#include "common.cuh"

template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ col, int C, int H, int W, int R, int S,
                       int sh, int sw, int pt, int pl, int dh, int dw, int P, int Q, long long Nb) {
    const long long PQ = (long long)P * Q;
    const long long total = (long long)C * Nb * PQ;
    const long long ld = Nb * PQ;                      // row length of col
    for (long long j = global_thread_index(); j < total; j += grid_threads()) {
        const long long pq = j % PQ;
        const long long cn = j / PQ;
        const long long n = cn % Nb;
        const int c = (int)(cn / Nb);
        const int p = (int)(pq / Q), q = (int)(pq % Q);
        const T* xp = x + (n * C + c) * (long long)H * W;
        T* out = col + (long long)c * R * S * ld + n * PQ + pq;
        const int h0 = p * sh - pt, w0 = q * sw - pl;
        for (int r = 0; r < R; ++r) {
            const int h = h0 + r * dh;
            const bool row_in = (unsigned)h < (unsigned)H;
            for (int s = 0; s < S; ++s) {
                const int w = w0 + s * dw;
                *out = (row_in && (unsigned)w < (unsigned)W) ? xp[(long long)h * W + w] : T(0);
                out += ld;
            }
        }
    }
}

template __global__ void im2col<float>(const float*, float*, int, int, int, int, int, int, int, int, int, int,
                                       int, int, int, long long);
template __global__ void im2col<double>(const double*, double*, int, int, int, int, int, int, int, int, int,
                                        int, int, int, int, long long);
