"""Multi-layer perceptron family (``mlp``)."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from autokd.models.registry import register_model

_ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLPParams(BaseModel):
    """Hidden layer sizes, activation and dropout of an MLP."""

    model_config = ConfigDict(extra="forbid")
    hidden: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: [64], description="width of each hidden layer"
    )
    activation: Literal["relu", "gelu", "tanh"] = Field("relu", description="activation function")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each hidden layer")
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden linear layer")


class MLP(nn.Module):
    """Flatten -> [Linear -> (BN) -> act -> (dropout)]* -> Linear.

    Features: ``hidden1`` … ``hiddenN`` (post-activation) and ``penultimate`` (the last one).
    """

    def __init__(self, in_features: int, num_classes: int, p: MLPParams):
        super().__init__()
        layers = []
        prev = in_features
        for h in p.hidden:
            block = [nn.Linear(prev, h)]
            if p.batch_norm:
                block.append(nn.BatchNorm1d(h))
            block.append(_ACTS[p.activation]())
            if p.dropout > 0:
                block.append(nn.Dropout(p.dropout))
            layers.append(nn.Sequential(*block))
            prev = h
        self.hidden = nn.ModuleList(layers)
        self.head = nn.Linear(prev, num_classes)

    def forward(self, x, return_features: bool = False):
        h = x.flatten(1)
        feats = OrderedDict()
        for i, layer in enumerate(self.hidden, start=1):
            h = layer(h)
            feats[f"hidden{i}"] = h
        feats["penultimate"] = h
        logits = self.head(h)
        return (logits, feats) if return_features else logits


@register_model("mlp", MLPParams)
def build_mlp(p: MLPParams, input_shape, num_classes):
    """Multi-layer perceptron on flattened inputs."""
    return MLP(int(math.prod(input_shape)), num_classes, p)
