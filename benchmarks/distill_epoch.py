"""One distillation epoch: autokd's trainer vs a minimal hand-written PyTorch KD loop.

Same student model (the default spec's), same data (digits train split), same batch size,
same cached teacher logits, same optimizer and 1 torch thread. The two are run alternately
so machine noise hits both; the figure is the ratio of medians from one run.

    python benchmarks/distill_epoch.py [--epochs 15] [--spec pipelines/default.yaml]
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

from autokd.data.prepare import prepare_data
from autokd.models import build_model
from autokd.spec import load_pipeline_spec
from autokd.spec.load import method_params
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
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = load_pipeline_spec(args.spec)
    cfg = spec.student.train.model_copy(update={"epochs": 1})
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_data(spec.data, Path(tmp) / "data")
        seed_everything(0)
        teacher = build_model(spec.teacher.model.name, spec.teacher.model.params, data.input_shape, data.num_classes)
        with torch.no_grad():
            t_logits = teacher.eval()(data.train.x)  # an untrained teacher: the cost is the same
        cache = TeacherOutputs(t_logits, data.sha256, "bench")

        def student():
            seed_everything(0)
            return build_model(spec.student.model.name, spec.student.model.params, data.input_shape, data.num_classes)

        cpu = torch.device("cpu")
        m_hand = student()
        opt = torch.optim.AdamW(m_hand.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(0)
        hand_t, ours_t = [], []
        for epoch in range(args.epochs + 1):
            t0 = time.perf_counter()
            hand_written_epoch(m_hand, opt, data.train.x, data.train.y, t_logits, cfg.batch_size,
                               spec.distill.temperature, spec.distill.alpha, gen)
            t1 = time.perf_counter()
            m = student()
            obj = DistillObjective(spec.distill.method, method_params(spec), spec.distill.alpha, cache=cache)
            t2 = time.perf_counter()
            train(m, data.train, data.val, cfg, obj, device=cpu, checkpoint_dir=Path(tmp) / f"ck{epoch}",
                  run_fingerprint="bench", progress=False)
            t3 = time.perf_counter()
            if epoch > 0:  # the first round warms up both
                hand_t.append(t1 - t0)
                ours_t.append(t3 - t2)
    h, o = statistics.median(hand_t), statistics.median(ours_t)
    print(f"command: python benchmarks/distill_epoch.py --spec {args.spec} --epochs {args.epochs}")
    print(f"train samples {len(data.train)}, batch {cfg.batch_size}, student {spec.student.model.name}, 1 thread")
    print(f"hand-written KD epoch: median {h * 1000:.1f} ms")
    print(f"autokd KD epoch (incl. validation pass and checkpoint): median {o * 1000:.1f} ms")
    print(f"ratio autokd / hand-written: {o / h:.3f} (goal <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
