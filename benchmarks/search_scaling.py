"""Scaling: trials per minute with 1 vs 2 concurrent trials (1 CPU and 1 torch thread each),
the same search both ways, in one Ray session of 2 CPUs.

    python benchmarks/search_scaling.py [--trials 8] [--epochs 20]

Random sampler with a fixed seed, FIFO: both runs train exactly the same trials. Ray's
start-up is excluded; each search's wall time includes its workers' start.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from search_common import private_root, GRID_SPACE, RESULTS, command, machine, run, search_doc, start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(RESULTS / "search_scaling.json"))
    args = ap.parse_args()
    start(num_cpus=max(args.concurrency))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = private_root(Path(tmp))
        for n in args.concurrency:
            doc = search_doc(f"scaling_{n}", GRID_SPACE, trials=args.trials, max_concurrent=n,
                             sampler={"type": "random", "seed": 0}, scheduler={"type": "fifo"},
                             fixed={"student.train.epochs": args.epochs}, root=root)
            outcome, wall = run(doc, Path(tmp))
            recs = outcome.records
            epochs = sum(r.epochs for r in recs)
            train_s = sum(float(r.final.get("train_seconds") or 0) for r in recs)
            rows.append({"concurrent": n, "trials": len(recs), "completed": sum(r.status == "completed" for r in recs),
                         "wall_s": wall, "trials_per_min": 60.0 * len(recs) / wall,
                         "epoch_s": train_s / max(epochs, 1), "val_accuracies": [r.final.get("val_accuracy") for r in recs]})
            print(f"{n} concurrent: {wall:.1f} s, {rows[-1]['trials_per_min']:.2f} trials/min", flush=True)
    print(f"command: {command()}")
    print(f"machine: {machine()}")
    print("| concurrent trials | wall time (s) | trials / min | seconds per training epoch |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['concurrent']} | {r['wall_s']:.1f} | {r['trials_per_min']:.2f} | {r['epoch_s']:.3f} |")
    speedup = rows[-1]["trials_per_min"] / rows[0]["trials_per_min"]
    same = all(r["val_accuracies"] == rows[0]["val_accuracies"] for r in rows)
    print(f"speed-up {rows[-1]['concurrent']} vs {rows[0]['concurrent']}: {speedup:.2f}x; "
          f"same trials and accuracies: {same}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": command(), "machine": machine(), "rows": rows,
                                          "speedup": speedup, "same_accuracies": same}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
