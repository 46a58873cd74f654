"""VGG-16 and VGG-19 (Simonyan & Zisserman, 2015), torchvision's definition (configurations D and E):
3x3 "same" convs with ReLU, 2x2/2 max-pools, adaptive 7x7 average pool, 25088 -> 4096 -> 4096 -> 1000."""
from __future__ import annotations

import numpy as np

from ..layers import AdaptiveAvgPool2d, Conv2d, Dropout, Linear, MaxPool2d, ReLU, Sequential
from .common import FeatureClassifier

INPUT_SIZE = (3, 224, 224)
# filters of each 3x3 conv, "M" a 2x2/2 max-pool
CONFIGS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
POOL_OUT = 7                 # adaptive average pool to 7x7 before the classifier
HIDDEN = [4096, 4096]        # fc6, fc7 (ReLU, dropout 0.5)


def vgg(config, num_classes=1000, *, seed=None, dtype=np.float32):
    rng = np.random.default_rng(seed)
    layers, c = [], INPUT_SIZE[0]
    for v in CONFIGS[config]:
        if v == "M":
            layers.append(MaxPool2d(2, 2))
        else:
            layers += [Conv2d(c, v, 3, padding=1, rng=rng, dtype=dtype), ReLU(inplace=True)]
            c = v
    fc, n = [], c * POOL_OUT * POOL_OUT
    for h in HIDDEN:
        fc += [Linear(n, h, rng=rng, dtype=dtype), ReLU(inplace=True), Dropout(0.5)]
        n = h
    fc.append(Linear(n, num_classes, rng=rng, dtype=dtype))
    return FeatureClassifier(Sequential(*layers), AdaptiveAvgPool2d(POOL_OUT), Sequential(*fc), INPUT_SIZE)


def vgg16(**kw):
    return vgg("vgg16", **kw)


def vgg19(**kw):
    return vgg("vgg19", **kw)
