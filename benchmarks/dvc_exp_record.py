"""Recording search trials as DVC experiments: seconds per trial, and what 100 recorded trials
cost ``dvc exp show``. In a temporary clone of this repository (its committed state).

    python benchmarks/dvc_exp_record.py [--trials 100] [--show-repeats 2]

(`dvc exp show` costs seconds per experiment on this repository: see the notes; try --trials 10 first.)

Each trial is recorded as a search's driver records it
(:class:`autokd.search.hparams.experiments.TrialExperiments.record`: the default pipeline spec
patched with a trial's T, lambda, method, learning rate and student, plus its metrics, as a
commit under refs/exps/ through git plumbing). No training runs: only the recording is timed.
``dvc exp show --json`` is timed before any experiment exists and with all of them (twice:
DVC caches a collected experiment, so the second run is the steady state).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from search_common import RESULTS, REPO, command, machine

STUDENTS = [{"name": "cnn", "params": {"stem_width": 4, "depths": [1, 1], "widths": [4, 8]}},
            {"name": "cnn", "params": {"stem_width": 4, "depths": [1, 1], "widths": [4, 8], "block": "plain"}},
            {"name": "cnn", "params": {"stem_width": 4, "depths": [2, 1], "widths": [4, 8]}}]


def trial(rng: random.Random) -> tuple[dict, dict]:
    """A patch and last metrics like a trial of search_spaces/default.yaml."""
    method = rng.choice(["kd", "dkd", "lskd"])
    patch = {"distill.alpha": rng.uniform(0.1, 1.0), "student.train.lr": 10 ** rng.uniform(-3, -2),
             "distill.method": method, "student.model": rng.choice(STUDENTS),
             "distill.temperature": 2 ** rng.uniform(0, 4)}
    patch["distill.params"] = {"beta": rng.uniform(1, 8), "warmup_epochs": 5} if method == "dkd" else {}
    final = {"test_accuracy": rng.uniform(0.8, 0.97), "test_nll": rng.uniform(0.1, 0.5),
             "test_ece": rng.uniform(0.01, 0.1), "params": 1382, "flops": 35152, "latency_ms": 0.3}
    return patch, final


def show(work: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = subprocess.run([str(Path(sys.executable).parent / "dvc"), "exp", "show", "--json"], cwd=work,
                         capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - t0
    rows = json.loads(out)
    n = sum(len(r.get("experiments") or []) for r in rows)
    return seconds, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--show-repeats", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "dvc_exp_record.json"))
    args = ap.parse_args()
    from autokd.search.hparams.experiments import TrialExperiments

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(REPO), str(work)], check=True)
        show0, _ = show(work)
        print(f"dvc exp show --json with no experiments: {show0:.2f} s", flush=True)
        rec = TrialExperiments.open("bench", work / "pipelines" / "default.yaml", work, log=print)
        assert rec is not None
        t0 = time.perf_counter()
        for n in range(args.trials):
            patch, final = trial(rng)
            assert rec.record(n, patch, final, f"trial {n}") is not None
        total = time.perf_counter() - t0
        per = rec.seconds
        print(f"recorded {args.trials} trials in {total:.2f} s: per trial median {statistics.median(per) * 1000:.1f} ms,"
              f" mean {statistics.mean(per) * 1000:.1f} ms, max {max(per) * 1000:.1f} ms", flush=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=work,
                                capture_output=True, text=True, check=True).stdout
        assert status == "", status
        shows: list[float] = []
        doc = {
            "command": command(), "machine": machine(), "trials": args.trials,
            "record_seconds": {"median": statistics.median(per), "mean": statistics.mean(per), "max": max(per),
                               "min": min(per), "total": total},
            "exp_show_seconds": {"no_experiments": show0, f"with_{args.trials}": shows},
            "note": "recording = TrialExperiments.record (the patched spec through ruamel.yaml, then 7 git "
                    "processes); exp show = `dvc exp show --json` in a clone of this repository (the first run "
                    "with experiments collects each experiment's params, metrics and deps from every dvc.yaml, "
                    "later runs read DVC's experiment cache); the 2 cores were shared with other jobs",
        }
        for _ in range(args.show_repeats):
            Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")  # kept if a slow `exp show` is stopped
            seconds, n_exps = show(work)
            shows.append(seconds)
            print(f"dvc exp show --json with {n_exps} experiments: {seconds:.2f} s", flush=True)
            assert n_exps == args.trials
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}\n$ {command()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
