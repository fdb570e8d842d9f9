"""One search trial: the pipeline's own ``distill`` stage with the spec patched by the trial.

A trial
1. patches the pipeline spec with its parameters (:meth:`Space.to_overrides`, then
   :func:`~autokd.spec.document.apply_overrides` and the task's validation);
2. builds the student and the distillation objective with the stages' own recipe through the
   pipeline's :class:`~autokd.search.hparams.tasks.SearchTask` (classification:
   :mod:`.classify_task`, language models: :mod:`.lm_task`), with the ``distill`` stage's
   checkpoint fingerprint, so the same spec gives the same initial weights, the same batches
   and, on the CPU, the same result as ``dvc repro``;
3. trains with :func:`autokd.train.train` (per-epoch checkpoints, resume), reading the
   teacher's cached outputs where it can (``teacher_calls`` stays 0) and running the
   teacher without gradients for feature methods;
4. reports after every epoch: validation metrics (what the search optimises), the test
   metrics computed exactly as ``evaluate`` does, the student's size, the teacher calls
   and the node, with the epoch's checkpoint, so a scheduler can stop it early and a
   retried trial resumes where it was;
5. on a non-finite loss (or a patch that does not validate) raises :class:`TrialFailed`
   with the reason: the backend records the trial as failed and the search goes on.

The trial is backend-agnostic: it talks to a :class:`Reporter`. The Ray Tune entry point
(``ray.tune.report`` / ``ray.tune.get_checkpoint``) is :func:`.ray_report.ray_trainable`; the
Optuna backend has its own reporter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from autokd.search.hparams.inputs import Inputs
from autokd.search.hparams.objectives import failed_values
from autokd.search.hparams.space import Space
from autokd.search.hparams.tasks import get_task


class TrialFailed(RuntimeError):
    """A trial that cannot succeed (non-finite loss, invalid patch): not retried."""

    def __init__(self, reason: str, epoch: int = 0, metrics: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.epoch = epoch
        self.metrics = dict(metrics or {})


class Reporter(Protocol):
    def checkpoint_dir(self) -> Path:
        """A local folder for this trial's checkpoint, holding the latest one when resuming."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path) -> None:
        """Publish one epoch's metrics and checkpoint (may raise to stop the trial)."""

    def node(self) -> str:
        """Where the trial runs."""


@dataclass
class TrialContext:
    """Everything a trial needs besides its parameters (pickled once, shared by all trials)."""

    search: str
    base: dict[str, Any]  # the pipeline spec mapping
    pipeline_file: str
    root: str
    space: Space
    objectives: dict[str, str]
    cpus: float
    inputs: Inputs
    #: report the test accuracy beside the validation metrics; False: the trial never reads the
    #: test split (the tuned method comparison selects on validation only)
    evaluate_test: bool = True
    #: the pipeline's task (:mod:`autokd.search.hparams.tasks`): ``classify`` or ``lm``
    task: str = "classify"
    #: Ray Train workers per trial (the search's ``budget.resources.workers``); ≥ 2: see :func:`train_on_workers`
    workers: int = 1
    cpu_per_worker: float = 1.0
    gpu_per_worker: float = 0.0
    strategy: str = "ddp"  # a multi-worker trial's: ddp or fsdp (budget.resources.strategy)


def trial_spec(params: dict[str, Any], ctx: TrialContext):
    """The validated pipeline spec of a trial and its patch."""
    from autokd.spec.document import apply_overrides
    from autokd.spec.errors import SpecError

    patch = ctx.space.to_overrides(params)
    try:
        spec = get_task(ctx.task).validate(apply_overrides(ctx.base, patch), file=ctx.pipeline_file,
                                           root=Path(ctx.root), check_paths=False)
    except SpecError as exc:
        raise TrialFailed(f"the patched spec does not validate: {exc.render()}") from None
    return spec, patch


def run_trial(params: dict[str, Any], ctx: TrialContext, reporter: Reporter) -> dict[str, Any]:
    """Train one student; return the last epoch's metrics.

    Raises :class:`TrialFailed` for what a retry would not fix: a patch that does not
    validate, a student or objective that cannot be built (e.g. a feature method and a
    student without the named feature), a non-finite loss. Anything else (a dead worker,
    out of memory) propagates, and the backend retries the trial from its checkpoint.
    """
    import torch

    from autokd.train.device import autocast_dtype, resolve_device
    from autokd.train.trainer import NonFiniteLossError, train

    task = get_task(ctx.task)
    spec, _ = trial_spec(params, ctx)
    threads = spec.runtime.num_threads or max(1, int(ctx.cpus))
    torch.set_num_threads(threads)
    device = resolve_device(spec.runtime)
    amp = autocast_dtype(spec.runtime, device)
    try:
        parts = task.build(spec, Path(ctx.root), ctx.inputs, device)
    except (ValueError, TypeError, KeyError) as exc:
        raise TrialFailed(f"cannot build the trial: {type(exc).__name__}: {exc}") from None
    model, objective, data, static = parts.model, parts.objective, parts.data, parts.static
    ckpt_dir = reporter.checkpoint_dir()
    static["node"] = reporter.node()
    static["nodes"] = " ".join(_record_node(ckpt_dir, static["node"]))
    last: dict[str, Any] = {}
    replayed: list[dict[str, float]] = []  # epochs restored from a checkpoint (a resumed trial)

    def on_epoch(rec: dict[str, float], epoch: int) -> None:
        test = task.test_metrics(parts, spec, device) if ctx.evaluate_test else {}
        # seconds spent in training epochs (restored epochs included), without start-up costs
        before = last["train_seconds"] if last else sum(r.get("seconds", 0.0) for r in replayed)
        metrics = {**rec, **task.epoch_metrics(rec), **test, **static,
                   "resumed_from": len(replayed), "train_seconds": before + rec.get("seconds", 0.0)}
        if ctx.workers <= 1:  # the workers' own objectives count theirs, not this process's
            metrics["teacher_calls"] = objective.teacher_calls
        metrics["epoch"] = int(rec["epoch"])
        last.clear()
        last.update(metrics)
        reporter.report(metrics, ckpt_dir)

    try:
        # the distill stage's own checkpoint fingerprint: a trial and `dvc repro` of the same spec resume alike
        if ctx.workers > 1:
            train_on_workers(model, data, spec, objective, ctx, device=device, amp=amp, checkpoint_dir=ckpt_dir,
                             run_fingerprint=parts.fingerprint, on_epoch=on_epoch, replay=replayed.append)
        else:
            train(model, data.train, data.val, spec.student.train, objective, device=device, amp=amp,
                  checkpoint_dir=ckpt_dir, run_fingerprint=parts.fingerprint, name="trial", on_epoch=on_epoch,
                  replay=replayed.append, progress=False)
    except NonFiniteLossError as exc:
        raise TrialFailed(str(exc), epoch=exc.epoch + 1, metrics=last or static) from None
    except ValueError as exc:  # a combination the method refuses on this data (cakd strong_k >= classes)
        raise TrialFailed(f"the trial failed: {exc}", epoch=int(last.get("epoch", 0)), metrics=last or static) from None
    return dict(last)


# what the trial's own process holds of a multi-worker trial's CPUs, taken from each worker's share
# (so the process and any one worker fit on a node of cpu_per_worker CPUs, and a trial reserves at
# most workers × cpu_per_worker in all)
DRIVER_CPU = 0.01


def train_on_workers(model, data, spec, objective, ctx: TrialContext, *, device, amp, checkpoint_dir: Path,
                     run_fingerprint: str, on_epoch, replay) -> None:
    """A multi-worker trial: the ``distill`` stage's run on ``ctx.workers`` Ray Train workers
    (:func:`~autokd.train.distributed.fit_on_workers`, the trainer the pipeline's stages use), one
    epoch at a time. After each epoch this process restores the workers' checkpoint (the same
    :func:`~autokd.train.train` call, no epoch left to run) and reports it, so the scheduler can stop
    the trial between epochs and a retried trial resumes from the epoch's checkpoint. Each epoch
    starts the worker group anew (a few seconds; the price of reporting from the trial's process)."""
    from autokd.spec.pipeline import WorkerResources
    from autokd.train.distributed import fit_on_workers
    from autokd.train.trainer import train

    cfg = spec.student.train
    share = ctx.cpu_per_worker - DRIVER_CPU
    runtime = spec.runtime.model_copy(update={
        "workers": ctx.workers, "resources_per_worker": WorkerResources(cpu=share, gpu=ctx.gpu_per_worker),
        "strategy": ctx.strategy})
    common = dict(device=device, amp=amp, checkpoint_dir=checkpoint_dir, run_fingerprint=run_fingerprint,
                  name="trial", progress=False)
    done = len(train(model, data.train, data.val, cfg, objective, until=0, replay=replay, **common).history)
    for epoch in range(done, cfg.epochs):
        fit_on_workers(model, data.train, data.val, cfg, objective, runtime=runtime, amp=amp,
                       checkpoint_dir=checkpoint_dir, run_fingerprint=run_fingerprint, name="trial",
                       progress=False, until=epoch + 1, threads=max(1, int(ctx.cpu_per_worker)))
        result = train(model, data.train, data.val, cfg, objective, until=epoch + 1, **common)
        if len(result.history) <= epoch:
            return  # early stopping (train.patience): no epoch ran
        on_epoch({**result.history[-1], "seconds": result.epoch_seconds[-1]}, epoch)


def _record_node(ckpt_dir: Path, node: str) -> list[str]:
    """The nodes this trial has run on, kept beside its checkpoint (so it survives a retry)."""
    import json

    from autokd.utils.io import atomic_write_json

    path = ckpt_dir / "nodes.json"
    nodes = json.loads(path.read_text()) if path.exists() else []
    if not nodes or nodes[-1] != node:
        nodes.append(node)
        atomic_write_json(path, nodes)
    return nodes


def failure_result(exc: TrialFailed, objectives: dict[str, str]) -> dict[str, Any]:
    """The last result of a failed trial: the worst objective values, the reason, the epoch."""
    out = dict(exc.metrics)
    out.update(failed_values(objectives))
    out.update({"epoch": exc.epoch, "failed": True, "error": exc.reason})
    return out


class LocalReporter:
    """Runs a trial in this process (tests, debugging, benchmarks): keeps every report."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.reports: list[dict[str, Any]] = []

    def checkpoint_dir(self) -> Path:
        return self.dir

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        self.reports.append(dict(metrics))

    def node(self) -> str:
        return "local"

