"""Named features of any model, read during one forward pass: aliases and module paths.

A feature name (``distill.features[i].student`` / ``.teacher``) is one of:

* an **alias**: a name the model returns from ``forward(x, return_features=True)``. The
  built-in families have them (``cnn``/``resnet_s1``: ``stem``, ``stage1`` … ``stageN``,
  ``pool``; ``mlp``: ``hidden1`` … ``hiddenN``, ``penultimate``), and so may a user's model;
* a **module path**: a dotted name from ``model.named_modules()`` (``layers.1``,
  ``stages.0.0.conv1``, ``blocks.3``); the feature is that module's output, captured with a
  forward hook. Any ``nn.Module`` has them, whatever its ``forward`` signature.

Aliases are read from the model's own ``forward`` rather than mapped onto modules because not
every alias is a module's output: ``pool`` is the *flattened* pooled vector ``(C,)`` while the
``pool`` module returns ``(C, 1, 1)``. Where a name is both, the alias wins, so specs written
before module paths existed train exactly as before.

**Output rule.** A module returning a tensor gives that tensor; one returning a tuple or list
gives its first tensor element (an LSTM's ``(output, (h, c))`` gives ``output``); one
returning a mapping (a Hugging Face ``ModelOutput``) gives its first tensor value. A module
called several times in one forward (a shared activation) gives its last call's output. The
tensor is copied when the module returns it, so a later in-place operation (a following
``ReLU(inplace=True)``) does not change the feature.
A module that returns no tensor, or does not run, has no feature.

**Hooks.** They are registered for one call only and removed in a ``finally`` (nothing leaks
across batches, epochs or models, even when the forward raises); they return ``None``, so the
logits are exactly those of ``model(x)``; they keep the graph (the student's feature term
back-propagates into the hooked module) and work under ``torch.no_grad`` and in eval mode
(the teacher).
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Iterable

import torch
from torch import nn

__all__ = ["accepts_return_features", "first_tensor", "forward_features", "feature_shapes"]


def accepts_return_features(model: nn.Module) -> bool:
    """Whether ``model.forward`` declares a ``return_features`` parameter (then it has aliases)."""
    return _forward_takes_features(type(model))


@lru_cache(maxsize=None)
def _forward_takes_features(cls: type) -> bool:
    """Per class, once: this runs on every training batch of a feature method."""
    try:
        params = inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False
    return "return_features" in params


def first_tensor(out: Any) -> torch.Tensor | None:
    """The feature a module's output gives (see the output rule above), or None."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        values: Iterable[Any] = out
    elif isinstance(out, Mapping):
        values = out.values()
    else:
        return None
    for v in values:
        if isinstance(v, torch.Tensor):
            return v
    return None


def _submodule(model: nn.Module, name: str) -> nn.Module | None:
    """The module at dotted path ``name`` (not the root), or None: a walk down the path, not a
    scan of every module (this runs on every batch)."""
    if not name:
        return None
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _run(model: nn.Module, x: torch.Tensor, paths: Iterable[str], keep, **kwargs) -> tuple[torch.Tensor, dict[str, Any]]:
    """``model(x)`` (with aliases when it has them), ``keep(name, output)`` called by a hook on
    each module in ``paths``; every hook is removed before returning."""
    handles = []
    try:
        for name in paths:
            module = _submodule(model, name)
            if module is not None:
                handles.append(module.register_forward_hook(lambda _m, _inp, out, _name=name: keep(_name, out)))
        if accepts_return_features(model):
            out = model(x, return_features=True, **kwargs)
            if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
                return out[0], dict(out[1])
            return out, {}
        return model(x, **kwargs), {}
    finally:
        for h in handles:
            h.remove()


def forward_features(
    model: nn.Module, x: torch.Tensor, names: Iterable[str], **kwargs: Any
) -> tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]:
    """The logits of ``model(x, **kwargs)`` and the features ``names`` (aliases or module paths);
    ``kwargs``: a language model's ``segments`` for packed windows.

    Raises ``ValueError`` naming a feature the model does not have (validate names first with
    :func:`feature_shapes`).
    """
    names = list(dict.fromkeys(names))
    captured: dict[str, torch.Tensor | None] = {}

    def keep(name: str, out: Any) -> None:
        t = first_tensor(out)
        # a copy, taken in the hook: a later in-place op (ReLU(inplace=True)) must not change it;
        # the copy is differentiable, so the feature term still reaches the module
        captured[name] = t.clone() if t is not None else None

    logits, aliases = _run(model, x, names, keep, **kwargs)
    feats: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name in names:
        t = aliases.get(name)
        if t is None:
            t = captured.get(name)
        if t is None:
            why = "produced no tensor" if name in captured else "is neither an alias nor a module path that ran"
            raise ValueError(f"{type(model).__name__} has no feature {name!r}: it {why}")
        feats[name] = t
    return logits, feats


def feature_shapes(model: nn.Module, input_shape: tuple[int, ...],
                   dtype: torch.dtype = torch.float32) -> dict[str, tuple[int, ...]]:
    """Every feature name of ``model`` with its shape (batch dim dropped): aliases first, then the
    module paths whose module returns a tensor, in ``named_modules()`` order.

    One dry forward of a zero batch of 2 (``dtype``: ``torch.long`` for token ids) in eval mode
    without gradient (the mode is restored; no random number is drawn), on the device of the
    model's parameters.
    """
    shapes: dict[str, tuple[int, ...]] = {}

    def keep(name: str, out: Any) -> None:
        t = first_tensor(out)
        if t is not None and t.dim() > 0:
            shapes[name] = tuple(t.shape[1:])

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            paths = [n for n, _ in model.named_modules() if n]
            _, aliases = _run(model, torch.zeros(2, *input_shape, device=device, dtype=dtype), paths, keep)
    finally:
        model.train(was_training)
    out = {k: tuple(v.shape[1:]) for k, v in aliases.items() if isinstance(v, torch.Tensor)}
    out.update({k: shapes[k] for k in paths if k in shapes and k not in out})
    return out
