"""Recording search trials as DVC experiments: seconds per trial, and what the recorded trials
cost ``dvc exp show --json``, in a temporary clone of this repository (its committed state) or
in a project made by ``autokd init`` (digits, ``dvc repro`` run and committed, as a user would).

    python benchmarks/dvc_exp_record.py --where repo --trials 10
    python benchmarks/dvc_exp_record.py --where init --trials 10,50

``--trials 10,50``: record 10, time ``exp show``, record up to 50, time it again.

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


BIN = Path(sys.executable).parent


def show(work: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = subprocess.run([str(BIN / "dvc"), "exp", "show", "--json"], cwd=work,
                         capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - t0
    rows = json.loads(out)
    n = sum(len(r.get("experiments") or []) for r in rows)
    return seconds, n


def make_project(tmp: Path, where: str) -> tuple[Path, Path]:
    """The repository to record in and its pipeline spec."""
    work = Path(tmp) / "repo"
    if where == "repo":
        subprocess.run(["git", "clone", "-q", str(REPO), str(work)], check=True)
        return work, work / "pipelines" / "default.yaml"
    run = dict(cwd=work, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(BIN / "autokd"), "init", str(work)], check=True, stdout=subprocess.DEVNULL)
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "dvc"), "repro", "-q"], **run)
    print(f"autokd init + dvc repro of the project: repro {time.perf_counter() - t0:.0f} s", flush=True)
    subprocess.run(["git", "add", "-A"], **run)
    subprocess.run(["git", "commit", "-q", "-m", "pipeline run"], **run)
    return work, work / "pipelines" / "default.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--where", choices=["repo", "init"], default="repo",
                    help="a clone of this repository, or a project made by autokd init")
    ap.add_argument("--trials", default="10", help="experiment counts to time exp show at, e.g. 10,50")
    ap.add_argument("--show-repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="default: benchmarks/results/dvc_exp_record_<where>.json")
    args = ap.parse_args()
    from autokd.search.hparams.experiments import TrialExperiments

    counts = sorted(int(c) for c in args.trials.split(","))
    out = Path(args.out or RESULTS / f"dvc_exp_record_{args.where}.json")
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        work, pipeline = make_project(Path(tmp), args.where)
        show0, _ = show(work)
        print(f"dvc exp show --json with no experiments: {show0:.2f} s", flush=True)
        rec = TrialExperiments.open("bench", pipeline, work, log=print)
        assert rec is not None
        shows: dict[str, list[float]] = {}
        doc = {
            "command": command(), "machine": machine(), "where": args.where, "trials": counts,
            "exp_show_seconds": {"no_experiments": show0, **shows},
            "note": "recording = TrialExperiments.record (the patched spec through ruamel.yaml, then 7 git "
                    "processes); exp show = `dvc exp show --json` (the first run after new experiments collects "
                    "each new one's params, metrics and deps from every dvc.yaml and dvc.lock of its commit; a "
                    "later run reads DVC's experiment cache, which keeps only experiments collected without error)",
        }
        total = 0.0
        for count in counts:
            t0 = time.perf_counter()
            for n in range(len(rec.names), count):
                patch, final = trial(rng)
                assert rec.record(n, patch, final, f"trial {n}") is not None
            total += time.perf_counter() - t0
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=work,
                                    capture_output=True, text=True, check=True).stdout
            assert status == "", status
            runs = doc["exp_show_seconds"][f"with_{count}"] = []
            for _ in range(args.show_repeats):
                out.write_text(json.dumps(doc, indent=2) + "\n")  # kept if a slow `exp show` is stopped
                seconds, n_exps = show(work)
                runs.append(seconds)
                print(f"dvc exp show --json with {n_exps} experiments: {seconds:.2f} s", flush=True)
                assert n_exps == count, (n_exps, count)
        per = rec.seconds
        doc["record_seconds"] = {"median": statistics.median(per), "mean": statistics.mean(per), "max": max(per),
                                 "min": min(per), "total": total}
        print(f"recorded {len(per)} trials in {total:.2f} s: per trial median {statistics.median(per) * 1000:.1f} ms,"
              f" mean {statistics.mean(per) * 1000:.1f} ms, max {max(per) * 1000:.1f} ms", flush=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}\n$ {command()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
