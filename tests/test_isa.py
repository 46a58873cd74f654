"""Run-time choice of the instruction set: kernels.cpu_info(), CONVFORGE_ISA, and that every variant
this CPU runs gives the reference's answer (the whole suite also runs per ISA: `make test`)."""
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kernels
from kernels import cpu
from kernels.cpu.isa import ISAS


def _python(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full, capture_output=True,
                          text=True, timeout=120)


def test_cpu_info_says_what_was_chosen():
    info = kernels.cpu_info()
    assert info["isa"] in ISAS
    assert info["isa"] in info["runnable"] and info["isa"] in info["built"]
    assert info["runnable"][-1] == "generic"          # every x86-64 runs the baseline
    assert isinstance(info["flags"], list)
    if "avx512" in info["runnable"]:
        assert {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(info["flags"])
    if "avx2" in info["runnable"]:
        assert {"avx2", "fma"} <= set(info["flags"])
    assert cpu.direct.__name__ == f"kernels.cpu.{info['isa']}.direct"
    if not os.environ.get("CONVFORGE_ISA"):
        assert info["isa"] == [i for i in info["runnable"] if i in info["built"]][0]


@pytest.mark.parametrize("isa", [i for i in ISAS if i in kernels.cpu_info()["runnable"]
                                 and i in kernels.cpu_info()["built"]])
def test_every_runnable_variant_is_chosen_when_forced_and_right(isa):
    r = _python("""
        import numpy as np, kernels
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 5, 11, 9)).astype(np.float32)
        w = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
        ref = kernels.reference.conv2d(x, w, padding=1)
        errs = [np.linalg.norm(kernels.conv2d(x, w, padding=1, algorithm=a) - ref) / np.linalg.norm(ref)
                for a in ("direct", "im2col")]
        print(kernels.cpu_info()["isa"], kernels.cpu.direct.__name__, max(errs) < 1e-5)""", CONVFORGE_ISA=isa)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [isa, f"kernels.cpu.{isa}.direct", "True"]


def test_unknown_isa_is_refused_at_import():
    r = _python("import kernels", CONVFORGE_ISA="avx3")
    assert r.returncode != 0 and "CONVFORGE_ISA must be one of avx512, avx2, generic" in r.stderr


def test_choice_rules():
    assert cpu.choose_isa(["avx512", "avx2", "generic"], ["avx512", "avx2", "generic"]) == "avx512"
    assert cpu.choose_isa(["avx2", "generic"], ["avx512", "avx2", "generic"]) == "avx2"
    assert cpu.choose_isa(["avx512", "avx2", "generic"], ["generic"]) == "generic"
    assert cpu.choose_isa(["avx512", "avx2", "generic"], ISAS, "AVX2 ") == "avx2"
    with pytest.raises(RuntimeError, match="this CPU does not support it"):
        cpu.choose_isa(["avx2", "generic"], ISAS, "avx512")
    with pytest.raises(RuntimeError, match="not built for it"):
        cpu.choose_isa(["avx512", "avx2", "generic"], ["generic"], "avx2")
    with pytest.raises(ImportError, match="no CPU kernel variant"):
        cpu.choose_isa(["generic"], ["avx512"])


def test_variants_agree_with_each_other():
    """Different ISAs sum in different orders, so they agree to rounding, not bit for bit."""
    code = """
        import sys
        import numpy as np, kernels
        rng = np.random.default_rng(1)
        x = rng.standard_normal((1, 24, 13, 13))
        w = rng.standard_normal((24, 1, 5, 5))
        np.save(sys.stdout.buffer, kernels.conv2d(x, w, padding=2, groups=24))"""
    outs = {}
    for isa in kernels.cpu_info()["runnable"]:
        if isa in kernels.cpu_info()["built"]:
            r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, timeout=120,
                               env=dict(os.environ, CONVFORGE_ISA=isa))
            assert r.returncode == 0, r.stderr
            outs[isa] = np.load(io.BytesIO(r.stdout))
    ref = next(iter(outs.values()))
    for y in outs.values():
        np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
