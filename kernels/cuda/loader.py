"""Compile each kernels/cuda/<family>.cu once per device (cupy.RawModule) and hand out its kernels.

    loader.kernel("conv_direct", "conv2d_tiled<float, 4, 8>")  ->  cupy.RawKernel

A family's source is compiled the first time one of its kernels is asked for on a device, with every
template instance it declares (NAME_EXPRESSIONS), and the module and each kernel are kept for the
life of the process: later calls are dictionary look-ups. CuPy also keeps the compiled binary in its
on-disk cache (keyed by the source text and the options), so a new process loads instead of
compiling. common.cuh is spliced into each source in place of its #include, so that a change to the
header changes the cache key as well. Safe to call from several threads: compilation happens under
a lock, once.
"""
from __future__ import annotations

import os
import threading

import cupy

OPTIONS = ("-std=c++17",)
TYPES = ("float", "double")
# (registers-blocking) instances of conv2d_tiled: (output channels per thread, pixels per thread).
DIRECT_CONFIGS = ((4, 8), (8, 2))
# Kernel sizes and strides with a specialised depthwise kernel (square kernel, no dilation).
DEPTHWISE_SPECIALISED = ((3, 1), (3, 2), (5, 1), (5, 2))

NAME_EXPRESSIONS = {
    "elementwise": [f"{k}<{t}>" for k in ("bias_act", "bias_act_nk") for t in TYPES],
    "im2col": [f"im2col<{t}>" for t in TYPES],
    "conv_direct": [f"conv2d_naive<{t}>" for t in TYPES]
                   + [f"conv2d_tiled<{t}, {kpt}, {ppt}>" for t in TYPES for kpt, ppt in DIRECT_CONFIGS],
    "depthwise": [f"depthwise_rs<{t}, {r}, {st}>" for t in TYPES for r, st in DEPTHWISE_SPECIALISED]
                 + [f"depthwise_general<{t}>" for t in TYPES],
    "pooling": [f"{k}<{t}>" for k in ("pool2d", "global_avg_pool") for t in TYPES],
    "lrn": [f"lrn<{t}>" for t in TYPES],
}

_DIR = os.path.dirname(os.path.abspath(__file__))
_HEADER = "common.cuh"

_lock = threading.Lock()
_modules: dict = {}   # (family, device id, options) -> compiled cupy.RawModule
_kernels: dict = {}   # (family, device id, options, name expression) -> cupy.RawKernel


def source(family):
    """The text NVRTC compiles for kernels/cuda/<family>.cu: the file with common.cuh spliced in."""
    with open(os.path.join(_DIR, family + ".cu"), encoding="utf-8") as f:
        text = f.read()
    with open(os.path.join(_DIR, _HEADER), encoding="utf-8") as f:
        header = "".join(line for line in f if line.strip() != "#pragma once")
    include = f'#include "{_HEADER}"'
    if include in text:
        text = text.replace(include, header, 1)
    return text


def _module(family, device_id):
    key = (family, device_id, OPTIONS)
    mod = _modules.get(key)
    if mod is None:
        with _lock:
            mod = _modules.get(key)
            if mod is None:
                with cupy.cuda.Device(device_id):
                    mod = cupy.RawModule(code=source(family), options=OPTIONS,
                                         name_expressions=NAME_EXPRESSIONS[family])
                    mod.compile()
                _modules[key] = mod
    return mod


def kernel(family, name_expression):
    """The compiled kernel `name_expression` of kernels/cuda/<family>.cu for the current device."""
    if name_expression not in NAME_EXPRESSIONS.get(family, ()):
        raise ValueError(f"no kernel {name_expression!r} in {family}.cu; known: "
                         f"{NAME_EXPRESSIONS.get(family)}")
    device_id = cupy.cuda.Device().id
    key = (family, device_id, OPTIONS, name_expression)
    k = _kernels.get(key)
    if k is None:
        mod = _module(family, device_id)
        with _lock:
            k = _kernels.get(key)
            if k is None:
                k = mod.get_function(name_expression)
                _kernels[key] = k
    return k


def compiled_modules():
    """The (family, device id, options) keys of the modules compiled so far in this process."""
    with _lock:
        return sorted(_modules)
