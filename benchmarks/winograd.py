"""python -m benchmarks.winograd [--threads N] [--rounds R] [--layers a,b]

The inference plan's 3x3 stride-1 layers by each algorithm on the blocked layout: the direct kernel,
Winograd F(2x2, 3x3) and F(4x4, 3x3), interleaved round by round in one process; each call takes the
next of four copies of the layer's weights, so its weights come from memory as in a network (one
layer's weights would otherwise sit in L3 from the call before). Prints, per layer, the median time
and the GFLOP/s of the direct convolution's FLOPs for each, the ratio of the best Winograd to direct,
and what kernels.blocked.winograd_tile (the plan's rule) picks, so the rule can be checked against
the measurement on any machine.
"""
from __future__ import annotations

import numpy as np

from kernels import blocked as B
from kernels.cpu import load

from . import layer_runs
from .layer_runs import COPIES, interleaved

# (name, N, C, K, H): the zoo's 3x3 stride-1 layers at 224x224 input, batch 1 and 8
LAYERS = [
    ("resnet.56", 1, 64, 64, 56), ("resnet.28", 1, 128, 128, 28), ("resnet.14", 1, 256, 256, 14),
    ("resnet.7", 1, 512, 512, 7), ("resnet.56.b8", 8, 64, 64, 56), ("resnet.14.b8", 8, 256, 256, 14),
    ("resnet.7.b8", 8, 512, 512, 7), ("vgg.224", 1, 64, 64, 224), ("vgg.112", 1, 128, 128, 112),
    ("vgg.56", 1, 256, 256, 56), ("vgg.28", 1, 512, 512, 28), ("vgg.14", 1, 512, 512, 14),
    ("googlenet.28", 1, 96, 128, 28), ("googlenet.14", 1, 112, 224, 14), ("alexnet.13", 1, 384, 256, 13),
]


def measure(N, C, K, H, threads, rounds, seed=0):
    """Median seconds per call of direct, F2 and F4 on one layer: {name: s}."""
    F = load("blocked")
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal(B.blocked_shape(N, C, H, H, 1)).astype(np.float32)
    B.zero_frame(xb, 1)
    y = np.zeros(B.blocked_shape(N, K, H, H, 1), np.float32)
    steps = {"direct": [], "F2": [], "F4": []}
    for _ in range(COPIES):
        w = rng.standard_normal((K, C, 3, 3)).astype(np.float32)
        steps["direct"].append(F.Conv(xb, 1, B.ConvWeights(w, None, (1, 1), (1, 1), (1, 1)), y, 1, None, 0, 1))
        for m in (2, 4):
            steps[f"F{m}"].append(F.Winograd(xb, 1, B.WinogradWeights(w, None, (1, 1), m), y, 1, None, 0, 1))
    return interleaved(steps, threads, rounds)


def table(layers, threads, rounds):
    """The markdown table (printed row by row as measured)."""
    lines = [f"3x3 stride-1 layers, {threads} threads, median of {rounds} rounds; GFLOP/s of the direct FLOPs",
             "", "| layer | N | C->K @HxW | direct us | F2 us | F4 us | best F / direct | rule picks |",
             "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name, N, C, K, H in layers:
        t = measure(N, C, K, H, threads, rounds)
        flops = 2 * N * K * C * 9 * H * H
        cell = lambda s: f"{s * 1e6:.0f} ({flops / s / 1e9:.0f})"  # noqa: E731
        m = B.winograd_tile(N, C, K, H, H)
        lines.append(f"| {name} | {N} | {C}->{K} @{H} | {cell(t['direct'])} | {cell(t['F2'])} | {cell(t['F4'])} | "
                     f"{t['direct'] / min(t['F2'], t['F4']):.2f} | {f'F{m}' if m else 'direct'} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv=None):
    layer_runs.main(argv, "python -m benchmarks.winograd", __doc__, LAYERS, table, rounds=9)


if __name__ == "__main__":
    main()
