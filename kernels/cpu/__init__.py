"""The CPU kernels, and the choice of the instruction set they run with.

setup.py compiles every kernel module once per ISA (kernels/cpu/isa.py): kernels.cpu.avx512.direct,
kernels.cpu.avx2.direct, kernels.cpu.generic.direct, ... At import this package picks one ISA for
the process, the best one that the CPU supports (CPUID) and that was built, as oneDNN, MLAS and
PyTorch do; CONVFORGE_ISA=avx512|avx2|generic forces one, and a forced ISA that the CPU cannot run
(or that was not built) is an error here, not an illegal instruction later. Only the chosen variant
is ever imported. `kernels.cpu.direct` and friends name the chosen variant's modules.
"""
import functools
import importlib
import importlib.util
import os

from . import cpuid
from .isa import ISAS, LEVELS

KERNELS = ("direct", "im2col", "pointwise", "depthwise", "pooling", "blocked", "layout", "amx")


def runnable_isas():
    """The ISAs this CPU supports, best first (whether built or not)."""
    if not cpuid.is_x86():
        return ["generic"]
    return [isa for isa in ISAS if cpuid.supports(LEVELS[isa])]


def built_isas():
    """The ISAs whose kernel variants are installed, best first."""
    return [isa for isa in ISAS if importlib.util.find_spec(f"kernels.cpu.{isa}.direct") is not None]


def choose_isa(runnable, built, forced=None):
    """The variant to run: `forced` (CONVFORGE_ISA) when the CPU runs it and it was built, else the
    best one that is both runnable and built. Raises ValueError/RuntimeError/ImportError saying why not."""
    forced = (forced or "").strip().lower()
    if forced:
        if forced not in ISAS:
            raise ValueError(f"CONVFORGE_ISA must be one of {', '.join(ISAS)}, got {forced!r}")
        if forced not in runnable:
            raise RuntimeError(f"CONVFORGE_ISA={forced}: this CPU does not support it (it runs "
                               f"{', '.join(runnable)}); unset CONVFORGE_ISA to choose automatically")
        if forced not in built:
            raise RuntimeError(f"CONVFORGE_ISA={forced}: the kernels were not built for it (built: "
                               f"{', '.join(built) or 'none'}); rebuild without CONVFORGE_ISAS/CONVFORGE_NATIVE")
        return forced
    for isa in runnable:
        if isa in built:
            return isa
    raise ImportError("no CPU kernel variant is built for this CPU (built: "
                      f"{', '.join(built) or 'none'}); run `make build` or `pip install .`")


ISA = choose_isa(runnable_isas(), built_isas(), os.environ.get("CONVFORGE_ISA"))


@functools.lru_cache(maxsize=None)
def load(name, package="kernels.cpu"):
    """The chosen ISA's variant of a compiled module, e.g. load('direct') or load('peak', 'benchmarks')."""
    try:
        return importlib.import_module(f"{package}.{ISA}.{name}")
    except ImportError as e:
        raise ImportError(f"the CPU module {package}.{ISA}.{name} is not built ({e}); run "
                          f"`make build` or `pip install .` in the source tree") from e


def info():
    """{"isa": the chosen variant, "runnable": the ISAs this CPU supports, "built": those compiled,
    "forced": CONVFORGE_ISA or None, "flags": the CPU's vector features, "vendor": 'intel', 'amd' or
    'other', "amx": whether the chosen variant runs the AMX tile kernel here (kernels/amx.py)}."""
    return {
        "isa": ISA,
        "runnable": runnable_isas(),
        "built": built_isas(),
        "forced": os.environ.get("CONVFORGE_ISA") or None,
        "flags": cpuid.flags() if cpuid.is_x86() else [],
        "vendor": cpuid.vendor(),
        "amx": bool(load("amx").usable()),
    }


def __getattr__(name):
    if name in KERNELS:
        return load(name)
    raise AttributeError(f"module 'kernels.cpu' has no attribute {name!r}")
