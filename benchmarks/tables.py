"""The terminal tables (rich) of each suite, built from the same dicts that go into results.json."""
from __future__ import annotations

import math

from rich.table import Table


def _sig(v):
    """Three significant digits, no exponent for the sizes these tables hold."""
    return f"{v:.3g}" if abs(v) < 1e3 else f"{v:.0f}"


def _f(v, fmt="{:.2f}", missing="-"):
    return missing if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def _ratio_style(r, target=1.0):
    if r is None or not math.isfinite(r):
        return ""
    return "green" if r >= target else ("yellow" if r >= 0.5 * target else "red")


def kernels_table(section):
    algs = section["algorithms"] + ["auto"]
    t = Table(title=f"kernels ({section['device']}, {section['dtype']}): ratio = PyTorch time / ours "
                    f"(> 1: ours faster), GFLOP/s in brackets",
              header_style="bold", show_lines=False)
    for col in ("layer", "class", "GFLOP", "FLOP/B", "PyTorch ms", "PyTorch GF/s"):
        t.add_column(col, justify="left" if col in ("layer", "class") else "right")
    for a in algs:
        t.add_column(a, justify="right")
    for col in ("best", "%peak", "%roof", "auto ok"):
        t.add_column(col, justify="right")
    for row in section["rows"]:
        res = row["results"]
        base = res.get(row["baseline"]) if row["baseline"] else None
        cells = [row["layer"], row["class"], _sig(row['flops'] / 1e9), f"{row['intensity']:.1f}",
                 _f(base and base["median_s"] * 1e3, "{:.3f}"), _f(base and base["gflops"], "{:.3g}")]
        for a in algs:
            r = res.get(a, {})
            if r.get("status") == "ok":
                ratio = r.get("ratio")
                txt = f"{_f(ratio)}x ({_sig(r['gflops'])})" if ratio is not None else f"{r['gflops']:.0f} GF/s"
                style = "bold " if a == row.get("best") else ""
                style += _ratio_style(ratio)
                cells.append(f"[{style}]{txt}[/]" if style.strip() else txt)
            else:
                cells.append("[dim]" + {"n/a": "-", "not built": "not built"}.get(r.get("status"), "error") + "[/]")
        best = res.get(row.get("best"), {})
        cells += [row.get("best", "-"), _f(best.get("pct_peak"), "{:.3g}"), _f(best.get("pct_roofline"), "{:.3g}"),
                  {True: "yes", False: "[red]no[/]"}.get(row.get("auto_within_noise"), "-")]
        t.add_row(*cells)
    return t


def kernels_summary_tables(section):
    s = section["summary"]
    algs = section["algorithms"] + ["auto"]
    g = Table(title="geometric mean of the ratio to PyTorch per layer class", header_style="bold")
    g.add_column("class")
    g.add_column("layers", justify="right")
    g.add_column("best", justify="right")
    for a in algs:
        g.add_column(a, justify="right")
    for cls, e in s["geomean_ratio"].items():
        g.add_row(cls, str(e["layers"]), f"[{_ratio_style(e['best'])}]{e['best']:.2f}x[/]",
                  *[_f(e.get(a), "{:.2f}x") for a in algs])
    b = Table(title="bars (ratio to PyTorch, same run, interleaved)", header_style="bold")
    for col in ("bar", "measured", "target", "met"):
        b.add_column(col, justify="left" if col == "bar" else "right")
    for bar in s["bars"]:
        b.add_row(bar["what"], f"{bar['value']:.2f}x", f">= {bar['target']}x",
                  "[green]yes[/]" if bar["met"] else "[red]NO[/]")
    am = s["auto_matches_best"]
    b.add_row("auto within noise of the best explicit algorithm", f"{am['within_noise']}/{am['layers']} layers",
              "all", "[green]yes[/]" if am["within_noise"] == am["layers"] else "[red]NO[/]")
    sc = s.get("thread_scaling")
    if sc and "pytorch_speedup" in sc:
        b.add_row(f"  (PyTorch's own {sc['threads']}-thread speedup on {sc['layer']})",
                  f"{sc['pytorch_speedup']:.2f}x", "", "")
    return [g, b]


def separable_table(section):
    t = Table(title=f"normal vs depthwise-separable / bottleneck ({section['device']}): time ratio "
                    f"replacement / normal (lower = bigger saving)", header_style="bold")
    for col in ("comparison", "MACs ratio (theory)", "bytes ratio", "FLOP/B normal", "FLOP/B repl.",
                "roofline ratio", "measured ours", "measured PyTorch", "normal alg", "ours normal ms",
                "ours repl. ms"):
        t.add_column(col, justify="left" if col == "comparison" else "right")
    for row in section["rows"]:
        base_alg = next((s.get("algorithm", "-") for s in row["stages"] if s["side"] == "base"), "-")
        t.add_row(row["name"], f"{row['theory_ratio']:.3f}", f"{row['bytes_ratio']:.2f}",
                  f"{row['base_intensity']:.0f}", f"{row['alt_intensity']:.1f}", f"{row['roofline_ratio']:.3f}",
                  _f(row.get("measured_ratio_ours"), "{:.3f}"), _f(row.get("measured_ratio_pytorch"), "{:.3f}"),
                  base_alg, _f(row.get("base_s_ours") and row["base_s_ours"] * 1e3, "{:.3f}"),
                  _f(row.get("alt_s_ours") and row["alt_s_ours"] * 1e3, "{:.3f}"))
    return t


def networks_table(section):
    t = Table(title=f"networks ({section['device']}, {section['dtype']}): forward pass", header_style="bold")
    for col in ("network", "batch", "GMACs", "ours ms", "img/s", "GFLOP/s", "PyTorch ms", "ratio",
                "where our time goes (share of the forward pass)"):
        t.add_column(col, justify="left" if col in ("network",) or col.startswith("where") else "right")
    for row in section["rows"]:
        share = row["breakdown"]["share"]
        top = ", ".join(f"{k} {v * 100:.0f}%" for k, v in sorted(share.items(), key=lambda kv: -kv[1])[:4])
        pt = row.get("pytorch")
        t.add_row(row["network"], str(row["batch"]), f"{row['macs'] / 1e9:.3g}",
                  f"{row['ours']['median_s'] * 1e3:.2f}", f"{row['ours']['images_per_s']:.1f}",
                  _sig(row['ours']['gflops']), _f(pt and pt["median_s"] * 1e3, "{:.2f}"),
                  f"[{_ratio_style(row.get('ratio'))}]{_f(row.get('ratio'))}x[/]" if pt else "-", top)
    return t


def ceilings_table(device, c):
    t = Table(title=f"measured ceilings ({device}, {c.get('threads', '')} threads, {c.get('isa', 'gpu')})",
              header_style="bold")
    t.add_column("ceiling")
    t.add_column("value", justify="right")
    for dt, v in c["peak_gflops"].items():
        t.add_row(f"peak FMA {dt}", f"{v:.0f} GFLOP/s")
    for name, v in c.get("peak_gflops_1thread", {}).items():
        t.add_row(f"peak FMA {name}, 1 thread", f"{v:.0f} GFLOP/s")
    for name, v in c["bandwidth_gbps"].items():
        t.add_row(f"bandwidth {name.replace('_', ' ')}", f"{v:.1f} GB/s")
    t.add_row("roofline ridge point (fp32 peak / DRAM copy)",
              f"{c['peak_gflops']['float32'] / c['roofline_bandwidth_gbps']:.1f} FLOP/B")
    return t
