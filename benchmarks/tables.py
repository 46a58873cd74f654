"""The terminal tables (rich) of each suite, built from the same dicts that go into results.json."""
from __future__ import annotations

import math

from rich.table import Table

from .peers import PEERS, SHORT


def _sig(v):
    """Three significant digits, no exponent for the sizes these tables hold."""
    return f"{v:.3g}" if abs(v) < 1e3 else f"{v:.0f}"


def _f(v, fmt="{:.2f}", missing="-"):
    return missing if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def _ratio_style(r, target=1.0):
    if r is None or not math.isfinite(r):
        return ""
    return "green" if r >= target else ("yellow" if r >= 0.5 * target else "red")


def _peers_in(rows, where=lambda r: r.get("results", {})):
    """The peers that appear in any of these rows, in PEERS order."""
    return [p for p in PEERS if any(p in where(r) for r in rows)]


def _peer_cell(res, key="vs_best"):
    """A peer's cell: its time / ours (> 1: ours faster) and its GFLOP/s, or why it was not timed."""
    if res.get("status") != "ok":
        st = res.get("status", "-")
        return "[dim]-[/]" if st == "n/a" else f"[red]{st.split(':')[0]}[/]"
    ratio = res.get(key)
    if ratio is None:                              # no explicit algorithm of ours ran: GFLOP/s alone
        return _sig(res["gflops"])
    return f"[{_ratio_style(ratio)}]{_f(ratio)}x[/] ({_sig(res['gflops'])})"


def kernels_table(section):
    algs = section["algorithms"] + ["auto"]
    peers = _peers_in(section["rows"])
    t = Table(title=f"kernels ({section['device']}, {section['dtype']}): ratio = PyTorch time / ours "
                    f"(> 1: ours faster), GFLOP/s in brackets"
                    + ("; peer columns: the peer's time / our best algorithm's" if peers else ""),
              header_style="bold", show_lines=False)
    for col in ("layer", "class", "GFLOP", "FLOP/B", "PyTorch ms", "PyTorch GF/s"):
        t.add_column(col, justify="left" if col in ("layer", "class") else "right")
    for a in algs:
        t.add_column(a, justify="right")
    for col in ("best", "%peak", "%roof", "auto ok"):
        t.add_column(col, justify="right")
    for p in peers:
        t.add_column(SHORT[p], justify="right")
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
        cells += [_peer_cell(res.get(p, {})) for p in peers]
        t.add_row(*cells)
    return t


def kernels_summary_tables(section):
    s = section["summary"]
    algs = section["algorithms"] + ["auto"]
    peers = [p for p in PEERS if any(f"{p}_vs_best" in e for e in s["geomean_ratio"].values())]
    g = Table(title="geometric mean of the ratio to PyTorch per layer class"
                    + ("; peers: their time / our best algorithm's" if peers else ""), header_style="bold")
    g.add_column("class")
    g.add_column("layers", justify="right")
    g.add_column("best", justify="right")
    for a in algs:
        g.add_column(a, justify="right")
    for p in peers:
        g.add_column(f"{SHORT[p]} / best", justify="right")
    for cls, e in s["geomean_ratio"].items():
        g.add_row(cls, str(e["layers"]), f"[{_ratio_style(e['best'])}]{e['best']:.2f}x[/]",
                  *[_f(e.get(a), "{:.2f}x") for a in algs],
                  *[f"[{_ratio_style(e.get(f'{p}_vs_best'))}]{_f(e.get(f'{p}_vs_best'), '{:.2f}x')}[/]" for p in peers])
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


def timed(row, contender):
    """The contender's timing dict in a networks row, or None when it was not timed."""
    d = row.get(contender)
    return d if d and d.get("status") == "ok" else None


def _not_timed(row, contender):
    d = row.get(contender) or {}
    return "[red]mismatch[/]" if d.get("status") == "mismatch" else "-"


def networks_table(section):
    contenders = section.get("contenders", ["pytorch"])
    t = Table(title=f"networks ({section['device']}, {section['dtype']}): forward pass; x = the contender's "
                    f"time / ours, per round (> 1: ours faster)", header_style="bold")
    for col in ("network", "batch", "GMACs", "ours ms", "img/s", "GFLOP/s", "%peak"):
        t.add_column(col, justify="left" if col == "network" else "right")
    for c in contenders:
        t.add_column(f"{SHORT[c]} ms", justify="right")
        t.add_column(f"x {SHORT[c]}", justify="right")
    t.add_column("where our time goes (share of the forward pass)")
    for row in section["rows"]:
        share = row["breakdown"]["share"]
        top = ", ".join(f"{k} {v * 100:.0f}%" for k, v in sorted(share.items(), key=lambda kv: -kv[1])[:4])
        ours = row["ours"]
        cells = [row["network"], str(row["batch"]), f"{row['macs'] / 1e9:.3g}", f"{ours['median_s'] * 1e3:.2f}",
                 f"{ours['images_per_s']:.1f}", _sig(ours["gflops"]), _f(ours.get("pct_peak"), "{:.0f}")]
        for c in contenders:
            d = timed(row, c)
            cells += ([f"{d['median_s'] * 1e3:.2f}", f"[{_ratio_style(d['ratio'])}]{d['ratio']:.2f}x[/]"] if d
                      else [_not_timed(row, c), "-"])
        t.add_row(*cells, top)
    return t


def _category(key):
    """Our breakdown's and ORT's 'other' (what lies between the timed ops) share one column."""
    return "other" if key.startswith("other") else key


def breakdown_categories(rows):
    """The categories of our breakdowns and ORT's profiles in these rows: ours' largest first, 'other' last."""
    ours, cats = {}, set()
    for r in rows:
        for k, v in r["breakdown"]["seconds"].items():
            ours[_category(k)] = ours.get(_category(k), 0.0) + v
        cats |= {_category(k) for k in r["ort_breakdown"]["seconds"]}
    return sorted(cats | set(ours), key=lambda k: (k == "other", -ours.get(k, 0.0), k))


def category_seconds(breakdown, category):
    return sum(v for k, v in breakdown["seconds"].items() if _category(k) == category)


def breakdown_cells(row, categories):
    """'ours / ORT' ms of the row's total and of each category ('-' where neither spends time)."""
    o, p = row["breakdown"], row["ort_breakdown"]
    cells = [f"{o['forward_s'] * 1e3:.2f} / {p['forward_s'] * 1e3:.2f}"]
    for c in categories:
        a, b = category_seconds(o, c), category_seconds(p, c)
        cells.append(f"{a * 1e3:.2f} / {b * 1e3:.2f}" if a or b else "-")
    return cells


def breakdown_table(section):
    """ms per op category: ours / ONNX Runtime's own profile (None when ORT did not run)."""
    rows = [r for r in section["rows"] if r.get("ort_breakdown")]
    if not rows:
        return None
    cats = breakdown_categories(rows)
    t = Table(title="where the time goes, ms per forward pass: ours / ONNX Runtime's per-node profile (ORT folds "
                    "batch-norm and fuses bias, residual add and activation into its Conv nodes)", header_style="bold")
    t.add_column("network")
    for c in ["total", *cats]:
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(f"{r['network']} b{r['batch']}", *breakdown_cells(r, cats))
    return t


def networks_summary_tables(section):
    s = section.get("summary") or {}
    if not s.get("ratio"):
        return None
    t = Table(title="networks: each contender's time / ours over the rows (> 1: ours faster), and the bars",
              header_style="bold")
    for col in ("contender", "rows", "geometric mean", "smallest", "at"):
        t.add_column(col, justify="left" if col in ("contender", "at") else "right")
    for c, e in s["ratio"].items():
        t.add_row(SHORT[c], str(e["rows"]), f"[{_ratio_style(e['geomean'])}]{e['geomean']:.2f}x[/]",
                  f"[{_ratio_style(e['min'])}]{e['min']:.2f}x[/]", e["min_at"])
    b = Table(title="bars of the inference-plan issue (on this run's rows)", header_style="bold")
    for col in ("bar", "measured", "target", "met"):
        b.add_column(col, justify="left" if col == "bar" else "right")
    for bar in s["bars"]:
        unit = bar["unit"]
        b.add_row(bar["what"], f"{bar['value']:.2f}{unit}" if unit == "x" else f"{bar['value']:.0f}{unit}",
                  f">= {bar['target']:g}{unit}", "[green]yes[/]" if bar["met"] else "[red]NO[/]")
    return [t, b] if s["bars"] else [t]


def networks_tables(section):
    """The networks table, ours beside ORT's profile, and the ratio summary with the bars."""
    out = [networks_table(section)]
    b = breakdown_table(section)
    if b is not None:
        out.append(b)
    out += networks_summary_tables(section) or []
    return out


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
