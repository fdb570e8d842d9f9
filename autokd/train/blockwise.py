"""Block-wise logit distillation with stepping-stone models (after Yu et al. 2024).

Yu et al. ("Decoupling Dark Knowledge via Block-wise Logit Distillation for Feature-level
Alignment", 2024) bridge feature and logit distillation with *stepping stones*: models that
replace the teacher's blocks with the student's, one stage at a time, and are distilled by
logits. For the ``cnn`` family (stem, stages, pool, head) stepping stone k is::

    student stem + student stages[:k]  ->  connector  ->  teacher stages[k:] + pool + head

The connector is a 1x1 convolution + BatchNorm (spatial size matched by average pooling when
the two stages differ; :class:`autokd.train.distill.FeatureAdapter`). The teacher's parts are
frozen (eval mode, ``requires_grad`` off, never in the optimizer); the student's blocks are the
student's own modules, shared by every stone, so a stone's loss trains the student's early
stages to produce features the teacher's later stages can read. The objective::

    L = (1 - alpha) * CE(z_s, y) + alpha * (D(z_s, z_t) + weight * mean_k D(z_stone_k, z_t))

with D the step's logit method (``kd`` etc.). Only the student is kept after training; the
connectors live in the objective (checkpointed with it, for resume).

Implemented as a step option of the chain pipelines (``steps[i].blockwise`` in a chain spec,
:mod:`autokd.spec.chain`) rather than a registered loss: it needs the two models' internals,
not just a pair of logits or features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autokd.data.batches import Batch
from autokd.models.registry import feature_names, forward_with_features
from autokd.train.distill import DistillObjective, FeatureAdapter


def stage_count(model: nn.Module) -> int:
    stages = getattr(model, "stages", None)
    if not isinstance(stages, nn.ModuleList) or not all(hasattr(model, a) for a in ("stem", "pool", "head")):
        raise ValueError(
            f"block-wise distillation needs models with stem, stages, pool and head (the cnn family); "
            f"got {type(model).__name__}"
        )
    return len(stages)


class TeacherSuffix(nn.Module):
    """Teacher stages[k:] + pool + head: the frozen upper part of stepping stone k."""

    def __init__(self, teacher: nn.Module, k: int):
        super().__init__()
        self._teacher = [teacher]  # not a submodule: never trained, never checkpointed here
        self.k = k

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        t = self._teacher[0]
        for stage in t.stages[self.k:]:
            h = stage(h)
        v = t.pool(h).flatten(1)
        return t.head(t.dropout(v) if hasattr(t, "dropout") else v)


class BlockwiseObjective(nn.Module):
    """The step's distillation objective plus stepping-stone logit distillation.

    ``base`` is the step's :class:`DistillObjective` (a logit method; cached or live teacher
    logits); ``teacher`` is the source model, used for its stages and head.
    """

    def __init__(
        self,
        base: DistillObjective,
        student: nn.Module,
        teacher: nn.Module,
        input_shape: tuple[int, ...],
        weight: float = 1.0,
        stones: list[int] | None = None,
    ):
        super().__init__()
        if base.kind != "logit":
            raise ValueError(f"stepping stones are distilled by logits; {base.spec.name!r} is a {base.kind} method")
        n_student, n_teacher = stage_count(student), stage_count(teacher)
        self.base = base
        self.weight = float(weight)
        self.stones = list(stones) if stones else list(range(1, n_student + 1))
        for k in self.stones:
            if not 1 <= k <= n_student:
                raise ValueError(f"stepping stone {k}: the student has stages 1..{n_student}")
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self._teacher = [teacher]
        s_shapes = feature_names(student, input_shape)
        t_shapes = feature_names(teacher, input_shape)
        self.connectors = nn.ModuleDict()
        self.suffixes: dict[int, TeacherSuffix] = {}
        for k in self.stones:
            kt = min(k, n_teacher)  # the teacher stage whose output the suffix consumes
            self.connectors[str(k)] = FeatureAdapter(s_shapes[f"stage{k}"], t_shapes[f"stage{kt}"])
            self.suffixes[k] = TeacherSuffix(teacher, kt)
        self.teacher_calls = 0  # batches that ran (part of) the teacher

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        self.base.on_epoch_start(epoch, total_epochs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # frozen BatchNorm statistics whatever the objective's mode
        return self

    def stone_logits(self, student_features: dict[str, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Logits of every stepping stone from the student's stage outputs."""
        self.teacher.eval()
        return {k: self.suffixes[k](self.connectors[str(k)](student_features[f"stage{k}"])) for k in self.stones}

    def forward(self, model: nn.Module, batch: Batch):
        logits, feats = forward_with_features(model, batch.x)
        t_logits = self.base.teacher_logits(batch).detach()
        ce = F.cross_entropy(logits, batch.y)
        d = self.base.loss(logits, t_logits, batch.y)
        stone = self.stone_logits(feats)
        self.teacher_calls += 1
        d_stones = torch.stack([self.base.loss(z, t_logits, batch.y) for z in stone.values()]).mean()
        alpha = self.base.alpha
        loss = (1.0 - alpha) * ce + alpha * (d + self.weight * d_stones)
        return loss, logits, {"ce": ce.detach(), "distill": d.detach(), "stones": d_stones.detach()}
