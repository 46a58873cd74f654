"""CUDA kernels launched through CuPy (imported only when a cupy array reaches an op).

    ops.py       the ops on cupy arrays: conv2d (direct, im2col, pointwise, depthwise), pool2d,
                 global_avg_pool2d, local_response_norm, bias_act; all on CuPy's current stream
    loader.py    compiles each *.cu once per device (cupy.RawModule, NVRTC) and caches its kernels
    *.cu         one file per kernel family, each opening with what it computes and how it is launched;
                 common.cuh holds the fused activation and the 64-bit grid-stride helpers
"""
