"""Shape propagation: `Spec`, an array's shape and dtype without its data, and `ShapeOps`, the op set
that checks every op's arguments as the kernel would and returns the output's Spec.

A Spec takes the Python operators a user's forward pass applies to activations (+, -, *, / with
numpy's broadcasting, unary -, basic indexing, reshape, mean/sum over axes), so that a custom Module
written with them runs under cnn.summary as it does on arrays.

With a recorder, ShapeOps follows the module calls (Module.__call__ enters and leaves) and counts the
multiply-accumulates of each conv and linear op against the innermost module running, so that MACs
done by a user's own functional calls are counted where they happen.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from kernels.shapes import conv_geometry, pool_geometry


def _shape_of(v):
    """The shape of an operand: a Spec, an array, or a Python / numpy scalar (shape ())."""
    if isinstance(v, (Spec, np.ndarray)) or (hasattr(v, "shape") and hasattr(v, "dtype")):
        return tuple(v.shape)
    if isinstance(v, numbers.Number):
        return ()
    raise TypeError(f"unsupported operand {type(v).__name__} for an activation")


def _dtype_of(v):
    return v.dtype if hasattr(v, "dtype") else v      # Python scalars stay "weak", as numpy treats them


def broadcast(a, b, what):
    """The Spec of an elementwise op on a and b (numpy's broadcasting and type promotion)."""
    try:
        shape = np.broadcast_shapes(_shape_of(a), _shape_of(b))
    except ValueError:
        raise ValueError(f"{what}: shapes {_shape_of(a)} and {_shape_of(b)} do not broadcast") from None
    return Spec(shape, np.result_type(_dtype_of(a), _dtype_of(b)))


def _axes(axis, ndim):
    axes = range(ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    out = set()
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for {ndim} dimensions")
        out.add(a % ndim)
    return out


class Spec:
    """An array's shape and dtype without its data: what ShapeOps propagates."""
    __slots__ = ("shape", "dtype")
    is_spec = True
    __array_ufunc__ = None      # numpy arrays and scalars hand their operators over to the Spec's

    def __init__(self, shape, dtype=np.float32):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return math.prod(self.shape)

    def __repr__(self):
        return f"Spec({self.shape}, {self.dtype})"

    # elementwise arithmetic, numpy's rules
    def __add__(self, other):
        return broadcast(self, other, "+")

    def __sub__(self, other):
        return broadcast(self, other, "-")

    def __mul__(self, other):
        return broadcast(self, other, "*")

    def __truediv__(self, other):
        return broadcast(self, other, "/")

    __radd__, __rsub__, __rmul__, __rtruediv__ = __add__, __sub__, __mul__, __truediv__

    def __neg__(self):
        return Spec(self.shape, self.dtype)

    __pos__ = __neg__

    def __getitem__(self, index):
        # a zero-strided view of the shape answers basic indexing without holding any data
        view = np.broadcast_to(np.empty((), dtype=np.bool_), self.shape)
        return Spec(view[index].shape, self.dtype)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        shape = [int(d) for d in shape]
        if shape.count(-1) > 1:
            raise ValueError("reshape: only one dimension can be -1")
        known = math.prod(d for d in shape if d != -1)
        if -1 in shape:
            if known == 0 or self.size % known:
                raise ValueError(f"cannot reshape {self.shape} into {tuple(shape)}")
            shape[shape.index(-1)] = self.size // known
        if math.prod(shape) != self.size:
            raise ValueError(f"cannot reshape {self.shape} into {tuple(shape)}")
        return Spec(shape, self.dtype)

    def mean(self, axis=None, keepdims=False):
        axes = _axes(axis, self.ndim)
        if keepdims:
            return Spec(tuple(1 if i in axes else d for i, d in enumerate(self.shape)), self.dtype)
        return Spec(tuple(d for i, d in enumerate(self.shape) if i not in axes), self.dtype)

    sum = mean


def _flat_shape(shape, start_dim, end_dim):
    n = len(shape)
    s, e = start_dim % n if n else 0, end_dim % n if n else 0
    if not (-n <= start_dim < n and -n <= end_dim < n) or s > e:
        raise ValueError(f"flatten: start_dim={start_dim}, end_dim={end_dim} do not fit shape {shape}")
    return shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:]


class ShapeOps:
    """Shape propagation: each op checks its arguments as the kernel would and returns the output's
    Spec. With a recorder, `recorder(module, args, output, number, macs)` is called as each module's
    call ends: `number` orders the calls as they began, `macs` counts the multiply-accumulates of the
    ops the module ran itself (not inside its children); total_macs counts every op's."""
    name = "shape"
    fuses = False
    strict = False
    host64 = False

    def __init__(self, recorder=None):
        self.records = recorder is not None
        self._recorder = recorder
        self._frames = []          # [call number, MACs of its own op calls] per module running, innermost last
        self._calls = 0
        self.total_macs = 0

    def enter(self, module):
        self._frames.append([self._calls, 0])
        self._calls += 1

    def leave(self):
        """-> (call number, MACs) of the module call that ends: the number counts the calls in the
        order they began (a module before its children); the MACs are its own ops', not its children's."""
        return tuple(self._frames.pop())

    def record(self, module, args, y, call):
        self._recorder(module, args, y, *call)

    def _count(self, macs):
        self.total_macs += macs
        if self._frames:
            self._frames[-1][1] += macs

    def conv2d(self, x, w, b, *, stride, padding, dilation, groups, algorithm="auto", activation=None):
        g = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
        self._count(g.macs)
        return Spec(g.out_shape, x.dtype)

    def batch_norm(self, x, mean, var, gamma, beta, eps):
        if x.ndim != 4 or x.shape[1] != mean.shape[0]:
            raise ValueError(f"BatchNorm2d over {mean.shape[0]} channels got input of shape {x.shape}")
        return Spec(x.shape, x.dtype)

    def max_pool2d(self, x, kernel_size, stride, padding, dilation, ceil_mode):
        return Spec(pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode).out_shape, x.dtype)

    def avg_pool2d(self, x, kernel_size, stride, padding, ceil_mode, count_include_pad):
        return Spec(pool_geometry(x.shape, kernel_size, stride, padding, 1, ceil_mode).out_shape, x.dtype)

    def global_avg_pool2d(self, x):
        return Spec(x.shape[:2] + (1, 1), x.dtype)

    def adaptive_avg_pool2d(self, x, out_hw):
        return Spec(x.shape[:2] + tuple(out_hw), x.dtype)

    def local_response_norm(self, x, size, alpha, beta, k):
        return Spec(x.shape, x.dtype)

    def linear(self, x, w, b):
        if x.shape[-1] != w.shape[1]:
            raise ValueError(f"Linear expects {w.shape[1]} input features, got input of shape {x.shape}")
        out = x.shape[:-1] + (w.shape[0],)
        self._count(math.prod(out) * w.shape[1])
        return Spec(out, x.dtype)

    def _same(self, x, *args, **kw):
        return Spec(x.shape, x.dtype)

    relu = relu6 = tanh = sigmoid = silu = softmax = _same

    def add(self, a, b):
        return broadcast(a, b, "add")

    def add_(self, a, b):
        y = broadcast(a, b, "residual add")
        if y.shape != a.shape:
            raise ValueError(f"residual add: {b.shape} does not broadcast into {a.shape}")
        return Spec(a.shape, a.dtype)

    def mul(self, x, s, inplace):
        y = broadcast(x, s, "mul")
        if inplace and y.shape != x.shape:
            raise ValueError(f"in-place mul: {_shape_of(s)} does not broadcast into {x.shape}")
        return y

    def concat(self, xs, axis):
        first = xs[0].shape
        axis = axis % len(first)
        for x in xs[1:]:
            if len(x.shape) != len(first) or \
                    x.shape[:axis] + x.shape[axis + 1:] != first[:axis] + first[axis + 1:]:
                raise ValueError(f"concat along axis {axis}: shapes {first} and {x.shape} do not match")
        return Spec(first[:axis] + (sum(x.shape[axis] for x in xs),) + first[axis + 1:], xs[0].dtype)

    def flatten(self, x, start_dim, end_dim=-1):
        return Spec(_flat_shape(x.shape, start_dim, end_dim), x.dtype)
