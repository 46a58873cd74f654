"""Check what a built wheel holds: every package of the source tree, a compiled variant of each CPU
kernel for every ISA, the CUDA sources; no generated C, Cython sources or test files.

    python .ci/check_wheel.py dist/convforge-*.whl
"""
import sys
import zipfile

KERNELS = ("direct", "im2col", "pointwise", "depthwise", "pooling", "blocked", "layout", "amx")
ISAS = ("avx512", "avx2", "generic")
PACKAGES = ("kernels", "kernels/cpu", "kernels/cuda", "cnn", "cnn/layers", "cnn/models", "benchmarks")


def problems(names):
    out = []
    for pkg in PACKAGES:
        if f"{pkg}/__init__.py" not in names:
            out.append(f"package {pkg} is missing")
    for isa in ISAS:
        for k in KERNELS:
            if not any(n.startswith(f"kernels/cpu/{isa}/{k}.") and n.endswith(".so") for n in names):
                out.append(f"kernel {k} is not built for {isa}")
    if not any(n.startswith("kernels/cpu/cpuid.") and n.endswith(".so") for n in names):
        out.append("kernels/cpu/cpuid is not built")
    if not any(n.startswith("kernels/cuda/") and n.endswith(".cu") for n in names):
        out.append("the CUDA sources are missing")
    for n in names:
        base = n.rsplit("/", 1)[-1]
        if n.endswith((".c", ".cpp", ".pyx", ".html")):
            out.append(f"generated or build-only file {n}")
        if base.startswith("test_") or base == "conftest.py" or n.startswith("tests/"):
            out.append(f"test file {n}")
    return out


def main(path):
    names = set(zipfile.ZipFile(path).namelist())
    found = problems(names)
    for p in found:
        print("wheel:", p)
    print(f"{path}: {len(names)} files, {'OK' if not found else f'{len(found)} problems'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
