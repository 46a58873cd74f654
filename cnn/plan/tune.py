"""The plan's tiles chosen by measurement: for each dense direct convolution, a few register tiles and
reduction chunks (blocked.h's bconv plan) timed on the layer itself, in the plan's own arena, at the
thread count of the call; the fastest is kept on the node (n.attrs["tile"]) and every binding of the
plan uses it.

Candidates: the model's pick, the row tiles 4 x 7 and 2 x 14 and the flat 4 x 6 (a band's rows joined,
no spilled accumulator), each with the model's chunk and an L1-sized one. On AMX tiles the tile is
the work partition (amx_candidates): how many images an item takes, how its weights are chunked.

Why: the cost model's constants fit the machine they were measured on and no other. Measured on two
Intel Xeons, the tile that wins differs (4 x 7 on an Emerald Rapids host, 2 x 14 by 6-18% on the
following host's 1x1 layers), and chunks that keep a chunk's weights in L1 (32 KB) were 7-14% faster
there on 7x7 and 14x14 planes than the model's L2-sized ones. Every candidate reduces each output in
the same order, so the choice changes the time, never the bits: a tuned plan gives exactly what an
untuned one does.

Cost: a few calls of each candidate per layer (interleaved rounds, the best of each candidate's
times; a candidate must beat the model's pick by TIE to replace it): measured 1.8 s for ResNet-50 at
batch 8 and 0.18 s at batch 1 on two cores, for 2-5% (batch 8) and 0-7% (batch 1) on the whole network
and 4-9% on MobileNetV1 at batch 1 (benchmarks/results/cpu-xeon-model167-2t-2026-12-02/kernels/tuning.md).
"""
from __future__ import annotations

import time

import numpy as np

from kernels import _threads
from kernels import amx as A

# tried beside the model's: the model's usual row tiles on Intel and AMD, and the flat 4 x 6 (rows
# joined, no spill)
TILES = ((4, 7, False), (2, 14, False), (4, 6, True))
L1_CHUNK = 32 * 1024               # weights per chunk that stay in a 48 KB L1 beside a tile's input
ROUNDS, MAX_ROUNDS, BUDGET_S = 3, 9, 0.02
TIE = 0.97                         # a candidate replaces the model's tile only when this much faster


def _partition(call):
    p = call.partition
    return (p["band"], p["images"], p["blocks"], p["chunk"])


def amx_candidates(program, arena, n, image):
    """{(band, images, blocks, chunk): call} of an AMX node, distinct as planned, the model's first:
    whole planes with 2, 4 or all the images of the batch per item, each with the model's weight
    chunks and with one chunk of every input channel. The model cannot weigh weights streamed once
    per item against a converted input that outgrows L2 (measured on 2048->512 at 7x7, batch 8: 4
    images per item 1.35x faster than its pick of 1). Nothing is tried at batch 1: there the choice
    is between bands and output groups, which a layer timed alone (its weights in the caches from
    the previous call) judges wrongly for the network (where they come from memory): tuned so,
    ResNet-50 ran 5% slower."""
    model = program.dense_call(arena, n, image, tile=(0, 0, 0, 0))
    _threads.run(model)
    out = {_partition(model): model}
    N, _, P, _ = program.graph.shapes[n.out]
    N = 1 if image is not None else N
    groups = (n.attrs["packed"].C + 31) // 32
    tries = [(P, k, 0, c) for k in sorted({2, 4, N}) if 1 < k <= N and -(-N // -(-N // k)) == k for c in (0, groups)]
    for t in tries:
        call = program.dense_call(arena, n, image, tile=t)
        _threads.run(call)
        out.setdefault(_partition(call), call)
    return out


def candidates(program, arena, n, image):
    """{tile: call} of node n, distinct as planned, the model's own first: (kb, np, chunk, flat) of the
    FMA kernel (np is capped at the row, chunks at the input blocks), or an AMX node's partitions."""
    if isinstance(n.attrs["packed"], A.AmxWeights):
        return amx_candidates(program, arena, n, image)
    model = program.dense_call(arena, n, image, tile=(0, 0, 0, False))
    _threads.run(model)
    out = {(*model.tile, model.chunk, model.flat): model}
    block = model.block_bytes // model.tile[0]            # per input block and output block
    for kb, np_, flat in ((*model.tile, model.flat),) + TILES:
        for chunk in (0, max(1, L1_CHUNK // (block * kb))):
            try:
                call = program.dense_call(arena, n, image, tile=(kb, np_, chunk, flat))
                _threads.run(call)
            except ValueError:                            # a flat tile on the stem's NCHW input
                break
            out.setdefault((*call.tile, call.chunk, call.flat), call)
    return out


def fastest(calls):
    """The key of the fastest call (the first key unless another is faster by TIE): interleaved
    rounds, each call's best time, ROUNDS at least and more while under BUDGET_S, MAX_ROUNDS at most."""
    times = {k: np.inf for k in calls}
    spent, rounds = 0.0, 0
    while rounds < ROUNDS or (rounds < MAX_ROUNDS and spent < BUDGET_S):
        for k, call in calls.items():
            t0 = time.perf_counter()
            _threads.run(call)
            dt = time.perf_counter() - t0
            times[k] = min(times[k], dt)
            spent += dt
        rounds += 1
    first = next(iter(calls))
    best = min(times, key=times.get)
    return (first if times[best] > TIE * times[first] else best), times


def tune(program, arena, warm):
    """Choose every tunable node's tile on `arena` (which `warm()` fills with a forward pass, so the
    layers read realistic activations); returns [(node, chosen, {candidate: best seconds})]."""
    warm()
    report = []
    for n, image in program.tunable():
        calls = candidates(program, arena, n, image)
        chosen, times = fastest(calls) if len(calls) > 1 else (next(iter(calls)), {})
        n.attrs["tile"] = chosen
        report.append((n, chosen, times))
    return report
