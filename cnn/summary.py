"""cnn.summary(net, input_shape): a per-layer table in the manner of torchinfo / Keras' model.summary().

One row per leaf layer the forward pass goes through (name, type, output shape, parameters, MACs),
found by shape propagation: the network runs on cnn.layers.ShapeOps, which checks every op's
arguments and computes its output shape without touching any data. A module with children gets a row
of its own too when it holds parameters itself or runs conv/linear ops itself (cnn.functional calls in
a custom forward pass). MACs are multiply-accumulates of the convolutions (N*K*P*Q*(C/groups)*R*S) and
fully connected layers (N*in*out), counted where the op runs; pooling, normalisation, activations and
elementwise arithmetic count none. FLOPs = 2 x MACs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers import ShapeOps, Spec, use


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int


def _scaled(n):
    """12_345_678 -> '12.35 M' (the unit follows)."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.2f} {prefix}"
    return f"{n} "


def _own_params(module):
    return sum(int(getattr(module, a).size) for a in module.PARAMS if getattr(module, a) is not None)


def _shape(y):
    """An output's shape; a tuple or list of outputs gives a tuple of shapes."""
    if isinstance(y, (tuple, list)):
        return tuple(_shape(v) for v in y)
    return tuple(y.shape) if hasattr(y, "shape") else ()


def _shape_text(shape):
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape_text(s) for s in shape)
    return "x".join(map(str, shape))


class Summary:
    """rows (list of Row), total_params (the network's trainable parameters), total_macs; str() is the table."""

    def __init__(self, net, input_shape, rows, output_shape, total_macs):
        self.input_shape = tuple(input_shape)
        self.rows = rows
        self.total_params = net.num_parameters()
        self.total_macs = total_macs
        self.output_shape = output_shape

    @property
    def total_flops(self):
        return 2 * self.total_macs

    def __str__(self):
        head = ("layer", "type", "output shape", "params", "MACs")
        body = [(r.name, r.type, _shape_text(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
                for r in self.rows]
        widths = [max(len(head[i]), *(len(b[i]) for b in body)) if body else len(head[i]) for i in range(5)]
        align = ("<", "<", ">", ">", ">")

        def line(cells):
            return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

        rule = "-" * len(line(head))
        out = [f"input {'x'.join(map(str, self.input_shape))}", rule, line(head), rule]
        out += [line(b) for b in body]
        out += [rule,
                f"total parameters: {self.total_params:,}",
                f"total MACs:       {self.total_macs:,} ({_scaled(self.total_macs)}MACs; "
                f"FLOPs = 2 x MACs = {_scaled(self.total_flops)}FLOPs)",
                f"output:           {_shape_text(self.output_shape)}"]
        return "\n".join(out)

    __repr__ = __str__


def summary(net, input_shape, dtype=np.float32):
    """Per-layer table of `net` on an input of shape (N, C, H, W) (a (C, H, W) gets a batch of 1)."""
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) == 3:
        input_shape = (1,) + input_shape
    names = {}
    for name, m in net.named_modules():
        names.setdefault(id(m), name or type(net).__name__)
    rows = []

    def record(module, args, y, number, macs):
        own = _own_params(module)
        if not module.__dict__.get("_children") or own or macs:
            rows.append((number, Row(names.get(id(module), "?"), type(module).__name__, _shape(y), own, int(macs))))

    ops = ShapeOps(record)
    with use(ops):
        y = net(Spec(input_shape, dtype))
    rows = [row for _, row in sorted(rows, key=lambda nr: nr[0])]      # in the order the calls began
    return Summary(net, input_shape, rows, _shape(y), ops.total_macs)
