"""ResNet-style convolutional family (``cnn``) and the DisWOT S1 family (``resnet_s1``).

A stem convolution, then stages of blocks; every stage after the first halves the spatial
size. Each stage has its own depth (number of blocks) and width (channels), so a student can
be 10-100x smaller than its teacher. Features: ``stem``, ``stage1`` … ``stageN`` (feature
maps) and ``pool`` (the pooled vector the classifier reads).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from autokd.models.registry import register_model

PositiveInt = Annotated[int, Field(gt=0)]


class CNNParams(BaseModel):
    """Per-stage depth and width, kernel size and block type of a ResNet-style CNN."""

    model_config = ConfigDict(extra="forbid")
    stem_width: PositiveInt = Field(16, description="channels of the stem convolution")
    depths: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 1, 1], description="blocks per stage"
    )
    widths: list[PositiveInt] = Field(
        default_factory=lambda: [16, 32, 64], description="channels per stage"
    )
    kernel_size: Literal[1, 3, 5, 7] = Field(3, description="kernel size of block convolutions")
    block: Literal["basic", "plain"] = Field(
        "basic", description="basic: two convs with a residual connection; plain: two convs, no skip"
    )
    batch_norm: bool = Field(True, description="BatchNorm after each convolution")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier")

    @model_validator(mode="after")
    def _same_length(self):
        if len(self.depths) != len(self.widths):
            raise ValueError(
                f"depths and widths must have one entry per stage; got {len(self.depths)} depths "
                f"and {len(self.widths)} widths"
            )
        if not self.depths:
            raise ValueError("at least one stage is required")
        return self


def _norm(c: int, on: bool) -> nn.Module:
    return nn.BatchNorm2d(c) if on else nn.Identity()


class Block(nn.Module):
    """conv-bn-relu-conv-bn (+ shortcut) -relu."""

    def __init__(self, cin: int, cout: int, stride: int, k: int, residual: bool, bn: bool):
        super().__init__()
        pad = k // 2
        self.conv1 = nn.Conv2d(cin, cout, k, stride, pad, bias=not bn)
        self.bn1 = _norm(cout, bn)
        self.conv2 = nn.Conv2d(cout, cout, k, 1, pad, bias=not bn)
        self.bn2 = _norm(cout, bn)
        self.residual = residual
        if residual and (stride != 1 or cin != cout):
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=not bn), _norm(cout, bn))
        else:
            self.shortcut = nn.Identity()
        self.act = nn.ReLU(inplace=False)

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)
        return self.act(out)


class ResNetCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, p: CNNParams):
        super().__init__()
        bn = p.batch_norm
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, p.stem_width, 3, 1, 1, bias=not bn), _norm(p.stem_width, bn), nn.ReLU()
        )
        stages = []
        cin = p.stem_width
        for i, (depth, width) in enumerate(zip(p.depths, p.widths)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(Block(cin, width, stride, p.kernel_size, p.block == "basic", bn))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(p.dropout) if p.dropout > 0 else nn.Identity()
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        feats = OrderedDict()
        h = self.stem(x)
        feats["stem"] = h
        for i, stage in enumerate(self.stages, start=1):
            h = stage(h)
            feats[f"stage{i}"] = h
        v = self.pool(h).flatten(1)
        feats["pool"] = v
        logits = self.head(self.dropout(v))
        return (logits, feats) if return_features else logits


def _channels(input_shape) -> int:
    if len(input_shape) != 3:
        from autokd.models.registry import ModelBuildError

        raise ModelBuildError(
            f"the cnn family needs image inputs shaped (C, H, W); this data has shape {tuple(input_shape)}"
        )
    return int(input_shape[0])


@register_model("cnn", CNNParams)
def build_cnn(p: CNNParams, input_shape, num_classes):
    """ResNet-style CNN with per-stage depth and width."""
    return ResNetCNN(_channels(input_shape), num_classes, p)


class ResNetS1Params(BaseModel):
    """DisWOT S1: ResNet20-style CIFAR network, blocks per stage (ResNet20 is [3, 3, 3])."""

    model_config = ConfigDict(extra="forbid")
    depths: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [3, 3, 3], min_length=3, max_length=3, description="blocks per stage"
    )


@register_model("resnet_s1", ResNetS1Params)
def build_resnet_s1(p: ResNetS1Params, input_shape, num_classes):
    """ResNet20-style CIFAR network (stem 16, widths 16/32/64, basic blocks) with free depths."""
    cp = CNNParams(stem_width=16, depths=list(p.depths), widths=[16, 32, 64], kernel_size=3, block="basic")
    return ResNetCNN(_channels(input_shape), num_classes, cp)
