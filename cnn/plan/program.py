"""A lowered graph as a program: buffers placed in one arena by liveness, and one bound step per node.

Storage: every value lives in a storage (a concatenation's operands share the result's, at their
channel-block offsets; a fused node's output is the absorbed op's). A storage is live from the step
that first writes it to the last step that reads it; storages whose lifetimes do not overlap share
arena memory (first fit, largest first). A step's inputs and output are never placed together, since
both are live at that step, so no kernel reads what it writes.

An arena is one float32 array; `Program.bind(arena)` returns the steps as callables on views of that
arena, each taking the thread count (`run(steps, n)` runs them), so a call only runs kernels: a step
is the kernel's own bound object where it has one, with no Python frame of ours around it (measured
about 1.5 us per step less, some 1-2% of MobileNet's and EfficientNet's time at batch 1). Each
Python thread calling a plan gets an arena of its own (Plan keeps a free list), so concurrent calls
never share buffers.

Batches: a run of consecutive nodes whose activations are large beside their weights (a network's
early layers) runs image by image, as a Segment: image 0 through every node of the run, then image 1,
..., so that one image's activations pass from layer to layer through the caches instead of a whole
batch's through memory (the later layers, whose weights dominate, run on the whole batch and reuse
each weight across it). For placement a segment is one step: every storage it touches is live across
all of it.
"""
from __future__ import annotations

import functools
import time

import numpy as np

from kernels import _threads, cpu
from kernels import amx as A
from kernels import blocked as B

from ..layers import ops as _ops

ALIGN = 16      # floats: every buffer starts on a 64-byte line
SEGMENT_BYTES = 512 * 1024      # a node's inputs and output per image from which it runs image by image
PER_IMAGE_OPS = ("conv", "pool", "gap", "add", "scale", "act", "concat")


class Storage:
    def __init__(self, shape):
        self.shape = tuple(shape)
        self.size = int(np.prod(self.shape)) if self.shape else 1
        self.first, self.last = None, None
        self.offset = None

    def touch(self, t):
        self.first = t if self.first is None else min(self.first, t)
        self.last = t if self.last is None else max(self.last, t)


def place(storages):
    """First-fit offsets (in floats) for storages by lifetime; -> arena size."""
    placed = []
    total = 0
    for s in sorted(storages, key=lambda s: -s.size):
        size = -(-s.size // ALIGN) * ALIGN
        clashes = sorted((p.offset, p.offset + (-(-p.size // ALIGN) * ALIGN)) for p in placed
                         if not (p.last < s.first or s.last < p.first))
        off = 0
        for lo, hi in clashes:
            if off + size <= lo:
                break
            off = max(off, hi)
        s.offset = off
        total = max(total, off + size)
        placed.append(s)
    return total


class Segment:
    """Consecutive nodes run image by image: calls[i] holds node by node the steps on image i."""

    def __init__(self, nodes, calls):
        self.nodes, self.calls = nodes, calls

    def __call__(self, nthreads):
        for image in self.calls:
            for step in image:
                step(nthreads)

    def timed(self, nthreads):
        """Run it; -> seconds spent in each node, over all the images."""
        seconds = [0.0] * len(self.nodes)
        for image in self.calls:
            for k, step in enumerate(image):
                t = time.perf_counter()
                step(nthreads)
                seconds[k] += time.perf_counter() - t
        return seconds


def run(steps, nthreads):
    """Every step in order, on `nthreads` threads; called through kernels._threads.run, once a call."""
    for step in steps:
        step(nthreads)


class Program:
    """Values -> storages and views; nodes -> steps."""

    def __init__(self, graph, layouts, halos, placed):
        self.graph, self.layouts = graph, layouts
        self.blocked = cpu.load("blocked")
        self.amx = cpu.load("amx")
        self.layout = cpu.load("layout")
        self.view_of = {}       # value -> (storage, block offset or None)
        self.halo = dict(halos)
        storages = []
        shapes = graph.shapes
        self.segments = self._segments()
        self.row_sums = self._row_sums()
        internal = self._internal(placed)
        self.internal = internal
        # concatenation results first: their operands live inside them
        concat_outs = {c for c, _ in placed.values()}
        for c in concat_outs:
            members = [v for v, (cv, _) in placed.items() if cv == c]
            h = max([self.halo[c]] + [self.halo[v] for v in members])
            for v in members + [c]:
                self.halo[v] = h
        for v, shape in shapes.items():
            if v in placed:
                continue
            if v in internal:           # one image's buffer, reused image after image
                shape = (1,) + tuple(shape[1:])
            lay = layouts[v]
            if lay == "blocked":
                st = Storage(B.blocked_shape(*shape, self.halo[v]))
            elif lay == "nchw_pad":
                h = self.halo[v]
                st = Storage((shape[0], shape[1], shape[2] + 2 * h, shape[3] + 2 * h))
            else:
                st = Storage(shape)
            storages.append(st)
            self.view_of[v] = (st, None)
        for v, (c, off) in placed.items():
            self.view_of[v] = (self.view_of[c][0], off)
        # lifetimes: the input is written at step -1, the output read after the last step; a node of
        # a segment is at every step of its segment
        span = {t: (a, b - 1) for a, b in self.segments for t in range(a, b)}
        self.view_of[graph.input][0].touch(-1)
        for t, n in enumerate(graph.nodes):
            for v in n.inputs + [n.out]:
                for u in span.get(t, (t, t)):
                    self.view_of[v][0].touch(u)
        self.view_of[graph.output][0].touch(len(graph.nodes))
        for s in storages:
            if s.first is None:             # a value no step reads or writes (an op fused away)
                s.first = s.last = -2
        self.size = place(storages)
        self.storages = storages

    # ---------------------------------------------------------------- views
    def view(self, arena, v, image=None):
        """Value v's buffer in the arena (only image `image`'s slice, batch 1, when given)."""
        st, off = self.view_of[v]
        buf = arena[st.offset:st.offset + st.size].reshape(st.shape)
        if off is not None:
            nb = B.blocks(self.graph.shapes[v][1])
            buf = buf[:, off:off + nb]
        return buf if image is None or v in self.internal else buf[image:image + 1]

    # ---------------------------------------------------------------- segments
    def _per_image(self, n):
        """Whether node n may run image by image, and should: an op on images one at a time whose
        inputs and output per image outweigh its weights and are big enough to overflow the caches
        batch-wide."""
        if n.op not in PER_IMAGE_OPS or (n.op == "conv" and n.attrs["kind"] == "nchw") or \
                (n.op == "act" and self.layouts[n.out] == "plain") or \
                (n.op == "concat" and not n.attrs.get("inplace")):
            return False
        shapes = self.graph.shapes
        per_image = sum(4 * int(np.prod(shapes[v][1:])) for v in n.inputs + [n.out])
        packed = n.attrs.get("packed") if n.op == "conv" else None
        weights = sum(p.w.nbytes for p in (packed if isinstance(packed, list) else [packed])) if packed else 0
        return per_image >= SEGMENT_BYTES and weights <= per_image

    def _internal(self, placed):
        """Values made and used only inside one segment (not the output; a concatenation's operands
        only with their result): they need one image's buffer, not the batch's."""
        seg = {t: k for k, (a, b) in enumerate(self.segments) for t in range(a, b)}
        where = {}                                  # value -> the segments of the nodes that touch it
        for t, n in enumerate(self.graph.nodes):
            for v in n.inputs + [n.out]:
                where.setdefault(v, set()).add(seg.get(t))
        inside = {v for v, ks in where.items() if len(ks) == 1 and None not in ks and v != self.graph.output
                  and v != self.graph.input}
        for c in {c for c, _ in placed.values()}:
            members = [v for v, (cv, _) in placed.items() if cv == c]
            if c not in inside or any(m not in inside or where[m] != where[c] for m in members):
                inside -= set(members) | {c}
        return inside

    def _segments(self):
        """[(first, end)] node ranges (at least two nodes each) that run image by image."""
        nodes = self.graph.nodes
        if self.graph.shapes[self.graph.input][0] < 2:
            return []
        runs, start = [], None
        for t, n in enumerate(nodes + [None]):
            if n is not None and self._per_image(n):
                start = t if start is None else start
                continue
            if start is not None and t - start >= 2:
                runs.append((start, t))
            start = None
        return runs

    def _row_sums(self):
        """{value: (N, Cb, P, 16)}: the depthwise outputs that a global average pool reads. Their step
        also sums each output row as it stores it (squeeze-and-excitation: the pool then reads P row
        sums per plane instead of the whole output, which no longer sits in the caches)."""
        producer = {n.out: n for n in self.graph.nodes}
        out = {}
        for n in self.graph.nodes:
            src = producer.get(n.inputs[0]) if n.op == "gap" else None
            if src is None or src.op != "conv" or src.attrs["kind"] != "depthwise":
                continue
            N, C, P, Q = self.graph.shapes[src.out]
            if N * C * P * Q:
                out[src.out] = (N, B.blocks(C), P, B.BLOCK)
        return out

    # ---------------------------------------------------------------- steps
    def bind(self, arena):
        """The steps as callables on this arena (a Segment for each of self.segments, one per other
        node), and the input/output adapters."""
        nodes, N = self.graph.nodes, self.graph.shapes[self.graph.input][0]
        starts = dict(self.segments)
        sums = {v: np.zeros(shape) for v, shape in self.row_sums.items()}     # beside the arena
        steps, t = [], 0
        while t < len(nodes):
            if t in starts:
                end = starts[t]
                steps.append(Segment(range(t, end), [[self._bind_node(arena, nodes[u], i, sums)
                                                      for u in range(t, end)] for i in range(N)]))
                t = end
            else:
                steps.append(self._bind_node(arena, nodes[t], None, sums))
                t += 1
        return steps, self._bind_input(arena), self._bind_output(arena)

    def _bind_input(self, arena):
        v = self.graph.input
        buf, h, lay = self.view(arena, v), self.halo[v], self.layout
        if self.layouts[v] == "nchw_pad":
            return lambda x: _threads.run(lay.pad_nchw, np.ascontiguousarray(x), buf, h)
        if self.layouts[v] == "blocked":
            return lambda x: _threads.run(lay.to_blocked, np.ascontiguousarray(x), buf, h)
        return lambda x: np.copyto(buf, x)

    def _bind_output(self, arena):
        v = self.graph.output
        buf, h, shape, lay = self.view(arena, v), self.halo[v], self.graph.shapes[v], self.layout
        if self.layouts[v] == "blocked":
            def get():
                y = np.empty(shape, dtype=np.float32)
                _threads.run(lay.from_blocked, buf, h, y)
                return y
            return get
        return lambda: buf.copy()

    def _nchw(self, arena, v):
        """Value v as an NCHW (or plain) array: a fallback op's operand."""
        buf = self.view(arena, v)
        if self.layouts[v] == "blocked":
            y = np.empty(self.graph.shapes[v], dtype=np.float32)
            _threads.run(self.layout.from_blocked, buf, self.halo[v], y)
            return y
        if self.layouts[v] == "nchw_pad":
            h = self.halo[v]
            return buf[:, :, h:buf.shape[2] - h, h:buf.shape[3] - h] if h else buf
        return buf

    def _store(self, arena, v, y):
        buf = self.view(arena, v)
        if self.layouts[v] == "blocked":
            _threads.run(self.layout.to_blocked, np.ascontiguousarray(y, dtype=np.float32), buf, self.halo[v])
        else:
            np.copyto(buf, np.asarray(y, dtype=np.float32).reshape(buf.shape))

    def dense_call(self, arena, n, image=None, tile=None):
        """The kernel call of dense conv node n on the arena: its tile the given one, else the tuned
        one (n.attrs["tile"], set by tune.py), else the cost model's. A tile is (kb, np, chunk, flat)
        for the FMA kernel, the work partition (band, images, blocks, chunk) on AMX tiles."""
        vw = lambda v: self.view(arena, v, image)  # noqa: E731
        res, packed = n.attrs.get("res"), n.attrs["packed"]
        r, rh = (vw(res), self.halo[res]) if res is not None else (None, 0)
        tile = tile or n.attrs.get("tile")
        if isinstance(packed, A.AmxWeights):
            call = self.amx.Conv(vw(n.inputs[0]), self.halo[n.inputs[0]], packed, vw(n.out),
                                 self.halo[n.out], r, rh, n.attrs["act"])
            if tile:
                call.set_partition(*tile)
            if "scale" in n.attrs:
                call.scale_inputs(self._scale(arena, n, image))
            return call
        if isinstance(packed, B.WinogradWeights):
            return self.blocked.Winograd(vw(n.inputs[0]), self.halo[n.inputs[0]], packed, vw(n.out),
                                         self.halo[n.out], r, rh, n.attrs["act"])
        call = self.blocked.Conv(vw(n.inputs[0]), self.halo[n.inputs[0]], packed, vw(n.out), self.halo[n.out],
                                 r, rh, n.attrs["act"])
        if tile:
            call.set_tile(tile[0], tile[1], cbc=tile[2], flat=tile[3])
        if "scale" in n.attrs:          # a folded squeeze-and-excitation scale (lower.fold_scales)
            flat = self._scale(arena, n, image)
            call.scale_inputs(flat, B.aligned_empty((flat.shape[0],) + packed.w.shape))
        return call

    def _scale(self, arena, n, image):
        """The (N, C) view of conv node n's folded scale in the arena (read at every call)."""
        s = self.view(arena, n.attrs["scale"], image)
        flat = s.reshape(s.shape[0], -1)
        if not np.shares_memory(flat, s):
            raise AssertionError("a folded scale must be a view of its arena buffer")
        return flat

    def tunable(self):
        """[(node, image)]: the dense direct convolutions (FMA or AMX) whose tile tune.py may choose,
        with the image their calls run on (0 inside a segment, which runs image by image; None: the
        whole batch)."""
        seg = {t for a, b in self.segments for t in range(a, b)}
        return [(n, 0 if t in seg else None) for t, n in enumerate(self.graph.nodes)
                if n.op == "conv" and n.attrs["kind"] == "dense" and not isinstance(n.attrs["packed"], B.WinogradWeights)]

    def _bind_node(self, arena, n, image=None, sums=None):
        """Node n's step on the arena (on image `image` alone when given: a segment's): a callable
        taking the thread count. sums: {value: row-sum array} of self.row_sums."""
        sums = sums or {}
        rows = lambda v: sums[v] if image is None else sums[v][image:image + 1]  # noqa: E731
        op, F = n.op, self.blocked
        vw = lambda v: self.view(arena, v, image)  # noqa: E731
        h = self.halo
        if op == "conv" and n.attrs["kind"] == "dense":
            return self.dense_call(arena, n, image)
        if op == "conv" and n.attrs["kind"] != "nchw":
            x, y = vw(n.inputs[0]), vw(n.out)
            xh, yh = h[n.inputs[0]], h[n.out]
            res = n.attrs.get("res")
            r, rh = (vw(res), h[res]) if res is not None else (None, 0)
            act, packed, kind = n.attrs["act"], n.attrs["packed"], n.attrs["kind"]
            if kind == "depthwise":
                return F.Depthwise(x, xh, packed, y, yh, r, rh, act,
                                   rows(n.out) if n.out in sums else None)
            g = n.attrs["g"]
            cgb, kgb = g.Cg // B.BLOCK, g.Kg // B.BLOCK
            parts = [F.Conv(x[:, i * cgb:(i + 1) * cgb], xh, packed[i], y[:, i * kgb:(i + 1) * kgb], yh,
                            None if r is None else r[:, i * kgb:(i + 1) * kgb], rh, act) for i in range(g.groups)]

            def grouped(nthreads):
                for call in parts:
                    call(nthreads)
            return grouped
        if op == "pool":
            x, y, g = vw(n.inputs[0]), vw(n.out), n.attrs["g"]
            xh, yh, mx, inc = h[n.inputs[0]], h[n.out], n.attrs["max"], n.attrs["include_pad"]
            args = ((g.kh, g.kw), (g.sh, g.sw), (g.ph, g.pw), inc)
            return functools.partial(F.pool, x, xh, y, yh, mx, *args)
        if op == "gap":
            x, xh = vw(n.inputs[0]), h[n.inputs[0]]
            y = vw(n.out)
            flat = y.reshape(y.shape[0], -1)
            if n.inputs[0] in sums:
                _, _, P, Q = self.graph.shapes[n.inputs[0]]
                return functools.partial(F.mean_rows, rows(n.inputs[0]), P * Q, flat)
            return functools.partial(F.global_avg_pool, x, xh, flat)
        if op == "add":
            a, b, y = vw(n.inputs[0]), vw(n.inputs[1]), vw(n.out)
            ah, bh, yh, act = h[n.inputs[0]], h[n.inputs[1]], h[n.out], n.attrs.get("act", 0)
            return functools.partial(F.add, a, ah, b, bh, y, yh, act)
        if op == "scale":
            x, s, y = vw(n.inputs[0]), vw(n.inputs[1]), vw(n.out)
            xh, yh = h[n.inputs[0]], h[n.out]
            sflat = s.reshape(s.shape[0], -1)
            return functools.partial(F.scale_channels, x, xh, sflat, y, yh)
        if op == "act" and self.layouts[n.out] == "plain":
            x, y, act = vw(n.inputs[0]), vw(n.out), n.attrs["act"]
            return lambda nthreads: np.copyto(y, B.activate(x, act))
        if op == "act":
            x, y, xh, yh, act = vw(n.inputs[0]), vw(n.out), h[n.inputs[0]], h[n.out], n.attrs["act"]

            def activation(nthreads):
                B.zero_frame(y, yh)
                B.interior(y, yh)[...] = B.activate(B.interior(x, xh), act)
            return activation
        if op == "concat" and n.attrs.get("inplace"):
            return lambda nthreads: None                # the operands wrote their blocks already
        if op == "concat" and all(self.graph.shapes[v][1] % B.BLOCK == 0 for v in n.inputs[:-1]):
            srcs = [(vw(v), h[v]) for v in n.inputs]
            y, yh = vw(n.out), h[n.out]

            def concat(nthreads):
                B.zero_frame(y, yh)
                off = 0
                for s, sh in srcs:
                    nb = s.shape[1]
                    B.interior(y[:, off:off + nb], yh)[...] = B.interior(s, sh)
                    off += nb
            return concat
        if op == "flatten":
            v = n.inputs[0]
            x, xh, y = vw(v), h[v], vw(n.out)
            N, C, H, W = self.graph.shapes[v]
            if H == W == 1:
                return lambda nthreads: np.copyto(y, x[:, :, xh, xh, :].reshape(N, -1)[:, :C])
            return lambda nthreads: np.copyto(y, self._nchw(arena, v).reshape(y.shape))
        if op == "linear":
            return self._bind_linear(arena, n)
        return self._bind_fallback(arena, n)

    def _bind_linear(self, arena, n):
        """y = act(x @ w.T + b) as a blocked 1x1 convolution whose pixels are the batch: x (N, F) becomes
        (1, F/16, 1, N, 16) (a reshape for N = 1), so each weight vector is reused across the batch in
        registers and the output features fill the vector lanes."""
        x, y = self.view(arena, n.inputs[0]), self.view(arena, n.out)
        cw, act = n.attrs["packed"], n.attrs["act"]
        N, F_ = x.shape
        K = y.shape[1]
        fb, kb = B.blocks(F_), B.blocks(K)
        xin = B.aligned_zeros((1, fb, 1, N, B.BLOCK))
        out = B.aligned_empty((1, kb, 1, N, B.BLOCK))
        xpad = np.zeros((N, fb * B.BLOCK), dtype=np.float32)
        xin_view = xin[0, :, 0].transpose(1, 0, 2)               # (N, fb, 16), a view of xin
        out_view = out[0, :, 0].transpose(1, 0, 2)
        conv = self.blocked.Conv(xin, 0, cw, out, 0, None, 0, act)

        def linear(nthreads):
            if N == 0:
                return
            xpad[:, :F_] = x
            np.copyto(xin_view, xpad.reshape(N, fb, B.BLOCK))
            conv(nthreads)
            np.copyto(y, out_view.reshape(N, kb * B.BLOCK)[:, :K])
        return linear

    def _bind_fallback(self, arena, n):
        """An op without a blocked kernel: FAST's op (or the array operation) on NCHW arrays."""
        name = n.attrs.get("name", n.op)
        if n.op == "conv":          # a grouped conv the blocked kernels do not take
            w, b, kw = n.attrs["w"], n.attrs["b"], n.attrs["args"]
            act = {0: None, 1: "relu", 2: "relu6"}[n.attrs["act"]]

            def call(xs):
                return _ops.FAST.conv2d(xs[0], w, b, activation=act, **kw)
        elif n.op == "concat":      # channel counts whose blocks cannot be laid side by side
            def call(xs):
                return np.concatenate(xs, axis=1)
        else:
            slots, kwargs = n.attrs["slots"], n.attrs["kwargs"]

            def call(xs):
                args = []
                for kind, a in slots:
                    args.append(xs[a] if kind == "sym" else [xs[i] for i in a] if kind == "syms" else a)
                return _apply(name, args, kwargs)
        ins = list(n.inputs)

        def fallback(nthreads):
            self._store(arena, n.out, call([self._nchw(arena, v) for v in ins]))
        return fallback


_BINARY = {"add": np.add, "mul": np.multiply, "sub": np.subtract, "div": np.divide}


def _apply(name, args, kwargs):
    if name == "binary":
        a, b = args
        return _BINARY[kwargs["op"]](a, b)
    if name == "neg":
        return -args[0]
    if name == "getitem":
        return args[0][args[1]]
    if name == "reshape":
        return args[0].reshape(*args[1])
    if name in ("mean", "sum"):
        return getattr(args[0], name)(**kwargs)
    return getattr(_ops.FAST, name)(*args, **kwargs)
