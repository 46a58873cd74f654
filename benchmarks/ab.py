"""python -m benchmarks.ab NETWORK [--batch 1] [--threads 2] [--rounds 12] [--old-so PATH] [--off PASS]

One change to the plan, measured the only way a shared, noisy host allows: both versions of the
network's plan in one process, called in alternating rounds (the best of 5 calls each per round), and
the ratio old / new taken round by round (its median and quartiles; > 1: the change is faster).

The "old" plan is the current one with either
  --old-so PATH  the blocked or AMX kernels of another build (a copy of kernels/cpu/<isa>/blocked*.so
                 or amx*.so taken before rebuilding), bound to its steps instead of this build's; or
  --off PASS     one of cnn/plan/lower.py's passes left out when it is prepared: fuse, fold_scales
                 or plan_concats; or amx: every layer on the float32 FMA kernels (CONVFORGE_AMX=0).
Both plans are prepared with the cost model's tiles (tune=False), so the tuner's noise stays out.
Prints the largest relative difference of the outputs too (0.0: the same bits).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import time

import numpy as np

import kernels
from cnn import models
from kernels.cpu import load

from .suite_networks import input_shape

# lower.py's passes a plan is still right without, and what each then returns
SKIPPABLE = {"fuse": None, "fold_scales": None, "plan_concats": {}}


def _old_module(path):
    """(name, module): the blocked or amx kernels of another build (by the file's name), loaded beside
    this build's (which must be loaded first: the extension registers itself under its package name)."""
    name = os.path.basename(path).split(".")[0]
    if name not in ("blocked", "amx"):
        raise ValueError(f"old_so must be a build's blocked or amx module (blocked*.so, amx*.so), got {path!r}")
    load(name)
    spec = importlib.util.spec_from_file_location(f"convforge_old_build.{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if mod.Conv is load(name).Conv:
        raise ValueError(f"{path} is this build's own module")
    return name, mod


def plans(name, batch, old_so=None, off=None):
    """(old, new) plans of the network at this batch."""
    if (old_so is None) == (off is None):
        raise ValueError("give exactly one of old_so (a build's blocked .so) and off (a lower.py pass)")
    shape = input_shape(name, batch)
    new = models.create(name, seed=0).prepare(shape, tune=False)
    if old_so is not None:
        if not os.path.isfile(old_so):
            raise ValueError(f"old_so: no such file {old_so!r}")
        old = models.create(name, seed=0).prepare(shape, tune=False)
        name, mod = _old_module(old_so)
        setattr(old.program, name, mod)
        old._free.clear()
        return old, new
    if off == "amx":
        saved = os.environ.get("CONVFORGE_AMX")
        os.environ["CONVFORGE_AMX"] = "0"
        try:
            old = models.create(name, seed=0).prepare(shape, tune=False)
        finally:
            os.environ.pop("CONVFORGE_AMX") if saved is None else os.environ.__setitem__("CONVFORGE_AMX", saved)
        return old, new
    lower = importlib.import_module("cnn.plan.lower")
    if off not in SKIPPABLE:
        raise ValueError(f"off must be one of {', '.join(SKIPPABLE)} or amx (passes a plan runs without), "
                         f"got {off!r}")
    keep = getattr(lower, off)
    setattr(lower, off, lambda *args: SKIPPABLE[off])
    try:
        old = models.create(name, seed=0).prepare(shape, tune=False)
    finally:
        setattr(lower, off, keep)
    return old, new


def run(name, batch, threads, rounds, old_so=None, off=None):
    kernels.set_num_threads(threads)
    old, new = plans(name, batch, old_so, off)
    x = np.random.default_rng(0).standard_normal(old.shape).astype(np.float32)
    yo, yn = old(x), new(x)
    diff = float(np.abs(yo - yn).max() / max(np.abs(yo).max(), 1e-30))
    ratios, best = [], [np.inf, np.inf]
    for _ in range(rounds):
        t = []
        for i, plan in enumerate((old, new)):
            ts = []
            for _ in range(5):
                t0 = time.perf_counter()
                plan(x)
                ts.append(time.perf_counter() - t0)
            t.append(min(ts))
            best[i] = min(best[i], t[-1])
        ratios.append(t[0] / t[1])
    q1, med, q3 = np.percentile(ratios, [25, 50, 75])
    print(f"{name} batch {batch}, {threads} threads, {rounds} rounds: old / new median {med:.3f} "
          f"(quartiles {q1:.3f}-{q3:.3f}); best ms old {best[0] * 1e3:.2f} new {best[1] * 1e3:.2f}; "
          f"outputs' largest relative difference {diff:.3g}")
    return med


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n\n")[1])
    ap.add_argument("network")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--old-so")
    ap.add_argument("--off")
    a = ap.parse_args(argv)
    if a.network not in models.available():
        ap.error(f"network must be one of {', '.join(models.available())}")
    try:
        run(a.network, a.batch, a.threads, a.rounds, a.old_so, a.off)
    except ValueError as e:
        ap.error(str(e))


if __name__ == "__main__":
    main()
