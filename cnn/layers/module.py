"""Module: what every layer and network shares. A module holds arrays and child modules, nothing else.

Arrays are named by the class (PARAMS: trainable, counted by num_parameters; BUFFERS: saved but not
trained, e.g. BatchNorm's running statistics) and children are registered as they are assigned, so
`state_dict()` produces torchvision's dotted names ("layer1.0.bn1.running_mean") in PyTorch's order.
Arrays the module creates or loads are treated as immutable (numpy ones are made read-only): a change
of parameters is a new array, which is what lets derived data (a conv's folded batch-norm) be cached
by the identity of the arrays it came from and never go stale.
"""
from __future__ import annotations

import numpy as np

from . import ops as _ops


def _frozen(a):
    """Mark an array the module owns as read-only (numpy only; cupy has no such flag)."""
    if isinstance(a, np.ndarray):
        a.flags.writeable = False
    return a


def _is_cupy(a):
    return type(a).__module__.split(".")[0] == "cupy"


def _as_array(value, key):
    """A state-dict value (numpy, cupy, torch tensor or anything with __array__) -> numpy or cupy array."""
    if _is_cupy(value):
        return value
    if hasattr(value, "detach"):                     # a torch tensor, possibly on another device
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as e:
        raise TypeError(f"state_dict['{key}'] is not an array: {type(value).__name__}") from e


def _device_of(a):
    return "cuda" if _is_cupy(a) else "cpu"


def _move(a, device):
    if device == "cuda":
        import cupy
        return cupy.asarray(a)
    return a.get() if _is_cupy(a) else a


class Module:
    PARAMS: tuple = ()
    BUFFERS: tuple = ()

    def __setattr__(self, name, value):
        children = self.__dict__.setdefault("_children", {})
        if isinstance(value, Module):
            children[name] = value
        else:
            children.pop(name, None)          # a child replaced by None or an array is no child
        object.__setattr__(self, name, value)

    # --- structure -------------------------------------------------------------------------------
    def children(self):
        """(name, module) of the direct children, in the order they were assigned."""
        return list(self.__dict__.get("_children", {}).items())

    def named_modules(self, prefix=""):
        """(dotted name, module) of this module and every descendant, depth first."""
        yield prefix, self
        for name, child in self.children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def _named_arrays(self, params=True, buffers=True):
        """(dotted name, owner module, attribute) of every array that is not None, PyTorch's order."""
        for prefix, m in self.named_modules():
            names = (m.PARAMS if params else ()) + (m.BUFFERS if buffers else ())
            for attr in names:
                if getattr(m, attr) is not None:
                    yield (f"{prefix}.{attr}" if prefix else attr), m, attr

    # --- forward ---------------------------------------------------------------------------------
    def __call__(self, x):
        ops = _ops.current()
        y = self.forward(x)
        if ops.records and not self.__dict__.get("_children"):
            ops.record(self, x, y)
        return y

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} has no forward pass")

    def macs(self, in_shape, out_shape):
        """Multiply-accumulates of one call (conv and linear layers; 0 for everything else)."""
        return 0

    # --- parameters ------------------------------------------------------------------------------
    def num_parameters(self):
        """Trainable parameters, as torchvision counts them (BatchNorm's running statistics excluded)."""
        return sum(int(getattr(m, a).size) for _, m, a in self._named_arrays(buffers=False))

    def state_dict(self):
        """{dotted name: array} with torchvision's names and shapes, on the module's device."""
        return {name: getattr(m, a) for name, m, a in self._named_arrays()}

    def load_state_dict(self, state):
        """Replace every array by a copy of state[name] (numpy, cupy or torch tensor), in the current
        array's dtype and on its device. Strict: unknown keys, missing keys and shape mismatches raise
        ValueError naming the keys; nothing is changed unless every key checks out."""
        own = {name: (m, a) for name, m, a in self._named_arrays()}
        unknown = [k for k in state if k not in own]
        missing = [k for k in own if k not in state]
        if unknown:
            raise ValueError(f"load_state_dict: unexpected key(s) {unknown}")
        if missing:
            raise ValueError(f"load_state_dict: missing key(s) {missing}")
        new = {}
        for name, (m, attr) in own.items():
            cur = getattr(m, attr)
            value = _as_array(state[name], name)
            if value.dtype.kind not in "fiub":
                raise TypeError(f"load_state_dict: '{name}' has dtype {value.dtype}, expected a real number")
            if tuple(value.shape) != tuple(cur.shape):
                raise ValueError(f"load_state_dict: '{name}' has shape {tuple(value.shape)}, "
                                 f"expected {tuple(cur.shape)}")
            value = _move(value, _device_of(cur)).astype(cur.dtype, copy=True)
            new[name] = (m, attr, value)
        for m, attr, value in new.values():
            setattr(m, attr, _frozen(value))
        return self

    def to(self, target):
        """Move every array to "cpu" (numpy) or "cuda" (cupy), or cast the floating arrays to a float
        dtype (np.float32 / np.float64). Returns self."""
        if isinstance(target, str):
            if target not in ("cpu", "cuda"):
                raise ValueError(f"target must be 'cpu', 'cuda' or a float dtype, got {target!r}")
            convert = lambda a: _move(a, target)  # noqa: E731
        else:
            dtype = np.dtype(target)
            if dtype not in (np.float32, np.float64):
                raise ValueError(f"target dtype must be float32 or float64, got {dtype}")
            convert = lambda a: a.astype(dtype) if a.dtype.kind == "f" else a  # noqa: E731
        for _, m, attr in list(self._named_arrays()):
            a = getattr(m, attr)
            b = convert(a)
            if b is not a:
                setattr(m, attr, _frozen(b))
        return self

    def save(self, path):
        """Write the state dict to an .npz file (arrays brought to the host)."""
        np.savez(path, **{k: _move(v, "cpu") for k, v in self.state_dict().items()})

    def load(self, path):
        """Read an .npz file written by save() (or any .npz with the right names) into this module."""
        with np.load(path) as f:
            return self.load_state_dict({k: f[k] for k in f.files})

    def __repr__(self):
        kids = self.children()
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        body = "\n".join(f"  ({n}): " + repr(c).replace("\n", "\n  ") for n, c in kids)
        return f"{type(self).__name__}(\n{body}\n)"

    def extra_repr(self):
        return ""
