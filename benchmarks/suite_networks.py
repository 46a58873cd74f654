"""`python -m benchmarks networks`: forward latency and throughput per network at batch 1 and a larger
batch, against the same network in torch.nn (benchmarks.torch_models, same weights) when torch imports
and against ONNX Runtime and OpenVINO running that twin's ONNX export (benchmarks.peers) when they are
installed; every contender in one interleaved comparison, each peer's output checked against ours
first (one that disagrees is reported, not timed).

Where the time goes: one forward pass under a timing op set that clocks every op call (a conv by its
class, batch-norm, pooling, activations, ...), the rest being Python, copies and allocation; beside it
ONNX Runtime's own per-node profile of the same network, aggregated into the same categories
(benchmarks.ort_profile).
"""
from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from cnn import plan as cnn_plan
from cnn.layers.ops import FastOps, use
from kernels.shapes import conv_geometry

from . import ort_profile, peers
from .timing import compare, geomean, paired_ratio

# the networks of a run without --full: those the inference-plan issue sets its bars on
QUICK_NETWORKS = ("resnet18", "resnet34", "resnet50", "mobilenet_v1", "mobilenet_v2", "efficientnet_b0",
                  "googlenet", "vgg16")
BATCHES = (1, 8)
# the bars against the peers: per peer the geometric mean of (peer time / ours) and its smallest value
# over the run's networks and batches; and the share of the FMA peak over whole networks at batch 1
RATIO_BARS = {"geomean": 1.0, "min": 0.85}
PEAK_BAR = {"target_pct": 80.0, "rows": (("resnet18", 1), ("resnet50", 1))}
# input (C, H, W) of each network; 224x224 RGB unless listed
INPUT = {"lenet5": (1, 32, 32), "alexnet": (3, 227, 227), "efficientnet_b1": (3, 240, 240),
         "efficientnet_b2": (3, 260, 260), "efficientnet_b3": (3, 300, 300), "efficientnet_b4": (3, 380, 380),
         "efficientnet_b5": (3, 456, 456), "efficientnet_b6": (3, 528, 528), "efficientnet_b7": (3, 600, 600)}


def input_shape(name, batch):
    return (batch,) + INPUT.get(name, (3, 224, 224))


def conv_class(x_shape, w_shape, stride, padding, dilation, groups):
    return geometry_class(conv_geometry(x_shape, w_shape, stride, padding, dilation, groups))


def geometry_class(g):
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


PLAN_TYPE = {"pool": "pooling", "gap": "pooling", "add": "residual add / SE scale",
             "scale": "residual add / SE scale", "act": "activation", "linear": "linear",
             "concat": "concat / flatten", "flatten": "concat / flatten", "input": "layout conversion",
             "output": "layout conversion"}


def plan_class(node):
    """The breakdown category of one step of an inference plan (cnn/plan)."""
    if node is None:
        return "layout conversion"
    if node.op == "conv":
        return geometry_class(node.attrs["g"])
    if node.op == "fallback":
        return OP_TYPE.get(node.attrs["name"], "other ops (NCHW fallback)")
    return PLAN_TYPE.get(node.op, node.op)


def plan_breakdown(plan, x, passes=5):
    """The breakdown of a planned forward pass: each step timed, summed per category."""
    steps = plan.profile(x, passes)
    total = sum(sec for _, _, sec in steps)
    per_type = defaultdict(float)
    for label, node, sec in steps:
        per_type[plan_class(node) if node is not None else PLAN_TYPE[label]] += sec
    per_type = dict(sorted(per_type.items(), key=lambda kv: -kv[1]))
    return {"forward_s": total, "seconds": per_type, "share": {k: v / total for k, v in per_type.items()},
            "planned": True}


def breakdown(net, x, sync, passes=5):
    """Seconds per op type of one forward pass, and the pass's own time: the median over `passes`
    passes, each timed on its own, so that one pass hit by another process does not skew the shares.
    A network that runs through an inference plan (float32 numpy input) is broken down by its plan's
    steps, the path its plain call takes."""
    if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape[0] > 0 and cnn_plan.enabled():
        try:
            return plan_breakdown(net.prepare(x.shape), x, passes)
        except (TypeError, ValueError):
            pass
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


def _host(a):
    return a.get() if hasattr(a, "get") else (a.numpy() if hasattr(a, "numpy") else np.asarray(a))


def _speed(stats, batch, macs, peak):
    """A contender's timing dict: the Stats, images per second, GFLOP/s and % of the FMA peak."""
    gflops = 2 * macs / stats.median / 1e9
    return {"status": "ok", **stats.as_dict(), "images_per_s": batch / stats.median, "gflops": gflops,
            "pct_peak": 100 * gflops / peak if peak else None}


def peer_sessions(name, model, state, shape, backend, peer_names, cache_dir, settings):
    """The peers' sessions on the ONNX export of `model` for this input shape. -> (name -> session,
    name -> why it is not there, the ONNX file or None). `settings` gets each engine's settings, as it
    reports them, the first time it opens."""
    if not peer_names:
        return {}, {}, None
    if model is None:
        return {}, {p: "needs the torch.nn twin, to export it to ONNX" for p in peer_names}, None
    try:
        path = peers.network_onnx(name, model, state, shape, cache_dir)
    except Exception as e:                       # a twin the exporter cannot handle: reported, the run goes on
        return {}, {p: f"ONNX export failed: {type(e).__name__}: {e}" for p in peer_names}, None
    sessions, missing = {}, {}
    for p in peer_names:
        try:
            sessions[p] = peers.open_session(p, path, backend.threads)
            settings.setdefault(p, sessions[p].settings)
        except Exception as e:                   # an engine that cannot run the model is reported
            missing[p] = f"{type(e).__name__}: {e}"
    return sessions, missing, path


def bench_network(name, batches, backend, dtype, budget, peak, peer_names=(), cache_dir=None, passes=5,
                  settings=None):
    """The rows of network `name`, one per batch. `settings` (a dict) gets the peers' settings."""
    from cnn import models, summary
    settings = {} if settings is None else settings
    net = models.create(name, seed=0)            # the same weights every run: the ONNX exports stay cached
    if np.dtype(dtype) != np.float32:
        net.to(np.dtype(dtype))
    if backend.name == "cuda":
        net.to("cuda")
    model, why = torch_network(name, net, backend) if np.dtype(dtype) == np.float32 else (None, "float32 only")
    state = net.state_dict() if peer_names else None
    rows = []
    for batch in batches:
        shape = input_shape(name, batch)
        macs = summary(net, shape).total_macs
        x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
        xd = backend.array(x)
        y_ours = _host(net(xd))
        fns = {"ours": lambda: net(xd)}
        timers = {"ours": backend.timer_ours}
        outputs, missing = {}, {}
        if model is not None:
            xt = backend.torch_tensor(x)

            def theirs():
                with backend.torch.inference_mode():
                    return model(xt)
            fns["pytorch"], timers["pytorch"] = theirs, backend.timer_torch
            outputs["pytorch"] = _host(theirs().cpu())
        else:
            missing["pytorch"] = why
        sessions, why_not, onnx_path = peer_sessions(name, model, state, shape, backend, peer_names, cache_dir,
                                                     settings)
        missing.update(why_not)
        for p, session in sessions.items():
            fns[p] = lambda session=session: session(x)
            outputs[p] = session(x)
        errors = {c: peers.rel_error(y, y_ours) for c, y in outputs.items()}
        for c, err in errors.items():            # a contender that disagrees with ours is not timed
            if not err <= peers.TOLERANCE:
                del fns[c]
                missing[c] = f"output disagrees with ours: relative error {err:.2e} > {peers.TOLERANCE:g}"
        stats = compare(fns, budget, timers)
        row = {"network": name, "batch": batch, "input": list(shape), "macs": int(macs),
               "ours": _speed(stats["ours"], batch, macs, peak),
               "breakdown": breakdown(net, xd, backend.sync, passes)}
        for c in ("pytorch", *peer_names):
            if c in stats:
                row[c] = {**_speed(stats[c], batch, macs, peak), "ratio": paired_ratio(stats[c], stats["ours"]),
                          "rel_error": errors[c]}
            else:
                row[c] = {"status": "mismatch" if c in errors else "missing", "why": missing[c],
                          **({"rel_error": errors[c]} if c in errors else {})}
        if "onnxruntime" in stats:
            row["ort_breakdown"] = ort_profile.profile(onnx_path, backend.threads, x, passes)
        rows.append(row)
        del sessions, fns                         # the engines' copies of the weights go before the next batch
    return rows


def summarize(rows, contenders, peak):
    """Per contender the geometric mean and the smallest of its ratio (its time / ours) over the rows,
    and the bars: RATIO_BARS for each peer, PEAK_BAR on the rows it names that this run has."""
    ratios, bars = {}, []
    for c in contenders:
        timed = [r for r in rows if r.get(c, {}).get("status") == "ok"]
        if not timed:
            continue
        low = min(timed, key=lambda r: r[c]["ratio"])
        ratios[c] = {"rows": len(timed), "geomean": geomean(r[c]["ratio"] for r in timed),
                     "min": low[c]["ratio"], "min_at": f"{low['network']} b{low['batch']}"}
        if c in peers.PEERS:
            for key, target in RATIO_BARS.items():
                value = ratios[c][key]
                what = (f"{peers.LABEL[c]} time / ours, geometric mean over {len(timed)} rows" if key == "geomean"
                        else f"{peers.LABEL[c]} time / ours, smallest ({ratios[c]['min_at']})")
                bars.append({"bar": f"{c}_{key}", "what": what, "value": value, "unit": "x", "target": target,
                             "met": bool(value >= target)})
    if peak:
        for network, batch in PEAK_BAR["rows"]:
            row = next((r for r in rows if r["network"] == network and r["batch"] == batch), None)
            if row is not None:
                value = row["ours"]["pct_peak"]
                bars.append({"bar": f"peak_{network}_b{batch}", "what": f"{network} b{batch}: % of the FMA peak",
                             "value": value, "unit": "%", "target": PEAK_BAR["target_pct"],
                             "met": bool(value >= PEAK_BAR["target_pct"])})
    return {"ratio": ratios, "bars": bars}


def run(backend, *, full, networks, dtype, budget, progress, ceilings=None, cache_dir=None, passes=5):
    """The networks suite on `backend`: its peers (backend.peers) run on the CPU in float32 only."""
    from cnn import models
    names = networks or (list(models.available()) if full else list(QUICK_NETWORKS))
    unknown = [n for n in names if n not in models.available()]
    if unknown:
        raise SystemExit(f"--networks: unknown network(s) {unknown}; available: {', '.join(models.available())}")
    peer_names = list(backend.peers) if np.dtype(dtype) == np.float32 else []
    peak = (ceilings or {}).get("peak_gflops", {}).get(np.dtype(dtype).name)
    task = progress.add_task(f"networks ({backend.name})", total=len(names))
    rows, settings = [], {}
    for name in names:
        progress.update(task, description=f"networks ({backend.name}): {name}")
        rows.extend(bench_network(name, BATCHES, backend, dtype, budget, peak, peer_names, cache_dir, passes,
                                  settings))
        progress.advance(task)
    contenders = ["pytorch", *peer_names]
    return {"device": backend.name, "dtype": np.dtype(dtype).name, "peak_gflops": peak, "contenders": contenders,
            "peer_settings": settings, "rows": rows, "summary": summarize(rows, contenders, peak)}
