"""Argument and input checks of the layers, in the user's terms.

Construction checks (`positive_int`, `conv_padding`, ...) run when a layer is built, so a bad argument
fails where it was written, not at the first forward pass. Input checks (`check_nchw`, `check_operand`)
run on every call of a layer with weights and say what looks wrong: a channels-last image, a missing
batch axis, a torch tensor, a numpy input to a network on the GPU (or the reverse), a dtype that
differs from the weights'. They cost a few attribute reads per layer call.
"""
from __future__ import annotations

import numbers

import numpy as np

from kernels.shapes import pair, positive_pair  # noqa: F401  (positive_pair: the layers' check too)

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --- construction ----------------------------------------------------------------------------------
def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def integer(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)


def non_negative_pair(value, name):
    h, w = pair(value, name)
    if h < 0 or w < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return h, w


def boolean(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def real(value, name, *, low=None, high=None, low_open=False):
    """A finite real number within [low, high] ((low, high] when low_open) -> float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return float(value)


def float_dtype(dtype):
    """float32 or float64 (what the kernels compute in) -> np.dtype."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}") from None
    if d not in DTYPES:
        raise TypeError(f"dtype must be np.float32 or np.float64 (the kernels' types), got {d}")
    return d


def conv_padding(padding, stride):
    """torch.nn.Conv2d's padding: an int or (h, w) pair >= 0, or exactly "same" (stride 1) or "valid"."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            hint = f" (padding strings are lower case, as in torch: {padding.lower()!r})" \
                if padding.lower() in ("same", "valid") else ""
            raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}{hint}")
        if padding == "same" and tuple(stride) != (1, 1):
            raise ValueError(f"padding='same' needs stride 1 (as in torch), got stride={stride}; "
                             f"give the padding as a number instead")
        return padding
    return non_negative_pair(padding, "padding")


def pool_padding(padding, kernel_size):
    """Pooling padding: >= 0 and at most half the kernel (PyTorch's rule)."""
    ph, pw = non_negative_pair(padding, "padding")
    if 2 * ph > kernel_size[0] or 2 * pw > kernel_size[1]:
        raise ValueError(f"padding must be at most half the kernel size, got padding={padding!r} for "
                         f"kernel_size={kernel_size}")
    return ph, pw


# --- inputs ----------------------------------------------------------------------------------------
def _module_of(x):
    return type(x).__module__.split(".")[0]


def _name(where):
    """A layer (named as its repr's first line, e.g. "Conv2d(3, 16, kernel_size=(3, 3), ...)") or a
    string. Layers are formatted only when a message is raised, never on the fast path."""
    return where if isinstance(where, str) else f"{type(where).__name__}({where.extra_repr()})"


def torch_hint(x, where):
    """TypeError for a torch tensor (with the line that converts it), None for anything else."""
    if _module_of(x) == "torch":
        return TypeError(f"{_name(where)} got a torch.Tensor: cnn runs on numpy (CPU) and cupy (GPU) arrays; "
                         f"pass x.detach().cpu().numpy() (or cupy.asarray(x) for the GPU)")
    return None


def device_of(a):
    return "cuda" if _module_of(a) == "cupy" else "cpu"


def check_operand(where, x, weight, strict):
    """x against a layer's weight: a numpy or cupy array (or a Spec) and, where the op set computes on
    the arrays as they are (`strict`: the fast ops; the reference brings everything to the host in
    float64), on the weight's device and of its dtype."""
    tx = type(x)
    if tx is np.ndarray and type(weight) is np.ndarray:
        pass
    elif not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise torch_hint(x, where) or TypeError(
            f"{_name(where)} expects a numpy or cupy array, got {tx.__name__}")
    elif _module_of(x) == "torch":
        raise torch_hint(x, where)
    elif getattr(x, "is_spec", False):
        return
    elif strict and device_of(x) != device_of(weight):
        if device_of(weight) == "cuda":
            raise TypeError(f"{_name(where)}: the weights are on the GPU (cupy) but x is a numpy array: pass "
                            f"cupy.asarray(x), or move the network back with net.to('cpu')")
        raise TypeError(f"{_name(where)}: x is a cupy (GPU) array but the weights are numpy: move the network "
                        f"with net.to('cuda'), or pass x.get()")
    if strict and x.dtype != weight.dtype:
        raise TypeError(f"{_name(where)}: x has dtype {x.dtype} but the weights are {weight.dtype}: pass "
                        f"x.astype(np.{weight.dtype}) or convert the network with net.to(np.{x.dtype})")


def check_nchw(where, x, channels):
    """x is 4-D (N, C, H, W) with `channels` channels; hints for a missing batch axis and channels-last."""
    shape = tuple(x.shape)
    if len(shape) == 3 and shape[0] == channels:
        raise ValueError(f"{_name(where)} expects a 4-D input (N, C, H, W), got shape {shape}: add the batch "
                         f"axis, x[None]")
    if len(shape) == 3 and shape[-1] == channels:
        raise ValueError(f"{_name(where)} expects a 4-D input (N, C, H, W), got shape {shape}, which looks like "
                         f"one channels-last image (H, W, C): pass x.transpose(2, 0, 1)[None]")
    if len(shape) != 4:
        raise ValueError(f"{_name(where)} expects a 4-D input (N, C, H, W), got shape {shape}")
    if shape[1] != channels:
        hint = ""
        if shape[3] == channels:
            hint = (f"; it looks channels-last (N, H, W, C): cnn is NCHW, pass "
                    f"x.transpose(0, 3, 1, 2)")
        raise ValueError(f"{_name(where)} expects {channels} input channels (x.shape[1]), got x of shape "
                         f"{shape}{hint}")
