"""The layer API: a layer holds its arrays and calls the ops of `cnn.layers.ops`, nothing more.

    from cnn.layers import Conv2d, BatchNorm2d, ReLU, Sequential
    net = Sequential(Conv2d(3, 16, 3, padding=1, bias=False), BatchNorm2d(16), ReLU(inplace=True))
    y = net(x)                         # one fused kernels.conv2d call (BN folded, ReLU in the epilogue)
    with use(REFERENCE):
        y64 = net(x)                   # the same network on kernels.reference, float64, layer by layer
"""
from .basic import (Activation, AdaptiveAvgPool2d, AvgPool2d, Dropout, Flatten, GlobalAvgPool2d, Linear,
                    LocalResponseNorm, MaxPool2d, ReLU, ReLU6, Sigmoid, SiLU, Softmax, Tanh)
from .blocks import (BasicBlock, Bottleneck, Conv2dNormActivation, InvertedResidual, MBConv,
                     SqueezeExcitation, make_divisible)
from .containers import Concat, ModuleList, Sequential
from .conv import BatchNorm2d, Conv2d, DepthwiseConv2d, SeparableConv2d, conv_bn_act
from .module import Module
from .ops import FAST, REFERENCE, ShapeOps, Spec, use

__all__ = [
    "Activation", "AdaptiveAvgPool2d", "AvgPool2d", "BasicBlock", "BatchNorm2d", "Bottleneck", "Concat",
    "Conv2d", "Conv2dNormActivation", "DepthwiseConv2d", "Dropout", "FAST", "Flatten", "GlobalAvgPool2d",
    "InvertedResidual", "Linear", "LocalResponseNorm", "MBConv", "MaxPool2d", "Module", "ModuleList",
    "REFERENCE", "ReLU", "ReLU6", "SeparableConv2d", "Sequential", "ShapeOps", "SiLU", "Sigmoid", "Softmax",
    "Spec", "SqueezeExcitation", "Tanh", "conv_bn_act", "make_divisible", "use",
]
