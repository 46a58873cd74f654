"""pytest-benchmark suites (not part of `make test`): `pytest benchmarks` times the kernels, the
separable pairs and the network forward passes; `pytest benchmarks --benchmark-compare` compares with
the last saved run (`--benchmark-autosave`), so a regression between commits shows up.

The machine info pytest-benchmark stores with every run gets the CPU's SIMD flags, the BLAS library
and the kernel it chose, the thread count and the GPU, so runs from different machines are told apart.
"""
import pytest

import kernels

from .machine import describe, set_threads


def pytest_benchmark_update_machine_info(config, machine_info):
    info = describe(kernels.get_num_threads())
    machine_info["cpu_model"] = info["cpu_model"]
    machine_info["cpu_simd_flags"] = info["cpu_simd_flags"]
    machine_info["blas"] = info["blas"]
    machine_info["threads"] = info["threads"]
    machine_info["library_versions"] = info["versions"]
    if kernels.gpu_available():
        from .backends import CudaBackend
        machine_info["gpu"] = CudaBackend().describe()
    else:
        machine_info["gpu"] = None


@pytest.fixture(scope="session", autouse=True)
def same_threads():
    """Our kernels and PyTorch on the same thread count."""
    set_threads(kernels.get_num_threads())


def record(benchmark, macs, **info):
    """MACs, FLOPs and (when timed) GFLOP/s at the median into the benchmark's extra_info."""
    benchmark.extra_info.update(info)
    benchmark.extra_info["macs"] = int(macs)
    benchmark.extra_info["flops"] = 2 * int(macs)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None and stats.stats.median > 0:
        benchmark.extra_info["gflops"] = 2 * macs / stats.stats.median / 1e9


def run_or_skip(fn):
    """Call fn once: skip the test when the kernel it needs is not built."""
    try:
        return fn()
    except ImportError as e:
        pytest.skip(f"not built: {e}")


def torch_or_skip():
    return pytest.importorskip("torch")

