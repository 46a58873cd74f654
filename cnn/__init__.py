"""The layer API, the case-study networks and the cost model, on the fast ops of `kernels`.

    from cnn import models, summary
    net = models.create("resnet50")
    y = net(x)                          # numpy in -> CPU kernels, cupy in -> CUDA kernels
    print(summary(net, (1, 3, 224, 224)))

Your own network: subclass cnn.layers.Module, build it from cnn.layers and write its forward pass with
cnn.functional and Python operators (README, "Build your own network").
"""
from . import cost, functional, layers, models, plan
from .plan import compile, prepare
from .summary import Summary, summary

__all__ = ["Summary", "compile", "cost", "functional", "layers", "models", "plan", "prepare", "summary"]
