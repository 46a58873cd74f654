"""Errors in the user's terms: every layer argument is checked when the layer is built (naming the
argument), and a bad input says what looks wrong (channels-last, no batch axis, a torch tensor, numpy
and cupy mixed, a dtype other than the weights')."""
import numpy as np
import pytest

from cnn import layers as L
from cnn import models

from .test_functional import FakeCupy


def rnd(*shape, dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


CONSTRUCTION = [
    (lambda: L.Conv2d(3, 4, 3, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: L.Conv2d(3, 4, 3, padding=(1, -2)), ValueError, "padding must be >= 0"),
    (lambda: L.Conv2d(3, 4, 3, padding="same", stride=2), ValueError, "padding='same' needs stride 1"),
    (lambda: L.Conv2d(3, 4, 3, padding="SAME"), ValueError, r"lower case.*'same'"),
    (lambda: L.Conv2d(3, 4, 3, padding="full"), ValueError, "padding must be"),
    (lambda: L.Conv2d(3, 4, 3, padding=1.5), TypeError, "padding"),
    (lambda: L.Conv2d(3, 4, 3, dtype=np.float16), TypeError, "dtype must be np.float32 or np.float64"),
    (lambda: L.Conv2d(3, 4, 3, dtype="complex64"), TypeError, "dtype"),
    (lambda: L.Conv2d(3, 4, 3, dtype="nonsense"), TypeError, "dtype"),
    (lambda: L.Conv2d(3, 4, 0), ValueError, "kernel_size must be >= 1"),
    (lambda: L.Conv2d(3, 4, (3, 3, 3)), ValueError, "kernel_size"),
    (lambda: L.Conv2d(3, 4, 3, stride=0), ValueError, "stride must be >= 1"),
    (lambda: L.Conv2d(3, 4, 3, dilation=0), ValueError, "dilation must be >= 1"),
    (lambda: L.Conv2d(3, 4, 3, groups=2), ValueError, "groups=2 must divide"),
    (lambda: L.Conv2d(3, 4, 3, groups=0), ValueError, "groups must be >= 1"),
    (lambda: L.Conv2d(3, 4, 3, bias="yes"), TypeError, "bias must be True or False"),
    (lambda: L.Conv2d(3, 4, 3, padding_mode="reflect"), ValueError, "padding_mode"),
    (lambda: L.Conv2d(3, 4, 3, algorithm="fft"), ValueError, "algorithm must be 'auto' or one of"),
    (lambda: L.Conv2d(3, 4, 3, algorithm="pointwise"), ValueError, "pointwise' needs a 1x1 kernel"),
    (lambda: L.Conv2d(3, 4, 1, padding=1, algorithm="pointwise"), ValueError, "without padding"),
    (lambda: L.Conv2d(4, 8, 3, algorithm="depthwise"), ValueError, "groups == in_channels"),
    (lambda: L.Conv2d(True, 4, 3), TypeError, "in_channels must be an int"),
    (lambda: L.DepthwiseConv2d(4, 3, multiplier=0), ValueError, "multiplier"),
    (lambda: L.BatchNorm2d(0), ValueError, "num_features must be >= 1"),
    (lambda: L.BatchNorm2d(4, eps=0), ValueError, "eps must be > 0"),
    (lambda: L.BatchNorm2d(4, momentum=2), ValueError, "momentum must be <= 1"),
    (lambda: L.BatchNorm2d(4, dtype=np.int32), TypeError, "dtype"),
    (lambda: L.Linear(5.0, 3), TypeError, "in_features must be an int"),
    (lambda: L.Linear(5, 0), ValueError, "out_features must be >= 1"),
    (lambda: L.Linear(5, 3, bias=1), TypeError, "bias"),
    (lambda: L.Linear(5, 3, dtype=np.float16), TypeError, "dtype"),
    (lambda: L.MaxPool2d(0), ValueError, "kernel_size"),
    (lambda: L.MaxPool2d(2, stride=0), ValueError, "stride"),
    (lambda: L.MaxPool2d(2, padding=2), ValueError, "at most half the kernel"),
    (lambda: L.MaxPool2d(3, dilation=0), ValueError, "dilation"),
    (lambda: L.MaxPool2d(3, ceil_mode=1), TypeError, "ceil_mode"),
    (lambda: L.AvgPool2d(3, padding=-1), ValueError, "padding"),
    (lambda: L.AvgPool2d(3, count_include_pad="no"), TypeError, "count_include_pad"),
    (lambda: L.AdaptiveAvgPool2d(0), ValueError, "output_size"),
    (lambda: L.LocalResponseNorm(0), ValueError, "size"),
    (lambda: L.LocalResponseNorm(5, alpha="x"), TypeError, "alpha"),
    (lambda: L.LocalResponseNorm(5, beta=float("nan")), TypeError, "beta"),
    (lambda: L.ReLU(inplace="True"), TypeError, "inplace"),
    (lambda: L.Softmax(dim=1.0), TypeError, "dim"),
    (lambda: L.Flatten(start_dim="1"), TypeError, "start_dim"),
    (lambda: L.Dropout(1.5), ValueError, "p must be <= 1"),
    (lambda: L.Dropout(-0.1), ValueError, "p must be >= 0"),
    (lambda: L.Concat(L.ReLU(), np.zeros(2)), TypeError, "Concat"),
    (lambda: L.Concat(L.ReLU(), axis=1.0), TypeError, "axis"),
    (lambda: L.Concat(), ValueError, "at least one branch"),
    (lambda: L.ModuleList([L.ReLU(), 3]), TypeError, "ModuleList.append"),
    (lambda: models.create("alexnet", variant="tv"), ValueError, "'paper', 'torchvision'"),
]


@pytest.mark.parametrize("build, exc, match", CONSTRUCTION, ids=[m for _, _, m in CONSTRUCTION])
def test_bad_arguments_fail_at_construction(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_valid_torch_style_arguments_are_kept_as_torch_keeps_them():
    conv = L.Conv2d(3, 4, (3, 1), stride=2, padding=(1, 0), dilation=(1, 2))
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation) == ((3, 1), (2, 2), (1, 0), (1, 2))
    assert L.Conv2d(3, 4, 3, padding="valid").padding == "valid"
    assert L.Conv2d(3, 4, 1, padding="same", algorithm="pointwise").algorithm == "pointwise"
    assert L.MaxPool2d(3).stride == (3, 3) and L.BatchNorm2d(4, momentum=None).momentum is None


INPUTS = [
    (L.Conv2d(3, 8, 3), rnd(1, 32, 32, 3), ValueError, r"channels-last.*x\.transpose\(0, 3, 1, 2\)"),
    (L.Conv2d(3, 8, 3), rnd(3, 32, 32), ValueError, r"add the batch axis, x\[None\]"),
    (L.Conv2d(3, 8, 3), rnd(32, 32, 3), ValueError, r"channels-last image.*transpose\(2, 0, 1\)\[None\]"),
    (L.Conv2d(3, 8, 3), rnd(2, 5, 8, 8), ValueError, r"expects 3 input channels \(x.shape\[1\]\), got x of shape \(2, 5, 8, 8\)$"),
    (L.Conv2d(3, 8, 3), rnd(1, 3, 8, 8, dtype=np.float64), TypeError, r"x has dtype float64 but the weights are float32"),
    (L.Conv2d(3, 8, 3), [[1.0]], TypeError, "numpy or cupy array, got list"),
    (L.BatchNorm2d(5), rnd(2, 3, 4, 4), ValueError, r"BatchNorm2d\(5.*expects 5 input channels"),
    (L.BatchNorm2d(5), rnd(2, 4, 4, 5), ValueError, "channels-last"),
    (L.Linear(5, 3), rnd(2, 4), ValueError, r"Linear\(5, 3\) expects 5 input features \(x.shape\[-1\]\), got x of shape \(2, 4\)"),
    (L.Linear(5, 3), rnd(2, 5, 2, 2), ValueError, r"needs a Flatten\(\) before the Linear"),
    (L.Linear(5, 3), rnd(2, 5, dtype=np.float64), TypeError, "dtype float64"),
]


@pytest.mark.parametrize("layer, x, exc, match", INPUTS, ids=[m[:30] for *_, m in INPUTS])
def test_bad_inputs_get_hints(layer, x, exc, match):
    with pytest.raises(exc, match=match):
        layer(x)


def test_a_whole_network_gives_the_hint_of_its_first_layer():
    with pytest.raises(ValueError, match="channels-last"):
        models.resnet18(seed=0)(rnd(1, 64, 64, 3))


def test_torch_tensors_get_a_hint_at_any_module():
    torch = pytest.importorskip("torch")
    t = torch.zeros(1, 3, 8, 8)
    for layer in (L.Conv2d(3, 4, 3), L.ReLU(), L.MaxPool2d(2), L.Sequential(L.ReLU())):
        with pytest.raises(TypeError, match=r"torch.Tensor.*x.detach\(\).cpu\(\).numpy\(\)"):
            layer(t)


def test_numpy_and_cupy_mix_ups_get_a_hint():
    conv = L.Conv2d(3, 4, 3)
    with pytest.raises(TypeError, match=r"x is a cupy \(GPU\) array but the weights are numpy.*net.to\('cuda'\)"):
        conv(FakeCupy((1, 3, 8, 8)))
    conv.weight = FakeCupy((4, 3, 3, 3))                      # as if the network had been moved to the GPU
    with pytest.raises(TypeError, match=r"weights are on the GPU.*cupy.asarray\(x\).*net.to\('cpu'\)"):
        conv(rnd(1, 3, 8, 8))
