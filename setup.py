"""Build the Cython CPU kernels.

Every kernels/cpu/*.pyx becomes one extension, compiled with OpenMP and -O3.

Environment switches:
  CONVFORGE_PORTABLE=1   no -march=native (a wheel that runs on any x86-64; the AVX-512 paths compile out)
  CONVFORGE_DEBUG=1      Cython bounds/wraparound checks on, -O0 -g: for chasing a memory error
  CONVFORGE_EXT=a,b      build only these modules (e.g. "direct,gemm") while iterating on one kernel
"""
import glob
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

PORTABLE = os.environ.get("CONVFORGE_PORTABLE", "0") not in ("", "0")
DEBUG = os.environ.get("CONVFORGE_DEBUG", "0") not in ("", "0")
ONLY = {s.strip() for s in os.environ.get("CONVFORGE_EXT", "").split(",") if s.strip()}

compile_args = ["-fopenmp", "-fno-strict-aliasing"]
if DEBUG:
    compile_args += ["-O0", "-g"]
else:
    compile_args += ["-O3", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math"]
if not PORTABLE and sys.platform.startswith("linux"):
    compile_args += ["-march=native", "-mtune=native"]
if not PORTABLE:
    # 512-bit vectors on AVX-512 parts (GCC otherwise prefers 256-bit for auto-vectorised loops)
    compile_args += ["-mprefer-vector-width=512"] if not DEBUG else []
link_args = ["-fopenmp"]

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}

extensions = []
# the kernels, and the benchmark's own probes of the machine (peak FMA rate, bandwidth)
sources = sorted(glob.glob(os.path.join("kernels", "cpu", "*.pyx"))) + sorted(glob.glob(os.path.join("benchmarks", "*.pyx")))
for path in sources:
    name = os.path.splitext(os.path.basename(path))[0]
    if ONLY and name not in ONLY:
        continue
    package = os.path.dirname(path).replace(os.sep, ".")
    extensions.append(
        Extension(
            f"{package}.{name}",
            [path],
            include_dirs=[np.get_include(), os.path.dirname(path)],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    )

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, quiet=True),
)
