"""Every layer against its reference (kernels.reference in float64, NumPy formulas, and torch.nn where
it imports), the Conv -> BN -> activation fusion, state dicts, devices, dtypes and cnn.summary."""
import threading

import numpy as np
import pytest

from cnn import layers as L
from cnn import summary
from cnn.layers import REFERENCE, ShapeOps, Spec, use
from cnn.layers.ops import FastOps, current

from .conftest import rel_error

TOL32 = 1e-5


def rnd(*shape, dtype=np.float32, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def fast_and_reference(layer, x):
    x0 = x.copy()
    y = layer(x)
    assert np.array_equal(x, x0), "the layer modified its input"
    with use(REFERENCE):
        ref = layer(x)
    assert ref.dtype == np.float64
    assert y.dtype == x.dtype and y.shape == ref.shape
    return y, ref


def random_bn(c, seed=0, eps=1e-5):
    bn = L.BatchNorm2d(c, eps=eps)
    rng = np.random.default_rng(seed)
    bn.load_state_dict({"weight": rng.uniform(0.5, 1.5, c), "bias": rng.normal(0, 0.5, c),
                        "running_mean": rng.normal(0, 0.5, c), "running_var": rng.uniform(0.3, 3.0, c),
                        "num_batches_tracked": np.array(7)})
    return bn


# --- convolutions -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cin, cout, k, stride, padding, groups, bias", [
    (3, 8, 3, 1, 1, 1, True), (6, 4, 5, 2, 2, 2, False), (8, 16, 1, 1, 0, 1, True), (5, 7, (3, 1), (2, 1), (1, 0), 1, True),
])
def test_conv2d_matches_reference(dtype, cin, cout, k, stride, padding, groups, bias):
    conv = L.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=bias, rng=1, dtype=dtype)
    if bias:
        conv.bias = rnd(cout, dtype=dtype, seed=2)
    y, ref = fast_and_reference(conv, rnd(2, cin, 11, 9, dtype=dtype))
    assert rel_error(y, ref) < (TOL32 if dtype == np.float32 else 1e-12)
    assert conv.num_parameters() == cout * cin // groups * np.prod(conv.kernel_size) + (cout if bias else 0)


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "pointwise"])
def test_conv2d_passes_the_algorithm_through(algorithm):
    conv = L.Conv2d(8, 4, 1, algorithm=algorithm, rng=0)
    y, ref = fast_and_reference(conv, rnd(1, 8, 6, 6))
    assert rel_error(y, ref) < TOL32
    with pytest.raises(ValueError, match="pointwise"):
        L.Conv2d(8, 4, 3, algorithm="pointwise", rng=0)(rnd(1, 8, 6, 6))


def test_depthwise_and_separable_convolutions():
    dw = L.DepthwiseConv2d(6, 3, stride=2, padding=1, multiplier=2, rng=0)
    assert dw.weight.shape == (12, 1, 3, 3) and dw.groups == 6
    y, ref = fast_and_reference(dw, rnd(2, 6, 9, 9))
    assert rel_error(y, ref) < TOL32
    sep = L.SeparableConv2d(6, 10, 3, padding=1, rng=0)
    assert sep.num_parameters() == 6 * 9 + 6 + 6 * 10 + 10
    assert [k for k in sep.state_dict()] == ["depthwise.weight", "depthwise.bias", "pointwise.weight",
                                             "pointwise.bias"]
    y, ref = fast_and_reference(sep, rnd(1, 6, 8, 8))
    assert y.shape == (1, 10, 8, 8) and rel_error(y, ref) < TOL32


def test_conv2d_rejects_bad_arguments():
    with pytest.raises(ValueError, match="groups"):
        L.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="in_channels"):
        L.Conv2d(0, 4, 3)
    with pytest.raises(TypeError, match="out_channels"):
        L.Conv2d(3, 4.0, 3)
    with pytest.raises(ValueError, match="channel"):
        L.Conv2d(3, 4, 3)(rnd(1, 5, 8, 8))
    with pytest.raises(TypeError, match="dtype"):
        L.Conv2d(3, 4, 3)(rnd(1, 3, 8, 8, dtype=np.float64))


def test_kaiming_init_is_seeded_without_global_state():
    state = np.random.get_state()[1].copy()
    a, b = L.Conv2d(16, 32, 3, rng=5), L.Conv2d(16, 32, 3, rng=5)
    assert np.array_equal(a.weight, b.weight)
    assert not np.array_equal(a.weight, L.Conv2d(16, 32, 3, rng=6).weight)
    gen = np.random.default_rng(5)
    assert np.array_equal(L.Conv2d(16, 32, 3, rng=gen).weight, a.weight)
    assert np.array_equal(np.random.get_state()[1], state)
    std = np.sqrt(2.0 / (32 * 9))            # Kaiming normal, fan_out, ReLU gain
    assert a.weight.std() == pytest.approx(std, rel=0.05)
    assert np.all(a.bias == 0)


# --- batch norm and the fused conv ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_matches_its_formula(dtype):
    bn = random_bn(5, eps=1e-3)
    bn.to(dtype)
    x = rnd(2, 5, 4, 3, dtype=dtype)
    p = {k: np.asarray(v, dtype=np.float64).reshape(1, -1, 1, 1) for k, v in bn.state_dict().items()
         if k != "num_batches_tracked"}
    expected = (x - p["running_mean"]) / np.sqrt(p["running_var"] + 1e-3) * p["weight"] + p["bias"]
    y, ref = fast_and_reference(bn, x)
    assert rel_error(ref, expected) < 1e-12
    assert rel_error(y, expected) < (TOL32 if dtype == np.float32 else 1e-12)


class CountingOps(FastOps):
    def __init__(self):
        self.convs = []

    def conv2d(self, x, w, b, **kw):
        self.convs.append(kw["activation"])
        return super().conv2d(x, w, b, **kw)


@pytest.mark.parametrize("act, fused", [(L.ReLU, "relu"), (L.ReLU6, "relu6"), (L.SiLU, None), (None, None)])
def test_conv_bn_activation_runs_as_one_conv_call(act, fused):
    layers = [L.Conv2d(4, 6, 3, padding=1, bias=False, rng=0), random_bn(6)]
    if act is not None:
        layers.append(act(inplace=True))
    seq = L.Sequential(*layers)
    x = rnd(2, 4, 7, 7, scale=3.0)
    with use(CountingOps()) as ops:
        y = seq(x)
    assert ops.convs == [fused]
    with use(REFERENCE):
        ref = seq(x)
    assert rel_error(y, ref) < TOL32


def test_the_fold_follows_the_parameters():
    conv, bn = L.Conv2d(3, 4, 3, bias=True, rng=0), random_bn(4, seed=1)
    seq = L.Sequential(conv, bn, L.ReLU(inplace=True))
    x = rnd(1, 3, 6, 6)
    y1 = seq(x)
    state = dict(seq.state_dict())
    state["1.running_mean"] = state["1.running_mean"] + 1.0
    state["0.bias"] = np.full(4, 0.25)
    seq.load_state_dict(state)
    y2 = seq(x)
    with use(REFERENCE):
        ref = seq(x)
    assert not np.allclose(y1, y2) and rel_error(y2, ref) < TOL32
    seq.to(np.float64)                         # new arrays: the fold is recomputed in float64
    y3 = seq(x.astype(np.float64))
    assert y3.dtype == np.float64 and rel_error(y3, ref) < 1e-12


def test_parameters_are_read_only():
    conv = L.Conv2d(3, 4, 3, rng=0)
    with pytest.raises(ValueError):
        conv.weight[0] = 1.0
    with pytest.raises(ValueError):
        conv.state_dict()["bias"][:] = 1.0


# --- activations, pooling, linear ----------------------------------------------------------------
@pytest.mark.parametrize("layer, fn", [
    (L.ReLU, lambda x: np.maximum(x, 0)), (L.ReLU6, lambda x: np.clip(x, 0, 6)),
    (L.Sigmoid, lambda x: 1 / (1 + np.exp(-x))), (L.Tanh, np.tanh), (L.SiLU, lambda x: x / (1 + np.exp(-x))),
])
@pytest.mark.parametrize("inplace", [False, True])
def test_activations(layer, fn, inplace):
    x = rnd(2, 3, 4, 5, scale=5.0)
    x[0, 0, 0, :3] = [-800.0, 800.0, 0.0]       # no overflow warnings, exact limits
    with np.errstate(over="ignore"):
        expected = fn(x.astype(np.float64))
    with use(REFERENCE):
        assert rel_error(layer()(x), expected) < 1e-12
    work = x.copy()
    with np.errstate(all="raise"):
        y = layer(inplace=inplace)(work)
    assert rel_error(y, expected) < 1e-6
    assert (y is work) == inplace
    if not inplace:
        assert np.array_equal(work, x), "inplace=False modified the input"


def test_relu_propagates_nan():
    x = np.array([[np.nan, -1.0, 2.0]], dtype=np.float32)
    assert np.isnan(L.ReLU()(x)[0, 0])


def test_softmax_flatten_dropout_linear():
    x = rnd(3, 7, scale=20.0)
    s = L.Softmax(dim=1)(x)
    assert np.allclose(s.sum(axis=1), 1.0) and np.all(s >= 0)
    with use(REFERENCE):
        assert rel_error(s, L.Softmax(1)(x)) < 1e-6
    z = rnd(2, 3, 4, 5)
    assert L.Flatten()(z).shape == (2, 60) and L.Dropout(0.5)(z) is z
    lin = L.Linear(60, 9, rng=0)
    lin.bias = rnd(9, seed=3)
    y, ref = fast_and_reference(lin, L.Flatten()(z))
    assert rel_error(ref, z.reshape(2, 60).astype(np.float64) @ lin.weight.T.astype(np.float64) + lin.bias) < 1e-12
    assert rel_error(y, ref) < TOL32
    assert lin.num_parameters() == 60 * 9 + 9
    assert np.abs(lin.weight).max() <= 1 / np.sqrt(60)


@pytest.mark.parametrize("layer", [
    L.MaxPool2d(3, 2, 1), L.MaxPool2d(3, 2, ceil_mode=True), L.MaxPool2d(2), L.AvgPool2d(2, 2),
    L.AvgPool2d(3, 2, 1, count_include_pad=False), L.AvgPool2d(3, 2, 1, ceil_mode=True), L.GlobalAvgPool2d(),
    L.AdaptiveAvgPool2d(3), L.AdaptiveAvgPool2d((2, 4)), L.AdaptiveAvgPool2d(1),
    L.LocalResponseNorm(5, 5e-4, 0.75, 2.0), L.LocalResponseNorm(3),
], ids=repr)
def test_pooling_and_lrn_match_reference_and_torch(layer):
    x = rnd(2, 6, 9, 8)
    y, ref = fast_and_reference(layer, x)
    assert rel_error(y, ref) < TOL32
    torch = pytest.importorskip("torch")
    tl = {L.MaxPool2d: lambda m: torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode),
          L.AvgPool2d: lambda m: torch.nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                                    m.count_include_pad),
          L.GlobalAvgPool2d: lambda m: torch.nn.AdaptiveAvgPool2d(1),
          L.AdaptiveAvgPool2d: lambda m: torch.nn.AdaptiveAvgPool2d(m.output_size),
          L.LocalResponseNorm: lambda m: torch.nn.LocalResponseNorm(m.size, m.alpha, m.beta, m.k)}[type(layer)](layer)
    assert rel_error(ref, tl(torch.from_numpy(x).double()).numpy()) < 1e-12


# --- containers and blocks -----------------------------------------------------------------------
def test_sequential_and_concat():
    seq = L.Sequential(L.Conv2d(3, 4, 1, rng=0), L.ReLU())
    assert len(seq) == 2 and isinstance(seq[1], L.ReLU) and list(seq) == [seq[0], seq[1]]
    with pytest.raises(TypeError, match="position 1"):
        L.Sequential(seq, np.zeros(3))
    cat = L.Concat(branch1=L.Conv2d(3, 4, 1, rng=0), branch2=L.MaxPool2d(3, 1, 1))
    assert list(cat.state_dict()) == ["branch1.weight", "branch1.bias"]
    x = rnd(1, 3, 5, 5)
    y, ref = fast_and_reference(cat, x)
    assert y.shape == (1, 7, 5, 5) and rel_error(y, ref) < TOL32
    assert np.array_equal(y[:, 4:], L.MaxPool2d(3, 1, 1)(x))


def _randomized(block, seed=0):
    rng = np.random.default_rng(seed)
    state = {k: (rng.uniform(0.5, 2.0, v.shape) if k.endswith(("running_var", "weight")) and v.ndim == 1
                 else rng.normal(0, 0.3, v.shape) if v.ndim == 1 else v)
             for k, v in block.state_dict().items()}
    return block.load_state_dict(state)


@pytest.mark.parametrize("make, cin, hw", [
    (lambda: L.BasicBlock(8, 8, rng=0), 8, 8),
    (lambda: L.BasicBlock(8, 16, 2, L.Sequential(L.Conv2d(8, 16, 1, 2, bias=False, rng=1), L.BatchNorm2d(16)),
                          rng=0), 8, 9),
    (lambda: L.Bottleneck(16, 4, rng=0), 16, 6),
    (lambda: L.Bottleneck(8, 4, 2, L.Sequential(L.Conv2d(8, 16, 1, 2, bias=False, rng=1), L.BatchNorm2d(16)),
                          rng=0), 8, 7),
    (lambda: L.InvertedResidual(8, 8, 1, 6, rng=0), 8, 7),
    (lambda: L.InvertedResidual(8, 16, 2, 1, rng=0), 8, 7),
    (lambda: L.MBConv(6, 5, 1, 16, 16, rng=0), 16, 7),
    (lambda: L.MBConv(1, 3, 2, 16, 8, rng=0), 16, 7),
    (lambda: L.SqueezeExcitation(12, 3, rng=0), 12, 5),
    (lambda: L.Conv2dNormActivation(4, 8, 3, 2, activation=L.ReLU6, rng=0), 4, 9),
], ids=lambda v: "" if callable(v) or isinstance(v, int) else str(v))
def test_blocks_match_reference(make, cin, hw):
    block = _randomized(make())
    y, ref = fast_and_reference(block, rnd(2, cin, hw, hw))
    assert rel_error(y, ref) < TOL32


def test_block_state_dict_names_are_torchvisions():
    down = L.Sequential(L.Conv2d(8, 16, 1, 2, bias=False, rng=1), L.BatchNorm2d(16))
    names = list(L.BasicBlock(8, 16, 2, down, rng=0).state_dict())
    assert names[:7] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                         "bn1.num_batches_tracked", "conv2.weight"]
    assert names[-6:] == ["downsample.0.weight", "downsample.1.weight", "downsample.1.bias",
                          "downsample.1.running_mean", "downsample.1.running_var", "downsample.1.num_batches_tracked"]
    mb = list(L.MBConv(6, 3, 1, 16, 16, rng=0).state_dict())
    assert "block.2.fc1.weight" in mb and "block.3.1.running_var" in mb


# --- state dicts, files, devices -----------------------------------------------------------------
def small_net():
    return L.Sequential(L.Conv2d(3, 4, 3, bias=False, rng=0), L.BatchNorm2d(4), L.ReLU(inplace=True),
                        L.GlobalAvgPool2d(), L.Flatten(), L.Linear(4, 2, rng=1))


def test_state_dict_is_strict():
    net = small_net()
    state = net.state_dict()
    assert list(state) == ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                           "1.num_batches_tracked", "5.weight", "5.bias"]
    assert state["1.num_batches_tracked"].dtype == np.int64 and state["1.num_batches_tracked"].shape == ()
    assert net.num_parameters() == 4 * 27 + 8 + 10
    with pytest.raises(ValueError, match="'extra.weight'"):
        net.load_state_dict({**state, "extra.weight": np.zeros(2)})
    with pytest.raises(ValueError, match="'5.bias'"):
        net.load_state_dict({k: v for k, v in state.items() if k != "5.bias"})
    bad = dict(state)
    bad["0.weight"] = np.zeros((4, 3, 3, 2))
    with pytest.raises(ValueError, match="'0.weight' has shape"):
        net.load_state_dict(bad)
    with pytest.raises(TypeError, match="'5.bias'"):
        net.load_state_dict({**state, "5.bias": object()})
    assert net.state_dict()["0.weight"] is state["0.weight"]      # a failed load changes nothing


def test_load_state_dict_copies_and_keeps_dtype():
    net = small_net()
    w = np.ones((2, 4))
    net.load_state_dict({**net.state_dict(), "5.weight": w})
    assert net[5].weight.dtype == np.float32 and net[5].weight is not w
    w[:] = 5
    assert np.all(net[5].weight == 1)


def test_save_and_load_npz(tmp_path):
    a, b = small_net(), small_net()
    b.load_state_dict({k: v + 1 if v.dtype.kind == "f" else v for k, v in a.state_dict().items()})
    b.save(tmp_path / "b.npz")
    a.load(tmp_path / "b.npz")
    x = rnd(1, 3, 6, 6)
    assert np.array_equal(a(x), b(x))


def test_torch_tensors_load():
    torch = pytest.importorskip("torch")
    net = small_net()
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in net.state_dict().items()})


def test_to_rejects_unknown_targets():
    with pytest.raises(ValueError, match="target"):
        small_net().to("tpu")
    with pytest.raises(ValueError, match="float32 or float64"):
        small_net().to(np.int32)


@pytest.mark.gpu
def test_to_cuda_and_back():
    import cupy
    net = _randomized(L.BasicBlock(8, 8, rng=0))
    x = rnd(1, 8, 10, 10)
    expected = net(x)
    net.to("cuda")
    assert all(isinstance(v, cupy.ndarray) for v in net.state_dict().values())
    y = net(cupy.asarray(x))
    assert isinstance(y, cupy.ndarray) and rel_error(y, expected) < TOL32
    net.to("cpu")
    assert all(isinstance(v, np.ndarray) for v in net.state_dict().values())
    assert rel_error(net(x), expected) < TOL32


# --- the op switch and the summary ---------------------------------------------------------------
def test_the_op_switch_is_local_to_the_context():
    seen = []
    with use(REFERENCE):
        t = threading.Thread(target=lambda: seen.append(current().name))
        t.start()
        t.join()
        assert current().name == "reference"
    assert seen == ["fast"] and current().name == "fast"


def test_shape_propagation_checks_shapes():
    net = small_net()
    with use(ShapeOps()):
        assert net(Spec((2, 3, 8, 8))).shape == (2, 2)
        with pytest.raises(ValueError, match="channel"):
            net(Spec((2, 5, 8, 8)))
    with pytest.raises(ValueError, match="input features"):
        summary(L.Sequential(L.Flatten(), L.Linear(10, 2)), (1, 3, 2, 2))


def test_summary_rows_and_table():
    s = summary(small_net(), (3, 8, 8))
    assert s.input_shape == (1, 3, 8, 8)
    assert [(r.name, r.type, r.output_shape) for r in s.rows[:3]] == [
        ("0", "Conv2d", (1, 4, 6, 6)), ("1", "BatchNorm2d", (1, 4, 6, 6)), ("2", "ReLU", (1, 4, 6, 6))]
    assert s.rows[0].macs == 4 * 36 * 27 and s.rows[-1].macs == 8
    assert s.total_macs == 4 * 36 * 27 + 8 and s.total_flops == 2 * s.total_macs
    assert s.total_params == sum(r.params for r in s.rows) == small_net().num_parameters()
    text = str(s)
    assert "MACs" in text and "FLOPs = 2 x MACs" in text and "1x4x6x6" in text and "1x2" in text
