"""The GPU's measured ceilings through CuPy: fp32 FMA peak and device-memory copy bandwidth.

The FMA kernel runs CHAINS independent FMA chains per thread over a grid that fills the device, so
the FMA pipes never wait on a chain; the copy moves a buffer far larger than L2 and counts read +
write bytes. Both are timed with CUDA events, after a first launch that compiles and warms up.
"""
from __future__ import annotations

FMA_SOURCE = r"""
extern "C" __global__ void fma_loop(float *out, int iters, float a, float b)
{
    float acc[8];
    #pragma unroll
    for (int j = 0; j < 8; j++) acc[j] = threadIdx.x * 1e-3f + j;
    for (int i = 0; i < iters; i++) {
        #pragma unroll
        for (int j = 0; j < 8; j++) acc[j] = fmaf(acc[j], a, b);
    }
    float s = 0.0f;
    #pragma unroll
    for (int j = 0; j < 8; j++) s += acc[j];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}
"""
CHAINS = 8


def _event_seconds(cp, fn, repeats):
    start, end = cp.cuda.Event(), cp.cuda.Event()
    best = float("inf")
    for _ in range(repeats):
        cp.cuda.Device().synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, end) / 1e3)
    return best


def gpu_ceilings(quick=True):
    import cupy as cp
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    sms = props["multiProcessorCount"]
    threads, blocks, iters = 256, sms * 16, 4096
    out = cp.empty(threads * blocks, dtype=cp.float32)
    kernel = cp.RawKernel(FMA_SOURCE, "fma_loop")

    def fma():
        kernel((blocks,), (threads,), (out, cp.int32(iters), cp.float32(0.999999), cp.float32(1e-6)))
    fma()                                                         # compile + warm up
    t = _event_seconds(cp, fma, 5 if quick else 20)
    peak = 2.0 * CHAINS * iters * threads * blocks / t / 1e9
    n = (512 << 20) // 4                                          # 512 MiB per buffer
    src, dst = cp.ones(n, dtype=cp.float32), cp.empty(n, dtype=cp.float32)

    def copy():
        cp.copyto(dst, src)
    copy()
    t = _event_seconds(cp, copy, 5 if quick else 20)
    bw = 2.0 * n * 4 / t / 1e9
    return {"peak_gflops": {"float32": peak}, "bandwidth_gbps": {"dram_copy": bw},
            "roofline_bandwidth_gbps": bw, "roofline_bandwidth_name": "dram_copy", "sms": sms}
