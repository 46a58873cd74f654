"""The Module and container API as torch.nn users expect it: traversal, eval/train, repr, Sequential and
ModuleList editing that the forward pass honours, replacing a network's head, and weights in and out
(state_dict copies, .npz and torch .pt files, torch state dicts both ways)."""
import sys
import warnings
from collections import OrderedDict

import numpy as np
import pytest

from cnn import layers as L
from cnn import models, summary
from cnn.layers import REFERENCE, use

from .conftest import rel_error

TOL32 = 1e-5


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def mlp():
    return L.Sequential(L.Linear(3, 4, rng=0), L.ReLU(), L.Linear(4, 2, rng=1))


def random_bn(c, seed):
    rng = np.random.default_rng(seed)
    bn = L.BatchNorm2d(c)
    return bn.load_state_dict({"weight": rng.uniform(0.5, 1.5, c), "bias": rng.normal(0, 0.5, c),
                               "running_mean": rng.normal(0, 0.5, c), "running_var": rng.uniform(0.3, 3, c),
                               "num_batches_tracked": np.array(0)})


# --- traversal -------------------------------------------------------------------------------------
def test_parameters_buffers_modules_children():
    net = L.Sequential(L.Conv2d(3, 4, 3, bias=False, rng=0), L.BatchNorm2d(4), L.ReLU(),
                       L.Sequential(L.Flatten(), L.Linear(4 * 36, 2, rng=1)))
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "1.weight", "1.bias", "3.1.weight", "3.1.bias"]
    assert [n for n, _ in net.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert sum(p.size for p in net.parameters()) == net.num_parameters() == 4 * 27 + 8 + 4 * 36 * 2 + 2
    assert all(a is net.state_dict()[n] for n, a in net.named_parameters())
    assert len(list(net.buffers())) == 3
    assert [n for n, _ in net.named_modules()] == ["", "0", "1", "2", "3", "3.0", "3.1"]
    assert [type(m).__name__ for m in net.modules()] == ["Sequential", "Conv2d", "BatchNorm2d", "ReLU",
                                                         "Sequential", "Flatten", "Linear"]
    assert [n for n, _ in net.named_children()] == ["0", "1", "2", "3"]
    assert list(net.children()) == [net[0], net[1], net[2], net[3]]
    assert [n for n, _ in net[3].named_parameters(prefix="head")] == ["head.1.weight", "head.1.bias"]


def test_traversal_matches_torch_with_a_shared_module():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    shared, tshared = L.Linear(4, 4, rng=0), nn.Linear(4, 4)
    ours = L.Sequential(shared, L.ReLU(), shared)
    theirs = nn.Sequential(tshared, nn.ReLU(), tshared)
    assert list(ours.state_dict()) == list(theirs.state_dict())               # listed under both names
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]   # once
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters()) == 20


def test_resnet_parameter_and_buffer_names_are_torchs():
    pytest.importorskip("torch")
    from benchmarks import torch_models
    net, tnet = models.resnet18(seed=0), torch_models.create("resnet18")
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in tnet.named_parameters()]
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in tnet.named_buffers()]


def test_eval_and_train_are_flags_that_change_nothing():
    net = L.Sequential(L.Conv2d(3, 4, 3, bias=False, rng=0), random_bn(4, 1), L.ReLU(), L.Dropout(0.5))
    assert not net.training and not net[1].training           # inference library: eval mode from the start
    x = rnd(2, 3, 6, 6)
    y = net(x)
    with pytest.warns(UserWarning, match="inference only"):
        assert net.train() is net
    assert all(m.training for m in net.modules())
    assert np.array_equal(net(x), y)                          # dropout stays the identity, BN uses running stats
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert net.eval() is net
    assert not any(m.training for m in net.modules())
    with pytest.raises(TypeError, match="mode"):
        net.train("yes")


def test_repr_is_torchs():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    theirs = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, 2, groups=4, dilation=2), nn.AvgPool2d(3, 2, 1), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 10), nn.Softmax(dim=1), nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0),
        nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.Tanh()))
    ours = L.Sequential(
        L.Conv2d(3, 16, 3, padding=1, bias=False), L.BatchNorm2d(16), L.ReLU(inplace=True), L.MaxPool2d(2),
        L.Conv2d(16, 16, 3, 2, groups=4, dilation=2), L.AvgPool2d(3, 2, 1), L.AdaptiveAvgPool2d(1),
        L.Flatten(), L.Dropout(0.2), L.Linear(16, 10), L.Softmax(dim=1), L.LocalResponseNorm(5, 5e-4, 0.75, 2.0),
        L.Sequential(L.Conv2d(3, 4, 3, padding="same"), L.Tanh()))
    assert repr(ours) == repr(theirs)


# --- Sequential and ModuleList --------------------------------------------------------------------
def test_sequential_indexing_slicing_and_iteration():
    seq = mlp()
    assert len(seq) == 3 and seq[-1] is seq[2] and list(seq) == [seq[0], seq[1], seq[2]]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    with pytest.raises(TypeError, match="ints or slices"):
        seq["0"]
    tail = seq[1:]
    assert isinstance(tail, L.Sequential) and list(tail) == [seq[1], seq[2]]
    assert list(tail.state_dict()) == ["2.weight", "2.bias"]                 # names kept, as in torch
    x = rnd(5, 3)
    assert np.array_equal(tail(seq[0](x)), seq(x))


def test_item_and_attribute_assignment_are_honoured_by_the_forward_pass():
    seq = mlp()
    x = rnd(5, 3)
    seq(x)                                                       # the old layers ran once
    seq[2] = L.Linear(4, 7, rng=2)
    assert seq(x).shape == (5, 7) and list(seq.state_dict())[-1] == "2.bias"
    setattr(seq, "0", L.Linear(3, 4, rng=9))
    expected = seq[2](np.maximum(seq[0](x), 0))
    assert rel_error(seq(x), expected) < TOL32
    with pytest.raises(TypeError, match="Modules"):
        seq[0] = np.zeros(3)


def test_append_insert_delete_renumber_as_torch():
    seq = mlp().append(L.ReLU())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"] and seq(rnd(2, 3)).min() >= 0
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    seq.insert(1, L.Tanh())
    assert [type(m).__name__ for m in seq] == ["Linear", "Tanh", "Linear", "ReLU"]
    x = rnd(4, 3)
    assert rel_error(seq(x), np.maximum(seq[2](np.tanh(seq[0](x))), 0)) < TOL32
    del seq[2:]
    assert len(seq) == 2
    seq.extend([L.Linear(4, 1, rng=3)])
    assert seq(x).shape == (4, 1)


def test_the_conv_bn_fusion_follows_edits():
    seq = L.Sequential(L.Conv2d(3, 4, 3, bias=False, rng=0), random_bn(4, 1), L.ReLU())
    x = rnd(2, 3, 7, 7)
    seq(x)
    seq[1] = random_bn(4, 2)                   # a new BN: folded anew
    with use(REFERENCE):
        ref = seq(x)
    assert rel_error(seq(x), ref) < TOL32
    del seq[1]                                 # conv -> relu
    assert rel_error(seq(x), np.maximum(seq[0](x), 0)) < TOL32


def test_named_sequential_from_an_ordered_dict():
    seq = L.Sequential(OrderedDict([("conv", L.Conv2d(3, 4, 1, rng=0)), ("act", L.ReLU())]))
    assert list(seq.state_dict()) == ["conv.weight", "conv.bias"] and seq[0] is seq.conv
    seq.append(L.Flatten())
    assert [n for n, _ in seq.named_children()] == ["conv", "act", "2"]
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["conv", "2"]              # user names are kept
    with pytest.raises(ValueError, match="names"):
        L.Sequential({"a.b": L.ReLU()})


def test_module_list_holds_modules_for_a_forward_pass_of_ones_own():
    class Stack(L.Module):
        def __init__(self):
            self.blocks = L.ModuleList([L.Linear(3, 3, rng=i) for i in range(3)])

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return x
    net = Stack()
    assert list(net.state_dict())[:2] == ["blocks.0.weight", "blocks.0.bias"] and len(net.blocks) == 3
    x = rnd(2, 3)
    assert rel_error(net(x), net.blocks[2](net.blocks[1](net.blocks[0](x)))) < TOL32
    assert isinstance(net.blocks[:2], L.ModuleList) and len(net.blocks[:2]) == 2
    s = summary(net, (2, 3))
    assert [r.name for r in s.rows] == ["blocks.0", "blocks.1", "blocks.2"] and s.total_macs == 3 * 2 * 3 * 3
    with pytest.raises(NotImplementedError):
        net.blocks(x)


def test_concat_runs_the_branches_it_holds_now():
    cat = L.Concat(L.Conv2d(3, 2, 1, rng=0), L.MaxPool2d(3, 1, 1))
    x = rnd(1, 3, 4, 4)
    cat(x)
    cat.add_module("2", L.Conv2d(3, 5, 1, rng=1))
    assert cat(x).shape == (1, 10, 4, 4)
    with pytest.raises(TypeError, match="Module"):
        cat.add_module("3", np.zeros(2))
    with pytest.raises(ValueError, match="without '.'"):
        cat.add_module("a.b", L.ReLU())


def test_replace_the_head_of_a_zoo_network():
    net = models.lenet5(seed=0)
    x = rnd(3, 1, 32, 32)
    features = net.classifier[:-1](net.flatten(net.features(x)))
    net.classifier[-1] = L.Linear(84, 2, rng=5)                 # the transfer-learning idiom
    y = net(x)
    assert y.shape == (3, 2) and rel_error(y, net.classifier[-1](features)) < TOL32
    assert summary(net, (1, 1, 32, 32)).output_shape == (1, 2)
    res = models.resnet18(seed=0)
    res.fc = L.Linear(512, 10, rng=1)
    assert res(rnd(1, 3, 32, 32)).shape == (1, 10) and list(res.state_dict())[-1] == "fc.bias"


# --- weights in and out ------------------------------------------------------------------------------
def small_net(seed=0):
    net = L.Sequential(L.Conv2d(3, 4, 3, bias=False, rng=seed), L.BatchNorm2d(4), L.ReLU(inplace=True),
                       L.GlobalAvgPool2d(), L.Flatten(), L.Linear(4, 2, rng=seed + 1))
    rng = np.random.default_rng(seed)
    return net.load_state_dict({k: rng.uniform(0.5, 1.5, v.shape) if v.dtype.kind == "f" else v
                                for k, v in net.state_dict().items()})


def test_state_dict_copies_are_writable_and_detached():
    net = small_net()
    own, copies = net.state_dict(), net.state_dict(copy=True)
    assert all(not a.flags.writeable for a in own.values())
    assert all(c.flags.writeable and c is not own[k] and np.array_equal(c, own[k]) for k, c in copies.items())
    copies["5.bias"][:] = 7.0
    assert not np.any(net.state_dict()["5.bias"] == 7.0)
    net.load_state_dict(copies)                           # edit, then load back
    assert np.all(net.state_dict()["5.bias"] == 7.0)


def test_weights_move_to_torch_and_back_in_one_line():
    torch = pytest.importorskip("torch")
    from benchmarks import torch_models
    net = models.lenet5(seed=3)
    tnet = torch_models.create("lenet5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # torch.from_numpy warns on read-only arrays
        tnet.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict(copy=True).items()})
    x = rnd(2, 1, 32, 32)
    with torch.no_grad():
        assert rel_error(net(x), tnet(torch.from_numpy(x)).numpy()) < 1e-5
        for p in tnet.parameters():
            p.mul_(0.5)
    back = models.lenet5(seed=4).load_state_dict(tnet.state_dict())           # torch tensors load as they are
    with torch.no_grad():
        assert rel_error(back(x), tnet(torch.from_numpy(x)).numpy()) < 1e-5


@pytest.mark.parametrize("name, written", [("w", "w.npz"), ("w.npz", "w.npz"), ("w.bin", "w.bin.npz")])
def test_save_and_load_share_one_naming_rule(tmp_path, monkeypatch, name, written):
    monkeypatch.chdir(tmp_path)
    a, b = small_net(0), small_net(5)
    assert a.save(name) == written and (tmp_path / written).exists()
    x = rnd(1, 3, 6, 6)
    assert np.array_equal(b.load(name)(x), a(x))
    assert np.array_equal(small_net(6).load(tmp_path / written)(x), a(x))


def test_load_of_a_missing_file_says_the_rule(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"add \.npz"):
        small_net().load(tmp_path / "nothing")


def test_torch_pt_files_in_and_out(tmp_path):
    torch = pytest.importorskip("torch")
    from benchmarks import torch_models
    tnet = torch_models.create("lenet5")
    torch.save(tnet.state_dict(), tmp_path / "lenet.pth")
    net = models.lenet5(seed=0).load(tmp_path / "lenet.pth")
    x = rnd(2, 1, 32, 32)
    with torch.no_grad():
        assert rel_error(net(x), tnet(torch.from_numpy(x)).numpy()) < 1e-5
    assert net.save(tmp_path / "ours.pt") == str(tmp_path / "ours.pt")
    state = torch.load(tmp_path / "ours.pt", weights_only=True)
    assert list(state) == list(net.state_dict()) and all(isinstance(v, torch.Tensor) for v in state.values())
    torch.save({"epoch": 3, "state_dict": tnet.state_dict()}, tmp_path / "ckpt.pt")   # a training checkpoint
    assert np.array_equal(models.lenet5(seed=1).load(tmp_path / "ckpt.pt")(x), net(x))


def test_torch_files_that_hold_no_state_dict_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    from benchmarks import torch_models
    torch.save(torch_models.create("lenet5"), tmp_path / "model.pt")        # a whole pickled model
    with pytest.raises(ValueError, match=r"torch.save\(model.state_dict\(\), path\)"):
        models.lenet5().load(tmp_path / "model.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        models.lenet5().load(tmp_path / "list.pt")


def test_torch_files_without_torch_fail_clearly(tmp_path, monkeypatch):
    (tmp_path / "w.pt").write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "torch", None)                         # import torch fails
    with pytest.raises(ImportError, match="needs torch"):
        small_net().load(tmp_path / "w.pt")
    with pytest.raises(ImportError, match="needs torch"):
        small_net().save(tmp_path / "out.pt")
    small_net().save(tmp_path / "fine")                                      # .npz needs no torch


def test_load_state_dict_takes_a_dict():
    with pytest.raises(TypeError, match="dict of arrays"):
        small_net().load_state_dict([np.zeros(2)])


# --- writing a Module: the idioms of README's recipe ---------------------------------------------
def test_a_module_may_call_super_init_and_take_several_inputs():
    class Merge(L.Module):
        def forward(self, x, skip, *, scale=1.0):
            return x + scale * skip

    class Net(L.Module):
        def __init__(self):
            super().__init__()                             # optional, as torch users write it
            self.conv = L.Conv2d(3, 3, 3, padding=1, rng=0)
            self.merge = Merge()

        def forward(self, x):
            return self.merge(self.conv(x), x, scale=0.5)
    net = Net()
    x = rnd(1, 3, 5, 5)
    assert rel_error(net(x), net.conv(x) + 0.5 * x) < TOL32
    s = summary(net, x.shape)
    assert [(r.name, r.output_shape) for r in s.rows] == [("conv", (1, 3, 5, 5)), ("merge", (1, 3, 5, 5))]


def test_conv_bn_act_in_a_forward_pass_is_one_kernel_call():
    from cnn.layers.ops import FastOps

    class Counting(FastOps):
        def __init__(self):
            self.convs = 0

        def conv2d(self, *a, **kw):
            self.convs += 1
            return super().conv2d(*a, **kw)

    class Block(L.Module):
        def __init__(self):
            self.conv, self.bn, self.act = L.Conv2d(3, 4, 3, bias=False, rng=0), random_bn(4, 1), L.ReLU()

        def forward(self, x):
            return L.conv_bn_act(x, self.conv, self.bn, self.act)
    block, x = Block(), rnd(2, 3, 6, 6)
    with use(Counting()) as ops:
        y = block(x)
    assert ops.convs == 1
    with use(REFERENCE):
        assert rel_error(y, block(x)) < TOL32
