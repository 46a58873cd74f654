"""The ops a layer calls, as three interchangeable sets, and the context switch between them.

A layer never calls `kernels` directly: it asks `current()` for the op set in force and calls that.
  FAST       the kernels on the input's own arrays (numpy -> Cython, cupy -> CUDA), in the input's dtype;
             elementwise work through the input's array module, in place on intermediates the layer owns;
             Conv -> BatchNorm -> ReLU/ReLU6 runs as one conv call (`fuses`).
  REFERENCE  kernels.reference in float64 NumPy, every layer on its own (no folding, no fusing): the
             oracle a network's fast forward pass is checked against.
  ShapeOps   no arithmetic: arrays are `Spec`s (shape, dtype) and every op returns its output's Spec;
             with a recorder it reports each module call and its MACs (cnn.summary builds on this).
             See shape_ops.py.

The switch is a contextvars.ContextVar, so it is local to a thread / task and holds no global state:

    with use(REFERENCE):
        y64 = net(x)
"""
from __future__ import annotations

import contextlib
import contextvars

import numpy as np

import kernels
from kernels import reference as _ref

from .shape_ops import ShapeOps, Spec, _flat_shape  # noqa: F401  (ShapeOps and Spec re-exported)


def array_module(x):
    """numpy for numpy arrays, cupy for cupy arrays (cupy imported only when a cupy array is in hand)."""
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return np


def adaptive_windows(n, out):
    """PyTorch's adaptive pooling windows along one axis: [floor(i*n/out), ceil((i+1)*n/out))."""
    return [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]


def _adaptive_avg_pool2d(x, out_hw, xp):
    """Mean over PyTorch's adaptive windows; reshapes when the windows tile the input evenly."""
    N, C, H, W = x.shape
    oh, ow = out_hw
    if (oh, ow) == (H, W):
        return x
    if H % oh == 0 and W % ow == 0:
        return x.reshape(N, C, oh, H // oh, ow, W // ow).mean(axis=(3, 5))
    y = xp.empty((N, C, oh, ow), dtype=x.dtype)
    for i, (h0, h1) in enumerate(adaptive_windows(H, oh)):
        for j, (w0, w1) in enumerate(adaptive_windows(W, ow)):
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


class FastOps:
    """The kernels, in the input's dtype and on its device."""
    name = "fast"
    fuses = True
    records = False
    strict = True          # layers check that x has their weights' dtype and device (checks.py)
    host64 = False         # Module.__call__ leaves the arguments as they are

    def conv2d(self, x, w, b, *, stride, padding, dilation, groups, algorithm="auto", activation=None):
        return kernels.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                              algorithm=algorithm, activation=activation)

    def batch_norm(self, x, mean, var, gamma, beta, eps):
        xp = array_module(x)
        scale = gamma / xp.sqrt(var + eps)
        shift = beta - mean * scale
        y = x * scale.reshape(1, -1, 1, 1).astype(x.dtype, copy=False)
        y += shift.reshape(1, -1, 1, 1).astype(x.dtype, copy=False)
        return y

    def max_pool2d(self, x, kernel_size, stride, padding, dilation, ceil_mode):
        return kernels.max_pool2d(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                                  ceil_mode=ceil_mode)

    def avg_pool2d(self, x, kernel_size, stride, padding, ceil_mode, count_include_pad):
        return kernels.avg_pool2d(x, kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                                  count_include_pad=count_include_pad)

    def global_avg_pool2d(self, x):
        return kernels.global_avg_pool2d(x).reshape(x.shape[0], x.shape[1], 1, 1)

    def adaptive_avg_pool2d(self, x, out_hw):
        if out_hw == (1, 1):
            return self.global_avg_pool2d(x)
        return _adaptive_avg_pool2d(x, out_hw, array_module(x))

    def local_response_norm(self, x, size, alpha, beta, k):
        return kernels.local_response_norm(x, size, alpha, beta, k)

    def linear(self, x, w, b):
        if isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[0] > 0:
            # y = x @ w.T + b as a 1x1 convolution of the (features, batch) matrix: our GEMM, on our
            # OpenMP threads, instead of numpy's OpenBLAS pool competing with them for the cores
            cols = np.ascontiguousarray(x.T).reshape(1, x.shape[1], 1, x.shape[0])
            y = kernels.conv2d(cols, w.reshape(w.shape[0], w.shape[1], 1, 1), b, algorithm="pointwise")
            return y[0, :, 0, :].T
        y = array_module(x).matmul(x, w.T)
        if b is not None:
            y += b
        return y

    # elementwise: in place when the caller owns x (`inplace`), else into a new array
    def relu(self, x, inplace):
        xp = array_module(x)
        return xp.maximum(x, 0, out=x if inplace else None)

    def relu6(self, x, inplace):
        xp = array_module(x)
        y = xp.maximum(x, 0, out=x if inplace else None)
        return xp.minimum(y, 6, out=y)

    def tanh(self, x, inplace):
        return array_module(x).tanh(x, out=x if inplace else None)

    def sigmoid(self, x, inplace):
        # 1 / (1 + e^-x) = (1 + tanh(x / 2)) / 2: no overflow for large |x|
        xp = array_module(x)
        y = xp.multiply(x, 0.5, out=x if inplace else None)
        xp.tanh(y, out=y)
        y *= 0.5
        y += 0.5
        return y

    def silu(self, x, inplace):
        s = self.sigmoid(x, inplace=False)
        if inplace:
            x *= s
            return x
        s *= x
        return s

    def softmax(self, x, dim):
        xp = array_module(x)
        y = x - x.max(axis=dim, keepdims=True)
        xp.exp(y, out=y)
        y /= y.sum(axis=dim, keepdims=True)
        return y

    def add(self, a, b):
        """a + b into a new array (numpy's broadcasting)."""
        return a + b

    def add_(self, a, b):
        """a += b (the residual sum into the block's own output)."""
        a += b
        return a

    def mul(self, x, s, inplace):
        """x * s, s broadcast (squeeze-and-excitation's channel scale); into x itself when `inplace`."""
        return array_module(x).multiply(x, s, out=x if inplace else None)

    def concat(self, xs, axis):
        return array_module(xs[0]).concatenate(xs, axis=axis)

    def flatten(self, x, start_dim, end_dim=-1):
        # the size is computed, not inferred with -1: numpy cannot infer it for an empty batch
        return x.reshape(_flat_shape(x.shape, start_dim, end_dim))


class ReferenceOps(FastOps):
    """kernels.reference in float64 NumPy; every array is brought to the host in float64 first."""
    name = "reference"
    fuses = False
    strict = False         # everything is brought to the host in float64, so any input goes
    host64 = True          # ... the arguments of every module call too (Module.__call__)
    h = staticmethod(_ref.to_host64)

    def conv2d(self, x, w, b, *, stride, padding, dilation, groups, algorithm="auto", activation=None):
        return _ref.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                           activation=activation)

    def batch_norm(self, x, mean, var, gamma, beta, eps):
        h = self.h
        c = (1, -1, 1, 1)
        return (h(x) - h(mean).reshape(c)) / np.sqrt(h(var).reshape(c) + eps) * h(gamma).reshape(c) \
            + h(beta).reshape(c)

    def max_pool2d(self, x, kernel_size, stride, padding, dilation, ceil_mode):
        return _ref.max_pool2d(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                               ceil_mode=ceil_mode)

    def avg_pool2d(self, x, kernel_size, stride, padding, ceil_mode, count_include_pad):
        return _ref.avg_pool2d(x, kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                               count_include_pad=count_include_pad)

    def global_avg_pool2d(self, x):
        return _ref.global_avg_pool2d(x).reshape(x.shape[0], x.shape[1], 1, 1)

    def adaptive_avg_pool2d(self, x, out_hw):
        return _adaptive_avg_pool2d(self.h(x), out_hw, np)

    def local_response_norm(self, x, size, alpha, beta, k):
        return _ref.local_response_norm(x, size, alpha, beta, k)

    def linear(self, x, w, b):
        y = self.h(x) @ self.h(w).T
        return y if b is None else y + self.h(b)

    def relu(self, x, inplace):
        return np.maximum(self.h(x), 0.0)

    def relu6(self, x, inplace):
        return np.minimum(np.maximum(self.h(x), 0.0), 6.0)

    def tanh(self, x, inplace):
        return np.tanh(self.h(x))

    def sigmoid(self, x, inplace):
        return 0.5 + 0.5 * np.tanh(0.5 * self.h(x))     # = 1 / (1 + e^-x), without overflow

    def silu(self, x, inplace):
        return self.h(x) * self.sigmoid(x, False)

    def softmax(self, x, dim):
        x = self.h(x)
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        return e / e.sum(axis=dim, keepdims=True)

    def add(self, a, b):
        return self.h(a) + self.h(b)

    add_ = add

    def mul(self, x, s, inplace):
        return self.h(x) * self.h(s)

    def concat(self, xs, axis):
        return np.concatenate([self.h(x) for x in xs], axis=axis)

    def flatten(self, x, start_dim, end_dim=-1):
        return self.h(x).reshape(_flat_shape(x.shape, start_dim, end_dim))


FAST = FastOps()
REFERENCE = ReferenceOps()
_current = contextvars.ContextVar("cnn_ops", default=FAST)


def current():
    """The op set in force in this context (FAST unless a `use` block says otherwise)."""
    return _current.get()


@contextlib.contextmanager
def use(ops):
    """Run the enclosed forward passes with `ops` (FAST, REFERENCE or a ShapeOps)."""
    token = _current.set(ops)
    try:
        yield ops
    finally:
        _current.reset(token)
