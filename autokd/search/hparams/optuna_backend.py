"""The Optuna-only backend: the same search, the same trials, no Ray.

``storage`` is an Optuna storage: ``sqlite:///searches/x/optuna.db`` (or any SQLAlchemy URL),
or a journal file (``journal:path``, or a path ending in ``.log``/``.journal``; the default
is ``searches/<name>/optuna.log``). Several processes started with the same storage share
one study (named after the search): each runs trials until the study holds the budget, so
the work splits itself. ``optuna-dashboard <storage>`` opens it.

- The study is created once under a file lock, so processes starting together never race
  to create a fresh SQLite database; the others load it (``load_if_exists``).
- A study remembers the search spec it was made for; another spec on the same storage is
  refused.
- ``budget.time_budget_s``: a process starts no new trial once it has run that long (the
  trial in progress finishes).
- Early stopping uses Optuna's pruners (ASHA -> successive halving, HyperBand, FIFO -> none;
  none for several objectives, which Optuna cannot prune).
- A trial whose loss went non-finite is recorded FAIL with the reason (user attribute
  ``error``). With an SQL storage a process that dies stops its heartbeat; its trial is
  failed and re-queued (``max_failures`` times) and the retry resumes from its checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

from autokd.search.hparams.errors import StudyMismatch
from autokd.search.hparams.objectives import OBJECTIVES, keys_and_modes
from autokd.search.hparams.progress import SearchProgress
from autokd.search.hparams.results import TrialRecord, _clean, final_metrics, static_metrics, status_of
from autokd.search.hparams.spec import LoadedSearch
from autokd.search.hparams.trial import TrialContext, TrialFailed, run_trial

JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


def default_storage(out_dir: Path) -> str:
    return f"journal:{(out_dir / 'optuna.log').resolve()}"


def _local_file(url: str) -> Path | None:
    """The file behind a SQLite URL or journal storage (None for server databases)."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if url.startswith("journal:"):
        return Path(url[len("journal:"):])
    if "://" not in url:
        return Path(url)
    return None


def make_storage(url: str, max_failures: int):
    """An Optuna storage for ``url`` (SQL with heartbeats, or a journal file)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    if url.startswith("journal:") or ("://" not in url and url.endswith(JOURNAL_SUFFIXES)):
        path = _local_file(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ValueError(f"storage {url!r}: expected sqlite:///path.db, another database URL, "
                         "journal:path or a .log/.journal file")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 30}}
        f = _local_file(url)
        if f is not None:
            f.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, heartbeat_interval=10, grace_period=60,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_failures),
                          **kwargs)


class FileLock:
    """An exclusive ``flock`` on ``<storage file>.autokd-lock`` (a no-op for server databases).
    (Not ``.lock``: Optuna's journal backend uses that name for its own lock.)"""

    def __init__(self, url: str):
        f = _local_file(url)
        self.path = Path(str(f) + ".autokd-lock") if f is not None else None
        self._fh = None

    def acquire(self) -> None:
        if self.path is None or self._fh is not None:
            return
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a")
        fcntl.flock(self._fh, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fh is None:
            return
        import fcntl

        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()
        self._fh = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


def _pruner(loaded: LoadedSearch, max_t: int):
    import optuna

    spec = loaded.spec
    kind = spec.scheduler_type if not spec.multi_objective else "fifo"
    rf = max(2, int(round(spec.scheduler.reduction_factor)))
    grace = min(spec.scheduler.grace_period, max_t)
    return {
        "asha": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=grace, reduction_factor=rf),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=grace, max_resource=max_t,
                                                            reduction_factor=rf),
        "fifo": lambda: optuna.pruners.NopPruner(),
    }[kind]()


def spec_fingerprint(loaded: LoadedSearch) -> str:
    import hashlib

    doc = {"search": loaded.spec.model_dump(mode="json", exclude={"budget", "storage", "record_experiments"}), "base": loaded.base}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def open_study(loaded: LoadedSearch, url: str, space, overwrite: bool = False):
    """Create the study under a file lock, or load it; check it belongs to this search spec."""
    import optuna

    from autokd.search.hparams.samplers import make_sampler
    from autokd.search.hparams.spec import max_epochs

    spec = loaded.spec
    _, modes = keys_and_modes(spec.objectives)
    directions = ["maximize" if m == "max" else "minimize" for m in modes]
    fp = spec_fingerprint(loaded)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with FileLock(url).held():  # a fresh SQLite database gets its tables here: one process at a time
        storage = make_storage(url, spec.max_failures)
        if overwrite:
            with contextlib.suppress(KeyError):
                optuna.delete_study(study_name=spec.name, storage=storage)
        study = optuna.create_study(study_name=spec.name, storage=storage, directions=directions,
                                    sampler=make_sampler(spec, space), pruner=_pruner(loaded, max_epochs(loaded)),
                                    load_if_exists=True)
        made_by = study.user_attrs.get("search_fingerprint")
        if made_by is None:
            study.set_user_attr("search_fingerprint", fp)
            study.set_user_attr("search_spec", loaded.spec.model_dump(mode="json"))
        elif made_by != fp:
            raise StudyMismatch(f"the study {spec.name!r} in {url} was made by a different search spec or "
                                "pipeline; use another --storage, or --overwrite to replace it")
    return study


class OptunaReporter:
    """Reports each epoch to the Optuna trial (intermediate value, pruning, last metrics)."""

    def __init__(self, trial, ctx: TrialContext, directory: Path, progress: SearchProgress, desc: str):
        self.trial = trial
        keys, _ = keys_and_modes(ctx.objectives)
        self.key = keys[0]
        self.multi = len(keys) > 1
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.desc = desc
        self.history: list[dict[str, Any]] = []

    def checkpoint_dir(self) -> Path:
        return self.dir

    def node(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path) -> None:
        import optuna

        clean = _clean(metrics)
        self.trial.set_user_attr("last", clean)
        self.progress.result(f"optuna_{self.trial.number}", self.desc, metrics)
        if self.multi:
            return
        self.trial.report(float(metrics[self.key]), step=int(metrics["epoch"]))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {int(metrics['epoch'])}")


def _retried_from(study, number: int) -> int | None:
    """The number of the trial this one retries (after its process died), if any."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if frozen is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)


def _count_started(study) -> int:
    """Trials that use the budget: finished or running, not those failed by a dead process."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
            n += 1
        elif t.state == TrialState.FAIL and "error" in t.user_attrs:
            n += 1
    return n


def run_optuna(loaded: LoadedSearch, ctx: TrialContext, out_dir: Path, trials: int, *, storage: str | None = None,
               resume: bool = False, overwrite: bool = False, progress: SearchProgress | None = None,
               address: str | None = None, log=print, recorder=None) -> list[TrialRecord]:
    """Run trials in this process until the shared study holds ``trials``; return all records.
    ``recorder`` (a :class:`~autokd.search.hparams.experiments.TrialExperiments`) records each
    trial this process completes."""
    import optuna

    if address:
        raise ValueError("--address is for the Ray backend; Optuna processes share a study through --storage")
    url = storage or default_storage(out_dir)
    progress = progress or SearchProgress(trials)
    study = open_study(loaded, url, ctx.space, overwrite=overwrite)
    keys, _ = keys_and_modes(ctx.objectives)
    lock = FileLock(url)
    ckpt_root = out_dir / "optuna_trials"

    def objective(trial):
        lock.release()  # the trial exists (RUNNING) now: let other processes count it
        params = ctx.space.suggest(trial)
        desc = ctx.space.describe(params)
        first = _retried_from(study, trial.number)
        reporter = OptunaReporter(trial, ctx, ckpt_root / str(first if first is not None else trial.number),
                                  progress, desc)
        trial.set_user_attr("worker", reporter.node())
        trial.set_user_attr("patch", _clean(ctx.space.to_overrides(params)))
        t0 = time.time()
        name = f"optuna_{trial.number}"
        try:
            final = run_trial(params, ctx, reporter)
        except TrialFailed as exc:
            trial.set_user_attr("error", exc.reason)
            trial.set_user_attr("seconds", time.time() - t0)
            progress.done(name, "failed", desc, exc.metrics, exc.reason)
            raise
        except optuna.TrialPruned as exc:
            trial.set_user_attr("seconds", time.time() - t0)
            progress.done(name, "stopped", desc, reporter.trial.user_attrs.get("last", {}), str(exc))
            raise
        trial.set_user_attr("seconds", time.time() - t0)
        progress.done(name, "completed", desc, final)
        if recorder is not None and status_of(final, final.get("max_epochs"))[0] == "completed":
            recorder.record(trial.number, ctx.space.to_overrides(params), final_metrics(final), desc,
                            epochs=final.get("epoch"), max_epochs=final.get("max_epochs"))
        values = [float(final[k]) for k in keys]
        return values[0] if len(values) == 1 else values

    budget_s = loaded.spec.budget.time_budget_s
    t0 = time.time()
    try:
        while True:
            if budget_s is not None and time.time() - t0 > budget_s:
                log(f"[search] time budget of {budget_s:g} s used: no new trials from this process")
                break
            lock.acquire()
            try:
                if _count_started(study) >= trials:
                    break
                study.optimize(objective, n_trials=1, catch=(TrialFailed,), gc_after_trial=False)
            finally:
                lock.release()
    finally:
        progress.close()
    return records_from_study(study, ctx)


def records_from_study(study, ctx: TrialContext) -> list[TrialRecord]:
    from optuna.trial import TrialState

    primary = OBJECTIVES[next(iter(ctx.objectives))].key
    mode = next(iter(ctx.objectives.values()))
    records = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        last = dict(t.user_attrs.get("last") or {})
        max_ep = int(last.get("max_epochs") or 0)
        if t.state == TrialState.COMPLETE:
            status, reason = status_of(last, max_ep)
        elif t.state == TrialState.PRUNED:
            status, reason = "stopped", f"pruned after epoch {int(last.get('epoch') or 0)}"
        elif t.state == TrialState.FAIL:
            status = "failed"
            reason = t.user_attrs.get("error") or "the process running it stopped (heartbeat lost)"
        else:
            status, reason = "running", "running in another process (or its process died)"
        best: dict[str, Any] = {}
        if t.intermediate_values:
            pick = max if mode == "max" else min
            epoch = pick(t.intermediate_values, key=lambda e: t.intermediate_values[e])
            best = {"epoch": int(epoch), primary: float(t.intermediate_values[epoch])}
        seconds = t.user_attrs.get("seconds")
        if seconds is None and t.datetime_start and t.datetime_complete:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        params = dict(t.params)
        records.append(TrialRecord(
            trial=f"optuna_{t.number}", number=t.number, status=status, reason=reason, params=params,
            patch=t.user_attrs.get("patch") or _patch_of(ctx, params),
            epochs=int(last.get("epoch") or 0), max_epochs=max_ep,
            final=final_metrics(last) if status != "failed" else static_metrics(last),
            best=best, seconds=float(seconds or 0.0), node=str(t.user_attrs.get("worker", "")),
            nodes=[str(t.user_attrs.get("worker", ""))], teacher_mode=str(last.get("teacher_mode") or ""),
            finished_at=t.datetime_complete.timestamp() if t.datetime_complete else None,
            resumed_from=int(last.get("resumed_from") or 0),
            lineage={"data_sha256": ctx.inputs.data_sha256, "teacher_sha256": ctx.inputs.teacher_sha256,
                     "teacher_outputs_sha256": ctx.inputs.teacher_outputs_sha256, "root": ctx.inputs.root},
        ))
    return records


def _patch_of(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The spec patch of a trial's sampled parameters; ``{}`` while another process is still sampling them.

    A RUNNING trial read from a shared study may hold only the parameters suggested so far, so
    its patch is not known yet (it is recorded in ``user_attrs`` once the trial starts training).
    """
    if not params or any(d.name not in params for d in ctx.space.active(params) if d.kind != "fixed"):
        return {}
    return ctx.space.to_overrides(params)

