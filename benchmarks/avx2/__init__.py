"""The benchmarks/*.pyx modules compiled for the avx2 instruction set (setup.py); imported only where the CPU runs it."""
