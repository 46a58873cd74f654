"""CUDA kernels launched through CuPy (imported only when a cupy array reaches an op)."""
