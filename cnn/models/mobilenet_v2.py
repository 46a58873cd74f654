"""MobileNetV2 (Sandler et al., 2018), torchvision's definition: inverted residual blocks (1x1 expand
ReLU6, 3x3 depthwise ReLU6, 1x1 linear projection), channel counts rounded with make_divisible(., 8)."""
from __future__ import annotations

import numpy as np

from ..layers import (Conv2dNormActivation, Dropout, GlobalAvgPool2d, InvertedResidual, Linear, ReLU6, Sequential,
                      make_divisible)
from .common import FeatureClassifier

INPUT_SIZE = (3, 224, 224)
FIRST, LAST = 32, 1280      # stem conv 3x3/2 filters; final 1x1 conv filters
# t expansion, c output channels, n repeats, s stride of the first repeat (Table 2 of the paper)
SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def mobilenet_v2(num_classes=1000, width_mult=1.0, *, seed=None, dtype=np.float32):
    rng = np.random.default_rng(seed)
    c = make_divisible(FIRST * width_mult, 8)
    last = make_divisible(LAST * max(1.0, width_mult), 8)
    layers = [Conv2dNormActivation(3, c, 3, 2, activation=ReLU6, rng=rng, dtype=dtype)]
    for t, ch, n, s in SETTINGS:
        out = make_divisible(ch * width_mult, 8)
        for i in range(n):
            layers.append(InvertedResidual(c, out, s if i == 0 else 1, t, rng=rng, dtype=dtype))
            c = out
    layers.append(Conv2dNormActivation(c, last, 1, activation=ReLU6, rng=rng, dtype=dtype))
    classifier = Sequential(Dropout(0.2), Linear(last, num_classes, rng=rng, dtype=dtype))
    return FeatureClassifier(Sequential(*layers), GlobalAvgPool2d(), classifier, INPUT_SIZE)
