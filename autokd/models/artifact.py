"""Trained-model artifacts: weights in safetensors, the recipe in the file's metadata.

A model file is self-describing (family, params, input shape, classes), so loading it
rebuilds the architecture from the registry and reads tensors; nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import safe_open
from torch import nn

from autokd.models.registry import build_model
from autokd.utils.io import load_state_tensors, save_safetensors, state_tensors

MODEL_FILE = "model.safetensors"


def save_model(
    path: str | Path, model: nn.Module, name: str, params: dict[str, Any], input_shape, num_classes: int
) -> None:
    recipe = {"name": name, "params": params, "input_shape": list(input_shape), "num_classes": int(num_classes)}
    tensors = state_tensors(model)  # a tied head is stored once (its embedding)
    save_safetensors(path, tensors, metadata={"autokd_model": json.dumps(recipe)})


def read_recipe(path: str | Path) -> dict[str, Any]:
    with safe_open(str(path), framework="pt") as fh:
        return json.loads(fh.metadata()["autokd_model"])


def load_model(path: str | Path) -> nn.Module:
    """Rebuild and load a model saved by :func:`save_model` (eval mode, CPU)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    tensors = {}
    with safe_open(str(path), framework="pt") as fh:
        recipe = json.loads(fh.metadata()["autokd_model"])
        for key in fh.keys():
            tensors[key] = fh.get_tensor(key)
    model = build_model(recipe["name"], recipe["params"], tuple(recipe["input_shape"]), recipe["num_classes"])
    load_state_tensors(model, tensors)
    return model.eval()
