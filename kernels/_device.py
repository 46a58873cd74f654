"""Which backend an array belongs to, without importing CuPy unless a CuPy array is in hand."""
import functools

import numpy as np


def is_cupy(a):
    return type(a).__module__.split(".")[0] == "cupy"


def array_kind(a, name):
    """'cpu' for numpy arrays, 'gpu' for cupy arrays; TypeError for anything else."""
    if isinstance(a, np.ndarray):
        return "cpu"
    if is_cupy(a) and hasattr(a, "shape") and hasattr(a, "dtype"):
        return "gpu"
    raise TypeError(f"{name} must be a numpy.ndarray or cupy.ndarray, got {type(a).__name__}")


@functools.lru_cache(maxsize=1)
def gpu_available():
    """True only when CuPy imports and a CUDA device answers."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0 and bool(cupy.arange(2).sum() == 1)
    except Exception:
        return False
