"""The Ray Tune backend: ``Tuner`` + ``OptunaSearch`` (define-by-run) + a scheduler.

- Local by default: Ray starts in-process (``num_cpus`` = this machine's CPUs, no dashboard,
  a short temp dir); ``address="HOST:PORT"`` connects to a running cluster (``ray start
  --head`` on one machine, ``ray start --address …`` on the others). On a cluster the
  results ``storage`` and the pipeline root must be on storage every node reaches (NFS, or a
  URI such as ``s3://bucket/path`` for results).
- Each trial is :func:`~autokd.search.hparams.ray_report.ray_trainable` with the trial context
  shared once through the object store (``tune.with_parameters``), and the resources of the
  spec (CPUs, GPUs or GPU fractions).
- The sampler is Optuna's (TPE, random, NSGA-II) through :class:`FailureAwareOptunaSearch`,
  limited by a ``ConcurrencyLimiter``; ``sampler: grid`` uses Tune's own grid
  (``BasicVariantGenerator``), which never repeats or skips a point.
- Schedulers: ASHA (default), HyperBand, FIFO, all on the ``epoch`` each trial reports.
- Fault tolerance: ``FailureConfig(max_failures)`` retries a trial whose worker or node died
  from its last checkpoint; a trial that fails by itself (non-finite loss) reports the reason
  and is not retried; ``resume=True`` continues an interrupted search with
  ``Tuner.restore`` (finished trials are not run again; note that Ray does not carry the
  ``time_budget_s`` over to a restored search).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ray.tune.search.optuna import OptunaSearch

from autokd.search.hparams.address import check_ray_address, unreachable
from autokd.search.hparams.errors import SearchError
from autokd.search.hparams.objectives import OBJECTIVES, keys_and_modes
from autokd.search.hparams.progress import SearchProgress
from autokd.utils.ray_env import configure_environment, short_temp_dir  # noqa: F401  (here for callers)
from autokd.search.hparams.results import TrialRecord, final_metrics, static_metrics, status_of
from autokd.search.hparams.spec import LoadedSearch, max_epochs
from autokd.search.hparams.trial import DRIVER_CPU, TrialContext

EXPERIMENT = "tune"


class FailureAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tells Optuna a trial FAILED when the trial reported ``failed``
    (a non-finite loss), instead of recording the placeholder value it reported."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if result.get("failed"):
            return
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result and result.get("failed"):
            return super().on_trial_complete(trial_id, None, error=True)
        return super().on_trial_complete(trial_id, result, error)


# ------------------------------------------------------------------------------ environment



def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Start (or connect to) Ray unless it is already up; return whether we started it."""
    import ray

    env = configure_environment()
    if ray.is_initialized():
        return False
    common = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    if address:
        check_ray_address(address)  # fail in seconds, not after Ray's minute of retries
        # a cluster's workers were started elsewhere: give them our environment
        try:
            ray.init(address=address, runtime_env={"env_vars": env}, **common)
        except ConnectionError as exc:  # the port answers, but not as a Ray cluster
            raise unreachable(address, f"({exc})") from exc
    else:
        # local workers inherit this environment (and can use Ray's prestarted workers)
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, _temp_dir=short_temp_dir(),
                 object_store_memory=256 * 1024 * 1024, **common)
    return True


# ------------------------------------------------------------------------------ schedulers


def _asha(loaded, metric, mode, max_t):
    from ray.tune.schedulers import ASHAScheduler

    s = loaded.spec.scheduler
    return ASHAScheduler(time_attr="epoch", metric=metric, mode=mode, max_t=max_t,
                         grace_period=min(s.grace_period, max_t), reduction_factor=s.reduction_factor)


def _hyperband(loaded, metric, mode, max_t):
    from ray.tune.schedulers import HyperBandScheduler

    return HyperBandScheduler(time_attr="epoch", metric=metric, mode=mode, max_t=max_t,
                              reduction_factor=loaded.spec.scheduler.reduction_factor)


def _fifo(loaded, metric, mode, max_t):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


SCHEDULERS: dict[str, Callable] = {"asha": _asha, "hyperband": _hyperband, "fifo": _fifo}


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


# ------------------------------------------------------------------------------ progress


def _progress_callback(progress: SearchProgress, ctx: TrialContext):
    from ray.tune import Callback

    class ProgressCallback(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            progress.result(trial.trial_id, ctx.space.describe(trial.config), result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            status, reason = status_of(result, result.get("max_epochs"))
            progress.done(trial.trial_id, status, ctx.space.describe(trial.config), result, reason)

        def on_trial_error(self, iteration, trials, trial, **info):
            progress.done(trial.trial_id, "failed", ctx.space.describe(trial.config), trial.last_result or {},
                          _error_line(trial.error_file))

    return ProgressCallback()


def _experiment_callback(recorder, ctx: TrialContext):
    """Records each trial that completed its schedule as a DVC experiment, in the driver, one
    at a time (Tune calls callbacks from its control loop)."""
    from ray.tune import Callback

    class ExperimentCallback(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            if status_of(result, result.get("max_epochs"))[0] != "completed":
                return
            params = dict(trial.config or {})
            recorder.record(trials.index(trial), ctx.space.to_overrides(params), final_metrics(result),
                            ctx.space.describe(params), epochs=result.get("epoch"), max_epochs=result.get("max_epochs"))

    return ExperimentCallback()


def _error_line(error: Any) -> str:
    if error is None:
        return ""
    text = str(error)
    if os.path.isfile(text):
        text = Path(text).read_text(errors="replace")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "error")[:300]


# ------------------------------------------------------------------------------ running


def storage_path(loaded: LoadedSearch, out_dir: Path, storage: str | None) -> str:
    where = storage or loaded.spec.storage
    if where and "://" in where:
        return where
    return str(Path(where).resolve()) if where else str((out_dir / "ray").resolve())


def max_concurrent(spec) -> int | None:
    """Trials at once: the search's ``max_concurrent``; for multi-worker trials at most as many as
    the cluster's CPUs (and GPUs) hold whole, since Tune reserves only a trial's own process and
    trials whose workers cannot all start would wait on each other forever."""
    import ray

    res = spec.budget.resources
    if res.workers <= 1:
        return spec.budget.max_concurrent
    total = ray.cluster_resources()
    fits = int(total.get("CPU", 0) // res.trial_cpus + 1e-9)
    if res.gpu_per_worker > 0:
        fits = min(fits, int(total.get("GPU", 0) // (res.workers * res.gpu_per_worker) + 1e-9))
    if fits < 1:
        raise SearchError(f"budget.resources: a trial takes {res.workers} workers × {res.cpu_per_worker:g} CPU"
                         + (f" and {res.gpu_per_worker:g} GPU" if res.gpu_per_worker else "")
                         + f" but the Ray cluster has {total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs")
    return min(fits, spec.budget.max_concurrent or fits)


def _tuner(loaded: LoadedSearch, ctx: TrialContext, trials: int, storage: str, progress: SearchProgress,
           recorder=None):
    from ray import tune
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    from autokd.search.hparams.samplers import make_sampler

    spec = loaded.spec
    keys, modes = keys_and_modes(spec.objectives)
    single = len(keys) == 1
    metric, mode = (keys[0], modes[0]) if single else (keys, modes)
    param_space: dict[str, Any] = {}
    concurrent = max_concurrent(spec)
    if spec.sampler_type == "grid":
        search_alg = BasicVariantGenerator(max_concurrent=concurrent or 0)
        param_space = {name: tune.grid_search(values) for name, values in ctx.space.grid().items()}
        num_samples = 1
    else:
        searcher = FailureAwareOptunaSearch(space=ctx.space, metric=metric, mode=mode,
                                            sampler=make_sampler(spec, ctx.space))
        search_alg = ConcurrencyLimiter(searcher, max_concurrent=concurrent) if concurrent else searcher
        num_samples = trials
    scheduler = SCHEDULERS[spec.scheduler_type](loaded, keys[0], modes[0], max_epochs(loaded))
    res = spec.budget.resources
    # a multi-worker trial's process holds a sliver; its Ray Train workers take the rest of its share
    resources = {"cpu": DRIVER_CPU, "gpu": 0} if res.workers > 1 else {"cpu": res.cpu, "gpu": res.gpu}
    from autokd.search.hparams.ray_report import ray_trainable

    trainable = tune.with_resources(tune.with_parameters(ray_trainable, ctx=ctx), resources)
    tune_config = tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
                                  time_budget_s=spec.budget.time_budget_s, reuse_actors=True,
                                  trial_dirname_creator=trial_dirname, trial_name_creator=trial_dirname)
    run_config = tune.RunConfig(
        name=EXPERIMENT, storage_path=storage, verbose=0,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        # every epoch's checkpoint is kept while the search runs: Ray's experiment snapshot can
        # lag behind a trial's newest checkpoint, and a resume after a SIGKILL must find the one
        # the snapshot names. prune_checkpoints() keeps only the newest once the search ends.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        callbacks=[_progress_callback(progress, ctx)] + ([_experiment_callback(recorder, ctx)] if recorder else []),
    )
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config), trainable


def run_ray(loaded: LoadedSearch, ctx: TrialContext, out_dir: Path, trials: int, *, address: str | None = None,
            resume: bool = False, storage: str | None = None, overwrite: bool = False,
            progress: SearchProgress | None = None, log=print, recorder=None) -> list[TrialRecord]:
    """Run (or resume) the search on Ray; return one record per trial. ``recorder`` (a
    :class:`~autokd.search.hparams.experiments.TrialExperiments`) records completed trials."""
    import shutil

    from ray import tune

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    progress = progress or SearchProgress(trials)
    started = start_ray(address)
    try:
        store = storage_path(loaded, out_dir, storage)
        exp = f"{store.rstrip('/')}/{EXPERIMENT}"
        local = "://" not in exp
        if resume:
            if not tune.Tuner.can_restore(exp):
                raise SearchError(f"nothing to resume at {exp} (run the search once without --resume)")
            if loaded.spec.budget.time_budget_s:
                log("[search] note: Ray does not carry time_budget_s over to a resumed search")
            _, trainable = _tuner(loaded, ctx, trials, store, progress)
            tuner = tune.Tuner.restore(exp, trainable=trainable, resume_unfinished=True, resume_errored=True,
                                       restart_errored=False)
        else:
            if local and Path(exp).exists():
                if not overwrite:
                    raise SearchError(f"{exp} holds an earlier search: pass --resume to continue it, "
                                      "or --overwrite to start again")
                shutil.rmtree(exp)
            tuner, _ = _tuner(loaded, ctx, trials, store, progress, recorder)
        grid = tuner.fit()
        if local:
            prune_checkpoints(Path(exp))
        return records_from_ray(grid, ctx)
    finally:
        progress.close()
        if started:
            import ray

            ray.shutdown()


def prune_checkpoints(experiment: Path) -> int:
    """Keep only each trial's newest ``checkpoint_*`` folder; return how many were removed."""
    import shutil

    removed = 0
    for trial_dir in experiment.glob("trial_*"):
        checkpoints = sorted(p for p in trial_dir.glob("checkpoint_*") if p.is_dir())
        for old in checkpoints[:-1]:
            shutil.rmtree(old, ignore_errors=True)
            removed += 1
    return removed


def records_from_ray(grid, ctx: TrialContext) -> list[TrialRecord]:
    records = []
    primary = OBJECTIVES[next(iter(ctx.objectives))].key
    mode = next(iter(ctx.objectives.values()))
    for number, result in enumerate(grid):  # the ResultGrid lists trials in creation order
        metrics = dict(result.metrics or {})
        params = {k: v for k, v in (result.config or {}).items()}
        trial_id = metrics.get("trial_id") or Path(result.path).name.removeprefix("trial_")
        max_ep = int(metrics.get("max_epochs") or 0)
        if result.error is not None:
            status, reason = "failed", _error_line(result.error)
        else:
            status, reason = status_of(metrics, max_ep)
        df = result.metrics_dataframe
        best: dict[str, Any] = {}
        nodes: list[str] = []
        if df is not None and len(df):
            if "node" in df.columns:
                nodes = [str(n) for n in dict.fromkeys(df["node"].dropna().tolist())]
        if metrics.get("nodes"):  # carried in the checkpoint: complete across retries
            nodes = list(dict.fromkeys(str(metrics["nodes"]).split() + nodes))
            if primary in df.columns and "failed" in df.columns:
                ok = df[df["failed"] != True]  # noqa: E712
                if len(ok):
                    idx = ok[primary].idxmax() if mode == "max" else ok[primary].idxmin()
                    best = {"epoch": int(ok.loc[idx, "epoch"]), primary: float(ok.loc[idx, primary])}
        try:
            patch = ctx.space.to_overrides(params)
        except (KeyError, ValueError):
            patch = {}
        records.append(TrialRecord(
            trial=str(trial_id), number=number, status=status, reason=reason, params=params, patch=patch,
            epochs=int(metrics.get("epoch") or 0) if not metrics.get("failed") else max(int(metrics.get("epoch") or 1) - 1, 0),
            max_epochs=max_ep, final=final_metrics(metrics) if not metrics.get("failed") else static_metrics(metrics),
            best=best, seconds=float(metrics.get("time_total_s") or 0.0), node=str(metrics.get("node") or ""),
            nodes=nodes, teacher_mode=str(metrics.get("teacher_mode") or ""),
            finished_at=float(metrics["timestamp"]) if metrics.get("timestamp") else None,
            resumed_from=int(metrics.get("resumed_from") or 0),
            lineage={"data_sha256": ctx.inputs.data_sha256, "teacher_sha256": ctx.inputs.teacher_sha256,
                     "teacher_outputs_sha256": ctx.inputs.teacher_outputs_sha256, "root": ctx.inputs.root},
        ))
    return sorted(records, key=lambda r: r.number)
