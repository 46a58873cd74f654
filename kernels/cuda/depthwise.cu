// Depthwise convolution (groups == C, K = M*C output channels, channel multiplier M):
//
//   y[n, k, p, q] = act(bias[k] + sum_{r, s} w[k, 0, r, s] * x[n, k / M, p*sh - pt + r*dh, q*sw - pl + s*dw])
//
// A 3x3 depthwise layer does 9 multiply-adds per output element: it is memory-bound, so both kernels
// are designed against bytes moved. Every block stages, once, the input tile with its halo that its
// outputs need into shared memory (one coalesced pass over global memory), and then reads only
// shared memory; each output is written once, coalesced along q.
//
// Work decomposition (both kernels): the N*K output planes are taken PB at a time; a block covers
// PB planes x a TH x TW tile of each, with TW*TR*PB threads (TW columns x TR thread rows x PB
// planes, TW fastest) and TH = TR * OPT (each thread computes OPT outputs of one column). Small
// planes (7x7, 14x14) thus share a block instead of leaving most threads idle; large ones are cut
// into tiles. ops.py picks TW, TR and PB (<= 32) so that the PB tiles fit in shared memory.
// Grid: 1-D, a block-stride loop over (plane group, tile) with 64-bit indices.
//
// depthwise_rs<T, R, ST>: square R x R kernel, stride ST, no dilation (R in {3, 5}, ST in {1, 2},
//   the MobileNet / EfficientNet cases). OPT = 4: a thread keeps the R*R weights and its 4
//   accumulators in registers and walks the (4-1)*ST + R input rows its 4 outputs need, each input
//   value read once from shared memory and used for every output it touches (all loops unrolled
//   at compile time, so no register array is indexed at run time). At ST = 2 each staged row keeps
//   its even columns first and its odd columns after, so the lanes of a warp (2 columns apart in
//   the input) hit distinct banks.
// depthwise_general<T>: any R, S, stride and dilation (OPT = 1), the taps in run-time loops.
#include "common.cuh"

// Staged column position of input column c in a row of width IW: even/odd split at stride 2.
template <int ST>
__device__ __forceinline__ int staged_col(int c, int half) {
    return ST == 2 ? (c & 1) * half + (c >> 1) : c;
}

// Stage PB input tiles of IH x IW (origin h0, w0) into `tile`; positions outside x are zero, as are
// the tiles of planes past the end. A warp per row (the whole block if smaller): one division per
// row, consecutive threads along the row.
template <typename T, int ST>
__device__ __forceinline__ void stage_tiles(const T* __restrict__ x, T* tile, long long* src, long long plane0,
                                            long long planes, int PB, int K, int M, int C, int H, int W,
                                            int h0, int w0, int IH, int IW) {
    if ((int)threadIdx.x < PB) {
        const long long plane = plane0 + threadIdx.x;
        long long base = -1;
        if (plane < planes) {
            const long long n = plane / K;
            const int c = (int)(plane - n * K) / M;
            base = (n * C + c) * (long long)H * W;
        }
        src[threadIdx.x] = base;
    }
    __syncthreads();
    const int half = (IW + 1) / 2;
    const int L = min(32, (int)blockDim.x);   // threads per row (blockDim is a power of two)
    const int lane = threadIdx.x % L, ngroups = blockDim.x / L;
    for (int row = threadIdx.x / L; row < PB * IH; row += ngroups) {
        const int pb = row / IH, ih = row - pb * IH;
        const int h = h0 + ih;
        const long long base = src[pb];
        const bool row_in = base >= 0 && (unsigned)h < (unsigned)H;
        const T* xr = x + base + (long long)h * W;
        T* dst = tile + row * IW;
        for (int iw = lane; iw < IW; iw += L) {
            const int ww = w0 + iw;
            dst[staged_col<ST>(iw, half)] = (row_in && (unsigned)ww < (unsigned)W) ? xr[ww] : T(0);
        }
    }
    __syncthreads();
}

template <typename T, int R, int ST>
__global__ void __launch_bounds__(256)
depthwise_rs(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias, T* __restrict__ y,
             int C, int H, int W, int M, int P, int Q, int pt, int pl, int act, long long planes, int TW, int TR,
             int PB, long long n_blocks) {
    constexpr int OPT = 4;
    constexpr int NR = (OPT - 1) * ST + R;   // input rows behind one thread's OPT outputs
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ long long src[32];
    T* tile = reinterpret_cast<T*>(smem_raw);

    const int K = C * M;
    const int TH = TR * OPT;
    const int IH = (TH - 1) * ST + R, IW = (TW - 1) * ST + R, half = (IW + 1) / 2;
    const int tw = threadIdx.x % TW, tr = (threadIdx.x / TW) % TR, pb = threadIdx.x / (TW * TR);
    const int tiles_q = (Q + TW - 1) / TW;
    const long long tiles = (long long)((P + TH - 1) / TH) * tiles_q;

    for (long long b = blockIdx.x; b < n_blocks; b += gridDim.x) {
        const long long group = b / tiles;
        const long long t = b - group * tiles;
        const int p0 = (int)(t / tiles_q) * TH, q0 = (int)(t % tiles_q) * TW;
        __syncthreads();   // the previous tile's readers are done
        stage_tiles<T, ST>(x, tile, src, group * PB, planes, PB, K, M, C, H, W, p0 * ST - pt, q0 * ST - pl, IH, IW);

        const long long plane = group * PB + pb;
        if (plane >= planes) continue;
        const int k = (int)(plane % K);
        T wr[R * R];
#pragma unroll
        for (int i = 0; i < R * R; ++i) wr[i] = w[(long long)k * R * R + i];
        T acc[OPT];
#pragma unroll
        for (int j = 0; j < OPT; ++j) acc[j] = T(0);

        const T* rows = tile + (pb * IH + tr * OPT * ST) * IW;
#pragma unroll
        for (int ii = 0; ii < NR; ++ii) {
            T v[R];
#pragma unroll
            for (int s = 0; s < R; ++s) v[s] = rows[ii * IW + staged_col<ST>(tw * ST + s, half)];
#pragma unroll
            for (int j = 0; j < OPT; ++j) {
                const int r = ii - j * ST;
                if (r >= 0 && r < R) {
#pragma unroll
                    for (int s = 0; s < R; ++s) acc[j] = fma(wr[r * R + s], v[s], acc[j]);
                }
            }
        }

        const int q = q0 + tw;
        if (q >= Q) continue;
        const T bk = bias != nullptr ? bias[k] : T(0);
        T* yp = y + plane * P * (long long)Q;
#pragma unroll
        for (int j = 0; j < OPT; ++j) {
            const int p = p0 + tr * OPT + j;
            if (p < P) yp[(long long)p * Q + q] = activate(acc[j] + bk, act);
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(256)
depthwise_general(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                  T* __restrict__ y, int C, int H, int W, int M, int R, int S, int sh, int sw, int pt, int pl,
                  int dh, int dw, int P, int Q, int act, long long planes, int TW, int TR, int PB,
                  long long n_blocks) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ long long src[32];
    T* tile = reinterpret_cast<T*>(smem_raw);

    const int K = C * M;
    const int TH = TR;
    const int IH = (TH - 1) * sh + (R - 1) * dh + 1, IW = (TW - 1) * sw + (S - 1) * dw + 1;
    const int tw = threadIdx.x % TW, tr = (threadIdx.x / TW) % TR, pb = threadIdx.x / (TW * TR);
    const int tiles_q = (Q + TW - 1) / TW;
    const long long tiles = (long long)((P + TH - 1) / TH) * tiles_q;

    for (long long b = blockIdx.x; b < n_blocks; b += gridDim.x) {
        const long long group = b / tiles;
        const long long t = b - group * tiles;
        const int p0 = (int)(t / tiles_q) * TH, q0 = (int)(t % tiles_q) * TW;
        __syncthreads();
        stage_tiles<T, 1>(x, tile, src, group * PB, planes, PB, K, M, C, H, W, p0 * sh - pt, q0 * sw - pl, IH, IW);

        const long long plane = group * PB + pb;
        const int p = p0 + tr, q = q0 + tw;
        if (plane >= planes || p >= P || q >= Q) continue;
        const int k = (int)(plane % K);
        const T* wk = w + (long long)k * R * S;
        const T* in = tile + (pb * IH + tr * sh) * IW + tw * sw;
        T acc = T(0);
        for (int r = 0; r < R; ++r)
            for (int s = 0; s < S; ++s) acc = fma(wk[r * S + s], in[r * dh * IW + s * dw], acc);
        if (bias != nullptr) acc += bias[k];
        y[(plane * P + p) * (long long)Q + q] = activate(acc, act);
    }
}

// Explicit instances (so that `nvcc` compiles every kernel the loader asks NVRTC for).
#define DW_RS(T, R, ST)                                                                                    \
    template __global__ void depthwise_rs<T, R, ST>(const T*, const T*, const T*, T*, int, int, int, int, int, \
                                                    int, int, int, int, long long, int, int, int, long long)
DW_RS(float, 3, 1);
DW_RS(float, 3, 2);
DW_RS(float, 5, 1);
DW_RS(float, 5, 2);
DW_RS(double, 3, 1);
DW_RS(double, 3, 2);
DW_RS(double, 5, 1);
DW_RS(double, 5, 2);
#define DW_GENERAL(T)                                                                                         \
    template __global__ void depthwise_general<T>(const T*, const T*, const T*, T*, int, int, int, int, int, int, \
                                                  int, int, int, int, int, int, int, int, int, long long, int, int, \
                                                  int, long long)
DW_GENERAL(float);
DW_GENERAL(double);
