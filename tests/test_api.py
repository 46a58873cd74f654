"""The public API of kernels.conv2d: shapes, padding modes, bad input, and what happens to the caller's arrays."""
import threading

import numpy as np
import pytest

import kernels
from kernels.shapes import conv_geometry

from .conftest import rel_error


def rnd(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_algorithms_and_exports():
    assert kernels.ALGORITHMS == ("direct", "im2col", "pointwise", "depthwise")
    for name in ("conv2d", "conv2d_output_shape", "set_num_threads", "get_num_threads", "gpu_available", "reference"):
        assert hasattr(kernels, name), name
    assert isinstance(kernels.gpu_available(), bool)


@pytest.mark.parametrize("x_shape, w_shape, kw, expected", [
    ((1, 3, 6, 6), (5, 3, 3, 3), {}, (1, 5, 4, 4)),                       # the course's 6x6x3 * 3x3x3
    ((2, 3, 227, 227), (96, 3, 11, 11), dict(stride=4), (2, 96, 55, 55)),
    ((1, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3), (1, 64, 112, 112)),
    ((1, 8, 7, 9), (4, 8, 3, 3), dict(padding="same"), (1, 4, 7, 9)),
    ((1, 8, 7, 9), (4, 8, 4, 2), dict(padding="same"), (1, 4, 7, 9)),
    ((1, 8, 7, 9), (4, 8, 3, 3), dict(padding="valid"), (1, 4, 5, 7)),
    ((1, 8, 10, 10), (4, 8, 3, 3), dict(dilation=2, padding=(1, 0)), (1, 4, 8, 6)),
    ((1, 8, 10, 11), (8, 2, 3, 3), dict(stride=(2, 3), groups=4), (1, 8, 4, 3)),
])
def test_output_shape(x_shape, w_shape, kw, expected):
    assert kernels.conv2d_output_shape(x_shape, w_shape, **kw) == expected
    assert conv_geometry(x_shape, w_shape, **kw).out_shape == expected


def test_same_padding_puts_the_extra_row_at_the_bottom_right():
    x, w = rnd(1, 2, 6, 7), rnd(3, 2, 4, 2, seed=1)
    g = conv_geometry(x.shape, w.shape, padding="same")
    assert (g.pad_top, g.pad_bottom, g.pad_left, g.pad_right) == (1, 2, 0, 1)
    y = kernels.conv2d(x, w, padding="same")
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same").numpy()
    assert rel_error(y, ref) < 1e-5


def test_reference_matches_torch():
    torch = pytest.importorskip("torch")
    x, w, b = rnd(2, 6, 13, 11, dtype=np.float64), rnd(9, 2, 3, 2, dtype=np.float64, seed=1), rnd(9, dtype=np.float64)
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=3)
    ref = kernels.reference.conv2d(x, w, b, **kw)
    t = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **kw).numpy()
    assert rel_error(ref, t) < 1e-13


BAD = [
    # (description, x, w, bias, kwargs, error type, text the message must contain)
    ("x ndim", rnd(3, 8, 8), rnd(4, 3, 3, 3), None, {}, ValueError, "x must be 4-D"),
    ("w ndim", rnd(1, 3, 8, 8), rnd(4, 3, 3), None, {}, ValueError, "w must be 4-D"),
    ("channels", rnd(1, 3, 8, 8), rnd(4, 2, 3, 3), None, {}, ValueError, "channel mismatch"),
    ("groups divide C", rnd(1, 6, 8, 8), rnd(4, 2, 3, 3), None, dict(groups=4), ValueError, "groups"),
    ("groups divide K", rnd(1, 6, 8, 8), rnd(4, 2, 3, 3), None, dict(groups=3), ValueError, "groups"),
    ("groups zero", rnd(1, 6, 8, 8), rnd(4, 6, 3, 3), None, dict(groups=0), ValueError, "groups"),
    ("groups float", rnd(1, 6, 8, 8), rnd(4, 6, 3, 3), None, dict(groups=1.0), TypeError, "groups"),
    ("stride zero", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(stride=0), ValueError, "stride"),
    ("stride negative", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(stride=(1, -1)), ValueError, "stride"),
    ("stride triple", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(stride=(1, 1, 1)), ValueError, "stride"),
    ("dilation zero", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(dilation=0), ValueError, "dilation"),
    ("padding negative", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(padding=-1), ValueError, "padding"),
    ("padding word", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(padding="full"), ValueError, "padding"),
    ("same with stride", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(padding="same", stride=2), ValueError, "same"),
    ("kernel too large", rnd(1, 3, 4, 4), rnd(4, 3, 5, 5), None, {}, ValueError, "larger than the padded input"),
    ("dilated too large", rnd(1, 3, 6, 6), rnd(4, 3, 3, 3), None, dict(dilation=3), ValueError, "larger"),
    ("mixed dtypes", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3, dtype=np.float64), None, {}, TypeError, "same dtype"),
    ("integer x", np.ones((1, 3, 8, 8), np.int32), np.ones((4, 3, 3, 3), np.int32), None, {}, TypeError, "x must be float32"),
    ("complex w", rnd(1, 3, 8, 8), np.ones((4, 3, 3, 3), np.complex64), None, {}, TypeError, "w must be float32"),
    ("float16", rnd(1, 3, 8, 8, dtype=np.float16), rnd(4, 3, 3, 3, dtype=np.float16), None, {}, TypeError, "float32"),
    ("list x", [[[[1.0]]]], rnd(1, 1, 1, 1), None, {}, TypeError, "x must be a numpy.ndarray"),
    ("bias shape", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), rnd(3), {}, ValueError, "bias must have shape (4,)"),
    ("bias dtype", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), rnd(4, dtype=np.float64), {}, TypeError, "bias"),
    ("bias list", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), [0.0] * 4, {}, TypeError, "bias"),
    ("algorithm name", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(algorithm="winograd"), ValueError, "algorithm"),
    ("algorithm type", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(algorithm=None), TypeError, "algorithm"),
    ("pointwise 3x3", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(algorithm="pointwise"), ValueError, "1x1"),
    ("pointwise padded", rnd(1, 3, 8, 8), rnd(4, 3, 1, 1), None, dict(algorithm="pointwise", padding=1), ValueError, "padding"),
    ("depthwise dense", rnd(1, 3, 8, 8), rnd(3, 3, 3, 3), None, dict(algorithm="depthwise"), ValueError, "groups == C"),
    ("activation", rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, dict(activation="gelu"), ValueError, "activation"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_raises_a_clear_error(case):
    _, x, w, b, kw, err, text = case
    with pytest.raises(err, match=None) as info:
        kernels.conv2d(x, w, b, **kw)
    assert text in str(info.value), str(info.value)


@pytest.mark.parametrize("kw", [dict(groups=1.0), dict(stride=True), dict(dilation=(1, True)),
                                dict(padding=(0, False))], ids=str)
def test_memoised_geometry_does_not_let_bools_or_floats_through(kw):
    """True == 1 and 1.0 == 1 hash alike: a geometry cached for 1 must not answer for them."""
    x, w = rnd(1, 3, 8, 8), rnd(4, 3, 3, 3)
    kernels.conv2d(x, w, stride=1, padding=0, dilation=1, groups=1)     # caches the plain geometry
    with pytest.raises(TypeError, match="must be an int"):
        kernels.conv2d(x, w, **kw)


def test_gpu_weight_with_cpu_input_is_a_type_error():
    cupy = pytest.importorskip("cupy")
    if not kernels.gpu_available():
        pytest.skip("no usable CUDA device")
    with pytest.raises(TypeError, match="same device"):
        kernels.conv2d(rnd(1, 3, 8, 8), cupy.asarray(rnd(4, 3, 3, 3)))


@pytest.mark.parametrize("algorithm", ["auto"] + list(kernels.ALGORITHMS))
def test_non_contiguous_read_only_inputs_work_and_are_not_modified(algorithm):
    depthwise, pointwise = algorithm == "depthwise", algorithm == "pointwise"
    C, K = 6, (12 if depthwise else 5)
    R = 1 if pointwise else 3
    groups = C if depthwise else 1
    base = rnd(2, C, 11, 26, dtype=np.float64)
    x = base[:, :, :, ::2]                      # non-contiguous view
    w = np.asfortranarray(rnd(K, C // groups, R, R, dtype=np.float64, seed=2))
    b = rnd(K, dtype=np.float64, seed=3)
    for a in (base, w, b):
        a.flags.writeable = False
    copies = [a.copy() for a in (base, w, b)]
    pad = 0 if pointwise else 1
    y = kernels.conv2d(x, w, b, padding=pad, groups=groups, algorithm=algorithm)
    assert rel_error(y, kernels.reference.conv2d(x, w, b, padding=pad, groups=groups)) < 1e-12
    for a, c in zip((base, w, b), copies):
        assert np.array_equal(a, c)
    assert y.flags.c_contiguous and y.flags.writeable


@pytest.mark.parametrize("algorithm", kernels.ALGORITHMS)
def test_empty_batch_gives_empty_output(algorithm):
    C, K, R, groups = (4, 4, 3, 4) if algorithm == "depthwise" else (4, 6, 1 if algorithm == "pointwise" else 3, 1)
    y = kernels.conv2d(rnd(0, C, 9, 9), rnd(K, C // groups, R, R), groups=groups, algorithm=algorithm)
    assert y.shape == (0, K, 9 - R + 1, 9 - R + 1) and y.dtype == np.float32


def test_thread_control():
    old = kernels.get_num_threads()
    assert old >= 1
    try:
        kernels.set_num_threads(1)
        assert kernels.get_num_threads() == 1
        with pytest.raises(ValueError, match="n must be between 1 and"):
            kernels.set_num_threads(0)
        with pytest.raises(TypeError, match="n must be an int"):
            kernels.set_num_threads(1.5)
    finally:
        kernels.set_num_threads(old)


def test_concurrent_calls_from_python_threads():
    """The kernels hold no shared mutable state: calls from several Python threads give the serial answers."""
    xs = [rnd(2, 8, 17, 19, seed=s) for s in range(6)]
    w = rnd(16, 8, 3, 3, seed=9)
    expected = [kernels.conv2d(x, w, padding=1) for x in xs]
    results = [None] * len(xs)

    def work(i):
        results[i] = kernels.conv2d(xs[i], w, padding=1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        assert np.array_equal(r, e)


def test_padding_strings_are_lower_case_as_in_torch():
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    assert kernels.conv2d(x, w, padding="same").shape == (1, 3, 5, 5)
    for bad in ("SAME", "Valid"):
        with pytest.raises(ValueError, match="lower case"):
            kernels.conv2d(x, w, padding=bad)
