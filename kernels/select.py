"""algorithm="auto": which implementation runs a geometry. Rules where they are sure, a measurement
where they are not.

Rules (from the benchmark layer set, python -m benchmarks kernels, 2 threads, AVX-512):
- groups == C with K a multiple of C -> depthwise: memory-bound, and the only kernel that keeps all
  vector lanes busy when each group has one input channel (2-8x the others on every depthwise layer);
- 1x1 without padding -> pointwise: the GEMM reads x where it lies (1.1-2x direct on every 1x1 layer);
- everything else -> direct: register-tiled with no im2col pass, it beat im2col + GEMM on most
  regular layers of the set (by 5% on vgg.c3_2 up to 3.5x on incep.5x5), strided stems included.
The direct kernel's register-tiled paths are AVX-512 code; in the AVX2 and generic builds only its
simple path remains (6-12x slower than im2col on every regular layer of the set with
CONVFORGE_ISA=avx2), so there regular layers go to im2col, whose GEMM micro-kernel exists for every
ISA. On the GPU nothing is measured yet: im2col (cuBLAS GEMM) is the expected winner on dense layers.

Measurement (CPU): the rules were drawn from the layers of the set, and they are wrong on shapes
the set lacked (3x3 512->512 at 7x7: im2col is 2.6x direct; stride-2 3x3s with many channels), and
blind to the blocked route (kernels.blocked_route: NCHW -> NCHW16c, the register-tiled blocked
kernel on prepacked weights, back to NCHW), an implementation of `auto` that is not one of
kernels.ALGORITHMS. So the first call of a geometry that has more than one candidate times the
candidates on the caller's own arrays, at the current thread count, and keeps the fastest:
- candidates: depthwise layers have none (the rules are sure); 1x1 layers pointwise and blocked;
  the others direct, im2col and blocked. Blocked only in float32 with groups == 1 and a padding of
  at most blocked_route.MAX_HALO; direct and blocked only in the AVX-512 build: their fast paths are
  zmm code, and in the AVX2 build they run 6-20x slower than im2col on every regular layer of the
  set (blocked: 13 GFLOP/s against 240 on vgg.c3_2), so timing them would only cost time;
- the candidates run in interleaved rounds, each once per round in a rotating order, the best call
  of each kept: as many rounds (up to MAX_ROUNDS) as their best calls fit in GEOMETRY_BUDGET_S,
  and two at least unless a round takes over SECOND_ROUND_BELOW_S (on a busy machine a scheduler
  tick can slow one call by milliseconds, or a whole round; the best of several calls rarely met
  one); from the second round on, a candidate over twice the leader's best drops out. One-time
  costs (loading a module, packing the blocked weights) are paid before the timing. The rules'
  choice runs first and gives way only to a candidate whose best call is faster by over MARGIN;
- no measurement below MIN_MACS multiply-accumulates (the call costs about as much as its dispatch),
  when the rules' call itself takes over MAX_FIRST_CALL_S (measuring would add seconds), or once
  this process has spent BUDGET_S seconds measuring: the rules decide;
- CONVFORGE_AUTOTUNE=0 (or off/false/no) turns measurement off: the rules alone decide (it is read
  at each geometry's first call).

Determinism: the first call of a geometry fixes its implementation for the life of the process:
the decision (measured, or the rules' when measurement was off, the budget spent or the call too
slow) is memoised per (geometry, dtype, ISA), and the first call returns the winner's own output,
so every call of a geometry gives the same bits. Geometries that are never measured (one
candidate, too small) need no memo: the rules are a pure function of the geometry. The memo holds
MAX_ENTRIES decisions and never evicts one (an evicted geometry could be measured again and come
out differently); once it is full, new geometries get the rules. The thread count is not
part of the key: the geometry is measured at the thread count of its first call and keeps that
choice at every other count, so that a result never depends on the thread count (DESIGN.md).
Every implementation meets the same tolerance against kernels.reference, so the choice changes a
result only in its last bits, and only between processes (or after clear()). The memo is
thread-safe: two threads that meet a new geometry at once measure it once; the other waits.
"""
from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from . import _threads, blocked_route, cpu
from .shapes import ConvGeometry

IMPLEMENTATIONS = ("direct", "im2col", "pointwise", "depthwise", "blocked")

MIN_MACS = 1 << 22             # about 20 us of work at the machine's peak
MAX_FIRST_CALL_S = 0.25
GEOMETRY_BUDGET_S = 0.04
SECOND_ROUND_BELOW_S = 0.25
MAX_ROUNDS = 7
MARGIN = 0.10
BUDGET_S = 2.0
MAX_ENTRIES = 4096

_clock = time.perf_counter     # the measurement's clock (a test may replace it)

_DENSE_CPU = "direct" if cpu.ISA == "avx512" else "im2col"


def rules(g: ConvGeometry, device: str = "cpu") -> str:
    """The rules' algorithm for geometry g (one of kernels.ALGORITHMS)."""
    if g.is_depthwise:
        return "depthwise"
    if g.is_pointwise:
        return "pointwise"
    if device == "gpu":
        return "im2col"
    return _DENSE_CPU


def candidates(g: ConvGeometry, dtype) -> tuple:
    """The implementations a measurement of g would time on the CPU, the rules' choice first; fewer
    than two means the rules decide."""
    if g.is_depthwise:
        return ()
    if g.is_pointwise:
        out = ["pointwise"]
    else:
        out = ["direct", "im2col"] if cpu.ISA == "avx512" else ["im2col"]
    if cpu.ISA == "avx512" and blocked_route.unsupported(g.plan.geometry, dtype) is None:
        out.append("blocked")
    first = rules(g)
    return tuple([first] + [c for c in out if c != first])


def autotune_enabled() -> bool:
    """False when CONVFORGE_AUTOTUNE is 0, off, false or no."""
    return os.environ.get("CONVFORGE_AUTOTUNE", "1").strip().lower() not in ("0", "off", "false", "no")


@dataclass(frozen=True)
class Decision:
    algorithm: str
    source: str                # "measured", or "rules" when the measurement declined to decide
    reason: str
    seconds: dict = field(default_factory=dict)   # implementation -> best time of one call
    threads: int = 0


class _Memo:
    """Decisions by key, at most `capacity`, never evicted; one measurement per key at a time."""

    def __init__(self, capacity):
        self.capacity = capacity
        self._decisions = {}
        self._pending = {}         # key -> threading.Event of the measurement under way
        self._lock = threading.Lock()
        self.spent = 0.0           # seconds spent measuring beyond the callers' own calls

    def get(self, key):
        return self._decisions.get(key)

    def claim(self, key):
        """-> (True, event) when the caller is to measure `key`, (False, event) to wait for it, or
        (False, None) when it was decided meanwhile or the memo is full."""
        with self._lock:
            if key in self._decisions or len(self._decisions) >= self.capacity:
                return False, None
            ev = self._pending.get(key)
            if ev is not None:
                return False, ev
            ev = self._pending[key] = threading.Event()
            return True, ev

    def finish(self, key, decision, spent):
        with self._lock:
            if decision is not None and len(self._decisions) < self.capacity:
                self._decisions[key] = decision
            self.spent += spent
            self._pending.pop(key).set()

    def clear(self):
        with self._lock:
            self._decisions.clear()
            self.spent = 0.0

    def info(self):
        with self._lock:
            return {"entries": len(self._decisions), "capacity": self.capacity, "pending": len(self._pending),
                    "spent_s": self.spent, "budget_s": BUDGET_S}

    def after_fork(self):
        self._lock = threading.Lock()   # it may have been held by a thread that is gone
        self._pending = {}              # and so may the measurements under way


_memo = _Memo(MAX_ENTRIES)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _memo.after_fork())


def _key(g, dtype):
    return (g, np.dtype(dtype).str, cpu.ISA)


# Every answer `auto` has given, by the geometry object's identity (kernels.shapes memoises geometries,
# so a layer called again hands over the same object): one small dict lookup per call instead of
# hashing an 18-field geometry into the memo. The entry holds the geometry, so its id is not reused
# while the entry lives. Bounded by clearing: everything in it can be derived again (from the memo,
# or from the rules for geometries that are never measured).
FAST_ENTRIES = 4096
_fast = {}


def known(g: ConvGeometry, dtype):
    """The implementation `auto` settled on for this very geometry object, or None."""
    hit = _fast.get((id(g), np.dtype(dtype).char))
    return hit[1] if hit is not None and hit[0] is g else None


def _remember(g, dtype, impl):
    if len(_fast) >= FAST_ENTRIES:
        _fast.clear()
    _fast[(id(g), dtype.char)] = (g, impl)
    return impl


@functools.lru_cache(maxsize=4096)
def _never_measured(g, dtype_str, min_macs):
    """Why geometry g is never measured whatever the state (None: it may be): a pure function of its
    arguments, cached."""
    if len(candidates(g, dtype_str)) < 2:
        return "the rules are sure: one candidate"
    if g.macs < min_macs:
        return f"too small to measure ({g.macs} MACs < {min_macs})"
    return None


def _declines_now():
    """Why a measurable new geometry is left to the rules now (None: it is measured)."""
    if not autotune_enabled():
        return "measurement is off (CONVFORGE_AUTOTUNE)"
    if _memo.spent >= BUDGET_S:
        return f"this process's measuring budget ({BUDGET_S} s) is spent"
    return None


def _measure(g, dtype, run, prepare):
    """Time the candidates in interleaved rounds (each round runs every candidate still in the race
    once, in an order rotated from round to round, so that a burst of load touches them alike).
    -> (Decision, the winner's output, seconds spent beyond the caller's own call)."""
    order = candidates(g, dtype)
    first, threads = order[0], _threads.get_num_threads()
    if prepare is not None:
        for impl in order:
            prepare(impl)
    best, outputs = {}, {}
    t_start, own = _clock(), 0.0
    racing = list(order)
    for rnd in range(MAX_ROUNDS):
        k = rnd % len(racing)
        for impl in racing[k:] + racing[:k]:
            t0 = _clock()
            outputs[impl] = run(impl, outputs.get(impl))
            t = _clock() - t0
            best[impl] = min(best.get(impl, t), t)
            if rnd == 0 and impl == first:
                own = t
                if t > MAX_FIRST_CALL_S:
                    return (Decision(first, "rules", f"a call takes {t:.3f} s: too slow to measure", {first: t},
                                     threads), outputs[first], 0.0)
        if rnd >= 1:                     # losers drop out, once two calls say so (one may meet a burst)
            lead = min(best.values())
            racing = [impl for impl in racing if best[impl] <= 2 * lead]
        # the cost of a round as the best calls say (a disturbed round must not cut the others short)
        round_s = sum(best[impl] for impl in racing)
        over = (rnd + 2) * round_s > GEOMETRY_BUDGET_S        # one more round would pass the budget
        if len(racing) < 2 or (over and (rnd >= 1 or round_s > SECOND_ROUND_BELOW_S)):
            break
    winner = min(best, key=best.get)
    if best[first] < (1 + MARGIN) * best[winner]:
        winner = first                   # the rules' choice gives way only to a clear winner
    spent = _clock() - t_start - own
    return (Decision(winner, "measured", f"fastest of {', '.join(order)}", best, threads), outputs[winner], spent)


def auto(g: ConvGeometry, dtype, run, prepare=None):
    """kernels.conv2d's `auto` on the CPU -> (implementation, output or None).

    run(impl, out) computes the convolution with implementation `impl` into `out` (a new array when
    None) and returns it; prepare(impl) does that implementation's one-time work. When this call
    measured, the winner's output comes back and is the call's result; otherwise the caller runs the
    implementation. The first call of a geometry fixes its implementation for the process."""
    dtype = np.dtype(dtype)
    impl = known(g, dtype)
    if impl is not None:
        return impl, None
    key = _key(g, dtype)
    d = _memo.get(key)
    if d is not None:
        return _remember(g, dtype, d.algorithm), None
    if _never_measured(g, dtype.str, MIN_MACS) is not None:
        return _remember(g, dtype, rules(g)), None
    mine, event = _memo.claim(key)
    if not mine:
        if event is not None:
            event.wait()
        d = _memo.get(key)
        return _remember(g, dtype, d.algorithm if d is not None else rules(g)), None
    decision, y, spent = None, None, 0.0
    try:
        why = _declines_now()
        if why is not None:              # kept like a measured decision: the first call fixes the choice
            decision = Decision(rules(g), "rules", why)
        else:
            decision, y, spent = _measure(g, dtype, run, prepare)
    finally:
        _memo.finish(key, decision, spent)
    return _remember(g, dtype, decision.algorithm), y


def choose_algorithm(g: ConvGeometry, device: str = "cpu", dtype=np.float32) -> str:
    """The implementation `auto` runs for g now: the memoised decision, else the rules (one of
    IMPLEMENTATIONS: "blocked" is auto's own). Measures nothing."""
    if device == "gpu":
        return rules(g, "gpu")
    d = _memo.get(_key(g, dtype))
    return d.algorithm if d is not None else rules(g)


def explain(g: ConvGeometry, dtype=np.float32, device: str = "cpu") -> dict:
    """What `auto` does with g: {"algorithm", "source" ("measured" | "rules"), "reason", "seconds"
    (implementation -> best seconds of one call, when measured), "threads" (of the measurement),
    "candidates"}. Measures nothing."""
    if device == "gpu":
        return {"algorithm": rules(g, "gpu"), "source": "rules", "reason": "the GPU is not measured",
                "seconds": {}, "threads": None, "candidates": ()}
    cands = candidates(g, dtype)
    d = _memo.get(_key(g, dtype))
    if d is not None:
        return {"algorithm": d.algorithm, "source": d.source, "reason": d.reason, "seconds": dict(d.seconds),
                "threads": d.threads, "candidates": cands}
    why = _never_measured(g, np.dtype(dtype).str, MIN_MACS) or _declines_now()
    if why is None:
        why = ("the memo is full" if _memo.info()["entries"] >= _memo.capacity
               else "not seen yet: its first call measures")
    return {"algorithm": rules(g), "source": "rules", "reason": why, "seconds": {}, "threads": None,
            "candidates": cands}


def memo_info() -> dict:
    """{"entries", "capacity", "pending", "spent_s", "budget_s"} of the decision memo."""
    return _memo.info()


def clear():
    """Forget every decision and the spent budget (the next call of each geometry decides again)."""
    _memo.clear()
    _fast.clear()
    _never_measured.cache_clear()
