"""The language-model objective's loss terms, apart from how its batch is chosen.

:class:`autokd.train.lm_objective.LMDistillObjective` first selects what the student trains on
(the batch as given, or, on-policy, the student's own continuations of its prompts) as an
:class:`LMView`: the inputs, the student's logits and features, the live teacher's (when it
ran) and the positions that count. Each term then reads the view and gives its weighted value
and the parts it reports; :func:`combine` sums them in the terms' order::

    CrossEntropy            (1 − alpha)·CE(z_s, y)
    Distill                 alpha·D,  D = D_token  or, with SeqKD,  (1 − g)·D_token + g·NLL
    Representation          weight·mean_pairs R(adapt(f_s), f_t)
    OnPolicy                D_token on the generated positions (an on-policy batch's only term)

The terms are plain objects, not modules: the learned pieces they use (the feature adapters,
the seqKD gate) stay the objective's own parameters, under the names checkpoints store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from autokd.data.batches import Batch
from autokd.train.sequence import continuation_mask
from autokd.train.topk_cache import TopKTeacherOutputs

Parts = dict[str, torch.Tensor]


@dataclass
class LMView:
    """One batch as the terms see it: ``batch`` (on-policy: inputs replaced by the student's
    continuations), the student's ``logits`` and ``student_feats``, the live teacher's
    ``teacher_logits`` / ``teacher_feats`` (None when it did not run) and ``mask``, the target
    positions a token divergence counts (None: all)."""

    model: nn.Module
    batch: Batch
    logits: torch.Tensor
    student_feats: dict[str, torch.Tensor] = field(default_factory=dict)
    teacher_logits: torch.Tensor | None = None
    teacher_feats: dict[str, torch.Tensor] | None = None
    mask: torch.Tensor | None = None
    on_policy: bool = False


class CrossEntropy:
    """``weight · CE`` over every position (``weight`` = 1 − alpha)."""

    def __init__(self, weight: float):
        self.weight = float(weight)

    def __call__(self, view: LMView) -> tuple[torch.Tensor, Parts]:
        logits = view.logits
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), view.batch.y.reshape(-1))
        return self.weight * ce, {"ce": ce.detach()}


class TokenDivergence:
    """``D_token`` (unweighted): the registered token loss against the teacher's cached top-k
    when there is a cache, else against the live teacher's logits in the view."""

    def __init__(self, loss: nn.Module, cache: TopKTeacherOutputs | None = None):
        self.loss, self.cache = loss, cache

    def __call__(self, view: LMView) -> torch.Tensor:
        batch = view.batch
        teacher = view.teacher_logits if self.cache is None else self.cache.lookup(batch.idx.cpu()).to(batch.x.device)
        return self.loss(view.logits, teacher, view.mask)


class SeqKD:
    """Sequence-level KD's share of D: ``(1 − g)·d + g·NLL`` of the teacher's continuations of the
    batch's windows (a second student pass), ``g`` from ``gate`` (fixed, or σ of a learned logit)."""

    def __init__(self, generations: torch.Tensor, prompt_tokens: int, gate: Callable[[], torch.Tensor | float]):
        self.generations, self.prompt_tokens, self.gate = generations, int(prompt_tokens), gate

    def __call__(self, view: LMView, d: torch.Tensor) -> tuple[torch.Tensor, Parts]:
        batch = view.batch
        w = self.generations[batch.idx.cpu()].to(batch.x.device)
        x_s, y_s = w[:, :-1], w[:, 1:]
        mask = continuation_mask(x_s.shape[0], x_s.shape[1], self.prompt_tokens, x_s.device)
        s_logits = view.model(x_s)
        nll = F.cross_entropy(s_logits[mask], y_s[mask])
        g = self.gate()
        return (1 - g) * d + g * nll, {"sequence": nll.detach(), "gate": torch.as_tensor(g).detach()}


class Distill:
    """``weight · D`` (``weight`` = alpha): the token divergence, mixed with the seqKD NLL when
    ``seqkd`` is given."""

    def __init__(self, weight: float, token: TokenDivergence, seqkd: SeqKD | None = None):
        self.weight, self.token, self.seqkd = float(weight), token, seqkd

    def __call__(self, view: LMView) -> tuple[torch.Tensor, Parts]:
        d = self.token(view)
        parts: Parts = {"token": d.detach()}
        if self.seqkd is not None:
            d, more = self.seqkd(view, d)
            parts.update(more)
        parts["distill"] = d.detach()
        return self.weight * d, parts


class Representation:
    """``weight · mean over pairs of R(adapter_i(f_s), f_t)`` on the view's features."""

    def __init__(self, loss: nn.Module, weight: float, pairs: list[tuple[str, str]], adapters: nn.ModuleDict):
        self.loss, self.weight, self.pairs, self.adapters = loss, float(weight), list(pairs), adapters

    def __call__(self, view: LMView) -> tuple[torch.Tensor, Parts]:
        r = view.logits.new_zeros(())
        for i, (s_name, t_name) in enumerate(self.pairs):
            r = r + self.loss(self.adapters[str(i)](view.student_feats[s_name]), view.teacher_feats[t_name].detach())
        r = r / max(len(self.pairs), 1)
        return self.weight * r, {"representation": r.detach()}


class OnPolicy:
    """An on-policy batch's loss: the token divergence on the generated positions, unweighted."""

    def __init__(self, token: TokenDivergence):
        self.token = token

    def __call__(self, view: LMView) -> tuple[torch.Tensor, Parts]:
        d = self.token(view)
        return d, {"on_policy": d.detach()}


Term = Callable[[LMView], tuple[torch.Tensor, Parts]]


def combine(terms: list[Term], view: LMView) -> tuple[torch.Tensor, torch.Tensor, Parts]:
    """``(loss, logits, parts)``: the terms' values summed left to right, their parts merged."""
    loss, parts = None, {}
    for term in terms:
        value, more = term(view)
        loss = value if loss is None else loss + value
        parts.update(more)
    return loss, view.logits, parts
