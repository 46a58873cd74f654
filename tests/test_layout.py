"""The C layout conversions (kernels/cpu/layout.pyx) against the NumPy ones of kernels/blocked.py, and
the fingerprint the blocked route's weight cache relies on."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import blocked as ref
from kernels.cpu import load

layout = load("layout")


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


shapes = st.tuples(st.integers(0, 3), st.integers(1, 53), st.integers(1, 21), st.integers(1, 37),
                   st.integers(0, 3), st.sampled_from([1, 2, 3, 5]))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes)
def test_to_blocked_and_back_match_numpy(case):
    N, C, H, W, h, nthreads = case
    x = _x((N, C, H, W), seed=C * 31 + W)
    want = np.full(ref.blocked_shape(N, C, H, W, h), np.nan, np.float32)
    ref.to_blocked(x, want, h)
    got = np.full_like(want, np.nan)          # every element must be written: frame and padded lanes too
    layout.to_blocked(x, got, h, nthreads)
    assert np.array_equal(got, want)
    back = np.full_like(x, np.nan)
    layout.from_blocked(got, h, back, nthreads)
    want_back = np.empty_like(x)
    ref.from_blocked(want, h, want_back)
    assert np.array_equal(back, want_back) and np.array_equal(back, x)


@settings(max_examples=60, deadline=None)
@given(shapes)
def test_pad_nchw_is_a_zero_frame(case):
    N, C, H, W, h, nthreads = case
    x = _x((N, C, H, W), seed=H)
    got = np.full((N, C, H + 2 * h, W + 2 * h), np.nan, np.float32)
    layout.pad_nchw(x, got, h, nthreads)
    assert np.array_equal(got, np.pad(x, ((0, 0), (0, 0), (h, h), (h, h))))


def test_tiles_and_tails_of_every_width():
    # every pixel-tail length 1..16 and every partial channel block, one call each
    for W in range(1, 34):
        for C in (1, 15, 16, 17, 31, 33):
            x = _x((1, C, 2, W), seed=W * C)
            got = np.empty(ref.blocked_shape(1, C, 2, W, 1), np.float32)
            layout.to_blocked(x, got, 1, 2)
            want = np.empty_like(got)
            ref.to_blocked(x, want, 1)
            assert np.array_equal(got, want), (C, W)
            back = np.empty_like(x)
            layout.from_blocked(got, 1, back, 2)
            assert np.array_equal(back, x), (C, W)


def test_special_values_pass_unchanged():
    x = _x((1, 20, 3, 19))
    x[0, 0, 0, 0], x[0, 19, 2, 18], x[0, 5, 1, 7] = np.nan, -np.inf, -0.0
    xb = np.empty(ref.blocked_shape(1, 20, 3, 19, 2), np.float32)
    layout.to_blocked(x, xb, 2, 2)
    back = np.empty_like(x)
    layout.from_blocked(xb, 2, back, 2)
    assert np.array_equal(back.view(np.uint32), x.view(np.uint32))   # bit for bit: NaN payload, -0.0


def test_channel_block_slice_of_a_larger_buffer():
    """A blocked buffer may be a channel-block slice (how a concatenation's branches write)."""
    x = _x((2, 20, 5, 6))
    big = np.full(ref.blocked_shape(2, 64, 5, 6, 1), 7.0, np.float32)
    layout.to_blocked(x, big[:, 1:3], 1, 2)
    assert (big[:, 0] == 7).all() and (big[:, 3] == 7).all()
    back = np.empty_like(x)
    layout.from_blocked(big[:, 1:3], 1, back, 2)
    assert np.array_equal(back, x)


def test_results_do_not_depend_on_the_thread_count():
    x = _x((2, 37, 9, 23))
    outs = []
    for n in (1, 2, 5, 16):
        xb = np.empty(ref.blocked_shape(2, 37, 9, 23, 3), np.float32)
        layout.to_blocked(x, xb, 3, n)
        y = np.empty_like(x)
        layout.from_blocked(xb, 3, y, n)
        outs.append((xb, y, layout.fingerprint(x, n)))
    for xb, y, fp in outs[1:]:
        assert np.array_equal(xb, outs[0][0]) and np.array_equal(y, outs[0][1]) and fp == outs[0][2]


def test_read_only_inputs_and_empty_batches():
    x = _x((1, 3, 4, 4))
    x.flags.writeable = False
    xb = np.empty(ref.blocked_shape(1, 3, 4, 4, 1), np.float32)
    xb.flags.writeable = True
    layout.to_blocked(x, xb, 1, 1)
    xb.flags.writeable = False
    y = np.empty((1, 3, 4, 4), np.float32)
    layout.from_blocked(xb, 1, y, 1)
    assert np.array_equal(y, x)
    layout.to_blocked(np.empty((0, 3, 4, 4), np.float32), np.empty((0, 1, 6, 6, 16), np.float32), 1, 2)
    layout.from_blocked(np.empty((0, 1, 4, 4, 16), np.float32), 0, np.empty((0, 3, 4, 4), np.float32), 2)


@pytest.mark.parametrize("call, match", [
    (lambda: layout.to_blocked(np.zeros((1, 3, 4, 4)), np.zeros((1, 1, 4, 4, 16), np.float32), 0), "float32"),
    (lambda: layout.to_blocked(np.zeros((3, 4, 4), np.float32), np.zeros((1, 1, 4, 4, 16), np.float32), 0), "4-D"),
    (lambda: layout.to_blocked(np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 1, 4, 4, 16), np.float32), 1),
     r"out must have shape \(1, 1, 6, 6, 16\)"),
    (lambda: layout.to_blocked(np.zeros((1, 17, 4, 4), np.float32), np.zeros((1, 1, 4, 4, 16), np.float32), 0),
     r"out must have shape \(1, 2, 4, 4, 16\)"),
    (lambda: layout.to_blocked(np.zeros((1, 3, 4, 8), np.float32)[..., ::2], np.zeros((1, 1, 4, 4, 16), np.float32), 0),
     "C-contiguous"),
    (lambda: layout.to_blocked(np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 1, 4, 8, 16), np.float32)[:, :, :, ::2], 0),
     "innermost axes contiguous"),
    (lambda: layout.to_blocked(np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 1, 4, 4, 8), np.float32), 0), "16"),
    (lambda: layout.to_blocked(np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 1, 4, 4, 16), np.float32), -1), "halo"),
    (lambda: layout.to_blocked(np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 1, 4, 4, 16), np.float32), 0, 0),
     "nthreads"),
    (lambda: layout.from_blocked(np.zeros((1, 1, 4, 4, 16), np.float32), 0, np.zeros((1, 17, 4, 4), np.float32)),
     r"xb must have shape \(1, 2, 4, 4, 16\)"),
    (lambda: layout.pad_nchw(np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 3, 5, 5), np.float32), 1),
     r"out must have shape \(1, 3, 6, 6\)"),
    (lambda: layout.fingerprint(np.zeros(4, np.int16)), "items of 4 or 8 bytes"),
    (lambda: layout.fingerprint(np.zeros((4, 4), np.float32)[:, ::2]), "C-contiguous"),
])
def test_bad_arguments_are_refused_by_name(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


# ---------------------------------------------------------------- fingerprint

def _fp_reference(a):
    """layout.h's formula in Python integers."""
    u = a.reshape(-1).view(np.uint32).astype(np.uint64)
    i = np.arange(u.size, dtype=np.uint64)
    v = (u ^ ((i * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF))) & np.uint64(0xFFFFFFFF)
    p = (v * (v | np.uint64(1))) & np.uint64(0xFFFFFFFF)
    return int(u.sum(dtype=np.uint64)), int(p.sum(dtype=np.uint64))


@pytest.mark.parametrize("n", [1, 15, 16, 17, 65535, 65536, 65537, 200003])
def test_fingerprint_formula(n):
    a = _x(n, seed=n)
    assert layout.fingerprint(a, 2) == _fp_reference(a)
    assert layout.fingerprint(a.astype(np.float64), 2) == _fp_reference(a.astype(np.float64))


def test_fingerprint_sees_every_one_word_change_and_swaps():
    a = _x(70001)
    base = layout.fingerprint(a)
    rng = np.random.default_rng(1)
    for i in rng.integers(0, a.size, 50):
        b = a.copy()
        b[i] = np.nextafter(b[i], np.inf)        # the smallest change a float can make
        assert layout.fingerprint(b) != base
        b = a.copy()
        b[i] = -b[i]
        assert layout.fingerprint(b) != base
        j = (i + 1 + rng.integers(0, a.size - 1)) % a.size
        b = a.copy()
        b[i], b[j] = a[j], a[i]
        assert layout.fingerprint(b)[1] != base[1]   # a swap keeps the plain sum, not the mixed one
    z = np.zeros(64, np.float32)
    nz = z.copy()
    nz[3] = -0.0
    assert layout.fingerprint(z) != layout.fingerprint(nz)
    assert layout.fingerprint(np.zeros(0, np.float32)) == (0, 0)
