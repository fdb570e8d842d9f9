"""Distillation step time of autokd's training loop vs a hand-written loop, same model and cache.

Both train the pipeline's student (a decoder-only LM, 2 layers, width 128) with
L = ½·CE + ½·forward KL against the teacher's cached top-k at T = 1, on the same batches in the
same order, one CPU thread, from the same initial weights:

* autokd: one ``autokd.train.train`` run of ``--epochs`` epochs with ``LMDistillObjective``
  reading a ``TopKTeacherOutputs`` (validation pass, checkpoint per epoch, progress bookkeeping:
  what the pipeline runs);
* hand-written: a plain PyTorch loop, the forward KL over the k cached tokens plus the tail
  written inline, the cache converted to fp32 once up front; no validation, no checkpoint.

The two alternate **step by step** (A B A B …: a forward pre-hook on autokd's objective runs
one hand-written step on the same windows before each autokd step), so the load of a shared
machine hits both alike; alternating whole epochs left the figures at the mercy of seconds-long
bursts of other work. Two figures, each a ratio of medians:

* **per training step** (median over every step of the run): autokd's interval from one step's start to the next (forward, loss,
  backward, optimizer step, accuracy bookkeeping, fetching the next batch, the cache lookup;
  the hand-written step's own time taken out) against one hand-written step: the fair comparison
  (also printed: the median of each autokd step against the mean of its two hand-written neighbours);
* **per epoch**: autokd's whole epoch, validation and checkpoint included (what the pipeline
  pays; the hand-written steps run inside it taken out), against the sum of the hand-written
  steps of that epoch.

The mean training losses of the two loops are printed side by side as a check that they compute
the same thing. Defaults are the pipeline's sizes (pipelines/lm.yaml: 1,010 training windows,
120 validation windows, context 128, vocabulary 1,024, top-32, batch 16).

    python benchmarks/lm_step_overhead.py [--epochs 5] [--windows 1010] [--val 120] [--k 32]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--windows", type=int, default=1010)
    ap.add_argument("--val", type=int, default=120)
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
    windows = torch.randint(0, args.vocab, (args.windows + args.val, args.context + 1), generator=g)
    x, y = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
    split = Split(x=x[:args.windows], y=y[:args.windows], index=torch.arange(args.windows))
    val = Split(x=x[args.windows:], y=y[args.windows:], index=torch.arange(args.val))
    torch.manual_seed(1)
    teacher = build_model("decoder", {"layers": 4, "width": 256, "heads": 4}, (args.context,), args.vocab)
    cache = compute_topk(teacher, split.x, args.k, 1.0, torch.device("cpu"), "d", "t")
    student_params = {"layers": 2, "width": 128, "heads": 4}
    cfg = TrainSpec(epochs=args.epochs, batch_size=16, lr=3e-3, weight_decay=0.01, schedule="constant", seed=0)
    steps = (args.windows + cfg.batch_size - 1) // cfg.batch_size

    def student() -> torch.nn.Module:
        torch.manual_seed(2)
        return build_model("decoder", student_params, (args.context,), args.vocab)

    lp, ix, tail = cache.logprobs.float(), cache.indices.long(), cache.tail.float()

    def hand_step(model, opt, b: torch.Tensor) -> float:
        """One step of the hand-written loop on windows ``b``; returns the loss times the tokens."""
        xb, yb = split.x[b], split.y[b]
        logits = model(xb)
        v = logits.shape[-1]
        ce = F.cross_entropy(logits.reshape(-1, v), yb.reshape(-1))
        log_q = F.log_softmax(logits, dim=-1)
        log_qk = log_q.gather(-1, ix[b])
        q_tail = (-torch.expm1(torch.logsumexp(log_qk, -1))).clamp_min(1e-38).log()
        p_k, p_tail = lp[b].exp(), tail[b].exp()
        kl = (p_k * (lp[b] - log_qk)).sum(-1) + p_tail * (tail[b] - q_tail)
        loss = 0.5 * ce + 0.5 * kl.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach() * yb.numel()

    hand_model = student()
    hand_opt = torch.optim.AdamW(hand_model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # per epoch: autokd's step intervals, the hand-written steps' times, the time spent in hand steps
    ep: dict[str, list] = {"a_steps": [], "h_steps": [], "h_loss": [], "resume": [None]}
    a_step, a_epoch, h_step, h_epoch, a_loss, h_loss = [], [], [], [], [], []
    all_a, all_h, paired = [], [], []  # every step of every epoch; autokd step / mean of its two hand neighbours
    clock = {"epoch_start": 0.0}

    def pre_hook(objective, inputs):
        """Before each autokd step: close the previous step's interval, then run one hand-written step
        on the same windows (A B A B at step level: machine noise hits both alike)."""
        now = time.perf_counter()
        if ep["resume"][0] is not None:  # forward + backward + step + bookkeeping + next batch of autokd
            ep["a_steps"].append(now - ep["resume"][0])
        batch = inputs[1]
        t0 = time.perf_counter()
        ep["h_loss"].append(hand_step(hand_model, hand_opt, batch.idx))
        ep["h_steps"].append(time.perf_counter() - t0)
        ep["resume"][0] = time.perf_counter()

    def on_epoch(rec, epoch):
        now = time.perf_counter()
        hand_total = sum(ep["h_steps"])
        all_a.extend(ep["a_steps"])
        all_h.extend(ep["h_steps"])
        hs = ep["h_steps"]
        paired.extend(a / (0.5 * (hs[i] + hs[i + 1])) for i, a in enumerate(ep["a_steps"]))
        a_step.append(statistics.median(ep["a_steps"]))
        h_step.append(statistics.median(ep["h_steps"]))
        a_epoch.append(now - clock["epoch_start"] - hand_total)  # autokd's epoch without the hand steps in it
        h_epoch.append(hand_total)
        a_loss.append(rec["train_loss"])
        h_loss.append(float(sum(ep["h_loss"])) / split.y.numel())
        print(f"epoch {epoch + 1}: autokd {a_step[-1]:.4f} s/step, {a_epoch[-1]:.2f} s/epoch; "
              f"hand-written {h_step[-1]:.4f} s/step, {h_epoch[-1]:.2f} s/epoch; "
              f"train loss {a_loss[-1]:.6f} vs {h_loss[-1]:.6f}", flush=True)
        ep.update(a_steps=[], h_steps=[], h_loss=[], resume=[None])
        clock["epoch_start"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        # warm-up of both paths (allocator, first-call costs) on a few batches
        warm = Split(x=split.x[:64], y=split.y[:64], index=torch.arange(64))
        train(student(), warm, val, cfg.model_copy(update={"epochs": 1}),
              LMDistillObjective("fkl", {}, 0.5, cache=cache), device=torch.device("cpu"),
              checkpoint_dir=Path(tmp) / "warm", run_fingerprint="warm", progress=False)
        m = student()
        o = torch.optim.AdamW(m.parameters(), lr=cfg.lr)
        for start in range(0, 64, cfg.batch_size):
            hand_step(m, o, torch.arange(start, start + cfg.batch_size))

        model, objective = student(), LMDistillObjective("fkl", {}, 0.5, cache=cache)
        hook = objective.register_forward_pre_hook(pre_hook)
        clock["epoch_start"] = time.perf_counter()
        try:
            train(model, split, val, cfg, objective, device=torch.device("cpu"), checkpoint_dir=Path(tmp) / "run",
                  run_fingerprint="bench", on_epoch=on_epoch, progress=False)
        finally:
            hook.remove()

    step_ratio = statistics.median(all_a) / statistics.median(all_h)
    paired_step = statistics.median(paired)
    epoch_ratio = statistics.median(a_epoch) / statistics.median(h_epoch)
    pair_epoch = statistics.median(a / h for a, h in zip(a_epoch, h_epoch))
    command = "python " + " ".join(sys.argv)
    print(f"command: {command}")
    print(f"per training step ({len(all_a)} steps): autokd {statistics.median(all_a):.4f} s, hand-written "
          f"{statistics.median(all_h):.4f} s; ratio {step_ratio:.3f} (median of each step against its two "
          f"hand-written neighbours: {paired_step:.3f})")
    print(f"per epoch (autokd with validation + checkpoint): autokd {statistics.median(a_epoch):.2f} s, "
          f"hand-written {statistics.median(h_epoch):.2f} s; ratio {epoch_ratio:.3f} (median of the epochs' "
          f"ratios: {pair_epoch:.3f})")
    result = {
        "command": command,
        "step_ratio": round(step_ratio, 4), "paired_step_ratio": round(paired_step, 4),
        "epoch_ratio": round(epoch_ratio, 4), "epoch_pair_ratio": round(pair_epoch, 4),
        "autokd_s_per_step": a_step, "hand_s_per_step": h_step,
        "autokd_s_per_epoch": a_epoch, "hand_s_per_epoch": h_epoch,
        "autokd_train_loss": a_loss, "hand_train_loss": h_loss,
        "steps_per_epoch": steps, "windows": args.windows, "val_windows": args.val, "k": args.k,
        "vocab": args.vocab, "context": args.context, "threads": 1, "torch": torch.__version__,
        "machine": platform.machine(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
