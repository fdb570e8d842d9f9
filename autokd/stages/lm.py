"""The language-model pipeline's stages (``task: lm``), on the same recipe as the classifier's.

``prepare`` (corpus -> tokenizer -> windows), ``train_teacher``, ``cache_teacher`` (top-k per
token), ``train_baseline`` (the student on labels, same epochs), ``train_baseline_equal`` (the
student on labels for as many FLOPs as distillation spends, teacher inference included),
``distill`` and ``evaluate``. Each writes a lineage manifest; the layout is
:class:`autokd.stages.layout.Layout` (``pipelines/lm/dvc.yaml`` puts it under ``runs/lm``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from autokd.data.text.prepare import PreparedText, load_prepared_text, prepare_text
from autokd.evaluate.flops import count_macs
from autokd.lineage.manifest import file_sha256, write_manifest
from autokd.models.artifact import MODEL_FILE, load_model
from autokd.models.features import feature_shapes
from autokd.spec.document import dump_spec
from autokd.spec.errors import SpecError
from autokd.spec.lm import LMPipelineSpec
from autokd.stages.layout import Layout, LiveLogger
from autokd.stages.lm_validate import effective_lm_distill
from autokd.stages.recipe import save_role, setup, train_role
from autokd.stages.validate import feature_pair_issues, method_params
from autokd.train.device import teacher_dtype
from autokd.train.lm_objective import LMDistillObjective
from autokd.train.sequence import GENERATIONS_NAME, load_generations, save_generations, teacher_generations
from autokd.train.topk_cache import TOPK_NAME, compute_topk, load_topk, save_topk
from autokd.train.trainer import CrossEntropyObjective
from autokd.utils.io import atomic_write_json

LM_STAGES = ("prepare", "train_teacher", "cache_teacher", "train_baseline", "train_baseline_equal", "distill",
             "evaluate")
EQUAL_COMPUTE_PATIENCE = 3
DATA_FILES = ["tokenizer.json", "train.safetensors", "val.safetensors", "test.safetensors", "meta.json"]


def prepare(spec: LMPipelineSpec, layout: Layout, progress: bool = True) -> PreparedText:
    """Documents -> split -> tokenizer (trained on the training split) -> windows; relative paths
    resolve against the working directory, as ``autokd validate`` resolves them."""
    data = prepare_text(spec.data, layout.data, root=Path.cwd())
    write_manifest(layout.data, kind="dataset", content=DATA_FILES, spec={"data": dump_spec(spec.data)},
                   metrics={"n_" + k: v for k, v in data.meta["counts"].items()},
                   extra={"data_sha256": data.sha256, "corpus": data.meta["corpus"]}, root=layout.root)
    print(f"[prepare] {data.meta['corpus']['source']}: windows {data.meta['counts']}, vocab {data.vocab_size}, "
          f"context {data.context}, {data.meta['bytes_per_token']['train']:.2f} bytes/token", flush=True)
    return data


def _labels_only(spec: LMPipelineSpec, layout: Layout, role: str, role_spec, section: str, progress: bool,
                 extra: Any = None):
    device, amp = setup(spec)
    data = load_prepared_text(layout.data)
    model, result = train_role(spec, role, role_spec, data, layout, lambda m: CrossEntropyObjective(), extra,
                               device, amp, progress)
    save_role(layout, role, model, role_spec, data, result, [layout.data], {section: dump_spec(role_spec)})
    return model


def train_teacher(spec: LMPipelineSpec, layout: Layout, progress: bool = True) -> None:
    if spec.teacher.train is None:
        return pretrained_teacher(spec, layout)
    _labels_only(spec, layout, "teacher", spec.teacher, "teacher", progress)


def pretrained_teacher(spec: LMPipelineSpec, layout: Layout) -> None:
    """``teacher.train: null``: the pretrained model as it is, evaluated on validation and saved
    (its weights unchanged) with a manifest saying it was not trained; its DVCLive folder holds
    that one evaluation and its checkpoint folder stays empty."""
    from autokd.models.registry import build_model
    from autokd.train.trainer import TrainResult, evaluate_split

    device, _ = setup(spec)
    data = load_prepared_text(layout.data)
    model = build_model(spec.teacher.model.name, spec.teacher.model.params, data.input_shape, data.num_classes)
    val = evaluate_split(model.to(device), data.val, device)
    layout.checkpoints("teacher").mkdir(parents=True, exist_ok=True)
    live = LiveLogger(layout.live("teacher"))
    live.log({"val_loss": val["loss"], "val_accuracy": val["accuracy"]})
    live.close()
    result = TrainResult(history=[], epochs_run=0, resumed_from=None, seconds=0.0,
                         final={"val_loss": val["loss"], "val_accuracy": val["accuracy"], "train_epochs": 0})
    save_role(layout, "teacher", model, spec.teacher, data, result, [layout.data],
              {"teacher": dump_spec(spec.teacher)})
    print(f"[train_teacher] pretrained {spec.teacher.model.params.get('path', spec.teacher.model.name)} used as it is "
          f"(teacher.train: null): val perplexity {math.exp(val['loss']):.2f}", flush=True)


def teacher_outputs_key(spec: LMPipelineSpec) -> dict[str, Any]:
    """What the teacher's outputs depend on besides the data and the teacher: k and T of the
    top-k cache, and for ``seqkd`` how the continuations are made (recorded in the manifest;
    a search trial with another key gets its own outputs)."""
    key: dict[str, Any] = {"top_k": spec.distill.top_k,
                           "temperature": effective_lm_distill(spec.distill)["params"]["temperature"]}
    seq = spec.distill.sequence
    if spec.distill.seqkd:
        sample = seq.sampling == "sample"
        key["sequence"] = {"prompt_tokens": seq.prompt_tokens, "sampling": seq.sampling,
                           "temperature": seq.temperature if sample else None,
                           "seed": spec.student.train.seed if sample else None}
    return key


def cache_teacher(spec: LMPipelineSpec, layout: Layout, progress: bool = True, out_dir: Path | None = None) -> None:
    """The teacher's top-k per training token at the distillation temperature, written once
    (into ``layout.teacher_outputs``, or ``out_dir``)."""
    device, _ = setup(spec)
    data = load_prepared_text(layout.data)
    teacher_path = layout.model_dir("teacher") / MODEL_FILE
    key = teacher_outputs_key(spec)
    out = Path(out_dir) if out_dir is not None else layout.teacher_outputs
    cache = compute_topk(load_model(teacher_path).to(dtype=teacher_dtype(spec.runtime, device)), data.train.x, spec.distill.top_k, key["temperature"], device,
                         data.sha256, file_sha256(teacher_path), segments=data.train.segments)
    out.mkdir(parents=True, exist_ok=True)
    save_topk(out / TOPK_NAME, cache)
    files = [TOPK_NAME]
    seq = spec.distill.sequence
    if "sequence" in key:  # sequence-level KD: the teacher continues every window once
        temp = seq.temperature if seq.sampling == "sample" else 0.0
        windows = teacher_generations(load_model(teacher_path), data.train.x, seq.prompt_tokens, temp,
                                      spec.student.train.seed, device)
        save_generations(out / GENERATIONS_NAME, windows,
                         {"data_sha256": data.sha256, "teacher_sha256": file_sha256(teacher_path)})
        files.append(GENERATIONS_NAME)
    dense = 4 * data.vocab_size
    write_manifest(out, kind="teacher_outputs", content=files, parents=[layout.data, layout.model_dir("teacher")],
                   spec=key, metrics={"bytes_per_token": cache.bytes_per_token, "dense_fp32_bytes_per_token": dense},
                   root=layout.root)
    print(f"[cache_teacher] top-{cache.k}: {cache.bytes_per_token:.0f} bytes/token (dense fp32: {dense})", flush=True)


def train_baseline(spec: LMPipelineSpec, layout: Layout, progress: bool = True) -> None:
    _labels_only(spec, layout, "baseline", spec.student, "student", progress)


def compute_budget(spec: LMPipelineSpec, data: PreparedText) -> dict[str, Any]:
    """Distillation's training FLOPs and the labels-only epochs that spend as many.

    A training step costs ≈ 3× a forward pass (forward + backward); distillation adds one teacher
    forward per training window — once for the cache, or every epoch when the teacher runs live
    (a representation term or ``teacher_outputs: live``) — plus, for ``seqkd``, the teacher's
    continuations once and a second student step on them, and for ``on_policy``, per on-policy
    batch, the student's sampling (≈ one forward) and the teacher's scoring. The teacher's own
    training is not counted: the teacher is the input distillation starts from."""
    from autokd.models import build_model

    macs = {r: count_macs(build_model(getattr(spec, r).model.name, getattr(spec, r).model.params, data.input_shape,
                                      data.num_classes), data.input_shape, dtype=torch.long)
            for r in ("teacher", "student")}
    epochs = spec.student.train.epochs
    seq = spec.distill.sequence
    teacher_passes = float(epochs if spec.distill.teacher_live else 1)
    per_epoch = 3 * macs["student"]
    student_passes = 3.0 * epochs
    if spec.distill.seqkd:  # the continuations once; a second student pass per step
        teacher_passes += 1
        student_passes += 3.0 * epochs
    if spec.distill.on_policy:  # per on-policy batch: sampling, then the teacher scores
        teacher_passes += seq.lmbda * epochs
        student_passes += seq.lmbda * epochs
    total = student_passes * macs["student"] + teacher_passes * macs["teacher"]
    return {"macs_per_window": macs, "teacher_passes": teacher_passes, "distill_macs_per_window": total,
            "equal_compute_epochs": int(math.ceil(total / per_epoch))}


def train_baseline_equal(spec: LMPipelineSpec, layout: Layout, progress: bool = True) -> None:
    """The labels-only student given distillation's compute (more epochs, same schedule shape), stopped
    early once validation has not improved for ``EQUAL_COMPUTE_PATIENCE`` epochs, ending with the
    weights of its lowest-validation-loss epoch (``train.keep: best``, ``train.patience``)."""
    data = load_prepared_text(layout.data)
    budget = compute_budget(spec, data)
    # up to distillation's compute, with early stopping: an over-long labels-only run would otherwise be
    # judged on its overfit last epoch
    role_spec = spec.student.model_copy(update={"train": spec.student.train.model_copy(
        update={"epochs": budget["equal_compute_epochs"], "keep": "best", "patience": EQUAL_COMPUTE_PATIENCE})})
    print(f"[train_baseline_equal] {budget['equal_compute_epochs']} epochs (distillation: "
          f"{spec.student.train.epochs} epochs + {budget['teacher_passes']} teacher pass(es))", flush=True)
    _labels_only(spec, layout, "baseline_equal", role_spec, "student", progress, extra={"budget": budget})


def build_lm_objective(spec: LMPipelineSpec, student: torch.nn.Module, data: PreparedText, layout: Layout,
                       device: torch.device, outputs_dir: Path | None = None) -> LMDistillObjective:
    """The objective: the top-k cache (from ``outputs_dir``, default ``layout.teacher_outputs``)
    unless the teacher must run live; feature pairs from the layer map."""
    from autokd.losses.layer_map import layer_pairs

    outputs = Path(outputs_dir) if outputs_dir is not None else layout.teacher_outputs
    d = spec.distill
    teacher_path = layout.model_dir("teacher") / MODEL_FILE
    rep = d.representation
    seq = d.sequence
    cache, generations = None, None
    if d.seqkd:
        generations, meta = load_generations(outputs / GENERATIONS_NAME)
        if meta.get("data_sha256") != data.sha256 or meta.get("teacher_sha256") != file_sha256(teacher_path):
            raise ValueError("the teacher's continuations were made from other data or another teacher; "
                             "re-run cache_teacher")
    if not d.teacher_live:
        cache = load_topk(outputs / TOPK_NAME)
        cache.check(data.sha256, len(data.train), file_sha256(teacher_path), k=min(d.top_k, data.vocab_size),
                    temperature=teacher_outputs_key(spec)["temperature"])
    teacher = (load_model(teacher_path).to(device, dtype=teacher_dtype(spec.runtime, device))
               if d.teacher_live or d.on_policy else None)
    pairs, s_shapes, t_shapes, representation = [], None, None, None
    if rep is not None:
        s_layers, t_layers = student.num_layers, teacher.num_layers
        for pattern in rep.features:
            if "{}" not in pattern:
                pairs.append((pattern, pattern))
                continue
            hidden = pattern == "block{}"
            for s, t in layer_pairs(rep.layer_map.kind, s_layers, t_layers, embeddings=hidden,
                                    explicit=rep.layer_map.pairs):
                name = (lambda i: "embed" if i == 0 else pattern.format(i - 1))
                pairs.append((name(s), name(t)))
        s_shapes = feature_shapes(student, data.input_shape, dtype=torch.long)
        t_shapes = feature_shapes(teacher, data.input_shape, dtype=torch.long)
        from autokd.losses import get_spec
        from autokd.spec.pipeline import FeaturePair

        kind = get_spec(rep.method).kind
        issues = feature_pair_issues([FeaturePair(student=s, teacher=t) for s, t in pairs], kind, s_shapes, t_shapes,
                                     ("distill", "representation", "features"))
        if issues:
            raise SpecError(None, issues)
        representation = (rep.method, dict(rep.params), rep.weight)
    return LMDistillObjective(d.method, method_params(d), d.alpha, teacher=teacher, cache=cache,
                              representation=representation, pairs=pairs, student_shapes=s_shapes,
                              teacher_shapes=t_shapes, sequence=seq, generations=generations,
                              seed=spec.student.train.seed)


def lm_distill_extra(spec: LMPipelineSpec, teacher_sha256: str) -> dict[str, Any]:
    """What the distilled student's checkpoint fingerprint adds to the role's (a search trial of
    the same spec uses the same, so the two resume alike)."""
    return {"distill": effective_lm_distill(spec.distill), "teacher": teacher_sha256}


def distill(spec: LMPipelineSpec, layout: Layout, progress: bool = True) -> None:
    """The student with the token-level objective: same initial weights and batches as the baseline."""
    device, amp = setup(spec)
    data = load_prepared_text(layout.data)
    teacher_sha = file_sha256(layout.model_dir("teacher") / MODEL_FILE)
    extra = lm_distill_extra(spec, teacher_sha)
    recipe = extra["distill"]
    from autokd.stages.lm_init import initial_student

    model, result = train_role(spec, "student", spec.student, data, layout,
                               lambda m: build_lm_objective(spec, m, data, layout, device),
                               extra, device, amp, progress, model=initial_student(spec, data, layout))
    parents = [layout.data, layout.model_dir("teacher")]
    if spec.distill.reads_cache:
        parents.append(layout.teacher_outputs)
    save_role(layout, "student", model, spec.student, data, result, parents,
              {"student": dump_spec(spec.student), "distill": recipe})


def evaluate(spec: LMPipelineSpec, layout: Layout, progress: bool = True) -> dict[str, Any]:
    """Test metrics of every model beside the teacher (``reports/metrics.json`` under the root)."""
    from autokd.evaluate.lm import lm_metrics, lm_metrics_many

    device, _ = setup(spec)
    data = load_prepared_text(layout.data)
    test = data.test
    teacher = load_model(layout.model_dir("teacher") / MODEL_FILE).to(device)
    e = spec.evaluate
    kw = dict(bytes_per_token=data.meta["bytes_per_token"]["test"], tokenizer=data.tokenizer(), device=device,
              prompts=e.prompts, prompt_tokens=e.prompt_tokens, new_tokens=e.new_tokens, speed=e.speed)
    roles = ["teacher", "baseline", "baseline_equal", "student"]
    out: dict[str, Any] = {"teacher": lm_metrics(teacher, None, test, **kw)}
    # the teacher's logits on the test split and its greedy continuations: computed once, not once a student
    students = {role: load_model(layout.model_dir(role) / MODEL_FILE).to(device) for role in roles[1:]}
    out.update(lm_metrics_many(students, teacher, test, **kw))
    s, b = out["student"]["perplexity"], out["baseline"]["perplexity"]
    out["ppl_reduction_vs_baseline"] = 1.0 - s / b
    out["ppl_reduction_vs_equal_compute"] = 1.0 - s / out["baseline_equal"]["perplexity"]
    out["budget"] = compute_budget(spec, data)
    kept = json.loads((layout.model_dir("baseline_equal") / "manifest.json").read_text()).get("metrics", {})
    out["budget"]["equal_compute_kept_epoch"] = kept.get("kept_epoch")  # its best-validation epoch
    out["budget"]["equal_compute_epochs_run"] = len(json.loads(
        (layout.model_dir("baseline_equal") / "history.json").read_text()))  # early stopping ends it sooner
    out["cache_bytes_per_token"] = (json.loads((layout.teacher_outputs / "manifest.json").read_text())
                                    .get("metrics", {}).get("bytes_per_token")
                                    if (layout.teacher_outputs / "manifest.json").exists() else None)
    layout.reports.mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.reports / "metrics.json", out)
    for role in roles:
        m = out[role]
        print(f"[evaluate] {role:15s} ppl {m['perplexity']:8.2f}  bits/byte {m['bits_per_byte']:.3f}"
              + (f"  top1-agree {m['top1_agreement']:.3f}  rougeL {m.get('rouge_l', float('nan')):.3f}"
                 if role != "teacher" else ""), flush=True)
    print(f"[evaluate] perplexity reduction vs labels-only: {out['ppl_reduction_vs_baseline']:+.1%}, "
          f"vs equal compute: {out['ppl_reduction_vs_equal_compute']:+.1%}", flush=True)
    return out


LM_STAGE_FUNCTIONS = {"prepare": prepare, "train_teacher": train_teacher, "cache_teacher": cache_teacher,
                      "train_baseline": train_baseline, "train_baseline_equal": train_baseline_equal,
                      "distill": distill, "evaluate": evaluate}


def run_lm_stage(name: str, spec_path: str | Path, root: str | Path = ".", progress: bool = True) -> Any:
    """Load and validate an LM spec, then run stage ``name`` under ``root``."""
    from autokd.stages.lm_validate import load_lm_spec

    if name not in LM_STAGE_FUNCTIONS:
        raise ValueError(f"unknown stage {name!r}; language-model stages: {', '.join(LM_STAGES)}")
    spec = load_lm_spec(spec_path)
    return LM_STAGE_FUNCTIONS[name](spec, Layout(Path(root)), progress)
