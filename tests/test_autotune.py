"""auto's blocked route (kernels/blocked_route.py) and its measurement (kernels/select.py): the route
against the float64 reference, thread-count bit-identity, the weight cache, and the memo's
determinism, bounds, switches and thread-safety. Tests that need a measurement force one on small
shapes (MIN_MACS 0) and start from an empty memo; the rest of the suite never depends on one."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import kernels
from kernels import _conv, blocked_route, cpu, select
from kernels.shapes import conv_geometry

from .conftest import TOL, assert_nan_inf_match, nan_inf_case, rel_error

ACT = {None: 0, "relu": 1, "relu6": 2}


def operands(N, C, H, W, K, R, S, bias=True, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if bias else None
    return x, w, b


def run_impl(impl, x, w, b, activation=None, **conv):
    """kernels.conv2d's CPU path with implementation `impl` forced (the blocked route included)."""
    g = conv_geometry(x.shape, w.shape, conv.get("stride", 1), conv.get("padding", 0), conv.get("dilation", 1),
                      conv.get("groups", 1))
    y = np.empty(g.out_shape, x.dtype)
    if y.size:
        xk = np.ascontiguousarray(g.plan.gather(x))
        _conv._run_cpu(impl, xk, np.ascontiguousarray(w), b, y, g.plan.geometry, ACT[activation])
    return y


def _two_candidates(real):
    """select.candidates with a second candidate wherever the real one has a single one, so that the
    memo's machinery runs in every build (in the AVX2 and generic builds only im2col is a candidate)."""
    def candidates(g, dtype):
        c = real(g, dtype)
        if len(c) != 1:
            return c
        return c + (("direct",) if c[0] != "direct" else ("im2col",))
    return candidates


@pytest.fixture
def fresh_memo(monkeypatch):
    """An empty memo, measurement on and forced even on small shapes, two candidates at least in every
    build; the old memo back afterwards."""
    monkeypatch.setattr(select, "_memo", select._Memo(select.MAX_ENTRIES))
    monkeypatch.setattr(select, "MIN_MACS", 0)
    monkeypatch.setattr(select, "candidates", _two_candidates(select.candidates))
    monkeypatch.setenv("CONVFORGE_AUTOTUNE", "1")
    select._never_measured.cache_clear()
    select._fast.clear()
    yield select._memo
    select._never_measured.cache_clear()
    select._fast.clear()


# ---------------------------------------------------------------- the blocked route

@st.composite
def dense_case(draw):
    R, S = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    C = draw(st.sampled_from([1, 3, 5, 15, 16, 17, 24, 33, 37, 53]))
    K = draw(st.sampled_from([1, 6, 16, 17, 32, 40, 53, 64]))
    mode = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    if mode == "same":
        sh = sw = 1
        padding = "same"
    elif mode == "valid":
        padding = "valid"
    elif mode == "int":
        padding = draw(st.integers(0, 4))
    else:
        padding = (draw(st.integers(0, 4)), draw(st.integers(0, 4)))
    pt, pl = (padding, padding) if isinstance(padding, int) else (padding if isinstance(padding, tuple) else (0, 0))
    H = draw(st.integers(max(1, dh * (R - 1) + 1 - 2 * pt), 30))
    W = draw(st.integers(max(1, dw * (S - 1) + 1 - 2 * pl), 30))
    return dict(N=draw(st.integers(1, 3)), C=C, H=H, W=W, K=K, R=R, S=S, bias=draw(st.booleans()),
                activation=draw(st.sampled_from([None, "relu", "relu6"])), seed=draw(st.integers(0, 2**31 - 1)),
                conv=dict(stride=(sh, sw), padding=padding, dilation=(dh, dw)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dense_case())
def test_blocked_route_matches_reference(case):
    x, w, b = operands(case["N"], case["C"], case["H"], case["W"], case["K"], case["R"], case["S"], case["bias"],
                       seed=case["seed"])
    g = conv_geometry(x.shape, w.shape, case["conv"]["stride"], case["conv"]["padding"], case["conv"]["dilation"])
    assume(blocked_route.unsupported(g.plan.geometry, np.float32) is None)
    y = run_impl("blocked", x, w, b, case["activation"], **case["conv"])
    ref = kernels.reference.conv2d(x, w, b, activation=case["activation"], **case["conv"])
    assert rel_error(y, ref) < TOL[np.float32]


@pytest.mark.parametrize("shape", [
    # N, C, H, K, R, stride, pad
    (1, 512, 7, 512, 3, 1, 1),      # r18.5x: the case the rules never saw
    (1, 128, 20, 128, 3, 2, 1),     # a stride-2 3x3 of ResNet-50, smaller plane
    (2, 3, 33, 64, 7, 2, 3),        # the stem: NCHW input, zero-framed
    (1, 64, 9, 40, 1, 1, 0),        # 1x1, K not a block multiple
    (1, 48, 9, 24, 1, 2, 0),        # strided 1x1
    (3, 20, 11, 20, 5, 1, 2),       # 5x5, odd channels
])
def test_blocked_route_on_the_layer_classes(shape):
    N, C, H, K, R, stride, pad = shape
    x, w, b = operands(N, C, H, H, K, R, R, seed=sum(shape))
    for activation in (None, "relu", "relu6"):
        y = run_impl("blocked", x, w, b, activation, stride=stride, padding=pad)
        ref = kernels.reference.conv2d(x, w, b, stride=stride, padding=pad, activation=activation)
        assert rel_error(y, ref) < TOL[np.float32], activation


@pytest.mark.parametrize("C", [8, 24])      # the stem (NCHW input) and the blocked input
def test_blocked_route_nan_and_inf_propagate(C):
    x, w, conv = nan_inf_case("direct")
    if C != x.shape[1]:
        x = np.concatenate([x, np.ones((1, C - x.shape[1], 12, 12), np.float32)], axis=1)
        w = np.concatenate([w, np.ones((w.shape[0], C - w.shape[1], 3, 3), np.float32)], axis=1)
    for activation in (None, "relu", "relu6"):
        assert_nan_inf_match(run_impl("blocked", x, w, None, activation, **conv),
                             kernels.reference.conv2d(x, w, activation=activation, **conv))


@pytest.mark.parametrize("shape", [(3, 37, 29, 53, 3, 1, 1), (2, 3, 31, 16, 7, 2, 3), (1, 64, 15, 96, 3, 2, 1)])
def test_blocked_route_is_bit_identical_across_thread_counts(shape):
    N, C, H, K, R, stride, pad = shape
    x, w, b = operands(N, C, H, H + 2, K, R, R, seed=1)
    old = kernels.get_num_threads()
    outs = []
    try:
        for n in (1, 2, 5):
            kernels.set_num_threads(n)
            outs.append(run_impl("blocked", x, w, b, "relu", stride=stride, padding=pad))
    finally:
        kernels.set_num_threads(old)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


def test_blocked_route_leaves_inputs_alone_and_takes_read_only_and_strided_ones():
    x, w, b = operands(2, 20, 9, 11, 24, 3, 3, seed=2)
    ref = kernels.reference.conv2d(x, w, b, padding=1)
    copies = [a.copy() for a in (x, w, b)]
    for a in (x, w, b):
        a.flags.writeable = False
    assert rel_error(run_impl("blocked", x, w, b, padding=1), ref) < TOL[np.float32]
    assert all(np.array_equal(a, c) for a, c in zip((x, w, b), copies))
    ws = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)      # w's values, other strides
    y = kernels.conv2d(np.asfortranarray(x), ws, b, padding=1)
    assert rel_error(y, ref) < TOL[np.float32]


def test_blocked_route_refuses_what_it_cannot_run():
    g = conv_geometry((1, 8, 9, 9), (8, 4, 3, 3), 1, 1, 1, 2).plan.geometry
    assert "groups" in blocked_route.unsupported(g, np.float32)
    g = conv_geometry((1, 8, 9, 9), (8, 8, 3, 3), 1, 1).plan.geometry
    assert "float32" in blocked_route.unsupported(g, np.float64)
    g = conv_geometry((1, 8, 9, 9), (8, 8, 3, 3), 1, blocked_route.MAX_HALO + 1).plan.geometry
    assert "halo" in blocked_route.unsupported(g, np.float32)
    x, w, _ = operands(1, 8, 9, 9, 8, 3, 3, dtype=np.float64)
    with pytest.raises(ValueError, match="float32"):
        run_impl("blocked", x, w, None, padding=1)


def test_blocked_route_halo_covers_the_implied_far_side_padding():
    # 'same' with an even kernel pads one more row/column at the bottom/right
    g = conv_geometry((1, 16, 10, 10), (16, 16, 4, 4), 1, "same").plan.geometry
    assert (g.pad_top, g.pad_bottom, blocked_route.halo(g)) == (1, 2, 2)
    x, w, b = operands(1, 16, 10, 10, 16, 4, 4, seed=3)
    ref = kernels.reference.conv2d(x, w, b, padding="same")
    assert rel_error(run_impl("blocked", x, w, b, padding="same"), ref) < TOL[np.float32]


# ---------------------------------------------------------------- the packed-weight cache

def test_weight_cache_sees_arrays_changed_in_place():
    x, w, b = operands(1, 32, 7, 7, 32, 3, 3, seed=4)
    y1 = run_impl("blocked", x, w, b, padding=1)
    w[3, 5, 1, 2] += 1.0                       # the caller's array, changed after it was packed
    b[7] = -b[7]
    y2 = run_impl("blocked", x, w, b, padding=1)
    assert rel_error(y2, kernels.reference.conv2d(x, w, b, padding=1)) < TOL[np.float32]
    assert not np.array_equal(y1, y2)


def test_weight_cache_is_bounded_and_reuses_equal_contents(monkeypatch):
    cache = blocked_route._PackCache(max_entries=3, max_bytes=200_000)
    monkeypatch.setattr(blocked_route, "_cache", cache)
    x = np.random.default_rng(5).standard_normal((1, 16, 6, 6)).astype(np.float32)
    for seed in range(6):
        _, w, b = operands(1, 16, 6, 6, 16, 3, 3, seed=seed)
        run_impl("blocked", x, w, b, padding=1)
        info = blocked_route.cache_info()
        assert info["entries"] <= 3 and info["bytes"] <= 200_000
    _, w, b = operands(1, 16, 6, 6, 16, 3, 3, seed=5)
    before = blocked_route.cache_info()
    run_impl("blocked", x, w.copy(), b.copy(), padding=1)     # another array, same content: a hit
    assert blocked_route.cache_info() == before
    _, big, _ = operands(1, 160, 6, 6, 160, 3, 3)               # more than max_bytes packed: never kept
    run_impl("blocked", np.ones((1, 160, 6, 6), np.float32), big, None, padding=1)
    assert blocked_route.cache_info()["bytes"] <= 200_000
    blocked_route.clear_cache()
    assert blocked_route.cache_info()["entries"] == 0


# ---------------------------------------------------------------- the measurement and its memo

def test_candidates_follow_the_rules_and_the_isa():
    dense = conv_geometry((1, 64, 14, 14), (64, 64, 3, 3), 1, 1)
    assert select.candidates(dense, np.float32)[0] == select.rules(dense)
    zmm = cpu.ISA == "avx512"
    assert ("blocked" in select.candidates(dense, np.float32)) == zmm
    assert "blocked" not in select.candidates(dense, np.float64)
    assert ("direct" in select.candidates(dense, np.float32)) == zmm
    assert select.candidates(conv_geometry((1, 64, 14, 14), (64, 1, 3, 3), 1, 1, 1, 64), np.float32) == ()
    pw = conv_geometry((1, 64, 14, 14), (32, 64, 1, 1))
    assert select.candidates(pw, np.float32) == (("pointwise", "blocked") if zmm else ("pointwise",))


def test_first_call_measures_and_every_call_gives_the_same_bits(fresh_memo):
    x, w, b = operands(1, 64, 10, 10, 64, 3, 3, seed=6)
    g = conv_geometry(x.shape, w.shape, 2, 1)
    assert select.explain(g)["reason"].startswith("not seen yet")
    first = kernels.conv2d(x, w, b, stride=2, padding=1)
    info = select.explain(g)
    assert info["source"] == "measured" and info["algorithm"] in info["seconds"]
    assert set(info["seconds"]) <= set(info["candidates"]) and info["threads"] == kernels.get_num_threads()
    assert select.choose_algorithm(g) == info["algorithm"]
    for _ in range(3):
        assert np.array_equal(kernels.conv2d(x, w, b, stride=2, padding=1), first)
    assert np.array_equal(first, run_impl(info["algorithm"], x, w, b, stride=2, padding=1))
    assert rel_error(first, kernels.reference.conv2d(x, w, b, stride=2, padding=1)) < TOL[np.float32]
    assert fresh_memo.info()["entries"] == 1


def test_a_measured_choice_holds_at_every_thread_count(fresh_memo):
    x, w, b = operands(2, 24, 12, 12, 40, 3, 3, seed=7)
    old = kernels.get_num_threads()
    try:
        kernels.set_num_threads(2)
        y2 = kernels.conv2d(x, w, b, padding=1)
        kernels.set_num_threads(1)
        y1 = kernels.conv2d(x, w, b, padding=1)
        kernels.set_num_threads(5)
        y5 = kernels.conv2d(x, w, b, padding=1)
    finally:
        kernels.set_num_threads(old)
    assert np.array_equal(y1, y2) and np.array_equal(y1, y5)
    assert fresh_memo.info()["entries"] == 1


@pytest.mark.parametrize("value", ["0", "off", "False", " no "])
def test_autotune_off_leaves_it_to_the_rules(fresh_memo, monkeypatch, value):
    monkeypatch.setenv("CONVFORGE_AUTOTUNE", value)
    x, w, b = operands(1, 32, 9, 9, 32, 3, 3)
    g = conv_geometry(x.shape, w.shape, 1, 1)
    y = kernels.conv2d(x, w, b, padding=1)
    d = select.explain(g)
    assert (d["source"], d["algorithm"]) == ("rules", select.rules(g)) and "CONVFORGE_AUTOTUNE" in d["reason"]
    assert np.array_equal(y, kernels.conv2d(x, w, b, padding=1, algorithm=select.rules(g)))
    monkeypatch.setenv("CONVFORGE_AUTOTUNE", "1")         # the first call fixed the choice
    assert np.array_equal(kernels.conv2d(x, w, b, padding=1), y) and select.explain(g)["source"] == "rules"


def test_small_layers_spent_budget_and_slow_calls_are_not_measured(fresh_memo, monkeypatch):
    x, w, b = operands(1, 16, 8, 8, 16, 3, 3)
    g = conv_geometry(x.shape, w.shape, 1, 1)
    monkeypatch.setattr(select, "MIN_MACS", g.macs + 1)
    kernels.conv2d(x, w, b, padding=1)
    assert fresh_memo.info()["entries"] == 0 and "too small" in select.explain(g)["reason"]
    monkeypatch.setattr(select, "MIN_MACS", 0)
    select.clear()                                          # forget what the first call settled
    fresh_memo.spent = select.BUDGET_S
    kernels.conv2d(x, w, b, padding=1)
    assert fresh_memo.info()["entries"] == 1
    assert "budget" in select.explain(g)["reason"] and select.explain(g)["source"] == "rules"
    select.clear()
    monkeypatch.setattr(select, "MAX_FIRST_CALL_S", 0.0)
    y = kernels.conv2d(x, w, b, padding=1)
    d = select.explain(g)
    assert (d["source"], d["algorithm"]) == ("rules", select.rules(g)) and "too slow" in d["reason"]
    assert np.array_equal(y, kernels.conv2d(x, w, b, padding=1, algorithm=select.rules(g)))


def test_measurement_returns_the_winners_output_and_keeps_the_rules_within_the_margin(fresh_memo, monkeypatch):
    g = conv_geometry((1, 32, 8, 8), (32, 32, 3, 3), 1, 1)
    order = select.candidates(g, np.float32)
    clock = {"t": 0.0}
    cost = {impl: 1.0 for impl in order}
    cost[order[-1]] = 0.5                                  # the last candidate is twice as fast

    def fake_run(impl, out):
        clock["t"] += cost[impl]
        return impl

    monkeypatch.setattr(select, "_clock", lambda: clock["t"])
    monkeypatch.setattr(select, "MAX_FIRST_CALL_S", 10.0)
    assert select.auto(g, np.float32, fake_run) == (order[-1], order[-1])
    g2 = conv_geometry((1, 32, 8, 8), (32, 32, 3, 3), 1, 2)
    order2 = select.candidates(g2, np.float32)
    cost.update({impl: 1.0 for impl in order2})
    cost[order2[-1]] = 0.95                                # faster, but within MARGIN: the rules stay
    fresh_memo.spent = 0.0
    assert select.auto(g2, np.float32, fake_run) == (order2[0], order2[0])


def test_the_memo_is_bounded_and_never_evicts(fresh_memo, monkeypatch):
    monkeypatch.setattr(select, "_memo", select._Memo(2))
    shapes = [(1, 16, 6 + i, 6 + i) for i in range(4)]
    for s in shapes:
        x, w, b = operands(*s, 16, 3, 3)
        kernels.conv2d(x, w, b, padding=1)
    assert select.memo_info()["entries"] == 2
    kept = [select.explain(conv_geometry(s, (16, 16, 3, 3), 1, 1))["source"] for s in shapes]
    assert kept == ["measured", "measured", "rules", "rules"]
    assert "full" in select.explain(conv_geometry(shapes[3], (16, 16, 3, 3), 1, 1))["reason"]
    select.clear()
    assert select.memo_info()["entries"] == 0


def test_threads_meeting_a_new_geometry_measure_it_once(fresh_memo, monkeypatch):
    calls = []
    real = select._measure

    def counting(*args):
        calls.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(select, "_measure", counting)
    x, w, b = operands(1, 48, 12, 12, 48, 3, 3, seed=8)
    start = threading.Barrier(6)
    out, errors = [None] * 6, []

    def work(i):
        try:
            start.wait()
            out[i] = kernels.conv2d(x, w, b, padding=1)
        except Exception as e:           # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(calls) == 1
    assert all(np.array_equal(o, out[0]) for o in out)
    assert fresh_memo.info() | {"spent_s": 0} == {"entries": 1, "capacity": select.MAX_ENTRIES, "pending": 0,
                                                   "spent_s": 0, "budget_s": select.BUDGET_S}


def test_a_failed_measurement_leaves_nothing_pending(fresh_memo, monkeypatch):
    def boom(*args):
        raise MemoryError("no room")

    monkeypatch.setattr(select, "_measure", boom)
    x, w, b = operands(1, 16, 8, 8, 16, 3, 3)
    with pytest.raises(MemoryError):
        kernels.conv2d(x, w, b, padding=1)
    assert fresh_memo.info()["pending"] == 0 and fresh_memo.info()["entries"] == 0


@st.composite
def auto_case(draw):
    case = draw(dense_case())
    case["dtype"] = draw(st.sampled_from([np.float32, np.float64]))
    return case


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(auto_case())
def test_every_candidate_meets_the_tolerance(case):
    x, w, b = operands(case["N"], case["C"], case["H"], case["W"], case["K"], case["R"], case["S"], case["bias"],
                       dtype=case["dtype"], seed=case["seed"])
    conv = case["conv"]
    g = conv_geometry(x.shape, w.shape, conv["stride"], conv["padding"], conv["dilation"])
    ref = kernels.reference.conv2d(x, w, b, activation=case["activation"], **conv)
    for impl in select.candidates(g, x.dtype) or (select.rules(g),):
        y = run_impl(impl, x, w, b, case["activation"], **conv)
        assert rel_error(y, ref) < TOL[case["dtype"]], impl


def test_the_gpu_is_left_to_the_rules():
    g = conv_geometry((1, 512, 7, 7), (512, 512, 3, 3), 1, 1)
    assert select.explain(g, device="gpu")["algorithm"] == "im2col"
    assert select.choose_algorithm(g, "gpu") == "im2col"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.skipif(cpu.ISA != "avx512", reason="only the AVX-512 build has several candidates to measure")
def test_a_forked_child_measures_new_geometries():
    code = textwrap.dedent("""
        import os
        import numpy as np
        import kernels
        from kernels import select
        select.MIN_MACS = 0
        kernels.set_num_threads(2)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 32, 12, 12)).astype(np.float32)
        w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
        ref = kernels.conv2d(x, w, padding=1)
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(kernels.conv2d(x, w, padding=1), ref)
            y = kernels.conv2d(x, w, padding=2)                 # a new geometry, measured in the child
            ok = ok and select.explain(kernels.shapes.conv_geometry(x.shape, w.shape, 1, 2))["source"] == "measured"
            os._exit(0 if ok and y.shape == (1, 32, 14, 14) else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))""")
    env = {k: v for k, v in os.environ.items() if k != "CONVFORGE_AUTOTUNE"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
