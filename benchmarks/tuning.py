"""python -m benchmarks.tuning NETWORK [--batch 1] [--threads 2] [--rounds 5] [--layers]

The plan's measured tiles (cnn/plan/tune.py) against the cost model's alone, on one network: the
prepare time of each, that both give the same bits, each tuned layer's candidates (kb x np, an 'f'
for a flat tile, / chunk) with their best times (--layers), and the whole forward pass of both plans
interleaved round by round in one process (median of 10 calls per round), with model / tuned per round.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import kernels
from cnn import models

from .suite_networks import input_shape


def _tile(key):
    kb, np_, chunk, flat = key
    return f"{kb}x{np_}{'f' if flat else ''}/{chunk}"


def run(name, batch, threads, rounds, layers):
    kernels.set_num_threads(threads)
    shape = input_shape(name, batch)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    t0 = time.perf_counter()
    tuned = models.create(name, seed=0).prepare(shape, tune=True)
    t1 = time.perf_counter()
    model = models.create(name, seed=0).prepare(shape, tune=False)
    t2 = time.perf_counter()
    print(f"{name} batch {batch}, {threads} threads: prepare tuned {t1 - t0:.2f} s, model only {t2 - t1:.2f} s")
    if not np.array_equal(tuned(x), model(x)):
        raise AssertionError("the tuned plan's output differs from the model's: a tile changed the bits")
    changed = sum(chosen != next(iter(times), chosen) for _, chosen, times in tuned.tuning)
    print(f"{len(tuned.tuning)} layers tuned, {changed} off the model's pick; outputs bit-identical")
    if layers:
        for n, chosen, times in tuned.tuning:
            cells = " ".join(f"{'*' if k == chosen else ''}{_tile(k)}:{v * 1e6:.0f}us" for k, v in times.items())
            print(f"  {n.out:>4} {cells or 'one candidate'}")
    for r in range(rounds):
        ms = {}
        for label, plan in (("tuned", tuned), ("model", model)):
            calls = []
            for _ in range(10):
                t = time.perf_counter()
                plan(x)
                calls.append(time.perf_counter() - t)
            ms[label] = float(np.median(calls)) * 1e3
        print(f"round {r}: tuned {ms['tuned']:.2f} ms, model {ms['model']:.2f} ms, "
              f"model / tuned {ms['model'] / ms['tuned']:.3f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.tuning", description=__doc__.split("\n\n")[1])
    ap.add_argument("network")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layers", action="store_true")
    a = ap.parse_args(argv)
    if a.network not in models.available():
        ap.error(f"network must be one of {', '.join(models.available())}")
    run(a.network, a.batch, a.threads, a.rounds, a.layers)


if __name__ == "__main__":
    main()
