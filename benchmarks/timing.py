"""Timing by the project's method: warm up, then time every contender in the same loop, interleaved,
and summarise each by its median and inter-quartile range.

Each round calls every function once, in an order rotated from round to round, so that drift in the
machine's speed (other processes, frequency) touches all contenders alike; ratios are taken per round
(baseline / candidate of the same round) and their median reported. The number of rounds adapts to the
functions' cost: as many as fit in `budget` seconds, between `min_rounds` and `max_rounds`. The first
call of each function (imports, compilation, allocation of caches) is timed on its own and kept out.

A timer turns a function into the seconds one call takes: `cpu_timer` uses time.perf_counter; the CUDA
timers in benchmarks.gpu use CUDA events after synchronisation.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


def cpu_timer(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@dataclass
class Stats:
    """Seconds per call of one contender: the per-round samples and the first call on its own."""
    samples: list = field(default_factory=list)
    first_call: float = float("nan")

    @property
    def median(self):
        return float(np.median(self.samples))

    @property
    def q1(self):
        return float(np.percentile(self.samples, 25))

    @property
    def q3(self):
        return float(np.percentile(self.samples, 75))

    @property
    def iqr(self):
        return self.q3 - self.q1

    @property
    def rel_iqr(self):
        """IQR / median: this contender's noise, as a fraction."""
        return self.iqr / self.median if self.median > 0 else float("nan")

    def as_dict(self):
        return {"median_s": self.median, "q1_s": self.q1, "q3_s": self.q3, "iqr_s": self.iqr,
                "rounds": len(self.samples), "first_call_s": self.first_call}


@dataclass(frozen=True)
class Budget:
    """How long to time one comparison: `seconds` of timed calls in all, within these round limits."""
    seconds: float = 1.0
    min_rounds: int = 5
    max_rounds: int = 200
    warmup: int = 1


QUICK = Budget(seconds=1.5, min_rounds=7, max_rounds=400, warmup=1)
FULL = Budget(seconds=3.0, min_rounds=11, max_rounds=400, warmup=2)


def compare(fns: dict, budget: Budget = QUICK, timers: dict | None = None) -> dict:
    """Time every function of `fns` (name -> zero-argument callable) interleaved. -> name -> Stats.

    timers maps a name to the timer for that function (default cpu_timer)."""
    timers = timers or {}
    names = list(fns)
    stats = {name: Stats() for name in names}
    timer = {name: timers.get(name, cpu_timer) for name in names}
    for name in names:                   # first call on its own, wall clock around the synchronised call
        t0 = time.perf_counter()
        timer[name](fns[name])
        stats[name].first_call = time.perf_counter() - t0
    for _ in range(budget.warmup):
        for name in names:
            timer[name](fns[name])
    # rounds until `budget.seconds` of timed calls (at least min_rounds, at most max_rounds)
    spent, rounds = 0.0, 0
    while rounds < budget.min_rounds or (spent < budget.seconds and rounds < budget.max_rounds):
        k = rounds % len(names)
        for name in names[k:] + names[:k]:
            t = timer[name](fns[name])
            stats[name].samples.append(t)
            spent += t
        rounds += 1
    return stats


def paired_ratio(base: Stats, cand: Stats) -> float:
    """Median over rounds of base / candidate time: > 1 means the candidate is faster."""
    n = min(len(base.samples), len(cand.samples))
    if n == 0:
        return float("nan")
    return float(np.median(np.asarray(base.samples[:n]) / np.asarray(cand.samples[:n])))


def within_noise(t_candidate: Stats, t_best: Stats, floor: float = 0.05) -> bool:
    """Is the candidate no slower than the best beyond noise? Noise is the larger of `floor` and the
    two contenders' relative IQRs."""
    tol = max(floor, t_candidate.rel_iqr, t_best.rel_iqr)
    return paired_ratio(t_best, t_candidate) >= 1.0 / (1.0 + tol)


def geomean(values):
    v = [x for x in values if x is not None and x > 0 and math.isfinite(x)]
    return float(math.exp(sum(math.log(x) for x in v) / len(v))) if v else float("nan")
