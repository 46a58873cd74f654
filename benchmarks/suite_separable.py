"""`python -m benchmarks separable`: normal convolution against its cheaper replacements.

A normal f x f convolution from n_c to n_c' channels on an n x n map costs n^2 n_c n_c' f^2
multiplications; the depthwise-separable replacement (an f x f depthwise conv, then a 1x1 pointwise
conv) costs n^2 n_c f^2 + n^2 n_c n_c', a ratio of 1/n_c' + 1/f^2. The time ratio is larger: the
depthwise stage does f^2 multiplications per input element it reads, so it runs at low arithmetic
intensity, on the memory roof, far below the FLOP rate the dense convolution reaches. This suite puts
the theoretical ratio beside the measured one, with the bytes, the intensities and the ratio the
roofline predicts, for a grid of (n, n_c, n_c', f), the separable blocks of MobileNet v1/v2 and
EfficientNet-B0, and Inception's 1x1 bottleneck before a 5x5 against the plain 5x5.

The normal convolution runs with its best algorithm (the fastest of those that accept it), the
depthwise stage with the depthwise kernel and the pointwise stage with the pointwise kernel. Every
stage pads "same" (stride 1), as cnn.cost's functions do by default.

A user's own comparison comes from `--shape n,c,k,f` (parse_shape); `--layers` picks comparisons by
these names (select).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

import kernels
from kernels.shapes import check_algorithm, conv_geometry

from .layers import matching
from .roofline import conv_bytes, conv_flops, intensity, roofline_time
from .timing import compare


@dataclass(frozen=True)
class Stage:
    """One convolution of a chain: n x n map, C -> K channels, f x f kernel, "same" padding (stride 1)."""
    n: int
    C: int
    K: int
    f: int
    groups: int = 1

    @property
    def geometry(self):
        return conv_geometry((1, self.C, self.n, self.n), (self.K, self.C // self.groups, self.f, self.f),
                             1, "same", 1, self.groups)

    @property
    def kind(self):
        return "depthwise" if self.groups > 1 else ("pointwise" if self.f == 1 else "regular")

    @property
    def label(self):
        return f"{self.kind} {self.f}x{self.f} {self.C}->{self.K}"

    def algorithms(self, allowed):
        """Depthwise and pointwise stages run their own kernel; a regular stage every algorithm that
        accepts it (the best counts)."""
        if self.kind != "regular":
            return [self.kind]
        ok = []
        for alg in allowed:
            try:
                check_algorithm(alg, self.geometry)
                ok.append(alg)
            except ValueError:
                pass
        return ok


@dataclass(frozen=True)
class Comparison:
    name: str
    family: str            # "grid", "block" or "bottleneck" (a --shape comparison is a "block")
    base: tuple            # stages of the normal convolution
    alt: tuple             # stages of the replacement
    source: str = field(default="suite", compare=False)     # "suite", or "--shape" for a user's own

    @property
    def theory_ratio(self):
        """Multiplications of the replacement / of the normal conv (= 1/n_c' + 1/f^2 when separable)."""
        return sum(s.geometry.macs for s in self.alt) / sum(s.geometry.macs for s in self.base)


def separable(name, family, n, nc, ncp, f, source="suite"):
    return Comparison(name, family, (Stage(n, nc, ncp, f),), (Stage(n, nc, nc, f, nc), Stage(n, nc, ncp, 1)),
                      source)


# (name, n, n_c, n_c', f): the depthwise-separable part of each network's blocks
BLOCKS = [
    ("mv1.112x32->64", 112, 32, 64, 3),
    ("mv1.56x128->128", 56, 128, 128, 3),
    ("mv1.14x512->512", 14, 512, 512, 3),
    ("mv1.7x1024->1024", 7, 1024, 1024, 3),
    ("mv2.56x144->24", 56, 144, 24, 3),
    ("mv2.14x576->96", 14, 576, 96, 3),
    ("mv2.7x960->160", 7, 960, 160, 3),
    ("effb0.14x672->112k5", 14, 672, 112, 5),
    ("effb0.7x1152->192k5", 7, 1152, 192, 5),
]
GRID_QUICK = [(56, 64, 64, 3), (28, 128, 128, 3), (14, 256, 256, 3), (28, 128, 128, 5)]
GRID_FULL = [(n, nc, ncp, f) for n, nc, ncp, f in
             itertools.product((14, 28, 56), (32, 128, 512), (32, 128, 512), (3, 5))]
# Inception (GoogLeNet 3a's 5x5 branch): 28x28x192 -> 32 5x5, or 192 -> 16 (1x1) -> 32 (5x5)
INCEPTION = Comparison("incep.28x192->16->32k5", "bottleneck", (Stage(28, 192, 32, 5),),
                       (Stage(28, 192, 16, 1), Stage(28, 16, 32, 5)))


def comparisons(full: bool):
    grid = GRID_FULL if full else GRID_QUICK
    out = [separable(f"grid.n{n}.c{nc}.k{ncp}.f{f}", "grid", n, nc, ncp, f) for n, nc, ncp, f in grid]
    out += [separable(name, "block", n, nc, ncp, f) for name, n, nc, ncp, f in BLOCKS]
    return out + [INCEPTION]


def select(pattern: str, full: bool):
    """The comparisons whose name matches a comma-separated list of shell patterns."""
    items = comparisons(full)
    names = set(matching([c.name for c in items], pattern))
    if not names:
        more = "" if full or not matching([c.name for c in comparisons(True)], pattern) else \
            " (it matches comparisons of the whole grid: add --full)"
        raise ValueError(f"--layers {pattern!r} matches no comparison of the separable suite{more}: "
                         f"{', '.join(c.name for c in items)}")
    return [c for c in items if c.name in names]


SHAPE_FIELDS = "n,c,k,f"


def parse_shape(text: str) -> Comparison:
    """`--shape n,c,k,f` -> the normal f x f convolution n x n x c -> k against its depthwise-separable
    replacement (cnn.cost.depthwise_separable(n, n, c, k, f) in numbers)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise ValueError(f"separable --shape takes {SHAPE_FIELDS} (map side, channels in, channels out, "
                         f"filter side), got {text!r}")
    vals = []
    for v, name in zip(parts, ("n", "c", "k", "f")):
        try:
            vals.append(int(v))
        except ValueError:
            raise ValueError(f"--shape {text}: {name} must be an int, got {v!r}") from None
        if vals[-1] < 1:
            raise ValueError(f"--shape {text}: {name} must be >= 1, got {vals[-1]}")
    n, c, k, f = vals              # any positive sizes are valid: "same" padding fits every filter
    return separable(f"shape.{n}x{c}->{k}.f{f}", "block", n, c, k, f, source="--shape")


def _stage_calls(stage, algorithms, backend, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, stage.C, stage.n, stage.n)).astype(dtype)
    w = (rng.standard_normal((stage.K, stage.C // stage.groups, stage.f, stage.f)) /
         np.sqrt(stage.C // stage.groups * stage.f ** 2)).astype(dtype)
    xd, wd = backend.array(x), backend.array(w)
    ours = {}
    for alg in stage.algorithms(algorithms):
        def call(alg=alg):
            return kernels.conv2d(xd, wd, stride=1, padding="same", groups=stage.groups, algorithm=alg)
        try:
            call()
        except Exception:                    # not built or failing: left out of this comparison
            continue
        ours[alg] = call
    theirs = None
    if backend.torch is not None:
        theirs = backend.torch_variants(x, w, None, 1, "same", stage.groups, stage.kind == "depthwise")
    return ours, theirs


def _chain_samples(stats, keys):
    """Per-round seconds of a chain: the sum over its stages of each stage's fastest contender."""
    n = min(len(stats[k].samples) for group in keys for k in group)
    total = np.zeros(n)
    for group in keys:
        best = min(group, key=lambda k: stats[k].median)
        total += np.asarray(stats[best].samples[:n])
    return total


def bench_comparison(cmp, algorithms, backend, dtype, budget, ceilings):
    itemsize = np.dtype(dtype).itemsize
    peak = ceilings["peak_gflops"].get(np.dtype(dtype).name, float("nan"))
    bw = ceilings["roofline_bandwidth_gbps"]
    fns, timers, groups = {}, {}, {"ours": {}, "pytorch": {}}
    stages_out = []
    for side in ("base", "alt"):
        for i, stage in enumerate(getattr(cmp, side)):
            ours, theirs = _stage_calls(stage, algorithms, backend, dtype, seed=i)
            key = f"{side}{i}"
            groups["ours"][key] = [f"{key}.{a}" for a in ours]
            for a, fn in ours.items():
                fns[f"{key}.{a}"], timers[f"{key}.{a}"] = fn, backend.timer_ours
            if theirs:
                groups["pytorch"][key] = [f"{key}.torch.{v}" for v in theirs]
                for v, fn in theirs.items():
                    fns[f"{key}.torch.{v}"], timers[f"{key}.torch.{v}"] = fn, backend.timer_torch
            g = stage.geometry
            flops, nbytes = conv_flops(g), conv_bytes(g, itemsize)
            stages_out.append({"side": side, "stage": stage.label, "key": key, "macs": g.macs, "bytes": nbytes,
                               "intensity": intensity(flops, nbytes),
                               "roofline_s": roofline_time(flops, nbytes, peak, bw)})
    stats = compare(fns, budget, timers)

    def side_stats(who, side):
        keys = [groups[who][k] for k in groups[who] if k.startswith(side)]
        n_stages = len(getattr(cmp, side))
        if len(keys) != n_stages or not all(keys):
            return None
        return _chain_samples(stats, keys)

    for st in stages_out:
        for who in ("ours", "pytorch"):
            names = groups[who].get(st["key"], [])
            if names:
                best = min(names, key=lambda k: stats[k].median)
                st[f"{who}_s"] = stats[best].median
                st[f"{who}_gflops"] = 2 * st["macs"] / stats[best].median / 1e9
                if who == "ours":
                    st["algorithm"] = best.split(".", 1)[1]

    def total(side, field):
        return sum(s[field] for s in stages_out if s["side"] == side)

    base_macs, alt_macs = total("base", "macs"), total("alt", "macs")
    base_bytes, alt_bytes = total("base", "bytes"), total("alt", "bytes")
    row = {"name": cmp.name, "family": cmp.family, "source": cmp.source, "stages": stages_out,
           "theory_ratio": cmp.theory_ratio, "base_macs": base_macs, "alt_macs": alt_macs,
           "base_bytes": base_bytes, "alt_bytes": alt_bytes, "bytes_ratio": alt_bytes / base_bytes,
           "base_intensity": 2 * base_macs / base_bytes, "alt_intensity": 2 * alt_macs / alt_bytes,
           "roofline_ratio": total("alt", "roofline_s") / total("base", "roofline_s")}
    if cmp.family != "bottleneck":
        s = cmp.base[0]
        row.update({"n": s.n, "nc": s.C, "ncp": s.K, "f": s.f, "formula_ratio": 1 / s.K + 1 / s.f ** 2})
    for who in ("ours", "pytorch"):
        b, a = side_stats(who, "base"), side_stats(who, "alt")
        if b is not None and a is not None:
            row[f"measured_ratio_{who}"] = float(np.median(a / b))
            row[f"base_s_{who}"] = float(np.median(b))
            row[f"alt_s_{who}"] = float(np.median(a))
    return row


def run(backend, *, items, algorithms, dtype, budget, ceilings, progress):
    task = progress.add_task(f"separable ({backend.name})", total=len(items))
    rows = []
    for cmp in items:
        progress.update(task, description=f"separable ({backend.name}): {cmp.name}")
        rows.append(bench_comparison(cmp, algorithms, backend, dtype, budget, ceilings))
        progress.advance(task)
    return {"device": backend.name, "dtype": np.dtype(dtype).name, "rows": rows}

