"""Packed windows: several examples in one row, kept apart by a per-position example id.

``segments`` ``(B, T)`` numbers the examples of each row 1, 2, … (0 for padding). Position
``i`` may attend to position ``j`` when ``j ≤ i`` and both belong to the same example, and each
example's positions restart at 0, so a packed example sees exactly what it would see alone in
its own window.
"""

from __future__ import annotations

import torch
from torch import Tensor


def segment_positions(segments: Tensor) -> Tensor:
    """Each position's index within its example ``(B, T)`` (padding counts on from its own start)."""
    t = segments.shape[-1]
    ar = torch.arange(t, device=segments.device).expand_as(segments)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[..., 1:] = segments[..., 1:] != segments[..., :-1]
    first = torch.where(starts, ar, torch.zeros_like(ar)).cummax(dim=-1).values
    return ar - first


def segment_mask(segments: Tensor) -> Tensor:
    """``(B, 1, T, T)`` boolean: causal within an example, nothing across examples."""
    t = segments.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segments.device).tril()
    same = segments[:, :, None] == segments[:, None, :]
    return (same & causal)[:, None]
