"""Hand-written convolution kernels: Cython + OpenMP on the CPU, CUDA through CuPy on the GPU.

    import kernels
    y = kernels.conv2d(x, w, bias, stride=1, padding="same", algorithm="auto")

numpy arrays run on the CPU kernels, cupy arrays on the CUDA kernels. `kernels.reference` holds the
float64 NumPy oracle of every op.
"""
from . import reference
from ._conv import conv2d
from ._device import gpu_available
from ._threads import get_num_threads, set_num_threads
from .shapes import ALGORITHMS, conv2d_output_shape

__all__ = [
    "ALGORITHMS",
    "conv2d",
    "conv2d_output_shape",
    "get_num_threads",
    "gpu_available",
    "reference",
    "set_num_threads",
]

# Pooling and local response normalisation (kernels/pooling.py).
from .pooling import avg_pool2d, global_avg_pool2d, local_response_norm, max_pool2d  # noqa: E402

__all__ += ["avg_pool2d", "global_avg_pool2d", "local_response_norm", "max_pool2d"]
