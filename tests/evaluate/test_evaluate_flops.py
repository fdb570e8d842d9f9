"""MACs (the reports' ``flops``) against hand counts from the layer shapes, not against another counter."""

from __future__ import annotations

import torch
from torch import nn

from autokd.evaluate.flops import count_flops, count_macs
from autokd.evaluate.metrics import model_metrics
from autokd.models import build_model


def test_conv_macs_from_the_layer_shape():
    # every one of the 4 x 8 x 8 outputs is a 3 x 3 x 1 dot product (padding 1 keeps 8 x 8)
    assert count_macs(nn.Conv2d(1, 4, 3, padding=1), (1, 8, 8)) == 1 * 4 * 9 * 64


def test_conv_then_linear_macs():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 10))
    assert count_macs(model, (1, 8, 8)) == 4 * 64 * 9 + 256 * 10


def test_strided_grouped_conv_macs():
    # 6 output channels on a 4 x 4 map (stride 2), each output reads 3 x 3 x (4 / 2 groups) inputs
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=True)
    assert count_macs(conv, (4, 8, 8)) == 6 * 16 * 9 * 2


def test_mlp_macs():
    model = build_model("mlp", {"hidden": [16, 32]}, (64,), 10)
    assert count_macs(model, (64,)) == 64 * 16 + 16 * 32 + 32 * 10


def test_default_student_macs():
    """The default pipeline's student (pipelines/default.yaml) on 1 x 8 x 8 digits, 10 classes."""
    model = build_model("cnn", {"stem_width": 4, "depths": [1, 1], "widths": [4, 8]}, (1, 8, 8), 10)
    stem = 4 * 64 * 9 * 1                          # 3x3 conv 1 -> 4 on 8x8
    stage1 = 2 * (4 * 64 * 9 * 4)                  # two 3x3 convs 4 -> 4 on 8x8, identity shortcut
    stage2 = 8 * 16 * 9 * 4 + 8 * 16 * 9 * 8 + 8 * 16 * 4  # stride-2 3x3 4 -> 8, 3x3 8 -> 8, 1x1 shortcut, on 4x4
    head = 8 * 10
    assert count_macs(model, (1, 8, 8)) == stem + stage1 + stage2 + head == 35152


def test_counting_keeps_the_mode_and_the_flops_key_is_the_mac_count():
    model = build_model("cnn", {"stem_width": 4, "depths": [1], "widths": [4]}, (1, 8, 8), 10).train()
    n = count_macs(model, (1, 8, 8))
    assert model.training and all(p.grad is None for p in model.parameters())
    assert count_flops is count_macs
    logits, y = torch.zeros(4, 10), torch.arange(4)
    metrics = model_metrics(model, logits, y, (1, 8, 8), latency_runs=1, latency_warmup=0, throughput_batch=2)
    assert metrics["flops"] == n
