"""ONNX Runtime's own per-node profile of a forward pass, aggregated so that it sits beside our
breakdown (benchmarks.suite_networks.breakdown) category by category.

SessionOptions.enable_profiling writes a Chrome-trace JSON file: a "Session" event `model_run` per
run, and a "Node" event `<node>_kernel_time` per node executed, holding the node's op type
(args.op_name) and its input shapes (args.input_type_shape). Each node's time goes to its ORT op type
(`by_op`: Conv, MaxPool, ReorderOutput, Gemm, ...) and to the category our breakdown uses (`seconds`:
a Conv by the shape of its weights, "conv 3x3", "conv 1x1", "conv depthwise"; MaxPool to "pooling";
Clip to "activation"; ...). What a run's time leaves over is the session's own: scheduling, and the
copies of inputs and outputs. Per category, the median over the profiled runs.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict

import numpy as np

# ORT op type -> the category of our breakdown (the names in suite_networks.OP_TYPE and conv_class)
CATEGORY = {"MaxPool": "pooling", "AveragePool": "pooling", "GlobalAveragePool": "pooling",
            "GlobalMaxPool": "pooling", "Gemm": "linear", "MatMul": "linear", "FusedGemm": "linear",
            "FusedMatMul": "linear", "Relu": "activation", "Clip": "activation", "Sigmoid": "activation",
            "HardSigmoid": "activation", "Tanh": "activation", "Softmax": "activation", "Elu": "activation",
            "LeakyRelu": "activation", "HardSwish": "activation", "Gelu": "activation",
            "QuickGelu": "activation",            # x * sigmoid(alpha x): ORT's fusion of SiLU (EfficientNet)
            "Add": "residual add / SE scale", "Mul": "residual add / SE scale",
            "Sum": "residual add / SE scale", "Concat": "concat / flatten", "Flatten": "concat / flatten",
            "Reshape": "concat / flatten", "BatchNormalization": "batch-norm", "LRN": "LRN",
            "ReorderInput": "layout reorder (NCHWc)", "ReorderOutput": "layout reorder (NCHWc)"}
CONV_OPS = ("Conv", "FusedConv")
OTHER = "other (session: scheduling, input/output copies)"


def conv_category(input_shapes) -> str:
    """The conv class (as suite_networks.conv_class names it) of a Conv node from its input shapes:
    x (N, C, H, W) and weights (K, C / groups, R, S). An NCHWc node pads both C and the weights' second
    axis to the channel block alike, so their quotient is still the group count."""
    x, w = input_shapes[0], input_shapes[1]
    C, Cg, R, S = x[1], w[1], w[2], w[3]
    if Cg == 1 and C > 1:
        return "conv depthwise"
    if R == S == 1:
        return "conv 1x1"
    if Cg < C:
        return "conv grouped"
    return f"conv {R}x{S}"


def _shapes(event):
    return [next(iter(t.values())) for t in event["args"].get("input_type_shape", [])]


def _node_events(events):
    return [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]


def aggregate(events, skip_runs: int = 0) -> dict:
    """The profile's trace events -> {"forward_s", "seconds", "share", "by_op", "calls", "fused_add"}.

    The runs are the `model_run` events; the first `skip_runs` (warm-up) are left out. seconds and
    by_op hold per-category and per-op-type medians over the runs, `calls` the nodes of one run per op
    type, and `fused_add` how many Conv nodes took the residual add as a fourth input (ORT's Conv+Add
    fusion)."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"),
                  key=lambda e: e["ts"])[skip_runs:]
    if not runs:
        raise ValueError(f"the profile holds no model_run event after skipping {skip_runs} run(s)")
    nodes = _node_events(events)
    per_run = []
    for run in runs:
        start, end = run["ts"], run["ts"] + run["dur"]
        mine = [e for e in nodes if start <= e["ts"] <= end]
        cats, ops, calls = defaultdict(float), defaultdict(float), defaultdict(int)
        fused_add = 0
        for e in mine:
            op = e["args"].get("op_name", "?")
            seconds = e["dur"] * 1e-6
            if op in CONV_OPS:
                shapes = _shapes(e)
                cats[conv_category(shapes)] += seconds
                fused_add += len(shapes) == 4
            else:
                cats[CATEGORY.get(op, op)] += seconds
            ops[op] += seconds
            calls[op] += 1
        per_run.append((run["dur"] * 1e-6, cats, ops, calls, fused_add))
    total = float(np.median([r[0] for r in per_run]))

    def medians(index):
        keys = {k for r in per_run for k in r[index]}
        out = {k: float(np.median([r[index].get(k, 0.0) for r in per_run])) for k in keys}
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))
    seconds = medians(1)
    seconds[OTHER] = max(0.0, total - sum(seconds.values()))
    return {"forward_s": total, "seconds": seconds, "share": {k: v / total for k, v in seconds.items()},
            "by_op": medians(2), "calls": dict(per_run[-1][3]), "fused_add": per_run[-1][4], "runs": len(per_run)}


def profile(model_path: str, threads: int, x: np.ndarray, passes: int = 5) -> dict:
    """Run the model `passes` times (after one warm-up run) in a profiling session of its own, so the
    timed session is never slowed by the profiler. -> aggregate() of its trace."""
    from .peers import OnnxRuntime
    with tempfile.TemporaryDirectory() as folder:
        session = OnnxRuntime(model_path, threads, profile_prefix=os.path.join(folder, "ort"))
        for _ in range(passes + 1):
            session(x)
        path = session.session.end_profiling()
        with open(path) as f:
            events = json.load(f)
    return aggregate(events, skip_runs=1)
