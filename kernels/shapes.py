"""Output-size arithmetic and argument checks, shared by the reference, the CPU and the GPU kernels.

Everything a kernel needs to know about a convolution is resolved here once, into a `ConvGeometry`:
the output size is floor((n + pad_begin + pad_end - dilation*(f-1) - 1) / stride) + 1 per axis.
Kernels treat every input index outside [0, H) x [0, W) as zero, so only the top/left padding and
the output size (P, Q) reach them; the bottom/right padding is implied.

Every geometry also has a `plan` (kernels.canonical): the tame geometry the kernels run and the
gathers that bring x to it, so that no kernel is ever handed a stride, dilation, padding or pooling
window far larger than its input. It is resolved on first use (shape arithmetic alone never pays
for it) and then kept on the geometry, which the memo below shares between calls.
"""
from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

from . import canonical

ALGORITHMS = ("direct", "im2col", "pointwise", "depthwise")

# Largest flat index the kernels address with 64-bit arithmetic; anything past it is refused.
MAX_ELEMENTS = 2**62


def _as_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(value)


def pair(value, name):
    """An int or a 2-sequence of ints -> (h, w)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
        return _as_int(value[0], name), _as_int(value[1], name)
    v = _as_int(value, name)
    return v, v


def positive_pair(value, name):
    """An int or an (h, w) pair of ints, both >= 1 -> (h, w)."""
    h, w = pair(value, name)
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return h, w


def resolve_padding(padding, R, S, stride, dilation):
    """-> (top, bottom, left, right). "same" keeps the size at stride 1; an even kernel pads the extra
    row/column at the bottom/right (TensorFlow's and PyTorch's convention). The strings are lower case,
    as torch takes them."""
    if isinstance(padding, str):
        mode = padding
        if mode == "valid":
            return 0, 0, 0, 0
        if mode == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
            th, tw = dilation[0] * (R - 1), dilation[1] * (S - 1)
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        hint = " (padding strings are lower case)" if padding.lower() in ("same", "valid") else ""
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}{hint}")
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return ph, ph, pw, pw


def output_size(n, f, stride, pad_begin, pad_end, dilation, *, ceil_mode=False):
    """floor((n + pads - dilation*(f-1) - 1) / stride) + 1 (or ceil, as pooling's ceil_mode asks)."""
    span = n + pad_begin + pad_end - dilation * (f - 1) - 1
    if span < 0:
        return 0
    if ceil_mode:
        out = -(-span // stride) + 1
        # PyTorch: the last window must start inside the input or the left padding
        if (out - 1) * stride >= n + pad_begin:
            out -= 1
        return out
    return span // stride + 1


@dataclass(frozen=True)
class ConvGeometry:
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    sh: int
    sw: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    dh: int
    dw: int
    groups: int
    P: int
    Q: int

    @functools.cached_property
    def plan(self):
        """canonical.ConvPlan: the geometry the kernels run and how x gets there (computed once)."""
        return canonical.conv_plan(self)

    @property
    def Cg(self):
        """Input channels per group (the weight's second axis)."""
        return self.C // self.groups

    @property
    def Kg(self):
        """Output channels per group."""
        return self.K // self.groups

    @property
    def out_shape(self):
        return (self.N, self.K, self.P, self.Q)

    @property
    def macs(self):
        return self.N * self.K * self.P * self.Q * self.Cg * self.R * self.S

    @property
    def is_depthwise(self):
        return self.groups == self.C and self.K % self.C == 0

    @property
    def is_pointwise(self):
        return (self.R == 1 and self.S == 1 and self.pad_top == self.pad_bottom == 0
                and self.pad_left == self.pad_right == 0)


def _plain(v):
    """None, a bool, an int, a string or a tuple of ints (a pair, a weight shape), by exact type.
    Only such arguments are memoised: True == 1 and 2.0 == 2 hash alike, so a memo would hand them
    1's or 2's geometry instead of their TypeError. The memo is typed (True and 1 are separate
    entries at the top level); inside a tuple only exact ints pass."""
    if type(v) is tuple:
        return all(type(e) is int for e in v)
    return v is None or type(v) in (bool, int, str)


def memoised_geometry(resolve):
    """Wrap a geometry resolver(x_shape, *args): networks ask for the same few geometries on every
    forward pass, and the checks cost microseconds. Successful resolutions with plain arguments are
    cached; anything else is resolved (and its errors raised) afresh."""
    cached = functools.lru_cache(maxsize=1024, typed=True)(resolve)

    @functools.wraps(resolve)
    def geometry(x_shape, *args):
        if all(_plain(a) for a in args):
            return cached(tuple(x_shape), *args)
        return resolve(tuple(x_shape), *args)
    return geometry


def conv_geometry(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """Check a convolution's arguments and resolve its geometry. Raises ValueError/TypeError naming
    the offending argument."""
    return _conv_geometry(x_shape, tuple(w_shape), stride, padding, dilation, groups)


@memoised_geometry
def _conv_geometry(x_shape, w_shape, stride, padding, dilation, groups):
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {x_shape}")
    if len(w_shape) != 4:
        raise ValueError(f"w must be 4-D (K, C // groups, R, S), got shape {w_shape}")
    N, C, H, W = (int(v) for v in x_shape)
    K, Cg, R, S = (int(v) for v in w_shape)
    groups = _as_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    stride = positive_pair(stride, "stride")
    dilation = positive_pair(dilation, "dilation")
    if C < 1:
        raise ValueError(f"x must have at least one channel, got shape {x_shape}")
    if H < 1 or W < 1:
        # as PyTorch: an empty plane is refused even where padding would give it an output
        raise ValueError(f"x must have a non-empty plane (H, W >= 1; only the batch may be empty), "
                         f"got shape {x_shape}")
    if R < 1 or S < 1:
        raise ValueError(f"w must have a kernel of at least 1x1, got shape {w_shape}")
    if C % groups:
        raise ValueError(f"groups={groups} does not divide the input channels C={C}")
    if K % groups:
        raise ValueError(f"groups={groups} does not divide the output channels K={K}")
    if Cg * groups != C:
        raise ValueError(
            f"channel mismatch: x has C={C} channels, w expects {Cg} per group x groups={groups} = {Cg * groups}")
    top, bottom, left, right = resolve_padding(padding, R, S, stride, dilation)
    eff_r, eff_s = dilation[0] * (R - 1) + 1, dilation[1] * (S - 1) + 1
    if eff_r > H + top + bottom or eff_s > W + left + right:
        raise ValueError(
            f"kernel {R}x{S} (dilated {eff_r}x{eff_s}) is larger than the padded input "
            f"{H + top + bottom}x{W + left + right}")
    P = output_size(H, R, stride[0], top, bottom, dilation[0])
    Q = output_size(W, S, stride[1], left, right, dilation[1])
    g = ConvGeometry(N, C, H, W, K, R, S, stride[0], stride[1], top, bottom, left, right,
                     dilation[0], dilation[1], groups, P, Q)
    for what, size in (("x", N * C * H * W), ("output", N * K * P * Q), ("w", K * Cg * R * S)):
        if size >= MAX_ELEMENTS:
            raise ValueError(f"{what} has {size} elements, more than this package indexes ({MAX_ELEMENTS})")
    return g


def conv2d_output_shape(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """(N, C, H, W), (K, C // groups, R, S) -> (N, K, P, Q)."""
    return conv_geometry(x_shape, w_shape, stride, padding, dilation, groups).out_shape


def check_algorithm(algorithm, g: ConvGeometry):
    """Raise ValueError saying why `algorithm` cannot compute geometry `g`."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be 'auto' or one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "pointwise" and not g.is_pointwise:
        raise ValueError(
            f"algorithm='pointwise' needs a 1x1 kernel without padding, got {g.R}x{g.S} kernel, "
            f"padding (top, bottom, left, right) = {(g.pad_top, g.pad_bottom, g.pad_left, g.pad_right)}")
    if algorithm == "depthwise" and not g.is_depthwise:
        raise ValueError(
            f"algorithm='depthwise' needs groups == C and K a multiple of C, got groups={g.groups}, "
            f"C={g.C}, K={g.K}")


@dataclass(frozen=True)
class PoolGeometry:
    """A 2-D pooling window over x (N, C, H, W): kernel (kh, kw), stride, symmetric padding (ph, pw),
    dilation, and the output size (P, Q) that ceil_mode chose."""
    N: int
    C: int
    H: int
    W: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    P: int
    Q: int

    @functools.cached_property
    def plan(self):
        """canonical.PoolPlan: the window the kernels run and how x gets there (computed once)."""
        return canonical.pool_plan(self)

    @property
    def out_shape(self):
        return (self.N, self.C, self.P, self.Q)


def pool_geometry(x_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Check a pooling window's arguments (PyTorch's rules) and resolve its geometry. stride None means
    the kernel size; padding may be at most half the kernel; ceil_mode keeps a last partial window only
    when it starts inside the input or the left padding. Raises ValueError/TypeError naming the argument."""
    return _pool_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode)


@memoised_geometry
def _pool_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {x_shape}")
    N, C, H, W = (int(v) for v in x_shape)
    if C < 1 or H < 1 or W < 1:
        raise ValueError(f"x must have non-empty C, H and W (only the batch may be empty), got shape {x_shape}")
    kh, kw = positive_pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else positive_pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"padding must be at most half the kernel size, got padding={padding!r} "
                         f"for kernel_size={kernel_size!r}")
    dh, dw = positive_pair(dilation, "dilation")
    # a Python bool or a NumPy bool scalar (whose .item() is a bool)
    if not isinstance(ceil_mode, bool) and not (type(ceil_mode).__module__ == "numpy"
                                                and isinstance(getattr(ceil_mode, "item", lambda: None)(), bool)):
        raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
    P = output_size(H, kh, sh, ph, ph, dh, ceil_mode=bool(ceil_mode))
    Q = output_size(W, kw, sw, pw, pw, dw, ceil_mode=bool(ceil_mode))
    if P < 1 or Q < 1:
        raise ValueError(f"kernel_size={kernel_size!r} (dilation={dilation!r}) is larger than the padded "
                         f"input {H + 2 * ph}x{W + 2 * pw}")
    for what, size in (("x", N * C * H * W), ("output", N * C * P * Q)):
        if size >= MAX_ELEMENTS:
            raise ValueError(f"{what} has {size} elements, more than this package indexes ({MAX_ELEMENTS})")
    return PoolGeometry(N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, P, Q)
