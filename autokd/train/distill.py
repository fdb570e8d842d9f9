"""The distillation objective: L = (1 - alpha) * CE(z_s, y) + alpha * D.

D is a registered method from :mod:`autokd.losses`:
- logit methods read the teacher's logits from the cache when the batch is not augmented,
  and run the teacher (no gradient) otherwise;
- feature and relation methods run the teacher on each batch (no gradient) and compare
  named features, through a learned adapter where shapes differ. A feature name is an alias
  (``pool``, ``stage1``: what ``forward(x, return_features=True)`` returns) or a module path
  from ``named_modules()`` (``layers.1``), read by a forward hook that lives for one call
  (:mod:`autokd.models.features`), so any ``nn.Module`` can be a student or a teacher;
- label methods (``ls``) need no teacher at all.

Token-level methods (language models: ``fkl``, ``rkl``, ``jsd``, …) are refused here: the
language-model pipeline's objective is :class:`autokd.train.lm_objective.LMDistillObjective`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autokd.data.batches import Batch
from autokd.losses import create as create_loss
from autokd.losses import get_spec as get_loss_spec
from autokd.models.features import forward_features
from autokd.spec.errors import suggest
from autokd.train.teacher_cache import TeacherOutputs


class FeatureAdapter(nn.Module):
    """Maps a student feature onto the teacher feature's shape: a 1x1 conv for maps, a linear layer
    for vectors and, per token, for sequences ``(T, d)`` (transformer hidden states)."""

    def __init__(self, s_shape: tuple[int, ...], t_shape: tuple[int, ...]):
        super().__init__()
        self.t_shape = tuple(t_shape)
        if len(s_shape) == 3 and len(t_shape) == 3:
            self.proj = (
                nn.Sequential(nn.Conv2d(s_shape[0], t_shape[0], 1, bias=False), nn.BatchNorm2d(t_shape[0]))
                if s_shape[0] != t_shape[0]
                else nn.Identity()
            )
            self.resize = tuple(s_shape[1:]) != tuple(t_shape[1:])
        elif len(s_shape) == 2 and len(t_shape) == 2 and s_shape[0] == t_shape[0]:  # (T, d): per token
            self.proj = nn.Linear(s_shape[1], t_shape[1]) if s_shape[1] != t_shape[1] else nn.Identity()
            self.resize = False
        elif len(s_shape) == 1 and len(t_shape) == 1:
            self.proj = nn.Linear(s_shape[0], t_shape[0]) if s_shape[0] != t_shape[0] else nn.Identity()
            self.resize = False
        else:
            raise ValueError(f"cannot adapt a student feature of shape {s_shape} to a teacher feature of shape {t_shape}")

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        f = self.proj(f)
        if self.resize:
            f = F.adaptive_avg_pool2d(f, self.t_shape[1:])
        return f


class DistillObjective(nn.Module):
    """(1 - alpha) * CE + alpha * D, with D from the loss registry."""

    def __init__(
        self,
        method: str,
        method_params: dict,
        alpha: float,
        teacher: nn.Module | None = None,
        cache: TeacherOutputs | None = None,
        feature_pairs: list[tuple[str, str, float]] | None = None,
        student_shapes: dict[str, tuple[int, ...]] | None = None,
        teacher_shapes: dict[str, tuple[int, ...]] | None = None,
    ):
        super().__init__()
        self.spec = get_loss_spec(method)
        self.kind = self.spec.kind
        if self.kind == "token":
            raise ValueError(f"{method!r} is a token-level (language-model) method; DistillObjective is the "
                             f"classifier's objective: use autokd.train.lm_objective.LMDistillObjective")
        self.loss = create_loss(method, **method_params)
        self.alpha = float(alpha)
        self.cache = cache
        # the teacher is not a submodule: it is never trained and never checkpointed here
        self._teacher = [teacher] if teacher is not None else []
        if teacher is not None:
            for p in teacher.parameters():
                p.requires_grad_(False)
        self.teacher_calls = 0  # how many batches ran the teacher (tests pin the cache)
        self.pairs: list[tuple[str, str, float]] = []
        self.adapters = nn.ModuleDict()
        if self.kind in ("feature", "relation"):
            if teacher is None:
                raise ValueError(f"method {method!r} compares features: it needs the teacher model")
            pairs = feature_pairs or [("pool", "pool", 1.0)]
            student_shapes = student_shapes or {}
            teacher_shapes = teacher_shapes or {}
            for i, (s_name, t_name, w) in enumerate(pairs):
                for role, name, shapes in (("student", s_name, student_shapes), ("teacher", t_name, teacher_shapes)):
                    if name not in shapes:
                        hint = suggest(name, shapes)
                        raise ValueError(f"the {role} has no feature {name!r}" + (f" ({hint})" if hint else "")
                                         + f"; it has {', '.join(shapes) or 'none'}")
                self.pairs.append((s_name, t_name, float(w)))
                if self.kind == "feature" and getattr(self.spec, "adapt", True):
                    self.adapters[str(i)] = FeatureAdapter(student_shapes[s_name], teacher_shapes[t_name])
                else:
                    self.adapters[str(i)] = nn.Identity()
        # the names each model is asked for on every batch (aliases or module paths)
        self.student_features = list(dict.fromkeys(s for s, _, _ in self.pairs))
        self.teacher_features = list(dict.fromkeys(t for _, t, _ in self.pairs))
        if self.kind == "logit" and teacher is None and cache is None:
            raise ValueError(f"method {method!r} needs the teacher's outputs: give a teacher or a cache")

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        if hasattr(self.loss, "on_epoch_start"):
            self.loss.on_epoch_start(epoch, total_epochs)

    def _run_teacher(self, x: torch.Tensor, features: bool):
        teacher = self.teacher
        teacher.eval()
        self.teacher_calls += 1
        # a teacher in a lower precision (runtime.teacher_precision) takes inputs in its dtype and
        # gives fp32 outputs (a no-op for an fp32 teacher)
        dtype = next(teacher.parameters()).dtype
        x = x.to(dtype) if x.is_floating_point() else x
        with torch.no_grad():
            if features:
                logits, feats = forward_features(teacher, x, self.teacher_features)
                return logits.float(), {k: v.float() for k, v in feats.items()}
            return teacher(x).float(), None

    def teacher_logits(self, batch: Batch) -> torch.Tensor:
        """The teacher's logits: from the cache unless the batch is augmented, else live."""
        if self.cache is not None and not batch.augmented:
            return self.cache.lookup(batch.idx.cpu()).to(batch.x.device)
        if self.teacher is None:
            raise RuntimeError("an augmented batch needs the live teacher, and none was given")
        return self._run_teacher(batch.x, features=False)[0]

    def forward(self, model: nn.Module, batch: Batch):
        parts: dict[str, torch.Tensor] = {}
        if self.kind in ("feature", "relation"):
            logits, s_feats = forward_features(model, batch.x, self.student_features)
            _, t_feats = self._run_teacher(batch.x, features=True)
            d = logits.new_zeros(())
            for i, (s_name, t_name, w) in enumerate(self.pairs):
                d = d + w * self.loss(self.adapters[str(i)](s_feats[s_name]), t_feats[t_name].detach())
        elif self.kind == "label":
            logits = model(batch.x)
            d = self.loss(logits, None, batch.y)
        else:
            logits = model(batch.x)
            d = self.loss(logits, self.teacher_logits(batch).detach(), batch.y)
        ce = F.cross_entropy(logits, batch.y)
        loss = (1.0 - self.alpha) * ce + self.alpha * d
        parts["ce"] = ce.detach()
        parts["distill"] = d.detach()
        return loss, logits, parts
