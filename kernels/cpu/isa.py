"""The instruction sets the CPU kernels are compiled for: data shared by setup.py and the loader.

Pure Python with no imports from the package: setup.py reads this file before anything is built.
Each ISA is an x86-64 micro-architecture level (GCC's -march=x86-64-v4 / -v3 / baseline), so the
run-time test is one CPUID check of the same level (__builtin_cpu_supports, which also checks that
the OS saves the vector registers).
"""
import os

# best first
ISAS = ("avx512", "avx2", "generic")

# the x86-64 level of each variant: what setup.py compiles for and what the CPU must support
LEVELS = {"avx512": "x86-64-v4", "avx2": "x86-64-v3", "generic": "x86-64"}
MARCH_FLAGS = {isa: [f"-march={level}", "-mtune=generic"] for isa, level in LEVELS.items()}
# 512-bit vectors for the auto-vectorised loops too (GCC otherwise prefers 256-bit ones)
EXTRA_FLAGS = {"avx512": ["-mprefer-vector-width=512"], "avx2": [], "generic": []}
# flags of one module in one variant beyond the variant's own: the AMX kernel's tile and bf16
# instructions, which only a CPU that has them runs (kernels/cpu/amx.pyx checks before any is made)
MODULE_FLAGS = {"amx": {"avx512": ["-mamx-tile", "-mamx-bf16", "-mavx512bf16"]}}

# /proc/cpuinfo flags of each level beyond the one below it (for a native build on the build host)
_HOST_FLAGS = {
    "avx512": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma"},
    "avx2": {"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"},
    "generic": set(),
}


def best_native_isa(candidates):
    """The best of `candidates` that the build host runs (read from /proc/cpuinfo)."""
    flags = set()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    flags |= {"bmi1"} if "bmi1" in flags or "bmi" in flags else set()
    for isa in ISAS:
        if isa in candidates and _HOST_FLAGS[isa] <= flags:
            return isa
    return "generic"
