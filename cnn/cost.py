"""The cost model: what a convolution costs in arithmetic and in memory traffic, and what the classic
replacements (depthwise-separable convolution, a 1x1 bottleneck before a large filter) save.

Units, always named:
  MACs   multiply-accumulates; one MAC is one multiplication (the "multiplications" of the course's
         worked examples) and one addition.
  FLOPs  floating-point operations = 2 x MACs.
  params trainable numbers (weights, plus one bias per output channel when the layer has biases).
  bytes  the minimum memory traffic of a layer run as one kernel: its input, weights (and biases) and
         output each moved once, at `itemsize` bytes an element (4 for float32, 8 for float64).
  arithmetic intensity  FLOPs per byte, the x-axis of the roofline.
  roofline time  the least time a machine's ceilings allow, max(FLOPs / peak, bytes / bandwidth); a
         chain of layers runs one kernel per layer, so its roofline time is the sum of theirs.

Notation of the course: an n_H x n_W x n_c input, n_c' filters of f x f, stride s, padding p; the output
is floor((n + 2p - f) / s) + 1 on each side. The size arithmetic is kernels.shapes', so the cost model and
the kernels never disagree. The course-notation functions (conv, depthwise_separable, separable_ratio,
bottleneck) pad "same" by default, as the course does; "same" needs stride 1, as in kernels.conv2d and
torch (give the padding as a number at a larger stride). layer_cost takes kernels.conv2d's arguments
and defaults (padding 0), and output_size is the formula itself (p = 0 unless given).

Printing a cost object gives a small table (MACs, params, bytes, intensity, roofline time; for a
replacement the ratios to the normal convolution and the roofline's prediction of the time ratio):

    print(cost.depthwise_separable(40, 40, 96, 160, 3))
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from fractions import Fraction

from kernels.shapes import ConvGeometry, conv_geometry, output_size as _output_size

from .layers.checks import conv_padding, positive_int, positive_pair

__all__ = ["BottleneckCost", "ConvCost", "DEFAULT_ROOFLINE", "Roofline", "SeparableCost", "bottleneck", "conv",
           "conv_params", "depthwise_separable", "layer_cost", "output_size", "separable_ratio",
           "separable_ratio_closed_form"]


@dataclass(frozen=True)
class Roofline:
    """A machine's two ceilings: the FMA peak (GFLOP/s) and the memory bandwidth (GB/s)."""
    peak_gflops: float
    bandwidth_gbps: float

    def __post_init__(self):
        for name in ("peak_gflops", "bandwidth_gbps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")

    @property
    def ridge(self):
        """FLOP per byte where the memory roof meets the compute roof."""
        return self.peak_gflops / self.bandwidth_gbps

    def time(self, flops, nbytes):
        """The least seconds the roofline allows: max(compute time, memory time)."""
        return max(flops / (self.peak_gflops * 1e9), nbytes / (self.bandwidth_gbps * 1e9))

    def __str__(self):
        return f"{self.peak_gflops:g} GFLOP/s, {self.bandwidth_gbps:g} GB/s (ridge {self.ridge:.1f} FLOP/B)"


# The float32 ceilings measured on the project's machine (DESIGN.md: 2-core AMD Zen 5, FMA peak on two
# threads, DRAM copy bandwidth). Pass your machine's (python -m benchmarks prints them) as roofline=.
DEFAULT_ROOFLINE = Roofline(545.0, 50.0)


def _si(v, unit=""):
    """1_234_567 -> '1.23 M' (three significant digits)."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {prefix}{unit}"
    return f"{v:.3g} {unit}".rstrip() if isinstance(v, float) else f"{v} {unit}".rstrip()


def _us(seconds):
    return f"{seconds * 1e6:.3g} us"


def _table(title, rows, notes):
    """rows: (label, output shape text, MACs, params, bytes, intensity, roofline s) -> text."""
    head = ("layer", "output", "MACs", "params", "bytes", "FLOP/B", "roofline")
    body = [(label, out, _si(macs), _si(params), _si(nbytes, "B"), f"{ai:.1f}", _us(t))
            for label, out, macs, params, nbytes, ai, t in rows]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    aligns = "<<>>>>>"

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, aligns, widths)).rstrip()
    return "\n".join([title, line(head)] + [line(b) for b in body] + notes)


@dataclass(frozen=True)
class ConvCost:
    """Cost of one convolution layer. Element counts are whole-batch; bytes use `itemsize`."""
    geometry: ConvGeometry
    bias: bool
    itemsize: int
    roofline: Roofline = field(default=DEFAULT_ROOFLINE, repr=False)

    @property
    def out_shape(self):
        """(N, K, P, Q): batch, n_c', n_H', n_W'."""
        return self.geometry.out_shape

    @property
    def macs(self):
        """Multiply-accumulates (= multiplications): N * P * Q * K * (C / groups) * R * S."""
        return self.geometry.macs

    @property
    def flops(self):
        """Floating-point operations: 2 x MACs (the bias adds are not counted)."""
        return 2 * self.macs

    @property
    def params(self):
        """Weights K * (C / groups) * R * S, plus K biases when the layer has them."""
        g = self.geometry
        return g.K * g.Cg * g.R * g.S + (g.K if self.bias else 0)

    @property
    def input_elements(self):
        g = self.geometry
        return g.N * g.C * g.H * g.W

    @property
    def output_elements(self):
        g = self.geometry
        return g.N * g.K * g.P * g.Q

    @property
    def bytes_moved(self):
        """Minimum traffic in bytes: input read once, weights (and biases) read once, output written once."""
        return (self.input_elements + self.params + self.output_elements) * self.itemsize

    @property
    def arithmetic_intensity(self):
        """FLOPs per byte of the minimum traffic."""
        return self.flops / self.bytes_moved

    @property
    def roofline_s(self):
        """The least time the roofline allows this layer, in seconds."""
        return self.roofline.time(self.flops, self.bytes_moved)

    @property
    def label(self):
        g = self.geometry
        if g.groups == g.C and g.groups > 1:
            kind = "depthwise"
        elif g.R == g.S == 1:
            kind = "pointwise"
        else:
            kind = "conv"
        return f"{kind} {g.R}x{g.S} {g.C}->{g.K}" + (f" groups={g.groups}" if 1 < g.groups < g.C else "")

    def _row(self, label=None):
        return (label or self.label, "x".join(map(str, self.out_shape)), self.macs, self.params,
                self.bytes_moved, self.arithmetic_intensity, self.roofline_s)

    def __str__(self):
        g = self.geometry
        pads = (g.pad_top, g.pad_bottom, g.pad_left, g.pad_right)
        title = (f"{self.label} on {g.N}x{g.C}x{g.H}x{g.W} (stride {(g.sh, g.sw)}, padding t/b/l/r {pads}, "
                 f"{self.itemsize} bytes/element)")
        return _table(title, [self._row()], [f"roofline: {self.roofline}"])

    __repr__ = __str__


@dataclass(frozen=True)
class _Chain:
    """Layers run one after another, each as its own kernel, compared with the `normal` convolution
    they replace: the sums, the ratios and the roofline's prediction of the time ratio."""

    @property
    def stages(self):
        raise NotImplementedError

    @property
    def macs(self):
        return sum(s.macs for s in self.stages)

    @property
    def flops(self):
        return 2 * self.macs

    @property
    def params(self):
        return sum(s.params for s in self.stages)

    @property
    def bytes_moved(self):
        """Each stage's minimum traffic: the intermediate is written by one kernel and read by the next."""
        return sum(s.bytes_moved for s in self.stages)

    @property
    def arithmetic_intensity(self):
        return self.flops / self.bytes_moved

    @property
    def roofline_s(self):
        return sum(s.roofline_s for s in self.stages)

    def _normal(self):
        if self.normal is None:
            raise ValueError(f"this {type(self).__name__} was built without the normal convolution it replaces")
        return self.normal

    @property
    def ratio(self):
        """MACs of the replacement / MACs of the normal convolution, exact."""
        return Fraction(self.macs, self._normal().macs)

    @property
    def bytes_ratio(self):
        return self.bytes_moved / self._normal().bytes_moved

    @property
    def roofline_ratio(self):
        """The roofline's prediction of the time ratio, replacement / normal."""
        return self.roofline_s / self._normal().roofline_s

    def _text(self, title, formula):
        rows = ([self.normal._row("normal " + self.normal.label)] if self.normal is not None else []) + \
            [s._row() for s in self.stages] + \
            [("replacement total", "", self.macs, self.params, self.bytes_moved, self.arithmetic_intensity,
              self.roofline_s)]
        notes = []
        if self.normal is not None:
            notes.append(f"replacement / normal: MACs {float(self.ratio):.4f}{formula}, params "
                         f"{self.params / self.normal.params:.3f}, bytes {self.bytes_ratio:.3f}, roofline time "
                         f"{self.roofline_ratio:.3f}")
        notes.append(f"roofline: {self.stages[0].roofline}")
        return _table(title, rows, notes)


@dataclass(frozen=True)
class SeparableCost(_Chain):
    """A depthwise f x f convolution (one filter per input channel) followed by a pointwise 1x1 one,
    and the normal f x f convolution it replaces (None when built by hand without it)."""
    depthwise: ConvCost
    pointwise: ConvCost
    normal: ConvCost | None = None

    @property
    def stages(self):
        return (self.depthwise, self.pointwise)

    def __str__(self):
        g, pw = self.depthwise.geometry, self.pointwise.geometry
        title = (f"depthwise-separable {g.R}x{g.S}, {g.C} -> {pw.K} channels, on {g.N}x{g.C}x{g.H}x{g.W}")
        formula = f" (= 1/{pw.K} + 1/{g.R * g.S})" if g.R == g.S else ""
        return self._text(title, formula)

    __repr__ = __str__


@dataclass(frozen=True)
class BottleneckCost(_Chain):
    """A 1x1 convolution that reduces the channels (n_c -> n_c_mid) followed by the large filter, and
    the plain large filter it replaces (None when built by hand without it)."""
    reduce: ConvCost
    conv: ConvCost
    normal: ConvCost | None = None

    @property
    def stages(self):
        return (self.reduce, self.conv)

    def __str__(self):
        r, c = self.reduce.geometry, self.conv.geometry
        title = (f"1x1 bottleneck {r.C} -> {r.K} before {c.R}x{c.S} -> {c.K}, on {r.N}x{r.C}x{r.H}x{r.W}")
        return self._text(title, "")

    __repr__ = __str__


def _itemsize(itemsize):
    if isinstance(itemsize, bool) or not isinstance(itemsize, int) or itemsize < 1:
        raise ValueError(f"itemsize must be a positive number of bytes, got {itemsize!r}")
    return itemsize


def _roofline(roofline):
    if roofline is None:
        return DEFAULT_ROOFLINE
    if not isinstance(roofline, Roofline):
        raise TypeError(f"roofline must be a cost.Roofline(peak_gflops, bandwidth_gbps), got {roofline!r}")
    return roofline


def output_size(n, f, stride=1, padding=0, dilation=1):
    """floor((n + 2p - d(f - 1) - 1) / s) + 1 along one axis, which is floor((n + 2p - f) / s) + 1
    without dilation. All arguments are ints."""
    for name, v in (("n", n), ("f", f), ("stride", stride), ("padding", padding), ("dilation", dilation)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {v!r}")
    if n < 1 or f < 1 or stride < 1 or dilation < 1:
        raise ValueError(f"n, f, stride and dilation must be positive, got n={n}, f={f}, stride={stride}, "
                         f"dilation={dilation}")
    if padding < 0:
        raise ValueError(f"padding must be non-negative, got {padding}")
    if dilation * (f - 1) + 1 > n + 2 * padding:
        raise ValueError(f"filter f={f} (dilation {dilation}) is larger than the padded input {n + 2 * padding}")
    return _output_size(n, f, stride, padding, padding, dilation)


def conv_params(n_c, n_c_out, f, *, groups=1, bias=True):
    """Parameters of n_c_out filters of f x f x (n_c / groups), plus one bias per filter when bias."""
    n_c, n_c_out, groups = positive_int(n_c, "n_c"), positive_int(n_c_out, "n_c_out"), positive_int(groups, "groups")
    fh, fw = positive_pair(f, "f")
    if n_c % groups or n_c_out % groups:
        raise ValueError(f"groups={groups} must divide n_c={n_c} and n_c_out={n_c_out}")
    return n_c_out * ((n_c // groups) * fh * fw + (1 if bias else 0))


def layer_cost(x_shape, w_shape, *, stride=1, padding=0, dilation=1, groups=1, bias=False, itemsize=4,
               roofline=None):
    """Cost of kernels.conv2d(x, w, ...) on x (N, C, H, W) and w (K, C // groups, R, S), with
    kernels.conv2d's defaults: the per-layer figures of the roofline (MACs, bytes, intensity)."""
    g = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    return ConvCost(g, bool(bias), _itemsize(itemsize), _roofline(roofline))


def conv(n_h, n_w, n_c, n_c_out, f, *, stride=1, padding="same", groups=1, bias=False, batch=1, itemsize=4,
         roofline=None):
    """Cost of a convolution in the course's notation: an n_h x n_w x n_c input, n_c_out filters of
    f x f x (n_c / groups); padding "same" (stride 1), "valid", an int or an (h, w) pair."""
    n_h, n_w = positive_int(n_h, "n_h"), positive_int(n_w, "n_w")
    n_c, n_c_out, groups = positive_int(n_c, "n_c"), positive_int(n_c_out, "n_c_out"), positive_int(groups, "groups")
    batch = positive_int(batch, "batch")
    fh, fw = positive_pair(f, "f")
    stride = positive_pair(stride, "stride")
    if padding == "same" and stride != (1, 1):
        raise ValueError(f"padding='same' needs stride 1 (as kernels.conv2d and torch), got stride={stride}: "
                         f"give the padding as a number, e.g. padding={(fh - 1) // 2} for the course's "
                         f"p = (f - 1) / 2")
    padding = conv_padding(padding, stride)
    if n_c % groups:
        raise ValueError(f"groups={groups} does not divide n_c={n_c}")
    return layer_cost((batch, n_c, n_h, n_w), (n_c_out, n_c // groups, fh, fw), stride=stride, padding=padding,
                      groups=groups, bias=bias, itemsize=itemsize, roofline=roofline)


def depthwise_separable(n_h, n_w, n_c, n_c_out, f, *, stride=1, padding="same", bias=False, batch=1, itemsize=4,
                        roofline=None):
    """Cost of the depthwise-separable replacement of conv(n_h, n_w, n_c, n_c_out, f, ...): a depthwise
    f x f convolution (n_c filters of f x f x 1: f*f*n_c MACs per output pixel) carrying the stride and
    padding, then a pointwise 1x1 convolution (n_c * n_c_out MACs per output pixel). Holds that normal
    convolution too, for the ratios."""
    kw = dict(bias=bias, batch=batch, itemsize=itemsize, roofline=roofline)
    normal = conv(n_h, n_w, n_c, n_c_out, f, stride=stride, padding=padding, **kw)
    dw = conv(n_h, n_w, n_c, n_c, f, stride=stride, padding=padding, groups=n_c, **kw)
    _, _, p, q = dw.out_shape
    pw = conv(p, q, n_c, n_c_out, 1, **kw)
    return SeparableCost(dw, pw, normal)


def separable_ratio(n_h, n_w, n_c, n_c_out, f, *, stride=1, padding="same"):
    """MACs of the depthwise-separable version / MACs of the normal convolution, as an exact fraction."""
    return depthwise_separable(n_h, n_w, n_c, n_c_out, f, stride=stride, padding=padding).ratio


def separable_ratio_closed_form(n_c_out, f):
    """The same ratio in closed form, 1/n_c' + 1/f^2: per output pixel the separable version does
    f^2 n_c + n_c n_c' MACs where the normal one does f^2 n_c n_c'."""
    return Fraction(1, positive_int(n_c_out, "n_c_out")) + Fraction(1, positive_int(f, "f") ** 2)


def bottleneck(n_h, n_w, n_c, n_c_mid, n_c_out, f, *, stride=1, padding="same", bias=False, batch=1,
               itemsize=4, roofline=None):
    """Cost of a 1x1 convolution down to n_c_mid channels followed by n_c_out filters of f x f (carrying
    the stride and padding), and of the plain conv(n_h, n_w, n_c, n_c_out, f, ...) it replaces."""
    kw = dict(bias=bias, batch=batch, itemsize=itemsize, roofline=roofline)
    normal = conv(n_h, n_w, n_c, n_c_out, f, stride=stride, padding=padding, **kw)
    reduce = conv(n_h, n_w, n_c, n_c_mid, 1, **kw)
    big = conv(n_h, n_w, n_c_mid, n_c_out, f, stride=stride, padding=padding, **kw)
    return BottleneckCost(reduce, big, normal)
