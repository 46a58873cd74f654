"""Hand-written convolution kernels: Cython + OpenMP on the CPU, CUDA through CuPy on the GPU.

    import kernels
    y = kernels.conv2d(x, w, bias, stride=1, padding="same", algorithm="auto")

numpy arrays run on the CPU kernels, cupy arrays on the CUDA kernels. `kernels.reference` holds the
float64 NumPy oracle of every op. The CPU kernels are built for AVX-512, AVX2 + FMA and generic x86-64;
the best one this CPU runs is chosen at import (`kernels.cpu_info()["isa"]`; CONVFORGE_ISA forces one).
"""
from . import reference
from ._conv import conv2d
from .cpu import info as cpu_info
from ._device import gpu_available
from ._threads import get_num_threads, set_num_threads
from .shapes import ALGORITHMS, conv2d_output_shape

__all__ = [
    "ALGORITHMS",
    "conv2d",
    "conv2d_output_shape",
    "cpu_info",
    "get_num_threads",
    "gpu_available",
    "reference",
    "set_num_threads",
]

# Pooling and local response normalisation (kernels/pooling.py).
from .pooling import avg_pool2d, global_avg_pool2d, local_response_norm, max_pool2d  # noqa: E402

__all__ += ["avg_pool2d", "global_avg_pool2d", "local_response_norm", "max_pool2d"]
