"""PNG plots of a results dict (matplotlib, Agg): the roofline with every layer on it, GFLOP/s per layer
and algorithm, theoretical vs measured separable ratios, and where each network's time goes."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CLASS_COLOR = {"regular": "tab:blue", "pointwise": "tab:green", "depthwise": "tab:red"}
ALG_COLOR = {"direct": "tab:blue", "im2col": "tab:orange", "pointwise": "tab:green", "depthwise": "tab:red",
             "auto": "tab:purple", "pytorch": "black", "pytorch_cl": "dimgray"}


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
    if any("pytorch_cl" in r["results"] for r in rows):
        names.append("pytorch_cl")
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
    rows = section["rows"]
    types = []
    for r in rows:
        for k in r["breakdown"]["share"]:
            if k not in types:
                types.append(k)
    labels = [f"{r['network']} b{r['batch']}" for r in rows]
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(rows) + 2))
    left = np.zeros(len(rows))
    colors = [plt.get_cmap("tab10")(i) for i in range(10)] + [plt.get_cmap("Pastel1")(i) for i in range(9)]
    for i, k in enumerate(types):
        vals = np.array([r["breakdown"]["share"].get(k, 0.0) * 100 for r in rows])
        color = "lightgray" if k.startswith("other") else colors[i % len(colors)]
        ax.barh(labels, vals, left=left, label=k, color=color)
        left += vals
    ax.invert_yaxis()
    ax.set_xlabel("share of the forward pass time (%)")
    ax.set_xlim(0, 100)
    ax.set_title(f"Where each network's forward time goes, by op type ({device})")
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, out, f"networks_breakdown_{device}.png")


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
    return images
