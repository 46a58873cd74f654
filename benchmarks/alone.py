"""One contender alone in its own process: each engine with its own defaults and no other engine's
threads beside it (ONNX Runtime's workers spin between calls by default, which an interleaved run must
forbid). Prints the median and best of `calls` forward passes after a warm-up.

    python -m benchmarks.alone ours|ours-fma|onnxruntime|openvino|pytorch NETWORK [--batch 1] [--threads 2]
    python -m benchmarks.alone table [--networks a,b] [--batches 1,8] [--rounds 2] [--peers a,b]

ours-fma is our plan with every layer on float32 FMAs (CONVFORGE_AMX=0): on a CPU with AMX tiles,
`--peers ours-fma,onnxruntime,openvino` shows what the tiles' bf16x3 products add.

`table` runs every (network, batch, contender) in a process of its own, one after another, for
`rounds` rounds with the contenders' order rotated each round, and prints per network and batch each
one's median ms (the median over the rounds of each process's median) and the peers' time / ours,
with the geometric mean and the smallest of each ratio. Run it on an idle machine; the peers need
`pip install .[peers]` and use the same cached ONNX export as `python -m benchmarks networks`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

import kernels  # noqa: F401  (first: our OpenMP runtime before torch's, see benchmarks/__main__.py)
from cnn import models

from . import peers, torch_models
from .suite_networks import QUICK_NETWORKS, input_shape

# "ours-fma": our plan with every layer on float32 FMAs (CONVFORGE_AMX=0), where the CPU has AMX
CONTENDERS = ("ours", "ours-fma", "onnxruntime", "openvino", "pytorch")


def contender(who, name, shape, threads):
    net = models.create(name, seed=0)
    if who in ("ours", "ours-fma"):
        if who == "ours-fma":
            os.environ["CONVFORGE_AMX"] = "0"      # this process is the contender's own
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


def measure(who, network, batch, threads, calls):
    """Median and best ms of `calls` forward passes after a warm-up, in this process."""
    shape = input_shape(network, batch)
    f = contender(who, network, shape, threads)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(5):
        f(x)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        f(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3, float(min(times)) * 1e3


def one(a):
    med, best = measure(a.who, a.network, a.batch, a.threads, a.calls)
    print(f"{a.who:12s} {a.network:16s} batch {a.batch}  {a.threads} threads  median {med:8.2f} ms"
          f"  best {best:8.2f} ms")


def _child(who, network, batch, threads, calls):
    out = subprocess.run([sys.executable, "-m", "benchmarks.alone", who, network, "--batch", str(batch),
                          "--threads", str(threads), "--calls", str(calls)],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[out.index("median") + 1])


def table(a):
    peers_ = [p for p in a.peers.split(",") if p]
    who = ["ours"] + peers_
    rows = []
    for batch in (int(b) for b in a.batches.split(",")):
        for network in a.networks.split(","):
            calls = max(4, a.calls // batch)
            runs = {w: [] for w in who}
            for r in range(a.rounds):
                for w in who[r % len(who):] + who[:r % len(who)]:
                    runs[w].append(_child(w, network, batch, a.threads, calls))
            ms = {w: float(np.median(v)) for w, v in runs.items()}
            rows.append((network, batch, ms))
            line = f"| {network} | {batch} | {ms['ours']:.2f} | " + " | ".join(
                f"{ms[p]:.2f} | {ms[p] / ms['ours']:.2f}x" for p in peers_) + " |"
            print(line, flush=True)
    print()
    for p in peers_:
        r = np.array([ms[p] / ms["ours"] for _, _, ms in rows])
        worst = rows[int(np.argmin(r))]
        print(f"x {p}: geometric mean {np.exp(np.log(r).mean()):.3f}, smallest {r.min():.2f} "
              f"({worst[0]} batch {worst[1]})")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["table"]:
        p = argparse.ArgumentParser(prog="python -m benchmarks.alone table", description=__doc__.split("\n")[0])
        p.add_argument("--networks", default=",".join(QUICK_NETWORKS))
        p.add_argument("--batches", default="1,8")
        p.add_argument("--rounds", type=int, default=2)
        p.add_argument("--peers", default="onnxruntime,openvino")
        p.add_argument("--threads", type=int, default=kernels.get_num_threads())
        p.add_argument("--calls", type=int, default=40, help="calls per process at batch 1 (divided by the batch)")
        a = p.parse_args(argv[1:])
        peers_ = [q for q in a.peers.split(",") if q]
        print(f"{a.threads} threads, {a.rounds} rounds, each contender alone in its own process")
        print("| network | batch | ours ms | " + " | ".join(f"{q} ms | x {q}" for q in peers_) + " |")
        print("|---|---|---|" + "---|---|" * len(peers_))
        table(a)
        return
    p = argparse.ArgumentParser(prog="python -m benchmarks.alone", description=__doc__.split("\n")[0])
    p.add_argument("who", choices=CONTENDERS)
    p.add_argument("network", choices=models.available())
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=kernels.get_num_threads())
    p.add_argument("--calls", type=int, default=40)
    one(p.parse_args(argv))


if __name__ == "__main__":
    main()
