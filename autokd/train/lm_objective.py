"""The language-model distillation objective::

    L = (1 − alpha)·CE(z_s, y) + alpha·D_token(p_teacher, q_student) + weight·Σ_pairs R(adapt(f_s), f_t)

per token of packed windows. ``D_token`` is a token-level divergence (:mod:`autokd.losses.token`)
against the teacher's cached top-k (:mod:`autokd.train.topk_cache`) or its live logits; ``R``
an optional representation-transfer loss (:mod:`autokd.losses.representation`) over the layer
map's feature pairs, through learned per-token projections where widths differ (the live
teacher runs on every batch then).

Sequence level (``sequence``, :class:`autokd.spec.lm.SequenceSpec`):

* ``seqkd``: ``D = (1 − g)·D_token + g·NLL(teacher continuations)``, the continuations written
  once by the teacher's cache stage; ``g`` fixed, or learned as σ(θ) with the student;
* ``on_policy``: with probability ``lmbda`` a batch is replaced by the student's own
  continuations of its prompts, and its loss is ``D_token`` on the generated positions against
  the live teacher. The draw and the samples come from a generator seeded by (seed, epoch,
  step), so a resumed run makes the same choices.

:meth:`LMDistillObjective.forward` separates the two, as TRL's GKD trainer does: a
batch-selection step (:meth:`~LMDistillObjective.select_batch`: the batch as given, or the
student's continuations) gives an :class:`autokd.train.lm_terms.LMView`, and the objective's
list of loss terms (:mod:`autokd.train.lm_terms`) is summed over it.
"""

from __future__ import annotations

import torch
from torch import nn

from autokd.data.batches import IGNORE, Batch
from autokd.losses import create as create_loss
from autokd.losses import get_spec as get_loss_spec
from autokd.models.features import forward_features
from autokd.train.distill import FeatureAdapter
from autokd.train.lm_terms import (CrossEntropy, Distill, LMView, OnPolicy, Representation, SeqKD, TokenDivergence,
                                   combine)
from autokd.train.sequence import continuation_mask, continue_windows
from autokd.train.topk_cache import TopKTeacherOutputs


class LMDistillObjective(nn.Module):
    """Token-level KD for causal LMs, with an optional representation term."""

    def __init__(self, method: str, method_params: dict, alpha: float, *, teacher: nn.Module | None = None,
                 cache: TopKTeacherOutputs | None = None, representation: tuple[str, dict, float] | None = None,
                 pairs: list[tuple[str, str]] | None = None, student_shapes: dict | None = None,
                 teacher_shapes: dict | None = None, sequence=None, generations: torch.Tensor | None = None,
                 seed: int = 0):
        super().__init__()
        spec = get_loss_spec(method)
        if spec.kind != "token":
            raise ValueError(f"{method!r} is a {spec.kind} method; the language-model objective needs a token-level "
                             f"divergence (fkl, rkl, jsd, tvd, skl, srkl, akl)")
        self.loss = create_loss(method, **method_params)
        self.alpha = float(alpha)
        self.cache = cache
        self._teacher = [teacher] if teacher is not None else []  # not a submodule: never trained or saved
        if teacher is not None:
            for p in teacher.parameters():
                p.requires_grad_(False)
        if teacher is None and cache is None and self.alpha > 0:
            raise ValueError(f"method {method!r} needs the teacher's outputs: give a teacher or a top-k cache")
        self.teacher_calls = 0
        self.pairs = list(pairs or [])
        self.adapters = nn.ModuleDict()
        self.rep_loss, self.rep_weight = None, 0.0
        if representation is not None:
            rep_method, rep_params, self.rep_weight = representation
            if teacher is None:
                raise ValueError("a representation term compares features: it needs the live teacher")
            rspec = get_loss_spec(rep_method)
            self.rep_loss = create_loss(rep_method, **rep_params)
            for i, (s_name, t_name) in enumerate(self.pairs):
                if rspec.kind == "feature":
                    self.adapters[str(i)] = FeatureAdapter(student_shapes[s_name], teacher_shapes[t_name])
                else:
                    self.adapters[str(i)] = nn.Identity()
        self.student_features = list(dict.fromkeys(s for s, _ in self.pairs))
        self.teacher_features = list(dict.fromkeys(t for _, t in self.pairs))
        self.sequence, self.generations, self.seed = sequence, generations, int(seed)
        self.epoch, self.step = 0, 0
        if sequence is not None and sequence.mode == "seqkd":
            if generations is None:
                raise ValueError("sequence.mode 'seqkd' needs the teacher's continuations (the cache_teacher stage)")
            if sequence.gate == "learned":
                w = min(max(sequence.weight, 1e-4), 1 - 1e-4)
                self.gate_logit = nn.Parameter(torch.tensor(float(torch.logit(torch.tensor(w)))))
        if sequence is not None and sequence.mode == "on_policy" and teacher is None:
            raise ValueError("sequence.mode 'on_policy' scores the student's samples with the live teacher")

    @property
    def terms(self) -> list:
        """An off-policy batch's loss terms, in the sum's order: CE, then alpha·D (with the seqKD
        mix), then the representation term (built from the current attributes on every call, so
        a changed ``alpha`` takes effect)."""
        terms: list = [CrossEntropy(1.0 - self.alpha)]
        seq = self.sequence
        if self.alpha > 0:
            seqkd = (SeqKD(self.generations, seq.prompt_tokens, self.gate)
                     if seq is not None and seq.mode == "seqkd" else None)
            terms.append(Distill(self.alpha, TokenDivergence(self.loss, self.cache), seqkd))
        if self.rep_loss is not None:
            terms.append(Representation(self.rep_loss, self.rep_weight, self.pairs, self.adapters))
        return terms

    @property
    def on_policy_terms(self) -> list:
        """An on-policy batch's one term: D_token on the generated positions, live teacher."""
        return [OnPolicy(TokenDivergence(self.loss))]

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        self.epoch, self.step = int(epoch), 0

    def gate(self) -> torch.Tensor | float:
        """g, the sequence term's share (seqkd)."""
        if hasattr(self, "gate_logit"):
            return torch.sigmoid(self.gate_logit)
        return float(self.sequence.weight)

    def _rng(self, device: torch.device) -> torch.Generator:
        """The (seed, epoch, step) generator, on the device the student samples on (CUDA's sampling
        refuses a CPU generator; on CPU the stream is the one ``torch.Generator()`` gives)."""
        return torch.Generator(device=device).manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + self.step)

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def select_batch(self, model: nn.Module, batch: Batch) -> LMView:
        """What this step trains on. On-policy, with probability ``lmbda`` (drawn from the
        (seed, epoch, step) generator, which then samples), the student's continuations of the
        batch's prompts scored by the live teacher; otherwise the batch itself, with the live
        teacher's logits and features when it must run."""
        seq = self.sequence
        if seq is not None and seq.mode == "on_policy":
            gen = self._rng(batch.x.device)
            self.step += 1
            if torch.rand((), generator=gen, device=gen.device).item() < seq.lmbda:
                return self._on_policy_view(model, batch, gen)
        else:
            self.step += 1
        t_logits = t_feats = None
        kw = batch.model_kwargs  # packed windows: segments
        if self.teacher is not None and (self.cache is None or self.rep_loss is not None):
            self.teacher.eval()
            self.teacher_calls += 1
            with torch.no_grad():
                t_logits, t_feats = forward_features(self.teacher, batch.x, self.teacher_features, **kw)
            # a teacher in a lower precision (runtime.teacher_precision) is compared in fp32
            t_logits, t_feats = t_logits.float(), {k: v.float() for k, v in t_feats.items()}
        if self.student_features:
            logits, s_feats = forward_features(model, batch.x, self.student_features, **kw)
        else:
            logits, s_feats = model(batch.x, **kw), {}
        # chat data: the divergences count the targets CE counts (completion tokens), not prompt or padding
        ignored = batch.y == IGNORE
        mask = ~ignored if bool(ignored.any()) else None
        return LMView(model, batch, logits, s_feats, t_logits, t_feats, mask=mask)

    def _on_policy_view(self, model: nn.Module, batch: Batch, gen: torch.Generator) -> LMView:
        p = self.sequence.prompt_tokens
        # prompts, generator and student on one device (the batch's: the model's)
        windows = continue_windows(model, batch.x, p, temperature=self.sequence.temperature, generator=gen)
        x = windows[:, :-1].to(batch.x.device)
        self.teacher.eval()
        self.teacher_calls += 1
        with torch.no_grad():
            t_logits = self.teacher(x).float()
        logits = model(x)
        mask = continuation_mask(x.shape[0], x.shape[1], p, x.device)
        view_batch = Batch(x, windows[:, 1:].to(batch.x.device), batch.idx, batch.augmented)
        return LMView(model, view_batch, logits, teacher_logits=t_logits, mask=mask, on_policy=True)

    def forward(self, model: nn.Module, batch: Batch):
        view = self.select_batch(model, batch)
        return combine(self.on_policy_terms if view.on_policy else self.terms, view)
