"""Search trials of a language-model pipeline (``task: lm``, ``pipelines/lm.yaml``).

Before the search, :meth:`LMTask.ensure_inputs` makes the prepared text, the teacher and the
teacher's outputs under the pipeline root (``runs/lm`` after ``dvc repro pipelines/lm/dvc.yaml``)
if missing, with the LM stages themselves, and refuses a root made from another ``data`` or
``teacher`` section.

The top-k cache depends on ``distill.top_k`` and the temperature, and ``seqkd``'s continuations
on how they are sampled, and a search may vary all of them. A trial therefore reads the
pipeline's own ``teacher_outputs`` when its manifest has the trial's key
(:func:`~autokd.stages.lm.teacher_outputs_key`), and otherwise a variant made once by the
``cache_teacher`` stage under ``<root>/artifacts/teacher_outputs_search/<key hash>/`` (an
exclusive file lock makes concurrent trials of one key take turns; the second finds it made).
The pipeline's DVC-tracked outputs are never written.

A trial builds the student and objective with the ``distill`` stage's recipe and checkpoint
fingerprint, trains with the one training loop, and reports every epoch the validation
perplexity (``val_perplexity`` = exp of the validation NLL; the search objective
``student.perplexity``) and the test NLL, perplexity and bits/byte as ``evaluate`` computes them.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable

import torch

from autokd.search.hparams.tasks import SearchTask, TrialParts

VARIANTS = "teacher_outputs_search"


def _manifest(directory: Path) -> dict[str, Any] | None:
    from autokd.lineage.manifest import read_manifest

    try:
        return read_manifest(directory)
    except FileNotFoundError:
        return None


def teacher_outputs_dir(spec, layout, log: Callable[[str], None] = print) -> Path | None:
    """The folder holding ``spec``'s teacher outputs, made once if missing; None when the
    teacher runs live and nothing is cached."""
    from autokd.stages.lm import cache_teacher, teacher_outputs_key
    from autokd.utils.io import exclusive_lock

    if not spec.distill.reads_cache:
        return None
    key = teacher_outputs_key(spec)

    def holds(directory: Path) -> bool:
        m = _manifest(directory)
        return bool(m) and m.get("spec") == key and all((directory / f).exists() for f in m.get("content", []))

    if holds(layout.teacher_outputs):
        return layout.teacher_outputs
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    variant = layout.root / "artifacts" / VARIANTS / digest
    with exclusive_lock(layout.root / "artifacts" / VARIANTS / f"{digest}.lock"):
        if not holds(variant):
            log(f"[search] teacher outputs for {json.dumps(key, sort_keys=True)}: running cache_teacher once "
                f"into {variant}")
            cache_teacher(spec, layout, progress=False, out_dir=variant)
    return variant


class LMTask(SearchTask):
    name = "lm"
    val_key, test_key, val_mode = "val_perplexity", "test_perplexity", "min"
    metric_keys = {"test_perplexity": "perplexity", "test_nll": "nll", "test_bits_per_byte": "bits_per_byte",
                   "params": "params"}
    extra_final_keys = ("val_perplexity", "test_perplexity", "test_bits_per_byte")

    def ensure_inputs(self, spec, root: Path, pipeline_file: str | None, log: Callable[[str], None]):
        from autokd.lineage.manifest import file_sha256
        from autokd.models.artifact import MODEL_FILE
        from autokd.search.hparams.inputs import Inputs, section_issues
        from autokd.spec.document import dump_spec
        from autokd.spec.errors import SpecError
        from autokd.stages.layout import Layout
        from autokd.stages.lm import cache_teacher, prepare, train_teacher
        from autokd.train.topk_cache import TOPK_NAME

        layout = Layout(Path(root).resolve())
        data_m, teacher_m = _manifest(layout.data), _manifest(layout.model_dir("teacher"))
        issues = section_issues({"data": (data_m, dump_spec(spec.data), layout.data),
                                 "teacher": (teacher_m, dump_spec(spec.teacher), layout.model_dir("teacher"))},
                                "dvc repro pipelines/lm/dvc.yaml")
        if issues:
            raise SpecError(pipeline_file, issues)
        if data_m is None:
            log(f"[search] no prepared text under {layout.root}: running prepare once")
            prepare(spec, layout)
        if data_m is None or teacher_m is None:
            log(f"[search] no teacher under {layout.root}: running train_teacher once")
            train_teacher(spec, layout, progress=False)
        if data_m is None or teacher_m is None or _manifest(layout.teacher_outputs) is None:
            log(f"[search] no teacher outputs under {layout.root}: running cache_teacher once")
            cache_teacher(spec, layout, progress=False)
        outputs = teacher_outputs_dir(spec, layout, log)
        return Inputs(root=str(layout.root), data_sha256=_manifest(layout.data).get("data_sha256", ""),
                      teacher_sha256=file_sha256(layout.model_dir("teacher") / MODEL_FILE),
                      teacher_outputs_sha256=file_sha256(outputs / TOPK_NAME) if outputs else "")

    def build(self, spec, root: Path, inputs, device: torch.device) -> TrialParts:
        from autokd.data.text.prepare import load_prepared_text
        from autokd.evaluate.flops import count_macs
        from autokd.models.registry import count_params
        from autokd.stages.layout import Layout
        from autokd.stages.lm import build_lm_objective
        from autokd.stages.lm_init import initial_student

        layout = Layout(root)
        data = load_prepared_text(layout.data)
        outputs = teacher_outputs_dir(spec, layout)
        model = initial_student(spec, data, layout)  # seeds first: the distill stage's initial weights
        static = {"params": count_params(model),
                  "flops": count_macs(model, data.input_shape, dtype=torch.long),
                  "max_epochs": spec.student.train.epochs, "teacher_mode": self.pipeline_task().teacher_mode(spec),
                  "failed": False, "error": ""}
        objective = build_lm_objective(spec, model, data, layout, device, outputs_dir=outputs)
        return TrialParts(model, objective, data, static, self.fingerprint(spec, data.sha256, inputs))

    def fingerprint(self, spec, data_sha256: str, inputs) -> str:
        from autokd.stages import role_fingerprint
        from autokd.stages.lm import lm_distill_extra

        return role_fingerprint("student", spec, spec.student, data_sha256, lm_distill_extra(spec, inputs.teacher_sha256))

    def test_metrics(self, parts: TrialParts, spec, device: torch.device) -> dict[str, float]:
        from autokd.evaluate.lm import lm_metrics

        data = parts.data
        # the evaluate stage's NLL (same batches, same sums); no generation metrics in a trial
        m = lm_metrics(parts.model, None, data.test, bytes_per_token=data.meta["bytes_per_token"]["test"],
                       device=device, prompts=1, prompt_tokens=1, new_tokens=1, speed=False)
        return {"test_nll": m["nll"], "test_perplexity": m["perplexity"], "test_bits_per_byte": m["bits_per_byte"]}

    def repro_command(self, pipeline_rel: str) -> str:
        """``pipelines/lm.yaml``'s DVC file is ``pipelines/lm/dvc.yaml`` (the LM pipeline's layout)."""
        return f"dvc repro {Path(pipeline_rel).with_suffix('').as_posix()}/dvc.yaml"

    def epoch_metrics(self, rec: dict[str, float]) -> dict[str, float]:
        loss = rec.get("val_loss")
        return {"val_perplexity": math.exp(loss) if loss is not None and loss < 700 else float("inf")}


TASK = LMTask()
