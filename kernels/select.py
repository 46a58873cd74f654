"""algorithm="auto": pick the fastest algorithm for a geometry.

The rules come from the benchmark layer set (python -m benchmarks kernels, 2 threads, AVX-512):
- groups == C with K a multiple of C -> depthwise: memory-bound, and the only kernel that keeps all
  vector lanes busy when each group has one input channel (2-8x the others on every depthwise layer);
- 1x1 without padding -> pointwise: the GEMM reads x where it lies (1.1-2x direct on every 1x1 layer);
- everything else -> direct: register-tiled with no im2col pass, it beat im2col + GEMM on every
  regular layer of the set (by 5% on vgg.c3_2 up to 3.5x on incep.5x5), strided stems included.
im2col stays available explicitly. The direct kernel's register-tiled paths are AVX-512 code; in
the AVX2 and generic builds only its simple path remains (6-12x slower than im2col on every regular
layer of the set with CONVFORGE_ISA=avx2), so there regular layers go to im2col, whose GEMM
micro-kernel exists for every ISA. On the GPU nothing is measured yet: im2col (cuBLAS GEMM) is the
expected winner on dense layers until the GPU benchmark says otherwise.
"""
from . import cpu
from .shapes import ConvGeometry

_DENSE_CPU = "direct" if cpu.ISA == "avx512" else "im2col"


def choose_algorithm(g: ConvGeometry, device: str = "cpu") -> str:
    if g.is_depthwise:
        return "depthwise"
    if g.is_pointwise:
        return "pointwise"
    if device == "gpu":
        return "im2col"
    return _DENSE_CPU
