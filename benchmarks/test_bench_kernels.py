"""pytest-benchmark: every algorithm that accepts a layer of DESIGN.md's set, "auto", and PyTorch."""
import pytest

import kernels
from kernels.shapes import check_algorithm

from .conftest import record, run_or_skip, torch_or_skip
from .layers import LAYERS


def _cases():
    for layer in LAYERS:
        for alg in kernels.ALGORITHMS + ("auto",):
            if alg != "auto":
                try:
                    check_algorithm(alg, layer.geometry)
                except ValueError:
                    continue
            yield pytest.param(layer, alg, id=f"{layer.name}-{alg}")


@pytest.mark.parametrize("layer,algorithm", list(_cases()))
def test_conv(benchmark, layer, algorithm):
    x, w, b = layer.arrays()
    benchmark.group = layer.name

    def call():
        return kernels.conv2d(x, w, b, stride=layer.stride, padding=layer.pad, groups=layer.groups,
                              algorithm=algorithm)
    run_or_skip(call)
    benchmark(call)
    record(benchmark, layer.geometry.macs, layer=layer.name, layer_class=layer.layer_class, algorithm=algorithm)


@pytest.mark.parametrize("layer", LAYERS, ids=[layer.name for layer in LAYERS])
def test_pytorch(benchmark, layer):
    torch = torch_or_skip()
    x, w, b = (torch.from_numpy(a) for a in layer.arrays())
    benchmark.group = layer.name

    def call():
        with torch.inference_mode():
            return torch.nn.functional.conv2d(x, w, b, layer.stride, layer.pad, 1, layer.groups)
    benchmark(call)
    record(benchmark, layer.geometry.macs, layer=layer.name, layer_class=layer.layer_class, algorithm="pytorch")
