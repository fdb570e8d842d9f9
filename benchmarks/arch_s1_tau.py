"""Kendall τ between the parameter count of the built ``resnet_s1`` students and their
distilled CIFAR-100 accuracy in the DisWOT S1 ground truth (literature: about 0.87).

Builds the 64 students of search_spaces/s1.yaml for input (3, 32, 32) and 100 classes,
counts parameters and correlates with ``s1-gt-kd.txt`` (and, for reference,
``s1-gt-cls.txt``). A τ far from 0.87 means the family is built differently.

    python benchmarks/arch_s1_tau.py [--gt-dir ../shared/data/diswot_s1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scipy.stats import kendalltau, spearmanr

from autokd.models import build_model, count_params
from autokd.search.arch.space import load_space

REPO = Path(__file__).resolve().parents[1]


def read_gt(path: Path) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split() for line in path.read_text().splitlines() if line.strip())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gt-dir", default=str(REPO.parent / "shared" / "data" / "diswot_s1"))
    ap.add_argument("--space", default=str(REPO / "search_spaces" / "s1.yaml"))
    args = ap.parse_args()
    gt_dir = Path(args.gt_dir)
    if not (gt_dir / "s1-gt-kd.txt").exists():
        print(f"no ground truth at {gt_dir}/s1-gt-kd.txt", file=sys.stderr)
        return 2
    spec = load_space(args.space)
    params = {}
    for c in spec.space.candidates():
        m = build_model(c.family, c.params, tuple(spec.input_shape), spec.num_classes)
        params["".join(map(str, c.params["depths"]))] = count_params(m)
    print("command: python " + " ".join(sys.argv))
    print(f"{len(params)} resnet_s1 students, input {tuple(spec.input_shape)}, {spec.num_classes} classes: "
          f"{min(params.values())} to {max(params.values())} params (ResNet20 = 333: {params.get('333')})")
    for name in ("s1-gt-kd.txt", "s1-gt-cls.txt"):
        gt = read_gt(gt_dir / name)
        keys = sorted(gt)
        missing = set(keys) ^ set(params)
        if missing:
            print(f"{name}: students not matched: {sorted(missing)}", file=sys.stderr)
            return 1
        x, y = [params[k] for k in keys], [gt[k] for k in keys]
        what = "distilled" if "kd" in name else "labels-only"
        print(f"{name} ({what} accuracy): Kendall tau(params, acc) = {kendalltau(x, y).statistic:.4f}, "
              f"Spearman rho = {spearmanr(x, y).statistic:.4f} (n = {len(keys)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
