"""`python -m benchmarks kernels`: the layer set x every algorithm that accepts the layer, "auto" and
PyTorch, interleaved per layer; GFLOP/s, the ratio to PyTorch, % of the peak and % of the roofline. On
the CPU in float32 the installed peers (benchmarks.peers: ONNX Runtime, OpenVINO) run the layer as a
one-Conv ONNX model in the same comparison, once their output agrees with ours; their ratio is their
time / our best algorithm's and / auto's.

The summary holds the bars of the CPU-kernels issue: per layer class the geometric mean of the best
algorithm's ratio and of each algorithm's, the smallest layers, the thread scaling on vgg.c3_2, and
whether `auto` matched the best explicit choice within noise.
"""
from __future__ import annotations

import numpy as np

import kernels
from kernels.select import choose_algorithm
from kernels.shapes import check_algorithm

from . import layers as layerset
from . import peers
from .machine import set_threads
from .roofline import conv_bytes, conv_flops, intensity, metrics
from .timing import compare, geomean, paired_ratio, within_noise

BARS = {  # (what, class or layer, target ratio to PyTorch)
    "regular_best": ("regular layers, best algorithm (geomean)", 0.6),
    "regular_direct": ("regular layers, direct (geomean)", 0.5),
    "pointwise_best": ("pointwise layers, best algorithm (geomean)", 0.7),
    "depthwise_best": ("depthwise layers, best algorithm (geomean)", 2.0),
    "depthwise_min": ("depthwise layers, slowest layer", 1.5),
    "smallest": ("smallest layers (lenet.c1, mv2.dw7), each", 0.5),
    "scaling": ("2 threads vs 1 thread on vgg.c3_2 (auto)", 1.7),
}


def _rel_error(y, ref):
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-300))


def _to_host(a):
    return a.get() if hasattr(a, "get") else (a.cpu().numpy() if hasattr(a, "cpu") else a)


def peer_contenders(layer, backend, dtype, x, w, b, y_auto):
    """name -> callable of each of the backend's peers on this layer whose output agrees with ours
    (`y_auto`, auto's), name -> status of every peer, name -> its error relative to ours."""
    names = list(backend.peers)
    if not names or y_auto is None:
        return {}, {}, {}
    if np.dtype(dtype) != np.float32:
        return {}, {p: "n/a" for p in names}, {}
    try:
        sessions = peers.layer_sessions(names, x.shape, w, b, layer.geometry, backend.threads)
    except Exception as e:                         # onnx missing, or an engine that refuses the model
        return {}, {p: f"error: {type(e).__name__}: {e}" for p in names}, {}
    fns, status, errors = {}, {}, {}
    for p, session in sessions.items():
        errors[p] = peers.rel_error(session(x), y_auto)
        if errors[p] <= peers.TOLERANCE:
            fns[p], status[p] = (lambda session=session: session(x)), "ok"
        else:
            status[p] = f"mismatch: relative error {errors[p]:.1e} to ours"
    return fns, status, errors


def contenders(layer, algorithms, backend, dtype):
    """name -> callable for this layer: our algorithms that accept it (and are built), "auto", and
    PyTorch's variants; plus name -> status for the ones left out and the output check. The peers'
    callables come in a dict of their own, after PyTorch's."""
    g = layer.geometry
    x, w, b = layer.arrays(dtype)
    xd, wd, bd = backend.array(x), backend.array(w), backend.array(b)
    fns, status, errors = {}, {}, {}
    torch_fns, y_auto = {}, None
    if backend.torch is not None:
        torch_fns = backend.torch_variants(x, w, b, layer.stride, layer.pad, layer.groups,
                                           layer.layer_class == "depthwise")
        ref = _to_host(torch_fns["pytorch"]())
    for alg in list(algorithms) + ["auto"]:
        if alg != "auto":
            try:
                check_algorithm(alg, g)
            except ValueError:
                status[alg] = "n/a"
                continue

        def call(alg=alg):
            return kernels.conv2d(xd, wd, bd, stride=layer.stride, padding=layer.pad,
                                  groups=layer.groups, algorithm=alg)
        try:
            y = call()
        except ImportError:
            status[alg] = "not built"
            continue
        except Exception as e:                     # a kernel that fails is reported, not fatal
            status[alg] = f"error: {type(e).__name__}: {e}"
            continue
        if backend.torch is not None:
            errors[alg] = _rel_error(_to_host(y), ref)
        if alg == "auto":
            y_auto = _to_host(y)
        status[alg] = "ok"
        fns[alg] = call
    peer_fns, peer_status, peer_errors = peer_contenders(layer, backend, dtype, x, w, b, y_auto)
    status.update(peer_status)
    return fns, torch_fns, peer_fns, status, {**errors, **peer_errors}


def bench_layer(layer, algorithms, backend, dtype, budget, ceilings):
    g = layer.geometry
    flops, nbytes = conv_flops(g), conv_bytes(g, np.dtype(dtype).itemsize)
    fns, torch_fns, peer_fns, status, errors = contenders(layer, algorithms, backend, dtype)
    timers = {n: backend.timer_torch for n in torch_fns}
    timers.update({n: backend.timer_ours for n in fns})    # the peers run on the CPU: cpu_timer
    stats = compare({**fns, **torch_fns, **peer_fns}, budget, timers)
    base = min(torch_fns, key=lambda n: stats[n].median) if torch_fns else None
    row = {"layer": layer.name, "class": layer.layer_class, "N": layer.N, "C": layer.C, "HW": layer.HW,
           "K": layer.K, "RS": layer.RS, "stride": layer.stride, "pad": layer.pad, "groups": layer.groups,
           "macs": g.macs, "flops": flops, "bytes": nbytes, "intensity": intensity(flops, nbytes),
           "baseline": base, "results": {}}
    for name in list(fns) + list(torch_fns) + list(peer_fns):
        res = {"status": "ok", **stats[name].as_dict(),
               **metrics(flops, nbytes, stats[name].median, ceilings, dtype)}
        if name in fns:
            res["algorithm_run"] = (choose_algorithm(g, "gpu" if backend.name == "cuda" else "cpu")
                                    if name == "auto" else name)
            if name in errors:
                res["rel_error_vs_pytorch"] = errors[name]
        if name in peer_fns:
            res["rel_error_vs_ours"] = errors[name]
        if base is not None:
            res["ratio"] = paired_ratio(stats[base], stats[name])
        row["results"][name] = res
    for name, st in status.items():
        if st != "ok":
            row["results"][name] = {"status": st, **({"rel_error_vs_ours": errors[name]} if name in errors else {})}
    explicit = [a for a in fns if a != "auto"]
    if explicit:
        best = min(explicit, key=lambda a: stats[a].median)
        row["best"] = best
        if "auto" in fns:
            row["auto_within_noise"] = within_noise(stats["auto"], stats[best])
            row["auto_vs_best"] = paired_ratio(stats[best], stats["auto"])
    for p in peer_fns:                             # their time / ours: > 1, ours faster
        res = row["results"][p]
        res["vs_auto"] = paired_ratio(stats[p], stats["auto"])
        if "best" in row:
            res["vs_best"] = paired_ratio(stats[p], stats[row["best"]])
    return row


def thread_scaling(layer, threads, dtype, budget, torch):
    """Time `auto` (and PyTorch) at 1 thread and at `threads` threads, interleaved. -> speedups."""
    x, w, b = layer.arrays(dtype)

    def ours(n):
        def call():
            kernels.set_num_threads(n)
            return kernels.conv2d(x, w, b, stride=layer.stride, padding=layer.pad, groups=layer.groups)
        return call
    fns = {"ours_1": ours(1), f"ours_{threads}": ours(threads)}
    if torch is not None:
        xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))

        def theirs(n):
            def call():
                torch.set_num_threads(n)
                with torch.inference_mode():
                    return torch.nn.functional.conv2d(xt, wt, bt, layer.stride, layer.pad, 1, layer.groups)
            return call
        fns.update({"pytorch_1": theirs(1), f"pytorch_{threads}": theirs(threads)})
    try:
        stats = compare(fns, budget)
    except ImportError as e:
        return {"layer": layer.name, "status": f"not built: {e}"}
    finally:
        set_threads(threads)
    out = {"layer": layer.name, "threads": threads,
           "ours_speedup": paired_ratio(stats["ours_1"], stats[f"ours_{threads}"])}
    if torch is not None:
        out["pytorch_speedup"] = paired_ratio(stats["pytorch_1"], stats[f"pytorch_{threads}"])
    return out


def summarize(rows, algorithms, scaling):
    """Geometric means per class, the bars and whether each is met. The bars are the layer set's: a
    --shape layer is in the geometric means of the table, not in the bars."""
    by_class = {}
    for cls in layerset.CLASSES:
        mine = [r for r in rows if r["class"] == cls and r.get("best") and r.get("baseline")]
        if not mine:
            continue
        entry = {"layers": len(mine),
                 "best": geomean(r["results"][r["best"]]["ratio"] for r in mine),
                 "best_min": min(r["results"][r["best"]]["ratio"] for r in mine)}
        for alg in list(algorithms) + ["auto"]:
            vals = [r["results"][alg]["ratio"] for r in mine if r["results"].get(alg, {}).get("status") == "ok"]
            if vals:
                entry[alg] = geomean(vals)
        for p in peers.PEERS:                      # the peer's time / our best algorithm's
            vals = [r["results"][p]["vs_best"] for r in mine if "vs_best" in r["results"].get(p, {})]
            if vals:
                entry[f"{p}_vs_best"] = geomean(vals)
        by_class[cls] = entry
    bars = []
    named = [r for r in rows if r["layer"] in layerset.BY_NAME]

    def class_best(cls, key="best", reduce=geomean):
        vals = [r["results"][r["best"]]["ratio"] if key == "best" else r["results"][key]["ratio"]
                for r in named if r["class"] == cls and r.get("best") and r.get("baseline")
                and (key == "best" or r["results"].get(key, {}).get("status") == "ok")]
        return reduce(vals) if vals else None

    def bar(key, value):
        what, target = BARS[key]
        if value is not None and np.isfinite(value):
            bars.append({"bar": key, "what": what, "value": value, "target": target, "met": bool(value >= target)})

    bar("regular_best", class_best("regular"))
    bar("regular_direct", class_best("regular", "direct"))
    bar("pointwise_best", class_best("pointwise"))
    bar("depthwise_best", class_best("depthwise"))
    bar("depthwise_min", class_best("depthwise", reduce=min))
    small = [r["results"][r["best"]]["ratio"] for r in named
             if r["layer"] in layerset.SMALLEST and r.get("best") and r.get("baseline")]
    if small:
        bar("smallest", min(small))
    if scaling and "ours_speedup" in scaling:
        bar("scaling", scaling["ours_speedup"])
    auto = [r for r in rows if "auto_within_noise" in r]
    summary = {"geomean_ratio": by_class, "bars": bars,
               "auto_matches_best": {"layers": len(auto), "within_noise": sum(r["auto_within_noise"] for r in auto),
                                     "misses": [{"layer": r["layer"], "best": r["best"],
                                                 "auto_speed_vs_best": r["auto_vs_best"]}
                                                for r in auto if not r["auto_within_noise"]]}}
    if scaling:
        summary["thread_scaling"] = scaling
    return summary


def run(backend, *, layers, algorithms, dtype, budget, ceilings, progress):
    rows = []
    task = progress.add_task(f"kernels ({backend.name})", total=len(layers))
    for layer in layers:
        progress.update(task, description=f"kernels ({backend.name}): {layer.name}")
        rows.append(bench_layer(layer, algorithms, backend, dtype, budget, ceilings))
        progress.advance(task)
    scaling = None
    names = [layer.name for layer in layers]
    if backend.name == "cpu" and backend.threads > 1 and layerset.SCALING_LAYER in names:
        progress.update(task, description=f"kernels: thread scaling on {layerset.SCALING_LAYER}")
        scaling = thread_scaling(layerset.BY_NAME[layerset.SCALING_LAYER], backend.threads, dtype, budget,
                                 backend.torch)
    return {"device": backend.name, "dtype": np.dtype(dtype).name, "algorithms": list(algorithms),
            "rows": rows, "summary": summarize(rows, algorithms, scaling)}
