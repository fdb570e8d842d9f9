"""What an export reads: a trained-model artifact folder, its manifest, its prepared data.

An artifact folder (``artifacts/student``, ``artifacts/teacher``, a chain's ``runs/x/artifacts/ta``)
holds ``model.safetensors`` (self-describing: :mod:`autokd.models.artifact`) and
``manifest.json`` (:mod:`autokd.lineage.manifest`). The test split comes from the artifact's
``dataset`` parent, found under ``root`` by the path its manifest records, unless ``data``
names the prepared folder. Anything missing or malformed is an :class:`ExportInputError`
(the CLI's "bad input", exit 2), raised before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from autokd.data.prepare import PreparedData, load_prepared
from autokd.lineage.manifest import MANIFEST, file_sha256
from autokd.models.artifact import MODEL_FILE, load_model, read_recipe


class ExportInputError(ValueError):
    """The export cannot start: not an artifact folder, no manifest, no prepared data, bad option."""


@dataclass
class Source:
    """One trained model to export, with what its model card and check need."""

    path: Path  # the artifact folder
    root: Path  # artifact paths recorded in manifests are relative to it
    manifest: dict[str, Any]
    manifest_bytes: bytes  # copied verbatim into the export
    recipe: dict[str, Any]  # family, params, input_shape, num_classes (model.safetensors metadata)
    data: PreparedData
    data_path: Path

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", "model"))

    def load_model(self) -> nn.Module:
        """The source model, rebuilt from its safetensors file (eval mode, CPU)."""
        return load_model(self.model_file)

    def parents(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.manifest.get("parents", []) if kind is None or p.get("kind") == kind]


def _resolve(path: str | Path, root: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() or p.exists() else root / p


def open_artifact(artifact: str | Path, root: Path) -> tuple[Path, dict[str, Any], bytes, dict[str, Any]]:
    """``(folder, manifest, manifest bytes, recipe)`` of a model artifact, checked (the model file
    matches its manifest); :class:`ExportInputError` saying what is wrong."""
    path = _resolve(artifact, root)
    if not path.is_dir():
        raise ExportInputError(f"{artifact} is not an artifact folder (expected a folder holding "
                               f"{MODEL_FILE} and {MANIFEST}, e.g. artifacts/student)")
    if not (path / MODEL_FILE).is_file():
        raise ExportInputError(f"{artifact} is not a model artifact: no {MODEL_FILE} in it")
    if not (path / MANIFEST).is_file():
        raise ExportInputError(f"{artifact} has no {MANIFEST} (its lineage is unknown; re-run the stage that made it)")
    name = MANIFEST
    if (path / "source_manifest.json").is_file():  # a safetensors export: the model's own manifest rode along
        name = "source_manifest.json"
    raw = (path / name).read_bytes()
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ExportInputError(f"{path / name} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or "sha256" not in manifest:
        raise ExportInputError(f"{path / name} is not an autokd manifest (no sha256)")
    recorded = (manifest.get("files") or {}).get(MODEL_FILE)
    if recorded and recorded != file_sha256(path / MODEL_FILE):
        raise ExportInputError(f"{path / MODEL_FILE} does not match the hash its manifest records "
                               "(the model was changed after the manifest was written)")
    try:
        recipe = read_recipe(path / MODEL_FILE)
    except Exception as exc:  # noqa: BLE001 (a foreign or damaged safetensors file)
        raise ExportInputError(f"{path / MODEL_FILE} is not an autokd model file: {exc}") from exc
    return path, manifest, raw, recipe


def is_lm_recipe(recipe: dict[str, Any]) -> bool:
    from autokd.models.registry import MODELS

    family = MODELS.get(str(recipe.get("name")))
    return family is not None and family.task == "lm"


def open_source(artifact: str | Path, root: str | Path = ".", data: str | Path | None = None) -> Source:
    """Check and open ``artifact``; :class:`ExportInputError` saying what is wrong."""
    root = Path(root)
    path, manifest, raw, recipe = open_artifact(artifact, root)
    if is_lm_recipe(recipe):
        raise ExportInputError(f"{artifact} is a language model (family {recipe['name']}): export it with "
                               "--format hf (a transformers folder); onnx, torchscript and safetensors exports "
                               "are for classifiers")
    if data is not None:
        data_path = _resolve(data, root)
    else:
        datasets = [p for p in manifest.get("parents", []) if p.get("kind") == "dataset"]
        if not datasets:
            raise ExportInputError(f"{path / MANIFEST} names no dataset parent; pass --data DIR (a prepared data folder)")
        data_path = root / datasets[0]["artifact"]
    try:
        prepared = load_prepared(data_path)
    except (FileNotFoundError, ValueError) as exc:
        raise ExportInputError(f"cannot load the test split: {exc}") from exc
    if list(prepared.input_shape) != list(recipe["input_shape"]):
        raise ExportInputError(f"the data in {data_path} has inputs of shape {list(prepared.input_shape)}, "
                               f"the model expects {recipe['input_shape']}")
    if len(prepared.test) == 0:
        raise ExportInputError(f"the test split in {data_path} is empty: nothing to check the export on")
    return Source(path=path, root=root, manifest=manifest, manifest_bytes=raw, recipe=recipe, data=prepared,
                  data_path=data_path)
