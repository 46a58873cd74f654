"""The shape most of the case-study networks share: features -> pool -> flatten -> classifier."""
from __future__ import annotations

from ..layers import Flatten, Module


class FeatureClassifier(Module):
    """features (convolutions), an optional `avgpool`, flatten, then classifier (fully connected).
    `input_size` is the (C, H, W) the network was designed for (cnn.summary's and the benchmarks' default)."""

    def __init__(self, features, avgpool, classifier, input_size):
        self.features = features
        if avgpool is not None:
            self.avgpool = avgpool
        self.flatten = Flatten(1)
        self.classifier = classifier
        self.input_size = tuple(input_size)

    def forward(self, x):
        x = self.features(x)
        if "avgpool" in self.__dict__:
            x = self.avgpool(x)
        return self.classifier(self.flatten(x))
