"""Lowering a traced graph for the blocked kernels: fusions, layouts, halos and weight packing.

Passes, in order:
  1. kinds: each conv becomes "dense" (groups 1), "depthwise" (groups == C == K) or "grouped"
     (groups whose channel counts are multiples of 16), else stays a fallback (NCHW) call.
  2. fusion: an addition whose operand is a conv output used only there becomes that conv's residual;
     an activation whose operand is a conv or addition output used only there becomes its epilogue.
     The fused node moves to the position of the op it absorbed (its operands are ready by then).
  3. scale folding: a per-channel scale (squeeze-and-excitation) read only by a dense conv becomes
     part of that conv where it is free: on AMX tiles (applied as the input is converted to bf16),
     or for a 1x1 stride-1 float32 conv whose weights per image are no larger than the scaled
     activation (each call scales a per-image copy of the weights: Conv.scale_inputs). The pass
     that wrote x * s and the conv's read of it become one read of x.
  4. concatenation: when every operand but the last has a multiple of 16 channels and is written by a
     blocked kernel, the operands are written straight into their channel blocks of the result.
  5. layouts: every 4-D activation is blocked (NCHW16c) except a network input whose only consumer is
     a dense conv with few channels (the stem reads a zero-padded NCHW copy); other values are plain.
     Each blocked value gets a halo: the largest padding of the convolutions that read it.
"""
from __future__ import annotations

import numpy as np

from kernels import amx as A
from kernels import blocked as B

STEM_MAX_CHANNELS = 8       # a first conv with at most this many input channels reads NCHW directly

CONV_KINDS = ("dense", "depthwise", "grouped")


def _consumers(nodes):
    uses = {}
    for i, n in enumerate(nodes):
        for v in n.inputs:
            uses.setdefault(v, []).append(i)
    return uses


def classify(graph):
    """Pass 1: the kind of every conv node."""
    for n in graph.nodes:
        if n.op != "conv":
            continue
        g = n.attrs["g"]
        if g.groups == 1:
            n.attrs["kind"] = "dense"
        elif g.groups == g.C == g.K:
            n.attrs["kind"] = "depthwise"
        elif g.Cg % B.BLOCK == 0 and g.Kg % B.BLOCK == 0:
            n.attrs["kind"] = "grouped"
        else:
            n.attrs["kind"] = "nchw"


def _fusable(n, *, residual):
    if n.op == "linear":
        return not residual and n.attrs["act"] == 0
    if n.op == "conv":
        return n.attrs["kind"] in CONV_KINDS and n.attrs["act"] == 0 and (not residual or "res" not in n.attrs)
    return n.op == "add" and not residual and n.attrs.get("act", 0) == 0


def fuse(graph):
    """Pass 2: residual additions and activations into the producers' epilogues."""
    nodes = graph.nodes
    changed = True
    while changed:
        changed = False
        producer = {n.out: i for i, n in enumerate(nodes)}
        uses = _consumers(nodes)
        for i, n in enumerate(nodes):
            if n.op == "add":
                for a, b in ((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])):
                    j = producer.get(a)
                    if j is not None and len(uses.get(a, ())) == 1 and a != graph.output and \
                            _fusable(nodes[j], residual=True) and b != a:
                        absorbed = nodes[j]
                        absorbed.attrs["res"] = b
                        absorbed.inputs.append(b)
                        absorbed.out = n.out
                        nodes[i] = absorbed
                        del nodes[j]
                        changed = True
                        break
            elif n.op == "act":
                x = n.inputs[0]
                j = producer.get(x)
                if j is not None and len(uses.get(x, ())) == 1 and x != graph.output and \
                        _fusable(nodes[j], residual=False):
                    absorbed = nodes[j]
                    absorbed.attrs["act"] = n.attrs["act"]
                    absorbed.out = n.out
                    nodes[i] = absorbed
                    del nodes[j]
                    changed = True
            if changed:
                break


def fold_scales(graph):
    """Pass 3: scale nodes into the dense 1x1 convs that read them (n.attrs["scale"] = the scale value,
    which the conv also lists as an input so that it stays live until then)."""
    nodes = graph.nodes
    uses = _consumers(nodes)
    drop = set()
    for i, n in enumerate(nodes):
        if n.op != "scale" or n.out == graph.output or len(uses.get(n.out, ())) != 1:
            continue
        c = nodes[uses[n.out][0]]
        if c.op != "conv" or c.attrs["kind"] != "dense" or c.inputs[0] != n.out or c.attrs.get("res") == n.out:
            continue
        g = c.attrs["g"]
        if "scale" in c.attrs:
            continue
        # on AMX tiles the scale is applied as the conv converts its input, whatever the geometry;
        # the float32 kernel writes per-image weights: 1x1 only, and only where the weights of an
        # image (K x C) are no larger than the activation a scale pass reads and writes (C x H x W)
        if not _amx(c) and ((g.R, g.S, g.sh, g.sw, _pads(g)) != (1, 1, 1, 1, 0) or B.blocks(g.K) * B.BLOCK > g.H * g.W):
            continue
        x, s = n.inputs
        c.inputs[0] = x
        c.inputs.append(s)
        c.attrs["scale"] = s
        drop.add(i)
    graph.nodes[:] = [n for i, n in enumerate(nodes) if i not in drop]


BLOCKED_WRITERS = ("conv", "pool", "gap", "add", "scale", "act")


def plan_concats(graph, layouts):
    """Pass 4: concat operands written in place. -> {operand value: (concat value, block offset)}."""
    producer = {n.out: n for n in graph.nodes}
    placed = {}
    for n in graph.nodes:
        if n.op != "concat":
            continue
        chans = [graph.shapes[v][1] for v in n.inputs]
        ok = all(c % B.BLOCK == 0 for c in chans[:-1]) and len(set(n.inputs)) == len(n.inputs)
        for v in n.inputs:
            p = producer.get(v)
            ok = ok and p is not None and p.op in BLOCKED_WRITERS and p.attrs.get("kind", "") != "nchw" \
                and v not in placed and layouts.get(v) == "blocked" and v != graph.output
        if not ok:
            continue
        off = 0
        for v, c in zip(n.inputs, chans):
            placed[v] = (n.out, off)
            off += B.blocks(c)
        n.attrs["inplace"] = True
    return placed


def _pads(g):
    return max(g.pad_top, g.pad_bottom, g.pad_left, g.pad_right)


def choose_layouts(graph):
    """Pass 5: "blocked", "nchw_pad" (the stem's input) or "plain" per value, and the halos."""
    uses = _consumers(graph.nodes)
    layouts = {}
    for v, shape in graph.shapes.items():
        layouts[v] = "blocked" if len(shape) == 4 else "plain"
    x = graph.input
    readers = [graph.nodes[i] for i in uses.get(x, ())]
    if len(graph.shapes[x]) == 4 and readers and all(
            r.op == "conv" and r.attrs["kind"] == "dense" and r.inputs[0] == x and r.attrs["g"].C <= STEM_MAX_CHANNELS
            and "res" not in r.attrs for r in readers):
        layouts[x] = "nchw_pad"
        for r in readers:
            r.attrs["nchw_input"] = True
    halos = {v: 0 for v in graph.shapes}
    for n in graph.nodes:
        if n.op == "conv" and n.attrs["kind"] in CONV_KINDS:
            halos[n.inputs[0]] = max(halos[n.inputs[0]], _pads(n.attrs["g"]))
    return layouts, halos


def _winograd_tile(n):
    """Winograd's m for a dense 3x3 stride-1 convolution on blocked input where it runs faster than
    direct, else 0."""
    g = n.attrs["g"]
    if g.R == g.S == 3 and g.sh == g.sw == 1 and g.dh == g.dw == 1 and not n.attrs.get("nchw_input"):
        return B.winograd_tile(g.N, g.C, g.K, g.P, g.Q)
    return 0


def _amx(n):
    """Whether dense conv node n runs on AMX tiles: where this process runs them (kernels.amx), with
    weights that bf16 can hold (a stem reading NCHW too, its im2col rows as the reduction, where it
    has enough channels and taps to gain: kernels.amx.faster, measured against the float32 FMA kernels
    and Winograd on a Xeon with AMX in benchmarks/results/cpu-xeon-amx-2t-2026-12-08/kernels/amx.md)."""
    g, w, stem = n.attrs["g"], n.attrs["w"], n.attrs.get("nchw_input", False)
    return A.available() and A.takes(g.R, g.S, g.sh, g.sw, C=g.C, nchw_input=stem) and \
        A.faster(g.K, g.C, g.R, g.S, nchw_input=stem) and \
        bool(np.isfinite(w).all()) and float(np.abs(w).max(initial=0)) < 3.38e38


def pack(graph):
    """Prepack every blocked conv's weights (batch-norm already folded by the trace); a linear layer
    is a 1x1 convolution; dense layers run on AMX tiles where the CPU has them; elsewhere 3x3
    stride-1 layers where Winograd is faster get its transformed weights."""
    for n in graph.nodes:
        if n.op == "linear":
            w, b = n.attrs["w"].astype("float32", copy=False), n.attrs["b"]
            b = None if b is None else b.astype("float32", copy=False)
            n.attrs["packed"] = B.ConvWeights(w.reshape(w.shape + (1, 1)), b, (1, 1), (0, 0), (1, 1))
            continue
        if n.op != "conv" or n.attrs["kind"] == "nchw":
            continue
        g, w, b = n.attrs["g"], n.attrs["w"], n.attrs["b"]
        w = w.astype("float32", copy=False)
        b = None if b is None else b.astype("float32", copy=False)
        stride, pad, dil = (g.sh, g.sw), (g.pad_top, g.pad_left), (g.dh, g.dw)
        amx = n.attrs["kind"] == "dense" and _amx(n)
        m = _winograd_tile(n) if n.attrs["kind"] == "dense" and not amx else 0
        if amx:
            n.attrs["packed"] = A.AmxWeights(w, b, stride, pad, dil, nchw_input=n.attrs.get("nchw_input", False))
        elif m:
            n.attrs["packed"] = B.WinogradWeights(w, b, pad, m)
        elif n.attrs["kind"] == "dense":
            n.attrs["packed"] = B.ConvWeights(w, b, stride, pad, dil, nchw_input=n.attrs.get("nchw_input", False))
        elif n.attrs["kind"] == "depthwise":
            n.attrs["packed"] = B.DepthwiseWeights(w, b, stride, pad, dil)
        else:
            G, Kg = g.groups, g.Kg
            n.attrs["packed"] = [B.ConvWeights(w[i * Kg:(i + 1) * Kg], None if b is None else b[i * Kg:(i + 1) * Kg],
                                               stride, pad, dil) for i in range(G)]


def lower(graph):
    classify(graph)
    fuse(graph)
    fold_scales(graph)
    layouts, halos = choose_layouts(graph)
    pack(graph)
    placed = plan_concats(graph, layouts)
    return layouts, halos, placed
