"""The case-study networks, each built from its paper's architecture table (see the family's file).

    from cnn import models
    models.available()                      # the names create() knows
    net = models.create("resnet50", seed=0)  # same as models.resnet50(seed=0)
    models.create("alexnet", variant="torchvision")   # torchvision's AlexNet (default: the paper's)
"""
from .alexnet import alexnet
from .efficientnet import (efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3, efficientnet_b4,
                           efficientnet_b5, efficientnet_b6, efficientnet_b7)
from .googlenet import googlenet
from .lenet import lenet5
from .mobilenet_v1 import mobilenet_v1
from .mobilenet_v2 import mobilenet_v2
from .resnet import resnet18, resnet34, resnet50, resnet101, resnet152
from .vgg import vgg16, vgg19

_BUILDERS = {f.__name__: f for f in (
    lenet5, alexnet, vgg16, vgg19, resnet18, resnet34, resnet50, resnet101, resnet152, googlenet,
    mobilenet_v1, mobilenet_v2, efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3,
    efficientnet_b4, efficientnet_b5, efficientnet_b6, efficientnet_b7)}


def available():
    """Names of the networks create() builds."""
    return list(_BUILDERS)


def create(name, **kw):
    """Build network `name` (see available()); keyword arguments go to its builder (num_classes, seed,
    dtype, and the family's own: alpha, width_mult, aux_logits, AlexNet's variant, ...)."""
    try:
        builder = _BUILDERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown network {name!r}; available: {', '.join(_BUILDERS)}") from None
    return builder(**kw)


__all__ = ["available", "create"] + list(_BUILDERS)
