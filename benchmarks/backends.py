"""Where a benchmark runs: the CPU (numpy arrays, perf_counter) or a CUDA device (cupy arrays, CUDA
events), and PyTorch's baseline on the same device when torch imports; on the CPU also the inference
engines of benchmarks.peers (ONNX Runtime, OpenVINO) that were asked for and are installed.

A backend moves numpy arrays to its device, gives the timer for our calls and for PyTorch's, and
builds PyTorch's convolution on the same data. On the GPU PyTorch runs with cuDNN's benchmark mode on
and TF32 off (fp32 against fp32); a depthwise layer is timed in both NCHW and channels_last and the
faster counts as PyTorch's time.
"""
from __future__ import annotations

import numpy as np

from .timing import cpu_timer


def import_torch():
    """torch, or None when it does not import."""
    try:
        import torch
        return torch
    except Exception:
        return None


class CpuBackend:
    name = "cpu"

    def __init__(self, threads: int, peers: dict | None = None):
        self.threads = threads
        self.torch = import_torch()
        self.peers = dict(peers or {})            # name in benchmarks.peers.PEERS -> its version
        self.timer_ours = cpu_timer
        self.timer_torch = cpu_timer

    def array(self, a: np.ndarray):
        return a

    def sync(self):
        pass

    def torch_tensor(self, a: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(a))

    def torch_conv(self, x, w, b, stride, pad, groups, channels_last=False):
        """PyTorch's conv2d on these numpy arrays, as a zero-argument callable (inference mode)."""
        torch = self.torch
        F = torch.nn.functional
        xt, wt = self.torch_tensor(x), self.torch_tensor(w)
        bt = None if b is None else self.torch_tensor(b)
        if channels_last:
            xt = xt.contiguous(memory_format=torch.channels_last)
            wt = wt.contiguous(memory_format=torch.channels_last)

        def call():
            with torch.inference_mode():
                return F.conv2d(xt, wt, bt, stride, pad, 1, groups)
        return call

    def torch_variants(self, x, w, b, stride, pad, groups, depthwise):
        """name -> PyTorch callable; the baseline is the fastest of them."""
        return {"pytorch": self.torch_conv(x, w, b, stride, pad, groups)}

    def describe(self):
        return {"device": "cpu", "threads": self.threads, "peers": self.peers}


class CudaBackend:
    """CuPy arrays through kernels.conv2d's CUDA kernels; CUDA events for the timings."""
    name = "cuda"
    peers = {}                                    # ONNX Runtime and OpenVINO run on the CPU only

    def __init__(self):
        import cupy
        self.cupy = cupy
        self.torch = import_torch()
        if self.torch is not None and not self.torch.cuda.is_available():
            self.torch = None
        if self.torch is not None:
            self.torch.backends.cudnn.benchmark = True
            self.torch.backends.cuda.matmul.allow_tf32 = False
            self.torch.backends.cudnn.allow_tf32 = False
        self.timer_ours = self._cupy_timer
        self.timer_torch = self._torch_timer

    def _cupy_timer(self, fn):
        cp = self.cupy
        start, end = cp.cuda.Event(), cp.cuda.Event()
        cp.cuda.Device().synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return cp.cuda.get_elapsed_time(start, end) / 1e3

    def _torch_timer(self, fn):
        torch = self.torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def array(self, a):
        return self.cupy.asarray(a)

    def sync(self):
        self.cupy.cuda.Device().synchronize()

    def torch_tensor(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a)).cuda()

    torch_conv = CpuBackend.torch_conv

    def torch_variants(self, x, w, b, stride, pad, groups, depthwise):
        out = {"pytorch": self.torch_conv(x, w, b, stride, pad, groups)}
        if depthwise:
            out["pytorch_cl"] = self.torch_conv(x, w, b, stride, pad, groups, channels_last=True)
        return out

    def describe(self):
        cp = self.cupy
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return {"device": "cuda", "gpu_name": name,
                "driver_version": cp.cuda.runtime.driverGetVersion(),
                "runtime_version": cp.cuda.runtime.runtimeGetVersion(),
                "compute_capability": f"{props['major']}.{props['minor']}",
                "memory_gib": props["totalGlobalMem"] / 2**30,
                "cudnn_benchmark": True, "tf32": False}


def cuda_backend_or_exit():
    """The CUDA backend, or SystemExit with the reason when no device is usable."""
    import kernels
    if not kernels.gpu_available():
        try:
            import cupy  # noqa: F401
            why = "CuPy imports but no CUDA device answers"
        except Exception as e:
            why = f"CuPy does not import ({type(e).__name__}: {e})"
        raise SystemExit(f"--device cuda: no usable CUDA device ({why}). Run on a machine with a GPU and "
                         f"cupy-cuda13x installed, or use --device cpu.")
    return CudaBackend()

