"""The tuned method comparison's search step: one method, the comparison's budget, validation only.

For ``method`` of a comparison spec (``pipelines/compare/methods.yaml``), :func:`tune_method`

1. builds the method's run pipeline (the comparison's pipeline + ``overrides`` + the method's
   entry, student seed ``tuning.seed``, ``tuning.epochs`` epochs) and a search spec over
   - ``distill.alpha`` (λ) in ``tuning.alpha``, unless the entry fixes ``alpha``;
   - ``distill.temperature`` where the method has a temperature and the entry does not fix it,
     in the range its parameter model hints;
   - ``distill.params.<knob>`` for every knob whose field carries a search hint
     (:meth:`autokd.losses.LossSpec.search_space`) and the entry does not set;
   with the same budget for every method: ``tuning.trials`` trials, FIFO (every trial runs every
   epoch), ``tuning.sampler`` seeded with ``tuning.sampler_seed``;
2. runs it with :func:`autokd.search.hparams.run_search` (Ray locally or on ``address``, or
   Optuna; ``autokd compare tune`` also reads ``$AUTOKD_RAY_ADDRESS``, so ``dvc repro`` can run
   every tune stage on a cluster) with ``evaluate_test=False``: the trials never read the test split, and the winner is
   the completed trial with the best validation accuracy (ties: lower validation loss);
3. writes ``runs/compare_tuned/<method>/chosen.json`` (:func:`autokd.stages.compare_tuned.chosen_path`):
   the winner's patch, the searched dimensions, the validation metrics of every trial; no test
   metric and no wall time (it is a cached DVC output). The search's own files go to
   ``searches/compare/<method>/`` (not cached).

A method with nothing to search (the entry fixes λ and the method has no hinted knob) gets an
empty patch without a search.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import yaml

from autokd.spec.compare import CompareSpec
from autokd.spec.document import apply_overrides, load_yaml, set_path
from autokd.stages.compare_tuned import chosen_path
from autokd.utils.io import atomic_write_json, atomic_write_text

#: What the selection reads from a trial: validation metrics only.
SELECTION_KEYS = ("val_accuracy", "val_loss")


def search_dir(root: str | Path, method: str) -> Path:
    return Path(root) / "searches" / "compare" / method


def _dim(hint: dict[str, Any]) -> dict[str, Any]:
    if hint.get("type") == "int":
        return {"type": "int", "low": int(hint["low"]), "high": int(hint["high"]), "log": bool(hint.get("log"))}
    return {"type": "loguniform" if hint.get("log") else "uniform", "low": float(hint["low"]),
            "high": float(hint["high"])}


def method_space(spec: CompareSpec, method: str) -> dict[str, dict[str, Any]]:
    """The search dimensions of ``method`` (spec path -> dimension), see the module docstring."""
    from autokd.losses import get_spec
    from autokd.stages.validate import uses_temperature

    entry = spec.methods[method]
    space: dict[str, dict[str, Any]] = {}
    if entry.alpha is None:
        a = spec.tuning.alpha
        space["distill.alpha"] = _dim({"low": a.low, "high": a.high, "log": a.log})
    hints = get_spec(method).search_space()
    if uses_temperature(method) and entry.temperature is None and "temperature" in hints:
        space["distill.temperature"] = _dim(hints["temperature"])
    for knob, hint in hints.items():
        if knob != "temperature" and knob not in entry.params:
            space[f"distill.params.{knob}"] = _dim(hint)
    return space


def method_pipeline(spec: CompareSpec, method: str, root: str | Path = ".") -> dict[str, Any]:
    """The pipeline mapping every trial of ``method`` patches (the run of seed ``tuning_seed``)."""
    data = apply_overrides(load_yaml(Path(root) / spec.pipeline), spec.run_overrides(method, spec.tuning_seed))
    if spec.tuning.epochs is not None:
        set_path(data, "student.train.epochs", spec.tuning.epochs)
    return data


def search_document(spec: CompareSpec, method: str, pipeline_file: str, space: dict[str, Any]) -> dict[str, Any]:
    """The search spec of ``method`` (paths relative to the repo root)."""
    from autokd.search.hparams.schema import SearchSpec

    t = spec.tuning
    doc: dict[str, Any] = {
        "name": f"compare-{method}",
        "pipeline": pipeline_file,
        "root": ".",
        "objectives": {"student.accuracy": "max"},
        "space": space,
        "budget": {"trials": t.trials, "max_concurrent": t.max_concurrent, "resources": {"cpu": 1, "gpu": 0}},
        "scheduler": {"type": "fifo"},  # every trial runs every epoch: the same budget for every method
        "sampler": {"type": t.sampler, "seed": t.sampler_seed, "n_startup_trials": max(1, t.trials // 2)},
    }
    if "record_experiments" in SearchSpec.model_fields:
        doc["record_experiments"] = False  # runs inside `dvc repro`: no experiments of its own
    return doc


def _selection_view(final: dict[str, Any]) -> dict[str, Any]:
    return {k: final[k] for k in SELECTION_KEYS if k in final}


def tune_method(spec: CompareSpec, method: str, root: str | Path = ".", *, address: str | None = None,
                backend: str = "ray", storage: str | None = None, resume: bool = False,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Search ``method`` with the comparison's budget; write and return its ``chosen.json``."""
    from autokd.search.hparams.run import run_search
    from autokd.spec.errors import SpecError, unknown_name_issue

    root = Path(root).resolve()
    if method not in spec.methods:
        raise SpecError(None, [unknown_name_issue(("method",), method, list(spec.methods), "a method of the comparison")])
    space = method_space(spec, method)
    out = chosen_path(root, method)
    doc: dict[str, Any] = {"method": method, "tuning": spec.tuning.model_dump(mode="json"),
                           "tuning_seed": spec.tuning_seed, "searched": list(space),
                           "selection": {"metric": "val_accuracy", "mode": "max", "tie_break": "val_loss (min)",
                                         "split": "validation"}}
    if not space:
        log(f"[tune] {method}: nothing to search (λ fixed, no hinted knob): its entry as it is")
        atomic_write_json(out, {**doc, "patch": {}, "trials": 0, "completed": 0, "val_accuracy": None, "candidates": []})
        return json.loads(out.read_text())
    sdir = search_dir(root, method)
    sdir.mkdir(parents=True, exist_ok=True)
    pipeline_file = sdir / "pipeline.yaml"
    atomic_write_text(pipeline_file, yaml.safe_dump(method_pipeline(spec, method, root), sort_keys=False))
    search_file = sdir / "search.yaml"
    atomic_write_text(search_file, yaml.safe_dump(
        search_document(spec, method, str(pipeline_file.relative_to(root)), space), sort_keys=False))
    log(f"[tune] {method}: {spec.tuning.trials} trials over {', '.join(space)} (seed {spec.tuning_seed}, "
        f"sampler {spec.tuning.sampler} seed {spec.tuning.sampler_seed})")
    if storage and backend == "ray":  # a base path/URI: one folder per method (Optuna: one study per method)
        storage = f"{storage.rstrip('/')}/compare-{method}"
    outcome = run_search(search_file, address=address, backend=backend, storage=storage, resume=resume,
                         overwrite=not resume, out_dir=sdir / "search", base_dir=root, live=False, log=log,
                         evaluate_test=False)
    best = outcome.best
    if best is None:
        raise RuntimeError(f"tuning {method}: no trial completed its schedule (see {sdir / 'search' / 'trials.csv'})")
    patch = {k: v for k, v in best.patch.items() if k in space}
    candidates = sorted(({"trial": r.number, "status": r.status, "patch": {k: v for k, v in r.patch.items() if k in space},
                          **_selection_view(r.final)} for r in outcome.records), key=lambda c: c["trial"])
    chosen = {**doc, "patch": patch, "trials": len(outcome.records),
              "completed": sum(r.status == "completed" for r in outcome.records),
              "trial": best.number, **_selection_view(best.final), "candidates": candidates}
    atomic_write_json(out, chosen)
    log(f"[tune] {method}: chose trial {best.number} (val accuracy {best.final.get('val_accuracy', float('nan')):.4f}): "
        f"{patch}; wrote {out}")
    return chosen


__all__ = ["SELECTION_KEYS", "method_pipeline", "method_space", "search_dir", "search_document", "tune_method"]
