"""EfficientNet-B0..B7 (Tan & Le, 2019), torchvision's definition: the B0 stages of MBConv blocks below,
scaled by compound coefficients: width multiplies channels (rounded with make_divisible(., 8)), depth
multiplies each stage's repeats (ceil), resolution is the input size. SiLU everywhere; the
stochastic depth of training is the identity at inference."""
from __future__ import annotations

import math

import numpy as np

from ..layers import (Conv2dNormActivation, Dropout, GlobalAvgPool2d, Linear, MBConv, Sequential, SiLU,
                      make_divisible)
from .common import FeatureClassifier

# expand ratio, kernel, stride, input channels, output channels, repeats (B0, Table 1 of the paper)
STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]
STEM = 32                   # 3x3/2 conv filters (before width scaling); the head is 4x the last stage
# name: (width multiplier, depth multiplier, resolution, dropout, batch-norm eps)
SCALING = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2, 1e-5),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2, 1e-5),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3, 1e-5),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3, 1e-5),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4, 1e-5),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4, 1e-3),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5, 1e-3),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5, 1e-3),
}


def efficientnet(name, num_classes=1000, *, seed=None, dtype=np.float32):
    width, depth, resolution, dropout, eps = SCALING[name]
    rng = np.random.default_rng(seed)
    kw = dict(eps=eps, rng=rng, dtype=dtype)

    def ch(c):
        return make_divisible(c * width, 8)

    layers = [Conv2dNormActivation(3, ch(STEM), 3, 2, activation=SiLU, **kw)]
    for expand, kernel, stride, cin, cout, repeats in STAGES:
        stage = []
        for i in range(int(math.ceil(repeats * depth))):
            stage.append(MBConv(expand, kernel, stride if i == 0 else 1, ch(cin) if i == 0 else ch(cout),
                                ch(cout), **kw))
        layers.append(Sequential(*stage))
    head = 4 * ch(STAGES[-1][4])
    layers.append(Conv2dNormActivation(ch(STAGES[-1][4]), head, 1, activation=SiLU, **kw))
    classifier = Sequential(Dropout(dropout), Linear(head, num_classes, rng=rng, dtype=dtype))
    return FeatureClassifier(Sequential(*layers), GlobalAvgPool2d(), classifier, (3, resolution, resolution))


def _variant(name):
    def build(**kw):
        return efficientnet(name, **kw)
    build.__name__ = name
    build.__doc__ = f"{name}: width x{SCALING[name][0]}, depth x{SCALING[name][1]}, {SCALING[name][2]}px."
    return build


efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3, efficientnet_b4, efficientnet_b5, \
    efficientnet_b6, efficientnet_b7 = (_variant(n) for n in SCALING)
