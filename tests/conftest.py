import numpy as np
import pytest

import kernels


def pytest_collection_modifyitems(config, items):
    if kernels.gpu_available():
        return
    skip = pytest.mark.skip(reason="no usable CUDA device (CuPy missing or no GPU)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def rel_error(y, ref):
    """||y - ref|| / ||ref|| in float64 (the project's accuracy measure)."""
    y = kernels.reference.to_host64(y)
    ref = np.asarray(ref, dtype=np.float64)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    denom = np.linalg.norm(ref.ravel())
    return float(np.linalg.norm((y - ref).ravel()) / (denom if denom > 0 else 1.0))


TOL = {np.float32: 1e-5, np.float64: 1e-12}
