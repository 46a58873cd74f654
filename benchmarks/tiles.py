"""python -m benchmarks.tiles [--threads N] [--rounds R] [--layers a,b]

The blocked convolution's register tiles against the cost model that picks them (blocked.h's
b_tile_cost): on each layer, the model's tile and every other tile of the candidates (kb output
blocks x np pixels) interleaved round by round in one process, each call on the next of four copies
of the weights, so that they come from memory as in a network. Prints, per layer, the median time
and GFLOP/s of each tile, the tile the model picks with this CPU's constants and with each vendor's
(kernels/cpu/blocked.pyx TILE_COSTS), and the pick's time over the fastest tile's (1.00: the model
chose the fastest). The results are the same bits whatever the tile, so only speed is at stake; run
it on a new machine before trusting the model there.
"""
from __future__ import annotations

import numpy as np

from kernels import blocked as B
from kernels.cpu import cpuid, load

from . import layer_runs
from .layer_runs import COPIES, interleaved

# (name, N, C, K, H, R, stride): the zoo's layers that the direct blocked kernel runs in a plan
LAYERS = [
    ("mnv1.112", 1, 32, 64, 112, 1, 1), ("mnv1.56", 1, 128, 128, 56, 1, 1), ("mnv1.28", 1, 256, 256, 28, 1, 1),
    ("mnv1.14", 1, 512, 512, 14, 1, 1), ("mnv1.7", 1, 1024, 1024, 7, 1, 1),
    ("r50.56.in", 1, 256, 64, 56, 1, 1), ("r50.56.out", 1, 64, 256, 56, 1, 1), ("r50.14.in", 1, 1024, 256, 14, 1, 1),
    ("r50.7.out", 1, 512, 2048, 7, 1, 1), ("r50.14.b8", 8, 1024, 256, 14, 1, 1),
    ("r18.7", 1, 512, 512, 7, 3, 1), ("r18.7.b8", 8, 512, 512, 7, 3, 1), ("r50.28.s2", 1, 128, 128, 56, 3, 2),
    ("r50.7.s2", 1, 512, 512, 14, 3, 2), ("r50.down.s2", 1, 1024, 2048, 14, 1, 2),
    # planes no row tile divides (EfficientNet-B1..B7's 15, 19, 10): where flat tiles earn their keep
    ("odd.15", 1, 256, 256, 15, 1, 1), ("odd.10", 1, 512, 512, 10, 1, 1), ("odd.19.3x3", 1, 128, 128, 19, 3, 1),
]
# (kb, np, flat): row tiles, and the flat 4 x 6 (a band's rows joined end to end)
TILES = [(4, 7, False), (4, 6, False), (3, 9, False), (2, 14, False), (1, 14, False), (4, 6, True)]


def steps(N, C, K, H, R, stride, seed=0):
    """COPIES Conv steps of one layer (each its own weights) on shared input and output buffers."""
    F = load("blocked")
    rng = np.random.default_rng(seed)
    pad = R // 2
    P = (H + 2 * pad - R) // stride + 1
    x = rng.standard_normal(B.blocked_shape(N, C, H, H, pad)).astype(np.float32)
    B.zero_frame(x, pad)
    y = np.zeros(B.blocked_shape(N, K, P, P, 0), np.float32)
    out = []
    for _ in range(COPIES):
        w = rng.standard_normal((K, C, R, R)).astype(np.float32)
        cw = B.ConvWeights(w, None, (stride, stride), (pad, pad), (1, 1))
        out.append(F.Conv(x, pad, cw, y, 0, None, 0, 1))
    return out, 2 * N * K * C * R * R * P * P


def vendors():
    """The vendors whose tile-cost constants differ, this CPU's first."""
    costs = load("blocked").TILE_COSTS
    out = [cpuid.vendor()]
    return out + [v for v in ("intel", "amd") if costs[v] != costs[out[0]]]


def picks(conv, threads):
    """{vendor: the tile the model picks with that vendor's constants} on one Conv (left as it was)."""
    out = {}
    for v in vendors():
        conv.set_tile(costs=v)
        conv(threads)
        out[v] = (*conv.tile, conv.flat)
    conv.set_tile()
    return out


def measure(layer, threads, rounds):
    """{tile or "model": median seconds}, {vendor: the model's tile with its constants} (picks) and
    the layer's FLOPs."""
    _, N, C, K, H, R, stride = layer
    calls, flops = steps(N, C, K, H, R, stride)
    model = picks(calls[0], threads)
    variants = {"model": calls}
    for t in TILES:
        vs, _ = steps(N, C, K, H, R, stride)
        for c in vs:
            c.set_tile(t[0], t[1], flat=t[2])
        variants[t] = vs
    return interleaved(variants, threads, rounds), model, flops


def table(layers, threads, rounds):
    head = " | ".join(f"{kb}x{np_}{' flat' if flat else ''} us" for kb, np_, flat in TILES)
    vs = vendors()
    lines = [f"register tiles of the blocked convolution, {threads} threads, median of {rounds} rounds "
             f"(in brackets GFLOP/s), a CPU by {vs[0]}; where kb does not divide the output blocks, the "
             "last group of blocks takes the rest", "",
             f"| layer | N | C->K @H RxR/s | {' | '.join(v + ' model' for v in vs)} | {head} | pick / fastest |",
             "|---|---|---|" + "---|" * len(vs) + "---|" * len(TILES) + "---|"]
    print("\n".join(lines), flush=True)
    for layer in layers:
        name, N, C, K, H, R, stride = layer
        t, model, flops = measure(layer, threads, rounds)
        cells = [f"{kb}x{np_}{' flat' if flat else ''}" for kb, np_, flat in model.values()]
        cells += [f"{t[tl] * 1e6:.0f} ({flops / t[tl] / 1e9:.0f})" if tl in t else "-" for tl in TILES]
        best = min(v for k, v in t.items() if k != "model")
        lines.append(f"| {name} | {N} | {C}->{K} @{H} {R}x{R}/{stride} | " + " | ".join(cells)
                     + f" | {t['model'] / best:.2f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv=None):
    layer_runs.main(argv, "python -m benchmarks.tiles", __doc__, LAYERS, table, rounds=15)


if __name__ == "__main__":
    main()
