"""report.md: the tables of results.json in Markdown, the plots, and what they say."""
from __future__ import annotations

import math
import os

from . import tables
from .peers import LABEL, PEERS, SHORT


def _sig(v):
    """Three significant digits, no exponent for the sizes these tables hold."""
    return f"{v:.3g}" if abs(v) < 1e3 else f"{v:.0f}"


def _f(v, fmt="{:.2f}"):
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _img(images, kind, device, caption):
    path = images.get(kind, {}).get(device)
    return f"![{caption}]({os.path.basename(path)})\n\n*{caption}*\n" if path else ""


def machine_section(results):
    m = results["machine"]
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version') or ''} ({b.get('architecture') or '-'} kernel, "
                     f"{b.get('num_threads')} threads)" for b in m["blas"] if b.get("user_api") == "blas") or "-"
    lines = [f"- date (UTC): {m['date_utc']}; command: `{results['command']}` ({results['mode']}, "
             f"{results.get('wall_s', 0):.0f} s)",
             f"- CPU: {m['cpu_model']}, {m['usable_cpus']} usable cores, {m['threads']} threads; SIMD: "
             f"{' '.join(f for f in m['cpu_simd_flags'] if f.startswith(('avx512f', 'avx2', 'fma', 'avx512_bf16')))}",
             f"- BLAS (threadpoolctl): {blas}",
             f"- load average (1 min) at start / end: {_f((m.get('load_average') or [None])[0], '{:.1f}')} / "
             f"{_f((results.get('load_average_end') or [None])[0], '{:.1f}')} on {m['usable_cpus']} cores "
             "(above the core count, other processes shared the CPU during the run)",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())]
    for dev, d in results["devices"].items():
        if dev == "cuda":
            lines.append(f"- GPU: {d['gpu_name']}, driver {d['driver_version']}, runtime {d['runtime_version']}")
    for dev, c in results["ceilings"].items():
        bw = ", ".join(f"{k.replace('_', ' ')} {v:.0f} GB/s" for k, v in c["bandwidth_gbps"].items())
        pk = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in c["peak_gflops"].items())
        lines.append(f"- measured ceilings ({dev}): peak {pk}; bandwidth {bw}; the roofline uses "
                     f"{c['roofline_bandwidth_name'].replace('_', ' ')} (ridge point "
                     f"{c['peak_gflops']['float32'] / c['roofline_bandwidth_gbps']:.1f} FLOP/B)")
    return "## Machine\n\n" + "\n".join(lines) + "\n"


def _peer_cell(res):
    if res.get("status") != "ok":
        return "-" if res.get("status") in (None, "n/a") else res["status"].split(":")[0]
    return f"{_f(res.get('vs_best'))}x ({_sig(res['gflops'])})"


def kernels_section(sec, images, device):
    algs = sec["algorithms"] + ["auto"]
    peers = [p for p in PEERS if any(p in r["results"] for r in sec["rows"])]
    rows = []
    for r in sec["rows"]:
        res = r["results"]
        base = res.get(r["baseline"] or "", {})
        cells = [r["layer"], r["class"], f"{r['flops'] / 1e9:.3f}", f"{r['intensity']:.1f}",
                 _f(base.get("median_s") and base["median_s"] * 1e3, "{:.3f}"), _f(base.get("gflops"), "{:.3g}")]
        for a in algs:
            x = res.get(a, {})
            if x.get("status") == "ok":
                txt = f"{_f(x.get('ratio'))}x ({_sig(x['gflops'])})"
                cells.append(f"**{txt}**" if a == r.get("best") else txt)
            else:
                cells.append({"n/a": "-"}.get(x.get("status"), x.get("status", "-")))
        best = res.get(r.get("best") or "", {})
        cells += [_f(best.get("pct_peak"), "{:.3g}"), _f(best.get("pct_roofline"), "{:.3g}"),
                  {True: "yes", False: "**no**"}.get(r.get("auto_within_noise"), "-")]
        rows.append(cells + [_peer_cell(res.get(p, {})) for p in peers])
    s = sec["summary"]
    out = [f"## Kernels ({device}, {sec['dtype']})\n",
           "Ratio = PyTorch's time / ours in the same run, interleaved (> 1: ours faster); GFLOP/s in brackets; "
           "the best explicit algorithm in bold. %peak and %roof are the best algorithm's share of the measured "
           "FMA peak and of the roofline min(peak, intensity x DRAM bandwidth) at the layer's intensity; a "
           "layer whose data stays in cache can pass 100% of that roof."
           + (f" {', '.join(LABEL[p] for p in peers)}: the peer's time / our best algorithm's (> 1: ours faster) "
              "on the layer as a one-Conv ONNX model, its GFLOP/s in brackets." if peers else "") + "\n",
           _table(["layer", "class", "GFLOP", "FLOP/B", "PyTorch ms", "PyTorch GF/s", *algs, "%peak", "%roof",
                   "auto ok", *[SHORT[p] for p in peers]], rows), "",
           "### Geometric mean of the ratio to PyTorch, per layer class\n",
           _table(["class", "layers", "best", *algs, *[f"{SHORT[p]} / best" for p in peers]],
                  [[c, e["layers"], f"{e['best']:.2f}x", *[_f(e.get(a), "{:.2f}x") for a in algs],
                    *[_f(e.get(f"{p}_vs_best"), "{:.2f}x") for p in peers]]
                   for c, e in s["geomean_ratio"].items()]), "",
           "### Bars\n",
           _table(["bar", "measured", "target", "met"],
                  [[b["what"], f"{b['value']:.2f}x", f">= {b['target']}x", "yes" if b["met"] else "**NO**"]
                   for b in s["bars"]]), ""]
    am = s["auto_matches_best"]
    out.append(f"`auto` was within noise of the best explicit algorithm on {am['within_noise']} of {am['layers']} "
               "layers" + ("." if not am["misses"] else ": misses " + ", ".join(
                   f"{m['layer']} (best {m['best']}, auto at {m['auto_speed_vs_best']:.2f}x its speed)"
                   for m in am["misses"]) + "."))
    sc = s.get("thread_scaling")
    if sc and "ours_speedup" in sc:
        out.append(f"\nThread scaling on {sc['layer']}: ours {sc['ours_speedup']:.2f}x from 1 to {sc['threads']} "
                   f"threads" + (f", PyTorch {sc['pytorch_speedup']:.2f}x." if "pytorch_speedup" in sc else "."))
    out.append("")
    out.append(_img(images, "roofline", device, "Roofline: each layer's best algorithm (filled) and PyTorch "
                    "(hollow) at its arithmetic intensity, under the measured compute and bandwidth roofs"))
    out.append(_img(images, "kernel_bars", device, "GFLOP/s per layer and algorithm"))
    return "\n".join(out)


def explain_separable(sec, ceilings):
    """The gap between multiplications saved and time saved, in numbers, for the blocks."""
    blocks = [r for r in sec["rows"] if r["family"] == "block" and "measured_ratio_ours" in r]
    if not blocks:
        blocks = [r for r in sec["rows"] if r["family"] == "block"]
    if not blocks:
        return ""
    peak, bw = ceilings["peak_gflops"]["float32"], ceilings["roofline_bandwidth_gbps"]
    ridge = peak / bw
    def stage_ai(kind):
        return [s["intensity"] for r in blocks for s in r["stages"]
                if (s["side"] == "base" if kind == "normal" else s["stage"].startswith(kind))]
    normal, dw, pw = stage_ai("normal"), stage_ai("depthwise"), stage_ai("pointwise")
    theory = [r["theory_ratio"] for r in blocks]
    bws = ceilings["bandwidth_gbps"]
    lines = ["### Why the separable convolution saves less time than multiplications\n",
             f"The roofline's ridge point here is {ridge:.1f} FLOP/byte ({peak:.0f} GFLOP/s over {bw:.0f} GB/s "
             f"of DRAM copy bandwidth). Over these blocks a normal convolution has an intensity of "
             f"{min(normal):.0f}-{max(normal):.0f} FLOP per minimum byte: it reuses each input element n_c' x f^2 times and each "
             f"weight n^2 times. Its depthwise replacement does only f^2 multiply-adds per input element it "
             f"reads: {min(dw):.1f}-{max(dw):.1f} FLOP/byte, far under the ridge, so it is memory-bound and "
             f"its roof is intensity x bandwidth, a few percent of the peak; the pointwise stage sits at "
             f"{min(pw):.0f}-{max(pw):.0f} FLOP/byte. The replacement also writes the n x n x n_c intermediate "
             f"map and reads it back. Multiplications shrink by 1/n_c' + 1/f^2 (x{min(theory):.3f}-x{max(theory):.3f}); the bytes "
             f"shrink far less (or grow, when n_c' < n_c), and time follows the bytes wherever a stage is "
             f"memory-bound. Layers whose data stays in cache see a higher memory roof (L2 copy "
             f"{bws.get('l2_copy', float('nan')):.0f} GB/s, L3 copy {bws.get('l3_copy', float('nan')):.0f} GB/s), "
             "which is why small layers can run above the DRAM roofline.\n"]
    for r in blocks:
        dw = next(s for s in r["stages"] if s["stage"].startswith("depthwise"))
        pw = next(s for s in r["stages"] if s["stage"].startswith("pointwise"))
        base = next(s for s in r["stages"] if s["side"] == "base")
        alt_macs = r["alt_macs"]
        txt = (f"- **{r['name']}**: multiplications x{r['theory_ratio']:.3f}, bytes x{r['bytes_ratio']:.2f}; "
               f"intensity {base['intensity']:.0f} FLOP/B (normal) vs {dw['intensity']:.1f} (depthwise) and "
               f"{pw['intensity']:.0f} (pointwise); roofline prediction x{r['roofline_ratio']:.3f}")
        if "measured_ratio_ours" in r:
            t_dw, t_alt = dw.get("ours_s"), r["alt_s_ours"]
            txt += (f"; measured x{r['measured_ratio_ours']:.3f} (ours)")
            if t_dw:
                txt += (f". The depthwise stage is {100 * dw['macs'] / alt_macs:.0f}% of the replacement's "
                        f"multiplications but {100 * t_dw / t_alt:.0f}% of its time, at "
                        f"{dw['ours_gflops']:.0f} GFLOP/s against {base.get('ours_gflops', float('nan')):.0f} "
                        f"for the normal convolution")
        if "measured_ratio_pytorch" in r:
            txt += f"; PyTorch x{r['measured_ratio_pytorch']:.3f}"
        lines.append(txt + ".")
    return "\n".join(lines) + "\n"


def separable_section(sec, images, device, ceilings):
    rows = [[r["name"], f"{r['theory_ratio']:.3f}", f"{r['bytes_ratio']:.2f}", f"{r['base_intensity']:.0f}",
             f"{r['alt_intensity']:.1f}", f"{r['roofline_ratio']:.3f}", _f(r.get("measured_ratio_ours"), "{:.3f}"),
             _f(r.get("measured_ratio_pytorch"), "{:.3f}")] for r in sec["rows"]]
    return "\n".join([
        f"## Normal vs depthwise-separable convolution ({device})\n",
        "Each row compares a normal convolution with its replacement (depthwise f x f then pointwise 1x1; "
        "for Inception, a 1x1 bottleneck to 16 channels then the 5x5). Ratios are replacement / normal: "
        "multiplications (theory: 1/n_c' + 1/f^2 for separable), minimum bytes, the time the roofline "
        "allows, and measured times (normal conv with its best algorithm; ours and PyTorch each against "
        "itself).\n",
        _table(["comparison", "MACs ratio (theory)", "bytes ratio", "FLOP/B normal", "FLOP/B replacement",
                "roofline ratio", "measured ours", "measured PyTorch"], rows), "",
        explain_separable(sec, ceilings),
        _img(images, "separable", device, "Theoretical vs measured ratio: points above the diagonal save less "
             "time than multiplications; the blue ticks are the roofline's prediction")])


def _timed_cells(row, contender):
    d = tables.timed(row, contender)
    if d is None:
        return ["**mismatch**" if (row.get(contender) or {}).get("status") == "mismatch" else "-", "-"]
    return [f"{d['median_s'] * 1e3:.2f}", f"{d['ratio']:.2f}x"]


def _peer_settings(sec):
    lines = []
    for p, st in sec.get("peer_settings", {}).items():
        lines.append(f"- {LABEL[p]} {st.get('version', '')}: " + ", ".join(
            f"{k} {v}" for k, v in st.items() if k != "version"))
    return "\n".join(lines)


def _not_timed(sec):
    """One line per contender that was not timed on some row, and why."""
    out = []
    for r in sec["rows"]:
        for c in sec.get("contenders", ["pytorch"]):
            d = r.get(c) or {}
            if d.get("status") in ("mismatch", "missing"):
                out.append(f"- {r['network']} b{r['batch']}: {LABEL[c]} not timed: {d['why']}")
    return "\n".join(out)


def networks_section(sec, images, device):
    contenders = sec.get("contenders", ["pytorch"])
    rows = []
    for r in sec["rows"]:
        share = sorted(r["breakdown"]["share"].items(), key=lambda kv: -kv[1])[:4]
        cells = [r["network"], r["batch"], f"{r['macs'] / 1e9:.3g}", f"{r['ours']['median_s'] * 1e3:.2f}",
                 f"{r['ours']['images_per_s']:.1f}", _sig(r['ours']['gflops']), _f(r["ours"].get("pct_peak"), "{:.0f}")]
        for c in contenders:
            cells += _timed_cells(r, c)
        rows.append(cells + [", ".join(f"{k} {v * 100:.0f}%" for k, v in share)])
    header = ["network", "batch", "GMACs", "ours ms", "img/s", "GFLOP/s", "% peak"]
    for c in contenders:
        header += [f"{SHORT[c]} ms", f"x {SHORT[c]}"]
    peers = [c for c in contenders if c in PEERS]
    out = [f"## Networks ({device}, {sec['dtype']})\n",
           "Forward pass latency (median), throughput, GFLOP/s (2 x MACs / time) and its share of the measured "
           "FMA peak. PyTorch runs the same network written in torch.nn with the same weights"
           + (f"; {' and '.join(LABEL[p] for p in peers)} run that network's ONNX export "
              "(`torch.onnx.export(..., dynamo=False)`)" if peers else "")
           + ". Every contender is called once per round, in rotating order; x = its time / ours, per round "
           "(> 1: ours faster). A contender whose output is not within 1e-3 (relative) of ours is not timed. "
           "The breakdown times every op call of our forward pass; 'other' is what lies between them (Python, "
           "copies, allocation).\n",
           _table(header + ["where our time goes"], rows), ""]
    settings = _peer_settings(sec)
    if settings:
        out += ["Peer settings, as the engines report them:\n", settings, ""]
    missed = _not_timed(sec)
    if missed:
        out += [missed, ""]
    prof = [r for r in sec["rows"] if r.get("ort_breakdown")]
    if prof:
        cats = tables.breakdown_categories(prof)
        out += ["### Where the time goes: ours against ONNX Runtime's own profile\n",
                "ms per forward pass, ours / ONNX Runtime's, per op category. ORT's side is its per-node profile "
                "(SessionOptions.enable_profiling): each node's kernel time by its op type, a Conv by the shape of "
                "its weights; its 'other' is the session's own time between nodes. ORT folds batch-norm into the "
                "convolutions and fuses bias, residual add and activation into its Conv nodes, so those "
                "categories are ours alone.\n",
                _table(["network", "total", *cats],
                       [[f"{r['network']} b{r['batch']}", *tables.breakdown_cells(r, cats)] for r in prof]), "",
                "ONNX Runtime's nodes per op type (one run): " + "; ".join(
                    f"{r['network']} b{r['batch']}: "
                    + ", ".join(f"{k} {v}" for k, v in r["ort_breakdown"]["calls"].items())
                    + f" ({r['ort_breakdown']['fused_add']} Conv with the residual add fused)" for r in prof), ""]
    s = sec.get("summary") or {}
    if s.get("ratio"):
        out += ["### Each contender's time / ours over the rows, and the bars\n",
                _table(["contender", "rows", "geometric mean", "smallest", "at"],
                       [[LABEL[c], e["rows"], f"{e['geomean']:.2f}x", f"{e['min']:.2f}x", e["min_at"]]
                        for c, e in s["ratio"].items()]), ""]
        if s.get("bars"):
            out += [_table(["bar", "measured", "target", "met"],
                           [[b["what"], f"{b['value']:.2f}x" if b["unit"] == "x" else f"{b['value']:.0f}%",
                             f">= {b['target']:g}{b['unit']}", "yes" if b["met"] else "**NO**"]
                            for b in s["bars"]]), ""]
    out.append(_img(images, "network_ms", device, "Forward time per network and contender (log scale)"))
    out.append(_img(images, "networks", device, "Where each network's forward time goes, by op type: ours, and "
                    "ONNX Runtime's profile scaled to its time (100% = our forward pass)"))
    return "\n".join(out)


def write(results, images, out):
    parts = ["# convforge benchmark report\n", machine_section(results)]
    for device, sec in results.get("kernels", {}).items():
        parts.append(kernels_section(sec, images, device))
    for device, sec in results.get("separable", {}).items():
        parts.append(separable_section(sec, images, device, results["ceilings"][device]))
    for device, sec in results.get("networks", {}).items():
        parts.append(networks_section(sec, images, device))
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path
