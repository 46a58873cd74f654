"""python -m benchmarks.amx [--threads N] [--rounds R] [--layers a,b]

The inference plan's dense layers on AMX tiles (bf16x3, kernels/cpu/amx.h) against the float32 FMA
kernels on the blocked layout (the direct kernel with the cost model's tile; Winograd F(4x4, 3x3)
too for 3x3 stride-1 layers), interleaved round by round in one process; each call takes the next of
four copies of the layer's weights, so they come from memory as in a network. Prints per layer the
median time, GFLOP/s (the convolution's own FLOPs), the FMA kernels' share of the machine's FMA
peak measured in the same run, the speed-up of the tiles over the faster FMA kernel, and the AMX
partition the model picks. Needs a CPU with AMX (kernels.cpu_info()["amx"]).
"""
from __future__ import annotations

import numpy as np

from kernels import amx as A
from kernels import blocked as B
from kernels.cpu import load

from . import layer_runs
from .layer_runs import COPIES, interleaved

# (name, N, C, K, H, R, stride): the zoo's layer shapes at 224x224 input, where their time goes
LAYERS = [
    ("r50.2a_1x1in", 1, 256, 64, 56, 1, 1), ("r50.2a_3x3", 1, 64, 64, 56, 3, 1),
    ("r50.2a_1x1out", 1, 64, 256, 56, 1, 1), ("r50.3a_3x3s2", 1, 128, 128, 56, 3, 2),
    ("r50.4a_3x3", 1, 256, 256, 14, 3, 1), ("r50.5a_3x3", 1, 512, 512, 7, 3, 1),
    ("r50.5a_1x1", 1, 2048, 512, 7, 1, 1), ("r50.down_s2", 1, 1024, 2048, 14, 1, 2),
    ("r50.5a_3x3.b8", 8, 512, 512, 7, 3, 1), ("mv1.pw14", 1, 512, 512, 14, 1, 1),
    ("mv1.pw7.b8", 8, 1024, 1024, 7, 1, 1), ("mv2.pw112", 1, 16, 96, 112, 1, 1),
    ("mv2.pw56", 1, 144, 24, 56, 1, 1), ("vgg.c3_2", 1, 256, 256, 56, 3, 1),
    ("vgg.c1_2", 1, 64, 64, 224, 3, 1), ("effb0.pw14", 1, 672, 112, 14, 1, 1),
]


def measure(N, C, K, H, R, stride, threads, rounds, seed=0):
    """({variant: median seconds per call}, the AMX partition): "amx", "direct", and "F4" for 3x3
    stride-1 layers."""
    F, X = load("blocked"), load("amx")
    rng = np.random.default_rng(seed)
    pad = R // 2
    P = (H + 2 * pad - R) // stride + 1
    xb = rng.standard_normal(B.blocked_shape(N, C, H, H, pad)).astype(np.float32)
    B.zero_frame(xb, pad)
    y = B.aligned_zeros(B.blocked_shape(N, K, P, P, 1))
    steps = {"amx": [], "direct": []}
    if R == 3 and stride == 1:
        steps["F4"] = []
    for _ in range(COPIES):
        w = (rng.standard_normal((K, C, R, R)) / np.sqrt(C * R * R)).astype(np.float32)
        aw = A.AmxWeights(w, None, (stride, stride), (pad, pad), (1, 1))
        steps["amx"].append(X.Conv(xb, pad, aw, y, 1, None, 0, 1))
        steps["direct"].append(F.Conv(xb, pad, aw.exact, y, 1, None, 0, 1))
        if "F4" in steps:
            steps["F4"].append(F.Winograd(xb, pad, B.WinogradWeights(w, None, (pad, pad), 4), y, 1, None, 0, 1))
    t = interleaved(steps, threads, rounds)
    return t, steps["amx"][0].partition


def table(layers, threads, rounds):
    """The markdown table (printed row by row as measured)."""
    from .machine import cpu_ceilings
    if not load("amx").usable():
        raise SystemExit("benchmarks.amx: no AMX tiles on this CPU (kernels.cpu_info()['amx'] is False)")
    peak = cpu_ceilings(threads)["peak_gflops"]["float32"]
    lines = [f"Dense layers, {threads} threads, median of {rounds} rounds, weights from memory; us (GFLOP/s); "
             f"FMA peak {peak:.0f} GFLOP/s measured in this run", "",
             "| layer | N | C->K RxR/s @H | direct | Winograd F4 | best FMA % of peak | AMX | AMX / best FMA "
             "| AMX partition (band, images, blocks, chunk) |",
             "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name, N, C, K, H, R, stride in layers:
        t, part = measure(N, C, K, H, R, stride, threads, rounds)
        P = (H + 2 * (R // 2) - R) // stride + 1
        flops = 2 * N * K * C * R * R * P * P
        cell = lambda s: f"{s * 1e6:.0f} ({flops / s / 1e9:.0f})"  # noqa: E731
        fma = min(t["direct"], t.get("F4", np.inf))
        lines.append(f"| {name} | {N} | {C}->{K} {R}x{R}/{stride} @{H} | {cell(t['direct'])} | "
                     f"{cell(t['F4']) if 'F4' in t else '-'} | {100 * flops / fma / 1e9 / peak:.0f}% | "
                     f"{cell(t['amx'])} | {fma / t['amx']:.2f}x | "
                     f"{part['band']}, {part['images']}, {part['blocks']}, {part['chunk']} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv=None):
    layer_runs.main(argv, "python -m benchmarks.amx", __doc__, LAYERS, table, rounds=9)


if __name__ == "__main__":
    main()
