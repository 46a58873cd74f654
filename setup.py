"""Build the Cython CPU kernels, once per instruction set.

Every kernels/cpu/*.pyx (and benchmarks/*.pyx, the machine's own ceilings) is compiled once for each
ISA in kernels/cpu/isa.py: kernels/cpu/direct.pyx becomes kernels.cpu.avx512.direct,
kernels.cpu.avx2.direct and kernels.cpu.generic.direct, each compiled with its own -march. One build
runs on any x86-64: kernels.cpu picks the best variant the CPU supports at import (CPUID), and a
variant is never imported on a CPU that lacks its instructions. kernels/cpu/cpuid.pyx, which makes
that choice, is built once for the baseline ISA.

Environment switches:
  CONVFORGE_ISAS=a,b     build only these variants (e.g. "avx512" while iterating; default: all)
  CONVFORGE_NATIVE=1     tune for this machine: -march=native -mtune=native on the variant this CPU
                         runs best, and no other variant (a local build, not a wheel to ship)
  CONVFORGE_DEBUG=1      Cython bounds/wraparound checks on, -O0 -g: for chasing a memory error
  CONVFORGE_EXT=a,b      build only these modules (e.g. "direct,im2col") while iterating on one kernel
"""
import glob
import importlib.util
import os
import platform

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py


def _load_isa_table():
    """kernels/cpu/isa.py without importing the package (which needs the built extensions)."""
    spec = importlib.util.spec_from_file_location("_isa_table", os.path.join("kernels", "cpu", "isa.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _switch(name):
    return os.environ.get(name, "0") not in ("", "0")


def _names(name):
    return [s.strip() for s in os.environ.get(name, "").split(",") if s.strip()]


ISA = _load_isa_table()
DEBUG = _switch("CONVFORGE_DEBUG")
NATIVE = _switch("CONVFORGE_NATIVE")
ONLY = set(_names("CONVFORGE_EXT"))
X86 = platform.machine().lower() in ("x86_64", "amd64")

isas = _names("CONVFORGE_ISAS") or list(ISA.ISAS)
unknown = set(isas) - set(ISA.ISAS)
if unknown:
    raise SystemExit(f"CONVFORGE_ISAS: unknown ISA {sorted(unknown)}; choose from {ISA.ISAS}")
if not X86:
    isas = ["generic"]          # the intrinsics paths are x86; elsewhere only the portable C builds
if NATIVE:
    isas = [ISA.best_native_isa(isas)]

base_args = ["-fopenmp", "-fno-strict-aliasing", "-Wno-psabi"]
if DEBUG:
    base_args += ["-O0", "-g"]
else:
    base_args += ["-O3", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math"]


def isa_args(isa):
    if not X86:
        return []
    if NATIVE:
        return ["-march=native", "-mtune=native"] + ISA.EXTRA_FLAGS[isa]
    return ISA.MARCH_FLAGS[isa] + ISA.EXTRA_FLAGS[isa]


directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}


def extension(name, path, args):
    return Extension(
        name,
        [path],
        include_dirs=[np.get_include(), os.path.dirname(path)],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=base_args + args,
        extra_link_args=["-fopenmp"],
    )


# Cython writes one .c per extension; the variants of one .pyx differ in module name, so each ISA
# gets its own build directory for the generated C.
ext_modules = []
cpuid = os.path.join("kernels", "cpu", "cpuid.pyx")
if not ONLY or "cpuid" in ONLY:
    ext_modules += cythonize([extension("kernels.cpu.cpuid", cpuid, [])], compiler_directives=directives,
                             quiet=True, build_dir=os.path.join("build", "cython", "baseline"))
sources = [p for p in sorted(glob.glob(os.path.join("kernels", "cpu", "*.pyx"))) if p != cpuid]
sources += sorted(glob.glob(os.path.join("benchmarks", "*.pyx")))
for isa in isas:
    exts, flags = [], {}
    for path in sources:
        name = os.path.splitext(os.path.basename(path))[0]
        if ONLY and name not in ONLY:
            continue
        package = os.path.dirname(path).replace(os.sep, ".")
        extra = ISA.MODULE_FLAGS.get(name, {}).get(isa, []) if X86 else []
        ext = extension(f"{package}.{isa}.{name}", path, isa_args(isa) + extra)
        flags[ext.name] = list(ext.extra_compile_args)
        exts.append(ext)
    if exts:
        built = cythonize(exts, compiler_directives=directives, quiet=True,
                          build_dir=os.path.join("build", "cython", isa))
        # cythonize merges the compile flags of one .pyx across calls (its per-file metadata is
        # cached), so each variant would also get the flags of the variants before it: set them again
        for ext in built:
            ext.extra_compile_args = flags[ext.name]
        ext_modules += built

class build_py_without_tests(build_py):
    """The benchmarks package holds pytest-benchmark suites (test_*.py, conftest.py) beside its code:
    they run from the source tree and stay out of the wheel."""

    def find_package_modules(self, package, package_dir):
        return [(pkg, mod, path) for pkg, mod, path in super().find_package_modules(package, package_dir)
                if not (mod.startswith("test_") or mod == "conftest")]


class build_ext_parallel(build_ext):
    """Compile the extensions in parallel (three variants of each module) unless -j says otherwise."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1


setup(ext_modules=ext_modules, cmdclass={"build_py": build_py_without_tests, "build_ext": build_ext_parallel})
