"""``autokd export``: a trained model as safetensors, ONNX or TorchScript (classifiers) or a
``transformers`` folder (language models), checked, with a model card.

    autokd export artifacts/student --format onnx --out artifacts/export
    autokd export runs/lm/artifacts/student --format hf --out runs/lm/export --root .
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autokd.cli.errors import fail, guard, unknown_choice

FORMATS = ("safetensors", "onnx", "torchscript", "hf")  # autokd.export.FORMATS and hf, without importing torch


def export(
    artifact: Path = typer.Argument(..., help="trained-model artifact folder (e.g. artifacts/student)"),
    format: str = typer.Option(..., "--format", "-f", help="safetensors | onnx | torchscript (classifiers) | hf (language models)"),  # noqa: A002
    out: Path = typer.Option(..., "--out", "-o", help="output folder"),
    root: Path = typer.Option(Path("."), help="root that artifact paths in manifests are relative to"),
    data: Optional[Path] = typer.Option(None, help="prepared data folder (default: the artifact's dataset parent)"),
    metrics: Optional[Path] = typer.Option(
        None, help="evaluation metrics JSON for the model card (default: ROOT/reports/metrics.json when present)"),
    tolerance: float = typer.Option(1e-4, help="largest absolute logit difference the check accepts"),
) -> None:
    """Export a model, check it against PyTorch on the test split, and write MODEL_CARD.md.

    Exit 0 when the exported model gives the same top-1 class on every test sample and logits
    within the tolerance; 1 when it does not (the figures are printed and written); 2 on bad input.
    """
    if format not in FORMATS:
        unknown_choice("format", format, FORMATS)
    from autokd.export import ExportCheckFailed, ExportFailed, ExportInputError, check_summary, export_artifact

    if format == "hf":
        from autokd.export.hf import export_hf, hf_summary

        run, args, summary = export_hf, (artifact, out), hf_summary
    else:
        run, args, summary = export_artifact, (artifact, format, out), check_summary
    try:
        record = guard(run, *args, root=root, data=data, metrics=metrics, tolerance=tolerance,
                       bad_input=(ExportInputError,))
    except ExportCheckFailed as exc:
        fail(str(exc), 1)
    except ExportFailed as exc:
        fail(str(exc), 1)
    typer.echo(summary(record))
    if format == "hf":
        typer.echo(f"wrote {out}: config.json, model.safetensors, tokenizer.json, tokenizer_config.json, README.md "
                   "(load with transformers.AutoModelForCausalLM.from_pretrained)")
    else:
        typer.echo(f"wrote {out}/{record['model_file']}, config.json, manifest.json, export.json, MODEL_CARD.md")
