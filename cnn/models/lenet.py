"""LeNet-5 (LeCun et al., 1998): 32x32x1 -> conv 5x5 -> avg-pool -> conv 5x5 -> avg-pool -> 3 FC, tanh.
C3 is fully connected to S2 (as the course draws it), pooling has no weights: 61,706 parameters."""
from __future__ import annotations

import numpy as np

from ..layers import AvgPool2d, Conv2d, Linear, Sequential, Tanh
from .common import FeatureClassifier

INPUT_SIZE = (1, 32, 32)
# ("conv", filters, kernel) | ("avgpool", kernel, stride); tanh follows every conv
FEATURES = [
    ("conv", 6, 5),        # C1: 32x32x1 -> 28x28x6
    ("avgpool", 2, 2),     # S2: -> 14x14x6
    ("conv", 16, 5),       # C3: -> 10x10x16
    ("avgpool", 2, 2),     # S4: -> 5x5x16 = 400
]
HIDDEN = [120, 84]         # F5, F6 (tanh); then the 10-way output layer


def lenet5(num_classes=10, *, seed=None, dtype=np.float32):
    rng = np.random.default_rng(seed)
    layers, c, hw = [], INPUT_SIZE[0], INPUT_SIZE[1]
    for kind, a, b in FEATURES:
        if kind == "conv":
            layers += [Conv2d(c, a, b, rng=rng, dtype=dtype), Tanh(inplace=True)]
            c, hw = a, hw - b + 1
        else:
            layers.append(AvgPool2d(a, b))
            hw = (hw - a) // b + 1
    fc, n = [], c * hw * hw
    for h in HIDDEN:
        fc += [Linear(n, h, rng=rng, dtype=dtype), Tanh(inplace=True)]
        n = h
    fc.append(Linear(n, num_classes, rng=rng, dtype=dtype))
    return FeatureClassifier(Sequential(*layers), None, Sequential(*fc), INPUT_SIZE)
