"""kernels.conv2d: check the arguments once, then hand contiguous arrays to one backend kernel.

Contract of a CPU kernel module kernels/cpu/<algorithm>.pyx (loaded for the chosen ISA by kernels.cpu.load):

    conv2d(x, w, bias, y, sh, sw, pad_top, pad_left, dh, dw, groups, act, nthreads)

x (N, C, H, W), w (K, C // groups, R, S), bias (K,) or None and y (N, K, P, Q) are C-contiguous
arrays of one dtype (float32 or float64; x, w and bias may be read-only). The kernel writes every
element of y; input positions outside [0, H) x [0, W) read as zero, so the bottom/right padding
follows from (P, Q). The geometry is canonical (kernels/canonical.py): padding, stride and dilation
are at most 2*H + 8 in height and 2*W + 8 in width, so no buffer or loop a kernel sizes by them
outgrows the input. act is 0 (none), 1 (ReLU) or 2 (ReLU6), applied after the bias; NaN propagates.
The kernel releases the GIL and uses exactly `nthreads` OpenMP threads; its result does not depend
on nthreads. Capability checks live in shapes.check_algorithm, not in the kernels.

algorithm="auto" on the CPU may also run the blocked route (kernels/blocked_route.py, the same
contract with the geometry as one argument), and may measure on the first call of a geometry
(kernels/select.py says when and how; CONVFORGE_AUTOTUNE=0 leaves the choice to the rules).
"""
from __future__ import annotations

import numpy as np

from . import _threads, blocked_route, cpu, select
from ._device import array_kind
from .shapes import check_algorithm, conv_geometry

ACTIVATIONS = {None: 0, "relu": 1, "relu6": 2}


def _check_dtype(a, name):
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")


def check_operands(x, w, bias):
    """Common checks of the arrays: one kind (numpy or cupy), one floating dtype. -> kind."""
    kind = array_kind(x, "x")
    if array_kind(w, "w") != kind:
        raise TypeError(f"x is a {kind.upper()} array but w is not: move both to the same device")
    _check_dtype(x, "x")
    _check_dtype(w, "w")
    if w.dtype != x.dtype:
        raise TypeError(f"x and w must have the same dtype, got x {x.dtype} and w {w.dtype}")
    if bias is not None:
        if array_kind(bias, "bias") != kind:
            raise TypeError(f"x is a {kind.upper()} array but bias is not: move both to the same device")
        _check_dtype(bias, "bias")
        if bias.dtype != x.dtype:
            raise TypeError(f"bias must have x's dtype {x.dtype}, got {bias.dtype}")
        if bias.ndim != 1 or bias.shape[0] != w.shape[0]:
            raise ValueError(f"bias must have shape ({w.shape[0]},), got {tuple(bias.shape)}")
    return kind


def _activation_code(activation):
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"activation must be None, 'relu' or 'relu6', got {activation!r}") from None


def conv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, algorithm="auto",
           activation=None):
    """2-D convolution (cross-correlation, as in deep learning) of x (N, C, H, W) with w (K, C // groups,
    R, S), plus bias (K,), then an optional fused activation ("relu" or "relu6").

    numpy input runs the Cython kernels, cupy input the CUDA kernels; the result is the same kind of
    array, of x's dtype. stride and dilation are an int or (h, w); padding an int, (h, w), "valid" or
    "same" (stride 1). algorithm is "auto" or one of kernels.ALGORITHMS.
    """
    kind = check_operands(x, w, bias)
    g = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a string, got {algorithm!r}")
    auto = algorithm == "auto"
    if auto:
        algorithm = select.rules(g, kind)     # on the CPU a measurement may still choose another below
    check_algorithm(algorithm, g)
    act = _activation_code(activation)

    if kind == "gpu":
        from .cuda import ops
        if g.N * g.K * g.P * g.Q == 0:
            return ops.conv2d(x, w, bias, g, algorithm, act)
        plan = g.plan          # the tame geometry the kernels run, and the gathers that bring x to it
        return ops.conv2d(plan.gather(x), w, bias, plan.geometry, algorithm, act)

    y = np.empty(g.out_shape, dtype=x.dtype)
    if y.size == 0:
        return y
    plan = g.plan              # the tame geometry the kernels run, and the gathers that bring x to it
    x = np.ascontiguousarray(plan.gather(x))
    w = np.ascontiguousarray(w)
    if bias is not None:
        bias = np.ascontiguousarray(bias)
    kg = plan.geometry
    if auto:
        impl = select.known(g, x.dtype)      # the implementation this geometry's first call settled on
        if impl is None:
            def run(impl, out):
                out = np.empty(g.out_shape, dtype=x.dtype) if out is None else out
                _run_cpu(impl, x, w, bias, out, kg, act)
                return out

            def prepare(impl):             # one-time costs, paid before a measurement times impl
                if impl == "blocked":
                    _threads.run(blocked_route.weights, w, bias, kg)
                else:
                    cpu.load(impl)

            impl, measured = select.auto(g, x.dtype, run, prepare)
            if measured is not None:
                return measured
        algorithm = impl
    _run_cpu(algorithm, x, w, bias, y, kg, act)
    return y


def _run_cpu(impl, x, w, bias, y, kg, act):
    """Run one CPU implementation (an algorithm, or auto's "blocked" route) of canonical geometry kg."""
    if impl == "blocked":
        _threads.run(blocked_route.conv2d, x, w, bias, y, kg, act)
        return
    _threads.run(cpu.load(impl).conv2d, x, w, bias, y, kg.sh, kg.sw, kg.pad_top, kg.pad_left, kg.dh,
                 kg.dw, kg.groups, act)
