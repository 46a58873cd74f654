"""The benchmark harness's own logic: the layer set against DESIGN.md, the roofline arithmetic, the
timing helpers, and the JSON, plots and report of a tiny run (one small layer, fixed ceilings)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rich")
pytest.importorskip("matplotlib")

from benchmarks import __main__ as cli  # noqa: E402
from benchmarks import layers, machine, roofline, timing  # noqa: E402
import kernels  # noqa: E402
from kernels.shapes import conv_geometry  # noqa: E402
from .conftest import FAKE_CEILINGS  # noqa: E402

# DESIGN.md's "benchmark layer set", verbatim: name, batch, C, H=W, K, R=S, stride, pad, groups
DESIGN_TABLE = """
lenet.c1        64    1  32    6  5 1 0 1      mv2.dw112     1   32 112   32 3 1 1   32
alexnet.c1       1    3 227   96 11 4 0 1      mv2.dw112s2   1   96 112   96 3 2 1   96
vgg.c1_2         1   64 224   64  3 1 1 1      mv2.dw56      1  144  56  144 3 1 1  144
vgg.c3_2         1  256  56  256  3 1 1 1      mv2.dw14      1  576  14  576 3 1 1  576
vgg.c5_2         1  512  14  512  3 1 1 1      mv2.dw7       1  960   7  960 3 1 1  960
r50.conv1        1    3 224   64  7 2 3 1      effb0.dw14k5  1  672  14  672 5 1 2  672
r50.2a_3x3       1   64  56   64  3 1 1 1      effb0.dw7k5   1 1152   7 1152 5 1 2 1152
r50.2a_1x1in     1   64  56   64  1 1 0 1      mv2.pw56      1  144  56   24 1 1 0    1
r50.2a_1x1out    1   64  56  256  1 1 0 1      mv2.pw7       1  960   7  320 1 1 0    1
r50.4a_3x3       1  256  14  256  3 1 1 1      b8.vgg.c3_2   8  256  56  256 3 1 1    1
r50.5a_1x1       1 2048   7  512  1 1 0 1      b8.mv2.dw56   8  144  56  144 3 1 1  144
incep.5x5        1  192  28   32  5 1 2 1
incep.1x1red     1  192  28   16  1 1 0 1
incep.5x5red     1   16  28   32  5 1 2 1
"""


def _parse(text):
    rows = {}
    for line in text.strip().splitlines():
        tok = line.split()
        for i in range(0, len(tok), 9):
            name, *nums = tok[i:i + 9]
            rows[name] = tuple(int(v) for v in nums)
    return rows


def _design_md_table():
    """The layer-set block of ../shared/DESIGN.md when the file is there (the team's checkout)."""
    path = Path(__file__).resolve().parents[2] / "shared" / "DESIGN.md"
    if not path.exists():
        return None
    text = path.read_text()
    start = text.index("## The benchmark layer set")
    block = text[start:].split("```")[1]
    return _parse("\n".join(line for line in block.splitlines()[1:] if line.strip()))


def test_layer_set_holds_design():
    """DESIGN.md: the benchmarks carry at least its layers, by its names and geometries."""
    ours = {layer.name: (layer.N, layer.C, layer.HW, layer.K, layer.RS, layer.stride, layer.pad, layer.groups)
            for layer in layers.LAYERS}
    for table in (_parse(DESIGN_TABLE), _design_md_table()):
        if table is not None:
            assert {k: ours.get(k) for k in table} == table


def test_layer_classes():
    cls = {layer.name: layer.layer_class for layer in layers.LAYERS}
    assert {n for n, c in cls.items() if c == "depthwise"} == {
        "mv2.dw112", "mv2.dw112s2", "mv2.dw56", "mv2.dw14", "mv2.dw7", "effb0.dw14k5", "effb0.dw7k5", "b8.mv2.dw56"}
    assert {n for n, c in cls.items() if c == "pointwise"} == {
        "r50.2a_1x1in", "r50.2a_1x1out", "r50.5a_1x1", "incep.1x1red", "mv2.pw56", "mv2.pw7"}
    assert cls["vgg.c3_2"] == cls["alexnet.c1"] == "regular"


def test_layer_select():
    assert [layer.name for layer in layers.select("vgg.*")] == ["vgg.c1_2", "vgg.c3_2", "vgg.c5_2"]
    assert [layer.name for layer in layers.select("mv2.dw7, lenet.c1")] == ["lenet.c1", "mv2.dw7"]
    with pytest.raises(ValueError, match="matches no layer"):
        layers.select("nope*")


def test_roofline_arithmetic():
    g = conv_geometry((1, 256, 56, 56), (256, 256, 3, 3), 1, 1)
    assert roofline.conv_flops(g) == 2 * 256 * 56 * 56 * 256 * 9
    assert roofline.conv_bytes(g, 4) == 4 * (256 * 56 * 56 * 2 + 256 * 256 * 9)
    assert roofline.attainable_gflops(2.0, 500.0, 50.0) == 100.0      # memory-bound
    assert roofline.attainable_gflops(100.0, 500.0, 50.0) == 500.0    # compute-bound
    assert roofline.ridge_point(500.0, 50.0) == 10.0
    assert roofline.roofline_time(1e9, 1e9, 500.0, 50.0) == pytest.approx(0.02)
    ceilings = {"peak_gflops": {"float32": 500.0}, "roofline_bandwidth_gbps": 50.0}
    m = roofline.metrics(1e9, 5e8, 0.01, ceilings, np.float32)        # 100 GFLOP/s at 2 FLOP/B
    assert m["gflops"] == pytest.approx(100.0)
    assert m["pct_peak"] == pytest.approx(20.0)
    assert m["pct_roofline"] == pytest.approx(100.0)


def test_timing_rounds_and_ratios():
    ticks = {"a": 0.002, "b": 0.001}
    fake = {n: (lambda n=n: ticks[n]) for n in ticks}
    timers = {n: (lambda fn: fn()) for n in ticks}
    st = timing.compare(fake, timing.Budget(seconds=0.03, min_rounds=3, max_rounds=50), timers)
    assert len(st["a"].samples) == len(st["b"].samples) == 10      # 0.003 s per round -> 10 rounds
    assert timing.paired_ratio(st["a"], st["b"]) == pytest.approx(2.0)
    assert timing.within_noise(st["b"], st["a"]) and not timing.within_noise(st["a"], st["b"])
    assert timing.geomean([1.0, 4.0, float("nan")]) == pytest.approx(2.0)




def test_tiny_run_json_plots_report(tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "cpu_ceilings", lambda threads, quick=True: dict(FAKE_CEILINGS, threads=threads))
    out = tmp_path / "out"
    assert cli.main(["kernels", "--layers", "mv2.dw7", "--threads", "1", "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["schema"] == cli.SCHEMA
    for key in ("command", "mode", "options", "machine", "devices", "ceilings", "kernels", "separable", "networks"):
        assert key in r
    m = r["machine"]
    for key in ("cpu_model", "cpu_flags", "threads", "blas", "versions", "date_utc"):
        assert key in m
    assert r["ceilings"]["cpu"]["peak_gflops"]["float32"] == 500.0
    sec = r["kernels"]["cpu"]
    assert [row["layer"] for row in sec["rows"]] == ["mv2.dw7"]
    row = sec["rows"][0]
    assert row["class"] == "depthwise" and row["macs"] == 960 * 7 * 7 * 9
    assert row["intensity"] == pytest.approx(2 * row["macs"] / (4 * (2 * 960 * 49 + 960 * 9)))
    assert set(row["results"]) >= {"direct", "im2col", "depthwise", "auto"}
    assert row["results"]["pointwise"] == {"status": "n/a"}
    for name, res in row["results"].items():
        assert res["status"] in ("ok", "n/a", "not built") or res["status"].startswith("error")
        if res["status"] == "ok":
            assert res["median_s"] > 0 and res["rounds"] >= 5
            assert res["gflops"] == pytest.approx(row["flops"] / res["median_s"] / 1e9)
            assert res["pct_roofline"] == pytest.approx(100 * res["gflops"] / (row["intensity"] * 40.0))
    assert "geomean_ratio" in sec["summary"] and "bars" in sec["summary"]
    assert (out / "report.md").exists()
    if any(res["status"] == "ok" for res in row["results"].values()):
        assert os.path.exists(out / "roofline_cpu.png") and os.path.exists(out / "kernels_gflops_cpu.png")


def test_cuda_without_device_fails_clearly(monkeypatch):
    import kernels
    if kernels.gpu_available():
        pytest.skip("a CUDA device is usable here")
    with pytest.raises(SystemExit, match="no usable CUDA device"):
        cli.main(["kernels", "--device", "cuda", "--layers", "mv2.dw7"])


def test_peak_probe_runs():
    peak = pytest.importorskip("benchmarks.peak")
    assert peak.isa() in ("avx512", "avx2", "scalar")
    assert peak.fma_gflops("float32", 1, 0.005, 1) > 0.5
    assert peak.copy_gbps(1 << 16, 1, 0.005, 1) > 0.05
    assert peak.read_gbps(1 << 16, 1, 0.005, 1) > 0.05
    with pytest.raises(ValueError, match="nthreads"):
        peak.fma_gflops("float32", 0)


def test_separable_suite_agrees_with_cost_model():
    """The separable suite's MACs and bytes are cnn.cost's (one cost model, two users)."""
    cost = pytest.importorskip("cnn.cost")
    from benchmarks import suite_separable
    for cmp in suite_separable.comparisons(full=True):
        base = cmp.base[0]
        normal = cost.conv(base.n, base.n, base.C, base.K, base.f, padding=base.f // 2)
        if cmp.family == "bottleneck":
            red, big = cmp.alt
            alt = cost.bottleneck(base.n, base.n, red.C, red.K, big.K, big.f, padding=big.f // 2)
        else:
            alt = cost.depthwise_separable(base.n, base.n, base.C, base.K, base.f, padding=base.f // 2)
            assert cmp.theory_ratio == pytest.approx(float(cost.separable_ratio_closed_form(base.K, base.f)))
        assert sum(s.geometry.macs for s in cmp.base) == normal.macs
        assert sum(s.geometry.macs for s in cmp.alt) == alt.macs
        assert sum(roofline.conv_bytes(s.geometry, 4) for s in cmp.alt) == alt.bytes_moved
        assert roofline.conv_bytes(base.geometry, 4) == normal.bytes_moved


def test_network_breakdown_counts_each_op_once():
    """Ops built on other ops (silu on sigmoid, adaptive on global pooling) are timed once: the shares
    of a forward pass add up to 1."""
    models = pytest.importorskip("cnn.models")
    from benchmarks.suite_networks import breakdown
    net = models.create("efficientnet_b0")
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    try:
        b = breakdown(net, x, lambda: None, passes=1)
    except ImportError as e:
        pytest.skip(f"a kernel is not built: {e}")
    assert sum(b["share"].values()) == pytest.approx(1.0, abs=0.02)
    # a planned pass: SiLU and sigmoid ride in the convolutions' epilogues, no activation of their own
    assert b.get("planned") and "activation" not in b["seconds"] and b["seconds"]["conv depthwise"] > 0


def test_network_breakdown_op_by_op(monkeypatch):
    """Without a plan every op is timed on its own, activations included."""
    models = pytest.importorskip("cnn.models")
    from benchmarks.suite_networks import breakdown
    monkeypatch.setenv("CONVFORGE_PLAN", "0")
    net = models.create("efficientnet_b0")
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    b = breakdown(net, x, lambda: None, passes=1)
    assert sum(b["share"].values()) == pytest.approx(1.0, abs=0.02)
    assert b["seconds"]["activation"] > 0 and b["seconds"]["conv depthwise"] > 0


def test_winograd_benchmark_table(capsys):
    """benchmarks.winograd: each algorithm timed on a small layer, the rule's pick beside them."""
    from benchmarks import winograd
    t = winograd.measure(1, 16, 32, 9, threads=1, rounds=2)
    assert set(t) == {"direct", "F2", "F4"} and all(s > 0 for s in t.values())
    text = winograd.table([("tiny", 1, 16, 32, 9)], threads=1, rounds=1)
    row = text.splitlines()[-1]
    assert row.startswith("| tiny | 1 | 16->32 @9 |") and row.endswith("| F4 |")
    assert capsys.readouterr().out.strip().endswith(row)
    with pytest.raises(SystemExit):
        winograd.main(["--layers", "nothing"])


@pytest.mark.skipif(not kernels.cpu_info()["amx"], reason="no AMX tiles here (CPU, OS or ISA variant)")
def test_amx_benchmark_table(capsys):
    """benchmarks.amx: the tiles, the direct kernel and Winograd timed on small layers, the partition."""
    from benchmarks import amx
    t, part = amx.measure(2, 40, 24, 9, 3, 1, threads=1, rounds=2)
    assert set(t) == {"amx", "direct", "F4"} and all(s > 0 for s in t.values()) and part["images"] >= 1
    text = amx.table([("tiny", 1, 16, 32, 9, 1, 2)], threads=1, rounds=1)
    row = text.splitlines()[-1]
    assert row.startswith("| tiny | 1 | 16->32 1x1/2 @9 |") and "| - |" in row
    assert capsys.readouterr().out.strip().endswith(row)
    with pytest.raises(SystemExit):
        amx.main(["--layers", "nothing"])


def test_tiles_benchmark_table(capsys):
    """benchmarks.tiles: the model's tile and each fixed tile timed on a small layer (a kb that does not
    divide the layer's 3 output blocks too: its last group takes the rest)."""
    from benchmarks import tiles
    t, model, flops = tiles.measure(("tiny", 1, 16, 48, 9, 3, 1), threads=1, rounds=2)
    assert set(t) == {"model", *tiles.TILES} and (4, 7, False) in t
    assert all(s > 0 for s in t.values())
    assert list(model) == tiles.vendors() and all(kb in (1, 3) for kb, _, _ in model.values())
    assert flops == 2 * 48 * 16 * 9 * 81
    text = tiles.table([("tiny", 1, 16, 48, 9, 1, 2)], threads=1, rounds=1)
    row = text.splitlines()[-1]
    assert row.startswith("| tiny | 1 | 16->48 @9 1x1/2 | ") and row.count(" - ") == 0
    assert text.splitlines()[2].count(" model |") == len(tiles.vendors()) == 2
    assert capsys.readouterr().out.strip().endswith(row)
    with pytest.raises(SystemExit):
        tiles.main(["--layers", "nothing"])


def test_ab_benchmark(capsys, tmp_path):
    """benchmarks.ab: a lower.py pass left out, or another build's blocked kernels, against the current
    plan in one process; a copy of this build's module gives the same bits."""
    import shutil
    from benchmarks import ab
    from kernels.cpu import load
    ab.run("lenet5", 1, 1, 1, off="fuse")
    out = capsys.readouterr().out
    assert out.startswith("lenet5 batch 1, 1 threads, 1 rounds: old / new median ")
    copy = tmp_path / os.path.basename(load("blocked").__file__)
    shutil.copy(load("blocked").__file__, copy)
    ab.run("lenet5", 1, 1, 1, old_so=str(copy))
    assert capsys.readouterr().out.rstrip().endswith("largest relative difference 0")
    with pytest.raises(ValueError, match="off must be one of"):
        ab.plans("lenet5", 1, off="choose_layouts")
    with pytest.raises(ValueError, match="exactly one"):
        ab.plans("lenet5", 1)
    with pytest.raises(ValueError, match="old_so"):
        ab.plans("lenet5", 1, old_so=str(tmp_path / "none.so"))
    with pytest.raises(SystemExit):
        ab.main(["nothing"])


def test_tuning_benchmark(capsys):
    """benchmarks.tuning: both plans prepared, the same bits, each layer's candidates, the rounds."""
    from benchmarks import tuning
    tuning.run("lenet5", 2, 1, 1, True)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("lenet5 batch 2, 1 threads: prepare tuned") and "bit-identical" in out[1]
    assert len(out) == 2 + 2 + 1 and out[-1].startswith("round 0: tuned")          # lenet5: two convs
    with pytest.raises(SystemExit):
        tuning.main(["nothing"])
