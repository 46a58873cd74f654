"""The building blocks of the case-study networks, with torchvision's attribute names so that its
state dicts load: Conv2dNormActivation, SqueezeExcitation, ResNet's BasicBlock and Bottleneck,
MobileNetV2's InvertedResidual and EfficientNet's MBConv."""
from __future__ import annotations

import numpy as np

from . import ops as _ops
from .basic import AdaptiveAvgPool2d, ReLU, ReLU6, Sigmoid, SiLU
from .containers import Sequential
from .conv import BatchNorm2d, Conv2d, conv_bn_act
from .module import Module


def make_divisible(v, divisor=8, min_value=None):
    """Round a channel count to a multiple of `divisor`, never more than 10% below v (torchvision's
    _make_divisible, used by MobileNetV2 and EfficientNet)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class Conv2dNormActivation(Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation, "same"-style padding (k-1)//2 * dilation; the
    activation is a layer class (ReLU, ReLU6, SiLU) or None. One kernel call at inference."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1, activation=ReLU,
                 dilation=1, eps=1e-5, *, rng=None, dtype=np.float32):
        padding = (kernel_size - 1) // 2 * dilation
        layers = [Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias=False, rng=rng, dtype=dtype),
                  BatchNorm2d(out_channels, eps=eps, dtype=dtype)]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(Module):
    """x * sigmoid(fc2(act(fc1(mean_hw(x))))), fc1/fc2 1x1 convs with bias (torchvision.ops).
    `inplace=True` scales x itself (inside MBConv, where x is the block's own intermediate)."""

    def __init__(self, input_channels, squeeze_channels, activation=ReLU, scale_activation=Sigmoid, *,
                 inplace=False, rng=None, dtype=np.float32):
        self.inplace = inplace
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc1 = Conv2d(input_channels, squeeze_channels, 1, rng=rng, dtype=dtype)
        self.fc2 = Conv2d(squeeze_channels, input_channels, 1, rng=rng, dtype=dtype)
        self.activation = activation(inplace=True)
        self.scale_activation = scale_activation(inplace=True)

    def forward(self, x):
        s = conv_bn_act(self.avgpool(x), self.fc1, None, self.activation)
        s = conv_bn_act(s, self.fc2, None, self.scale_activation)
        return _ops.current().mul(x, s, self.inplace)


class BasicBlock(Module):
    """ResNet-18/34: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), two 3x3 convs."""
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, *, rng=None, dtype=np.float32):
        self.conv1 = Conv2d(inplanes, planes, 3, stride, 1, bias=False, rng=rng, dtype=dtype)
        self.bn1 = BatchNorm2d(planes, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.conv2 = Conv2d(planes, planes, 3, 1, 1, bias=False, rng=rng, dtype=dtype)
        self.bn2 = BatchNorm2d(planes, dtype=dtype)
        self.downsample = downsample

    def forward(self, x):
        out = conv_bn_act(x, self.conv1, self.bn1, self.relu)
        out = conv_bn_act(out, self.conv2, self.bn2)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(_ops.current().add_(out, identity))


class Bottleneck(Module):
    """ResNet-50/101/152: 1x1 reduce, 3x3 (stride here, as torchvision's v1.5), 1x1 expand x4, + shortcut."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, *, rng=None, dtype=np.float32):
        out = planes * self.expansion
        self.conv1 = Conv2d(inplanes, planes, 1, bias=False, rng=rng, dtype=dtype)
        self.bn1 = BatchNorm2d(planes, dtype=dtype)
        self.conv2 = Conv2d(planes, planes, 3, stride, 1, bias=False, rng=rng, dtype=dtype)
        self.bn2 = BatchNorm2d(planes, dtype=dtype)
        self.conv3 = Conv2d(planes, out, 1, bias=False, rng=rng, dtype=dtype)
        self.bn3 = BatchNorm2d(out, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = conv_bn_act(x, self.conv1, self.bn1, self.relu)
        out = conv_bn_act(out, self.conv2, self.bn2, self.relu)
        out = conv_bn_act(out, self.conv3, self.bn3)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(_ops.current().add_(out, identity))


class InvertedResidual(Module):
    """MobileNetV2: 1x1 expand (ReLU6, skipped when t = 1), 3x3 depthwise (ReLU6), 1x1 linear project,
    + x when stride 1 and the channel count is kept."""

    def __init__(self, inp, oup, stride, expand_ratio, *, rng=None, dtype=np.float32):
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, 1, activation=ReLU6, rng=rng, dtype=dtype))
        layers += [Conv2dNormActivation(hidden, hidden, 3, stride, groups=hidden, activation=ReLU6, rng=rng,
                                        dtype=dtype),
                   Conv2d(hidden, oup, 1, bias=False, rng=rng, dtype=dtype),
                   BatchNorm2d(oup, dtype=dtype)]
        self.conv = Sequential(*layers)

    def forward(self, x):
        y = self.conv(x)
        return _ops.current().add_(y, x) if self.use_res_connect else y


class MBConv(Module):
    """EfficientNet: 1x1 expand (SiLU, skipped when the ratio is 1), k x k depthwise (SiLU),
    squeeze-and-excitation (squeeze to in/4), 1x1 linear project, + x when the shape is kept
    (stochastic depth is the identity at inference)."""

    def __init__(self, expand_ratio, kernel, stride, input_channels, out_channels, eps=1e-5, *, rng=None,
                 dtype=np.float32):
        expanded = make_divisible(input_channels * expand_ratio, 8)
        self.use_res_connect = stride == 1 and input_channels == out_channels
        layers = []
        if expanded != input_channels:
            layers.append(Conv2dNormActivation(input_channels, expanded, 1, activation=SiLU, eps=eps, rng=rng,
                                               dtype=dtype))
        layers += [Conv2dNormActivation(expanded, expanded, kernel, stride, groups=expanded, activation=SiLU,
                                        eps=eps, rng=rng, dtype=dtype),
                   SqueezeExcitation(expanded, max(1, input_channels // 4), activation=SiLU, inplace=True,
                                     rng=rng, dtype=dtype),
                   Conv2dNormActivation(expanded, out_channels, 1, activation=None, eps=eps, rng=rng,
                                        dtype=dtype)]
        self.block = Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return _ops.current().add_(y, x) if self.use_res_connect else y
