"""CPU bf16 autocast vs fp32 for LM distillation: validation loss and training tokens/s, one run.

The shipped LM pipeline's corpus (pydoc topics, BPE 1,024, context 128) and its shapes (teacher 4
layers x 256, student 2 x 128), ``--docs`` documents. A teacher is trained once in fp32; then the
same student (same seed, same batches) is distilled with forward KL against the live teacher,
``alpha`` 0.5, for ``--epochs`` epochs, at each setting:

* ``fp32``: no autocast, fp32 teacher (today's CPU default);
* ``bf16``: ``runtime.precision: bf16`` (autocast), fp32 teacher weights;
* ``bf16 + bf16 teacher``: also ``runtime.teacher_precision: bf16`` (the teacher's weights in bf16).

Printed: each setting's final validation loss (fp32 evaluation) and its ratio to fp32's, and
training tokens/s with the ratio. One torch thread.

    python benchmarks/precision_cpu.py [--docs 120] [--epochs 2]

Writes ``benchmarks/results/precision_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=120)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/precision_cpu.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from autokd.data.text.prepare import prepare_text
    from autokd.models.registry import build_model
    from autokd.spec.lm import TextDataSpec
    from autokd.spec.pipeline import TrainSpec
    from autokd.train.lm_objective import LMDistillObjective
    from autokd.train.trainer import CrossEntropyObjective, train

    cpu = torch.device("cpu")
    data = prepare_text(TextDataSpec(max_documents=args.docs), Path(tempfile.mkdtemp()))
    shape, vocab = (data.context,), data.vocab_size
    cfg = TrainSpec(epochs=args.epochs, batch_size=16, lr=3e-3, weight_decay=0.01, warmup_epochs=0)
    torch.manual_seed(0)
    teacher = build_model("decoder", {"layers": 4, "width": 256, "heads": 4}, shape, vocab)
    train(teacher, data.train, data.val, cfg, CrossEntropyObjective(), device=cpu, progress=False)
    tokens = len(data.train) * data.context * args.epochs
    rows = {}
    for name, autocast, teacher_dtype in (("fp32", None, torch.float32), ("bf16", torch.bfloat16, torch.float32),
                                          ("bf16 + bf16 teacher", torch.bfloat16, torch.bfloat16)):
        torch.manual_seed(1)
        student = build_model("decoder", {"layers": 2, "width": 128, "heads": 4}, shape, vocab)
        t = teacher.to(dtype=teacher_dtype)
        t0 = time.perf_counter()
        res = train(student, data.train, data.val, cfg, LMDistillObjective("fkl", {}, 0.5, teacher=t), device=cpu,
                    amp=autocast, progress=False)
        seconds = time.perf_counter() - t0
        rows[name] = {"val_loss": res.history[-1]["val_loss"], "tokens_per_s": tokens / seconds,
                      "seconds": round(seconds, 2)}
    base = rows["fp32"]
    for name, r in rows.items():
        r["val_loss_ratio"] = round(r["val_loss"] / base["val_loss"], 5)
        r["speed_ratio"] = round(r["tokens_per_s"] / base["tokens_per_s"], 3)
        print(f"{name:>20}: val loss {r['val_loss']:.5f} (x{r['val_loss_ratio']}), "
              f"{r['tokens_per_s']:.0f} tokens/s (x{r['speed_ratio']})")
    result = {"command": "python " + " ".join(sys.argv), "docs": args.docs, "epochs": args.epochs,
              "windows": data.meta["counts"], "threads": 1, "processor": _cpu(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
