"""Per-epoch training checkpoints in safetensors (no pickle), written atomically.

One file holds every tensor (model, optimizer state, extra modules, RNG states); its
safetensors metadata holds a JSON document with the rest (epoch, history, optimizer
hyperparameters, the AMP grad scaler's state, the run's fingerprint).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from autokd.utils.io import load_state_tensors, save_safetensors, state_tensors

CKPT_NAME = "last.safetensors"


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain_state: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain_state.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain_state}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, extra in meta.get("plain_state", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: nn.Module | None,
    meta: dict[str, Any],
    scaler: torch.amp.GradScaler | None = None,
    more: dict[str, torch.Tensor] | None = None,
    state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None,
) -> None:
    """Write model + optimizer + extra-module (+ grad-scaler) state and ``meta`` atomically to ``path``
    (``more``: further tensors, e.g. every data-parallel worker's RNG state; ``state``: the model's
    tensors and the optimizer's state dict gathered already, from sharded workers)."""
    model_tensors, opt_sd = state if state is not None else (state_tensors(model), optimizer.state_dict())
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model_tensors.items():  # tied aliases kept once
        tensors[f"model.{k}"] = v
    if extra is not None:
        for k, v in extra.state_dict().items():
            tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    opt_tensors, opt_meta = _flatten_optimizer(opt_sd)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda{i}"] = s
    tensors.update(more or {})
    doc = dict(meta)
    doc["optimizer"] = opt_meta
    if scaler is not None and scaler.is_enabled():
        # Python floats and ints (scale, growth tracker, factors, interval): exact through JSON
        doc["grad_scaler"] = scaler.state_dict()
    save_safetensors(path, tensors, metadata={"autokd": json.dumps(doc)}, fsync=False)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint's tensors and metadata (no code is executed)."""
    tensors = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["autokd"])
        for key in fh.keys():
            tensors[key] = fh.get_tensor(key)
    return tensors, meta


def restore(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: nn.Module | None,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Load a checkpoint's state into live objects (model, optimizer, extra, grad scaler, RNG).

    An enabled ``scaler`` gets the saved scale and growth tracker; a checkpoint without
    them (written without AMP) leaves it at its initial state.
    """
    load_state_tensors(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if extra is not None:
        extra_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
        if extra_sd:
            extra.load_state_dict(extra_sd)
    opt_t = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    optimizer.load_state_dict(_unflatten_optimizer(opt_t, meta["optimizer"]))
    if scaler is not None and scaler.is_enabled() and "grad_scaler" in meta:
        scaler.load_state_dict(meta["grad_scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda")), key=lambda k: int(k[len("rng.cuda"):]))
        states = [tensors[k] for k in cuda_keys]
        if states:
            torch.cuda.set_rng_state_all(states)


BEST_NAME = "best.safetensors"


class BestWeights:
    """The weights of the best epoch so far (``train.keep: best``): a safetensors file beside
    the checkpoint, written atomically, or a copy in memory for a run without a checkpoint
    folder."""

    def __init__(self, path: Path | None):
        self.path = path
        self._copy: dict[str, torch.Tensor] | None = None

    def save(self, model: nn.Module, tensors: dict[str, torch.Tensor] | None = None) -> None:
        """Keep ``model``'s weights (``tensors``: gathered already, from sharded workers)."""
        tensors = {k: v.detach().cpu().clone() for k, v in (tensors or state_tensors(model)).items()}
        if self.path is None:
            self._copy = tensors
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            save_safetensors(self.path, tensors)

    def load(self, model: nn.Module) -> None:
        if self.path is None:
            tensors = self._copy
        else:
            from safetensors.torch import load_file

            tensors = load_file(str(self.path))
        if tensors is None:
            raise RuntimeError("no best weights were saved")
        device = next(model.parameters()).device
        load_state_tensors(model, {k: v.to(device) for k, v in tensors.items()})
