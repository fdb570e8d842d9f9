"""Health checks: cheap signs that distillation will not pay, each with its threshold and a fix.

The ``distill`` and ``evaluate`` stages print one line per check and ``reports/metrics.json``
keeps them under ``health`` (a list of ``{check, status, value, threshold, message}``;
``status`` is ``ok`` or ``warn``). ``autokd doctor`` runs the ones that need no trained student
(:mod:`autokd.stages.health_run`). A warning never fails a run: it says what to try.

1. ``teacher_vs_baseline``: the teacher is *less* accurate than the labels-only student
   (validation accuracy after ``train_baseline``, test accuracy in ``evaluate``). Warns when
   ``teacher acc < baseline acc`` (threshold 0 points): the teacher has nothing to teach; train
   it longer or larger.
2. ``target_entropy``: the softened teacher targets are near-uniform at the effective
   temperature (the method's own default when ``distill.temperature`` is absent): mean of
   ``H(softmax(z_t / T)) / log(C)`` over the training split > :data:`ENTROPY_MAX` (0.9; 0.97 for
   ``lskd``, whose standardised targets are soft by construction). ``lskd``
   standardises the logits first and ``normkd`` divides by ``t_norm · std(z_t)``, as they
   distill. Little is left to transfer: lower T, or use ``lskd`` / ``normkd``. Methods without a
   temperature (``ctkd``, feature and relation methods) are not applicable.
3. ``capacity_gap``: teacher/student parameter ratio > :data:`CAPACITY_RATIO_MAX` (150×), or
   a student smaller than a linear classifier on the same inputs (``in·C + C`` parameters).
   Suggests a teaching-assistant chain (``autokd chain run``, TAKD: ``pipelines/takd.yaml``).
4. ``gradient_balance``: ratio of the gradient norms of ``λ·D`` and ``(1 − λ)·CE`` with respect
   to the student's parameters, summed over the first :data:`GRAD_BATCHES` training batches at
   the seed's initial weights (the ``distill`` stage also reports it at the trained weights,
   without judging it: once the labels are fit the CE gradient vanishes and any ratio grows).
   Warns when > :data:`GRAD_RATIO_MAX` (100: the labels are drowned out) or
   < :data:`GRAD_RATIO_MIN` (0.01: the distillation term does nothing). Fix λ
   (``distill.alpha``) or T (a T² factor scales ``D``).
5. ``kd_gain``: the distilled student is worse than the labels-only one by more than the noise:
   ``kd_gain < −spread`` where ``spread`` is a seed-to-seed spread when one is known and
   otherwise :data:`KD_GAIN_Z` (2) binomial standard errors of the test accuracy,
   ``2·sqrt(p(1 − p)/n_test)`` with ``p`` the mean of both accuracies. Suggests a
   hyperparameter search: the ``evaluate`` stage writes a search spec for this pipeline
   (:func:`search_spec_text`) next to the metrics and prints the command that runs it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F

from autokd.spec.pipeline import DistillSpec, PipelineSpec
from autokd.stages.validate import effective_distill

CHECKS = ("teacher_vs_baseline", "target_entropy", "capacity_gap", "gradient_balance", "kd_gain")
#: teacher accuracy below the baseline's by more than this (points of accuracy, 0..1) warns
TEACHER_MARGIN = 0.0
#: mean normalised entropy of the softened teacher targets above this warns
ENTROPY_MAX = 0.9
#: lskd standardises every row to unit variance, so its targets at its own T = 2 are soft by
#: construction (0.91 on the default digits teacher, where lskd gains +2 points): warn above this.
ENTROPY_MAX_STANDARDISED = 0.97
#: teacher/student parameter ratio above this warns
CAPACITY_RATIO_MAX = 150.0
#: ||λ·∇D|| / ||(1 − λ)·∇CE|| outside [GRAD_RATIO_MIN, GRAD_RATIO_MAX] warns
GRAD_RATIO_MAX = 100.0
GRAD_RATIO_MIN = 0.01
#: training batches the gradient ratio is measured on
GRAD_BATCHES = 4
#: standard errors of the test accuracy a negative kd_gain must exceed to warn
KD_GAIN_Z = 2.0
#: where the ``evaluate`` stage writes the suggested search spec, under the output root
SEARCH_SPEC = Path("reports") / "search_hparams.yaml"


@dataclass
class Check:
    """One check's outcome. ``status``: ``ok`` or ``warn`` (``skip`` only from ``autokd doctor``,
    for a check whose inputs do not exist yet)."""

    check: str
    status: str
    value: float | None
    threshold: float | None
    message: str

    @property
    def line(self) -> str:
        return f"{'WARN' if self.status == 'warn' else self.status} {self.check}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(name: str, warn: bool, value: float | None, threshold: float | None, message: str) -> Check:
    return Check(name, "warn" if warn else "ok", None if value is None else float(value),
                 None if threshold is None else float(threshold), message)


def skipped(name: str, needs: str) -> Check:
    return Check(name, "skip", None, None, f"not checked: needs {needs}")


# ------------------------------------------------------------------------------ 1. teacher vs baseline


def teacher_vs_baseline(teacher_acc: float, baseline_acc: float, split: str = "test") -> Check:
    diff = teacher_acc - baseline_acc
    warn = diff < -TEACHER_MARGIN
    msg = (f"teacher {split} accuracy {teacher_acc:.4f} is below the labels-only student's {baseline_acc:.4f}: "
           "it has nothing to teach; train the teacher longer or larger before distilling" if warn else
           f"teacher {split} accuracy {teacher_acc:.4f} vs labels-only student {baseline_acc:.4f}")
    return _check("teacher_vs_baseline", warn, diff, -TEACHER_MARGIN, msg)


# ------------------------------------------------------------------------------ 2. target entropy


def softened_logits(teacher_logits: torch.Tensor, distill: DistillSpec) -> tuple[torch.Tensor, str] | None:
    """The teacher logits as the method softens them (divided by the effective temperature), and
    a label for that temperature; ``None`` for a method without a temperature."""
    from autokd.losses.normalized import NORMKD_MIN_STD, standardize

    params = effective_distill(distill)["params"]
    z = teacher_logits.float()
    if distill.method == "normkd":
        t = params["t_norm"]
        return z / (t * z.std(dim=1, keepdim=True).clamp_min(NORMKD_MIN_STD)), f"t_norm={t:g}"
    if "temperature" not in params:
        return None
    t = float(params["temperature"])
    if distill.method == "lskd":
        return standardize(z) / t, f"T={t:g} on standardised logits"
    return z / t, f"T={t:g}"


def target_entropy(teacher_logits: torch.Tensor, distill: DistillSpec) -> Check:
    """Mean normalised entropy of the softened teacher targets over ``teacher_logits`` (rows)."""
    soft = softened_logits(teacher_logits, distill)
    if soft is None:
        return _check("target_entropy", False, None, ENTROPY_MAX,
                      f"not applicable: method {distill.method!r} has no temperature")
    z, label = soft
    n_classes = z.shape[1]
    logp = F.log_softmax(z, dim=1)
    h = -(logp.exp() * logp).sum(1) / math.log(n_classes)
    value = float(h.mean())
    limit = ENTROPY_MAX_STANDARDISED if distill.method == "lskd" else ENTROPY_MAX
    warn = value > limit
    if warn:
        fix = ("lower distill.temperature" if distill.method in ("lskd", "normkd")
               else "lower distill.temperature, or use method lskd or normkd")
        msg = (f"teacher targets at {label} are near-uniform (mean normalised entropy {value:.3f} > {limit:g}): "
               f"little to transfer; {fix}")
    else:
        msg = f"mean normalised entropy of the teacher targets at {label}: {value:.3f} (warn above {limit:g})"
    return _check("target_entropy", warn, value, limit, msg)


# ------------------------------------------------------------------------------ 3. capacity gap


def capacity_gap(teacher_params: int, student_params: int, input_shape: Iterable[int], num_classes: int) -> Check:
    ratio = teacher_params / max(student_params, 1)
    linear = math.prod(input_shape) * num_classes + num_classes
    tiny = student_params < linear
    warn = ratio > CAPACITY_RATIO_MAX or tiny
    facts = f"teacher {teacher_params:,} / student {student_params:,} params = {ratio:.1f}x"
    if warn:
        why = (f"> {CAPACITY_RATIO_MAX:g}x" if ratio > CAPACITY_RATIO_MAX else "") + \
              (("; " if ratio > CAPACITY_RATIO_MAX else "") + f"student smaller than a linear classifier ({linear:,})"
               if tiny else "")
        msg = (f"extreme capacity gap: {facts} ({why}); try a teaching-assistant chain (TAKD: "
               "`autokd chain run pipelines/takd.yaml`, a mid-sized model between teacher and student) "
               "or a larger student")
    else:
        msg = f"{facts} (warn above {CAPACITY_RATIO_MAX:g}x)"
    return _check("capacity_gap", warn, ratio, CAPACITY_RATIO_MAX, msg)


# ------------------------------------------------------------------------------ 4. gradient balance


def _grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return math.sqrt(sum(float((g.detach().float() ** 2).sum()) for g in grads if g is not None))


def gradient_ratio(model: torch.nn.Module, objective: Any, batches: Iterable, alpha: float) -> float:
    """``Σ ||λ·∇D|| / Σ ||(1 − λ)·∇CE||`` over ``batches``, gradients w.r.t. ``model``'s parameters.

    ``objective`` is a :class:`autokd.train.distill.DistillObjective`; its ``alpha`` is set to 0
    and 1 in turn to get each term alone (and restored). ``model`` is left in train mode and
    its BatchNorm statistics move: pass a copy of a model you keep.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    saved = objective.alpha
    kd = ce = 0.0
    model.train()
    try:
        for batch in batches:
            objective.alpha = 0.0
            ce += (1.0 - alpha) * _grad_norm(objective(model, batch)[0], params)
            objective.alpha = 1.0
            kd += alpha * _grad_norm(objective(model, batch)[0], params)
    finally:
        objective.alpha = saved
    return kd / ce if ce > 0 else math.inf


def gradient_balance(init: float, alpha: float, trained: float | None = None) -> Check:
    """The check on the ratio at the student's initial weights; the ratio at the trained weights,
    when given, is reported but does not decide (a student that fits its training labels has a
    vanishing CE gradient, so the ratio grows without bound whatever the balance was)."""
    if alpha in (0.0, 1.0):
        return _check("gradient_balance", False, None, GRAD_RATIO_MAX,
                      f"not applicable: distill.alpha={alpha:g} leaves only one term")
    shown = f"at init {init:.3g}" + (f" (trained: {trained:.3g}, not judged)" if trained is not None else "")
    if init > GRAD_RATIO_MAX:
        return _check("gradient_balance", True, init, GRAD_RATIO_MAX,
                      f"the distillation term's gradient is {init:.3g}x the label term's {shown}, above "
                      f"{GRAD_RATIO_MAX:g}x: the labels are drowned out; lower distill.alpha or the temperature")
    if init < GRAD_RATIO_MIN:
        return _check("gradient_balance", True, init, GRAD_RATIO_MIN,
                      f"the distillation term's gradient is {init:.3g}x the label term's {shown}, below "
                      f"{GRAD_RATIO_MIN:g}x: distillation barely acts; raise distill.alpha")
    return _check("gradient_balance", False, init, GRAD_RATIO_MAX,
                  f"|lambda*grad KD| / |(1-lambda)*grad CE| {shown} (warn outside {GRAD_RATIO_MIN:g}..{GRAD_RATIO_MAX:g})")


# ------------------------------------------------------------------------------ 5. kd_gain


def kd_gain_spread(student_acc: float, baseline_acc: float, n_test: int) -> float:
    """:data:`KD_GAIN_Z` binomial standard errors of a test accuracy: ``2·sqrt(p(1 − p)/n)``."""
    p = (student_acc + baseline_acc) / 2
    return KD_GAIN_Z * math.sqrt(p * (1 - p) / max(n_test, 1))


def kd_gain(student_acc: float, baseline_acc: float, n_test: int, spread: float | None = None,
            command: str | None = None) -> Check:
    """``spread``: the seed-to-seed spread when known (e.g. 2 std of kd_gain over seeds);
    otherwise the binomial one. ``command``: the search to suggest."""
    gain = student_acc - baseline_acc
    how = "seed spread" if spread is not None else f"{KD_GAIN_Z:g} binomial s.e. on {n_test} test samples"
    spread = kd_gain_spread(student_acc, baseline_acc, n_test) if spread is None else spread
    warn = gain < -spread
    if warn:
        msg = (f"distillation hurts: kd_gain {gain * 100:+.2f} pt is below -{spread * 100:.2f} pt ({how}); "
               f"search T, lambda and the method: `{command or 'autokd search hparams <search spec>'}`")
    else:
        msg = f"kd_gain {gain * 100:+.2f} pt (warn below -{spread * 100:.2f} pt, {how})"
    return _check("kd_gain", warn, gain, -spread, msg)


def search_spec_text(spec: PipelineSpec, pipeline: str, root: str) -> str:
    """A search spec (``autokd search hparams``) over T, λ and the method for ``pipeline``, whose
    artifacts are under ``root`` (both as the command line sees them)."""
    import yaml

    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.name or "pipeline").strip("-") or "pipeline"
    doc = {
        "name": f"{name}-health",
        "pipeline": pipeline,
        "root": root,
        "objectives": {"student.accuracy": "max"},
        "space": {
            "distill.temperature": {"type": "loguniform", "low": 1.0, "high": 16.0},
            "distill.alpha": {"type": "uniform", "low": 0.1, "high": 1.0},
            "distill.method": {"type": "choice", "values": ["kd", "lskd", "normkd", "dkd"],
                               "conditional": {"dkd": {"distill.params.beta": {"type": "uniform", "low": 1.0,
                                                                               "high": 8.0}}}},
        },
        "budget": {"trials": 16, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0}},
        "scheduler": {"type": "asha", "grace_period": max(1, min(5, spec.student.train.epochs)),
                      "reduction_factor": 3},
        "sampler": {"type": "tpe", "seed": 0, "n_startup_trials": 6},
    }
    return ("# Written by the evaluate stage's kd_gain health check: a search over T, lambda and the method.\n"
            f"#   autokd search hparams <this file>   (add --apply to write the best trial into {pipeline})\n"
            + yaml.safe_dump(doc, sort_keys=False))
