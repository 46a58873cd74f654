"""The kernels/cpu/*.pyx modules compiled for the avx512 instruction set (setup.py); imported only where the CPU runs it."""
