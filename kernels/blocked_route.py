"""The blocked route of kernels.conv2d (float32, groups == 1): an implementation `auto` may choose.

    NCHW x --layout.to_blocked--> NCHW16c + zero halo --blocked.conv--> NCHW16c --layout.from_blocked--> NCHW y

The blocked kernel (kernels/cpu/blocked.h) tiles 16-channel output blocks x output pixels in
registers with the whole C x R x S reduction inside, on prepacked weights, with bias and activation
in its epilogue. It is fastest where the NCHW kernels are weakest: small planes with many channels
(3x3 512->512 at 7x7) and strided layers. An input with fewer than 16 channels (a stem: C = 3) is
not blocked, which would waste most of its lanes: the kernel reads it as a zero-framed NCHW array
(layout.pad_nchw, or x itself when no padding is needed).

The input's halo is the largest padding any window reaches, on any side (the bottom/right padding
that the output size implies included); the route is offered only up to MAX_HALO, past which the
blocked copy of x would be mostly frame.

Packed weights are cached, keyed by content: the weight's shape, `layout.fingerprint` of the weight
and of the bias, and the geometry. Packing costs more than a small-plane convolution, and the
caller's arrays may be writable and changed in place between calls, so identity alone cannot say
that a packing is still valid; content can. The fingerprint reads every word of w once (about a
sixth of a 3x3 512->512 convolution at 7x7, nothing measurable on larger planes). Why it is enough:
its first sum changes with any change confined to one 32-bit word; its second mixes every word with
its position, so a change of several words goes unnoticed only if both 64-bit sums coincide by
chance. That is a cache check for arrays the caller owns, not a hash for adversarial data. Two
arrays with equal contents share an entry. The cache holds at most MAX_ENTRIES packings and
MAX_BYTES of packed weights, least recently used out first, behind one lock.

This module is an implementation detail of `auto` (kernels.select): it is not one of
kernels.ALGORITHMS, and it needs the blocked and layout kernel modules of the chosen ISA.
"""
from __future__ import annotations

import collections
import threading

import numpy as np

from . import cpu
from .blocked import BLOCK, ConvWeights, aligned_empty, blocked_shape

MAX_HALO = 8
MAX_ENTRIES = 128
MAX_BYTES = 256 * 2**20
SMALL = 1 << 16


def halo(g):
    """The zero frame the input needs: the largest padding the windows of geometry g reach."""
    bottom = max(0, (g.P - 1) * g.sh + (g.R - 1) * g.dh - g.pad_top - (g.H - 1))
    right = max(0, (g.Q - 1) * g.sw + (g.S - 1) * g.dw - g.pad_left - (g.W - 1))
    return max(g.pad_top, g.pad_left, bottom, right)


def unsupported(g, dtype):
    """Why the route cannot run geometry g (the kernels' canonical one) in `dtype`; None when it can."""
    if np.dtype(dtype) != np.float32:
        return f"the blocked kernels are float32 only, got {np.dtype(dtype).name}"
    if g.groups != 1:
        return f"the blocked convolution needs groups == 1, got groups={g.groups}"
    h = halo(g)
    if h > MAX_HALO:
        return f"padding {h} is past the route's largest halo {MAX_HALO}"
    return None


class _PackCache:
    """Packed ConvWeights by key, bounded by entries and bytes, least recently used out first."""

    def __init__(self, max_entries, max_bytes):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            cw = self._entries.get(key)
            if cw is not None:
                self._entries.move_to_end(key)
            return cw

    def put(self, key, cw):
        size = cw.w.nbytes + cw.bias.nbytes
        if size > self.max_bytes:
            return                                  # used once, never kept
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.w.nbytes + old.bias.nbytes
            self._entries[key] = cw
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, out = self._entries.popitem(last=False)
                self._bytes -= out.w.nbytes + out.bias.nbytes

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def info(self):
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes,
                    "max_entries": self.max_entries, "max_bytes": self.max_bytes}


_cache = _PackCache(MAX_ENTRIES, MAX_BYTES)


def cache_info():
    """{"entries", "bytes", "max_entries", "max_bytes"} of the packed-weight cache."""
    return _cache.info()


def clear_cache():
    _cache.clear()


def _threads_for(elements, nthreads):
    """Data movement under SMALL elements runs on one thread: a few microseconds of copying, less than
    waking the others costs (and a busy machine can make that wait a scheduler tick)."""
    return 1 if elements < SMALL else nthreads


def weights(w, bias, g, nthreads=1):
    """The packed kernels.blocked.ConvWeights of C-contiguous float32 w (K, C, R, S) and bias (K,) or
    None for geometry g, from the cache when an array of the same content was packed before. Loads
    the route's kernel modules too (a measurement calls this before it times the route)."""
    layout = cpu.load("layout")
    cpu.load("blocked")
    nchw_input = g.C < BLOCK
    key = (w.shape, layout.fingerprint(w, _threads_for(w.size, nthreads)),
           None if bias is None else layout.fingerprint(bias, 1),
           g.sh, g.sw, g.pad_top, g.pad_left, g.dh, g.dw, nchw_input)
    cw = _cache.get(key)
    if cw is None:
        cw = ConvWeights(w, bias, (g.sh, g.sw), (g.pad_top, g.pad_left), (g.dh, g.dw), nchw_input=nchw_input)
        _cache.put(key, cw)
    return cw


def conv2d(x, w, bias, y, g, act, nthreads):
    """y = act(conv(x, w) + bias) for the canonical geometry g: x (N, C, H, W), w, bias and y (N, K, P,
    Q) C-contiguous float32 (x, w, bias may be read-only); act 0 none, 1 ReLU, 2 ReLU6. The kernel
    contract of kernels/_conv.py, with the geometry as one argument."""
    reason = unsupported(g, x.dtype)
    if reason is not None:
        raise ValueError(f"the blocked route cannot run this convolution: {reason}")
    layout, blocked = cpu.load("layout"), cpu.load("blocked")
    cw = weights(w, bias, g, nthreads)
    h = halo(g)
    N, C, H, W = x.shape
    if cw.nchw_input:
        xb = x
        if h:
            xb = aligned_empty((N, C, H + 2 * h, W + 2 * h))
            layout.pad_nchw(x, xb, h, _threads_for(xb.size, nthreads))
    else:
        xb = aligned_empty(blocked_shape(N, C, H, W, h))
        layout.to_blocked(x, xb, h, _threads_for(xb.size, nthreads))
    yb = aligned_empty(blocked_shape(N, g.K, g.P, g.Q))
    blocked.conv(xb, h, cw, yb, 0, None, 0, act, nthreads)
    layout.from_blocked(yb, 0, y, _threads_for(yb.size, nthreads))
