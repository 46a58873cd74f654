"""DESIGN.md's benchmark layer set, typed in as data, and the arrays to run a layer on.

Columns: name, batch N, input channels C, H = W, output channels K, R = S, stride, padding, groups.
The class of a layer decides which bars it counts towards: "depthwise" (groups == C), "pointwise"
(1x1, no padding) or "regular" (everything else: 3x3 and larger dense convolutions).

A user's own layer comes from `--shape N,C,H,K,R[,stride,pad,groups]` (parse_shape): stride 1, padding
"same" and groups 1 unless given, as in cnn.cost; "same" needs stride 1, so a strided layer gives its
padding as a number.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import numpy as np

from kernels.shapes import ConvGeometry, conv_geometry

#  name            N     C    HW     K  RS str pad groups
LAYER_TABLE = [
    ("lenet.c1",     64,    1,  32,    6, 5, 1, 0,    1),
    ("alexnet.c1",    1,    3, 227,   96, 11, 4, 0,   1),
    ("vgg.c1_2",      1,   64, 224,   64, 3, 1, 1,    1),
    ("vgg.c3_2",      1,  256,  56,  256, 3, 1, 1,    1),
    ("vgg.c5_2",      1,  512,  14,  512, 3, 1, 1,    1),
    ("r50.conv1",     1,    3, 224,   64, 7, 2, 3,    1),
    ("r50.2a_3x3",    1,   64,  56,   64, 3, 1, 1,    1),
    ("r50.2a_1x1in",  1,   64,  56,   64, 1, 1, 0,    1),
    ("r50.2a_1x1out", 1,   64,  56,  256, 1, 1, 0,    1),
    ("r50.4a_3x3",    1,  256,  14,  256, 3, 1, 1,    1),
    ("r50.5a_1x1",    1, 2048,   7,  512, 1, 1, 0,    1),
    ("incep.5x5",     1,  192,  28,   32, 5, 1, 2,    1),
    ("incep.1x1red",  1,  192,  28,   16, 1, 1, 0,    1),
    ("incep.5x5red",  1,   16,  28,   32, 5, 1, 2,    1),
    ("mv2.dw112",     1,   32, 112,   32, 3, 1, 1,   32),
    ("mv2.dw112s2",   1,   96, 112,   96, 3, 2, 1,   96),
    ("mv2.dw56",      1,  144,  56,  144, 3, 1, 1,  144),
    ("mv2.dw14",      1,  576,  14,  576, 3, 1, 1,  576),
    ("mv2.dw7",       1,  960,   7,  960, 3, 1, 1,  960),
    ("effb0.dw14k5",  1,  672,  14,  672, 5, 1, 2,  672),
    ("effb0.dw7k5",   1, 1152,   7, 1152, 5, 1, 2, 1152),
    ("mv2.pw56",      1,  144,  56,   24, 1, 1, 0,    1),
    ("mv2.pw7",       1,  960,   7,  320, 1, 1, 0,    1),
    ("b8.vgg.c3_2",   8,  256,  56,  256, 3, 1, 1,    1),
    ("b8.mv2.dw56",   8,  144,  56,  144, 3, 1, 1,  144),
    # beyond DESIGN.md's set (issue 8): the small-plane and stride-2 3x3s where ResNets spend their time
    ("r18.5x_3x3",    1,  512,   7,  512, 3, 1, 1,    1),
    ("r50.3a_3x3s2",  1,  128,  56,  128, 3, 2, 1,    1),
    ("r50.4a_3x3s2",  1,  256,  28,  256, 3, 2, 1,    1),
    ("r50.5a_3x3s2",  1,  512,  14,  512, 3, 2, 1,    1),
]

CLASSES = ("regular", "pointwise", "depthwise")

# The layers whose timings the bars single out.
SMALLEST = ("lenet.c1", "mv2.dw7")
SCALING_LAYER = "vgg.c3_2"


@dataclass(frozen=True)
class Layer:
    name: str
    N: int
    C: int
    HW: int
    K: int
    RS: int
    stride: int
    pad: int | str         # an int, or "same" / "valid" (a --shape layer)
    groups: int

    @property
    def x_shape(self):
        return (self.N, self.C, self.HW, self.HW)

    @property
    def w_shape(self):
        return (self.K, self.C // self.groups, self.RS, self.RS)

    @property
    def geometry(self) -> ConvGeometry:
        return conv_geometry(self.x_shape, self.w_shape, self.stride, self.pad, 1, self.groups)

    @property
    def layer_class(self):
        g = self.geometry
        if g.groups > 1 and g.is_depthwise:
            return "depthwise"
        if g.is_pointwise:
            return "pointwise"
        return "regular"

    def arrays(self, dtype=np.float32, seed=0):
        """Random x, w and bias (never zeros) in `dtype`."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.x_shape).astype(dtype)
        w = (rng.standard_normal(self.w_shape) / np.sqrt(np.prod(self.w_shape[1:]))).astype(dtype)
        b = rng.standard_normal(self.K).astype(dtype)
        return x, w, b


LAYERS = [Layer(*row) for row in LAYER_TABLE]
BY_NAME = {layer.name: layer for layer in LAYERS}


def matching(names, pattern):
    """The names that match a comma-separated list of shell patterns, in their order."""
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in pats)]


def select(pattern: str | None = None):
    """The layers whose name matches a comma-separated list of shell patterns (all when None)."""
    if not pattern:
        return list(LAYERS)
    chosen = set(matching(BY_NAME, pattern))
    if not chosen:
        raise ValueError(f"--layers {pattern!r} matches no layer of the kernels suite: {', '.join(BY_NAME)}")
    return [layer for layer in LAYERS if layer.name in chosen]


SHAPE_FIELDS = "N,C,H,K,R[,stride,pad,groups]"


def _field(text, name, low=1):
    try:
        v = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an int, got {text!r}") from None
    if v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return v


def parse_shape(text: str) -> Layer:
    """`--shape N,C,H,K,R[,stride,pad,groups]` -> a Layer (H = W, R = S); pad is an int, "same" or
    "valid" (default "same", which needs stride 1). Raises ValueError saying what is wrong."""
    parts = [p.strip() for p in text.split(",")]
    if not 5 <= len(parts) <= 8:
        raise ValueError(f"--shape takes {SHAPE_FIELDS}, got {text!r}")
    N, C, H, K, R = (_field(v, name) for v, name in zip(parts[:5], ("N", "C", "H", "K", "R")))
    stride = _field(parts[5], "stride") if len(parts) > 5 else 1
    pad = parts[6] if len(parts) > 6 else "same"
    if pad not in ("same", "valid"):
        pad = _field(pad, "pad", low=0)
    groups = _field(parts[7], "groups") if len(parts) > 7 else 1
    if pad == "same" and stride != 1:
        raise ValueError(f"--shape {text}: padding 'same' needs stride 1; give the padding, e.g. "
                         f"{N},{C},{H},{K},{R},{stride},{(R - 1) // 2}")
    name = f"shape {N},{C},{H},{K},{R},{stride},{pad},{groups}"
    layer = Layer(name, N, C, H, K, R, stride, pad, groups)
    try:
        layer.geometry
    except (ValueError, TypeError) as e:
        raise ValueError(f"--shape {text}: {e}") from None
    return layer
