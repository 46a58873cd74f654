"""Work, minimum bytes, arithmetic intensity and the roofline of a convolution.

FLOPs = 2 x MACs, and a convolution does N*K*P*Q*(C/groups)*R*S MACs. Its minimum traffic reads the
input and the weights once and writes the output once; intensity = FLOPs / minimum bytes. The roofline
caps a kernel at min(peak FLOP rate, intensity x bandwidth): under the ridge point
(peak / bandwidth) a kernel is memory-bound, above it compute-bound.
"""
from __future__ import annotations

import numpy as np

from kernels.shapes import ConvGeometry


def conv_flops(g: ConvGeometry) -> int:
    return 2 * g.macs


def conv_bytes(g: ConvGeometry, itemsize: int) -> int:
    """Minimum bytes: input + weights + output, once each."""
    return itemsize * (g.N * g.C * g.H * g.W + g.K * g.Cg * g.R * g.S + g.N * g.K * g.P * g.Q)


def intensity(flops: float, nbytes: float) -> float:
    return flops / nbytes


def attainable_gflops(ai: float, peak_gflops: float, bandwidth_gbps: float) -> float:
    """The roofline: min(peak, intensity x bandwidth), GFLOP/s at arithmetic intensity `ai` FLOP/byte."""
    return min(peak_gflops, ai * bandwidth_gbps)


def ridge_point(peak_gflops: float, bandwidth_gbps: float) -> float:
    """The intensity (FLOP/byte) where the memory roof meets the compute roof."""
    return peak_gflops / bandwidth_gbps


def roofline_time(flops: float, nbytes: float, peak_gflops: float, bandwidth_gbps: float) -> float:
    """The least time the roofline allows: max(compute time, memory time), seconds."""
    return max(flops / (peak_gflops * 1e9), nbytes / (bandwidth_gbps * 1e9))


def metrics(flops: float, nbytes: float, seconds: float, ceilings: dict, dtype) -> dict:
    """GFLOP/s of a timed call and its share of the peak and of the roofline at its intensity."""
    peak = ceilings["peak_gflops"].get(np.dtype(dtype).name, float("nan"))   # the GPU probe measures fp32 only
    bw = ceilings["roofline_bandwidth_gbps"]
    gflops = flops / seconds / 1e9
    roof = attainable_gflops(intensity(flops, nbytes), peak, bw)
    return {"gflops": gflops, "pct_peak": 100.0 * gflops / peak, "pct_roofline": 100.0 * gflops / roof}
