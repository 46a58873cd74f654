"""One contender alone in its own process: each engine with its own defaults and no other engine's
threads beside it (ONNX Runtime's workers spin between calls by default, which an interleaved run must
forbid). Prints the median and best of `calls` forward passes after a warm-up.

    python -m benchmarks.alone ours|onnxruntime|openvino|pytorch NETWORK [--batch 1] [--threads 2]

Run the contenders one after another (a shell loop) on an idle machine; the peers need
`pip install .[peers]` and use the same cached ONNX export as `python -m benchmarks networks`.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import kernels  # noqa: F401  (first: our OpenMP runtime before torch's, see benchmarks/__main__.py)
from cnn import models

from . import peers, torch_models
from .suite_networks import input_shape

CONTENDERS = ("ours", "onnxruntime", "openvino", "pytorch")


def contender(who, name, shape, threads):
    net = models.create(name, seed=0)
    if who == "ours":
        kernels.set_num_threads(threads)
        return net.prepare(shape)
    import torch
    torch.set_num_threads(threads)
    twin = torch_models.create(name)
    state = {k: torch.from_numpy(np.array(v)) for k, v in net.state_dict().items()}
    twin.load_state_dict(state)
    twin.eval()
    if who == "pytorch":
        def run(x):
            with torch.inference_mode():
                return twin(torch.from_numpy(x))
        return run
    path = peers.network_onnx(name, twin, net.state_dict(), shape)
    if who == "onnxruntime":
        return peers.OnnxRuntime(path, threads, spinning=True)
    return peers.OpenVino(path, threads)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.alone", description=__doc__.split("\n")[0])
    p.add_argument("who", choices=CONTENDERS)
    p.add_argument("network", choices=models.available())
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=kernels.get_num_threads())
    p.add_argument("--calls", type=int, default=40)
    a = p.parse_args(argv)
    shape = input_shape(a.network, a.batch)
    f = contender(a.who, a.network, shape, a.threads)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(5):
        f(x)
    times = []
    for _ in range(a.calls):
        t = time.perf_counter()
        f(x)
        times.append(time.perf_counter() - t)
    print(f"{a.who:12s} {a.network:16s} batch {a.batch}  {a.threads} threads  median {np.median(times) * 1e3:8.2f} ms"
          f"  best {min(times) * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
