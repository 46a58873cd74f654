"""Tracing a network into a graph of ops, for the inference plan.

The forward pass runs once under `TraceOps`, an op set like cnn.summary's ShapeOps whose values are
`Sym`s (a Spec with an id): every op call appends a `Node` (op name, input value ids, attributes,
output value id) to a `Graph`. The op set fuses as the fast one does (Conv -> BatchNorm folds, ReLU
rides in the conv), so the graph holds exactly the calls FAST would make, with the folded weights.
Python operators a user's forward applies to activations (+, *) are recorded too. An op the plan has
no kernel for is recorded as a "fallback" node holding the FAST op's name and arguments: it runs on
NCHW arrays, so any network built from cnn.layers can be planned.
"""
from __future__ import annotations

import numpy as np

from kernels.shapes import conv_geometry, pool_geometry

from ..layers import ops as _ops
from ..layers.shape_ops import ShapeOps, Spec, broadcast


class Node:
    __slots__ = ("op", "inputs", "attrs", "out")

    def __init__(self, op, inputs, attrs, out):
        self.op, self.inputs, self.attrs, self.out = op, list(inputs), dict(attrs), out

    def __repr__(self):
        return f"Node({self.op}, {self.inputs} -> {self.out})"


class Graph:
    """Nodes in execution order; values are ints, `shapes[v]` their logical shapes (NCHW for 4-D)."""

    def __init__(self):
        self.nodes = []
        self.shapes = {}
        self.input = None
        self.output = None

    def value(self, shape):
        v = len(self.shapes)
        self.shapes[v] = tuple(int(d) for d in shape)
        return v


class Sym(Spec):
    """A traced activation: its Spec and the graph value it stands for."""
    __slots__ = ("graph", "vid")

    def __init__(self, graph, shape, dtype=np.float32, vid=None):
        super().__init__(shape, dtype)
        self.graph = graph
        self.vid = graph.value(shape) if vid is None else vid

    def _binary(self, other, op, reflected=False):
        spec = broadcast(self, other, op)
        return _emit_elementwise(self.graph, op, self, other, spec, reflected)

    def __add__(self, other):
        return self._binary(other, "add")

    def __radd__(self, other):
        return self._binary(other, "add", True)

    def __mul__(self, other):
        return self._binary(other, "mul")

    def __rmul__(self, other):
        return self._binary(other, "mul", True)

    def __sub__(self, other):
        return self._binary(other, "sub")

    def __rsub__(self, other):
        return self._binary(other, "sub", True)

    def __truediv__(self, other):
        return self._binary(other, "div")

    def __rtruediv__(self, other):
        return self._binary(other, "div", True)

    def __neg__(self):
        return _fallback(self.graph, "neg", (self,), {}, self.shape)

    def __getitem__(self, index):
        return _fallback(self.graph, "getitem", (self, index), {}, Spec.__getitem__(self, index).shape)

    def reshape(self, *shape):
        return _fallback(self.graph, "reshape", (self, shape), {}, Spec.reshape(self, *shape).shape)

    def mean(self, axis=None, keepdims=False):
        return _fallback(self.graph, "mean", (self,), {"axis": axis, "keepdims": keepdims},
                         Spec.mean(self, axis, keepdims).shape)

    def sum(self, axis=None, keepdims=False):
        return _fallback(self.graph, "sum", (self,), {"axis": axis, "keepdims": keepdims},
                         Spec.mean(self, axis, keepdims).shape)


def _emit(graph, op, inputs, attrs, shape):
    y = Sym(graph, shape)
    graph.nodes.append(Node(op, [x.vid for x in inputs], attrs, y.vid))
    return y


def _fallback(graph, name, args, kwargs, shape):
    """A call `name(*args, **kwargs)` run on NCHW arrays at execution (FAST's op of that name, or the
    array method for Python-level ones); Sym arguments become their values' arrays."""
    syms, slots = [], []
    for a in args:
        if isinstance(a, Sym):
            slots.append(("sym", len(syms)))
            syms.append(a)
        elif isinstance(a, (list, tuple)) and any(isinstance(e, Sym) for e in a):
            slots.append(("syms", list(range(len(syms), len(syms) + len(a)))))
            syms += list(a)
        else:
            slots.append(("const", a))
    for v in kwargs.values():
        if isinstance(v, Sym):
            raise TypeError(f"{name}: activations as keyword arguments are not traced")
    return _emit(graph, "fallback", syms, {"name": name, "slots": slots, "kwargs": kwargs}, shape)


def _emit_elementwise(graph, op, a, b, spec, reflected):
    """a op b (b possibly a constant or an (N, C, 1, 1) scale): a plan node where a kernel exists."""
    x, other = (b, a) if reflected else (a, b)
    if op == "add" and isinstance(other, Sym) and isinstance(x, Sym) and x.shape == other.shape == spec.shape:
        return _emit(graph, "add", [x, other], {}, spec.shape)
    if op == "mul" and isinstance(x, Sym) and isinstance(other, Sym) and x.ndim == 4 and spec.shape == x.shape \
            and other.shape == x.shape[:2] + (1, 1):
        return _emit(graph, "scale", [x, other], {}, spec.shape)
    if op == "mul" and isinstance(other, Sym) and isinstance(x, Sym) and other.ndim == 4 and \
            spec.shape == other.shape and x.shape == other.shape[:2] + (1, 1):
        return _emit(graph, "scale", [other, x], {}, spec.shape)
    return _fallback(graph, "binary", (x, other), {"op": op}, spec.shape)


ACT_CODES = {"relu": 1, "relu6": 2, "silu": 3, "sigmoid": 4}


class TraceOps(ShapeOps):
    """The op set of tracing: shapes checked as ShapeOps checks them, each call a graph node."""
    name = "trace"
    fuses = True                # the graph has the calls FAST makes: Conv -> BatchNorm folded
    strict = False

    def __init__(self, graph):
        super().__init__()
        self.graph = graph

    def conv2d(self, x, w, b, *, stride, padding, dilation, groups, algorithm="auto", activation=None):
        g = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
        if not isinstance(w, np.ndarray):
            return _fallback(self.graph, "conv2d", (x, w, b), dict(stride=stride, padding=padding, dilation=dilation,
                             groups=groups, algorithm=algorithm, activation=activation), g.out_shape)
        act = {None: 0, "relu": 1, "relu6": 2}[activation]
        args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, algorithm=algorithm)
        return _emit(self.graph, "conv", [x], {"w": w, "b": b, "g": g, "act": act, "args": args}, g.out_shape)

    def batch_norm(self, x, mean, var, gamma, beta, eps):
        super().batch_norm(x, mean, var, gamma, beta, eps)
        return _fallback(self.graph, "batch_norm", (x, mean, var, gamma, beta, eps), {}, x.shape)

    def max_pool2d(self, x, kernel_size, stride, padding, dilation, ceil_mode):
        g = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
        if g.dh != 1 or g.dw != 1:
            return _fallback(self.graph, "max_pool2d", (x, kernel_size, stride, padding, dilation, ceil_mode), {},
                             g.out_shape)
        return _emit(self.graph, "pool", [x], {"g": g, "max": True, "include_pad": True}, g.out_shape)

    def avg_pool2d(self, x, kernel_size, stride, padding, ceil_mode, count_include_pad):
        g = pool_geometry(x.shape, kernel_size, stride, padding, 1, ceil_mode)
        return _emit(self.graph, "pool", [x], {"g": g, "max": False, "include_pad": bool(count_include_pad)},
                     g.out_shape)

    def global_avg_pool2d(self, x):
        return _emit(self.graph, "gap", [x], {}, x.shape[:2] + (1, 1))

    def adaptive_avg_pool2d(self, x, out_hw):
        out_hw = tuple(out_hw)
        if out_hw == (1, 1):
            return self.global_avg_pool2d(x)
        if out_hw == tuple(x.shape[2:]):
            return x
        return _fallback(self.graph, "adaptive_avg_pool2d", (x, out_hw), {}, x.shape[:2] + out_hw)

    def local_response_norm(self, x, size, alpha, beta, k):
        return _fallback(self.graph, "local_response_norm", (x, size, alpha, beta, k), {}, x.shape)

    def linear(self, x, w, b):
        spec = super().linear(x, w, b)
        if x.ndim == 2 and isinstance(w, np.ndarray):
            return _emit(self.graph, "linear", [x], {"w": w, "b": b, "act": 0}, spec.shape)
        return _fallback(self.graph, "linear", (x, w, b), {}, spec.shape)

    def _act(self, name, x):
        if x.ndim in (2, 4) and name in ACT_CODES:
            return _emit(self.graph, "act", [x], {"act": ACT_CODES[name]}, x.shape)
        return _fallback(self.graph, name, (x, False), {}, x.shape)

    def relu(self, x, inplace):
        return self._act("relu", x)

    def relu6(self, x, inplace):
        return self._act("relu6", x)

    def sigmoid(self, x, inplace):
        return self._act("sigmoid", x)

    def silu(self, x, inplace):
        return self._act("silu", x)

    def tanh(self, x, inplace):
        return self._act("tanh", x)

    def softmax(self, x, dim):
        return _fallback(self.graph, "softmax", (x, dim), {}, x.shape)

    def add(self, a, b):
        return _emit_elementwise(self.graph, "add", a, b, broadcast(a, b, "add"), False)

    def add_(self, a, b):
        super().add_(a, b)
        return _emit_elementwise(self.graph, "add", a, b, broadcast(a, b, "add"), False)

    def mul(self, x, s, inplace):
        return _emit_elementwise(self.graph, "mul", x, s, broadcast(x, s, "mul"), False)

    def concat(self, xs, axis):
        spec = super().concat(xs, axis)
        if axis % 4 == 1 and all(isinstance(x, Sym) and x.ndim == 4 for x in xs):
            return _emit(self.graph, "concat", xs, {}, spec.shape)
        return _fallback(self.graph, "concat", (list(xs), axis), {}, spec.shape)

    def flatten(self, x, start_dim, end_dim=-1):
        spec = super().flatten(x, start_dim, end_dim)
        if x.ndim == 4 and spec.shape == (x.shape[0], x.shape[1] * x.shape[2] * x.shape[3]):
            return _emit(self.graph, "flatten", [x], {}, spec.shape)
        return _fallback(self.graph, "flatten", (x, start_dim, end_dim), {}, spec.shape)


def trace(net, shape, dtype=np.float32):
    """Run net's forward once on a symbolic input of `shape` and return its Graph."""
    graph = Graph()
    x = Sym(graph, shape, dtype)
    graph.input = x.vid
    with _ops.use(TraceOps(graph)):
        y = net(x)
    if not isinstance(y, Sym):
        raise TypeError(f"the network returned {type(y).__name__}: a plan needs one output array")
    graph.output = y.vid
    return graph
