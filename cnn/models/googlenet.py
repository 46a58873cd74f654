"""GoogLeNet / Inception v1 (Szegedy et al., 2014), torchvision's definition: BasicConv2d = conv (no
bias) + BN (eps 1e-3) + ReLU; its third branch uses a 3x3 conv where the paper has 5x5 (kept for
weight compatibility); ceil-mode max-pools. The two auxiliary heads are optional (off by default)."""
from __future__ import annotations

import numpy as np

from ..layers import (AdaptiveAvgPool2d, BatchNorm2d, Concat, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear,
                      MaxPool2d, Module, ReLU, Sequential, conv_bn_act)

INPUT_SIZE = (3, 224, 224)
# stem: ("conv", out, kernel, stride, padding) | ("pool", kernel, stride)
STEM = [("conv1", "conv", 64, 7, 2, 3), ("maxpool1", "pool", 3, 2),
        ("conv2", "conv", 64, 1, 1, 0), ("conv3", "conv", 192, 3, 1, 1), ("maxpool2", "pool", 3, 2)]
# inception modules: (name, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj); "pool" = max-pool
INCEPTION = [
    ("inception3a", 64, 96, 128, 16, 32, 32),
    ("inception3b", 128, 128, 192, 32, 96, 64),
    ("maxpool3", 3, 2),
    ("inception4a", 192, 96, 208, 16, 48, 64),
    ("inception4b", 160, 112, 224, 24, 64, 64),
    ("inception4c", 128, 128, 256, 24, 64, 64),
    ("inception4d", 112, 144, 288, 32, 64, 64),
    ("inception4e", 256, 160, 320, 32, 128, 128),
    ("maxpool4", 2, 2),
    ("inception5a", 256, 160, 320, 32, 128, 128),
    ("inception5b", 384, 192, 384, 48, 128, 128),
]
AUX_AFTER = {"aux1": "inception4a", "aux2": "inception4d"}   # auxiliary classifiers' taps
BN_EPS = 1e-3


class BasicConv2d(Module):
    def __init__(self, cin, cout, kernel, stride=1, padding=0, *, rng, dtype):
        self.conv = Conv2d(cin, cout, kernel, stride, padding, bias=False, rng=rng, dtype=dtype)
        self.bn = BatchNorm2d(cout, eps=BN_EPS, dtype=dtype)
        self.relu = ReLU(inplace=True)

    def forward(self, x):
        return conv_bn_act(x, self.conv, self.bn, self.relu)


def inception(cin, c1, c3r, c3, c5r, c5, pp, *, rng, dtype):
    """The four branches side by side, concatenated along the channels."""
    def bc(*a):
        return BasicConv2d(*a, rng=rng, dtype=dtype)
    return Concat(branch1=bc(cin, c1, 1),
                  branch2=Sequential(bc(cin, c3r, 1), bc(c3r, c3, 3, 1, 1)),
                  branch3=Sequential(bc(cin, c5r, 1), bc(c5r, c5, 3, 1, 1)),
                  branch4=Sequential(MaxPool2d(3, 1, 1, ceil_mode=True), bc(cin, pp, 1)))


class InceptionAux(Module):
    """Auxiliary head: adaptive 4x4 average pool, 1x1 conv to 128, FC 2048 -> 1024 -> classes."""

    def __init__(self, cin, num_classes, *, rng, dtype):
        self.avgpool = AdaptiveAvgPool2d(4)
        self.conv = BasicConv2d(cin, 128, 1, rng=rng, dtype=dtype)
        self.flatten = Flatten(1)
        self.fc1 = Linear(2048, 1024, rng=rng, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.dropout = Dropout(0.7)
        self.fc2 = Linear(1024, num_classes, rng=rng, dtype=dtype)

    def forward(self, x):
        x = self.flatten(self.conv(self.avgpool(x)))
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


class GoogLeNet(Module):
    def __init__(self, num_classes=1000, aux_logits=False, *, rng, dtype=np.float32):
        c = INPUT_SIZE[0]
        for name, kind, *a in STEM:
            if kind == "conv":
                setattr(self, name, BasicConv2d(c, *a, rng=rng, dtype=dtype))
                c = a[0]
            else:
                setattr(self, name, MaxPool2d(*a, ceil_mode=True))
        self._body = []
        for name, *a in INCEPTION:
            if name.startswith("maxpool"):
                setattr(self, name, MaxPool2d(*a, ceil_mode=True))
            else:
                setattr(self, name, inception(c, *a, rng=rng, dtype=dtype))
                c = a[0] + a[2] + a[4] + a[5]
            self._body.append(name)
        self.aux_logits = aux_logits
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, rng=rng, dtype=dtype)
            self.aux2 = InceptionAux(528, num_classes, rng=rng, dtype=dtype)
        self.avgpool = GlobalAvgPool2d()
        self.flatten = Flatten(1)
        self.dropout = Dropout(0.2)
        self.fc = Linear(c, num_classes, rng=rng, dtype=dtype)
        self.input_size = INPUT_SIZE

    def _run(self, x, heads):
        for name, *_ in STEM:
            x = getattr(self, name)(x)
        aux = {}
        for name in self._body:
            x = getattr(self, name)(x)
            for head, tap in heads.items():
                if tap == name:
                    aux[head] = getattr(self, head)(x)
        return self.fc(self.dropout(self.flatten(self.avgpool(x)))), aux

    def forward(self, x):
        """The logits (the auxiliary heads are a training device; torchvision skips them in eval mode)."""
        return self._run(x, {})[0]

    def forward_all(self, x):
        """(logits, aux1, aux2): the auxiliary heads' outputs too (None without the heads)."""
        logits, aux = self._run(x, AUX_AFTER if self.aux_logits else {})
        return logits, aux.get("aux1"), aux.get("aux2")


def googlenet(num_classes=1000, aux_logits=False, *, seed=None, dtype=np.float32):
    return GoogLeNet(num_classes, aux_logits, rng=np.random.default_rng(seed), dtype=dtype)
