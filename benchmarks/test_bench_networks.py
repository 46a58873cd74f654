"""pytest-benchmark: forward passes of the quick network subset at batch 1, ours and torch.nn's."""
import numpy as np
import pytest

from .conftest import record, run_or_skip, torch_or_skip
from .suite_networks import QUICK_NETWORKS, input_shape


def _net_and_input(name):
    from cnn import models, summary
    net = models.create(name)
    shape = input_shape(name, 1)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return net, x, summary(net, shape).total_macs


@pytest.mark.parametrize("name", QUICK_NETWORKS)
def test_forward(benchmark, name):
    net, x, macs = _net_and_input(name)
    run_or_skip(lambda: net(x))
    benchmark.group = name
    benchmark(net, x)
    record(benchmark, macs, network=name, batch=1, framework="ours")


@pytest.mark.parametrize("name", QUICK_NETWORKS)
def test_forward_pytorch(benchmark, name):
    torch = torch_or_skip()
    from . import torch_models
    net, x, macs = _net_and_input(name)
    model = torch_models.create(name)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in net.state_dict().items()})
    model.eval()
    xt = torch.from_numpy(x)

    def call():
        with torch.inference_mode():
            return model(xt)
    benchmark.group = name
    benchmark(call)
    record(benchmark, macs, network=name, batch=1, framework="pytorch")
