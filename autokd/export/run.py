"""``export_artifact``: one trained-model artifact to a folder in one format, checked, with a model card.

The output folder gets::

    model.safetensors | model.onnx | model.ts   the model in the chosen format
    config.json      the recipe to rebuild it with autokd (family, params, input shape, classes),
                     the input/output names and shapes, class names and input normalisation
    source_manifest.json  the source artifact's manifest, byte for byte
    export.json      format, file hashes, source and data hashes, check figures, package versions
    MODEL_CARD.md    teacher, data, method and hyperparameters, metrics, lineage, check
    manifest.json    the export's own lineage manifest (kind ``export``, parent: the source
                     artifact), so ``autokd lineage graph|verify`` see it as a child of the student

Each file is written atomically and holds no date, wall time or absolute path, so a DVC stage
that runs the export gives the same bytes on a rerun (tested for every format).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autokd.export.card import render_card
from autokd.export.check import check_export
from autokd.export.formats import FILES, FORMATS, INPUT_NAME, LOADERS, OUTPUT_NAME, WRITERS, runtime_name
from autokd.export.source import ExportInputError, Source, open_source
from autokd.lineage.graph import lineage_tree
from autokd.lineage.manifest import MANIFEST, file_sha256, package_versions, write_manifest

SOURCE_MANIFEST = "source_manifest.json"
from autokd.models.registry import count_params
from autokd.utils.io import atomic_path, atomic_write_json, atomic_write_text

PACKAGES = ("autokd", "torch", "numpy", "safetensors", "onnx", "onnxruntime", "onnxscript")
DEFAULT_TOLERANCE = 1e-4


class ExportCheckFailed(RuntimeError):
    """The exported model disagrees with PyTorch on the test split (exit 1); ``record`` has the figures."""

    def __init__(self, message: str, record: dict[str, Any]):
        super().__init__(message)
        self.record = record


def _config(src: Source, fmt: str) -> dict[str, Any]:
    r = src.recipe
    meta = src.data.meta
    return {
        "format": fmt,
        "model_file": FILES[fmt],
        "model": {"name": r["name"], "params": r["params"], "input_shape": r["input_shape"],
                  "num_classes": r["num_classes"]},
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", *r["input_shape"]]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", r["num_classes"]]},
        "class_names": meta.get("class_names", []),
        "normalization": meta.get("normalization", {"enabled": False}),
        "source": {"artifact": src.manifest.get("artifact"), "kind": src.kind, "sha256": src.manifest["sha256"]},
    }


def _exporter_details(fmt: str, path: Path) -> dict[str, Any]:
    if fmt == "onnx":
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
        return {"exporter": "torch.onnx.export (dynamo, torch.export-based)", "opset": opsets.get("ai.onnx"),
                "ir_version": proto.ir_version, "dynamic axes": "batch (input axis 0, logits axis 0)"}
    if fmt == "torchscript":
        return {"exporter": "torch.jit.trace", "dynamic axes": "batch (traced at batch 2; checked on the test split)"}
    return {"exporter": "copy of the artifact's model.safetensors"}


def _read_evaluation(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportInputError(f"{path} is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else None


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name  # outside the project: a bare name keeps the card free of absolute paths


def export_artifact(
    artifact: str | Path,
    fmt: str,
    out: str | Path,
    *,
    root: str | Path = ".",
    data: str | Path | None = None,
    metrics: str | Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Export ``artifact`` as ``fmt`` into ``out``, check it on the test split, write the card.

    Returns the export record (``export.json``). Raises :class:`ExportInputError` for bad input
    (before writing anything), :class:`autokd.export.formats.ExportFailed` when the exporter
    cannot convert the model, and :class:`ExportCheckFailed` (after writing, so the figures
    can be read) when the exported model disagrees with PyTorch.
    """
    if fmt not in FORMATS:
        raise ExportInputError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    if not tolerance >= 0:
        raise ExportInputError(f"tolerance must be a number >= 0, found {tolerance}")
    root = Path(root)
    src = open_source(artifact, root, data)
    out = Path(out)
    if out.resolve() == src.path.resolve():
        raise ExportInputError(f"--out {out} is the artifact folder itself; choose another folder")
    metrics_path = Path(metrics) if metrics is not None else root / "reports" / "metrics.json"
    if metrics is not None and not metrics_path.is_file():
        raise ExportInputError(f"no metrics file at {metrics_path}")
    evaluation = _read_evaluation(metrics_path)
    tree = lineage_tree(src.path, root)

    out.mkdir(parents=True, exist_ok=True)
    model = src.load_model()
    meta = {"autokd.source_artifact": str(src.manifest.get("artifact")), "autokd.source_kind": src.kind,
            "autokd.source_sha256": src.manifest["sha256"],
            "autokd.model": json.dumps(_config(src, fmt)["model"], sort_keys=True)}
    model_path = WRITERS[fmt](src.model_file, model, tuple(src.recipe["input_shape"]), out, meta)
    config = _config(src, fmt)
    atomic_write_json(out / "config.json", config)
    with atomic_path(out / SOURCE_MANIFEST) as tmp:
        tmp.write_bytes(src.manifest_bytes)

    runner = LOADERS[fmt](model_path)
    check = {"split": "test", "runtime": runtime_name(fmt),
             **check_export(model, runner, src.data.test.x, tolerance)}
    data_parent = next(iter(src.parents("dataset")), None)
    record = {
        "format": fmt,
        "model_file": FILES[fmt],
        "model": config["model"],
        "parameters": count_params(model, trainable_only=False),
        "source": config["source"],
        "data": {"artifact": data_parent["artifact"] if data_parent else _relative(src.data_path, root),
                 "manifest_sha256": data_parent["sha256"] if data_parent else None,
                 "content_sha256": src.data.sha256, "dataset": src.data.meta.get("source")},
        "check": check,
        "exporter": _exporter_details(fmt, model_path),
        "files": {name: file_sha256(out / name) for name in (FILES[fmt], "config.json", SOURCE_MANIFEST)},
        "packages": package_versions(PACKAGES),
    }
    atomic_write_json(out / "export.json", record)
    card = render_card(record, src.manifest, tree, src.data.meta, evaluation, _relative(out, root))
    atomic_write_text(out / "MODEL_CARD.md", card)
    write_manifest(out, kind="export", content=[FILES[fmt], "config.json", SOURCE_MANIFEST, "export.json", "MODEL_CARD.md"],
                   parents=[src.path], spec={"export": {"format": fmt, "tolerance": tolerance}},
                   metrics={"max_abs_diff": check["max_abs_diff"], "argmax_agreement": check["argmax_agreement"]},
                   root=root if out.resolve().is_relative_to(root.resolve()) else out.parent)  # never an absolute path
    if not check["passed"]:
        raise ExportCheckFailed(check_summary(record), record)
    return record


def check_summary(record: dict[str, Any]) -> str:
    """One line with the check figures."""
    c = record["check"]
    diff = "non-finite" if c["max_abs_diff"] is None else f"{c['max_abs_diff']:.3g}"
    verdict = "ok" if c["passed"] else "FAILED"
    return (f"{record['format']} check on {c['samples']} test samples with {c['runtime']}: max abs logit difference "
            f"{diff} (tolerance {c['tolerance']:g}), argmax agreement {100 * c['argmax_agreement']:.2f}% "
            f"({c['mismatches']} mismatches): {verdict}")
