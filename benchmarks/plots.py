"""PNG plots of a results dict (matplotlib, Agg): the roofline with every layer on it, GFLOP/s per layer
and algorithm (and peer), theoretical vs measured separable ratios, each network's forward time per
contender, and where each network's time goes, ours beside ONNX Runtime's profile."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .peers import LABEL, PEERS  # noqa: E402

CLASS_COLOR = {"regular": "tab:blue", "pointwise": "tab:green", "depthwise": "tab:red"}
ALG_COLOR = {"direct": "tab:blue", "im2col": "tab:orange", "pointwise": "tab:green", "depthwise": "tab:red",
             "auto": "tab:purple", "pytorch": "black", "pytorch_cl": "dimgray", "onnxruntime": "tab:olive",
             "openvino": "tab:cyan"}
OTHER = "other (ours: Python, copies, allocation; ORT: its session)"
CONTENDER_COLOR = {"ours": "tab:red", "pytorch": "black", "onnxruntime": "tab:olive", "openvino": "tab:cyan"}


def _save(fig, out, name):
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def roofline(section, ceilings, out, device):
    peak = ceilings["peak_gflops"]["float32"] if section["dtype"] == "float32" else ceilings["peak_gflops"].get(section["dtype"])
    bws = ceilings["bandwidth_gbps"]
    rows = section["rows"]
    ai = np.array([r["intensity"] for r in rows])
    lo, hi = min(ai.min() / 2, 0.1), max(ai.max() * 2, 1e3)
    x = np.logspace(np.log10(lo), np.log10(hi), 200)
    fig, ax = plt.subplots(figsize=(11, 7))
    for name, style in (("dram_copy", "-"), ("l3_copy", "--"), ("l2_copy", ":")):
        if name in bws:
            ax.plot(x, np.minimum(peak, x * bws[name]), style, color="gray",
                    label=f"roof: {peak:.0f} GFLOP/s, {name.replace('_', ' ')} {bws[name]:.0f} GB/s")
    for r in rows:
        best = r["results"].get(r.get("best"), {})
        base = r["results"].get(r.get("baseline") or "", {})
        c = CLASS_COLOR[r["class"]]
        if best.get("gflops"):
            ax.scatter(r["intensity"], best["gflops"], color=c, s=40, zorder=3)
            ax.annotate(r["layer"], (r["intensity"], best["gflops"]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        if base.get("gflops"):
            ax.scatter(r["intensity"], base["gflops"], facecolors="none", edgecolors=c, s=40, zorder=3)
    for cls, c in CLASS_COLOR.items():
        ax.scatter([], [], color=c, label=f"{cls}: ours (best algorithm)")
    ax.scatter([], [], facecolors="none", edgecolors="k", label="PyTorch (hollow)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per minimum byte: input + weights + output once)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(f"Roofline ({device}, {section['dtype']}, {ceilings.get('threads', '')} threads)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out, f"roofline_{device}.png")


def kernel_bars(section, out, device):
    rows = section["rows"]
    names = section["algorithms"] + ["auto", "pytorch"]
    names += [n for n in ("pytorch_cl", *PEERS) if any(n in r["results"] for r in rows)]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(10, 0.75 * len(rows) + 3), 6))
    xs = np.arange(len(rows))
    for i, n in enumerate(names):
        vals = [r["results"].get(n, {}).get("gflops", 0.0) or 0.0 for r in rows]
        ax.bar(xs + (i - len(names) / 2 + 0.5) * width, vals, width, label=n, color=ALG_COLOR.get(n))
    ax.set_xticks(xs, [r["layer"] for r in rows], rotation=60, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("GFLOP/s (log)")
    ax.set_title(f"GFLOP/s per layer and algorithm ({device}, {section['dtype']}); missing bar = not applicable")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(names))
    return _save(fig, out, f"kernels_gflops_{device}.png")


def separable(section, out, device):
    rows = section["rows"]
    fig, ax = plt.subplots(figsize=(12, 7))
    marks = {"grid": "o", "block": "s", "bottleneck": "D"}
    for who, color in (("ours", "tab:red"), ("pytorch", "black")):
        for fam, m in marks.items():
            pts = [(r["theory_ratio"], r[f"measured_ratio_{who}"]) for r in rows
                   if r["family"] == fam and f"measured_ratio_{who}" in r]
            if pts:
                t, y = zip(*pts)
                ax.scatter(t, y, marker=m, color=color, facecolors=color if who == "ours" else "none",
                           label=f"measured, {'ours' if who == 'ours' else 'PyTorch'} ({fam})")
    t = [r["theory_ratio"] for r in rows]
    ax.scatter(t, [r["roofline_ratio"] for r in rows], marker="_", s=200, color="tab:blue",
               label="roofline prediction (bytes and FLOPs at measured ceilings)")
    for r in rows:
        if r["family"] != "grid":
            y = r.get("measured_ratio_ours", r.get("measured_ratio_pytorch", r["roofline_ratio"]))
            ax.annotate(r["name"], (r["theory_ratio"], y), fontsize=7, xytext=(4, 2), textcoords="offset points")
    lim = [min(t) / 1.5, 1.5]
    ax.plot(lim, lim, "--", color="gray", label="measured = theory (time saved = multiplications saved)")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("theoretical ratio of multiplications, replacement / normal (1/n_c' + 1/f^2)")
    ax.set_ylabel("measured ratio of times, replacement / normal")
    ax.set_title(f"Depthwise-separable (and 1x1 bottleneck) vs normal convolution ({device})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, out, f"separable_{device}.png")


def network_breakdown(section, out, device):
    """One bar per network and batch split by op type, as a share of our forward pass; where ONNX
    Runtime profiled the network, its bar under ours, scaled to its time against ours (100% = ours)."""
    def parts(share, scale):
        """{category: %}, ours' and ORT's 'other' (the time between timed ops) as one category"""
        out = {}
        for k, v in share.items():
            key = OTHER if k.startswith("other") else k
            out[key] = out.get(key, 0.0) + v * scale
        return out
    bars = []                                   # (label, {category: % of our forward time})
    for r in section["rows"]:
        ours = r["breakdown"]
        bars.append((f"{r['network']} b{r['batch']}", parts(ours["share"], 100.0)))
        ort = r.get("ort_breakdown")
        if ort:
            bars.append(("ONNX Runtime (profile)", parts(ort["share"], 100 * ort["forward_s"] / ours["forward_s"])))
    types = []
    for _, parts in bars:
        types += [k for k in parts if k not in types]
    ys = np.arange(len(bars))
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(bars) + 2))
    left = np.zeros(len(bars))
    colors = [plt.get_cmap("tab10")(i) for i in range(10)] + [plt.get_cmap("Pastel1")(i) for i in range(9)]
    for i, k in enumerate(types):
        vals = np.array([parts.get(k, 0.0) for _, parts in bars])
        color = "lightgray" if k == OTHER else colors[i % len(colors)]
        ax.barh(ys, vals, left=left, label=k, color=color)
        left += vals
    ax.set_yticks(ys, [label for label, _ in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of our forward pass time (%); a peer's bar is its time against ours")
    ax.set_xlim(0, max(100.0, float(left.max()) * 1.02))
    ax.set_title(f"Where each network's forward time goes, by op type ({device})")
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, out, f"networks_breakdown_{device}.png")


def network_ms(section, out, device):
    """Forward time per network and batch, one bar per contender that was timed (log scale)."""
    rows = section["rows"]
    names = ["ours"] + [c for c in section.get("contenders", ["pytorch"])
                        if any((r.get(c) or {}).get("status") == "ok" for r in rows)]
    width = 0.8 / len(names)
    xs = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(rows) + 3), 6))
    for i, n in enumerate(names):
        vals = [r[n]["median_s"] * 1e3 if (r.get(n) or {}).get("status") == "ok" else 0.0 for r in rows]
        ax.bar(xs + (i - len(names) / 2 + 0.5) * width, vals, width, label=LABEL.get(n, n),
               color=CONTENDER_COLOR.get(n))
    ax.set_xticks(xs, [f"{r['network']} b{r['batch']}" for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("forward pass, ms (median; log)")
    ax.set_title(f"Forward time per network and contender ({device}, {section['dtype']}); missing bar = not timed")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(names))
    return _save(fig, out, f"networks_ms_{device}.png")


def make_all(results, out):
    """Every plot the results allow; -> {kind: {device: path}}."""
    images = {}
    for device, sec in results.get("kernels", {}).items():
        if sec["rows"]:
            images.setdefault("roofline", {})[device] = roofline(sec, results["ceilings"][device], out, device)
            images.setdefault("kernel_bars", {})[device] = kernel_bars(sec, out, device)
    for device, sec in results.get("separable", {}).items():
        if sec["rows"]:
            images.setdefault("separable", {})[device] = separable(sec, out, device)
    for device, sec in results.get("networks", {}).items():
        if sec["rows"]:
            images.setdefault("networks", {})[device] = network_breakdown(sec, out, device)
            images.setdefault("network_ms", {})[device] = network_ms(sec, out, device)
    return images
