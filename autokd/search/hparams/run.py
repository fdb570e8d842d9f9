"""``autokd search hparams``: load the search spec, prepare the inputs once, run a backend,
write the results, optionally apply the best patch to the pipeline spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autokd.search.hparams.backends import get_backend
from autokd.search.hparams.results import TrialRecord


@dataclass
class SearchOutcome:
    out_dir: Path
    records: list[TrialRecord]
    best: TrialRecord | None
    files: list[str] = field(default_factory=list)
    applied: dict[str, Any] | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def output_dir(name: str, out_dir: str | Path | None, base_dir: str | Path | None) -> Path:
    if out_dir is not None:
        return Path(out_dir).resolve()
    return (Path(base_dir) if base_dir else Path.cwd()).resolve() / "searches" / name


def prepare_context(loaded, log=print, evaluate_test: bool = True):
    """The trial context: the pipeline validated with ``fixed``, inputs made once (``evaluate_test``:
    see :attr:`~autokd.search.hparams.trial.TrialContext.evaluate_test`)."""
    from autokd.search.hparams.space import Space
    from autokd.search.hparams.tasks import get_task
    from autokd.search.hparams.trial import TrialContext
    from autokd.spec.document import apply_overrides

    spec = loaded.spec
    task = get_task(loaded.task)
    # a relative data.path is relative to the working directory, as for `autokd validate` and `run`
    pipeline = task.validate(apply_overrides(loaded.base, spec.fixed), file=str(loaded.pipeline_file),
                             root=Path.cwd())
    inputs = task.shared_inputs(pipeline, loaded.root, str(loaded.pipeline_file), log=log)
    res = spec.budget.resources
    if pipeline.runtime.workers > 1 and res.workers <= 1:
        log(f"[search] runtime.workers: {pipeline.runtime.workers} applies to the pipeline's stages; each search "
            "trial trains in one process (give the search budget.resources.workers for multi-worker trials)")
    space = Space.from_loaded(loaded)
    ctx = TrialContext(search=spec.name, base=loaded.base, pipeline_file=str(loaded.pipeline_file),
                       root=str(loaded.root), space=space, objectives=dict(spec.objectives),
                       cpus=spec.budget.resources.cpu, inputs=inputs, evaluate_test=evaluate_test,
                       task=loaded.task, workers=res.workers, cpu_per_worker=res.cpu_per_worker,
                       gpu_per_worker=res.gpu_per_worker, strategy=res.strategy)
    return ctx


def write_results(out: Path, loaded, ctx, records: list[TrialRecord], spec_file: str) -> tuple[TrialRecord | None, list[str]]:
    from autokd.lineage.manifest import write_manifest
    from autokd.search.hparams.results import best_trial, pipeline_fingerprint, write_best, write_pareto, write_trials
    from autokd.search.hparams.tasks import get_task
    from autokd.stages import Layout

    task = get_task(loaded.task)
    objectives = dict(loaded.spec.objectives)
    out.mkdir(parents=True, exist_ok=True)
    write_trials(out, records, objectives, task.extra_final_keys)
    files = ["trials.csv", "trials.json"]
    best = best_trial(records, objectives)
    best_file = out / "best.yaml"
    if best is not None:
        try:
            pipeline_rel = str(loaded.pipeline_file.relative_to(Path.cwd()))
        except ValueError:
            pipeline_rel = str(loaded.pipeline_file)
        write_best(out, best, loaded.name, pipeline_rel, spec_file, objectives, pipeline_fingerprint(loaded.base),
                   headline=task.headline(best.final), repro=task.repro_command(pipeline_rel))
        files.append("best.yaml")
    elif best_file.exists():
        best_file.unlink()  # a stale winner from an earlier search would be misleading
    if loaded.spec.multi_objective:
        files += write_pareto(out, records, objectives)
    layout = Layout(Path(ctx.root))
    try:
        write_manifest(out, kind="search", content=files,
                       parents=[layout.data, layout.model_dir("teacher"), layout.teacher_outputs],
                       spec={"search": loaded.spec.model_dump(mode="json")},
                       metrics={"trials": len(records), **({f"best.{task.val_key}": best.final.get(task.val_key),
                                                            f"best.{task.test_key}": best.final.get(task.test_key)}
                                                           if best else {})},
                       root=layout.root)
        files.append("manifest.json")
    except FileNotFoundError:
        pass
    return best, files


def run_search(spec_path: str | Path, *, trials: int | None = None, address: str | None = None,
               resume: bool = False, apply: bool = False, backend: str = "ray", storage: str | None = None,
               out_dir: str | Path | None = None, base_dir: str | Path | None = None, overwrite: bool = False,
               live: bool | None = None, log: Callable[[str], None] = print,
               progress=None, evaluate_test: bool = True,
               record_experiments: bool | str | None = None) -> SearchOutcome:
    """Run the search described by ``spec_path`` and write ``searches/<name>/``.

    ``progress`` (a :class:`~autokd.search.hparams.progress.SearchProgress`) receives every
    epoch's result and every finished trial; by default one is made (a live table on a
    terminal, a line per finished trial otherwise). ``evaluate_test=False``: trials never read the
    test split (no ``test_accuracy`` in the records). ``record_experiments`` (default: the
    spec's ``record_experiments``, off with ``evaluate_test=False``; ``"completed"``: completed
    trials only) records each trial as a DVC experiment (:mod:`autokd.search.hparams.experiments`)."""
    from autokd.search.hparams.progress import SearchProgress
    from autokd.search.hparams.results import apply_best
    from autokd.search.hparams.spec import load_search_spec

    engine = get_backend(backend)
    run = engine.load()
    loaded = load_search_spec(spec_path, base_dir=base_dir)
    engine.check(address=address, storage=storage)  # a wrong option fails now, not after the inputs are made
    spec = loaded.spec
    out = output_dir(spec.name, out_dir, base_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = prepare_context(loaded, log=log, evaluate_test=evaluate_test)
    n = trials or spec.budget.trials
    if spec.sampler_type == "grid":
        if trials and trials != ctx.space.grid_size():
            log(f"[search] sampler grid runs its whole product: {ctx.space.grid_size()} trials")
        n = ctx.space.grid_size()
    from autokd.search.hparams.objectives import OBJECTIVES

    from autokd.search.hparams.tasks import get_task

    task = get_task(loaded.task)
    if progress is None:
        progress = SearchProgress(n, primary_key=OBJECTIVES[next(iter(spec.objectives))].key, live=live, echo=log,
                                  val_key=task.val_key, test_key=task.test_key, val_mode=task.val_mode)
    log(f"[search] {spec.name}: {n} trials of {loaded.pipeline_file.name} on {backend} "
        f"(sampler {spec.sampler_type}, scheduler {spec.scheduler_type}), root {ctx.root}, outputs {out}")
    from autokd.search.hparams.experiments import TrialExperiments

    if record_experiments is None:  # trials that never see the test split have no metrics to record
        record_experiments = spec.record_experiments if evaluate_test else False
    recorder = TrialExperiments.open(spec.name, loaded.pipeline_file, ctx.root, enabled=record_experiments, log=log,
                                     metric_keys=task.metric_keys)
    records = run(loaded, ctx, out, n, address=address, resume=resume, storage=storage, overwrite=overwrite,
                  progress=progress, log=log, recorder=recorder)
    if recorder is not None:
        recorder.finish(records)
    best, files = write_results(out, loaded, ctx, records, str(spec_path))
    outcome = SearchOutcome(out_dir=out, records=records, best=best, files=files)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(outcome.counts().items()))
    log(f"[search] done: {len(records)} trials ({counts}); wrote {', '.join(files)} to {out}")
    if recorder is not None:
        log(recorder.summary())
    if best is not None:
        log(f"[search] best: trial {best.trial} {task.headline(best.final)}: {ctx.space.describe(best.params)}")
    if apply:
        if best is None:
            log("[search] nothing to apply: no trial completed its schedule")
        else:
            outcome.applied = apply_best(out / "best.yaml", loaded.pipeline_file, root=base_dir)
            try:
                pipeline_rel = str(loaded.pipeline_file.relative_to(Path.cwd()))
            except ValueError:
                pipeline_rel = str(loaded.pipeline_file)
            log(f"[search] applied best.yaml to {loaded.pipeline_file} (comments inside replaced blocks are lost); "
                f"`{task.repro_command(pipeline_rel)}` retrains this student")
    return outcome


def apply_only(spec_path: str | Path, out_dir: str | Path | None = None, base_dir: str | Path | None = None,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write an earlier search's ``best.yaml`` into its pipeline spec (no search)."""
    from autokd.search.hparams.results import apply_best
    from autokd.search.hparams.spec import load_search_spec

    loaded = load_search_spec(spec_path, base_dir=base_dir)
    out = output_dir(loaded.name, out_dir, base_dir)
    best = out / "best.yaml"
    if not best.exists():
        raise FileNotFoundError(f"no {best}: run the search first")
    patch = apply_best(best, loaded.pipeline_file, root=base_dir)
    log(f"[search] applied {best} to {loaded.pipeline_file}")
    return patch
