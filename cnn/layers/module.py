"""Module: what every layer and network shares. A module holds arrays and child modules, nothing else.

Arrays are named by the class (PARAMS: trainable, counted by num_parameters; BUFFERS: saved but not
trained, e.g. BatchNorm's running statistics) and children are registered as they are assigned, so
`state_dict()` produces torchvision's dotted names ("layer1.0.bn1.running_mean") in PyTorch's order.
Arrays the module creates or loads are treated as immutable (numpy ones are made read-only): a change
of parameters is a new array, which is what lets derived data (a conv's folded batch-norm) be cached
by the identity of the arrays it came from and never go stale. `state_dict(copy=True)` hands out
writable copies (for torch.from_numpy, or to edit and load back).

Inference only: there is no autograd and no training. `train()` and `eval()` set the `training` flag
as in torch so that torch code calling them runs, but the forward pass is the same in both modes
(batch-norm always uses its running statistics, dropout is the identity); modules start in eval mode.
"""
from __future__ import annotations

import contextvars
import os
import warnings

import numpy as np

from . import ops as _ops
from .checks import torch_hint

WEIGHT_SUFFIXES = (".npz", ".pt", ".pth")

# Edits of any module (attribute assignment or deletion: weights, children, load_state_dict, .to()):
# a counter that only grows, so that an inference plan can tell cheaply that nothing changed since it
# was built (cnn/plan). A lost increment between two threads still moves it.
_edits = [0]


def edits():
    return _edits[0]


# True while a module's forward pass runs: only the top-level call of a network goes through its plan.
_inside = contextvars.ContextVar("cnn_inside_forward", default=False)


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


def weights_path(path):
    """The one naming rule of save() and load(): a path ending in .npz, .pt or .pth is used as it is;
    any other path gets ".npz" appended (what numpy.savez does)."""
    path = os.fspath(path)
    return path if path.endswith(WEIGHT_SUFFIXES) else path + ".npz"


def _import_torch(why):
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"{why} needs torch (pip install torch); or write the weights as .npz from "
                          f"torch: np.savez(path, **{{k: v.numpy() for k, v in model.state_dict().items()}})") from e
    return torch


def _read_torch(path):
    """A state dict of tensors from a torch .pt/.pth file (also a checkpoint holding one under
    "state_dict" or "model_state_dict")."""
    torch = _import_torch(f"loading {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path} does not hold a plain state dict ({type(e).__name__}: {e}); save one with "
                         f"torch.save(model.state_dict(), path)") from e
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(hasattr(v, "detach") for v in obj.values()):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors; save one "
                         f"with torch.save(model.state_dict(), path)")
    return obj


class Module:
    PARAMS: tuple = ()
    BUFFERS: tuple = ()
    training = False        # see the module docstring: a flag only, the forward pass ignores it

    def __setattr__(self, name, value):
        _edits[0] += 1
        children = self.__dict__.setdefault("_children", {})
        if isinstance(value, Module):
            children[name] = value
        else:
            children.pop(name, None)          # a child replaced by None or an array is no child
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        _edits[0] += 1
        self.__dict__.get("_children", {}).pop(name, None)
        object.__delattr__(self, name)

    def add_module(self, name, module):
        """Register `module` as child `name` (what attribute assignment does, for computed names)."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"a module name is a non-empty string without '.', got {name!r}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module('{name}', ...) takes a Module or None, got {type(module).__name__}")
        setattr(self, name, module)

    # --- structure -------------------------------------------------------------------------------
    def named_children(self):
        """(name, module) of the direct children, in the order they were assigned."""
        return iter(list(self.__dict__.get("_children", {}).items()))

    def children(self):
        """The direct children, in the order they were assigned."""
        return (m for _, m in self.named_children())

    def _walk(self, prefix=""):
        """(dotted name, module) of this module and every descendant, depth first; a module reachable
        under two names is listed under both (as torch's state_dict lists it)."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child._walk(f"{prefix}.{name}" if prefix else name)

    def named_modules(self, prefix=""):
        """(dotted name, module) of this module and every descendant, depth first, each module once."""
        seen = set()
        for name, m in self._walk(prefix):
            if id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def modules(self):
        return (m for _, m in self.named_modules())

    def _named_arrays(self, params=True, buffers=True, walk=None):
        """(dotted name, owner module, attribute) of every array that is not None, PyTorch's order."""
        for prefix, m in (walk if walk is not None else self._walk()):
            names = (m.PARAMS if params else ()) + (m.BUFFERS if buffers else ())
            for attr in names:
                if getattr(m, attr) is not None:
                    yield (f"{prefix}.{attr}" if prefix else attr), m, attr

    def named_parameters(self, prefix=""):
        """(dotted name, array) of every trainable array, each once (the arrays are read-only)."""
        seen = set()
        for name, m, attr in self._named_arrays(buffers=False, walk=self.named_modules(prefix)):
            a = getattr(m, attr)
            if id(a) not in seen:
                seen.add(id(a))
                yield name, a

    def parameters(self):
        return (a for _, a in self.named_parameters())

    def named_buffers(self, prefix=""):
        """(dotted name, array) of the saved arrays that are not trained (batch-norm statistics)."""
        for name, m, attr in self._named_arrays(params=False, walk=self.named_modules(prefix)):
            yield name, getattr(m, attr)

    def buffers(self):
        return (a for _, a in self.named_buffers())

    def train(self, mode=True):
        """Set the training flag of this module and its descendants. Inference only: the forward pass
        is the same in both modes (batch-norm uses running statistics, dropout is the identity)."""
        if not isinstance(mode, bool):
            raise TypeError(f"mode must be True or False, got {mode!r}")
        if mode:
            warnings.warn("cnn runs inference only: in train mode the forward pass is unchanged (batch-norm "
                          "uses its running statistics, dropout is the identity)", stacklevel=2)
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    # --- forward ---------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        for a in args:
            if type(a) is not np.ndarray:
                err = torch_hint(a, type(self).__name__)
                if err is not None:
                    raise err
        ops = _ops.current()
        if ops is _ops.FAST and len(args) == 1 and not kwargs and not _inside.get():
            from .. import plan
            y = plan.implicit(self, args[0])
            if y is not None:
                return y
        if ops.host64:              # the reference: every module computes on float64 host arrays
            args = tuple(ops.h(a) if hasattr(a, "shape") and hasattr(a, "dtype") else a for a in args)
        token = _inside.set(True)
        try:
            if not ops.records:
                return self.forward(*args, **kwargs)
            return self._recorded(ops, args, kwargs)
        finally:
            _inside.reset(token)

    def _recorded(self, ops, args, kwargs):
        ops.enter(self)
        try:
            y = self.forward(*args, **kwargs)
        finally:
            call = ops.leave()
        ops.record(self, args, y, call)
        return y

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} has no forward pass")

    def prepare(self, shape, tune=None):
        """The inference plan of this network for float32 inputs of `shape` (cnn/plan): built now or
        reused; net(x) also uses it. Returns the Plan (callable like the network). `tune`: time a few
        tiles of each convolution and keep the fastest (None: yes, unless CONVFORGE_AUTOTUNE=0)."""
        from .. import plan
        return plan.prepare(self, shape, tune)

    # --- parameters ------------------------------------------------------------------------------
    def num_parameters(self):
        """Trainable parameters, as torchvision counts them (BatchNorm's running statistics excluded)."""
        return sum(int(a.size) for a in self.parameters())

    def state_dict(self, copy=False):
        """{dotted name: array} with torchvision's names and shapes, on the module's device. The arrays
        are the module's own, read-only; copy=True gives writable copies (torch.from_numpy takes them)."""
        out = {name: getattr(m, a) for name, m, a in self._named_arrays()}
        return {k: v.copy() for k, v in out.items()} if copy else out

    def load_state_dict(self, state):
        """Replace every array by a copy of state[name] (numpy, cupy or torch tensor), in the current
        array's dtype and on its device. Strict: unknown keys, missing keys and shape mismatches raise
        ValueError naming the keys; nothing is changed unless every key checks out."""
        if not hasattr(state, "keys"):
            raise TypeError(f"load_state_dict takes a dict of arrays, got {type(state).__name__}")
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
        """Write the state dict (brought to the host) to weights_path(path): .npz (numpy) unless the
        path ends in .pt or .pth (torch.save of a dict of tensors, which needs torch). -> the path."""
        path = weights_path(path)
        state = {k: np.array(_move(v, "cpu")) for k, v in self.state_dict().items()}
        if path.endswith(".npz"):
            np.savez(path, **state)
        else:
            torch = _import_torch(f"saving {path}")
            torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
        return path

    def load(self, path):
        """Read weights_path(path) into this module: an .npz written by save(), or a torch .pt/.pth
        state dict (torchvision's weight files) when torch is importable. Returns self."""
        path = weights_path(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no weights file {path!r} (save() and load() add .npz to a path that "
                                    f"does not end in .npz, .pt or .pth)")
        if not path.endswith(".npz"):
            return self.load_state_dict(_read_torch(path))
        with np.load(path) as f:
            return self.load_state_dict({k: f[k] for k in f.files})

    def __repr__(self):
        kids = list(self.named_children())
        extra = self.extra_repr()
        if not kids:
            return f"{type(self).__name__}({extra})"
        lines = ([f"  {extra}"] if extra else []) + \
            [f"  ({n}): " + repr(c).replace("\n", "\n  ") for n, c in kids]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def extra_repr(self):
        return ""
