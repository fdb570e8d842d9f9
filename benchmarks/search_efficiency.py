"""Search efficiency on the default pipeline: TPE + ASHA vs random search vs the full grid of
a small space (4 temperatures x 4 lambdas x 3 methods = 48 trials), with a shortened schedule.

    python benchmarks/search_efficiency.py [--epochs 20] [--seeds 0 1 2] [--tpe-trials 24] [--random-trials 14]

For each search: the best validation accuracy among trials that ran the whole schedule,
against the epochs spent so far (trials in the order they finished). Goal: TPE+ASHA within
0.5 point of the grid's best with at most 30% of the grid's epochs. The test accuracy of each
search's pick is reported beside it (the searches never see it).
Writes benchmarks/results/search_efficiency.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from search_common import private_root, GRID_SPACE, RESULTS, command, machine, run, search_doc, start


def curve(records) -> list[tuple[int, float]]:
    """(cumulative epochs, best completed val accuracy so far) in finishing order."""
    done = sorted((r for r in records if r.finished_at is not None), key=lambda r: r.finished_at)
    spent, best, out = 0, float("nan"), []
    for r in done:
        spent += r.epochs
        if r.status == "completed":
            v = r.final["val_accuracy"]
            best = v if best != best or v > best else best
        out.append((spent, best))
    return out


def best_at(points, budget: float) -> float:
    vals = [b for e, b in points if e <= budget and b == b]
    return max(vals) if vals else float("nan")


def summary(name: str, outcome, wall: float) -> dict:
    recs = outcome.records
    best = outcome.best
    return {
        "search": name, "trials": len(recs), "completed": sum(r.status == "completed" for r in recs),
        "epochs": sum(r.epochs for r in recs), "wall_s": wall,
        "best_val": best.final["val_accuracy"] if best else None,
        "best_test": best.final["test_accuracy"] if best else None,
        "best_params": outcome.best.params if best else None,
        "curve": curve(recs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tpe-trials", type=int, default=24)
    ap.add_argument("--random-trials", type=int, default=14)
    ap.add_argument("--grace", type=int, default=4, help="ASHA grace period (epochs)")
    ap.add_argument("--out", default=str(RESULTS / "search_efficiency.json"))
    args = ap.parse_args()
    fixed = {"student.train.epochs": args.epochs}
    start(num_cpus=2)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = private_root(Path(tmp))
        work = Path(tmp)
        o, w = run(search_doc("grid", GRID_SPACE, trials=48, sampler={"type": "grid"}, scheduler={"type": "fifo"},
                              fixed=fixed, root=root), work)
        runs.append(summary("grid", o, w))
        print(f"grid: {runs[-1]['trials']} trials, {runs[-1]['epochs']} epochs, best val {runs[-1]['best_val']:.4f}, "
              f"{w:.0f} s", flush=True)
        for seed in args.seeds:
            o, w = run(search_doc(f"tpe_asha_{seed}", GRID_SPACE, trials=args.tpe_trials,
                                  sampler={"type": "tpe", "seed": seed, "n_startup_trials": 8},
                                  scheduler={"type": "asha", "grace_period": args.grace, "reduction_factor": 3},
                                  fixed=fixed, root=root), work)
            runs.append(summary(f"tpe_asha_{seed}", o, w))
            o, w = run(search_doc(f"random_{seed}", GRID_SPACE, trials=args.random_trials,
                                  sampler={"type": "random", "seed": seed}, scheduler={"type": "fifo"},
                                  fixed=fixed, root=root), work)
            runs.append(summary(f"random_{seed}", o, w))
            for r in runs[-2:]:
                print(f"{r['search']}: {r['trials']} trials, {r['epochs']} epochs, best val {r['best_val']:.4f}, "
                      f"{r['wall_s']:.0f} s", flush=True)
    grid = runs[0]
    budget = 0.3 * grid["epochs"]
    print(f"command: {command()}")
    print(f"machine: {machine()}")
    print(f"grid: {grid['trials']} trials x {args.epochs} epochs = {grid['epochs']} epochs; 30% = {budget:.0f} epochs")
    print("| search | trials (completed) | epochs | % of grid epochs | best val acc | at <=30% grid epochs "
          "| gap to grid best (pt) | test acc of pick | wall (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        at30 = best_at(r["curve"], budget)
        r["best_val_at_30pct"] = at30
        gap = 100 * (grid["best_val"] - at30) if at30 == at30 else float("nan")
        r["gap_pt_at_30pct"] = gap
        print(f"| {r['search']} | {r['trials']} ({r['completed']}) | {r['epochs']} | "
              f"{100 * r['epochs'] / grid['epochs']:.0f}% | {r['best_val']:.4f} | {at30:.4f} | {gap:.2f} | "
              f"{r['best_test']:.4f} | {r['wall_s']:.0f} |")
    for kind in ("tpe_asha", "random"):
        rs = [r for r in runs if r["search"].startswith(kind)]
        gaps = [r["gap_pt_at_30pct"] for r in rs]
        within = sum(g <= 0.5 for g in gaps if g == g)
        print(f"{kind}: gap to the grid's best at <=30% of its epochs: mean {statistics.mean(gaps):.2f} pt; "
              f"within 0.5 pt in {within}/{len(rs)} seeds")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command(), "machine": machine(), "epochs_per_trial": args.epochs,
                               "runs": runs}, indent=2, default=str))
    plot(runs, budget, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


def plot(runs, budget, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"grid": "black", "tpe_asha": "tab:red", "random": "tab:blue"}
    seen = set()
    for r in runs:
        kind = "grid" if r["search"] == "grid" else r["search"].rsplit("_", 1)[0]
        pts = [(e, b) for e, b in r["curve"] if b == b]
        if not pts:
            continue
        xs, ys = zip(*pts)
        label = {"grid": "full grid (48 trials)", "tpe_asha": "TPE + ASHA", "random": "random"}[kind]
        ax.step(xs, ys, where="post", color=colors[kind], alpha=0.9 if kind == "grid" else 0.7,
                label=None if kind in seen else label)
        seen.add(kind)
    ax.axvline(budget, color="0.5", ls="--", lw=1, label="30% of the grid's epochs")
    grid_best = runs[0]["best_val"]
    ax.axhline(grid_best - 0.005, color="0.7", ls=":", lw=1, label="grid best - 0.5 pt")
    ax.set_xlabel("epochs spent (trials in finishing order)")
    ax.set_ylabel("best validation accuracy (completed trials)")
    ax.set_title("search efficiency, default pipeline (4 T x 4 lambda x 3 methods)")
    ax.legend(loc="lower right", fontsize=8)
    lo = min(b for r in runs for _, b in r["curve"] if b == b)
    ax.set_ylim(max(lo - 0.01, 0), min(grid_best + 0.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
