"""What a search writes under ``searches/<name>/``, and ``--apply``.

- ``trials.csv`` / ``trials.json``: one row per trial: its parameters, final and best
  metrics, epochs run, status (``completed`` / ``stopped`` early / ``failed`` with the
  reason), seconds, the node(s) it ran on, and its lineage (data hash, teacher hash, teacher
  outputs hash, the spec patch);
- ``best.yaml``: the winning trial's spec patch (dotted pipeline paths -> values) and
  metrics. Only trials that ran their whole schedule compete (a trial stopped early was
  never trained the way ``dvc repro`` trains);
- with several objectives: ``pareto.json`` (the non-dominated completed trials) and
  ``pareto.png`` (accuracy against the other objective);
- ``manifest.json``: lineage (parents: the prepared data, the teacher and its outputs).

:func:`apply_best` writes ``best.yaml``'s patch into the pipeline spec. It edits the YAML
round-trip (ruamel.yaml, as DVC itself does for ``dvc exp run -S``), so the file stays
readable and comments on untouched keys are kept; a comment inside a replaced block (e.g.
the whole ``student.model`` mapping, or ``distill.params``) is lost. The result is validated
before it is written (atomically).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autokd.search.hparams.objectives import OBJECTIVES
from autokd.utils.io import atomic_write_json, atomic_write_text

STATUSES = ("completed", "stopped", "failed", "running")
FINAL_KEYS = ("val_accuracy", "test_accuracy", "test_nll", "test_ece", "val_loss", "train_loss", "params", "flops", "latency_ms",
              "teacher_calls", "train_seconds")
#: kept in a trial's final metrics beside FINAL_KEYS; a task adds its columns to trials.csv
#: (:attr:`~autokd.search.hparams.tasks.SearchTask.extra_final_keys`)
TASK_KEYS = ("val_perplexity", "test_perplexity", "test_bits_per_byte")


@dataclass
class TrialRecord:
    """One trial, whichever backend ran it."""

    trial: str
    number: int
    status: str  # completed | stopped | failed | running
    reason: str
    params: dict[str, Any]  # the sampler's parameters (Optuna names)
    patch: dict[str, Any]  # spec path -> value
    epochs: int  # epochs run (reported)
    max_epochs: int
    final: dict[str, Any]  # last epoch's metrics
    best: dict[str, Any]  # best epoch by the first objective: {"epoch", key: value}
    seconds: float
    node: str
    nodes: list[str] = field(default_factory=list)
    teacher_mode: str = ""
    finished_at: float | None = None  # unix time of the trial's last result
    resumed_from: int = 0  # epochs restored from a checkpoint (retried or resumed trials)
    lineage: dict[str, Any] = field(default_factory=dict)
    experiment: str = ""  # the DVC experiment recording this trial (in a git + DVC repo)


def _num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (TypeError, ValueError):
            pass
    return _num(v)


def status_of(metrics: dict[str, Any], max_epochs: int | None) -> tuple[str, str]:
    """completed / stopped / failed from a trial's last result."""
    if not metrics:
        return "stopped", "never started (the time budget ran out or the search ended first)"
    if metrics.get("failed"):
        return "failed", str(metrics.get("error") or "failed")
    epochs = int(metrics.get("epoch") or 0)
    if max_epochs and epochs < max_epochs:
        return "stopped", f"stopped early after epoch {epochs}/{max_epochs} (scheduler or time budget)"
    return "completed", ""


def final_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: _clean(metrics.get(k)) for k in FINAL_KEYS + TASK_KEYS if k in metrics}


def static_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a failed trial's last result still says truthfully (its size, not its accuracy)."""
    return {k: _clean(metrics.get(k)) for k in ("params", "flops", "latency_ms", "teacher_calls") if k in metrics}


# ------------------------------------------------------------------------------ tables


def _flat_row(r: TrialRecord, objectives: dict[str, str], extra_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    row: dict[str, Any] = {"trial": r.trial, "number": r.number, "status": r.status, "reason": r.reason,
                           "epochs": r.epochs, "max_epochs": r.max_epochs, "seconds": round(r.seconds, 2)}
    for k in FINAL_KEYS + tuple(extra_keys):
        row[k] = r.final.get(k)
    primary = OBJECTIVES[next(iter(objectives))].key
    row[f"best_{primary}"] = r.best.get(primary)
    row["best_epoch"] = r.best.get("epoch")
    row["teacher_mode"] = r.teacher_mode
    row["resumed_from"] = r.resumed_from
    row["node"] = r.node
    row["nodes"] = " ".join(r.nodes)
    row["experiment"] = r.experiment
    for k, v in r.params.items():
        row[f"param:{k}"] = v
    row["patch"] = json.dumps(r.patch, sort_keys=True)
    row["data_sha256"] = r.lineage.get("data_sha256", "")
    row["teacher_sha256"] = r.lineage.get("teacher_sha256", "")
    return row


def write_trials(out_dir: Path, records: list[TrialRecord], objectives: dict[str, str],
                 extra_keys: tuple[str, ...] = ()) -> None:
    rows = [_flat_row(r, objectives, extra_keys) for r in records]
    columns: list[str] = []
    for row in rows:
        for k in row:
            if k not in columns:
                columns.append(k)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    atomic_write_text(out_dir / "trials.csv", buf.getvalue())
    atomic_write_json(out_dir / "trials.json", [_clean(asdict(r)) for r in records])


# ------------------------------------------------------------------------------ best / pareto


def _value(r: TrialRecord, name: str) -> float | None:
    v = r.final.get(OBJECTIVES[name].key)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _sort_key(r: TrialRecord, objectives: dict[str, str]):
    out = []
    for name, mode in objectives.items():
        v = _value(r, name)
        out.append(-v if mode == "max" else v)
    out.append(r.final.get("val_loss") if isinstance(r.final.get("val_loss"), (int, float)) else math.inf)
    out.append(r.number)
    return tuple(out)


def candidates(records: list[TrialRecord], objectives: dict[str, str]) -> list[TrialRecord]:
    """Completed trials with every objective measured."""
    return [r for r in records if r.status == "completed" and all(_value(r, n) is not None for n in objectives)]


def pareto_front(records: list[TrialRecord], objectives: dict[str, str]) -> list[TrialRecord]:
    """The non-dominated completed trials."""
    pool = candidates(records, objectives)

    def better_or_equal(a, b, name, mode):
        va, vb = _value(a, name), _value(b, name)
        return va >= vb if mode == "max" else va <= vb

    def strictly(a, b, name, mode):
        va, vb = _value(a, name), _value(b, name)
        return va > vb if mode == "max" else va < vb

    front = []
    for a in pool:
        dominated = any(
            all(better_or_equal(b, a, n, m) for n, m in objectives.items())
            and any(strictly(b, a, n, m) for n, m in objectives.items())
            for b in pool if b is not a
        )
        if not dominated:
            front.append(a)
    return sorted(front, key=lambda r: _sort_key(r, objectives))


def best_trial(records: list[TrialRecord], objectives: dict[str, str]) -> TrialRecord | None:
    """The winner: the best completed trial on the first objective (on the Pareto front when
    there are several), ties broken by validation loss, then by trial number."""
    pool = pareto_front(records, objectives) if len(objectives) > 1 else candidates(records, objectives)
    if not pool:
        return None
    return min(pool, key=lambda r: _sort_key(r, objectives))


def write_best(out_dir: Path, best: TrialRecord, search: str, pipeline: str, spec_file: str,
               objectives: dict[str, str], base_fingerprint: str, headline: str | None = None,
               repro: str = "dvc repro") -> Path:
    doc = {
        "search": search,
        "pipeline": pipeline,
        "trial": best.trial,
        "objectives": dict(objectives),
        "metrics": {k: v for k, v in best.final.items()},
        "epochs": best.epochs,
        "params": best.params,
        "patch": best.patch,
        "lineage": {**best.lineage, "pipeline_fingerprint": base_fingerprint},
    }
    if headline is None:
        headline = (f"validation accuracy {best.final.get('val_accuracy', float('nan')):.4f}, test accuracy "
                    f"{best.final.get('test_accuracy', float('nan')):.4f}")
    header = (f"# Best trial of search {search!r} ({spec_file}): {headline}.\n"
              f"# `autokd search hparams {spec_file} --apply-only` writes `patch` into {pipeline};\n"
              f"# `{repro}` then retrains exactly this student.\n")
    path = out_dir / "best.yaml"
    atomic_write_text(path, header + yaml.safe_dump(_clean(doc), sort_keys=False, default_flow_style=None))
    return path


def write_pareto(out_dir: Path, records: list[TrialRecord], objectives: dict[str, str]) -> list[str]:
    """``pareto.json`` and ``pareto.png``; returns the files written."""
    front = pareto_front(records, objectives)
    names = list(objectives)
    doc = {
        "objectives": dict(objectives),
        "front": [{"trial": r.trial, **{n: _value(r, n) for n in names},
                   "test_accuracy": r.final.get("test_accuracy"), "patch": r.patch} for r in front],
    }
    atomic_write_json(out_dir / "pareto.json", _clean(doc))
    written = ["pareto.json"]
    pool = candidates(records, objectives)
    if pool and len(names) >= 2:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        acc = next((n for n in names if n == "student.accuracy"), names[0])
        other = next(n for n in names if n != acc)
        fig, ax = plt.subplots(figsize=(6, 4.2))
        ax.scatter([_value(r, other) for r in pool], [_value(r, acc) for r in pool], s=18, c="0.6",
                   label="completed trials")
        fx = [_value(r, other) for r in sorted(front, key=lambda r: _value(r, other))]
        fy = [_value(r, acc) for r in sorted(front, key=lambda r: _value(r, other))]
        ax.plot(fx, fy, "o-", c="tab:red", label="Pareto front")
        ax.set_xlabel(f"{other} ({objectives[other]})")
        ax.set_ylabel(f"{acc} ({objectives[acc]}, validation)")
        if other in ("student.params", "student.flops"):
            ax.set_xscale("log")
        ax.legend()
        ax.set_title("search: accuracy vs " + other.split(".")[-1])
        fig.tight_layout()
        from autokd.utils.io import atomic_path

        with atomic_path(out_dir / "pareto.png") as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        plt.close(fig)
        written.append("pareto.png")
    return written


# ------------------------------------------------------------------------------ --apply


def _yaml_rt():
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 100
    return y


def _to_rt(value: Any) -> Any:
    """Plain data as ruamel nodes: leaf collections in flow style ({a: 1}, [1, 2])."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _to_rt(v)
        if all(not isinstance(v, dict) for v in value.values()):
            m.fa.set_flow_style()
        return m
    if isinstance(value, list):
        s = CommentedSeq([_to_rt(v) for v in value])
        if all(not isinstance(v, (dict, list)) for v in value):
            s.fa.set_flow_style()
        return s
    return value


def apply_patch_text(text: str, patch: dict[str, Any]) -> str:
    """``text`` (a pipeline spec) with ``patch`` (dotted paths) written in, comments kept."""
    from ruamel.yaml.comments import CommentedMap

    y = _yaml_rt()
    doc = y.load(text) if text.strip() else CommentedMap()
    if doc is None:
        doc = CommentedMap()
    for dotted, value in patch.items():
        parts = dotted.split(".")
        node = doc
        for part in parts[:-1]:
            if part not in node or node[part] is None:
                node[part] = CommentedMap()
            node = node[part]
        node[parts[-1]] = _to_rt(value)
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def apply_best(best_file: str | Path, pipeline_file: str | Path, root: str | Path | None = None) -> dict[str, Any]:
    """Write ``best.yaml``'s patch into ``pipeline_file``; validate first; return the patch."""
    from autokd.search.hparams.tasks import get_task

    best = yaml.safe_load(Path(best_file).read_text())
    patch = best["patch"]
    pipeline_file = Path(pipeline_file)
    new_text = apply_patch_text(pipeline_file.read_text(), patch)
    data = yaml.safe_load(new_text)
    get_task(data).validate(data, file=str(pipeline_file), text=new_text, root=Path(root) if root else Path.cwd())
    atomic_write_text(pipeline_file, new_text)
    return patch


def pipeline_fingerprint(base: dict[str, Any]) -> str:
    """A hash of a pipeline mapping (best.yaml records the one the search ran on)."""
    import hashlib

    return hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()[:16]
