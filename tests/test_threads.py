"""Thread control: the default count honours OMP_NUM_THREADS then the affinity, impossible counts are
refused, and a process forked after parallel work still runs every kernel (no hang, same result).

Each scenario runs in a fresh interpreter (the thread count is read at import, and a hung child must
not hang the test run): subprocess with a timeout."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kernels
from kernels import _threads

TIMEOUT = 120


def _python(code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT")}
    full.update(env)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full, capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _affinity():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.parametrize("value, expected", [("1", 1), ("3", 3), ("5,2", 5), (" 2 ", 2), ("0", None),
                                             ("abc", None), ("", None)])
def test_default_honours_omp_num_threads(value, expected):
    got = int(_python("import kernels; print(kernels.get_num_threads())", OMP_NUM_THREADS=value))
    assert got == (expected if expected is not None else min(_affinity(), _threads.MAX_THREADS))


def test_default_is_the_affinity_without_omp_num_threads():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no affinity control on this platform")
    cpu = sorted(os.sched_getaffinity(0))[0]
    got = _python(f"""
        import os
        os.sched_setaffinity(0, {{{cpu}}})
        import kernels
        print(kernels.get_num_threads())""")
    assert int(got) == 1


def test_omp_thread_limit_caps_the_default_and_the_setter():
    out = _python("""
        import kernels
        print(kernels.get_num_threads())
        try:
            kernels.set_num_threads(3)
        except ValueError as e:
            print("refused", "OMP_THREAD_LIMIT" in str(e))""", OMP_NUM_THREADS="8", OMP_THREAD_LIMIT="2")
    assert out.split("\n") == ["2", "refused True"]


@pytest.mark.parametrize("bad", [0, -1, _threads.MAX_THREADS + 1, 100000, 2**62])
def test_set_num_threads_refuses_what_it_cannot_honour(bad):
    before = kernels.get_num_threads()
    with pytest.raises(ValueError, match="between 1 and"):
        kernels.set_num_threads(bad)
    assert kernels.get_num_threads() == before


@pytest.mark.parametrize("bad", [1.0, True, "2", None])
def test_set_num_threads_needs_an_int(bad):
    with pytest.raises(TypeError, match="n must be an int"):
        kernels.set_num_threads(bad)


def test_many_threads_give_the_same_result():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
    before = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        ref = kernels.conv2d(x, w, padding=1)
        kernels.set_num_threads(64)
        assert np.array_equal(kernels.conv2d(x, w, padding=1), ref)
    finally:
        kernels.set_num_threads(before)


FORK_SCRIPT = """
    import os, sys, threading
    import numpy as np
    import kernels
    kernels.set_num_threads(2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    dw = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    pw = rng.standard_normal((8, 16, 1, 1)).astype(np.float32)
    from cnn import models
    net = models.create("mobilenet_v2", seed=0)    # runs as an inference plan: every step in one call
    xn = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)

    def work():
        out = [kernels.conv2d(x, w, padding=1, algorithm=a) for a in ("direct", "im2col")]
        out += [kernels.conv2d(x, dw, padding=1, groups=16), kernels.conv2d(x, pw),
                kernels.max_pool2d(x, 3, 2, 1), kernels.avg_pool2d(x, 2), kernels.global_avg_pool2d(x),
                kernels.local_response_norm(x, 5), net(xn)]
        return out

    ref = work()                      # the parent's OpenMP pool now exists

    def child(depth):
        got = work()                  # would hang here without the fork handler
        ok = all(np.array_equal(a, b) for a, b in zip(got, ref))
        t = threading.Thread(target=work)   # a thread started in the child runs in place
        t.start(); t.join()
        if depth == 0:                # and a grandchild forked from the child
            pid = os.fork()
            if pid == 0:
                os._exit(0 if child(1) else 3)
            _, status = os.waitpid(pid, 0)
            ok = ok and os.waitstatus_to_exitcode(status) == 0
        return ok

    pid = os.fork()
    if pid == 0:
        os._exit(0 if child(0) else 3)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_runs_every_kernel_after_parallel_work():
    assert _python(FORK_SCRIPT) == "0"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_multiprocessing_fork_pool_after_parallel_work():
    out = _python("""
        import multiprocessing as mp
        import numpy as np
        import kernels
        kernels.set_num_threads(2)
        x = np.random.default_rng(2).standard_normal((1, 8, 16, 16)).astype(np.float32)
        w = np.random.default_rng(3).standard_normal((8, 8, 3, 3)).astype(np.float32)
        ref = kernels.conv2d(x, w, padding=1)

        def job(i):
            return float(np.abs(kernels.conv2d(x, w, padding=1) - ref).max())

        with mp.get_context("fork").Pool(2) as pool:
            print(max(pool.map(job, range(4))))""")
    assert out == "0.0"
