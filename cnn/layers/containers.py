"""Sequential (with the Conv -> BatchNorm -> activation fusion) and Concat (Inception's branches)."""
from __future__ import annotations

from . import ops as _ops
from .basic import Activation
from .conv import BatchNorm2d, Conv2d, conv_bn_act
from .module import Module


def _plan(layers):
    """Group the layers into steps (conv, bn, act): a Conv2d with the BatchNorm2d and/or activation
    right after it forms one step (one kernel call where the op set fuses); any other layer is a step
    of its own, as (layer, None, None)."""
    steps, i = [], 0
    while i < len(layers):
        layer, bn, act = layers[i], None, None
        i += 1
        if isinstance(layer, Conv2d):
            if i < len(layers) and isinstance(layers[i], BatchNorm2d):
                bn, i = layers[i], i + 1
            if i < len(layers) and isinstance(layers[i], Activation):
                act, i = layers[i], i + 1
        steps.append((layer, bn, act))
    return steps


class Sequential(Module):
    """Layers applied in order, named "0", "1", ... as in torch.nn.Sequential."""

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes layers, got {type(layer).__name__} at position {i}")
            setattr(self, str(i), layer)
        self._layers = list(layers)
        self._steps = _plan(self._layers)

    def __getitem__(self, i):
        return self._layers[i]

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)

    def forward(self, x):
        for layer, bn, act in self._steps:
            x = conv_bn_act(x, layer, bn, act) if isinstance(layer, Conv2d) else layer(x)
        return x


class Concat(Module):
    """Runs every branch on the same input and concatenates the outputs along `axis` (channels).
    Branches are positional (named "0", "1", ...) or keyword (named by the keyword, e.g. branch1)."""

    def __init__(self, *branches, axis=1, **named):
        for i, b in enumerate(branches):
            setattr(self, str(i), b)
        for name, b in named.items():
            setattr(self, name, b)
        self.axis = axis
        self._branches = list(branches) + list(named.values())
        if not self._branches:
            raise ValueError("Concat needs at least one branch")

    def forward(self, x):
        return _ops.current().concat([b(x) for b in self._branches], self.axis)
