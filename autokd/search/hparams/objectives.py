"""The metrics a search can optimise: spec name -> the key each trial reports every epoch.

The search never looks at the test split: ``student.accuracy`` is the *validation* accuracy
of the student (per predicted token for a language model) and ``student.perplexity`` the
validation perplexity of a language model. Every trial also reports its test metrics
(computed exactly as the pipeline's ``evaluate`` stage does), which ``trials.csv`` and
``best.yaml`` show beside them. Each objective names the tasks it exists for.
"""

from __future__ import annotations

from dataclasses import dataclass

from autokd.spec.errors import SpecIssue, suggest


@dataclass(frozen=True)
class Objective:
    name: str  # as written in the search spec
    key: str  # as reported by every trial
    summary: str
    worst: dict  # the value a failed trial reports, per direction
    tasks: tuple[str, ...] = ("classify", "lm")  # the pipeline tasks whose trials report it


OBJECTIVES: dict[str, Objective] = {}


def register_objective(name: str, key: str, summary: str, worst_max: float, worst_min: float,
                       tasks: tuple[str, ...] = ("classify", "lm")) -> None:
    OBJECTIVES[name] = Objective(name, key, summary, {"max": worst_max, "min": worst_min}, tasks)


register_objective("student.accuracy", "val_accuracy", "validation accuracy of the distilled student", 0.0, 1.0)
register_objective("student.val_loss", "val_loss", "validation cross-entropy of the student", -1e9, 1e9)
register_objective("student.params", "params", "trainable parameters of the student", 0.0, 1e18)
register_objective("student.flops", "flops", "multiply-accumulates of one batch-1 forward pass (a language model: "
                   "one context window)", 0.0, 1e18)
register_objective("student.latency_ms", "latency_ms", "median batch-1 CPU latency (1 thread), ms", 0.0, 1e9,
                   tasks=("classify",))
register_objective("student.perplexity", "val_perplexity", "validation perplexity of a distilled language model",
                   0.0, 1e18, tasks=("lm",))

NOT_SEARCHABLE = {
    "student.test_accuracy": "test accuracy is reported beside every trial but never searched on "
    "(choose student.accuracy, the validation accuracy)",
    "student.test_perplexity": "test perplexity is reported beside every trial but never searched on "
    "(choose student.perplexity, the validation perplexity)",
}


def objective_issue(name: str, loc: tuple, task: str = "classify") -> SpecIssue | None:
    if name in OBJECTIVES:
        if task in OBJECTIVES[name].tasks:
            return None
        here = [n for n, o in OBJECTIVES.items() if task in o.tasks]
        return SpecIssue(loc, expected=f"a metric of a {task} pipeline ({', '.join(here)})", found=name)
    if name in NOT_SEARCHABLE:
        return SpecIssue(loc, expected=f"a searchable metric ({', '.join(OBJECTIVES)})", found=name,
                         hint=NOT_SEARCHABLE[name])
    return SpecIssue(loc, expected=f"a metric, one of: {', '.join(OBJECTIVES)}", found=name,
                     hint=suggest(name, OBJECTIVES))


def keys_and_modes(objectives: dict[str, str]) -> tuple[list[str], list[str]]:
    """The reported keys and directions of a spec's objectives, in order."""
    keys = [OBJECTIVES[n].key for n in objectives]
    modes = list(objectives.values())
    return keys, modes


def failed_values(objectives: dict[str, str]) -> dict[str, float]:
    """What a failed trial reports for each objective key (the worst value)."""
    return {OBJECTIVES[n].key: OBJECTIVES[n].worst[mode] for n, mode in objectives.items()}
