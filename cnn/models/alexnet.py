"""AlexNet (Krizhevsky et al., 2012), the paper's network on one tower (no grouped convolutions):
227x227x3, five convs 96-256-384-384-256 with ReLU, LRN after the first two, overlapping 3x3/2 max
pooling, then 9216 -> 4096 -> 4096 -> 1000: 62,378,344 parameters."""
from __future__ import annotations

import numpy as np

from ..layers import Conv2d, Dropout, Linear, LocalResponseNorm, MaxPool2d, ReLU, Sequential
from .common import FeatureClassifier

INPUT_SIZE = (3, 227, 227)
# (filters, kernel, stride, padding, LRN after the ReLU, 3x3/2 max-pool after)
CONVS = [
    (96, 11, 4, 0, True, True),     # conv1: 227 -> 55 -> pool 27
    (256, 5, 1, 2, True, True),     # conv2: 27 -> 27 -> pool 13
    (384, 3, 1, 1, False, False),   # conv3: 13
    (384, 3, 1, 1, False, False),   # conv4: 13
    (256, 3, 1, 1, False, True),    # conv5: 13 -> pool 6; 6 * 6 * 256 = 9216
]
HIDDEN = [4096, 4096]               # fc6, fc7 (ReLU, dropout 0.5)
# the paper's LRN: b = a / (k + alpha * sum_{n neighbours} a^2)^beta, n = 5, k = 2, alpha = 1e-4, beta = 0.75
LRN_SIZE, LRN_K, LRN_ALPHA, LRN_BETA = 5, 2.0, 1e-4, 0.75
POOL = (3, 2)


def alexnet(num_classes=1000, *, seed=None, dtype=np.float32):
    rng = np.random.default_rng(seed)
    layers, c, hw = [], INPUT_SIZE[0], INPUT_SIZE[1]
    for filters, k, s, p, lrn, pool in CONVS:
        layers += [Conv2d(c, filters, k, s, p, rng=rng, dtype=dtype), ReLU(inplace=True)]
        c, hw = filters, (hw + 2 * p - k) // s + 1
        if lrn:  # LocalResponseNorm divides alpha by the window, as torch.nn.LocalResponseNorm does
            layers.append(LocalResponseNorm(LRN_SIZE, LRN_ALPHA * LRN_SIZE, LRN_BETA, LRN_K))
        if pool:
            layers.append(MaxPool2d(*POOL))
            hw = (hw - POOL[0]) // POOL[1] + 1
    fc, n = [], c * hw * hw
    for h in HIDDEN:
        fc += [Linear(n, h, rng=rng, dtype=dtype), ReLU(inplace=True), Dropout(0.5)]
        n = h
    fc.append(Linear(n, num_classes, rng=rng, dtype=dtype))
    return FeatureClassifier(Sequential(*layers), None, Sequential(*fc), INPUT_SIZE)
