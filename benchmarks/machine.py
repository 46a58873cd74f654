"""What machine the numbers come from, and its measured ceilings (peak FLOP rate, bandwidth)."""
from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys

import kernels

VERSIONED = ("numpy", "scipy", "Cython", "torch", "cupy", "matplotlib", "rich", "threadpoolctl")

# Per-thread working sets of the bandwidth probes: inside L2, inside L3, well past L3 (DRAM).
BANDWIDTH_SIZES = {"l2": 256 << 10, "l3": 4 << 20, "dram": 128 << 20}


def _cpuinfo():
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = value.split()
    except OSError:
        pass
    return model, flags


def _blas():
    """The BLAS libraries threadpoolctl sees (numpy's; scipy's if it is loaded) and the machine
    kernel each chose (OpenBLAS' 'architecture')."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl not installed"}]
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "threading_layer", "num_threads", "filepath")
    return [{k: d.get(k) for k in keep if k in d} for d in threadpool_info()]


def versions():
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        if name in ("torch", "cupy") and name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:
                continue
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:
            continue
    return out


def load_average():
    """The 1, 5 and 15 minute load averages: above the core count, other processes share the cores and
    every timing (and ceiling) is slower than the machine can do."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def describe(threads: int) -> dict:
    model, flags = _cpuinfo()
    simd = [f for f in flags if f.startswith(("avx", "fma", "sse4", "amx"))]
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": model,
        "cpu_simd_flags": simd,
        "cpu_flags": flags,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": threads,
        "load_average": load_average(),
        "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
        # our kernel variant, and how PyTorch's ISA was limited (to compare like with like)
        "kernels_isa": kernels.cpu_info()["isa"],
        "isa_env": {k: os.environ[k] for k in ("CONVFORGE_ISA", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
                    if k in os.environ},
        "blas": _blas(),
        "versions": versions(),
    }


def cpu_ceilings(threads: int, quick: bool = True) -> dict:
    """Measured peak GFLOP/s (fp32, fp64) and bandwidths (GB/s) at `threads` threads.

    The roofline's memory roof is the DRAM copy bandwidth (read + write of a working set 4x the L3):
    layers whose data stays in cache can run above it, which the report points out."""
    from kernels import cpu
    peak = cpu.load("peak", "benchmarks")
    seconds, repeats = (0.005, 40) if quick else (0.02, 100)   # many short runs: the best dodges the load of a shared machine
    out = {"isa": peak.isa(), "threads": threads, "peak_gflops": {}, "bandwidth_gbps": {}}
    for dt in ("float32", "float64"):
        out["peak_gflops"][dt] = peak.fma_gflops(dt, threads, seconds, repeats)
    out["peak_gflops_1thread"] = {"float32": peak.fma_gflops("float32", 1, seconds, repeats)}
    for level, per_thread in BANDWIDTH_SIZES.items():
        nbytes = per_thread * threads
        out["bandwidth_gbps"][f"{level}_copy"] = peak.copy_gbps(nbytes, threads, seconds, repeats)
        out["bandwidth_gbps"][f"{level}_read"] = peak.read_gbps(nbytes, threads, seconds, repeats)
    out["roofline_bandwidth_gbps"] = out["bandwidth_gbps"]["dram_copy"]
    out["roofline_bandwidth_name"] = "dram_copy"
    return out


def set_threads(n: int):
    """The same thread count for our kernels and for PyTorch (when it is imported)."""
    kernels.set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
