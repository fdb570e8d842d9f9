"""One GPU, LM distillation at a GPT-2-small-sized teacher: bf16 vs fp32 tokens/s and peak memory.

Teacher: autokd's ``decoder`` at GPT-2 small's shape (12 layers, width 768, 12 heads, vocabulary
50,257, context 1,024; 163M parameters with the untied head); student 6 layers x 384. Random
token windows (speed and memory do not depend on the text). Per setting, ``--steps`` timed
optimizer steps of forward-KL distillation against the live teacher through autokd's trainer
(one epoch of ``--steps`` batches), after one untimed warm-up epoch:

* ``fp32``: no autocast; ``bf16``: ``runtime.precision: bf16``; ``bf16 + bf16 teacher``: also
  ``runtime.teacher_precision: bf16``.

Printed: tokens/s and ``torch.cuda.max_memory_allocated`` per setting, and their ratios to fp32.
Needs CUDA; ``--small`` shrinks every shape so the script itself can be checked on a CPU.

    python benchmarks/gpu_lm.py [--batch 8] [--steps 10]          # on a GPU machine
    python benchmarks/gpu_lm.py --small --device cpu             # a smoke test of the script

Writes ``benchmarks/results/gpu_lm.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/gpu_lm.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device here: run this on a GPU machine (or --small --device cpu to check the script)")
    from autokd.data.prepare import Split
    from autokd.models.registry import build_model
    from autokd.spec.pipeline import TrainSpec
    from autokd.train.lm_objective import LMDistillObjective
    from autokd.train.trainer import train

    vocab, context = (512, 64) if args.small else (50257, 1024)
    t_shape = {"layers": 2, "width": 64, "heads": 4} if args.small else {"layers": 12, "width": 768, "heads": 12}
    s_shape = {"layers": 1, "width": 32, "heads": 4} if args.small else {"layers": 6, "width": 384, "heads": 6}
    n = args.batch * args.steps
    x = torch.randint(0, vocab, (n, context + 1), generator=torch.Generator().manual_seed(0))
    split = Split(x=x[:, :-1].contiguous(), y=x[:, 1:].contiguous(), index=torch.arange(n))
    val = Split(x=split.x[: args.batch], y=split.y[: args.batch], index=torch.arange(args.batch))
    cfg = TrainSpec(epochs=1, batch_size=args.batch, lr=1e-4, warmup_epochs=0)
    rows = {}
    for name, autocast, t_dtype in (("fp32", None, torch.float32), ("bf16", torch.bfloat16, torch.float32),
                                    ("bf16 + bf16 teacher", torch.bfloat16, torch.bfloat16)):
        torch.manual_seed(0)
        teacher = build_model("decoder", t_shape, (context,), vocab).to(device, dtype=t_dtype)
        student = build_model("decoder", s_shape, (context,), vocab)
        objective = LMDistillObjective("fkl", {}, 0.5, teacher=teacher)
        train(student, val, val, cfg, objective, device=device, amp=autocast, progress=False)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        train(student, split, val, cfg, objective, device=device, amp=autocast, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
        rows[name] = {"tokens_per_s": n * context / seconds, "peak_memory_gib": None if peak is None else peak / 2**30,
                      "teacher_params": sum(p.numel() for p in teacher.parameters())}
        del teacher, student, objective
        if device.type == "cuda":
            torch.cuda.empty_cache()
    base = rows["fp32"]
    for name, r in rows.items():
        r["speed_ratio"] = round(r["tokens_per_s"] / base["tokens_per_s"], 3)
        if r["peak_memory_gib"] is not None:
            r["memory_ratio"] = round(r["peak_memory_gib"] / base["peak_memory_gib"], 3)
        mem = "n/a" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f} GiB"
        print(f"{name:>20}: {r['tokens_per_s']:.0f} tokens/s (x{r['speed_ratio']}), peak {mem}")
    result = {"command": "python " + " ".join(sys.argv), "device": torch.cuda.get_device_name() if device.type ==
              "cuda" else "cpu", "vocab": vocab, "context": context, "batch": args.batch, "steps": args.steps,
              "teacher": t_shape, "student": s_shape, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
