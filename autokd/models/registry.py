"""The model registry: family name -> (builder, pydantic parameter model)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import torch
from pydantic import BaseModel
from torch import nn

from autokd.utils.imports import ImportPathError
from autokd.utils.imports import import_object as _import_object
from autokd.utils.imports import is_import_path as _is_import_path


class ModelBuildError(ValueError):
    """A model could not be built from its spec (unknown family, bad import path, shapes)."""


@dataclass(frozen=True)
class ModelFamily:
    name: str
    params: type[BaseModel]
    build: Callable[..., nn.Module]
    summary: str
    task: str = "classify"  # "classify": input -> (B, classes); "lm": ids (B, T) -> (B, T, vocab)


MODELS: dict[str, ModelFamily] = {}


TASKS = ("classify", "lm")


def register_model(name: str, params: type[BaseModel], task: str = "classify"):
    """Register ``build(params, input_shape, num_classes) -> nn.Module`` under ``name``.

    ``task="lm"`` marks a language-model family: ``input_shape`` is ``(context,)`` and
    ``num_classes`` the vocabulary size."""
    if task not in TASKS:
        raise ValueError(f"model family {name!r}: task must be one of {TASKS}, got {task!r}")

    def deco(fn: Callable[..., nn.Module]):
        if name in MODELS:
            raise ValueError(f"model family {name!r} registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        MODELS[name] = ModelFamily(name=name, params=params, build=fn, summary=summary, task=task)
        return fn

    return deco


def is_import_path(name: str) -> bool:
    """``pkg.mod:Class`` names a user's own model class (:mod:`autokd.utils.imports`)."""
    return _is_import_path(name)


def import_object(path: str) -> Any:
    """The class ``path`` names; :class:`ModelBuildError` saying why it cannot be imported."""
    try:
        return _import_object(path, "model")
    except ImportPathError as exc:
        raise ModelBuildError(str(exc)) from exc


def build_model(
    name: str, params: BaseModel | dict[str, Any] | None, input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    """Build a model of family ``name`` for inputs of ``input_shape`` (no batch dim)."""
    if is_import_path(name):
        cls = import_object(name)
        kwargs = dict(params or {}) if not isinstance(params, BaseModel) else params.model_dump()
        try:
            model = cls(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)
        except TypeError as exc:
            raise ModelBuildError(
                f"custom model {name!r} must accept (input_shape, num_classes, **params): {exc}"
            ) from exc
        if not isinstance(model, nn.Module):
            raise ModelBuildError(f"custom model {name!r} did not return an nn.Module")
        return model
    if name not in MODELS:
        raise ModelBuildError(f"unknown model family {name!r}; available: {sorted(MODELS)}")
    fam = MODELS[name]
    if params is None:
        params = fam.params()
    elif isinstance(params, dict):
        params = fam.params(**params)
    return fam.build(params, tuple(input_shape), int(num_classes))


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def forward_with_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]:
    """Logits and the model's feature aliases (``forward(x, return_features=True)``); models that
    do not expose any give an empty dict. Module paths too: :func:`autokd.models.features.forward_features`."""
    try:
        out = model(x, return_features=True)
    except TypeError:
        return model(x), OrderedDict()
    if isinstance(out, tuple) and len(out) == 2:
        return out[0], out[1]
    return out, OrderedDict()


def feature_names(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Names and shapes (without batch dim) of a model's feature aliases. Every feature name,
    module paths included: :func:`autokd.models.features.feature_shapes`."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        _, feats = forward_with_features(model, torch.zeros(2, *input_shape))
    model.train(was_training)
    return {k: tuple(v.shape[1:]) for k, v in feats.items()}
