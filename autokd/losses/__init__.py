"""The distillation loss catalog: a registry of ``nn.Module`` losses usable in any training loop.

>>> from autokd.losses import create, available
>>> kd = create("kd", temperature=4.0)
>>> # loss = ce_weight * F.cross_entropy(s_logits, y) + kd_weight * kd(s_logits, t_logits, y)

Kinds and call signatures (see :data:`autokd.losses.registry.KINDS`):

* ``logit``    — ``loss(student_logits, teacher_logits, targets)``: kd, dkd, cakd, normkd, lskd, clkd, ctkd
* ``label``    — same call, teacher ignored (``needs_teacher=False``): ls
* ``feature``  — ``loss(student_feature, teacher_feature)``, same shapes (adapt first): fitnet, at, nd
* ``relation`` — ``loss(student_feature, teacher_feature)``, same batch size only: rkd, pkt, sp
* ``feature``/``relation`` on sequences (transformers): hidden_mse, hidden_cos (feature); attn_kl,
  minilm, ckd_wr, ckd_ltr (relation) — :mod:`autokd.losses.representation`
* ``token``    — ``loss(student_logits, teacher_logits, mask)`` over ``(B, T, V)`` language-model logits,
  masked mean over tokens, no T² factor: fkl, rkl, jsd, tvd, skl, srkl, akl

Each loss returns the distillation term alone (batch-reduced as the authors' code does, with the
T² factor where the method scales by temperature); the caller adds cross-entropy with its own
weight. Teacher inputs are detached inside every loss. Optional hooks: ``on_epoch_start(epoch,
total_epochs)`` (0-based epoch; DKD warm-up, CTKD schedule) and learnable parameters exposed
through ``parameters()`` (CTKD's temperature) for the optimizer.

A user's own loss class is accepted wherever a name is, by import path:
``create("my_pkg.losses:MyLoss", scale=2.0)``; the loss protocol it must follow is in
:mod:`autokd.losses.registry` (an ``nn.Module`` with an optional ``kind`` and ``Params``).

This package imports only the standard library, torch, pydantic and
:mod:`autokd.utils.imports` (standard library only).
"""

from __future__ import annotations

from .registry import LossConfigError, LossImportError, LossSpec, available, create, get_spec, register

# Importing the family modules registers their losses.
from . import logit as _logit  # noqa: F401,E402  (kd)
from . import decoupled as _decoupled  # noqa: F401,E402  (dkd, cakd)
from . import normalized as _normalized  # noqa: F401,E402  (normkd, lskd)
from . import class_aware as _class_aware  # noqa: F401,E402  (clkd)
from . import curriculum as _curriculum  # noqa: F401,E402  (ctkd)
from . import label as _label  # noqa: F401,E402  (ls)
from . import feature as _feature  # noqa: F401,E402  (fitnet, at, nd)
from . import relation as _relation  # noqa: F401,E402  (rkd, pkt, sp)
from . import token as _token  # noqa: F401,E402  (fkl, rkl, jsd, tvd, skl, srkl, akl)
from . import representation as _representation  # noqa: F401,E402  (hidden_mse, hidden_cos, attn_kl, minilm, ckd_*)

__all__ = ["create", "available", "get_spec", "register", "LossSpec", "LossConfigError", "LossImportError"]
