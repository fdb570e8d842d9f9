"""Multi-stage distillation pipelines: TAKD, born-again networks, block-wise stepping stones.

A chain (:class:`autokd.spec.chain.ChainSpec`) runs these stages under one root
(``runs/<name>`` by default), each a DVC stage of ``pipelines/<name>/dvc.yaml``::

    prepare     artifacts/data                      (autokd.stages.prepare)
    teacher     artifacts/teacher, teacher_outputs  (autokd.stages.train_teacher)
    <step>      artifacts/<step>, <step>_outputs    distilled from the previous model
    baseline    artifacts/baseline                  the final step's model on labels alone (optional)
    direct      artifacts/direct                    the final step distilled from the teacher (optional)
    evaluate    reports/metrics.json, reports/plots

Each step reads its source model's cached train-split logits (computed once, right after the
source was trained, exactly as ``train_teacher`` does for the teacher) and its manifest's
parents are the data and its source, so ``autokd lineage show runs/<name>/artifacts/<last>
--root runs/<name>`` prints the whole chain back to the data.

``evaluate`` writes one metrics file: every model's test metrics, and per step its accuracy,
its gain over its source, its gain over the labels-only baseline of the final student's
architecture (``baseline: true``; like-for-like only for steps of that architecture, i.e.
the final student and every born-again generation), and for the final step ``kd_gain``
(final - baseline) and ``direct_gain`` (final - direct: what the intermediate steps bought).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autokd.data.prepare import PreparedData, load_prepared
from autokd.lineage.manifest import file_sha256, write_manifest
from autokd.models.artifact import MODEL_FILE, load_model
from autokd.spec.chain import ChainSpec, StepSpec
from autokd.spec.document import dump_spec
from autokd.spec.pipeline import PipelineSpec
from autokd.stages import pipeline as stages
from autokd.stages.evaluation import test_metrics
from autokd.stages.layout import Layout
from autokd.stages.recipe import build_distill_objective, distill_extra, save_role, setup, train_role
from autokd.stages.validate import effective_distill, load_chain_spec
from autokd.train.device import configure_threads
from autokd.train.teacher_cache import CACHE_NAME, TeacherOutputs, compute_teacher_logits, save_teacher_outputs
from autokd.utils.io import atomic_write_json


def outputs_dir(root: Path, role: str) -> Path:
    """Where a model's cached train-split logits live (the teacher's keep the default pipeline's name)."""
    return root / "artifacts" / ("teacher_outputs" if role == "teacher" else f"{role}_outputs")


@dataclass(frozen=True)
class SourceLayout(Layout):
    """A :class:`Layout` in which ``teacher`` means ``source``: the model a step distils from.

    ``build_distill_objective`` reads ``model_dir("teacher")`` and ``teacher_outputs``; with
    this layout it reads the previous step's model and cached logits instead.
    """

    source: str = "teacher"

    def model_dir(self, role: str) -> Path:
        return super().model_dir(self.source if role == "teacher" else role)

    @property
    def teacher_outputs(self) -> Path:
        return outputs_dir(self.root, self.source)


def default_root(spec: ChainSpec) -> Path:
    return Path("runs") / spec.name


def cache_outputs(layout: Layout, role: str, model: torch.nn.Module, data: PreparedData, device: torch.device) -> None:
    """Compute and store ``role``'s logits on the training split (what the next step reads)."""
    sha = file_sha256(layout.model_dir(role) / MODEL_FILE)
    logits = compute_teacher_logits(model.to(device), data.train, device)
    out = outputs_dir(layout.root, role)
    out.mkdir(parents=True, exist_ok=True)
    save_teacher_outputs(out / CACHE_NAME, TeacherOutputs(logits=logits, data_sha256=data.sha256, teacher_sha256=sha))
    write_manifest(out, kind="teacher_outputs", content=[CACHE_NAME], parents=[layout.data, layout.model_dir(role)],
                   spec={"model": role}, root=layout.root)


def build_step_objective(
    view: PipelineSpec, step: StepSpec | None, student: torch.nn.Module, data: PreparedData, layout: SourceLayout,
    device: torch.device,
):
    """The step's distillation objective; with ``step.blockwise``, wrapped with stepping stones."""
    base = build_distill_objective(view, student, data, layout, device)
    if step is None or step.blockwise is None:
        return base
    from autokd.train.blockwise import BlockwiseObjective

    teacher = base.teacher if base.teacher is not None else load_model(layout.model_dir("teacher"))
    return BlockwiseObjective(base, student, teacher.to(device), data.input_shape,
                              weight=step.blockwise.weight, stones=step.blockwise.stones)


def _distill_role(
    view: PipelineSpec, step: StepSpec | None, role: str, source: str, layout: Layout, progress: bool,
) -> tuple[torch.nn.Module, PreparedData, torch.device]:
    """Train ``view.student`` as ``role`` distilled from ``source``; save it with its manifest."""
    device, amp = setup(view)
    data = load_prepared(layout.data)
    src = SourceLayout(layout.root, source=source)
    source_sha = file_sha256(src.model_dir("teacher") / MODEL_FILE)
    blockwise = dump_spec(step.blockwise) if step is not None and step.blockwise is not None else None
    model, result = train_role(
        view, role, view.student, data, layout,
        lambda m: build_step_objective(view, step, m, data, src, device),
        distill_extra(view, source_sha, blockwise=blockwise), device, amp, progress,
    )
    section = {"student": dump_spec(view.student), "distill": effective_distill(view.distill), "source": source}
    if blockwise is not None:
        section["blockwise"] = blockwise
    save_role(layout, role, model, view.student, data, result, [layout.data, src.model_dir("teacher")], section)
    return model, data, device


# ---------------------------------------------------------------------------------- stages


def chain_prepare(spec: ChainSpec, layout: Layout) -> PreparedData:
    return stages.prepare(spec.step_pipeline(0), layout)


def chain_teacher(spec: ChainSpec, layout: Layout, progress: bool = True) -> None:
    """Train the chain's teacher on labels and cache its train-split logits."""
    stages.train_teacher(spec.step_pipeline(0), layout, progress=progress)


def chain_step(spec: ChainSpec, layout: Layout, step_name: str, progress: bool = True) -> None:
    """Train step ``step_name`` distilled from the previous model, then cache its own logits."""
    i = spec.index(step_name)
    step = spec.steps[i]
    model, data, device = _distill_role(spec.step_pipeline(i), step, step.name, spec.source(i), layout, progress)
    cache_outputs(layout, step.name, model, data, device)


def chain_baseline(spec: ChainSpec, layout: Layout, progress: bool = True) -> None:
    """The final step's model and training on labels alone."""
    stages.train_baseline(spec.step_pipeline(len(spec.steps) - 1), layout, progress=progress)


def chain_direct(spec: ChainSpec, layout: Layout, progress: bool = True) -> None:
    """The final step distilled straight from the teacher (its distill block, no stepping stones)."""
    _distill_role(spec.direct_pipeline(), None, "direct", "teacher", layout, progress)


def chain_evaluate(spec: ChainSpec, layout: Layout) -> dict[str, Any]:
    """Every model's test metrics, each step's gains, plots; one metrics file."""
    from autokd.evaluate.metrics import accuracy, agreement, ece, nll
    from autokd.evaluate.plots import plot_curves

    configure_threads(spec.runtime)
    data = load_prepared(layout.data)
    ev = spec.evaluate
    y = data.test.y
    names = spec.model_names()
    logits, per_model = test_metrics(ev, data, layout, names)
    acc = {n: per_model[n]["accuracy"] for n in names}
    steps: dict[str, Any] = {}
    for i, step in enumerate(spec.steps):
        src = spec.source(i)
        row = {"source": src, "accuracy": acc[step.name], "gain_over_source": acc[step.name] - acc[src],
               "agreement_with_source": agreement(logits[step.name], logits[src]),
               "params": per_model[step.name]["params"]}
        if spec.baseline:
            row["gain_vs_baseline"] = acc[step.name] - acc["baseline"]
            row["same_architecture_as_baseline"] = step.model == spec.final.model
        steps[step.name] = row
    metrics: dict[str, Any] = {"chain": spec.name, "final": spec.final.name, "models": per_model, "steps": steps}
    if spec.baseline:
        metrics["kd_gain"] = acc[spec.final.name] - acc["baseline"]
    if spec.direct:
        metrics["direct_gain"] = acc[spec.final.name] - acc["direct"]
    if spec.ensemble:
        probs = torch.stack([torch.softmax(logits[s.name].float(), 1) for s in spec.steps]).mean(0)
        log_p = probs.clamp_min(1e-12).log()
        metrics["ensemble"] = {"members": [s.name for s in spec.steps], "accuracy": accuracy(log_p, y),
                               "nll": nll(log_p, y), "ece": ece(log_p, y, ev.ece_bins)}
        if spec.baseline:
            metrics["ensemble"]["gain_vs_baseline"] = metrics["ensemble"]["accuracy"] - acc["baseline"]
    metrics["compression"] = per_model["teacher"]["params"] / per_model[spec.final.name]["params"]
    metrics["test_samples"] = len(y)

    reports = layout.reports
    (reports / "plots").mkdir(parents=True, exist_ok=True)
    atomic_write_json(reports / "metrics.json", metrics)
    histories = {n: json.loads((layout.model_dir(n) / "history.json").read_text()) for n in names}
    plot_curves(histories, reports / "plots" / "training_curves.png")
    summary = {f"{n}.accuracy": acc[n] for n in names}
    for key in ("kd_gain", "direct_gain"):
        if key in metrics:
            summary[key] = metrics[key]
    write_manifest(reports, kind="evaluation", content=["metrics.json"],
                   parents=[layout.data] + [layout.model_dir(n) for n in names],
                   spec={"evaluate": dump_spec(spec.evaluate), "chain": spec.name}, metrics=summary, root=layout.root)
    line = ", ".join(f"{n} {acc[n]:.4f}" for n in names)
    extra = "".join(f"; {k} {metrics[k]:+.4f}" for k in ("kd_gain", "direct_gain") if k in metrics)
    if "ensemble" in metrics:
        extra += f"; ensemble {metrics['ensemble']['accuracy']:.4f}"
    print(f"[evaluate] {spec.name} test accuracy: {line}{extra}", flush=True)
    return metrics


def run_chain_stage(spec: ChainSpec, layout: Layout, name: str, progress: bool = True) -> Any:
    """Run one stage by name: prepare | teacher | <step> | baseline | direct | evaluate."""
    if name not in spec.stage_names():
        from autokd.spec.errors import suggest

        hint = suggest(name, spec.stage_names())
        raise KeyError(f"chain {spec.name!r} has no stage {name!r}; stages: {', '.join(spec.stage_names())}"
                       + (f" ({hint})" if hint else ""))
    if name == "prepare":
        return chain_prepare(spec, layout)
    if name == "teacher":
        return chain_teacher(spec, layout, progress)
    if name == "baseline":
        return chain_baseline(spec, layout, progress)
    if name == "direct":
        return chain_direct(spec, layout, progress)
    if name == "evaluate":
        return chain_evaluate(spec, layout)
    return chain_step(spec, layout, name, progress)


def run_chain(spec: ChainSpec, layout: Layout, progress: bool = True) -> dict[str, Any]:
    """Every stage in order, without DVC; returns the evaluation metrics."""
    out = None
    for name in spec.stage_names():
        out = run_chain_stage(spec, layout, name, progress)
    return out


def load_and_layout(spec_path: str | Path, root: str | Path | None = None) -> tuple[ChainSpec, Layout]:
    spec = load_chain_spec(spec_path, root=Path.cwd())
    return spec, Layout(Path(root) if root is not None else default_root(spec))
