"""README's "Build your own network" and "Measure your own layer" sections run as written: their Python
blocks in order in one namespace (printing what the comments and text blocks say), their
`python -m benchmarks` lines through the benchmark's own entry point (fixed ceilings, short timings)."""
import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import pytest

from cnn.layers import Flatten

from .conftest import FAKE_CEILINGS, rel_error

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title):
    """The text of the '## title' section, up to the next '## ' heading."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def blocks(text):
    """(language, code) of the fenced blocks, in order."""
    return re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S)


def run_python(code, namespace):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), namespace)
    return out.getvalue()


def test_build_your_own_network(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from benchmarks import torch_models
    monkeypatch.chdir(tmp_path)
    # the torchvision weight file the section loads: the torch twin's random weights under its name
    torch.save(torch_models.create("resnet18").state_dict(), "resnet18-f37072fd.pth")
    code = [c for lang, c in blocks(section("Build your own network")) if lang == "python"]
    assert len(code) == 2
    ns = {}
    printed = run_python(code[0], ns)
    assert printed.startswith("(2, 10)\n")
    assert "total parameters: " in printed and f"{ns['net'].num_parameters():,}" in printed
    assert (tmp_path / "mynet.npz").exists()
    printed = run_python(code[1], ns)
    assert printed == "(2, 10)\n"
    assert ns["net"].fc.out_features == 10
    net, tnet, x = ns["net"], ns["tnet"], ns["x"]
    net.fc, tnet.fc = Flatten(), torch.nn.Identity()       # the bodies: the weights went to torch and back
    with torch.no_grad():
        assert rel_error(net(x), tnet(torch.from_numpy(x)).numpy()) < 1e-5


def test_measure_your_own_layer(tmp_path, monkeypatch):
    pytest.importorskip("rich")
    pytest.importorskip("matplotlib")
    from benchmarks import __main__ as cli
    from benchmarks import machine
    from benchmarks.timing import Budget
    monkeypatch.setattr(machine, "cpu_ceilings", lambda threads, quick=True: dict(FAKE_CEILINGS, threads=threads))
    monkeypatch.setattr(cli, "QUICK", Budget(seconds=0.02, min_rounds=2, max_rounds=3, warmup=1))
    found = blocks(section("Measure your own layer"))
    shell = [line.split("#")[0] for lang, c in found if lang == "" for line in c.splitlines()]
    commands = [shlex.split(line)[3:] for line in shell if line.startswith("python -m benchmarks ")]
    assert len(commands) == 4
    for i, args in enumerate(commands):
        out = tmp_path / str(i)
        assert cli.main(args + ["--threads", "1", "--out", str(out)]) == 0
        results = json.loads((out / "results.json").read_text())
        suite = args[0]
        rows = results[suite]["cpu"]["rows"]
        if "--shape" in args:
            shapes = [a for j, a in enumerate(args) if j and args[j - 1] == "--shape"]
            assert len(rows) == len(shapes)
        else:
            assert [r["name"] for r in rows] == ["mv1.112x32->64", "mv1.56x128->128", "mv1.14x512->512",
                                                  "mv1.7x1024->1024"]
    code = [c for lang, c in found if lang == "python"]
    text = [c for lang, c in found if lang == "text"]
    assert len(code) == len(text) == 1
    assert run_python(code[0], {}) == text[0]                # the printed table is the README's
