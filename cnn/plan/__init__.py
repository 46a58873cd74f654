"""The inference plan: a network prepared once per input shape, run on the blocked kernels.

    plan = cnn.compile(net, (1, 3, 224, 224))     # or net.prepare((1, 3, 224, 224))
    y = plan(x)                                   # = net(x), which also plans on its first call

Preparing traces the forward pass (trace.py), lowers it (lower.py: batch-norm folded, residual adds
and activations fused into the convolutions' epilogues, concatenations written in place, a blocked
NCHW16c layout with zero halos), packs every weight once, places every activation in one arena by
liveness (program.py) and times a few register tiles of each direct convolution to keep the fastest
(tune.py; the same bits whichever wins). A call copies x in, runs the bound steps and returns a new
output array; nothing else is allocated, except inside the rare ops without a blocked kernel (fallbacks).

Implicit use: a Module with at least two convolutions called at the top level on a float32 numpy
(N, C, H, W) array runs through a plan for that shape (kept on the module; a few shapes at a time).
A plan goes stale when anything in the module tree is assigned (load_state_dict, .to(), replacing a
layer, new weights): Module.__setattr__ counts such edits, and a plan checks the count and, when it
moved, the identities of the arrays and children it was built from. CONVFORGE_PLAN=0 turns implicit
plans off (every call then runs op by op, as under the reference).
"""
from __future__ import annotations

import os
import threading

import numpy as np

from kernels import _threads
from kernels import blocked as B

from ..layers import module as _module
from .lower import lower
from . import program as _program
from . import tune as _tune
from .program import Program
from .trace import trace

MAX_SHAPES = 4          # plans kept per module (one per input shape)


def _signature(net):
    """What a plan depends on: every module's arrays and children, by identity."""
    sig = []
    for m in net.modules():
        d = m.__dict__
        sig.append((id(m), tuple(id(c) for c in d.get("_children", {}).values()),
                    tuple(id(d.get(name)) for name in type(m).PARAMS + type(m).BUFFERS)))
    return tuple(sig)


class Plan:
    """A network prepared for one input shape (float32, numpy). Callable like the network."""

    def __init__(self, net, shape, tune=None):
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"a plan is built for a non-empty (N, C, H, W) input, got shape {tuple(shape)}")
        bad = next((a for a in net.parameters() if type(a) is not np.ndarray or a.dtype != np.float32), None)
        if bad is not None:
            raise TypeError(f"a plan runs float32 numpy networks; this one has {type(bad).__name__} "
                            f"{getattr(bad, 'dtype', '')} weights: net.to('cpu').to(np.float32) first")
        self.net = net
        self.shape = tuple(int(d) for d in shape)
        self.generation = _module.edits()
        graph = trace(net, self.shape)
        layouts, halos, placed = lower(graph)
        self.program = Program(graph, layouts, halos, placed)
        self.tuning = self._tune() if (tuning() if tune is None else tune) else []
        self.signature = _signature(net)
        self.generation = max(self.generation, _module.edits())
        self._free = []
        self._lock = threading.Lock()

    def _tune(self):
        """The tiles of the dense convolutions by measurement (tune.py), on an arena of its own."""
        arena = B.aligned_zeros(self.program.size)
        steps, put, _ = self.program.bind(arena)
        x = np.random.default_rng(0).standard_normal(self.shape).astype(np.float32)

        def warm():
            put(x)
            _threads.run(_program.run, steps)
        return _tune.tune(self.program, arena, warm)

    @property
    def arena_bytes(self):
        return self.program.size * 4

    @property
    def nodes(self):
        return self.program.graph.nodes

    def valid(self):
        """False when the network changed since the plan was built."""
        if _module.edits() == self.generation:
            return True
        if _signature(self.net) != self.signature:
            return False
        self.generation = _module.edits()
        return True

    def _acquire(self):
        with self._lock:
            if self._free:
                return self._free.pop()
        arena = B.aligned_zeros(self.program.size)
        return self.program.bind(arena)

    def __call__(self, x):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or tuple(x.shape) != self.shape:
            raise ValueError(f"this plan takes float32 numpy arrays of shape {self.shape}, got "
                             f"{type(x).__name__} {getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}")
        bound = self._acquire()
        steps, put, get = bound
        try:
            put(x)
            _threads.run(_program.run, steps)
            return get()
        finally:
            with self._lock:
                self._free.append(bound)


    def profile(self, x, passes=5):
        """Seconds per step of a call, the median over `passes` calls: [(label, node or None, s)], the
        input and output conversions labelled "input" and "output" (a benchmark's breakdown)."""
        import time

        def one_pass(nthreads):
            t0 = time.perf_counter()
            put(x)
            sec = [time.perf_counter() - t0]
            for step in steps:
                t0 = time.perf_counter()
                if isinstance(step, _program.Segment):
                    sec += step.timed(nthreads)
                else:
                    step(nthreads)
                    sec.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            get()
            sec.append(time.perf_counter() - t0)
            return sec

        steps, put, get = self._acquire()
        try:
            runs = [_threads.run(one_pass) for _ in range(passes)]
        finally:
            with self._lock:
                self._free.append((steps, put, get))
        med = np.median(np.array(runs), axis=0)
        labels = [("input", None)] + [(n.op, n) for n in self.nodes] + [("output", None)]
        return [(label, node, float(sec)) for (label, node), sec in zip(labels, med)]


def prepare(net, shape, tune=None):
    """The plan of `net` for inputs of `shape` (built now, or the cached one if still valid). `tune`:
    choose the convolutions' tiles by measuring them (tune.py; None: unless CONVFORGE_AUTOTUNE=0)."""
    shape = tuple(int(d) for d in shape)
    plans = net.__dict__.get("_plans")
    if plans is None:
        plans = {}
        object.__setattr__(net, "_plans", plans)
    plan = plans.get(shape)
    if plan is None or not plan.valid():
        plan = Plan(net, shape, tune)
        if len(plans) >= MAX_SHAPES:
            plans.pop(next(iter(plans)))
        plans[shape] = plan
    return plan


compile = prepare


def _plannable(net):
    """Implicit plans for modules with at least two convolutions (a single layer runs as it is) whose
    arrays are all float32 numpy (the blocked kernels' dtype; anything else runs op by op)."""
    from ..layers.conv import Conv2d
    cached = net.__dict__.get("_plannable")
    if cached is not None and cached[0] == _module.edits():
        return cached[1]
    convs = sum(isinstance(m, Conv2d) for m in net.modules())
    ok = convs >= 2 and all(type(a) is np.ndarray and a.dtype == np.float32 for a in net.parameters())
    object.__setattr__(net, "_plannable", (_module.edits(), ok))
    return ok


def tuning():
    """Whether plans measure their tiles by default: the package's one switch for measured choices
    (CONVFORGE_AUTOTUNE=0, off, false or no: the cost model's alone)."""
    from kernels import select
    return select.autotune_enabled()


def enabled():
    return os.environ.get("CONVFORGE_PLAN", "1").strip() not in ("0", "")


def implicit(net, x):
    """net(x) through its plan when that applies (top-level FAST call on float32 NCHW numpy), else None.
    A network the tracer cannot follow for this shape (or an input its layers refuse) runs op by op,
    which raises the layers' own errors; the failure is remembered per shape until the next edit."""
    if type(x) is not np.ndarray or x.dtype != np.float32 or x.ndim != 4 or x.shape[0] == 0 or not enabled() \
            or not _plannable(net):
        return None          # an empty batch flows through op by op
    shape = tuple(x.shape)
    failed = net.__dict__.get("_unplannable")
    if failed is not None and failed[0] == _module.edits() and shape in failed[1]:
        return None
    try:
        plan = prepare(net, shape)
    except Exception:
        if failed is None or failed[0] != _module.edits():
            failed = (_module.edits(), set())
            object.__setattr__(net, "_unplannable", failed)
        failed[1].add(shape)
        return None
    return plan(x)
