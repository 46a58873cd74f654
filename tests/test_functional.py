"""cnn.functional and Python operators on activations: the same result on the fast ops and on the
float64 reference, the right shape under the shape pass (Spec), and torch.nn.functional's values."""
import numpy as np
import pytest

import cnn.functional as F
from cnn import layers as L
from cnn import summary
from cnn.layers import REFERENCE, ShapeOps, Spec, use

from .conftest import rel_error

TOL32 = 1e-5


def rnd(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


X = rnd(2, 6, 9, 8, scale=2.0)
W = rnd(4, 6, 3, 3, seed=1)
W1 = rnd(5, 6, seed=2)
B = rnd(4, seed=3)
M, V = rnd(6, seed=4), np.abs(rnd(6, seed=5)) + 0.5
G, BE = rnd(6, seed=6), rnd(6, seed=7)

# (id, our call, torch's call on float64 tensors)
CASES = [
    ("conv2d", lambda f, x: f.conv2d(x, W, B, 2, 1), lambda T, t, n: T.conv2d(t, n(W), n(B), 2, 1)),
    ("conv2d_same", lambda f, x: f.conv2d(x, W, None, padding="same", dilation=2),
     lambda T, t, n: T.conv2d(t, n(W), None, padding="same", dilation=2)),
    ("conv2d_groups", lambda f, x: f.conv2d(x, W[:, :3], None, groups=2), lambda T, t, n: T.conv2d(t, n(W[:, :3]), groups=2)),
    ("linear", lambda f, x: f.linear(f.flatten(f.adaptive_avg_pool2d(x, 1), 1), W1),
     lambda T, t, n: T.linear(T.adaptive_avg_pool2d(t, 1).flatten(1), n(W1))),
    ("batch_norm", lambda f, x: f.batch_norm(x, M, V, G, BE, eps=1e-3),
     lambda T, t, n: T.batch_norm(t, n(M), n(V), n(G), n(BE), eps=1e-3)),
    ("max_pool2d", lambda f, x: f.max_pool2d(x, 3, 2, 1, ceil_mode=True),
     lambda T, t, n: T.max_pool2d(t, 3, 2, 1, ceil_mode=True)),
    ("avg_pool2d", lambda f, x: f.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
     lambda T, t, n: T.avg_pool2d(t, 3, 2, 1, count_include_pad=False)),
    ("adaptive_avg_pool2d", lambda f, x: f.adaptive_avg_pool2d(x, (2, 3)), lambda T, t, n: T.adaptive_avg_pool2d(t, (2, 3))),
    ("local_response_norm", lambda f, x: f.local_response_norm(x, 3, 1e-3, 0.75, 2.0),
     lambda T, t, n: T.local_response_norm(t, 3, 1e-3, 0.75, 2.0)),
    ("relu", lambda f, x: f.relu(x), lambda T, t, n: T.relu(t)),
    ("relu6", lambda f, x: f.relu6(x), lambda T, t, n: T.relu6(t)),
    ("sigmoid", lambda f, x: f.sigmoid(x), lambda T, t, n: T.sigmoid(t)),
    ("tanh", lambda f, x: f.tanh(x), lambda T, t, n: T.tanh(t)),
    ("silu", lambda f, x: f.silu(x), lambda T, t, n: T.silu(t)),
    ("softmax", lambda f, x: f.softmax(x, 1), lambda T, t, n: T.softmax(t, 1)),
    ("dropout", lambda f, x: f.dropout(x, 0.3), lambda T, t, n: T.dropout(t, 0.3, training=False)),
    ("add", lambda f, x: f.add(x, x[:, :1]), lambda T, t, n: t + t[:, :1]),
    ("mul", lambda f, x: f.mul(x, f.adaptive_avg_pool2d(x, 1)), lambda T, t, n: t * T.adaptive_avg_pool2d(t, 1)),
    ("cat", lambda f, x: f.cat([x, f.relu(x)], dim=1), lambda T, t, n: __import__("torch").cat([t, T.relu(t)], 1)),
    ("flatten", lambda f, x: f.flatten(x, 1, 2), lambda T, t, n: t.flatten(1, 2)),
    ("operators", lambda f, x: (x * 0.5 + x[:, :1] - 1.0) / (f.relu(x) + 2.0) - (-x),
     lambda T, t, n: (t * 0.5 + t[:, :1] - 1.0) / (T.relu(t) + 2.0) + t),
    ("methods", lambda f, x: x.mean(axis=(2, 3), keepdims=True) * x[:, 1:4, ::2].sum(axis=1, keepdims=True).mean(),
     lambda T, t, n: t.mean((2, 3), keepdim=True) * t[:, 1:4, ::2].sum(1, keepdim=True).mean()),
]


class Forward(L.Module):
    """A module whose forward pass is the call under test (as a user's module would hold it)."""

    def __init__(self, fn):
        self.fn = fn

    def forward(self, x):
        return self.fn(F, x)


@pytest.mark.parametrize("ours, theirs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fast_reference_shape_pass_and_torch_agree(ours, theirs):
    x0 = X.copy()
    module = Forward(ours)
    y = module(X)
    assert np.array_equal(X, x0), "the op modified its input"
    assert y.dtype == np.float32
    with use(REFERENCE):
        ref = module(X)
    assert ref.dtype == np.float64 and rel_error(y, ref) < TOL32
    with use(ShapeOps()):
        spec = module(Spec(X.shape))
    assert isinstance(spec, Spec) and spec.shape == y.shape and spec.dtype == np.float32
    torch = pytest.importorskip("torch")
    expected = theirs(torch.nn.functional, torch.from_numpy(X).double(), lambda a: torch.from_numpy(a).double())
    assert rel_error(ref, expected.numpy()) < 1e-12


def test_inplace_activations_write_into_their_input_and_dropout_is_the_identity():
    x = X.copy()
    assert F.relu(x, inplace=True) is x and x.min() >= 0
    assert F.relu(X) is not X
    assert F.dropout(X, 0.5) is X


def test_spec_arithmetic_follows_numpy():
    a = Spec((2, 3, 4, 4))
    assert (a + Spec((1, 3, 1, 1))).shape == (2, 3, 4, 4)
    assert (np.float32(2) * a).shape == a.shape and (np.ones((4,), np.float32) + a).shape == a.shape
    assert (a * np.ones((3, 1, 1))).dtype == np.float64                       # numpy's promotion
    assert (a / 2.0).dtype == np.float32 and (1 - a).shape == a.shape and (-a).shape == a.shape
    assert a[:, :2].shape == (2, 2, 4, 4) and a[0].shape == (3, 4, 4) and a[..., ::2].shape == (2, 3, 4, 2)
    assert a.reshape(2, -1).shape == (2, 48) and a.reshape((6, 16)).shape == (6, 16)
    assert a.mean((2, 3)).shape == (2, 3) and a.sum(1, keepdims=True).shape == (2, 1, 4, 4)
    assert Spec((0, 8, 1, 1)).reshape(0, 8).shape == (0, 8)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\) and \(5,\) do not broadcast"):
        a + Spec((5,))
    with pytest.raises(ValueError, match="cannot reshape"):
        a.reshape(5, -1)
    with pytest.raises(ValueError, match="out of range"):
        a.mean(4)


def test_a_module_with_operators_runs_under_all_three_op_sets():
    class Block(L.Module):
        PARAMS = ("scale",)                           # an array of its own, in the state dict

        def __init__(self):
            self.conv = L.Conv2d(6, 6, 3, padding=1, rng=0)
            self.scale = np.full((1, 6, 1, 1), 0.5, dtype=np.float32)

        def forward(self, x):
            return F.relu(self.conv(x) * self.scale + x)
    block = Block()
    assert list(block.state_dict()) == ["scale", "conv.weight", "conv.bias"]
    y = block(X)
    with use(REFERENCE):
        ref = block(X)
    expected = np.maximum(block.conv(X).astype(np.float64) * 0.5 + X, 0)
    assert rel_error(y, expected) < TOL32 and rel_error(ref, expected) < TOL32
    s = summary(block, X.shape)
    assert [(r.name, r.params) for r in s.rows] == [("Block", 6), ("conv", 6 * 6 * 9 + 6)]
    assert s.total_params == 6 + 6 * 6 * 9 + 6 and s.total_macs == 2 * 6 * 9 * 8 * 6 * 9


def test_functional_calls_in_a_forward_pass_are_counted_by_summary():
    class Own(L.Module):
        PARAMS = ("weight",)

        def __init__(self):
            self.weight = W

        def forward(self, x):
            return F.conv2d(x, self.weight, padding=1)
    s = summary(Own(), X.shape)
    assert len(s.rows) == 1 and s.rows[0].macs == 2 * 4 * 9 * 8 * 6 * 9 == s.total_macs
    assert s.rows[0].output_shape == (2, 4, 9, 8) and s.rows[0].params == W.size


@pytest.mark.parametrize("call, exc, match", [
    (lambda: F.conv2d(X, W, padding="SAME"), ValueError, "lower case"),
    (lambda: F.conv2d(X, W, stride=2, padding="same"), ValueError, "stride 1"),
    (lambda: F.conv2d(X, W, stride=0), ValueError, "stride"),
    (lambda: F.linear(X, W1), ValueError, r"\(\.\.\., 6\)"),
    (lambda: F.batch_norm(X, M, V, G, BE, training=True), ValueError, "inference only"),
    (lambda: F.dropout(X, 1.5), ValueError, "p must be <= 1"),
    (lambda: F.dropout(X, training=True), ValueError, "inference only"),
    (lambda: F.max_pool2d(X, 2, padding=2), ValueError, "half the kernel"),
    (lambda: F.cat([]), ValueError, "at least one"),
    (lambda: F.relu([1.0, 2.0]), TypeError, "numpy or cupy array, got list"),
    (lambda: F.softmax(X, 1.0), TypeError, "dim"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_torch_tensors_get_a_hint():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"\.numpy\(\)"):
        F.relu(torch.zeros(2))
    with pytest.raises(TypeError, match=r"\.numpy\(\)"):
        F.cat([X, torch.from_numpy(X)])


class FakeCupy:
    """Looks like a cupy array to the device checks (no GPU here)."""
    __module__ = "cupy._core.core"

    def __init__(self, shape, dtype=np.float32):
        self.shape, self.dtype, self.ndim = shape, np.dtype(dtype), len(shape)


def test_numpy_and_cupy_mixed_get_a_hint():
    with pytest.raises(TypeError, match="numpy .CPU. and cupy .GPU. arrays mixed"):
        F.add(X, FakeCupy(X.shape))
    with pytest.raises(TypeError, match="mixed"):
        F.conv2d(FakeCupy(X.shape), W)
