"""Distillation step time of autokd's training loop vs a hand-written loop, same model and cache.

Both train the pipeline's student (a decoder-only LM) with L = ½·CE + ½·forward KL against the
teacher's cached top-k at T = 1, on the same batches, one CPU thread:

* autokd: ``autokd.train.train`` with ``LMDistillObjective`` reading a ``TopKTeacherOutputs``
  (per-epoch checkpoint written, validation pass, progress bookkeeping — what the pipeline runs);
* hand-written: a plain PyTorch loop, the forward KL over the k cached tokens plus the tail
  written inline, no checkpoint, no validation.

The two alternate epoch by epoch (A B A B …) so machine noise hits both alike; the figure is the
ratio of the medians of seconds per training step.

    python benchmarks/lm_step_overhead.py [--epochs 3] [--windows 256] [--k 32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--windows", type=int, default=256)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--out", default="benchmarks/results/lm_step_overhead.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from autokd.data.prepare import Split
    from autokd.models import build_model
    from autokd.spec.pipeline import TrainSpec
    from autokd.train.lm_objective import LMDistillObjective
    from autokd.train.topk_cache import compute_topk
    from autokd.train.trainer import train

    g = torch.Generator().manual_seed(0)
    windows = torch.randint(0, args.vocab, (args.windows, args.context + 1), generator=g)
    split = Split(x=windows[:, :-1].contiguous(), y=windows[:, 1:].contiguous(), index=torch.arange(args.windows))
    val = Split(x=split.x[:16], y=split.y[:16], index=torch.arange(16))
    torch.manual_seed(1)
    teacher = build_model("decoder", {"layers": 4, "width": 256, "heads": 4}, (args.context,), args.vocab)
    cache = compute_topk(teacher, split.x, args.k, 1.0, torch.device("cpu"), "d", "t")
    student_params = {"layers": 2, "width": 128, "heads": 4}
    cfg = TrainSpec(epochs=1, batch_size=16, lr=3e-3, weight_decay=0.01, schedule="constant")
    steps = (args.windows + cfg.batch_size - 1) // cfg.batch_size

    def autokd_epoch(ckpt: Path) -> float:
        torch.manual_seed(2)
        model = build_model("decoder", student_params, (args.context,), args.vocab)
        objective = LMDistillObjective("fkl", {}, 0.5, cache=cache)
        t0 = time.perf_counter()
        train(model, split, val, cfg, objective, device=torch.device("cpu"), checkpoint_dir=ckpt,
              run_fingerprint=str(time.time()), progress=False)
        return (time.perf_counter() - t0) / steps

    def hand_epoch() -> float:
        torch.manual_seed(2)
        model = build_model("decoder", student_params, (args.context,), args.vocab)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
        lp, ix, tail = cache.logprobs.float(), cache.indices.long(), cache.tail.float()
        order = torch.randperm(args.windows, generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        for start in range(0, args.windows, cfg.batch_size):
            b = order[start:start + cfg.batch_size]
            logits = model(split.x[b])
            v = logits.shape[-1]
            ce = F.cross_entropy(logits.reshape(-1, v), split.y[b].reshape(-1))
            log_q = F.log_softmax(logits, dim=-1)
            log_qk = log_q.gather(-1, ix[b])
            q_tail = (-torch.expm1(torch.logsumexp(log_qk, -1))).clamp_min(1e-38).log()
            p_k, p_tail = lp[b].exp(), tail[b].exp()
            kl = (p_k * (lp[b] - log_qk)).sum(-1) + p_tail * (tail[b] - q_tail)
            loss = 0.5 * ce + 0.5 * kl.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / steps

    a, h = [], []
    with tempfile.TemporaryDirectory() as tmp:
        hand_epoch()  # warm-up of both paths
        autokd_epoch(Path(tmp) / "warm")
        for e in range(args.epochs):
            a.append(autokd_epoch(Path(tmp) / f"a{e}"))
            h.append(hand_epoch())
    ratio = statistics.median(a) / statistics.median(h)
    print(f"seconds per step: autokd {statistics.median(a):.4f} (train loop, checkpoint, validation), "
          f"hand-written {statistics.median(h):.4f}; ratio {ratio:.3f}")
    result = {"command": "python " + " ".join(sys.argv), "autokd_s_per_step": a, "hand_s_per_step": h,
              "ratio": round(ratio, 4), "windows": args.windows, "k": args.k, "vocab": args.vocab}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
