"""The argument checks every CPU kernel module makes at its own boundary.

kernels.conv2d has already checked its caller's arguments and says so in friendlier terms; these
checks make a direct call of a kernel module with inconsistent arrays raise instead of reading or
writing out of bounds.
"""
import numpy as np


def check_kernel_args(x, w, bias, y, sh, sw, pad_top, pad_left, dh, dw, groups, act, nthreads):
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if w.dtype != x.dtype or y.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError("x, w, bias and y must share one dtype")
    if x.ndim != 4 or w.ndim != 4 or y.ndim != 4:
        raise ValueError(f"x, w and y must be 4-D, got {x.shape}, {w.shape}, {y.shape}")
    N, C = x.shape[0], x.shape[1]
    K, Cg = w.shape[0], w.shape[1]
    if groups < 1 or C % groups or K % groups or Cg * groups != C:
        raise ValueError(f"groups={groups} does not fit x {x.shape} and w {w.shape}")
    if y.shape[0] != N or y.shape[1] != K:
        raise ValueError(f"y must have shape ({N}, {K}, P, Q), got {y.shape}")
    if bias is not None and bias.shape != (K,):
        raise ValueError(f"bias must have shape ({K},), got {bias.shape}")
    if min(sh, sw, dh, dw) < 1 or min(pad_top, pad_left) < 0:
        raise ValueError(f"stride and dilation must be >= 1 and padding >= 0, got stride ({sh}, {sw}), "
                         f"dilation ({dh}, {dw}), padding ({pad_top}, {pad_left})")
    if act not in (0, 1, 2):
        raise ValueError(f"act must be 0 (none), 1 (ReLU) or 2 (ReLU6), got {act}")
    if nthreads < 1:
        raise ValueError(f"nthreads must be >= 1, got {nthreads}")
