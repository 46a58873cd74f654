"""ResNet-18/34/50/101/152 (He et al., 2015), torchvision's definition (v1.5: the stride of a
bottleneck sits on its 3x3 conv; projection shortcuts 1x1 conv + BN where the shape changes)."""
from __future__ import annotations

import numpy as np

from ..layers import (BasicBlock, BatchNorm2d, Bottleneck, Conv2d, Flatten, GlobalAvgPool2d, Linear,
                      MaxPool2d, Module, ReLU, Sequential, conv_bn_act)

INPUT_SIZE = (3, 224, 224)
# block type and the number of blocks in each of the four stages
CONFIGS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}
STAGE_PLANES = (64, 128, 256, 512)     # conv2_x .. conv5_x (a bottleneck outputs 4x these)
STAGE_STRIDES = (1, 2, 2, 2)
STEM = dict(channels=64, kernel=7, stride=2, padding=3, pool=(3, 2, 1))   # conv1 7x7/2, max-pool 3x3/2


class ResNet(Module):
    def __init__(self, block, blocks_per_stage, num_classes=1000, *, rng, dtype=np.float32):
        c = STEM["channels"]
        self.conv1 = Conv2d(INPUT_SIZE[0], c, STEM["kernel"], STEM["stride"], STEM["padding"], bias=False,
                            rng=rng, dtype=dtype)
        self.bn1 = BatchNorm2d(c, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.maxpool = MaxPool2d(*STEM["pool"])
        for i, (planes, n, stride) in enumerate(zip(STAGE_PLANES, blocks_per_stage, STAGE_STRIDES)):
            out = planes * block.expansion
            blocks = []
            for j in range(n):
                s = stride if j == 0 else 1
                down = None
                if j == 0 and (s != 1 or c != out):
                    down = Sequential(Conv2d(c, out, 1, s, bias=False, rng=rng, dtype=dtype),
                                      BatchNorm2d(out, dtype=dtype))
                blocks.append(block(c, planes, s, down, rng=rng, dtype=dtype))
                c = out
            setattr(self, f"layer{i + 1}", Sequential(*blocks))
        self.avgpool = GlobalAvgPool2d()
        self.flatten = Flatten(1)
        self.fc = Linear(c, num_classes, rng=rng, dtype=dtype)
        self.input_size = INPUT_SIZE

    def forward(self, x):
        x = self.maxpool(conv_bn_act(x, self.conv1, self.bn1, self.relu))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


def resnet(config, num_classes=1000, *, seed=None, dtype=np.float32):
    block, layers = CONFIGS[config]
    return ResNet(block, layers, num_classes, rng=np.random.default_rng(seed), dtype=dtype)


def resnet18(**kw):
    return resnet("resnet18", **kw)


def resnet34(**kw):
    return resnet("resnet34", **kw)


def resnet50(**kw):
    return resnet("resnet50", **kw)


def resnet101(**kw):
    return resnet("resnet101", **kw)


def resnet152(**kw):
    return resnet("resnet152", **kw)
