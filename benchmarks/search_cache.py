"""Teacher-output cache: the same 8-trial search over the default pipeline with the cached
teacher logits vs with the teacher run on every batch of every trial
(``distill.teacher_outputs: live``), timed in one run (one Ray session).

    python benchmarks/search_cache.py [--trials 8] [--epochs 40] [--repeats 1]

Same trials both ways: random sampler with a fixed seed, FIFO (no early stopping), 2
concurrent trials of 1 CPU / 1 torch thread each. Ray's start-up is excluded; each search's
wall time includes its workers' start (imports) and the trials.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from search_common import private_root, RESULTS, command, machine, run, search_doc, start

SPACE = {
    "distill.temperature": {"type": "loguniform", "low": 1.0, "high": 16.0},
    "distill.alpha": {"type": "uniform", "low": 0.1, "high": 1.0},
    "distill.method": {"type": "choice", "values": ["kd", "dkd", "lskd"],
                       "conditional": {"dkd": {"distill.params.warmup_epochs": 5}}},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=1, help="alternate cache/live this many times")
    ap.add_argument("--out", default=str(RESULTS / "search_cache.json"))
    args = ap.parse_args()
    start(num_cpus=2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = private_root(Path(tmp))
        for rep in range(args.repeats):
            for mode in ("cache", "live"):
                doc = search_doc(f"cache_{mode}_{rep}", SPACE, trials=args.trials,
                                 sampler={"type": "random", "seed": 0}, scheduler={"type": "fifo"},
                                 fixed={"distill.teacher_outputs": mode, "student.train.epochs": args.epochs}, root=root)
                outcome, wall = run(doc, Path(tmp))
                recs = outcome.records
                rows.append({
                    "mode": mode, "repeat": rep, "wall_s": wall, "trials": len(recs),
                    "completed": sum(r.status == "completed" for r in recs),
                    "trial_seconds": sum(r.seconds for r in recs),
                    "train_seconds": sum(float(r.final.get("train_seconds") or 0) for r in recs),
                    "teacher_calls": sum(int(r.final.get("teacher_calls") or 0) for r in recs),
                    "best_val": max((r.final.get("val_accuracy") or 0) for r in recs),
                    "val_accuracies": [r.final.get("val_accuracy") for r in recs],
                })
                print(f"{mode}: {wall:.1f} s wall, {rows[-1]['trial_seconds']:.1f} s in trials, "
                      f"teacher calls {rows[-1]['teacher_calls']}", flush=True)
    cache = [r for r in rows if r["mode"] == "cache"]
    live = [r for r in rows if r["mode"] == "live"]
    wall_ratio = sum(r["wall_s"] for r in live) / sum(r["wall_s"] for r in cache)
    trial_ratio = sum(r["trial_seconds"] for r in live) / sum(r["trial_seconds"] for r in cache)
    train_ratio = sum(r["train_seconds"] for r in live) / sum(r["train_seconds"] for r in cache)
    same = all(c["val_accuracies"] == lv["val_accuracies"] for c, lv in zip(cache, live))
    print(f"command: {command()}")
    print(f"machine: {machine()}")
    print("| teacher outputs | search wall time (s) | time in trials (s) | in training epochs (s) "
          "| teacher forward passes | best val acc |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['wall_s']:.1f} | {r['trial_seconds']:.1f} | {r['train_seconds']:.1f} | "
              f"{r['teacher_calls']} | {r['best_val']:.4f} |")
    print(f"live / cache: wall time {wall_ratio:.2f}x, time in trials {trial_ratio:.2f}x, "
          f"training epochs {train_ratio:.2f}x; same validation accuracies both ways: {same}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": command(), "machine": machine(), "rows": rows,
                                          "wall_ratio": wall_ratio, "trial_ratio": trial_ratio,
                                          "train_ratio": train_ratio,
                                          "same_accuracies": same}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
