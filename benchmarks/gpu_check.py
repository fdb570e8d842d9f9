"""GPU check: the default pipeline's training path on CUDA with AMP (device: auto).

Runs the library (no DVC/DVCLive needed) on the default spec: prepare, teacher (40 epochs),
teacher-output cache, labels-only baseline, KD from the cache, a feature method (fitnet,
live teacher) and DKD, all on the GPU with AMP; then resume-from-checkpoint on the GPU and
an epoch-time comparison with the CPU. Prints every figure and writes them as JSON.

    python benchmarks/gpu_check.py [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from autokd.data.prepare import prepare_data
from autokd.evaluate.metrics import accuracy, predict_logits
from autokd.models import build_model
from autokd.stages import load_pipeline_spec
from autokd.spec.document import apply_overrides, load_yaml
from autokd.stages import method_params, validate_pipeline
from autokd.spec.pipeline import RuntimeSpec
from autokd.train import CrossEntropyObjective, resolve_device, seed_everything, train, use_amp
from autokd.train.distill import DistillObjective
from autokd.train.teacher_cache import TeacherOutputs, compute_teacher_logits
from autokd.models.registry import feature_names


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="pipelines/default.yaml")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out: dict = {"torch": torch.__version__}
    device = resolve_device(RuntimeSpec(device="auto"))
    amp = use_amp(RuntimeSpec(device="auto"), device)
    out["device"], out["amp"] = str(device), amp
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
    print(f"device {device} amp {amp} {out.get('gpu', '')}", flush=True)
    spec = load_pipeline_spec(args.spec, check_paths=False)
    tmp = Path(tempfile.mkdtemp())
    data = prepare_data(spec.data, tmp / "data")

    def fit(role_spec, objective, name, ckpt=None, dev=device, use=amp, epochs=None):
        cfg = role_spec.train if epochs is None else role_spec.train.model_copy(update={"epochs": epochs})
        seed_everything(cfg.seed)
        model = build_model(role_spec.model.name, role_spec.model.params, data.input_shape, data.num_classes)
        t0 = time.perf_counter()
        res = train(model, data.train, data.val, cfg, objective, device=dev, amp=use, checkpoint_dir=ckpt,
                    run_fingerprint=name, name=name, progress=False)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        acc = accuracy(predict_logits(model, data.test.x, dev), data.test.y)
        print(f"{name}: test accuracy {acc:.4f}, {res.epochs_run} epochs in {secs:.1f}s "
              f"(resumed_from={res.resumed_from})", flush=True)
        return model, res, acc, secs

    teacher, _, out["teacher_acc"], out["teacher_s"] = fit(spec.teacher, CrossEntropyObjective(), "teacher", tmp / "ck_t")
    # resume on the GPU: the same run again finds a finished checkpoint and trains nothing
    again, res2, acc2, _ = fit(spec.teacher, CrossEntropyObjective(), "teacher", tmp / "ck_t")
    out["resume_epochs_run"], out["resume_same_acc"] = res2.epochs_run, acc2 == out["teacher_acc"]
    logits = compute_teacher_logits(teacher, data.train, device)
    cache = TeacherOutputs(logits, data.sha256, "gpu")
    _, _, out["baseline_acc"], _ = fit(spec.student, CrossEntropyObjective(), "baseline")
    kd = DistillObjective("kd", method_params(spec.distill), spec.distill.alpha, cache=cache)
    _, _, out["student_kd_acc"], out["student_s"] = fit(spec.student, kd, "student_kd")
    out["kd_teacher_calls"] = kd.teacher_calls
    raw = load_yaml(args.spec)
    dkd_spec = validate_pipeline(apply_overrides(raw, {"distill.method": "dkd", "distill.params": {"beta": 8.0}}))
    dkd = DistillObjective("dkd", method_params(dkd_spec.distill), dkd_spec.distill.alpha, cache=cache)
    _, _, out["student_dkd_acc"], _ = fit(spec.student, dkd, "student_dkd")
    s_model = build_model(spec.student.model.name, spec.student.model.params, data.input_shape, data.num_classes)
    fit_obj = DistillObjective(
        "fitnet", {}, 0.5, teacher=teacher.to(device), feature_pairs=[("stage2", "stage3", 1.0)],
        student_shapes=feature_names(s_model, data.input_shape),
        teacher_shapes=feature_names(teacher.cpu(), data.input_shape),
    )
    teacher.to(device)
    _, _, out["student_fitnet_acc"], _ = fit(spec.student, fit_obj, "student_fitnet")
    out["fitnet_teacher_calls"] = fit_obj.teacher_calls
    # epoch time, teacher, GPU+AMP vs CPU (1 thread), 3 epochs each
    _, _, _, gpu3 = fit(spec.teacher, CrossEntropyObjective(), "teacher_gpu_3ep", epochs=3)
    torch.set_num_threads(1)
    _, _, _, cpu3 = fit(spec.teacher, CrossEntropyObjective(), "teacher_cpu_3ep", dev=torch.device("cpu"),
                        use=False, epochs=3)
    out["teacher_epoch_s_gpu"], out["teacher_epoch_s_cpu1"] = gpu3 / 3, cpu3 / 3
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
