"""One distillation epoch: autokd's trainer vs a minimal hand-written PyTorch KD loop.

Same student model (the default spec's), same data (digits train split), same batch size,
same cached teacher logits, same optimizer, 1 torch thread. Three loops run in turn in every
round so machine noise hits all of them:
  hand   the hand-written loop (forward, KD loss, backward, step; nothing else)
  bare   autokd's `train()` for one epoch without a validation split or checkpoint
  full   autokd's `train()` as the pipeline runs it: + validation pass + atomic checkpoint
Figures are ratios from one run: the median of per-round ratios (robust on a shared machine).

    python benchmarks/distill_epoch.py [--rounds 25] [--spec pipelines/default.yaml]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from autokd.data.prepare import Split, prepare_data
from autokd.models import build_model
from autokd.stages import load_pipeline_spec
from autokd.stages import method_params
from autokd.train import seed_everything, train
from autokd.train.distill import DistillObjective
from autokd.train.teacher_cache import TeacherOutputs


def hand_written_epoch(model, opt, x, y, t_logits, batch_size, temperature, alpha, gen):
    model.train()
    order = torch.randperm(len(y), generator=gen)
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        s = model(x[idx])
        t = t_logits[idx]
        kl = F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1), reduction="batchmean")
        loss = (1 - alpha) * F.cross_entropy(s, y[idx]) + alpha * temperature**2 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default="pipelines/default.yaml")
    ap.add_argument("--rounds", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = load_pipeline_spec(args.spec)
    cfg = spec.student.train.model_copy(update={"epochs": 1})
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_data(spec.data, Path(tmp) / "data")
        seed_everything(0)
        teacher = build_model(spec.teacher.model.name, spec.teacher.model.params, data.input_shape, data.num_classes)
        with torch.no_grad():
            t_logits = teacher.eval()(data.train.x)  # an untrained teacher: the cost is the same
        cache = TeacherOutputs(t_logits, data.sha256, "bench")
        no_val = Split(data.val.x[:0], data.val.y[:0], data.val.index[:0])

        def student():
            seed_everything(0)
            return build_model(spec.student.model.name, spec.student.model.params, data.input_shape, data.num_classes)

        def autokd_epoch(full: bool, r: int) -> float:
            m = student()
            obj = DistillObjective(spec.distill.method, method_params(spec.distill), spec.distill.alpha, cache=cache)
            t0 = time.perf_counter()
            train(m, data.train, data.val if full else no_val, cfg, obj, device=cpu,
                  checkpoint_dir=Path(tmp) / f"ck{r}" if full else None, run_fingerprint="bench", progress=False)
            return time.perf_counter() - t0

        m_hand = student()
        opt = torch.optim.AdamW(m_hand.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(0)
        times = {"hand": [], "bare": [], "full": []}
        for r in range(args.rounds + 1):
            t0 = time.perf_counter()
            hand_written_epoch(m_hand, opt, data.train.x, data.train.y, t_logits, cfg.batch_size,
                               spec.distill.temperature, spec.distill.alpha, gen)
            hand = time.perf_counter() - t0
            bare = autokd_epoch(False, r)
            full = autokd_epoch(True, r)
            if r > 0:  # round 0 warms everything up
                times["hand"].append(hand)
                times["bare"].append(bare)
                times["full"].append(full)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = {k: statistics.median(o / h for o, h in zip(times[k], times["hand"])) for k in ("bare", "full")}
    print(f"command: python benchmarks/distill_epoch.py --spec {args.spec} --rounds {args.rounds}")
    print(f"train samples {len(data.train)}, val {len(data.val)}, batch {cfg.batch_size}, "
          f"student {spec.student.model.name}, 1 thread")
    for k, label in (("hand", "hand-written KD epoch"), ("bare", "autokd epoch (training only)"),
                     ("full", "autokd epoch + validation pass + checkpoint")):
        print(f"{label}: median {med[k] * 1000:.1f} ms")
    print(f"ratio autokd/hand-written, training only: {ratio['bare']:.3f} (goal <= 1.10)")
    print(f"ratio autokd/hand-written, as the pipeline runs it: {ratio['full']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
