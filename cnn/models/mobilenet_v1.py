"""MobileNet v1 (Howard et al., 2017): a 3x3/2 conv, then 13 depthwise-separable blocks (3x3 depthwise
+ BN + ReLU, 1x1 pointwise + BN + ReLU), global average pool, FC. Width multiplier `alpha` thins every
layer to int(alpha * channels); the resolution multiplier is the input size (any; 224 at 1.0).
4,231,976 parameters at alpha = 1.0. Names follow torchvision's MobileNetV2 (features.i.j...)."""
from __future__ import annotations

import numpy as np

from ..layers import Conv2dNormActivation, Dropout, GlobalAvgPool2d, Linear, ReLU, Sequential
from .common import FeatureClassifier

FIRST = (32, 2)              # the full 3x3 conv: filters, stride
# depthwise-separable blocks (Table 1 of the paper): pointwise filters, depthwise stride
BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
          (1024, 2), (1024, 1)]


def mobilenet_v1(num_classes=1000, alpha=1.0, resolution=224, *, seed=None, dtype=np.float32):
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    rng = np.random.default_rng(seed)
    kw = dict(activation=ReLU, rng=rng, dtype=dtype)
    c = max(1, int(FIRST[0] * alpha))
    layers = [Conv2dNormActivation(3, c, 3, FIRST[1], **kw)]
    for filters, stride in BLOCKS:
        out = max(1, int(filters * alpha))
        layers.append(Sequential(Conv2dNormActivation(c, c, 3, stride, groups=c, **kw),
                                 Conv2dNormActivation(c, out, 1, **kw)))
        c = out
    classifier = Sequential(Dropout(0.001), Linear(c, num_classes, rng=rng, dtype=dtype))
    return FeatureClassifier(Sequential(*layers), GlobalAvgPool2d(), classifier, (3, resolution, resolution))
