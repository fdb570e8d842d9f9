"""kd_gain over several seeds: the whole default pipeline (split, teacher, baseline,
distilled student) re-run with seed s in every section, in a temporary root.

    python benchmarks/kd_gain_seeds.py [--seeds 0 1 2] [--spec pipelines/default.yaml]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from autokd.spec.document import apply_overrides, load_yaml
from autokd.stages import validate_pipeline
from autokd.stages import Layout, distill, evaluate, prepare, train_baseline, train_teacher


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default="pipelines/default.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=None, help="write per-seed results here (JSON)")
    args = ap.parse_args()
    base = load_yaml(args.spec)
    rows = []
    for seed in args.seeds:
        data = apply_overrides(base, {"data.seed": seed, "teacher.train.seed": seed, "student.train.seed": seed})
        spec = validate_pipeline(data, file=args.spec, root=Path.cwd())
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            layout = Layout(Path(tmp))
            prepare(spec, layout)
            train_teacher(spec, layout, progress=False)
            train_baseline(spec, layout, progress=False)
            distill(spec, layout, progress=False)
            m = evaluate(spec, layout)
        rows.append({"seed": seed, "teacher": m["teacher"]["accuracy"], "baseline": m["baseline"]["accuracy"],
                     "student": m["student"]["accuracy"], "kd_gain": m["kd_gain"],
                     "compression": m["compression"], "seconds": time.perf_counter() - t0})
    print(f"command: python benchmarks/kd_gain_seeds.py --spec {args.spec} --seeds {' '.join(map(str, args.seeds))}")
    print("| seed | teacher | baseline | student (KD) | kd_gain |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['teacher']:.4f} | {r['baseline']:.4f} | {r['student']:.4f} | {r['kd_gain']:+.4f} |")

    def ms(key):
        vals = [r[key] for r in rows]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return f"{statistics.mean(vals):.4f} ± {sd:.4f}"

    print(f"| mean ± std | {ms('teacher')} | {ms('baseline')} | {ms('student')} | {ms('kd_gain')} |")
    print(f"compression {rows[0]['compression']:.1f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
