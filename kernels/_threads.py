"""Thread count of the CPU kernels, and running a kernel call on OpenMP threads that exist.

The kernels parallelise with OpenMP only (no BLAS threads underneath), so one process-wide number is
the whole CPU parallelism of a call. Results are bit-identical for every thread count: each output
element is reduced by one thread in a fixed order.

Default: OMP_NUM_THREADS (its first entry, as OpenMP reads it), else the CPUs this process may run on
(its affinity mask). At most MAX_THREADS, and never more than OMP_THREAD_LIMIT allows.

Fork: libgomp keeps one pool of worker threads per thread that starts parallel regions. A child
forked after such work inherits that pool's bookkeeping but not its threads, so the next parallel
region of the forking thread would wait for them forever (the `fork` start method, gunicorn's
preload, data-loader workers). The pool of every other thread is sound: a thread started in the
child builds its own. So in a child, the calls of the thread that forked, if it had used OpenMP
threads, run on one helper thread started in the child (a thread handoff per call, tens of
microseconds); calls on one thread run in place, as OpenMP runs a team of one without its pool.
"""
import concurrent.futures
import numbers
import os
import threading

MAX_THREADS = 1024

_local = threading.local()      # .omp: this thread started a parallel region; .pool_lost: in a fork
_child = {"executor": None}     # this process's helper thread, made on first need after a fork
_child_lock = threading.Lock()


def _thread_limit():
    limit = os.environ.get("OMP_THREAD_LIMIT", "").strip()
    return min(MAX_THREADS, int(limit)) if limit.isdigit() and int(limit) >= 1 else MAX_THREADS


def _default_threads():
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdigit() and int(first) >= 1:
        return min(int(first), _thread_limit())
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(max(n, 1), _thread_limit())


_num_threads = _default_threads()


def set_num_threads(n):
    """Set how many OpenMP threads the CPU kernels use: 1 .. MAX_THREADS (1024), or OMP_THREAD_LIMIT
    when that is lower. More threads than cores is allowed (and gives the same results)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int, got {n!r}")
    limit = _thread_limit()
    if not 1 <= n <= limit:
        why = "OMP_THREAD_LIMIT" if limit < MAX_THREADS else "MAX_THREADS"
        raise ValueError(f"n must be between 1 and {limit} ({why}), got {n}")
    _num_threads = int(n)


def get_num_threads():
    return _num_threads


def run(kernel, *args):
    """kernel(*args, nthreads) with the current thread count, on threads OpenMP can use (see above)."""
    n = _num_threads
    if n > 1:
        if getattr(_local, "pool_lost", False):
            return _child_executor().submit(kernel, *args, n).result()
        _local.omp = True
    return kernel(*args, n)


def _child_executor():
    with _child_lock:
        if _child["executor"] is None:
            _child["executor"] = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="convforge-omp")
        return _child["executor"]


def _after_fork_in_child():
    global _child_lock
    _child_lock = threading.Lock()      # it may have been held by a thread that is gone
    _child["executor"] = None           # its thread is gone too
    if getattr(_local, "omp", False) or getattr(_local, "pool_lost", False):
        _local.pool_lost = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
