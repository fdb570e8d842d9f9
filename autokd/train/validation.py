"""Validation: loss and accuracy of a model on a whole split, with bounded logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autokd.data.batches import IGNORE, loss_count
from autokd.data.prepare import Split
from autokd.utils.chunks import rows_per_pass


@torch.no_grad()
def count_correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(logits.argmax(-1) == y).sum()``, the same count, without a full argmax.

    ``argmax`` over a language model's ``(B, T, V)`` logits is several times slower than a max
    on CPU. A prediction can only be right where ``y``'s logit equals the row's maximum (or the
    maximum is NaN); ``argmax`` (first maximum wins) is taken on those rows alone, so ties and
    NaNs count exactly as before.
    """
    if y.is_floating_point() or y.shape != logits.shape[:-1]:
        return (logits.argmax(-1) == y).sum()
    top = logits.amax(-1)
    counted = y != IGNORE  # chat data's prompt and padding targets are nobody's prediction
    target = torch.where(counted, y, torch.zeros_like(y)).long()
    hit = ((logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) == top) | top.isnan()) & counted
    rows = hit.reshape(-1).nonzero().squeeze(1)
    flat = logits.reshape(-1, logits.shape[-1]).index_select(0, rows)
    return (flat.argmax(-1) == y.reshape(-1).index_select(0, rows)).sum()


@torch.no_grad()
def evaluate_split(model: nn.Module, split: Split, device: torch.device, batch_size: int = 512) -> dict[str, float]:
    """Loss and accuracy of ``model`` on a whole split (eval mode): per sample for a classifier,
    per predicted token for a language model (loss = mean NLL, exp(loss) the perplexity), in
    passes of ``batch_size`` rows, fewer where a language model's logits would pass
    :data:`autokd.utils.chunks.LOGITS_BUDGET`."""
    if len(split) == 0:
        return {}
    total_loss, correct, count = split_sums(model, split, device, batch_size)
    return {"loss": total_loss / count, "accuracy": correct / count}


def split_sums(model: nn.Module, split: Split, device: torch.device, batch_size: int = 512) -> tuple[float, int, int]:
    """The summed NLL, correct predictions and predictions counted of :func:`evaluate_split` (what
    data-parallel workers add up over their slices of a split)."""
    if len(split) == 0:
        return 0.0, 0, 0
    was = model.training
    model.eval()
    batch_size = rows_per_pass(model, split.x, device, batch_size)  # a language model's logits stay bounded
    total_loss, correct, count = 0.0, 0, 0
    for start in range(0, len(split), batch_size):
        x = split.x[start : start + batch_size].to(device)
        y = split.y[start : start + batch_size].to(device)
        kwargs = {} if split.segments is None else {"segments": split.segments[start : start + batch_size].to(device)}
        logits = model(x, **kwargs).float()
        # (B, K) class logits, or (B, T, V) next-token logits against (B, T) targets: per prediction
        # (a token target of IGNORE, chat data's prompt and padding, counts nowhere)
        total_loss += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        correct += int(count_correct(logits, y))
        count += loss_count(y)
    model.train(was)
    return total_loss, correct, count
