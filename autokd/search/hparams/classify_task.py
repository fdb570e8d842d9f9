"""Search trials of a classification pipeline (``pipelines/default.yaml``): the default task.

A trial reads the prepared data and the teacher's cached logits under the pipeline root,
builds the student and the objective with the stages' own recipe
(:func:`~autokd.stages.build_role_model`, :func:`~autokd.stages.build_distill_objective`),
and reports the test accuracy, NLL and ECE exactly as the ``evaluate`` stage computes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from autokd.search.hparams.tasks import SearchTask, TrialParts


def _latency(model, input_shape, spec) -> float:
    """Batch-1 CPU latency of the freshly built student. The timing draws its input from a
    private generator and restores the model's mode and device, so the global RNG (and thus
    the trial's batches) is untouched, as in the pipeline."""
    from autokd.evaluate.timing import latency_ms

    return latency_ms(model, input_shape, runs=spec.evaluate.latency_runs, warmup=spec.evaluate.latency_warmup,
                      threads=spec.evaluate.latency_threads)


def build_trial(spec, data, layout, device):
    """Student and objective exactly as ``autokd.stages.distill`` builds them (same seed, same
    order of random draws), plus the student's size and latency (measured without touching
    the global random state)."""
    from autokd.evaluate.metrics import count_flops
    from autokd.models.registry import count_params
    from autokd.stages import build_distill_objective, build_role_model, teacher_mode

    model = build_role_model(spec.student, data)
    static = {
        "params": count_params(model),
        "flops": count_flops(model, tuple(data.input_shape)),
        "latency_ms": _latency(model, data.input_shape, spec),
        "max_epochs": spec.student.train.epochs,
        "teacher_mode": teacher_mode(spec),
        "failed": False,
        "error": "",
    }
    objective = build_distill_objective(spec, model, data, layout, device)
    return model, objective, static


def test_split_metrics(logits, y, ece_bins: int) -> dict[str, float]:
    """Test accuracy, NLL and ECE exactly as the evaluate stage computes them (a trial's DVC
    experiment records them under the stage's keys)."""
    from autokd.evaluate.metrics import accuracy, ece, nll

    return {"test_accuracy": accuracy(logits, y), "test_nll": nll(logits, y), "test_ece": ece(logits, y, ece_bins)}


class ClassifyTask(SearchTask):
    name = "classify"
    val_key, test_key, val_mode = "val_accuracy", "test_accuracy", "max"
    metric_keys = {"test_accuracy": "accuracy", "test_nll": "nll", "test_ece": "ece", "params": "params",
                   "flops": "flops", "latency_ms": "latency_ms"}

    def ensure_inputs(self, spec, root: Path, pipeline_file: str | None, log: Callable[[str], None]):
        from autokd.search.hparams.inputs import ensure_inputs

        return ensure_inputs(spec, root, pipeline_file, log=log)

    def build(self, spec, root: Path, inputs, device: torch.device) -> TrialParts:
        from autokd.data.prepare import load_prepared
        from autokd.stages import Layout

        layout = Layout(root)
        data = load_prepared(layout.data)
        model, objective, static = build_trial(spec, data, layout, device)
        return TrialParts(model, objective, data, static, self.fingerprint(spec, data.sha256, inputs))

    def fingerprint(self, spec, data_sha256: str, inputs) -> str:
        # the distill stage's own checkpoint fingerprint: a trial and `dvc repro` of the same spec resume alike
        from autokd.stages import distill_extra, role_fingerprint

        return role_fingerprint("student", spec, spec.student, data_sha256, distill_extra(spec, inputs.teacher_sha256))

    def test_metrics(self, parts: TrialParts, spec, device: torch.device) -> dict[str, float]:
        from autokd.evaluate.metrics import predict_logits

        logits = predict_logits(parts.model, parts.data.test.x, device).cpu()
        return test_split_metrics(logits, parts.data.test.y, spec.evaluate.ece_bins)


TASK = ClassifyTask()
