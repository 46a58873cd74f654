"""The benchmarks' peers (benchmarks.peers, benchmarks.ort_profile): ONNX Runtime and OpenVINO on the
torch twins' ONNX export, agreeing with our forward pass; the networks suite's peer columns, the
mismatch rule (a peer that disagrees is reported, not timed), --peers, and the aggregation of ONNX
Runtime's per-node profile on a recorded profile. What needs a peer skips where it is not installed."""
import json

import numpy as np
import pytest

pytest.importorskip("rich")
pytest.importorskip("matplotlib")

from benchmarks import __main__ as cli  # noqa: E402
from benchmarks import machine, ort_profile, peers, suite_networks  # noqa: E402
from benchmarks.backends import CpuBackend  # noqa: E402
from benchmarks.timing import Budget  # noqa: E402
from cnn import models  # noqa: E402
from .conftest import FAKE_CEILINGS  # noqa: E402

TINY = Budget(seconds=0.02, min_rounds=2, max_rounds=3, warmup=1)


INSTALLED, MISSING = peers.installed()
PEER_PARAMS = [pytest.param(p, marks=pytest.mark.skipif(p not in INSTALLED, reason=f"{p}: {MISSING.get(p)}"))
               for p in peers.PEERS]


def _torch_twin(name, net):
    torch = pytest.importorskip("torch")
    from benchmarks import torch_models
    model = torch_models.create(name)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in net.state_dict().items()})
    return model.eval()


class Progress:
    """The rich Progress calls a suite makes, doing nothing."""

    def add_task(self, *a, **kw):
        return 0

    def update(self, *a, **kw):
        pass

    def advance(self, *a, **kw):
        pass


@pytest.fixture
def small_networks(monkeypatch):
    """resnet18 at 64x64, batch 1 only, fixed ceilings, short timings: the plumbing, not the speed."""
    monkeypatch.setattr(machine, "cpu_ceilings", lambda threads, quick=True: dict(FAKE_CEILINGS, threads=threads))
    monkeypatch.setitem(suite_networks.INPUT, "resnet18", (3, 64, 64))
    monkeypatch.setattr(suite_networks, "BATCHES", (1,))
    monkeypatch.setitem(cli.NETWORK_BUDGET, "quick", TINY)
    monkeypatch.setitem(cli.NETWORK_PASSES, "quick", 2)


# --- selection -------------------------------------------------------------------------------------------------

def test_select(monkeypatch):
    assert peers.select([]) == ({}, {})
    with pytest.raises(ValueError, match="unknown.*'tensorrt'.*onnxruntime,openvino or 'none'"):
        peers.select(["tensorrt"])
    monkeypatch.setattr(peers, "installed", lambda: ({"onnxruntime": "1.0"}, {"openvino": "ModuleNotFoundError: x"}))
    assert peers.select(None) == ({"onnxruntime": "1.0"}, {"openvino": "ModuleNotFoundError: x"})
    assert peers.select(["onnxruntime"]) == ({"onnxruntime": "1.0"}, {})
    with pytest.raises(ValueError, match=r'openvino not installed.*pip install "\.\[peers\]"'):
        peers.select(["onnxruntime", "openvino"])


def test_cli_peers_option(monkeypatch):
    assert cli.parse_args(["networks", "--peers", "none"]).peer_versions == {}
    with pytest.raises(SystemExit):
        cli.parse_args(["networks", "--peers", "onnxruntime,tensorrt"])
    monkeypatch.setattr(peers, "installed", lambda: ({}, {"onnxruntime": "e", "openvino": "e"}))
    a = cli.parse_args(["networks"])
    assert a.peer_versions == {} and set(a.peers_missing) == {"onnxruntime", "openvino"}


# --- ONNX Runtime's profile ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shapes, category", [
    ([[1, 3, 64, 64], [64, 3, 7, 7], [64]], "conv 7x7"),
    ([[1, 64, 16, 16], [64, 64, 3, 3], [64], [1, 64, 16, 16]], "conv 3x3"),
    ([[1, 64, 16, 16], [128, 64, 1, 1], [128]], "conv 1x1"),
    ([[1, 144, 16, 16], [144, 1, 3, 3], [144]], "conv depthwise"),     # MobileNetV2, NCHWc
    ([[1, 32, 16, 16], [144, 32, 1, 1], [144]], "conv 1x1"),            # 24 channels padded to the block
    ([[1, 64, 8, 8], [64, 32, 3, 3], [64]], "conv grouped"),
])
def test_conv_category(shapes, category):
    assert ort_profile.conv_category(shapes) == category


# ONNX Runtime 1.32's profile of resnet18 at 1x3x64x64 (ORT_ENABLE_ALL, 2 threads): a warm-up run and one
# more, as (cat, name, ts us, dur us, op_name, input shapes); Node names lost their "_kernel_time" suffix
# and each event its memory statistics and thread-scheduling details.
RECORDED = [
    ("Session", "model_loading_uri", 3, 68389, None, None),
    ("Session", "session_initialization", 68468, 76208, None, None),
    ("Node", "/relu/Relu_output_0_nchwc", 144920, 161, "Conv", [[1, 3, 64, 64], [64, 3, 7, 7], [64]]),
    ("Node", "/maxpool/MaxPool_output_0_nchwc", 145087, 14, "MaxPool", [[1, 64, 32, 32]]),
    ("Node", "/layer1/layer1.0/relu/Relu_output_0_nchwc", 145107, 55, "Conv", [[1, 64, 16, 16], [64, 64, 3, 3], [64]]),
    ("Node", "/layer1/layer1.0/conv2/Conv_output_0_nchwc", 145165, 53, "Conv",
     [[1, 64, 16, 16], [64, 64, 3, 3], [64], [1, 64, 16, 16]]),
    ("Node", "/layer1/layer1.1/relu/Relu_output_0_nchwc", 145221, 51, "Conv", [[1, 64, 16, 16], [64, 64, 3, 3], [64]]),
    ("Node", "/layer1/layer1.1/conv2/Conv_output_0_nchwc", 145276, 51, "Conv",
     [[1, 64, 16, 16], [64, 64, 3, 3], [64], [1, 64, 16, 16]]),
    ("Node", "/layer2/layer2.0/relu/Relu_output_0_nchwc", 145332, 37, "Conv",
     [[1, 64, 16, 16], [128, 64, 3, 3], [128]]),
    ("Node", "/layer2/layer2.0/downsample/downsample.0/Conv_output_0_nchwc", 145373, 13, "Conv",
     [[1, 64, 16, 16], [128, 64, 1, 1], [128]]),
    ("Node", "/layer2/layer2.0/conv2/Conv_output_0_nchwc", 145391, 57, "Conv",
     [[1, 128, 8, 8], [128, 128, 3, 3], [128], [1, 128, 8, 8]]),
    ("Node", "/layer2/layer2.1/relu/Relu_output_0_nchwc", 145452, 59, "Conv",
     [[1, 128, 8, 8], [128, 128, 3, 3], [128]]),
    ("Node", "/layer2/layer2.1/conv2/Conv_output_0_nchwc", 145514, 59, "Conv",
     [[1, 128, 8, 8], [128, 128, 3, 3], [128], [1, 128, 8, 8]]),
    ("Node", "/layer3/layer3.0/relu/Relu_output_0_nchwc", 145578, 56, "Conv",
     [[1, 128, 8, 8], [256, 128, 3, 3], [256]]),
    ("Node", "/layer3/layer3.0/downsample/downsample.0/Conv_output_0_nchwc", 145637, 13, "Conv",
     [[1, 128, 8, 8], [256, 128, 1, 1], [256]]),
    ("Node", "/layer3/layer3.0/conv2/Conv_output_0_nchwc", 145654, 109, "Conv",
     [[1, 256, 4, 4], [256, 256, 3, 3], [256], [1, 256, 4, 4]]),
    ("Node", "/layer3/layer3.1/relu/Relu_output_0_nchwc", 145767, 109, "Conv",
     [[1, 256, 4, 4], [256, 256, 3, 3], [256]]),
    ("Node", "/layer3/layer3.1/conv2/Conv_output_0_nchwc", 145881, 105, "Conv",
     [[1, 256, 4, 4], [256, 256, 3, 3], [256], [1, 256, 4, 4]]),
    ("Node", "/layer4/layer4.0/relu/Relu_output_0_nchwc", 145990, 162, "Conv",
     [[1, 256, 4, 4], [512, 256, 3, 3], [512]]),
    ("Node", "/layer4/layer4.0/downsample/downsample.0/Conv_output_0_nchwc", 146156, 23, "Conv",
     [[1, 256, 4, 4], [512, 256, 1, 1], [512]]),
    ("Node", "/layer4/layer4.0/conv2/Conv_output_0_nchwc", 146184, 297, "Conv",
     [[1, 512, 2, 2], [512, 512, 3, 3], [512], [1, 512, 2, 2]]),
    ("Node", "/layer4/layer4.1/relu/Relu_output_0_nchwc", 146484, 289, "Conv",
     [[1, 512, 2, 2], [512, 512, 3, 3], [512]]),
    ("Node", "/layer4/layer4.1/conv2/Conv_output_0_nchwc", 146778, 284, "Conv",
     [[1, 512, 2, 2], [512, 512, 3, 3], [512], [1, 512, 2, 2]]),
    ("Node", "/avgpool/GlobalAveragePool_output_0_nchwc", 147067, 11, "GlobalAveragePool", [[1, 512, 2, 2]]),
    ("Node", "ReorderOutput", 147082, 24, "ReorderOutput", [[1, 512, 1, 1]]),
    ("Node", "/Flatten", 147111, 8, "Flatten", [[1, 512, 1, 1]]),
    ("Node", "/fc/Gemm", 147123, 48, "Gemm", [[1, 512], [1000]]),
    ("Session", "SequentialExecutor::Execute", 144916, 2262, None, None),
    ("Session", "model_run", 144898, 2293, None, None),
    ("Node", "/relu/Relu_output_0_nchwc", 147647, 62, "Conv", [[1, 3, 64, 64], [64, 3, 7, 7], [64]]),
    ("Node", "/maxpool/MaxPool_output_0_nchwc", 147714, 11, "MaxPool", [[1, 64, 32, 32]]),
    ("Node", "/layer1/layer1.0/relu/Relu_output_0_nchwc", 147728, 49, "Conv", [[1, 64, 16, 16], [64, 64, 3, 3], [64]]),
    ("Node", "/layer1/layer1.0/conv2/Conv_output_0_nchwc", 147781, 47, "Conv",
     [[1, 64, 16, 16], [64, 64, 3, 3], [64], [1, 64, 16, 16]]),
    ("Node", "/layer1/layer1.1/relu/Relu_output_0_nchwc", 147833, 47, "Conv", [[1, 64, 16, 16], [64, 64, 3, 3], [64]]),
    ("Node", "/layer1/layer1.1/conv2/Conv_output_0_nchwc", 147883, 46, "Conv",
     [[1, 64, 16, 16], [64, 64, 3, 3], [64], [1, 64, 16, 16]]),
    ("Node", "/layer2/layer2.0/relu/Relu_output_0_nchwc", 147933, 35, "Conv",
     [[1, 64, 16, 16], [128, 64, 3, 3], [128]]),
    ("Node", "/layer2/layer2.0/downsample/downsample.0/Conv_output_0_nchwc", 147971, 10, "Conv",
     [[1, 64, 16, 16], [128, 64, 1, 1], [128]]),
    ("Node", "/layer2/layer2.0/conv2/Conv_output_0_nchwc", 147984, 55, "Conv",
     [[1, 128, 8, 8], [128, 128, 3, 3], [128], [1, 128, 8, 8]]),
    ("Node", "/layer2/layer2.1/relu/Relu_output_0_nchwc", 148043, 60, "Conv",
     [[1, 128, 8, 8], [128, 128, 3, 3], [128]]),
    ("Node", "/layer2/layer2.1/conv2/Conv_output_0_nchwc", 148106, 57, "Conv",
     [[1, 128, 8, 8], [128, 128, 3, 3], [128], [1, 128, 8, 8]]),
    ("Node", "/layer3/layer3.0/relu/Relu_output_0_nchwc", 148166, 51, "Conv",
     [[1, 128, 8, 8], [256, 128, 3, 3], [256]]),
    ("Node", "/layer3/layer3.0/downsample/downsample.0/Conv_output_0_nchwc", 148220, 12, "Conv",
     [[1, 128, 8, 8], [256, 128, 1, 1], [256]]),
    ("Node", "/layer3/layer3.0/conv2/Conv_output_0_nchwc", 148236, 102, "Conv",
     [[1, 256, 4, 4], [256, 256, 3, 3], [256], [1, 256, 4, 4]]),
    ("Node", "/layer3/layer3.1/relu/Relu_output_0_nchwc", 148342, 107, "Conv",
     [[1, 256, 4, 4], [256, 256, 3, 3], [256]]),
    ("Node", "/layer3/layer3.1/conv2/Conv_output_0_nchwc", 148452, 98, "Conv",
     [[1, 256, 4, 4], [256, 256, 3, 3], [256], [1, 256, 4, 4]]),
    ("Node", "/layer4/layer4.0/relu/Relu_output_0_nchwc", 148555, 141, "Conv",
     [[1, 256, 4, 4], [512, 256, 3, 3], [512]]),
    ("Node", "/layer4/layer4.0/downsample/downsample.0/Conv_output_0_nchwc", 148700, 21, "Conv",
     [[1, 256, 4, 4], [512, 256, 1, 1], [512]]),
    ("Node", "/layer4/layer4.0/conv2/Conv_output_0_nchwc", 148725, 266, "Conv",
     [[1, 512, 2, 2], [512, 512, 3, 3], [512], [1, 512, 2, 2]]),
    ("Node", "/layer4/layer4.1/relu/Relu_output_0_nchwc", 148995, 264, "Conv",
     [[1, 512, 2, 2], [512, 512, 3, 3], [512]]),
    ("Node", "/layer4/layer4.1/conv2/Conv_output_0_nchwc", 149263, 235, "Conv",
     [[1, 512, 2, 2], [512, 512, 3, 3], [512], [1, 512, 2, 2]]),
    ("Node", "/avgpool/GlobalAveragePool_output_0_nchwc", 149502, 6, "GlobalAveragePool", [[1, 512, 2, 2]]),
    ("Node", "ReorderOutput", 149511, 5, "ReorderOutput", [[1, 512, 1, 1]]),
    ("Node", "/Flatten", 149519, 4, "Flatten", [[1, 512, 1, 1]]),
    ("Node", "/fc/Gemm", 149527, 30, "Gemm", [[1, 512], [1000]]),
    ("Session", "SequentialExecutor::Execute", 147647, 1914, None, None),
    ("Session", "model_run", 147600, 1969, None, None),
]


def _recorded_events():
    out = []
    for cat, name, ts, dur, op, shapes in RECORDED:
        args = {} if op is None else {"op_name": op, "provider": "CPUExecutionProvider",
                                       "input_type_shape": [{"float": s} for s in shapes]}
        out.append({"cat": cat, "name": name + ("_kernel_time" if cat == "Node" else ""), "ph": "X",
                    "ts": ts, "dur": dur, "pid": 1, "tid": 1, "args": args})
    return out


def test_aggregate_recorded_profile():
    events = _recorded_events()
    second_run = [r for r in RECORDED if r[0] == "Node"][25:]
    agg = ort_profile.aggregate(events, skip_runs=1)
    assert agg["runs"] == 1
    assert agg["forward_s"] == pytest.approx(next(r[3] for r in reversed(RECORDED) if r[1] == "model_run") * 1e-6)
    convs = [r for r in second_run if r[4] == "Conv"]
    for size in (3, 7, 1):
        assert agg["seconds"][f"conv {size}x{size}"] == pytest.approx(
            sum(r[3] for r in convs if r[5][1][2] == size) * 1e-6)
    assert set(agg["seconds"]) == {"conv 3x3", "conv 7x7", "conv 1x1", "pooling", "layout reorder (NCHWc)",
                                   "concat / flatten", "linear", ort_profile.OTHER}
    node_total = sum(r[3] for r in second_run) * 1e-6
    assert agg["seconds"][ort_profile.OTHER] == pytest.approx(agg["forward_s"] - node_total)
    assert sum(agg["share"].values()) == pytest.approx(1.0)
    assert agg["calls"] == {"Conv": 20, "MaxPool": 1, "GlobalAveragePool": 1, "ReorderOutput": 1, "Flatten": 1,
                            "Gemm": 1}
    assert agg["fused_add"] == 8                                # ResNet-18's 8 residual adds, inside Conv
    assert agg["by_op"]["Conv"] == pytest.approx(sum(r[3] for r in second_run if r[4] == "Conv") * 1e-6)
    both = ort_profile.aggregate(events)                        # the median of the two runs
    first = [r for r in RECORDED if r[0] == "Node"][:25]
    assert both["runs"] == 2
    assert both["seconds"]["conv 7x7"] == pytest.approx((first[0][3] + second_run[0][3]) / 2 * 1e-6)
    with pytest.raises(ValueError, match="no model_run event after skipping 2"):
        ort_profile.aggregate(events, skip_runs=2)


def test_aggregate_maps_op_types():
    """EfficientNet's SiLU is ORT's QuickGelu (an activation); an op type outside the map keeps its name."""
    events = [{"cat": "Session", "name": "model_run", "ts": 0, "dur": 100, "args": {}}]
    for i, op in enumerate(("QuickGelu", "Mul", "Resize")):
        events.append({"cat": "Node", "name": f"n{i}_kernel_time", "ts": 10 * (i + 1), "dur": 5,
                       "args": {"op_name": op, "input_type_shape": [{"float": [1, 8, 4, 4]}]}})
    agg = ort_profile.aggregate(events)
    for category in ("activation", "residual add / SE scale", "Resize"):
        assert agg["seconds"][category] == pytest.approx(5e-6)
    assert agg["seconds"][ort_profile.OTHER] == pytest.approx(85e-6)


# --- the engines on our weights --------------------------------------------------------------------------------

@pytest.mark.parametrize("peer", PEER_PARAMS)
@pytest.mark.parametrize("name, shape", [("lenet5", (2, 1, 32, 32)), ("resnet18", (1, 3, 64, 64))])
def test_export_and_forward_agree(peer, name, shape, tmp_path):
    net = models.create(name, seed=0)
    model = _torch_twin(name, net)
    path = peers.network_onnx(name, model, net.state_dict(), shape, str(tmp_path))
    assert peers.network_onnx(name, model, net.state_dict(), shape, str(tmp_path)) == path    # cached
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    session = peers.open_session(peer, path, 2)
    assert peers.rel_error(session(x), net(x)) < peers.TOLERANCE
    assert session.settings["version"]
    other = models.create(name, seed=1)                         # other weights: another file
    assert peers.network_onnx(name, model, other.state_dict(), shape, str(tmp_path)) != path


@pytest.mark.parametrize("peer", PEER_PARAMS)
@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((1, 16, 9, 9), (8, 16, 4, 4), dict(padding="same")),            # even kernel: the extra row at the bottom
    ((2, 12, 15, 15), (12, 1, 3, 3), dict(stride=2, padding=1, groups=12)),
    ((1, 8, 10, 10), (6, 4, 3, 3), dict(padding=(0, 2), dilation=2, groups=2)),
])
def test_layer_model_agrees(peer, x_shape, w_shape, kw):
    pytest.importorskip("onnx")
    import kernels
    from kernels.shapes import conv_geometry
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    g = conv_geometry(x_shape, w_shape, kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1),
                      kw.get("groups", 1))
    session = peers.layer_sessions([peer], x_shape, w, b, g, 1)[peer]
    assert peers.rel_error(session(x), kernels.reference.conv2d(x, w, b, **kw)) < 1e-5


# --- the networks suite ----------------------------------------------------------------------------------------

def test_networks_quick_has_peer_columns(small_networks, tmp_path):
    """The networks suite through the CLI: every installed peer timed beside PyTorch, agreeing with ours,
    its columns in the table, report and plots; without the peers, PyTorch's alone."""
    pytest.importorskip("torch")
    out = tmp_path / "out"
    assert cli.main(["networks", "--networks", "resnet18", "--threads", "1", "--out", str(out),
                     "--onnx-cache", str(tmp_path / "onnx")]) == 0
    r = json.loads((out / "results.json").read_text())
    installed = list(INSTALLED)
    assert r["options"]["peers"] == installed
    sec = r["networks"]["cpu"]
    assert sec["contenders"] == ["pytorch", *installed]
    (row,) = sec["rows"]
    assert row["network"] == "resnet18" and row["input"] == [1, 3, 64, 64]
    for c in ["ours", *sec["contenders"]]:
        d = row[c]
        assert d["status"] == "ok" and d["median_s"] > 0 and d["rounds"] >= 2
        assert d["gflops"] == pytest.approx(2 * row["macs"] / d["median_s"] / 1e9)
        assert d["pct_peak"] == pytest.approx(100 * d["gflops"] / 500.0)
        if c != "ours":
            assert d["ratio"] > 0 and d["rel_error"] < peers.TOLERANCE
            assert sec["summary"]["ratio"][c]["rows"] == 1
    assert set(sec["peer_settings"]) == set(installed)
    report = (out / "report.md").read_text()
    assert "x PyTorch" in report and (out / "networks_ms_cpu.png").exists()
    if "onnxruntime" in installed:
        prof = row["ort_breakdown"]
        assert prof["seconds"]["conv 3x3"] > 0 and prof["calls"]["Conv"] == 20 and prof["fused_add"] == 8
        assert "x ORT" in report and "ours against ONNX Runtime's own profile" in report
        assert {b["bar"] for b in sec["summary"]["bars"]} >= {"onnxruntime_geomean", "onnxruntime_min",
                                                             "peak_resnet18_b1"}
    else:
        assert "ort_breakdown" not in row


def test_networks_peer_that_disagrees_is_not_timed(monkeypatch, small_networks):
    """A peer whose output is off by more than 1e-3 is reported as a mismatch, never timed."""
    pytest.importorskip("torch")

    class Wrong:
        settings = {"version": "test"}

        def __init__(self, name, path, threads):
            self.net = models.create("resnet18", seed=0)

        def __call__(self, x):
            return self.net(x) * 1.01

    calls = []
    monkeypatch.setattr(peers, "network_onnx", lambda name, model, state, shape, cache_dir=None: "unused.onnx")
    monkeypatch.setattr(peers, "open_session", lambda *a: calls.append(a) or Wrong(*a))
    backend = CpuBackend(1, {"onnxruntime": "test"})
    sec = suite_networks.run(backend, full=False, networks=["resnet18"], dtype="float32", budget=TINY,
                             progress=Progress(), ceilings=FAKE_CEILINGS, passes=1)
    (row,) = sec["rows"]
    assert calls == [("onnxruntime", "unused.onnx", 1)]
    assert row["onnxruntime"]["status"] == "mismatch"
    assert row["onnxruntime"]["rel_error"] == pytest.approx(0.01, rel=1e-3)
    assert "relative error 1.00e-02 > 0.001" in row["onnxruntime"]["why"]
    assert "ort_breakdown" not in row and "onnxruntime" not in sec["summary"]["ratio"]
    assert row["pytorch"]["status"] == "ok"


def test_alone_table_rotates_contenders_and_summarises(monkeypatch, capsys):
    """benchmarks.alone table: one process per (network, batch, contender) per round, the order rotated,
    medians over the rounds, each peer's time / ours with its geometric mean and smallest value."""
    import argparse

    from benchmarks import alone
    calls = []
    ms = {("ours", "a"): [2.0, 4.0], ("p", "a"): [3.0, 3.0], ("ours", "b"): [1.0, 1.0], ("p", "b"): [0.5, 0.5]}

    def child(who, network, batch, threads, n):
        calls.append((who, network))
        return ms[(who, network)][sum(c == (who, network) for c in calls) - 1]
    monkeypatch.setattr(alone, "_child", child)
    alone.table(argparse.Namespace(peers="p", batches="1", networks="a,b", rounds=2, threads=2, calls=8))
    out = capsys.readouterr().out
    assert calls[:4] == [("ours", "a"), ("p", "a"), ("p", "a"), ("ours", "a")]
    assert "| a | 1 | 3.00 | 3.00 | 1.00x |" in out and "| b | 1 | 1.00 | 0.50 | 0.50x |" in out
    assert "x p: geometric mean 0.707, smallest 0.50 (b batch 1)" in out
