"""The ops as functions, for a Module's own forward pass (torch.nn.functional's names and arguments).

Each call goes to the op set in force (cnn.layers.ops.current()), so a forward pass written with
these functions runs on the fast kernels, on the float64 reference (`with use(REFERENCE)`) and under
cnn.summary's shape pass alike. Python's operators on activations (+, -, *, /) work the same way:

    import cnn.functional as F

    class Residual(Module):
        def __init__(self, c):
            self.conv = Conv2d(c, c, 3, padding=1)
        def forward(self, x):
            return F.relu(self.conv(x) + x)

Inference only: `training=True` is refused where torch's function takes it.
"""
from __future__ import annotations

import numpy as np

from .layers import ops as _ops
from .layers.checks import (boolean, conv_padding, device_of, integer, pool_padding, positive_int,
                            positive_pair, real, torch_hint)

__all__ = ["adaptive_avg_pool2d", "add", "avg_pool2d", "batch_norm", "cat", "conv2d", "dropout", "flatten",
           "linear", "local_response_norm", "max_pool2d", "mul", "relu", "relu6", "sigmoid", "silu", "softmax",
           "tanh"]


def _array(x, where):
    """An activation: a numpy or cupy array or a Spec (the shape pass); torch tensors get a hint."""
    if type(x) is np.ndarray:
        return x
    err = torch_hint(x, where)
    if err is not None:
        raise err
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(f"{where} expects a numpy or cupy array, got {type(x).__name__}")
    return x


def _same_device(arrays, where):
    """numpy and cupy operands cannot mix (the fast ops compute on the arrays as they are)."""
    kinds = {device_of(a) for a in arrays if hasattr(a, "shape") and not getattr(a, "is_spec", False)}
    if len(kinds) > 1 and _ops.current().strict:
        raise TypeError(f"{where}: numpy (CPU) and cupy (GPU) arrays mixed; move them to one device "
                        f"(cupy.asarray(a) or a.get())")


def _no_training(training, where):
    if boolean(training, "training"):
        raise ValueError(f"{where}(training=True): cnn runs inference only")


# --- layers' ops ------------------------------------------------------------------------------------
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, algorithm="auto",
           activation=None):
    """torch.nn.functional.conv2d (padding an int, a pair, "same" or "valid"); `algorithm` and the
    fused `activation` ("relu", "relu6") are kernels.conv2d's."""
    x = _array(x, "conv2d")
    _same_device((x, weight, bias), "conv2d")
    stride = positive_pair(stride, "stride")
    return _ops.current().conv2d(x, weight, bias, stride=stride, padding=conv_padding(padding, stride),
                                 dilation=positive_pair(dilation, "dilation"),
                                 groups=positive_int(groups, "groups"), algorithm=algorithm,
                                 activation=activation)


def linear(x, weight, bias=None):
    """x @ weight.T + bias, weight (out_features, in_features)."""
    x = _array(x, "linear")
    _same_device((x, weight, bias), "linear")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: weight {tuple(weight.shape)} expects x of shape (..., {weight.shape[1]}), "
                         f"got {tuple(x.shape)}")
    return _ops.current().linear(x, weight, bias)


def batch_norm(x, running_mean, running_var, weight, bias, training=False, momentum=0.1, eps=1e-5):
    """Inference batch normalisation with the running statistics (weight and bias are required)."""
    _no_training(training, "batch_norm")
    x = _array(x, "batch_norm")
    _same_device((x, running_mean, running_var, weight, bias), "batch_norm")
    return _ops.current().batch_norm(x, running_mean, running_var, weight, bias,
                                     real(eps, "eps", low=0.0, low_open=True))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    k = positive_pair(kernel_size, "kernel_size")
    return _ops.current().max_pool2d(_array(x, "max_pool2d"), k, k if stride is None else positive_pair(
        stride, "stride"), pool_padding(padding, k), positive_pair(dilation, "dilation"),
        boolean(ceil_mode, "ceil_mode"))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    k = positive_pair(kernel_size, "kernel_size")
    return _ops.current().avg_pool2d(_array(x, "avg_pool2d"), k, k if stride is None else positive_pair(
        stride, "stride"), pool_padding(padding, k), boolean(ceil_mode, "ceil_mode"),
        boolean(count_include_pad, "count_include_pad"))


def adaptive_avg_pool2d(x, output_size):
    """Mean over PyTorch's adaptive windows; output_size 1 is the global average pool."""
    return _ops.current().adaptive_avg_pool2d(_array(x, "adaptive_avg_pool2d"),
                                              positive_pair(output_size, "output_size"))


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    return _ops.current().local_response_norm(_array(x, "local_response_norm"), positive_int(size, "size"),
                                              real(alpha, "alpha"), real(beta, "beta"), real(k, "k"))


# --- elementwise --------------------------------------------------------------------------------
def _elementwise(op):
    def fn(x, inplace=False):
        return getattr(_ops.current(), op)(_array(x, op), boolean(inplace, "inplace"))
    fn.__name__ = op
    fn.__doc__ = (f"{op}(x), into x itself when inplace=True (only on an intermediate the module owns, "
                  f"never on its caller's input).")
    return fn


relu, relu6, sigmoid, tanh, silu = (_elementwise(op) for op in ("relu", "relu6", "sigmoid", "tanh", "silu"))


def softmax(x, dim):
    return _ops.current().softmax(_array(x, "softmax"), integer(dim, "dim"))


def dropout(x, p=0.5, training=False, inplace=False):
    """The identity at inference (p is checked, as torch checks it)."""
    real(p, "p", low=0.0, high=1.0)
    _no_training(training, "dropout")
    return _array(x, "dropout")


def add(a, b):
    """a + b into a new array, numpy's broadcasting (the same as the + operator on activations)."""
    _same_device((a, b), "add")
    return _ops.current().add(_array(a, "add"), b)


def mul(a, b):
    """a * b into a new array, numpy's broadcasting (squeeze-and-excitation's channel scale)."""
    _same_device((a, b), "mul")
    return _ops.current().mul(_array(a, "mul"), b, False)


def cat(xs, dim=0):
    """Concatenation along `dim` (torch.cat's default 0; channels are dim=1)."""
    xs = [_array(x, "cat") for x in xs]
    if not xs:
        raise ValueError("cat needs at least one array")
    _same_device(xs, "cat")
    return _ops.current().concat(xs, integer(dim, "dim"))


def flatten(x, start_dim=0, end_dim=-1):
    """torch.flatten (start_dim 0 by default; torch.nn.Flatten's and cnn.layers.Flatten's is 1)."""
    return _ops.current().flatten(_array(x, "flatten"), integer(start_dim, "start_dim"), integer(end_dim, "end_dim"))
