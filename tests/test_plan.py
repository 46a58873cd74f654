"""The inference plan (cnn/plan): every zoo network and user-built ones with odd channel counts equal
their float64 reference evaluation, bit for bit across thread counts; invalidation, threads, fallbacks
and the arena."""
import threading
import tracemalloc

import numpy as np
import pytest

import cnn
import kernels
from cnn import functional as F
from cnn import layers as L
from cnn import models
from cnn.layers.ops import REFERENCE, use

from .conftest import rel_error
from .test_models import randomize_batch_norm

ZOO = [("lenet5", 32, 2), ("alexnet", 99, 1), ("vgg16", 32, 1), ("resnet18", 48, 2), ("resnet34", 40, 1),
       ("resnet50", 32, 2), ("googlenet", 64, 1), ("mobilenet_v1", 64, 1), ("mobilenet_v2", 64, 2),
       ("efficientnet_b0", 64, 1)]
SLOW_ZOO = [("vgg19", 32, 1), ("resnet101", 40, 1), ("resnet152", 40, 1),
            *((f"efficientnet_b{i}", 48, 1) for i in range(1, 8))]


def _input(shape, seed=3):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check(net, x, tol=1e-4):
    plan = net.prepare(x.shape)
    y = plan(x)
    with use(REFERENCE):
        ref = net(x)
    assert y.shape == ref.shape and y.dtype == np.float32
    err = rel_error(y, ref)
    assert err < tol, f"rel error {err:.3g}"
    return plan, y


def _same_bits_for_threads(net, x, y):
    """net's plan gives exactly y for 1, 2 and 5 threads."""
    old = kernels.get_num_threads()
    try:
        for n in (1, 2, 5):
            kernels.set_num_threads(n)
            assert np.array_equal(cnn.compile(net, x.shape)(x), y)
    finally:
        kernels.set_num_threads(old)


def _zoo_net(name, size):
    if name == "alexnet":      # the paper's variant at a size its classifier takes: the torchvision one
        return randomize_batch_norm(models.create("alexnet", variant="torchvision", seed=1), 2)
    return randomize_batch_norm(models.create(name, seed=1), 2)


@pytest.mark.parametrize("name, size, batch", ZOO)
def test_zoo_plan_matches_reference(name, size, batch):
    net = _zoo_net(name, size)
    x = _input((batch, net.input_size[0], size, size))
    plan, y = _check(net, x)
    assert np.array_equal(net(x), y), "net(x) runs the same plan"
    assert plan.arena_bytes > 0


@pytest.mark.slow
@pytest.mark.parametrize("name, size, batch", SLOW_ZOO)
def test_zoo_plan_matches_reference_slow(name, size, batch):
    net = _zoo_net(name, size)
    _check(net, _input((batch, net.input_size[0], size, size)))


@pytest.mark.parametrize("name, size", [("resnet18", 40), ("mobilenet_v2", 48), ("efficientnet_b0", 48),
                                        ("googlenet", 64)])
def test_plan_is_bit_identical_for_1_2_5_threads(name, size):
    net = _zoo_net(name, size)
    x = _input((2, 3, size, size))
    old = kernels.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 5):
            kernels.set_num_threads(n)
            outs.append(net.prepare(x.shape)(x))
    finally:
        kernels.set_num_threads(old)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("batch, size", [(1, 64), (2, 128)])
def test_squeeze_excitation_pool_reads_the_depthwise_row_sums(batch, size, monkeypatch):
    """Each squeeze-and-excitation block's global pool reads the row sums its depthwise step leaves
    (Program.row_sums), inside the image-by-image segments too (batch 2 at 128x128 has SE blocks in
    them); the result is the reference's and matches the plan that pools the whole output again."""
    from cnn.plan import program
    net = _zoo_net("efficientnet_b0", size)
    x = _input((batch, 3, size, size))
    plan, y = _check(net, x)
    assert len(plan.program.row_sums) == 16
    in_segments = [t for a, b in plan.program.segments for t in range(a, b) if plan.nodes[t].op == "gap"]
    assert bool(in_segments) == (batch > 1)
    monkeypatch.setattr(program.Program, "_row_sums", lambda self: {})
    unfused = cnn.compile(_zoo_net("efficientnet_b0", size), x.shape)
    assert not unfused.program.row_sums
    np.testing.assert_allclose(unfused(x), y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch, size", [(1, 64), (2, 128)])
def test_squeeze_excitation_scale_folds_into_the_projection(batch, size, monkeypatch, fma_plans):
    """Where a projection's weights per image are no larger than the activation its SE block scales
    (the early blocks), no scale step is left: the projection scales a per-image copy of its weights
    instead (lower.fold_scales), inside image-by-image segments too (batch 2 at 128x128). The result is
    the reference's, the same bits for 1, 2 and 5 threads, and that of the plan which scales the
    activation."""
    import importlib
    from kernels import blocked as B
    lower = importlib.import_module("cnn.plan.lower")       # the module (cnn.plan.lower is its function)
    net = _zoo_net("efficientnet_b0", size)
    x = _input((batch, 3, size, size))
    plan, y = _check(net, x)
    folded = [t for t, n in enumerate(plan.nodes) if n.op == "conv" and "scale" in n.attrs]
    left = [n for n in plan.nodes if n.op == "scale"]
    assert folded and len(folded) + len(left) == 16
    for t in folded:
        g = plan.nodes[t].attrs["g"]
        assert (g.R, g.S, g.sh) == (1, 1, 1) and B.blocks(g.K) * B.BLOCK <= g.H * g.W
    in_segments = {t for a, b in plan.program.segments for t in range(a, b)} & set(folded)
    assert bool(in_segments) == (batch > 1)
    _same_bits_for_threads(net, x, y)
    monkeypatch.setattr(lower, "fold_scales", lambda graph: None)
    unfolded = cnn.compile(_zoo_net("efficientnet_b0", size), x.shape)
    assert sum(n.op == "scale" for n in unfolded.nodes) == 16
    np.testing.assert_allclose(unfolded(x), y, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not kernels.cpu_info()["amx"], reason="no AMX tiles here (CPU, OS or ISA variant)")
@pytest.mark.parametrize("batch", [1, 2])
def test_dense_layers_run_on_amx_tiles_where_the_cpu_has_them(batch, monkeypatch):
    """Every dense conv on blocked input with more than 16 channels on each side runs on AMX tiles (a
    stem reading NCHW only with enough channels and taps: EfficientNet's 3x3 to 32 keeps FMAs,
    ResNet's 7x7 to 64 takes the tiles), and
    every squeeze-and-excitation scale folds into the conversion of the projection that reads it. The
    result is the reference's, the same bits for 1, 2 and 5 threads; CONVFORGE_AMX=0 keeps the float32
    FMA kernels, whose result it matches to float32's tolerance."""
    from kernels import amx as A
    net = _zoo_net("efficientnet_b0", 64)
    x = _input((batch, 3, 64, 64))
    plan, y = _check(net, x)
    dense = [n for n in plan.nodes if n.op == "conv" and n.attrs["kind"] == "dense"]
    wide = [n for n in dense if min(n.attrs["g"].C, n.attrs["g"].K) > 16 and not n.attrs.get("nchw_input")]
    assert wide and all(isinstance(n.attrs["packed"], A.AmxWeights) == (n in wide) for n in dense)
    stems = [n for n in _check(_zoo_net("resnet18", 48), _input((1, 3, 48, 48)))[0].nodes if n.attrs.get("nchw_input")]
    assert len(stems) == 1 and isinstance(stems[0].attrs["packed"], A.AmxWeights)    # 7x7 to 64 channels
    # every SE scale folds: into the conversion on the tiles, into per-image weights (the first block,
    # 32->16 at 32x32, on FMAs)
    assert sum("scale" in n.attrs for n in plan.nodes) == 16 and not any(n.op == "scale" for n in plan.nodes)
    _same_bits_for_threads(net, x, y)
    monkeypatch.setenv("CONVFORGE_AMX", "0")
    fma = cnn.compile(_zoo_net("efficientnet_b0", 64), x.shape)
    assert not any(isinstance(n.attrs.get("packed"), A.AmxWeights) for n in fma.nodes)
    assert rel_error(fma(x), y) < 3e-5


def test_winograd_layers_follow_the_rule_and_match(fma_plans):
    """3x3 stride-1 layers run by Winograd where the rule says (F(4, 3) on 64 channels, F(2, 3) on 256 at
    14x14, direct on 512 at 7x7), with the residual and ReLU fused; the result is the reference's and
    the same bits for 1, 2 and 5 threads."""
    rng = np.random.default_rng(4)
    net = L.Sequential(L.Conv2d(3, 64, 3, padding=1, rng=rng), L.ReLU(), Residual(64, 64, 1, rng),
                       L.Conv2d(64, 256, 3, 2, 1, rng=rng), L.ReLU(), Residual(256, 256, 1, rng),
                       L.Conv2d(256, 512, 3, 2, 1, rng=rng), L.ReLU(), L.Conv2d(512, 512, 3, padding=1, rng=rng))
    x = _input((1, 3, 28, 28))
    plan, y = _check(net, x)
    picked = {(n.attrs["g"].C, n.attrs["g"].P): getattr(n.attrs["packed"], "m", 0)
              for n in plan.nodes if n.op == "conv" and n.attrs["g"].R == 3 and n.attrs["g"].sh == 1}
    assert picked == {(3, 28): 0, (64, 28): 4, (256, 14): 2, (512, 7): 0}, picked
    old = kernels.get_num_threads()
    try:
        for n in (1, 2, 5):
            kernels.set_num_threads(n)
            assert np.array_equal(net.prepare(x.shape)(x), y)
    finally:
        kernels.set_num_threads(old)


def test_fusions_leave_no_separate_add_or_activation():
    for name, size in (("resnet50", 32), ("mobilenet_v2", 32), ("efficientnet_b0", 32)):
        plan = _zoo_net(name, size).prepare((1, 3, size, size))
        ops = {n.op for n in plan.nodes}
        assert not ops & {"add", "act", "fallback"}, (name, ops)


# ---------------------------------------------------------------- a user's own networks

class Residual(L.Module):
    """A residual block written with Python operators, channel counts that are not multiples of 16."""

    def __init__(self, cin, cout, stride, rng):
        self.conv1 = L.Conv2d(cin, cout, 3, stride, 1, bias=False, rng=rng)
        self.bn1 = L.BatchNorm2d(cout)
        self.conv2 = L.Conv2d(cout, cout, 3, 1, 1, rng=rng)
        self.short = L.Conv2d(cin, cout, 1, stride, rng=rng) if stride != 1 or cin != cout else None
        self.relu = L.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        return self.relu(out + (x if self.short is None else self.short(x)))


class Inception(L.Module):
    def __init__(self, cin, rng):
        self.a = L.Conv2d(cin, 32, 1, rng=rng)
        self.b = L.Sequential(L.Conv2d(cin, 16, 1, rng=rng), L.ReLU(), L.Conv2d(16, 37, 3, padding=1, rng=rng))
        self.c = L.Sequential(L.MaxPool2d(3, 1, 1), L.Conv2d(cin, 53, 1, rng=rng))

    def forward(self, x):
        return F.relu(F.cat([self.a(x), self.b(x), self.c(x)], dim=1))


class SE(L.Module):
    def __init__(self, c, rng):
        self.dw = L.Conv2d(c, c, 5, 1, 2, groups=c, rng=rng)
        self.fc1 = L.Conv2d(c, max(1, c // 4), 1, rng=rng)
        self.fc2 = L.Conv2d(max(1, c // 4), c, 1, rng=rng)
        self.proj = L.Conv2d(c, 21, 1, rng=rng)

    def forward(self, x):
        y = F.silu(self.dw(x))
        s = F.sigmoid(self.fc2(F.silu(self.fc1(F.adaptive_avg_pool2d(y, 1)))))
        return self.proj(y * s)


def user_net(seed=0):
    rng = np.random.default_rng(seed)
    return L.Sequential(
        L.Conv2d(3, 37, 3, 2, 1, rng=rng), L.BatchNorm2d(37), L.ReLU6(),
        Residual(37, 37, 1, rng), Residual(37, 53, 2, rng),
        Inception(53, rng), SE(32 + 37 + 53, rng),
        L.AvgPool2d(2, ceil_mode=True), L.Flatten(), L.Linear(21 * 3 * 3, 10, rng=rng))


@pytest.mark.parametrize("batch, size", [(1, 21), (3, 17), (2, 24)])
def test_user_network_with_odd_channels(batch, size):
    net = randomize_batch_norm(user_net(), 7)
    x = _input((batch, 3, size, size))
    net[-1] = L.Linear(21 * _side(size) ** 2, 10, rng=1)      # the head for this input size
    _check(net, x)


def _side(size):
    s1 = (size - 1) // 2 + 1          # stem, stride 2
    s2 = (s1 - 1) // 2 + 1            # second residual block, stride 2
    return -(-s2 // 2)                # AvgPool2d(2, ceil_mode=True)


def test_plan_follows_new_weights_and_replaced_layers():
    net = user_net(1)
    x = _input((1, 3, 24, 24))
    net[-1] = L.Linear(21 * _side(24) ** 2, 10, rng=2)
    y0 = net(x)
    state = net.state_dict(copy=True)
    state["0.weight"] = state["0.weight"] * 2
    net.load_state_dict(state)
    y1 = net(x)
    with use(REFERENCE):
        ref1 = net(x)
    assert not np.allclose(y0, y1) and rel_error(y1, ref1) < 1e-4
    net[-1] = L.Linear(21 * _side(24) ** 2, 4, rng=3)            # a new head
    y2 = net(x)
    assert y2.shape == (1, 4)
    with use(REFERENCE):
        assert rel_error(y2, net(x)) < 1e-4


def test_new_shape_gets_its_own_plan_and_float64_runs_op_by_op():
    net = _zoo_net("resnet18", 32)
    a, b = _input((1, 3, 32, 32)), _input((2, 3, 40, 40))
    assert net.prepare(a.shape) is net.prepare(a.shape)
    assert net.prepare(a.shape) is not net.prepare(b.shape)
    net.to(np.float64)
    y = net(a.astype(np.float64))                     # op by op, in float64
    assert y.dtype == np.float64
    with pytest.raises(TypeError, match="float32"):
        net.prepare(a.shape)


def test_two_threads_call_one_plan():
    net = _zoo_net("mobilenet_v2", 32)
    xs = [_input((1, 3, 32, 32), seed=s) for s in range(4)]
    plan = net.prepare(xs[0].shape)
    serial = [plan(x) for x in xs]
    results = {}

    def worker(i):
        for _ in range(5):
            results.setdefault(i, []).append(plan(xs[i]))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert all(np.array_equal(r, serial[i]) for r in results[i])


def test_steady_state_allocates_only_the_output():
    net = _zoo_net("resnet18", 32)
    x = _input((1, 3, 32, 32))
    plan = net.prepare(x.shape)
    plan(x)
    tracemalloc.start()
    try:
        plan(x)
        snap = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    allocated = sum(s.size for s in snap.statistics("filename"))
    assert allocated < 64 * 1024, f"{allocated} bytes allocated in a steady-state call"


def test_arena_and_packed_weights_start_on_a_cache_line(monkeypatch):
    """Every 64-byte vector load of an activation or a packed weight stays inside one cache line:
    the arena, each buffer in it, and every prepacked array start on a 64-byte boundary."""
    from kernels import blocked as B
    made, zeros = [], B.aligned_zeros

    def recording(shape, dtype=np.float32):
        made.append(zeros(shape, dtype))
        return made[-1]

    net = _zoo_net("mobilenet_v2", 32)
    monkeypatch.setattr(B, "aligned_zeros", recording)
    plan = net.prepare((2, 3, 32, 32), tune=False)
    plan(_input((2, 3, 32, 32)))
    monkeypatch.undo()
    arenas = [m for m in made if m.size == plan.program.size]   # the arena the call ran on
    assert len(arenas) == 1 and all(m.ctypes.data % 64 == 0 for m in made)
    a = arenas[0]
    assert a.ctypes.data % 64 == 0 and a.shape == (plan.program.size,)
    for v in plan.program.view_of:
        assert plan.program.view(a, v).ctypes.data % 64 == 0, v
    packed = [n.attrs["packed"] for n in plan.nodes if "packed" in n.attrs]
    arrays = [arr for p in packed for q in (p if isinstance(p, list) else [p])
              for arr in (q.w, q.bias)]
    assert len(arrays) > 20 and all(arr.ctypes.data % 64 == 0 for arr in arrays)
    for shape in ((7,), (3, 5, 16), (1000, 17)):
        e = B.aligned_empty(shape)
        assert e.shape == shape and e.dtype == np.float32 and e.ctypes.data % 64 == 0 and e.flags.c_contiguous
    c = B.aligned(np.arange(12.0).reshape(3, 4).T, np.float32)
    assert c.ctypes.data % 64 == 0 and c.flags.c_contiguous and np.array_equal(c, np.arange(12.0).reshape(3, 4).T)


def test_fallback_ops_run_on_nchw():
    """LeNet's tanh, AlexNet's LRN (the paper's variant) and a user's unusual ops go through FAST."""
    lenet = models.create("lenet5", seed=0)
    plan, _ = _check(lenet, _input((2, 1, 32, 32)))
    assert any(n.op == "fallback" for n in plan.nodes)

    class Odd(L.Module):
        def __init__(self):
            self.c1 = L.Conv2d(3, 8, 3, padding=1, rng=0)
            self.c2 = L.Conv2d(8, 8, 3, padding=1, rng=1)

        def forward(self, x):
            y = self.c1(x)
            return self.c2(F.tanh(y) * 0.5 - y / 3)
    _check(Odd(), _input((1, 3, 9, 9)))


def test_explicit_compile_and_bad_input():
    net = _zoo_net("resnet18", 32)
    plan = cnn.compile(net, (1, 3, 32, 32))
    with pytest.raises(ValueError, match="shape"):
        plan(_input((1, 3, 33, 32)))
    with pytest.raises(ValueError, match="float32"):
        plan(_input((1, 3, 32, 32)).astype(np.float64))


@pytest.mark.parametrize("name, size, batch", [("resnet18", 48, 3), ("mobilenet_v2", 64, 2),
                                               ("efficientnet_b0", 64, 2), ("googlenet", 64, 2)])
def test_per_image_segments_equal_the_whole_batch(monkeypatch, name, size, batch):
    """Runs of nodes executed image by image (with one image's buffers for what stays inside a run)
    give the whole-batch plan's output bit for bit, equal the reference, and profile node by node.
    The size rule is lowered so that these small inputs make segments."""
    from cnn.plan import Plan, program
    net = _zoo_net(name, size)
    x = _input((batch, 3, size, size))
    monkeypatch.setattr(program, "SEGMENT_BYTES", 10 ** 12)
    whole = Plan(net, x.shape)
    assert whole.program.segments == [] and not whole.program.internal
    monkeypatch.setattr(program, "SEGMENT_BYTES", 1)
    split = Plan(net, x.shape)
    assert split.program.segments and split.program.internal
    y = split(x)
    assert np.array_equal(y, whole(x))
    with use(REFERENCE):
        assert rel_error(y, net(x)) < 1e-4
    old = kernels.get_num_threads()
    kernels.set_num_threads(1)
    try:
        assert np.array_equal(Plan(net, x.shape)(x), y)
    finally:
        kernels.set_num_threads(old)
    prof = split.profile(x, passes=1)
    assert len(prof) == len(split.nodes) + 2 and all(sec >= 0 for _, _, sec in prof)
    assert all(split.program.view_of[v][0].shape[0] == 1 for v in split.program.internal)


@pytest.mark.parametrize("segments", [False, True])
def test_tuned_tiles_change_no_bit(monkeypatch, segments, fma_plans):
    """tune.py times a few tiles and chunks of every dense direct conv and keeps one on the node; each
    reduces every output in the same order, so a tuned plan equals an untuned one bit for bit, whatever
    wins. `fastest` is forced to the last (never the model's) candidate so that the path is exercised
    whatever the timings say; with segments, the candidates run on one image."""
    from cnn.plan import Plan, program, tune
    net = L.Sequential(L.Conv2d(3, 37, 3, padding=1), L.ReLU(), L.Conv2d(37, 64, 1), L.ReLU(),
                       L.Conv2d(64, 53, 3, stride=2, padding=1), L.ReLU(), L.Conv2d(53, 96, 1))
    x = _input((3, 3, 23, 23))
    monkeypatch.setattr(program, "SEGMENT_BYTES", 1 if segments else 10 ** 12)
    plain = Plan(net, x.shape, tune=False)
    assert plain.tuning == [] and not any("tile" in n.attrs for n in plain.nodes)
    assert bool(plain.program.segments) == segments
    want = plain(x)
    real = Plan(net, x.shape, tune=True)
    assert np.array_equal(real(x), want)
    assert len(real.tuning) == 4
    for n, chosen, times in real.tuning:
        assert n.attrs["tile"] == chosen and (not times or chosen in times)
    monkeypatch.setattr(tune, "fastest", lambda calls: (list(calls)[-1], {}))
    forced = Plan(net, x.shape, tune=True)
    assert any(chosen != next(iter(tune.candidates(forced.program, np.zeros(forced.program.size, np.float32),
                                                   n, None))) for n, chosen, _ in forced.tuning)
    assert np.array_equal(forced(x), want)
    with use(REFERENCE):
        assert rel_error(want, net(x)) < 1e-4


def test_tuning_follows_its_switch(monkeypatch, fma_plans):
    from cnn import plan as P
    net = L.Sequential(L.Conv2d(3, 16, 3, padding=1), L.ReLU(), L.Conv2d(16, 32, 1))
    monkeypatch.setenv("CONVFORGE_AUTOTUNE", "0")
    assert net.prepare((1, 3, 9, 9)).tuning == []
    assert len(net.prepare((1, 3, 10, 10), tune=True).tuning) == 2
    monkeypatch.setenv("CONVFORGE_AUTOTUNE", "1")
    assert P.tuning() and len(P.Plan(net, (1, 3, 9, 9)).tuning) == 2
