"""Multiply-accumulates (MACs) of one forward pass, counted by PyTorch's ``FlopCounterMode``.

The metric every report calls ``flops`` (``reports/metrics.json``, the ranking's ``flops``
column and ``constraints.max_flops`` of an architecture search, the hyperparameter search's
``student.flops`` objective) is, and always was, the number of **multiply-accumulates** of
one batch-1 forward pass: the key keeps its historical name, its value is a MAC count.

:class:`torch.utils.flop_counter.FlopCounterMode` counts the floating-point operations of the
matrix-multiply and convolution ops PyTorch dispatches (``mm``, ``addmm``, ``bmm``,
``convolution``, attention, ...) at 2 FLOPs per multiply-accumulate, so
``MACs = FLOPs / 2``. Element-wise work (bias, BatchNorm, activations, pooling) is counted
by neither. For the built-in families (convolutions and linear layers only) this equals the
hand count ``Σ_conv out.numel() · k_h · k_w · c_in/groups + Σ_linear out.numel() · in_features``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

FLOPS_PER_MAC = 2  # FlopCounterMode's convention for matmul and convolution


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def count_macs(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> int:
    """Multiply-accumulates of one eval-mode forward pass of a batch-1 zero input (``dtype``:
    ``torch.long`` for a language model's token ids).

    The model's train/eval mode is restored after; no gradient, no random draw."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=model_device(model), dtype=dtype))
    finally:
        model.train(was)
    return int(counter.get_total_flops()) // FLOPS_PER_MAC


count_flops = count_macs
"""The pipeline's ``flops`` metric under its historical name: a MAC count (see the module docstring)."""
