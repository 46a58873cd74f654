"""pytest-benchmark: each normal convolution of the separable suite against its replacement
(depthwise + pointwise, or Inception's 1x1 bottleneck + 5x5), as whole chains."""
import numpy as np
import pytest

import kernels

from .conftest import record, run_or_skip
from .suite_separable import comparisons


def _chain(stages):
    """The stages as one call: each conv with "auto", the output of one feeding the next."""
    s0 = stages[0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, s0.C, s0.n, s0.n)).astype(np.float32)
    ws = [(rng.standard_normal((s.K, s.C // s.groups, s.f, s.f)) / np.sqrt(s.C // s.groups * s.f ** 2))
          .astype(np.float32) for s in stages]

    def call():
        y = x
        for s, w in zip(stages, ws):
            y = kernels.conv2d(y, w, padding=s.f // 2, groups=s.groups)
        return y
    return call


CASES = [pytest.param(c, side, id=f"{c.name}-{side}") for c in comparisons(full=False) for side in ("base", "alt")]


@pytest.mark.parametrize("cmp,side", CASES)
def test_chain(benchmark, cmp, side):
    stages = getattr(cmp, side)
    call = _chain(stages)
    run_or_skip(call)
    benchmark.group = cmp.name
    benchmark(call)
    record(benchmark, sum(s.geometry.macs for s in stages), comparison=cmp.name,
           side="normal" if side == "base" else "replacement", theory_ratio=cmp.theory_ratio,
           stages=[s.label for s in stages])
