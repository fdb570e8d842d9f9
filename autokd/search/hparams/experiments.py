"""Each completed trial of a search as a DVC experiment of the repository.

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
  Teacher and baseline are not measured by a trial and are left out.

``dvc exp apply <name>`` then ``dvc repro`` retrains exactly that student. Trials stopped
early or failed are not recorded (they were not trained the way ``dvc repro`` trains).
Turned off by ``record_experiments: false`` in the search spec or ``--no-dvc-exp``; outside
a git + DVC repository with a commit, the search logs one warning line and goes on.
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


def trial_metrics(final: dict[str, Any], keys: dict[str, str] | None = None) -> dict[str, Any]:
    """The metrics file of a trial: ``{"student": {...}}`` with the evaluate stage's keys
    (``keys``: trial key -> stage key, default the classification pipeline's)."""
    keys = METRIC_KEYS if keys is None else keys
    return {ROLE: {dst: final[src] for src, dst in keys.items() if final.get(src) is not None}}


class TrialExperiments:
    """Records completed trials of one search as DVC experiments (see the module docstring)."""

    def __init__(self, repo: ExperimentRepo, search: str, pipeline_rel: str, pipeline_text: str,
                 metrics_rel: str, log: Callable[[str], None] = print, metric_keys: dict[str, str] | None = None):
        self.repo = repo
        self.search = search
        self.pipeline_rel = pipeline_rel
        self.pipeline_text = pipeline_text
        self.metrics_rel = metrics_rel
        self.metric_keys = metric_keys
        self.log = log
        self.names: dict[int, str] = {}  # trial number -> experiment name
        self.seconds: list[float] = []  # time spent recording each trial
        self.failures = 0

    @classmethod
    def open(cls, search: str, pipeline_file: str | Path, root: str | Path, enabled: bool = True,
             log: Callable[[str], None] = print, metric_keys: dict[str, str] | None = None) -> TrialExperiments | None:
        """A recorder for a search over ``pipeline_file`` with its artifacts under ``root``;
        None (with one warning line) where trials cannot be recorded, or when turned off."""
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
        rec = cls(repo, search, pipeline_rel, pipeline_file.read_text(), metrics_rel, log, metric_keys)
        if repo.dirty(exclude=[pipeline_rel, metrics_rel, "dvc.lock"]):
            log(f"[search] note: tracked files differ from {repo.baseline[:7]}; each trial's experiment holds "
                f"{repo.baseline[:7]} with only its spec and metrics replaced")
        return rec

    def name(self, number: int) -> str:
        return exp_name(self.search, f"t{number:03d}")

    def record(self, number: int, patch: dict[str, Any], final: dict[str, Any], desc: str = "") -> str | None:
        """Record trial ``number`` (its spec ``patch`` and last metrics); return the experiment
        name, or None if git failed (one warning line; the search goes on)."""
        from autokd.search.hparams.results import _clean, apply_patch_text

        t0 = time.perf_counter()
        name = self.name(number)
        try:
            spec_text = apply_patch_text(self.pipeline_text, patch)
            metrics = json.dumps(_clean(trial_metrics(final, self.metric_keys)), indent=2) + "\n"
            message = f"autokd search {self.search}: trial {number}" + (f" ({desc})" if desc else "")
            self.repo.record(name, {self.pipeline_rel: spec_text, self.metrics_rel: metrics}, message)
        except (ExperimentError, NotRecordable, OSError, ValueError) as exc:
            self.failures += 1
            self.log(f"[search] warning: trial {number} was not recorded as a DVC experiment: {exc}")
            return None
        self.names[number] = name
        self.seconds.append(time.perf_counter() - t0)
        return name

    def finish(self, records: list) -> None:
        """After the search: record any completed trial not recorded yet (one that finished
        before a resumed search's interruption, or whose recording failed), and name each
        completed trial's experiment in its :class:`~autokd.search.hparams.results.TrialRecord`
        (those another process of a shared Optuna study recorded included)."""
        try:
            present = self.repo.experiments()
        except ExperimentError as exc:
            self.log(f"[search] warning: cannot list DVC experiments: {exc}")
            present = {}
        for r in records:
            if r.status != "completed":
                continue
            name = self.name(r.number)
            if name not in present and r.number not in self.names:
                self.record(r.number, r.patch, r.final)
            if name in present or r.number in self.names:
                self.names.setdefault(r.number, name)
                r.experiment = name

    def summary(self) -> str:
        n = len(self.names)
        if not n:
            return f"[search] no trial completed: no DVC experiment recorded on {self.repo.baseline[:7]}"
        first = self.names[min(self.names)]
        return (f"[search] recorded {n} completed trial{'s' if n != 1 else ''} as DVC experiments of "
                f"{self.repo.baseline[:7]} ({self.search}-t…; `dvc exp show`); `dvc exp apply {first}` then "
                "`dvc repro` retrains one")
