"""What the per-layer kernel benchmarks (benchmarks.winograd, benchmarks.tiles) share: variants of
one layer timed round by round in one process, and their command line."""
from __future__ import annotations

import argparse
import time

import numpy as np

import kernels

COPIES = 4      # weight copies per variant, taken in turn, so each call's weights come from memory


def interleaved(variants, threads, rounds):
    """{name: median seconds per call} of variants {name: [COPIES steps]}, each round calling every
    variant once on the round's copy; the first round warms up and is left out."""
    times = {k: [] for k in variants}
    for r in range(rounds + 1):
        for k, steps in variants.items():
            t0 = time.perf_counter()
            steps[r % COPIES](threads)
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v[1:])) for k, v in times.items()}


def main(argv, prog, doc, layers, table, rounds):
    """The command line: --threads, --rounds, --layers (names from `layers`, rows (name, ...)), then
    table(chosen layers, threads, rounds)."""
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[1])
    p.add_argument("--threads", type=int, default=kernels.get_num_threads())
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--layers", help="comma-separated names (default: all)")
    a = p.parse_args(argv)
    chosen = [layer for layer in layers if not a.layers or layer[0] in a.layers.split(",")]
    if not chosen:
        p.error(f"no layer named {a.layers!r}; the names: {', '.join(layer[0] for layer in layers)}")
    table(chosen, a.threads, a.rounds)
