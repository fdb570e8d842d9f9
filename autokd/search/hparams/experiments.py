"""Each trial of a search as a DVC experiment of the repository.

The search's driver process (the Ray driver's callback, or the Optuna process that ran the
trial) records a trial when it has completed its schedule, one at a time, with
:class:`autokd.lineage.experiments.ExperimentRepo` (git plumbing: nothing in the workspace,
the index or ``HEAD`` changes). The experiment, named ``<search>-t<NNN>`` after the trial
number, is a commit on the commit the search started from holding

- the pipeline spec patched by the trial (what ``--apply`` would write), so
  ``dvc exp show`` / ``dvc params diff`` show its temperature, lambda, method and student;
- the pipeline's metrics file (``reports/metrics.json`` under the pipeline root) with the
  keys the ``evaluate`` stage writes for the student: ``student.accuracy`` (test), ``nll``,
  ``ece``, ``params``, ``flops``, ``latency_ms`` (a language model: ``perplexity``, ``nll``,
  ``bits_per_byte``, ``params``), computed by the trial as ``evaluate`` does.
  Teacher and baseline are not measured by a trial and are left out. Beside them, ``trial``:
  ``status`` (completed / stopped / failed), ``epochs`` run of ``max_epochs``, and for a trial
  that did not complete the ``reason``; ``dvc exp show`` shows them as columns.

``dvc exp apply <name>`` then ``dvc repro`` retrains exactly that student. A trial stopped
early (ASHA, the time budget) or failed (a non-finite loss) is recorded when the search ends, as
``<search>-t<NNN>-stopped`` / ``-failed``, so ``dvc exp show`` accounts for every trial that ran:
its metrics are those of its last epoch (stopped; the student block of a failed one keeps only
its size), and applying it retrains the whole schedule, which the trial never ran. A trial that
never started has nothing to record. ``record_experiments: completed`` in the search spec (or
``--completed-only``) records the completed trials only; ``false`` (or ``--no-dvc-exp``)
none. Outside a git + DVC repository with a commit, the search logs one warning line and goes on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from autokd.lineage.experiments import ExperimentError, ExperimentRepo, NotRecordable, exp_name

#: trial key -> key of the evaluate stage's per-model metrics
METRIC_KEYS = {"test_accuracy": "accuracy", "test_nll": "nll", "test_ece": "ece", "params": "params",
               "flops": "flops", "latency_ms": "latency_ms"}
ROLE = "student"


def trial_metrics(final: dict[str, Any], keys: dict[str, str] | None = None,
                  trial: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metrics file of a trial: ``{"student": {...}}`` with the evaluate stage's keys
    (``keys``: trial key -> stage key, default the classification pipeline's), and ``trial``
    (its status, epochs, reason) when given."""
    keys = METRIC_KEYS if keys is None else keys
    doc: dict[str, Any] = {ROLE: {dst: final[src] for src, dst in keys.items() if final.get(src) is not None}}
    if trial is not None:
        doc["trial"] = {k: v for k, v in trial.items() if v not in (None, "")}
    return doc


class TrialExperiments:
    """Records completed trials of one search as DVC experiments (see the module docstring)."""

    def __init__(self, repo: ExperimentRepo, search: str, pipeline_rel: str, pipeline_text: str,
                 metrics_rel: str, log: Callable[[str], None] = print, metric_keys: dict[str, str] | None = None,
                 completed_only: bool = False):
        self.repo = repo
        self.completed_only = completed_only
        self.search = search
        self.pipeline_rel = pipeline_rel
        self.pipeline_text = pipeline_text
        self.metrics_rel = metrics_rel
        self.metric_keys = metric_keys
        self.log = log
        self.names: dict[int, str] = {}  # trial number -> experiment name
        self.statuses: dict[int, str] = {}  # trial number -> status it was recorded with
        self.seconds: list[float] = []  # time spent recording each trial
        self.failures = 0

    @classmethod
    def open(cls, search: str, pipeline_file: str | Path, root: str | Path, enabled: bool | str = True,
             log: Callable[[str], None] = print, metric_keys: dict[str, str] | None = None) -> TrialExperiments | None:
        """A recorder for a search over ``pipeline_file`` with its artifacts under ``root``;
        None (with one warning line) where trials cannot be recorded, or when turned off.
        ``enabled``: True (every trial that ran), ``"completed"`` (completed ones only), False."""
        if enabled not in (True, False, "completed"):
            raise ValueError(f"enabled: expected true, false or 'completed', got {enabled!r}")
        if not enabled:
            return None
        from autokd.stages.layout import Layout

        pipeline_file = Path(pipeline_file).resolve()
        try:
            repo = ExperimentRepo.discover(pipeline_file)
            pipeline_rel = repo.relpath(pipeline_file)
            metrics_rel = repo.relpath(Layout(Path(root).resolve()).reports / "metrics.json")
        except NotRecordable as exc:
            log(f"[search] warning: trials are not recorded as DVC experiments: {exc}")
            return None
        rec = cls(repo, search, pipeline_rel, pipeline_file.read_text(), metrics_rel, log, metric_keys,
                  completed_only=enabled == "completed")
        if repo.dirty(exclude=[pipeline_rel, metrics_rel, "dvc.lock"]):
            log(f"[search] note: tracked files differ from {repo.baseline[:7]}; each trial's experiment holds "
                f"{repo.baseline[:7]} with only its spec and metrics replaced")
        return rec

    def name(self, number: int, status: str = "completed") -> str:
        return exp_name(self.search, f"t{number:03d}", "" if status == "completed" else status)

    def record(self, number: int, patch: dict[str, Any], final: dict[str, Any], desc: str = "",
               status: str = "completed", reason: str = "", epochs: int | None = None,
               max_epochs: int | None = None) -> str | None:
        """Record trial ``number`` (its spec ``patch``, last metrics and status); return the
        experiment name, or None if git failed (one warning line; the search goes on)."""
        from autokd.search.hparams.results import _clean, apply_patch_text

        t0 = time.perf_counter()
        name = self.name(number, status)
        trial = {"status": status, "epochs": epochs, "max_epochs": max_epochs,
                 "reason": reason if status != "completed" else ""}
        if status == "failed":  # its last accuracy is not the model's: keep what is true of it, its size
            from autokd.search.hparams.results import static_metrics

            final = static_metrics(final)
        try:
            spec_text = apply_patch_text(self.pipeline_text, patch)
            metrics = json.dumps(_clean(trial_metrics(final, self.metric_keys, trial)), indent=2) + "\n"
            message = (f"autokd search {self.search}: trial {number}" + (f" ({desc})" if desc else "")
                       + ("" if status == "completed" else f", {status}: {reason}"))
            self.repo.record(name, {self.pipeline_rel: spec_text, self.metrics_rel: metrics}, message)
        except (ExperimentError, NotRecordable, OSError, ValueError) as exc:
            self.failures += 1
            self.log(f"[search] warning: trial {number} was not recorded as a DVC experiment: {exc}")
            return None
        self.names[number] = name
        self.statuses[number] = status
        self.seconds.append(time.perf_counter() - t0)
        return name

    def finish(self, records: list) -> None:
        """After the search: record each trial not recorded yet (a completed one that finished
        before a resumed search's interruption or whose recording failed; every stopped or failed
        one, unless completed only; not one that never started), and name each trial's experiment in its
        :class:`~autokd.search.hparams.results.TrialRecord` (those another process of a shared
        Optuna study recorded included)."""
        try:
            present = self.repo.experiments()
        except ExperimentError as exc:
            self.log(f"[search] warning: cannot list DVC experiments: {exc}")
            present = {}
        for r in records:
            if r.status not in ("completed", "stopped", "failed") or (self.completed_only and r.status != "completed"):
                continue
            if r.status == "stopped" and not r.final and not r.epochs:  # never started: nothing trained or measured
                continue
            name = self.name(r.number, r.status)
            if name not in present and self.names.get(r.number) != name:
                self.record(r.number, r.patch, r.final, status=r.status, reason=r.reason, epochs=r.epochs,
                            max_epochs=r.max_epochs)
            if name in present or self.names.get(r.number) == name:
                self.names[r.number] = name
                self.statuses[r.number] = r.status
                r.experiment = name

    def summary(self) -> str:
        n = len(self.names)
        if not n:
            return f"[search] no trial ran: no DVC experiment recorded on {self.repo.baseline[:7]}"
        counts = {s: sum(1 for v in self.statuses.values() if v == s) for s in ("completed", "stopped", "failed")}
        done = [k for k, v in self.statuses.items() if v == "completed"]
        what = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        tail = (f"; `dvc exp apply {self.names[min(done)]}` then `dvc repro` retrains one" if done else "")
        return (f"[search] recorded {n} trial{'s' if n != 1 else ''} ({what}) as DVC experiments of "
                f"{self.repo.baseline[:7]} ({self.search}-t…; `dvc exp show`){tail}")
