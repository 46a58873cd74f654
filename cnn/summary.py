"""cnn.summary(net, input_shape): a per-layer table in the manner of torchinfo / Keras' model.summary().

One row per leaf layer the forward pass goes through (name, type, output shape, parameters, MACs),
found by shape propagation: the network runs on cnn.layers.ShapeOps, which checks every op's
arguments and computes its output shape without touching any data. MACs are multiply-accumulates of
the convolutions (N*K*P*Q*(C/groups)*R*S) and fully connected layers (N*in*out); pooling,
normalisation and activations count none. FLOPs = 2 x MACs.
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


class Summary:
    """rows (list of Row), total_params (the network's trainable parameters), total_macs; str() is the table."""

    def __init__(self, net, input_shape, rows):
        self.input_shape = tuple(input_shape)
        self.rows = rows
        self.total_params = net.num_parameters()
        self.total_macs = sum(r.macs for r in rows)
        self.output_shape = rows[-1].output_shape if rows else self.input_shape

    @property
    def total_flops(self):
        return 2 * self.total_macs

    def __str__(self):
        head = ("layer", "type", "output shape", "params", "MACs")
        body = [(r.name, r.type, "x".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.macs:,}")
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
                f"output:           {'x'.join(map(str, self.output_shape))}"]
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

    def record(module, x, y):
        rows.append(Row(names.get(id(module), "?"), type(module).__name__, tuple(y.shape),
                        _own_params(module), int(module.macs(tuple(x.shape), tuple(y.shape)))))

    with use(ShapeOps(record)):
        net(Spec(input_shape, dtype))
    return Summary(net, input_shape, rows)
