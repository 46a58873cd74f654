// Direct convolution, every configuration (stride, padding, dilation, groups):
//
//   y[n, k, p, q] = act(bias[k] + sum_{c < Cg, r < R, s < S}
//                       w[k, c, r, s] * x[n, g*Cg + c, p*sh - pt + r*dh, q*sw - pl + s*dw])
//   with g = k / Kg; taps outside [0, H) x [0, W) read as zero.
//
// conv2d_naive: the simple correct version, one thread per output, every operand from global
//   memory. 1-D grid of 256-thread blocks, grid-stride over N*K*P*Q with 64-bit indices. The tests
//   check conv2d_tiled against it as well as against the float64 reference.
//
// conv2d_tiled<T, KPT, PPT>: tiled through shared memory and blocked in registers.
//   A block of 256 threads (8 warps) computes TK = 8*KPT output channels (of one group) x a tile of
//   TP x TQ output pixels of one image. Warp `wp` owns channels wp*KPT .. wp*KPT+KPT-1, so its
//   weight reads are broadcasts; its 32 lanes cover TQ columns x LR = 32/TQ rows, and each lane
//   PPT rows LR apart, so TP = LR*PPT. Each thread keeps KPT x PPT accumulators in registers:
//   per tap it reads KPT weights (one vector load) and PPT inputs from shared memory for KPT*PPT
//   FMAs. The reduction over (c, r, s) is staged in chunks of CC channels x RC kernel rows x SC
//   kernel columns: each chunk loads the input rows and columns the tile needs for those taps
//   (the halo included, zero in the padding) and the chunk's weights, transposed to [tap][TK],
//   into dynamic shared memory; ops.py picks CC, RC and SC so the chunk fits (RC = R and SC = S
//   for every ordinary layer, so the halo is loaded once per channel).
//   Instances: <T, 4, 8> (32 channels x 256 pixels, larger images) and <T, 8, 2> (64 channels x
//   64 pixels, small images and many channels); TQ (32, 16 or 8) is a run-time choice.
//   Grid: x walks N * pixel tiles, y walks groups * channel blocks, each with a block-stride loop
//   (64-bit for x), so any size launches. The bias and activation are fused into the store.
#include "common.cuh"

template <typename T>
__global__ void conv2d_naive(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                             T* __restrict__ y, int N, int C, int H, int W, int K, int R, int S, int sh,
                             int sw, int pt, int pl, int dh, int dw, int G, int P, int Q, int act) {
    const int Cg = C / G, Kg = K / G;
    const long long total = (long long)N * K * P * Q;
    for (long long i = global_thread_index(); i < total; i += grid_threads()) {
        const int q = (int)(i % Q);
        long long t = i / Q;
        const int p = (int)(t % P);
        t /= P;
        const int k = (int)(t % K);
        const long long n = t / K;
        const int g = k / Kg;
        T acc = T(0);
        for (int c = 0; c < Cg; ++c) {
            const T* xc = x + (n * C + (long long)g * Cg + c) * H * W;
            const T* wc = w + ((long long)k * Cg + c) * R * S;
            for (int r = 0; r < R; ++r) {
                const int h = p * sh - pt + r * dh;
                if ((unsigned)h >= (unsigned)H) continue;
                for (int s = 0; s < S; ++s) {
                    const int ww = q * sw - pl + s * dw;
                    if ((unsigned)ww < (unsigned)W) acc += wc[r * S + s] * xc[(long long)h * W + ww];
                }
            }
        }
        if (bias != nullptr) acc += bias[k];
        y[i] = activate(acc, act);
    }
}

// KPT consecutive weights from shared memory, as 16-byte vector loads where the type allows
// (the addresses are 16-byte aligned by construction of the [tap][TK] layout).
template <typename T, int KPT>
__device__ __forceinline__ void load_weights(const T* p, T (&wv)[KPT]) {
    if constexpr (sizeof(T) == 4 && KPT % 4 == 0) {
#pragma unroll
        for (int i = 0; i < KPT / 4; ++i) {
            const float4 f = reinterpret_cast<const float4*>(p)[i];
            wv[4 * i] = f.x; wv[4 * i + 1] = f.y; wv[4 * i + 2] = f.z; wv[4 * i + 3] = f.w;
        }
    } else if constexpr (sizeof(T) == 8 && KPT % 2 == 0) {
#pragma unroll
        for (int i = 0; i < KPT / 2; ++i) {
            const double2 d = reinterpret_cast<const double2*>(p)[i];
            wv[2 * i] = d.x; wv[2 * i + 1] = d.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < KPT; ++i) wv[i] = p[i];
    }
}

template <typename T, int KPT, int PPT>
__global__ void __launch_bounds__(256, sizeof(T) == 4 ? 2 : 1)
conv2d_tiled(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias, T* __restrict__ y,
             int C, int H, int W, int K, int R, int S, int sh, int sw, int pt, int pl, int dh, int dw, int G,
             int P, int Q, int act, int TQ, int CC, int RC, int SC, long long n_xblocks, int n_yblocks) {
    constexpr int TK = 8 * KPT;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* in_s = reinterpret_cast<T*>(smem_raw);

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int LR = 32 / TQ, TP = LR * PPT;
    const int lq = lane % TQ, lp = lane / TQ;
    const int Cg = C / G, Kg = K / G;
    const int kblocks = (Kg + TK - 1) / TK;
    const int tiles_q = (Q + TQ - 1) / TQ;
    const long long tiles = (long long)((P + TP - 1) / TP) * tiles_q;
    // Shared memory: the input chunk [CC][IH][IW], then the weights [CC*RC*SC][TK] from a
    // 4-element boundary (16-byte aligned vector loads).
    const int in_cap = CC * ((TP - 1) * sh + (RC - 1) * dh + 1) * ((TQ - 1) * sw + (SC - 1) * dw + 1);
    T* w_s = in_s + ((in_cap + 3) & ~3);

    for (int by = blockIdx.y; by < n_yblocks; by += gridDim.y) {
        const int g = by / kblocks, kb = by - g * kblocks;
        const int kbase = g * Kg + kb * TK;      // first output channel of the block
        const int kcount = min(TK, Kg - kb * TK);
        for (long long bx = blockIdx.x; bx < n_xblocks; bx += gridDim.x) {
            const long long n = bx / tiles;
            const long long t = bx - n * tiles;
            const int p0 = (int)(t / tiles_q) * TP, q0 = (int)(t % tiles_q) * TQ;
            const T* xg = x + (n * C + (long long)g * Cg) * H * W;

            T acc[KPT][PPT];
#pragma unroll
            for (int kk = 0; kk < KPT; ++kk)
#pragma unroll
                for (int j = 0; j < PPT; ++j) acc[kk][j] = T(0);

            for (int c0 = 0; c0 < Cg; c0 += CC) {
                const int cn = min(CC, Cg - c0);
                for (int r0 = 0; r0 < R; r0 += RC) {
                    const int rn = min(RC, R - r0);
                    for (int s0 = 0; s0 < S; s0 += SC) {
                        const int sn = min(SC, S - s0);
                        const int IH = (TP - 1) * sh + (rn - 1) * dh + 1;
                        const int IW = (TQ - 1) * sw + (sn - 1) * dw + 1;
                        const int taps = cn * rn * sn;
                        __syncthreads();   // every warp is done reading the previous chunk

                        // Input rows/columns of the tile for these taps, zero in the padding.
                        const int h0 = p0 * sh - pt + r0 * dh, w0 = q0 * sw - pl + s0 * dw;
                        const int plane = IH * IW;
                        for (int i = tid; i < cn * plane; i += 256) {
                            const int cc = i / plane, rem = i - cc * plane;
                            const int ih = rem / IW, iw = rem - ih * IW;
                            const int h = h0 + ih, ww = w0 + iw;
                            in_s[i] = ((unsigned)h < (unsigned)H && (unsigned)ww < (unsigned)W)
                                          ? xg[((long long)(c0 + cc) * H + h) * W + ww] : T(0);
                        }
                        // Weights of the chunk as [tap][TK]; channels past the group's end are zero.
                        for (int i = tid; i < TK * taps; i += 256) {
                            const int kk = i / taps, tap = i - kk * taps;
                            const int cc = tap / (rn * sn), rs = tap - cc * (rn * sn);
                            const int rr = rs / sn, ss = rs - rr * sn;
                            w_s[tap * TK + kk] =
                                kk < kcount ? w[(((long long)(kbase + kk) * Cg + c0 + cc) * R + r0 + rr) * S + s0 + ss]
                                            : T(0);
                        }
                        __syncthreads();

                        const int row_step = LR * sh * IW;   // between a thread's PPT output rows
                        for (int cc = 0; cc < cn; ++cc) {
                            for (int rr = 0; rr < rn; ++rr) {
                                const T* in_row = in_s + (cc * IH + rr * dh + lp * sh) * IW + lq * sw;
                                const T* w_tap = w_s + ((cc * rn + rr) * sn) * TK + warp * KPT;
                                for (int ss = 0; ss < sn; ++ss) {
                                    T wv[KPT];
                                    load_weights<T, KPT>(w_tap + ss * TK, wv);
                                    const T* in_px = in_row + ss * dw;
#pragma unroll
                                    for (int j = 0; j < PPT; ++j) {
                                        const T v = in_px[j * row_step];
#pragma unroll
                                        for (int kk = 0; kk < KPT; ++kk) acc[kk][j] = fma(wv[kk], v, acc[kk][j]);
                                    }
                                }
                            }
                        }
                    }
                }
            }

            // Epilogue: bias, activation, store (lanes along q: coalesced rows of y).
            const int q = q0 + lq;
#pragma unroll
            for (int kk = 0; kk < KPT; ++kk) {
                const int kl = warp * KPT + kk;
                if (kl >= kcount || q >= Q) continue;
                const int k = kbase + kl;
                const T b = bias != nullptr ? bias[k] : T(0);
                T* yk = y + (n * K + k) * (long long)P * Q;
#pragma unroll
                for (int j = 0; j < PPT; ++j) {
                    const int p = p0 + lp + j * LR;
                    if (p < P) yk[(long long)p * Q + q] = activate(acc[kk][j] + b, act);
                }
            }
        }
    }
}

// Explicit instances (so that `nvcc` compiles every kernel the loader asks NVRTC for).
#define INTS16 int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int
template __global__ void conv2d_naive<float>(const float*, const float*, const float*, float*, int, INTS16);
template __global__ void conv2d_naive<double>(const double*, const double*, const double*, double*, int, INTS16);
#define TILED(T, KPT, PPT)                                                                                   \
    template __global__ void conv2d_tiled<T, KPT, PPT>(const T*, const T*, const T*, T*, INTS16, int, int, int, \
                                                       int, long long, int)
TILED(float, 4, 8);
TILED(float, 8, 2);
TILED(double, 4, 8);
TILED(double, 8, 2);
