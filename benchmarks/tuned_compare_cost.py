"""Wall time of the tuned method comparison, per method, under the real DVC stages.

Runs, in a git clone of this repository (never in the working copy: ``dvc repro`` locks the repo),
for each method: ``dvc repro -s pipelines/compare/dvc.yaml:tune@<method>`` then
``tuned@<method>-<seed>`` for every seed, then ``aggregate_tuned``, timing each stage and recording
the machine's load. The untuned comparison's outputs are restored from the DVC cache first
(``dvc checkout``), so only the tuned part runs. Prints a table, the estimate for the whole
comparison, and the command; writes ``benchmarks/results/tuned_compare_cost.json``.

    python benchmarks/tuned_compare_cost.py --work /tmp/tc            # every method of methods.yaml
    python benchmarks/tuned_compare_cost.py --work /tmp/tc --methods kd dkd

``--work`` must not exist (a fresh clone is made there) unless ``--reuse`` is given. Uncommitted
changes are not in a clone: commit first, or pass ``--copy-tree`` to copy the working tree's
tracked and new files over the clone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "tuned_compare_cost.json"


def sh(cmd: list[str], cwd: Path, log: Path | None = None) -> int:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with open(log, "w") if log else open(os.devnull, "w") as out:
        return subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def make_clone(work: Path, copy_tree: bool) -> None:
    subprocess.run(["git", "clone", "-q", str(REPO), str(work)], check=True)
    if copy_tree:
        files = subprocess.run(["git", "ls-files", "-mo", "--exclude-standard"], cwd=REPO, check=True,
                               capture_output=True, text=True).stdout.split()
        for f in files:
            if (REPO / f).is_file():
                (work / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / f, work / f)
    if (REPO / ".dvc" / "cache").exists():
        shutil.copytree(REPO / ".dvc" / "cache", work / ".dvc" / "cache", dirs_exist_ok=True)
    sh(["dvc", "checkout", "-q"], work)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="where the clone is made")
    ap.add_argument("--methods", nargs="*", help="default: every method of pipelines/compare/methods.yaml")
    ap.add_argument("--reuse", action="store_true", help="use an existing clone at --work")
    ap.add_argument("--copy-tree", action="store_true", help="copy uncommitted files into the clone")
    args = ap.parse_args()
    if not args.reuse:
        make_clone(args.work, args.copy_tree)
    spec = yaml.safe_load((args.work / "pipelines" / "compare" / "methods.yaml").read_text())
    methods = args.methods or list(spec["methods"])
    logs = args.work / "logs"
    logs.mkdir(exist_ok=True)
    rows = []
    for m in methods:
        for stage in [f"tune@{m}"] + [f"tuned@{m}-{s}" for s in spec["seeds"]]:
            t0 = time.perf_counter()
            rc = sh(["dvc", "repro", "-s", f"pipelines/compare/dvc.yaml:{stage}"], args.work, logs / f"{stage}.log")
            rows.append({"stage": stage, "method": m, "rc": rc, "seconds": time.perf_counter() - t0,
                         "loadavg_1min": os.getloadavg()[0]})
            print(f"{stage:24s} rc {rc}  {rows[-1]['seconds']:7.1f} s  load {rows[-1]['loadavg_1min']:.1f}", flush=True)
    t0 = time.perf_counter()
    rc = sh(["dvc", "repro", "-s", "pipelines/compare/dvc.yaml:aggregate_tuned"], args.work, logs / "aggregate.log")
    rows.append({"stage": "aggregate_tuned", "method": "", "rc": rc, "seconds": time.perf_counter() - t0,
                 "loadavg_1min": os.getloadavg()[0]})
    per_method = {m: sum(r["seconds"] for r in rows if r["method"] == m) for m in methods}
    total = sum(r["seconds"] for r in rows)
    cmd = "python benchmarks/tuned_compare_cost.py " + " ".join(sys.argv[1:])
    print("\n| method | tune (s) | tuned runs (s) | total (s) |\n|---|---|---|---|")
    for m in methods:
        tune = next(r["seconds"] for r in rows if r["stage"] == f"tune@{m}")
        print(f"| {m} | {tune:.0f} | {per_method[m] - tune:.0f} | {per_method[m]:.0f} |")
    print(f"\ntotal {total:.0f} s for {len(methods)} method(s) (budget {spec.get('tuning')}); "
          f"cpus {os.cpu_count()}, mean load {sum(r['loadavg_1min'] for r in rows) / len(rows):.1f}")
    print(f"command: {cmd}")
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({"command": cmd, "tuning": spec.get("tuning"), "seeds": spec["seeds"],
                                  "cpus": os.cpu_count(), "rows": rows, "per_method_s": per_method,
                                  "total_s": total}, indent=2) + "\n")
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
