"""Completion-only vs full-sequence loss on chat data: the student's completion perplexity, 3 seeds.

The corpus is the shipped CPython docs as instructions (``data.source: pydoc_topics``,
``format: chat``: "Explain the Python topic 'X'." → the topic's text, the plain template), one
example a window at ``--context`` tokens. ``loss_on: completion`` and ``loss_on: all`` give the
same tokenizer and windows (the BPE is trained on the same rendered conversations); only the
targets differ. A teacher is trained once (completion loss); then, per seed and per setting, a
student is trained on labels alone and one is distilled (forward KL against the live teacher,
alpha 0.5, the loss's tokens the setting's). The corpus is small (60 training examples), so
every model keeps its best epoch by validation loss on the completion tokens (``keep: best``). Every student is measured the same way: NLL per
*completion* token of the test split (the completion-only targets), reported as perplexity.

    python benchmarks/chat_loss.py [--context 256] [--epochs 24] [--seeds 0 1 2]

Writes ``benchmarks/results/chat_loss.json``. One thread, CPU.
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
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="benchmarks/results/chat_loss.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from autokd.data.text.prepare import prepare_text
    from autokd.models.registry import build_model
    from autokd.spec.lm import TextDataSpec
    from autokd.spec.pipeline import TrainSpec
    from autokd.train.lm_objective import LMDistillObjective
    from autokd.train.trainer import CrossEntropyObjective, evaluate_split, train

    cpu = torch.device("cpu")
    tmp = Path(tempfile.mkdtemp())
    data = {on: prepare_text(TextDataSpec(format="chat", loss_on=on, context=args.context, holdout_every=8,
                                          tokenizer={"vocab_size": 1024}), tmp / on)
            for on in ("completion", "all")}
    assert torch.equal(data["completion"].train.x, data["all"].train.x)  # the same windows: only targets differ
    test = data["completion"].test  # completion tokens: what both settings are measured on
    shares = {on: float((d.train.y != -100).float().mean()) for on, d in data.items()}
    vocab = data["completion"].vocab_size

    def fit(params, train_split, seed, objective, epochs):
        torch.manual_seed(seed)
        model = build_model("decoder", params, (args.context,), vocab)
        cfg = TrainSpec(epochs=epochs, batch_size=8, lr=3e-3, weight_decay=0.01, warmup_epochs=0, seed=seed,
                        keep="best")  # 60 examples overfit: every model keeps its best validation epoch
        train(model, train_split, data["completion"].val, cfg, objective(model), device=cpu, progress=False)
        return model.eval()

    t0 = time.perf_counter()
    teacher = fit({"layers": 4, "width": 128, "heads": 4}, data["completion"].train, 0,
                  lambda m: CrossEntropyObjective(), args.epochs)
    teacher_nll = evaluate_split(teacher, test, cpu)["loss"]
    student = {"layers": 2, "width": 64, "heads": 4}
    rows: dict[str, dict[str, list[float]]] = {}
    for mode in ("labels_only", "distilled"):
        for on in ("completion", "all"):
            key = f"{mode}/{on}"
            rows[key] = {"completion_perplexity": []}
            for seed in args.seeds:
                objective = ((lambda m: CrossEntropyObjective()) if mode == "labels_only"
                             else (lambda m: LMDistillObjective("fkl", {}, 0.5, teacher=teacher)))
                model = fit(student, data[on].train, seed, objective, args.epochs)
                ppl = math.exp(evaluate_split(model, test, cpu)["loss"])
                rows[key]["completion_perplexity"].append(round(ppl, 3))
                print(f"{key:>24} seed {seed}: completion perplexity {ppl:.2f}", flush=True)
    summary = {k: {"mean": round(statistics.mean(v["completion_perplexity"]), 3),
                   "stdev": round(statistics.stdev(v["completion_perplexity"]), 3) if len(args.seeds) > 1 else 0.0,
                   **v} for k, v in rows.items()}
    ratios = {mode: round(summary[f"{mode}/completion"]["mean"] / summary[f"{mode}/all"]["mean"], 4)
              for mode in ("labels_only", "distilled")}
    for k, v in summary.items():
        print(f"{k:>24}: {v['mean']:.2f} ± {v['stdev']:.2f}")
    print(f"completion-only / full-sequence perplexity: labels-only {ratios['labels_only']}, "
          f"distilled {ratios['distilled']}; teacher {math.exp(teacher_nll):.2f}")
    result = {"command": "python " + " ".join(sys.argv), "context": args.context, "epochs": args.epochs,
              "seeds": args.seeds, "windows": data["completion"].meta["counts"],
              "loss_token_share_train": shares, "teacher_completion_perplexity": round(math.exp(teacher_nll), 3),
              "students": summary, "ratio_completion_to_all": ratios,
              "seconds": round(time.perf_counter() - t0, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
