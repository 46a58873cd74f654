"""A user's own blocks, written as torch.nn users write them: a residual block (Python +), an
inception-style block (F.cat over branches) and a squeeze-and-excitation block (mean, reshape, Linear,
*). Each gives a torch.nn twin's output with the same weights (1e-5 relative in float32, 1e-12 on the
float64 reference) and a cnn.summary whose parameters and MACs are counted by hand here."""
import numpy as np
import pytest

import cnn.functional as F
from cnn import summary
from cnn.layers import REFERENCE, BatchNorm2d, Conv2d, Linear, MaxPool2d, Module, ReLU, Sequential, use

from .conftest import rel_error

torch = pytest.importorskip("torch")
nn = torch.nn


class Residual(Module):
    def __init__(self, c):
        self.conv1 = Conv2d(c, c, 3, padding=1, bias=False, rng=1)
        self.bn1 = BatchNorm2d(c)
        self.relu = ReLU()
        self.conv2 = Conv2d(c, c, 3, padding=1, bias=False, rng=2)
        self.bn2 = BatchNorm2d(c)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class TorchResidual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class Mixed(Module):
    """Inception-style: 1x1 | 1x1 -> 3x3 | 3x3 max-pool -> 1x1, concatenated along the channels."""

    def __init__(self, cin):
        self.branch1 = Conv2d(cin, 8, 1, rng=1)
        self.branch2 = Sequential(Conv2d(cin, 4, 1, rng=2), ReLU(inplace=True), Conv2d(4, 6, 3, padding=1, rng=3))
        self.pool = MaxPool2d(3, 1, 1)
        self.branch3 = Conv2d(cin, 2, 1, rng=4)

    def forward(self, x):
        return F.relu(F.cat([self.branch1(x), self.branch2(x), self.branch3(self.pool(x))], dim=1))


class TorchMixed(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch1 = nn.Conv2d(cin, 8, 1)
        self.branch2 = nn.Sequential(nn.Conv2d(cin, 4, 1), nn.ReLU(inplace=True), nn.Conv2d(4, 6, 3, padding=1))
        self.pool = nn.MaxPool2d(3, 1, 1)
        self.branch3 = nn.Conv2d(cin, 2, 1)

    def forward(self, x):
        return torch.relu(torch.cat([self.branch1(x), self.branch2(x), self.branch3(self.pool(x))], 1))


class SE(Module):
    """Squeeze-and-excitation as in the SENet paper: channel means, FC c -> c/r, ReLU, FC -> c, sigmoid,
    and the input scaled channel by channel."""

    def __init__(self, c, r):
        self.fc1 = Linear(c, c // r, rng=1)
        self.fc2 = Linear(c // r, c, rng=2)

    def forward(self, x):
        n, c = x.shape[0], x.shape[1]
        s = x.mean(axis=(2, 3))
        s = F.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s.reshape(n, c, 1, 1)


class TorchSE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.fc1 = nn.Linear(c, c // r)
        self.fc2 = nn.Linear(c // r, c)

    def forward(self, x):
        n, c = x.shape[:2]
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        return x * s.reshape(n, c, 1, 1)


def randomize(module, seed):
    """Random weights, biases and batch-norm statistics (the variances positive)."""
    rng = np.random.default_rng(seed)
    state = {k: (rng.uniform(0.5, 2.0, v.shape) if k.endswith("running_var") else rng.normal(0, 0.5, v.shape))
             if v.dtype.kind == "f" else v for k, v in module.state_dict().items()}
    return module.load_state_dict(state)


def check_twin(ours, theirs, x):
    randomize(ours, 0)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict(copy=True).items()})
    theirs.eval()
    with torch.no_grad():
        expected = theirs.double()(torch.from_numpy(x).double()).numpy()
    assert rel_error(ours(x), expected) < 1e-5
    with use(REFERENCE):
        assert rel_error(ours(x), expected) < 1e-12
    return summary(ours, x.shape)


X = np.random.default_rng(9).standard_normal((2, 16, 10, 12)).astype(np.float32)
N, C, H, W = X.shape


def test_residual_block():
    s = check_twin(Residual(C), TorchResidual(C), X)
    conv_params, bn_params = C * C * 9, 2 * C
    assert s.total_params == 2 * conv_params + 2 * bn_params
    assert [(r.name, r.params) for r in s.rows] == [("conv1", conv_params), ("bn1", bn_params), ("relu", 0),
                                                    ("conv2", conv_params), ("bn2", bn_params), ("relu", 0)]
    assert s.total_macs == 2 * N * C * H * W * C * 9 and s.output_shape == X.shape


def test_inception_style_concat_block():
    s = check_twin(Mixed(C), TorchMixed(C), X)
    params = (C * 8 + 8) + (C * 4 + 4) + (4 * 6 * 9 + 6) + (C * 2 + 2)
    assert s.total_params == params
    pixels = N * H * W
    assert s.total_macs == pixels * (8 * C + 4 * C + 6 * 4 * 9 + 2 * C)
    assert s.output_shape == (N, 8 + 6 + 2, H, W)
    assert [r.name for r in s.rows] == ["branch1", "branch2.0", "branch2.1", "branch2.2", "pool", "branch3"]


def test_squeeze_and_excitation_block():
    r = 4
    s = check_twin(SE(C, r), TorchSE(C, r), X)
    assert s.total_params == (C * (C // r) + C // r) + ((C // r) * C + C)
    assert s.total_macs == N * C * (C // r) * 2 and s.output_shape == X.shape
    assert [(row.name, row.output_shape) for row in s.rows] == [("fc1", (N, C // r)), ("fc2", (N, C))]


def test_the_blocks_compose_and_run_on_an_empty_batch():
    net = Sequential(Residual(C), Mixed(C), SE(16, 4))
    y = net(X)
    assert y.shape == X.shape
    assert net(X[:0]).shape == (0, 16, H, W)
    assert summary(net, (0, C, H, W)).output_shape == (0, 16, H, W)
