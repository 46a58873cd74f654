"""The case-study networks: parameter counts, published MAC totals, forward passes against the same
network on the float64 reference ops, and against the torch.nn twins with the same weights."""
import numpy as np
import pytest

from cnn import models, summary
from cnn.layers import REFERENCE, use

from .conftest import rel_error

# torchvision's counts where it has the network; the papers' for LeNet-5, AlexNet and MobileNet v1
COUNTS = {
    "lenet5": 61_706, "alexnet": 62_378_344, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "googlenet": 6_624_904, "mobilenet_v1": 4_231_976, "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548, "efficientnet_b1": 7_794_184, "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232, "efficientnet_b4": 19_341_616, "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704, "efficientnet_b7": 66_347_960,
}
# published multiply-accumulates at the design resolution, in GMACs
PUBLISHED_GMACS = {"resnet50": 4.09, "vgg16": 15.47, "mobilenet_v2": 0.30, "mobilenet_v1": 0.569,
                   "efficientnet_b0": 0.39}
BIG = {"vgg16", "vgg19", "efficientnet_b6", "efficientnet_b7"}


def test_available_and_create():
    assert set(models.available()) == set(COUNTS)
    assert models.create("lenet5", seed=3).num_parameters() == COUNTS["lenet5"]
    with pytest.raises(ValueError, match="unknown network 'resnet51'"):
        models.create("resnet51")


# torchvision's alexnet, names and shapes as its weight file alexnet-owt-7be5be79.pth holds them
TORCHVISION_ALEXNET = [
    ("features.0.weight", (64, 3, 11, 11)), ("features.0.bias", (64,)),
    ("features.3.weight", (192, 64, 5, 5)), ("features.3.bias", (192,)),
    ("features.6.weight", (384, 192, 3, 3)), ("features.6.bias", (384,)),
    ("features.8.weight", (256, 384, 3, 3)), ("features.8.bias", (256,)),
    ("features.10.weight", (256, 256, 3, 3)), ("features.10.bias", (256,)),
    ("classifier.1.weight", (4096, 9216)), ("classifier.1.bias", (4096,)),
    ("classifier.4.weight", (4096, 4096)), ("classifier.4.bias", (4096,)),
    ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,)),
]


def test_alexnet_torchvision_variant_has_torchvisions_state_dict():
    net = models.create("alexnet", variant="torchvision", seed=0)
    assert [(k, v.shape) for k, v in net.state_dict().items()] == TORCHVISION_ALEXNET
    assert net.num_parameters() == 61_100_840 and net.input_size == (3, 224, 224)
    s = summary(net, (1, 3, 224, 224))
    assert s.total_macs / 1e9 == pytest.approx(0.714, rel=0.01)      # torchvision's 0.71 GFLOPS (MACs)
    assert models.alexnet(variant="paper", seed=0).num_parameters() == COUNTS["alexnet"]


def test_alexnet_torchvision_variant_matches_its_torch_twin():
    # the adaptive 6x6 pool lets a small image through the whole network
    _check_twin("alexnet", 96, variant="torchvision")


EMPTY_SIZE = {"lenet5": 32, "alexnet": 227}


@pytest.mark.parametrize("name", [n if n not in BIG else pytest.param(n, marks=pytest.mark.slow) for n in COUNTS])
def test_an_empty_batch_flows_through_the_whole_network(name):
    net = models.create(name, seed=0)
    hw = EMPTY_SIZE.get(name, 64)
    x = np.zeros((0, net.input_size[0], hw, hw), np.float32)
    classes = 10 if name == "lenet5" else 1000
    y = net(x)
    assert y.shape == (0, classes) and y.dtype == np.float32
    with use(REFERENCE):
        assert net(x).shape == (0, classes)
    assert summary(net, x.shape).output_shape == (0, classes)


@pytest.mark.parametrize("name", [n if n not in BIG else pytest.param(n, marks=pytest.mark.slow) for n in COUNTS])
def test_parameter_count_and_summary(name):
    net = models.create(name, seed=0)
    assert net.num_parameters() == COUNTS[name]
    s = summary(net, (1,) + net.input_size)
    assert s.total_params == COUNTS[name]
    assert s.output_shape == (1, 10 if name == "lenet5" else 1000)
    if name in PUBLISHED_GMACS:
        assert s.total_macs / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.03)


def test_vgg16_counts_from_the_table_without_building_it():
    # the fast-suite check of VGG-16 (building it takes seconds): 13 convs and 3 FC layers from the table
    from cnn.models.vgg import CONFIGS, HIDDEN, POOL_OUT
    c, total = 3, 0
    for v in CONFIGS["vgg16"]:
        if v != "M":
            total, c = total + c * v * 9 + v, v
    n = c * POOL_OUT ** 2
    for h in HIDDEN + [1000]:
        total, n = total + n * h + h, h
    assert total == COUNTS["vgg16"]


@pytest.mark.parametrize("alpha, resolution, mparams, mmacs", [
    (1.0, 224, 4.2, 569), (0.75, 224, 2.6, 325), (0.5, 224, 1.3, 149),
    (1.0, 192, 4.2, 418), (1.0, 160, 4.2, 290), (1.0, 128, 4.2, 186),
])
def test_mobilenet_v1_width_and_resolution_multipliers(alpha, resolution, mparams, mmacs):
    # Table 6 and 7 of the MobileNet paper (millions of parameters, millions of mult-adds)
    net = models.mobilenet_v1(alpha=alpha, resolution=resolution, seed=0)
    s = summary(net, (1,) + net.input_size)
    assert net.input_size == (3, resolution, resolution)
    assert net.num_parameters() / 1e6 == pytest.approx(mparams, rel=0.03)
    assert s.total_macs / 1e6 == pytest.approx(mmacs, rel=0.03)


def randomize_batch_norm(net, seed):
    """Random running statistics and affine parameters, so the folded conv differs from the raw one."""
    rng = np.random.default_rng(seed)
    state = dict(net.state_dict())
    for k, v in state.items():
        if k.endswith("running_var"):
            state[k] = rng.uniform(0.5, 2.0, v.shape)
        elif k.endswith("running_mean"):
            state[k] = rng.normal(0.0, 0.2, v.shape)
        elif v.ndim == 1:  # BN gamma/beta and biases
            state[k] = rng.uniform(0.5, 1.5, v.shape) if ("bn" in k or k.endswith(".1.weight")) else \
                rng.normal(0.0, 0.1, v.shape)
    net.load_state_dict(state)
    return net


def check_against_reference(name, size, batch, tol=1e-4, **kw):
    net = randomize_batch_norm(models.create(name, seed=1, **kw), 2)
    x = np.random.default_rng(3).standard_normal((batch, net.input_size[0], size, size)).astype(np.float32)
    x0 = x.copy()
    y = net(x)
    with use(REFERENCE):
        ref = net(x)
    assert ref.dtype == np.float64 and y.dtype == np.float32
    assert np.array_equal(x, x0), "the forward pass modified its input"
    err = rel_error(y, ref)
    assert err < tol, f"{name}: rel error {err:.3g}"


@pytest.mark.parametrize("name, size, batch", [
    ("lenet5", 32, 2), ("resnet18", 48, 2), ("resnet50", 32, 1), ("googlenet", 64, 1),
    ("mobilenet_v1", 64, 1), ("mobilenet_v2", 64, 1), ("efficientnet_b0", 64, 1),
    pytest.param("alexnet", 227, 1, marks=pytest.mark.slow),
])
def test_forward_matches_reference(name, size, batch):
    check_against_reference(name, size, batch)


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [
    ("vgg16", 32), ("vgg19", 32), ("resnet34", 64), ("resnet101", 64), ("resnet152", 64),
    *((f"efficientnet_b{i}", 64) for i in range(1, 8)),
])
def test_forward_matches_reference_slow(name, size):
    check_against_reference(name, size, 1)


def test_alexnet_features_match_reference():
    # the whole of AlexNet (227x227 is fixed by its first FC layer) runs in the slow sweep; its
    # convolutions, LRN and pooling run here on a smaller image: 99 -> 23 -> 11 -> 11 -> 5 -> 5 -> 2
    net = models.alexnet(seed=1)
    x = np.random.default_rng(2).standard_normal((1, 3, 99, 99)).astype(np.float32)
    y = net.features(x)
    assert y.shape == (1, 256, 2, 2)
    with use(REFERENCE):
        ref = net.features(x)
    assert rel_error(y, ref) < 1e-4


def test_mobilenet_v1_half_width_forward():
    check_against_reference("mobilenet_v1", 64, 1, alpha=0.5)


def test_float64_network_matches_reference_tightly():
    net = randomize_batch_norm(models.resnet18(seed=4), 5).to(np.float64)
    x = np.random.default_rng(6).standard_normal((1, 3, 32, 32))
    with use(REFERENCE):
        ref = net(x)
    assert rel_error(net(x), ref) < 1e-10


def test_batch_of_one_image_equals_its_row_of_a_batch():
    net = models.mobilenet_v2(seed=7)
    x = np.random.default_rng(8).standard_normal((3, 3, 32, 32)).astype(np.float32)
    assert rel_error(net(x[1:2]), net(x)[1:2]) < 1e-6


# --- the torch.nn twins -------------------------------------------------------------------------
def _twin(name, **kw):
    pytest.importorskip("torch")
    from benchmarks import torch_models
    return torch_models.create(name, **kw)


def test_torchvision_named_state_dict_loads_into_resnet18_and_gives_torchs_output():
    torch = pytest.importorskip("torch")
    tnet = _twin("resnet18")
    torch.manual_seed(0)
    with torch.no_grad():   # random BN statistics so that the fold matters
        for m in tnet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    net = models.resnet18(seed=0)
    net.load_state_dict(tnet.state_dict())          # torch tensors, torchvision's names
    x = np.random.default_rng(1).standard_normal((2, 3, 48, 48)).astype(np.float32)
    with torch.no_grad():
        expected = tnet(torch.from_numpy(x)).numpy()
    assert rel_error(net(x), expected) < 1e-4


def _check_twin(name, size, **kw):
    torch = pytest.importorskip("torch")
    net = randomize_batch_norm(models.create(name, seed=1, **kw), 2)
    tnet = _twin(name, **kw)
    tnet.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in net.state_dict().items()})
    x = np.random.default_rng(3).standard_normal((1, net.input_size[0], size, size)).astype(np.float32)
    with torch.no_grad():
        expected = tnet(torch.from_numpy(x)).numpy()
    assert rel_error(net(x), expected) < 1e-4
    return net, tnet, x


@pytest.mark.parametrize("name, size", [("lenet5", 32), ("mobilenet_v2", 32), ("efficientnet_b0", 32),
                                        ("mobilenet_v1", 32)])
def test_state_dict_drives_the_torch_twin(name, size):
    _check_twin(name, size)


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("alexnet", 227), ("vgg16", 32), ("resnet50", 64), ("resnet152", 64),
                                        ("efficientnet_b4", 64)])
def test_state_dict_drives_the_torch_twin_slow(name, size):
    _check_twin(name, size)


def test_googlenet_auxiliary_heads_match_torch():
    torch = pytest.importorskip("torch")
    net, tnet, x = _check_twin("googlenet", 96, aux_logits=True)   # 6x6 at the taps: uneven 4x4 windows
    with torch.no_grad():
        expected = [t.numpy() for t in tnet.forward_all(torch.from_numpy(x))]
    for got, exp in zip(net.forward_all(x), expected):
        assert rel_error(got, exp) < 1e-4
    assert models.googlenet(aux_logits=True).num_parameters() == 13_004_888
