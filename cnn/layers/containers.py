"""Containers: ModuleList, Sequential (with the Conv -> BatchNorm -> activation fusion) and Concat
(Inception's branches).

The children are the container's content: indexing, iteration and the forward pass read them at the
time of the call, so a layer replaced by item or attribute assignment (`seq[0] = m`,
`setattr(seq, "0", m)`, `net.classifier[6] = Linear(4096, 10)`) is the layer that runs.
"""
from __future__ import annotations

import numbers
from collections import OrderedDict

from . import ops as _ops
from .basic import Activation
from .checks import integer
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


def _module(value, where):
    if not isinstance(value, Module):
        raise TypeError(f"{where} takes layers (cnn Modules), got {type(value).__name__}")
    return value


class ModuleList(Module):
    """Modules in a list, named "0", "1", ... (torch.nn.ModuleList): indexing (slices too), len,
    iteration, append, extend, insert, item assignment and deletion. It has no forward pass: the
    module holding it calls its items."""

    def __init__(self, modules=()):
        for m in modules:
            self.append(m)

    def _items(self):
        return list(self.__dict__.get("_children", {}).items())

    def _position(self, i):
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"{type(self).__name__} indices are ints or slices, got {i!r}")
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for a {type(self).__name__} of {n} modules")
        return int(i) % n

    def __len__(self):
        return len(self.__dict__.get("_children", {}))

    def __iter__(self):
        return iter([m for _, m in self._items()])

    def __getitem__(self, i):
        items = self._items()
        if isinstance(i, slice):
            return self._from_items(items[i])
        return items[self._position(i)][1]

    def __setitem__(self, i, module):
        name = self._items()[self._position(i)][0]
        setattr(self, name, _module(module, f"{type(self).__name__}[{i}] = ..."))

    def __delitem__(self, i):
        items = self._items()
        gone = set(range(len(items))[i]) if isinstance(i, slice) else {self._position(i)}
        self._relabel([item for j, item in enumerate(items) if j not in gone])

    def append(self, module):
        setattr(self, self._free_name(), _module(module, f"{type(self).__name__}.append"))
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        items = self._items()
        index = min(max(index + len(items) if index < 0 else index, 0), len(items))
        new = (self._free_name(), _module(module, f"{type(self).__name__}.insert"))
        self._relabel(items[:index] + [new] + items[index:])

    def _free_name(self):
        n = len(self)
        while str(n) in self.__dict__:
            n += 1
        return str(n)

    def _relabel(self, items):
        """Make `items` the content, renumbered "0", "1", ... when the names were positions (as torch
        renumbers after a deletion); names given by the user (Sequential(OrderedDict(...))) are kept."""
        numbered = all(name.isdigit() for name, _ in items)
        for name, _ in self._items():
            delattr(self, name)
        for j, (name, m) in enumerate(items):
            setattr(self, str(j) if numbered else name, m)

    @classmethod
    def _from_items(cls, items):
        return ModuleList([m for _, m in items])


class Sequential(ModuleList):
    """Layers applied in order, named "0", "1", ... as in torch.nn.Sequential, or by the keys of one
    OrderedDict / dict argument: Sequential(OrderedDict([("conv", Conv2d(...)), ("relu", ReLU())])).
    A slice is a Sequential of the same layers under the same names (torch's rule)."""

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], dict):
            for name, layer in layers[0].items():
                if not isinstance(name, str) or not name or "." in name:
                    raise ValueError(f"Sequential layer names are non-empty strings without '.', got {name!r}")
                setattr(self, name, _module(layer, f"Sequential (at '{name}')"))
            return
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes layers, got {type(layer).__name__} at position {i}")
            setattr(self, str(i), layer)

    @classmethod
    def _from_items(cls, items):
        return Sequential(OrderedDict(items))

    def forward(self, x):
        layers = tuple(self.__dict__.get("_children", {}).values())
        plan = self.__dict__.get("_plan")
        if plan is None or plan[0] != layers:      # a layer was replaced, added or removed: plan anew
            plan = (layers, _plan(layers))
            object.__setattr__(self, "_plan", plan)
        for layer, bn, act in plan[1]:
            x = conv_bn_act(x, layer, bn, act) if isinstance(layer, Conv2d) else layer(x)
        return x


class Concat(Module):
    """Runs every branch on the same input and concatenates the outputs along `axis` (channels).
    Branches are positional (named "0", "1", ...) or keyword (named by the keyword, e.g. branch1)."""

    def __init__(self, *branches, axis=1, **named):
        for i, b in enumerate(branches):
            setattr(self, str(i), _module(b, f"Concat (branch {i})"))
        for name, b in named.items():
            setattr(self, name, _module(b, f"Concat (branch '{name}')"))
        self.axis = integer(axis, "axis")
        if not branches and not named:
            raise ValueError("Concat needs at least one branch")

    def forward(self, x):
        branches = list(self.__dict__["_children"].values())
        return _ops.current().concat([b(x) for b in branches], self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"
