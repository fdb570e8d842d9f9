"""``autokd doctor`` for language-model pipelines: cheap signs that distillation will not pay.

* ``capacity_gap``: teacher/student parameter ratio above
  :data:`autokd.stages.health.CAPACITY_RATIO_MAX` (150×) warns (a larger student, or a
  mid-sized model between them, closes it).
* ``vocabulary``: teacher, student and tokenizer agree. A Hugging Face model's ``config.json``
  rows must cover the pipeline's tokenizer (more rows: a padded embedding, its logits cut, said
  ``ok``; fewer: the model cannot be built). When the model's folder has its own
  ``tokenizer.json``, its token → id table must be the pipeline's: a model trained with other
  ids would be taught (and would teach) the wrong tokens. Warns naming the first difference.
* ``teacher_vs_baseline``: with a trained (or pretrained) teacher and the labels-only student
  under ``--root`` made from this spec, the teacher's validation perplexity must be below the
  student's; else it has nothing to teach.
* ``target_entropy`` / ``gradient_balance``: the classifier's checks; not computed for language
  models (a ``skip`` line says so). ``kd_gain`` needs the distilled student (``evaluate``).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from autokd.lineage.manifest import read_manifest
from autokd.models.artifact import MODEL_FILE
from autokd.spec.document import dump_spec
from autokd.spec.lm import LMPipelineSpec
from autokd.stages.health import CAPACITY_RATIO_MAX, Check, _check, skipped
from autokd.stages.layout import Layout

CHECK_ORDER = ("teacher_vs_baseline", "target_entropy", "capacity_gap", "gradient_balance", "vocabulary", "kd_gain")


def lm_capacity_gap(teacher_params: int, student_params: int) -> Check:
    ratio = teacher_params / max(student_params, 1)
    facts = f"teacher {teacher_params:,} / student {student_params:,} params = {ratio:.1f}x"
    warn = ratio > CAPACITY_RATIO_MAX
    msg = (f"extreme capacity gap: {facts} (> {CAPACITY_RATIO_MAX:g}x); try a larger student, or distil first into a "
           "mid-sized model and from it into the student" if warn else f"{facts} (warn above {CAPACITY_RATIO_MAX:g}x)")
    return _check("capacity_gap", warn, ratio, CAPACITY_RATIO_MAX, msg)


def _folder_vocab(folder: Path) -> int | None:
    try:
        value = json.loads((folder / "config.json").read_text()).get("vocab_size")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) else None


def vocabulary(roles: dict[str, tuple[str, dict]], tokenizer, root: Path) -> Check:
    """Each role's model against the pipeline's tokenizer (see the module doc)."""
    size = int(tokenizer.get_vocab_size(with_added_tokens=True))
    ours = tokenizer.get_vocab(with_added_tokens=True)
    problems, notes = [], []
    for role, (name, params) in roles.items():
        if name != "hf_causal_lm":
            notes.append(f"{role} {name}: built at the tokenizer's {size:,} tokens")
            continue
        folder = Path(params.get("path", ""))
        folder = folder if folder.is_absolute() else root / folder
        rows = _folder_vocab(folder)
        if rows is None:
            problems.append(f"{role}: no readable config.json vocab_size in {params.get('path')}")
        elif rows < size:
            problems.append(f"{role}: {rows:,} vocabulary rows for the tokenizer's {size:,} tokens")
        else:
            notes.append(f"{role}: {rows:,} rows" + (f" (padded: logits cut to {size:,})" if rows > size else ""))
        own = folder / "tokenizer.json"
        if own.is_file():
            from autokd.data.text.tokenizer import load_tokenizer

            theirs = load_tokenizer(own).get_vocab(with_added_tokens=True)
            if theirs != ours:
                diff = sorted(set(ours.items()) ^ set(theirs.items()))[:1]
                token = diff[0][0] if diff else "?"
                problems.append(f"{role}: its folder's tokenizer.json differs from the pipeline's (token {token!r}: "
                                f"id {ours.get(token)} here, {theirs.get(token)} there); use data.tokenizer: "
                                f"{{kind: file, path: {params.get('path')}}}")
            else:
                notes.append(f"{role}: its tokenizer.json is the pipeline's")
    if problems:
        return _check("vocabulary", True, float(len(problems)), 0.0,
                      "teacher, student and tokenizer disagree: " + "; ".join(problems))
    return _check("vocabulary", False, 0.0, 0.0, "; ".join(notes))


def lm_teacher_vs_baseline(teacher_loss: float, baseline_loss: float) -> Check:
    t, b = math.exp(teacher_loss), math.exp(baseline_loss)
    warn = teacher_loss > baseline_loss
    msg = (f"teacher validation perplexity {t:.2f} is above the labels-only student's {b:.2f}: it has nothing to "
           "teach; train it longer or larger (or choose another pretrained teacher)" if warn else
           f"teacher validation perplexity {t:.2f} vs labels-only student {b:.2f}")
    return _check("teacher_vs_baseline", warn, baseline_loss - teacher_loss, 0.0, msg)


def _same(directory: Path, section: dict) -> bool:
    try:
        return read_manifest(directory).get("spec") == section
    except FileNotFoundError:
        return False


def lm_doctor_checks(spec: LMPipelineSpec, layout: Layout, spec_path: str | Path | None = None) -> list[Check]:
    """Every check whose inputs exist (module doc); ``skip`` lines name what the others need."""
    from autokd.data.text.prepare import load_prepared_text, prepare_text
    from autokd.models.registry import build_model, count_params

    args = f"{spec_path if spec_path is not None else '<spec>'} --root {layout.root}"
    with tempfile.TemporaryDirectory(prefix="autokd-doctor-") as tmp:
        if (layout.data / "meta.json").exists() and _same(layout.data, {"data": dump_spec(spec.data)}):
            data = load_prepared_text(layout.data)
        else:
            data = prepare_text(spec.data, Path(tmp) / "data", root=Path.cwd())
        roles = {r: (getattr(spec, r).model.name, getattr(spec, r).model.params) for r in ("teacher", "student")}
        params = {r: count_params(build_model(name, p, data.input_shape, data.num_classes), trainable_only=False)
                  for r, (name, p) in roles.items()}
        checks = [lm_capacity_gap(params["teacher"], params["student"]),
                  vocabulary(roles, data.tokenizer(), Path.cwd()),
                  skipped("kd_gain", "the distilled student (the evaluate stage reports it)")]
    for name in ("target_entropy", "gradient_balance"):
        checks.append(Check(name, "skip", None, None, "not checked for language models (a classifier check)"))
    t_dir, b_dir = layout.model_dir("teacher"), layout.model_dir("baseline")
    have = {"teacher": (t_dir / MODEL_FILE).exists() and _same(t_dir, {"teacher": dump_spec(spec.teacher)}),
            "baseline": (b_dir / MODEL_FILE).exists() and _same(b_dir, {"student": dump_spec(spec.student)})}
    if all(have.values()):
        t_loss = read_manifest(t_dir)["metrics"].get("val_loss")
        b_loss = read_manifest(b_dir)["metrics"].get("val_loss")
        checks.append(lm_teacher_vs_baseline(t_loss, b_loss) if t_loss is not None and b_loss is not None
                      else skipped("teacher_vs_baseline", "validation losses in the manifests"))
    else:
        need = [f"the teacher (`autokd doctor {args} --train-teacher`)" if not have["teacher"] else None,
                f"the labels-only student (`autokd stage train_baseline {args}`)" if not have["baseline"] else None]
        checks.append(skipped("teacher_vs_baseline", " and ".join(n for n in need if n)))
    return sorted(checks, key=lambda c: CHECK_ORDER.index(c.check))
