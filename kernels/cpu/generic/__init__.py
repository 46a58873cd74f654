"""The kernels/cpu/*.pyx modules compiled for the generic instruction set (setup.py); imported only where the CPU runs it."""
