"""AlexNet (Krizhevsky et al., 2012) in two variants:
- "paper": the paper's network on one tower (no grouped convolutions): 227x227x3, five convs
  96-256-384-384-256 with ReLU, LRN after the first two, overlapping 3x3/2 max pooling, then
  9216 -> 4096 -> 4096 -> 1000 (dropout after each hidden layer): 62,378,344 parameters.
- "torchvision": torchvision's alexnet (Krizhevsky's 2014 "one weird trick" version), whose weight files
  load into it: 224x224x3, convs 64-192-384-256-256 without LRN, an adaptive 6x6 average pool, dropout
  before each hidden layer: 61,100,840 parameters, the same state-dict names as torchvision's.
"""
from __future__ import annotations

import numpy as np

from ..layers import AdaptiveAvgPool2d, Conv2d, Dropout, Linear, LocalResponseNorm, MaxPool2d, ReLU, Sequential
from .common import FeatureClassifier

# per variant: input (C, H, W); the convs as (filters, kernel, stride, padding, LRN after the ReLU,
# 3x3/2 max-pool after); the adaptive average pool's output side (None: none); and whether each hidden
# FC layer has its dropout before it (torchvision) or after its ReLU (the paper)
VARIANTS = {
    "paper": dict(input_size=(3, 227, 227), convs=[
        (96, 11, 4, 0, True, True),     # conv1: 227 -> 55 -> pool 27
        (256, 5, 1, 2, True, True),     # conv2: 27 -> 27 -> pool 13
        (384, 3, 1, 1, False, False),   # conv3: 13
        (384, 3, 1, 1, False, False),   # conv4: 13
        (256, 3, 1, 1, False, True),    # conv5: 13 -> pool 6; 6 * 6 * 256 = 9216
    ], avgpool=None, dropout_first=False),
    "torchvision": dict(input_size=(3, 224, 224), convs=[
        (64, 11, 4, 2, False, True),    # features.0: 224 -> 55 -> pool 27
        (192, 5, 1, 2, False, True),    # features.3: 27 -> pool 13
        (384, 3, 1, 1, False, False),   # features.6
        (256, 3, 1, 1, False, False),   # features.8
        (256, 3, 1, 1, False, True),    # features.10: 13 -> pool 6
    ], avgpool=6, dropout_first=True),
}
HIDDEN = [4096, 4096]               # fc6, fc7 (ReLU, dropout 0.5)
DROPOUT = 0.5
# the paper's LRN: b = a / (k + alpha * sum_{n neighbours} a^2)^beta, n = 5, k = 2, alpha = 1e-4, beta = 0.75
LRN_SIZE, LRN_K, LRN_ALPHA, LRN_BETA = 5, 2.0, 1e-4, 0.75
POOL = (3, 2)


def variant_config(variant):
    try:
        return VARIANTS[variant]
    except (KeyError, TypeError):
        raise ValueError(f"AlexNet variant must be one of {', '.join(map(repr, VARIANTS))}, got {variant!r}") from None


def alexnet(num_classes=1000, variant="paper", *, seed=None, dtype=np.float32):
    cfg = variant_config(variant)
    rng = np.random.default_rng(seed)
    layers, c, hw = [], cfg["input_size"][0], cfg["input_size"][1]
    for filters, k, s, p, lrn, pool in cfg["convs"]:
        layers += [Conv2d(c, filters, k, s, p, rng=rng, dtype=dtype), ReLU(inplace=True)]
        c, hw = filters, (hw + 2 * p - k) // s + 1
        if lrn:  # LocalResponseNorm divides alpha by the window, as torch.nn.LocalResponseNorm does
            layers.append(LocalResponseNorm(LRN_SIZE, LRN_ALPHA * LRN_SIZE, LRN_BETA, LRN_K))
        if pool:
            layers.append(MaxPool2d(*POOL))
            hw = (hw - POOL[0]) // POOL[1] + 1
    avgpool = None
    if cfg["avgpool"] is not None:
        avgpool, hw = AdaptiveAvgPool2d(cfg["avgpool"]), cfg["avgpool"]
    fc, n = [], c * hw * hw
    for h in HIDDEN:
        hidden = [Linear(n, h, rng=rng, dtype=dtype), ReLU(inplace=True)]
        fc += [Dropout(DROPOUT)] + hidden if cfg["dropout_first"] else hidden + [Dropout(DROPOUT)]
        n = h
    fc.append(Linear(n, num_classes, rng=rng, dtype=dtype))
    return FeatureClassifier(Sequential(*layers), avgpool, Sequential(*fc), cfg["input_size"])
