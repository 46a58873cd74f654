"""Thread count of the CPU kernels: one process-wide setting, read once per call.

The kernels parallelise with OpenMP only (no BLAS threads underneath), so this one number is the
whole CPU parallelism of a call. Results are bit-identical for every thread count: each output
element is reduced by one thread in a fixed order.
"""
import os
import numbers

_num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_num_threads(n):
    """Set how many OpenMP threads the CPU kernels use (default: the cores this process may run on)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _num_threads = int(n)


def get_num_threads():
    return _num_threads
