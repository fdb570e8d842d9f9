"""Pruned-teacher init (``student.init``) vs random init: the distilled student's test perplexity
after the same steps, 3 seeds.

The shipped LM pipeline's data (pydoc topics, BPE 1,024, context 128) and teacher (4 layers x
256, 4 heads of 64; its training recipe), trained once. The student is 2 layers x 128 with 2
heads (whole heads of the teacher's 64 dimensions: what a cut from this teacher can be), trained
with the shipped student recipe (6 epochs, AdamW 3e-3) and distilled with forward KL against the
live teacher (alpha 0.5). Per seed (the student's training seed: batch order, and for the random
init its weights), one student starts from the seed's random weights and one from the teacher
cut to that shape (``keep_every: 2``: layers 0 and 2; channels, heads and MLP neurons by
activation importance on 16 training windows). Also printed: both starts' perplexity before any
training.

    python benchmarks/prune_init.py [--seeds 0 1 2] [--epochs 6] [--docs N]

Writes ``benchmarks/results/prune_init.json``. One torch thread.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--docs", type=int, default=None, help="first N documents (default: all)")
    ap.add_argument("--out", default="benchmarks/results/prune_init.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from autokd.data.text.prepare import prepare_text
    from autokd.models.decoder import DecoderParams
    from autokd.models.prune import prune_decoder
    from autokd.models.registry import build_model
    from autokd.spec.lm import LMPipelineSpec, TextDataSpec
    from autokd.spec.pipeline import TrainSpec
    from autokd.train.lm_objective import LMDistillObjective
    from autokd.train.trainer import CrossEntropyObjective, evaluate_split, train

    cpu = torch.device("cpu")
    t0 = time.perf_counter()
    data = prepare_text(TextDataSpec(max_documents=args.docs), Path(tempfile.mkdtemp()))
    shipped = LMPipelineSpec()
    shape, vocab = data.input_shape, data.vocab_size
    torch.manual_seed(0)
    teacher = build_model("decoder", shipped.teacher.model.params, shape, vocab)
    train(teacher, data.train, data.val, shipped.teacher.train, CrossEntropyObjective(), device=cpu, progress=False)
    teacher.eval()
    ppl = (lambda m: math.exp(evaluate_split(m, data.test, cpu)["loss"]))
    student = DecoderParams(layers=2, width=128, heads=2)
    cfg = shipped.student.train.model_copy(update={"epochs": args.epochs})
    rows = {"random": [], "pruned": []}
    starts = {"random": [], "pruned": []}
    for seed in args.seeds:
        for init in ("random", "pruned"):
            torch.manual_seed(seed)
            model = build_model("decoder", student.model_dump(), shape, vocab)
            if init == "pruned":
                model = prune_decoder(teacher, student, [0, 2], data.train.x[:16])
            starts[init].append(round(ppl(model), 3))
            train(model, data.train, data.val, cfg.model_copy(update={"seed": seed}),
                  LMDistillObjective("fkl", {}, 0.5, teacher=teacher), device=cpu, progress=False)
            rows[init].append(round(ppl(model), 3))
            print(f"seed {seed} {init:>6}: start {starts[init][-1]:.2f} -> test perplexity {rows[init][-1]:.2f}",
                  flush=True)
    summary = {k: {"test_perplexity": v, "mean": round(statistics.mean(v), 3),
                   "start_perplexity": starts[k]} for k, v in rows.items()}
    ratio = [round(p / r, 4) for p, r in zip(rows["pruned"], rows["random"])]
    print(f"teacher {ppl(teacher):.2f}; pruned / random per seed: {ratio}")
    result = {"command": "python " + " ".join(sys.argv), "epochs": args.epochs, "seeds": args.seeds,
              "windows": data.meta["counts"], "teacher": shipped.teacher.model.params,
              "teacher_test_perplexity": round(ppl(teacher), 3), "student": student.model_dump(),
              "students": summary, "ratio_pruned_to_random": ratio, "seconds": round(time.perf_counter() - t0, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
