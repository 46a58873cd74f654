"""The case-study networks written with torch.nn, built from the architecture tables of cnn.models, with
the same parameter names, so weights move either way in one line:

    tnet = torch_models.create("resnet50")                       # eval mode
    tnet.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict(copy=True).items()})
    net.load_state_dict(tnet.state_dict())                       # torch tensors load as they are

They are the PyTorch baseline of the network benchmarks and the cross-check of the tests (torchvision
cannot be installed here). torch is imported by this module only.
"""
from __future__ import annotations

import importlib
import math

import torch
from torch import nn

from cnn.layers.blocks import make_divisible
# the family modules by full name (cnn.models.alexnet, say, is also the name of a builder function)
_alexnet, _eff, _goog, _lenet, _mv1, _mv2, _resnet, _vgg = (importlib.import_module(f"cnn.models.{m}") for m in (
    "alexnet", "efficientnet", "googlenet", "lenet", "mobilenet_v1", "mobilenet_v2", "resnet", "vgg"))


class FeatureClassifier(nn.Module):
    def __init__(self, features, avgpool, classifier):
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier

    def forward(self, x):
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


def conv_norm_act(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU, eps=1e-5):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=eps)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


# --- LeNet-5, AlexNet, VGG ------------------------------------------------------------------------
def lenet5(num_classes=10):
    layers, c, hw = [], _lenet.INPUT_SIZE[0], _lenet.INPUT_SIZE[1]
    for kind, a, b in _lenet.FEATURES:
        if kind == "conv":
            layers += [nn.Conv2d(c, a, b), nn.Tanh()]
            c, hw = a, hw - b + 1
        else:
            layers.append(nn.AvgPool2d(a, b))
            hw = (hw - a) // b + 1
    fc, n = [], c * hw * hw
    for h in _lenet.HIDDEN:
        fc += [nn.Linear(n, h), nn.Tanh()]
        n = h
    fc.append(nn.Linear(n, num_classes))
    return FeatureClassifier(nn.Sequential(*layers), None, nn.Sequential(*fc))


def alexnet(num_classes=1000, variant="paper"):
    m = _alexnet
    cfg = m.variant_config(variant)
    layers, c, hw = [], cfg["input_size"][0], cfg["input_size"][1]
    for filters, k, s, p, lrn, pool in cfg["convs"]:
        layers += [nn.Conv2d(c, filters, k, s, p), nn.ReLU(inplace=True)]
        c, hw = filters, (hw + 2 * p - k) // s + 1
        if lrn:
            layers.append(nn.LocalResponseNorm(m.LRN_SIZE, m.LRN_ALPHA * m.LRN_SIZE, m.LRN_BETA, m.LRN_K))
        if pool:
            layers.append(nn.MaxPool2d(*m.POOL))
            hw = (hw - m.POOL[0]) // m.POOL[1] + 1
    avgpool = None
    if cfg["avgpool"] is not None:
        avgpool, hw = nn.AdaptiveAvgPool2d(cfg["avgpool"]), cfg["avgpool"]
    fc, n = [], c * hw * hw
    for h in m.HIDDEN:
        hidden = [nn.Linear(n, h), nn.ReLU(inplace=True)]
        fc += [nn.Dropout(m.DROPOUT)] + hidden if cfg["dropout_first"] else hidden + [nn.Dropout(m.DROPOUT)]
        n = h
    fc.append(nn.Linear(n, num_classes))
    return FeatureClassifier(nn.Sequential(*layers), avgpool, nn.Sequential(*fc))


def _vgg_net(config, num_classes=1000):
    layers, c = [], 3
    for v in _vgg.CONFIGS[config]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    fc, n = [], c * _vgg.POOL_OUT ** 2
    for h in _vgg.HIDDEN:
        fc += [nn.Linear(n, h), nn.ReLU(inplace=True), nn.Dropout(0.5)]
        n = h
    fc.append(nn.Linear(n, num_classes))
    return FeatureClassifier(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(_vgg.POOL_OUT), nn.Sequential(*fc))


# --- ResNet --------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, config, num_classes=1000):
        super().__init__()
        kind, blocks_per_stage = _resnet.CONFIGS[config]
        block = BasicBlock if kind.expansion == 1 else Bottleneck
        stem = _resnet.STEM
        c = stem["channels"]
        self.conv1 = nn.Conv2d(3, c, stem["kernel"], stem["stride"], stem["padding"], bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(*stem["pool"])
        for i, (planes, n, stride) in enumerate(zip(_resnet.STAGE_PLANES, blocks_per_stage, _resnet.STAGE_STRIDES)):
            out, blocks = planes * block.expansion, []
            for j in range(n):
                s = stride if j == 0 else 1
                down = None
                if j == 0 and (s != 1 or c != out):
                    down = nn.Sequential(nn.Conv2d(c, out, 1, s, bias=False), nn.BatchNorm2d(out))
                blocks.append(block(c, planes, s, down))
                c = out
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- GoogLeNet -----------------------------------------------------------------------------------
class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=_goog.BN_EPS)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.branch1 = BasicConv2d(cin, c1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, c3r, 1), BasicConv2d(c3r, c3, 3, 1, 1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, c5r, 1), BasicConv2d(c5r, c5, 3, 1, 1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv2d(cin, pp, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, cin, num_classes):
        super().__init__()
        self.conv = BasicConv2d(cin, 128, 1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.conv(nn.functional.adaptive_avg_pool2d(x, 4))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class GoogLeNet(nn.Module):
    def __init__(self, num_classes=1000, aux_logits=False):
        super().__init__()
        c = 3
        for name, kind, *a in _goog.STEM:
            if kind == "conv":
                setattr(self, name, BasicConv2d(c, *a))
                c = a[0]
            else:
                setattr(self, name, nn.MaxPool2d(*a, ceil_mode=True))
        self.body = []
        for name, *a in _goog.INCEPTION:
            if name.startswith("maxpool"):
                setattr(self, name, nn.MaxPool2d(*a, ceil_mode=True))
            else:
                setattr(self, name, Inception(c, *a))
                c = a[0] + a[2] + a[4] + a[5]
            self.body.append(name)
        self.aux_logits = aux_logits
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes)
            self.aux2 = InceptionAux(528, num_classes)
        self.fc = nn.Linear(c, num_classes)

    def forward_all(self, x):
        for name, *_ in _goog.STEM:
            x = getattr(self, name)(x)
        aux = {}
        for name in self.body:
            x = getattr(self, name)(x)
            for head, tap in _goog.AUX_AFTER.items():
                if self.aux_logits and tap == name:
                    aux[head] = getattr(self, head)(x)
        logits = self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
        return logits, aux.get("aux1"), aux.get("aux2")

    def forward(self, x):
        return self.forward_all(x)[0]


# --- MobileNet v1 / v2, EfficientNet --------------------------------------------------------------
def mobilenet_v1(num_classes=1000, alpha=1.0):
    c = max(1, int(_mv1.FIRST[0] * alpha))
    layers = [conv_norm_act(3, c, 3, _mv1.FIRST[1])]
    for filters, stride in _mv1.BLOCKS:
        out = max(1, int(filters * alpha))
        layers.append(nn.Sequential(conv_norm_act(c, c, 3, stride, groups=c), conv_norm_act(c, out, 1)))
        c = out
    return FeatureClassifier(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1),
                             nn.Sequential(nn.Dropout(0.001), nn.Linear(c, num_classes)))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [conv_norm_act(inp, hidden, 1, act=nn.ReLU6)] if expand_ratio != 1 else []
        layers += [conv_norm_act(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def mobilenet_v2(num_classes=1000, width_mult=1.0):
    c = make_divisible(_mv2.FIRST * width_mult, 8)
    last = make_divisible(_mv2.LAST * max(1.0, width_mult), 8)
    layers = [conv_norm_act(3, c, 3, 2, act=nn.ReLU6)]
    for t, ch, n, s in _mv2.SETTINGS:
        out = make_divisible(ch * width_mult, 8)
        for i in range(n):
            layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
            c = out
    layers.append(conv_norm_act(c, last, 1, act=nn.ReLU6))
    return FeatureClassifier(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1),
                             nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes)))


class SqueezeExcitation(nn.Module):
    def __init__(self, cin, squeeze):
        super().__init__()
        self.fc1 = nn.Conv2d(cin, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, cin, 1)

    def forward(self, x):
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(s))))


class MBConv(nn.Module):
    def __init__(self, expand_ratio, kernel, stride, cin, cout, eps):
        super().__init__()
        expanded = make_divisible(cin * expand_ratio, 8)
        self.use_res_connect = stride == 1 and cin == cout
        layers = [conv_norm_act(cin, expanded, 1, act=nn.SiLU, eps=eps)] if expanded != cin else []
        layers += [conv_norm_act(expanded, expanded, kernel, stride, groups=expanded, act=nn.SiLU, eps=eps),
                   SqueezeExcitation(expanded, max(1, cin // 4)),
                   conv_norm_act(expanded, cout, 1, act=None, eps=eps)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x) + x if self.use_res_connect else self.block(x)


def efficientnet(name, num_classes=1000):
    width, depth, _, dropout, eps = _eff.SCALING[name]

    def ch(c):
        return make_divisible(c * width, 8)

    layers = [conv_norm_act(3, ch(_eff.STEM), 3, 2, act=nn.SiLU, eps=eps)]
    for expand, kernel, stride, cin, cout, repeats in _eff.STAGES:
        layers.append(nn.Sequential(*[
            MBConv(expand, kernel, stride if i == 0 else 1, ch(cin) if i == 0 else ch(cout), ch(cout), eps)
            for i in range(int(math.ceil(repeats * depth)))]))
    last = ch(_eff.STAGES[-1][4])
    layers.append(conv_norm_act(last, 4 * last, 1, act=nn.SiLU, eps=eps))
    return FeatureClassifier(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1),
                             nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * last, num_classes)))


_BUILDERS = {
    "lenet5": lenet5, "alexnet": alexnet,
    "vgg16": lambda **kw: _vgg_net("vgg16", **kw), "vgg19": lambda **kw: _vgg_net("vgg19", **kw),
    **{name: (lambda n: lambda **kw: ResNet(n, **kw))(name) for name in _resnet.CONFIGS},
    "googlenet": GoogLeNet, "mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2,
    **{name: (lambda n: lambda **kw: efficientnet(n, **kw))(name) for name in _eff.SCALING},
}


def available():
    return list(_BUILDERS)


def create(name, **kw):
    """The torch.nn twin of cnn.models.create(name, **kw), in eval mode (BN uses running statistics)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown network {name!r}; available: {', '.join(_BUILDERS)}")
    return _BUILDERS[name](**kw).eval()
