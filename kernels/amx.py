"""Dense convolutions of the inference plan on Intel AMX tiles, where the CPU has them.

Each product x * w is taken as three bf16 products accumulated in float32 (kernels/cpu/amx.h says
how, and why that holds float32's tolerance): the weights are split once here into hi = bf16(w) and
lo = bf16(w - hi), packed as the 16 x 32 tiles TDPBF16PS reads; the kernel splits the activations
as it reads them. `available()` says whether this process can run the tiles (the CPU has AMX-BF16,
Linux granted the tile state, and CONVFORGE_AMX is not "0"); the plan then takes them for every
dense convolution on blocked input. `conv` is the NumPy definition the kernel is tested against:
the float32 convolution it computes.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from . import blocked as B

PAIR = 32           # input channels of one tile row (two blocks)
TAPS_MAX = 64       # amx.h BAMX_TAPS
STRIDE_MAX = 4      # amx.h BAMX_STRIDE


@functools.lru_cache(maxsize=None)
def _usable():
    from . import cpu
    return bool(cpu.load("amx").usable())


def available():
    """Whether the plan may run convolutions on AMX tiles in this process: CONVFORGE_AMX=0 turns them
    off (the float32 FMA kernels then run every layer)."""
    if os.environ.get("CONVFORGE_AMX", "1").strip() == "0":
        return False
    return _usable()


STAGE_MAX = 1024    # amx.h BAMX_STAGE: the most channels of a stem's im2col row
# A stem (NCHW input, few channels) runs on the tiles only with at least this many multiply-adds per
# output pixel (K x C x R x S): below, building each pixel's im2col row costs more than the FMAs it
# saves. Measured alone, 2 threads, FMA / AMX time: MobileNets' 3x3/2 to 32 channels (864) 0.67-0.70,
# LeNet's 5x5 to 6 (150) 0.81; VGG's 3x3 to 64 (1728) 1.18, ResNet's 7x7/2 to 64 (9408) 1.58,
# AlexNet's 11x11/4 to 96 (34848) 1.70.
STEM_MIN_MACS = 1200


def takes(R, S, sh, sw, C=None, nchw_input=False):
    """Whether the AMX kernel takes a kernel of R x S taps at stride (sh, sw); for a stem reading
    NCHW (`nchw_input`, C channels), whether its im2col rows fit: S <= 16 and C R S <= 1024."""
    if nchw_input:
        return S <= 16 and -(-C * R * S // PAIR) * PAIR <= STAGE_MAX and sh >= 1 and sw >= 1
    return R * S <= TAPS_MAX and 1 <= sh <= STRIDE_MAX and 1 <= sw <= STRIDE_MAX


def faster(K, C, R, S, nchw_input=False):
    """Whether the tiles beat the FMA kernels on a layer the kernel takes: on blocked input with more
    than one block of 16 channels on each side (1.3-3.5x on the zoo's layers; with one input block
    half of every 32-channel TDP reduction is empty, with one output block each input tile feeds one
    TDP group: 16->96 at 112x112 ran 0.92x, 32->16 0.84x, 16->16 0.50x, 24->144 at 56x56 1.72x,
    `python -m benchmarks.amx`), on a stem from STEM_MIN_MACS multiply-adds per pixel."""
    if nchw_input:
        return K * C * R * S >= STEM_MIN_MACS
    return B.blocks(C) >= 2 and B.blocks(K) >= 2


def bf16_split(a):
    """float32 a -> (hi, lo) uint16 bf16 bit patterns, hi = a rounded to nearest even, lo = a - hi
    rounded likewise (the conversion AVX512-BF16 does). Finite values only."""
    a = np.ascontiguousarray(a, dtype=np.float32)

    def rne(v):
        u = v.view(np.uint32).astype(np.uint64)
        return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)

    hi = rne(a)
    rest = a - (hi.astype(np.uint32) << 16).view(np.float32)
    return hi, rne(rest)


def bf16_value(h):
    """uint16 bf16 bit patterns -> their float32 values."""
    return (np.asarray(h, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


class AmxWeights:
    """A dense convolution prepacked for the AMX kernel: w[kt, c2, r*S + s, part, i, 2*o + e] =
    part (0 hi, 1 lo) of weight[kt*16 + o, c2*32 + 2*i + e, r, s] (zero past K or C): per 16 output
    channels, 32 input channels and tap, the 16 x 32 tile TDPBF16PS multiplies by a 16-pixel x
    32-channel input tile. `exact` holds the float32 ConvWeights of the same layer (the definition, and
    the kernel's fallback for an infinite input); the bias is its padded one. `nchw_input`: a stem on
    a zero-padded NCHW input, whose reduction runs over C x R x S (c, r, s) as one 1x1 tap: w is then
    packed from weight.reshape(K, C R S, 1, 1)."""

    def __init__(self, weight, bias, stride, padding, dilation, nchw_input=False):
        K, C, R, S = weight.shape
        if not takes(R, S, *stride, C=C, nchw_input=nchw_input):
            raise ValueError(f"the AMX kernel takes at most {TAPS_MAX} taps and strides up to {STRIDE_MAX} "
                             f"(a stem on NCHW input: S <= 16 and C R S <= {STAGE_MAX}), got {C} channels "
                             f"{R}x{S} at stride {tuple(stride)}")
        w32 = np.asarray(weight, dtype=np.float32)
        if not np.isfinite(w32).all() or np.abs(w32).max(initial=0) >= 3.38e38:
            raise ValueError("weight must be finite and within bfloat16's range for the AMX kernel")
        self.exact = B.ConvWeights(w32, None if bias is None else np.asarray(bias, dtype=np.float32),
                                   stride, padding, dilation, nchw_input=nchw_input)
        for name in ("K", "C", "R", "S", "sh", "sw", "pt", "pl", "dh", "dw", "nchw_input"):
            setattr(self, name, getattr(self.exact, name))
        self.bias = self.exact.bias
        if nchw_input:              # a stem: its im2col rows (c, r, s) are the reduction, one 1x1 tap
            w32, C, R, S = w32.reshape(K, C * R * S, 1, 1), C * R * S, 1, 1
        Kt, C2 = B.blocks(K), -(-C // PAIR)
        wp = np.zeros((Kt * B.BLOCK, C2 * PAIR, R, S), dtype=np.float32)
        wp[:K, :C] = w32
        # (kt, o, c2, i, e, r, s) -> (kt, c2, r, s, i, o, e)
        t = wp.reshape(Kt, B.BLOCK, C2, PAIR // 2, 2, R, S).transpose(0, 2, 5, 6, 3, 1, 4)
        hi, lo = bf16_split(t)
        packed = np.stack([hi.reshape(Kt, C2, R * S, PAIR // 2, PAIR), lo.reshape(Kt, C2, R * S, PAIR // 2, PAIR)],
                          axis=3)
        self.w = B.aligned(packed)


def conv(xb, x_halo, aw, yb, y_halo, residual=None, r_halo=0, act=0):
    """yb = act(conv(x) + bias [+ residual]) for AmxWeights aw: the float32 convolution it computes."""
    B.conv(xb, x_halo, aw.exact, yb, y_halo, residual, r_halo, act)
