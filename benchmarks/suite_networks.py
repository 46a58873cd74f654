"""`python -m benchmarks networks`: forward latency and throughput per network at batch 1 and a larger
batch, against the same network in torch.nn (benchmarks.torch_models, same weights) when torch imports,
and where the time goes: one forward pass under a timing op set that clocks every op call (a conv by
its class, batch-norm, pooling, activations, ...), the rest being Python, copies and allocation.
"""
from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from cnn.layers.ops import FastOps, use
from kernels.shapes import conv_geometry

from .timing import compare, paired_ratio

QUICK_NETWORKS = ("lenet5", "mobilenet_v2", "resnet50", "vgg16")
BATCHES = (1, 8)
# input (C, H, W) of each network; 224x224 RGB unless listed
INPUT = {"lenet5": (1, 32, 32), "alexnet": (3, 227, 227), "efficientnet_b1": (3, 240, 240),
         "efficientnet_b2": (3, 260, 260), "efficientnet_b3": (3, 300, 300), "efficientnet_b4": (3, 380, 380),
         "efficientnet_b5": (3, 456, 456), "efficientnet_b6": (3, 528, 528), "efficientnet_b7": (3, 600, 600)}


def input_shape(name, batch):
    return (batch,) + INPUT.get(name, (3, 224, 224))


def conv_class(x_shape, w_shape, stride, padding, dilation, groups):
    g = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    if g.groups > 1 and g.is_depthwise:
        return "conv depthwise"
    if g.is_pointwise:
        return "conv 1x1"
    if g.groups > 1:
        return "conv grouped"
    return f"conv {g.R}x{g.S}"


OP_TYPE = {"batch_norm": "batch-norm", "max_pool2d": "pooling", "avg_pool2d": "pooling",
           "global_avg_pool2d": "pooling", "adaptive_avg_pool2d": "pooling", "local_response_norm": "LRN",
           "linear": "linear", "relu": "activation", "relu6": "activation", "tanh": "activation",
           "sigmoid": "activation", "silu": "activation", "softmax": "activation",
           "add": "residual add / SE scale", "add_": "residual add / SE scale", "mul": "residual add / SE scale",
           "concat": "concat / flatten",
           "flatten": "concat / flatten"}


class TimedOps(FastOps):
    """The fast op set with a clock around every op: seconds[type] accumulates the time of each call
    (synchronised first and after on a GPU, so that a call's time is its own)."""

    def __init__(self, sync=None):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self._sync = sync or (lambda: None)
        self._depth = 0

    def _timed(self, kind, fn, *args, **kw):
        if self._depth:                       # an op built on another (silu on sigmoid): time the outer one
            return fn(*args, **kw)
        self._depth += 1
        try:
            self._sync()
            t0 = time.perf_counter()
            out = fn(*args, **kw)
            self._sync()
        finally:
            self._depth -= 1
        self.seconds[kind] += time.perf_counter() - t0
        self.calls[kind] += 1
        return out

    def conv2d(self, x, w, b, *, stride, padding, dilation, groups, algorithm="auto", activation=None):
        kind = conv_class(x.shape, w.shape, stride, padding, dilation, groups)
        return self._timed(kind, super().conv2d, x, w, b, stride=stride, padding=padding, dilation=dilation,
                           groups=groups, algorithm=algorithm, activation=activation)


def _wrap(op):
    def timed(self, *args, **kw):
        return self._timed(OP_TYPE[op], getattr(FastOps, op).__get__(self), *args, **kw)
    timed.__name__ = op
    return timed


for _op in OP_TYPE:
    setattr(TimedOps, _op, _wrap(_op))


def breakdown(net, x, sync, passes=5):
    """Seconds per op type of one forward pass, and the pass's own time: the median over `passes`
    passes, each timed on its own, so that one pass hit by another process does not skew the shares."""
    runs = []
    for _ in range(passes):
        ops = TimedOps(sync)
        t0 = time.perf_counter()
        with use(ops):
            net(x)
            sync()
        runs.append((time.perf_counter() - t0, dict(ops.seconds)))
    total = float(np.median([t for t, _ in runs]))
    kinds = {k for _, secs in runs for k in secs}
    per_type = {k: float(np.median([secs.get(k, 0.0) for _, secs in runs])) for k in kinds}
    per_type = dict(sorted(per_type.items(), key=lambda kv: -kv[1]))
    per_type["other (Python, copies, allocation)"] = max(0.0, total - sum(per_type.values()))
    return {"forward_s": total, "seconds": per_type,
            "share": {k: v / total for k, v in per_type.items()}}


def torch_network(name, net, backend):
    """The torch.nn twin with our network's weights, on the backend's device; None (and why) otherwise."""
    torch = backend.torch
    if torch is None:
        return None, "torch does not import"
    try:
        from . import torch_models
        model = torch_models.create(name)
        state = {k: torch.from_numpy(v.get() if hasattr(v, "get") else v)
                 for k, v in net.state_dict(copy=True).items()}
        model.load_state_dict(state)
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"
    model.eval()
    if backend.name == "cuda":
        model = model.cuda()
    return model, None


def bench_network(name, batches, backend, dtype, budget):
    from cnn import models, summary
    net = models.create(name)
    if np.dtype(dtype) != np.float32:
        net.to(np.dtype(dtype))
    if backend.name == "cuda":
        net.to("cuda")
    model, why = torch_network(name, net, backend) if np.dtype(dtype) == np.float32 else (None, "float32 only")
    rows = []
    for batch in batches:
        shape = input_shape(name, batch)
        macs = summary(net, shape).total_macs
        x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
        xd = backend.array(x)
        fns = {"ours": lambda: net(xd)}
        timers = {"ours": backend.timer_ours}
        if model is not None:
            xt = backend.torch_tensor(x)

            def theirs():
                with backend.torch.inference_mode():
                    return model(xt)
            fns["pytorch"], timers["pytorch"] = theirs, backend.timer_torch
        stats = compare(fns, budget, timers)
        row = {"network": name, "batch": batch, "input": list(shape), "macs": int(macs),
               "ours": {**stats["ours"].as_dict(), "images_per_s": batch / stats["ours"].median,
                        "gflops": 2 * macs / stats["ours"].median / 1e9},
               "breakdown": breakdown(net, xd, backend.sync)}
        if model is not None:
            t = stats["pytorch"]
            row["pytorch"] = {**t.as_dict(), "images_per_s": batch / t.median, "gflops": 2 * macs / t.median / 1e9}
            row["ratio"] = paired_ratio(t, stats["ours"])
        else:
            row["pytorch_missing"] = why
        rows.append(row)
    return rows


def run(backend, *, full, networks, dtype, budget, progress):
    from cnn import models
    names = networks or (list(models.available()) if full else list(QUICK_NETWORKS))
    unknown = [n for n in names if n not in models.available()]
    if unknown:
        raise SystemExit(f"--networks: unknown network(s) {unknown}; available: {', '.join(models.available())}")
    task = progress.add_task(f"networks ({backend.name})", total=len(names))
    rows = []
    for name in names:
        progress.update(task, description=f"networks ({backend.name}): {name}")
        rows.extend(bench_network(name, BATCHES, backend, dtype, budget))
        progress.advance(task)
    return {"device": backend.name, "dtype": np.dtype(dtype).name, "rows": rows}
