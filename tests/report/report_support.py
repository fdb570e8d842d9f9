"""A real project tree for the report tests and benchmark (not collected: no ``test_`` prefix).

:func:`build_tree` copies the committed pipeline outputs (metrics, method comparison, DVCLive
curves, confusion data, every manifest) into ``dst`` and runs a tiny real hyperparameter search
(Optuna backend, two objectives so it has a Pareto front) and a tiny real architecture search
with ``--validate`` there: about a minute on two shared cores.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

#: What the report reads from a pipeline root, copied from the committed repo.
COPIED = ("reports/metrics.json", "reports/methods.json", "reports/plots", "dvclive")

#: The tiny pipeline both searches run on (400 digits, 3-epoch CNN teacher, MLP student).
TINY_PIPELINE = {
    "name": "tiny",
    "data": {"source": "digits", "max_samples": 400, "seed": 0},
    "teacher": {"model": {"name": "cnn", "params": {"stem_width": 8, "depths": [1, 1], "widths": [8, 16]}},
                "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "seed": 0}},
    "student": {"model": {"name": "mlp", "params": {"hidden": [16]}},
                "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "seed": 0}},
    "distill": {"method": "kd", "temperature": 4.0, "alpha": 0.9},
    "evaluate": {"latency_runs": 3, "latency_warmup": 1, "throughput_batch": 32},
    "runtime": {"device": "cpu", "num_threads": 1},
}


def copy_pipeline_outputs(dst: Path, src: Path = REPO) -> None:
    """The committed reports, curves and every manifest (artifacts/, reports/, runs/)."""
    for rel in COPIED:
        s, d = src / rel, dst / rel
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)
        elif s.exists():
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
    for manifest in sorted(src.glob("**/manifest.json")):
        rel = manifest.relative_to(src)
        if rel.parts[0] in ("artifacts", "reports", "runs"):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(manifest, dst / rel)


def run_hparam_search(root: Path, name: str = "tiny") -> Path:
    """A 6-trial Optuna search over T, λ, the method and the student (accuracy vs params)."""
    import optuna

    from autokd.search.hparams.run import run_search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY_PIPELINE, sort_keys=False))
    doc = {  # its own pipeline root: the copied artifacts/ belong to another pipeline
        "name": name, "pipeline": str(root / "tiny.yaml"), "root": str(root / "hp_root"),
        "objectives": {"student.accuracy": "max", "student.params": "min"},
        "space": {
            "distill.temperature": {"type": "loguniform", "low": 1.0, "high": 8.0},
            "distill.alpha": {"type": "uniform", "low": 0.1, "high": 0.9},
            "distill.method": {"type": "choice", "values": ["kd", "dkd"],
                               "conditional": {"dkd": {"distill.params.warmup_epochs": 1}}},
            "student.model": {"type": "choice", "values": [{"name": "mlp", "params": {"hidden": [4]}},
                                                           {"name": "mlp", "params": {"hidden": [16]}}]},
        },
        "budget": {"trials": 6, "max_concurrent": 1, "resources": {"cpu": 1}},
        "scheduler": {"type": "auto"},
        "sampler": {"type": "auto", "seed": 0, "population_size": 4},
    }
    spec = root / f"{name}_search.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = root / "searches" / name
    run_search(spec, backend="optuna", out_dir=out, base_dir=root, live=False, log=lambda _: None)
    return out


def run_arch_search(root: Path, name: str = "tiny_arch") -> Path:
    """An exhaustive 8-candidate CNN space, ranked at init, 3 candidates validated for 1 epoch."""
    from autokd.search.arch import run_arch_search as run

    pipeline = dict(TINY_PIPELINE, student={"model": {"name": "cnn", "params": {"stem_width": 4, "depths": [1, 1],
                                                                              "widths": [4, 8]}},
                                            "train": {"epochs": 1, "batch_size": 64, "lr": 0.01, "seed": 0}})
    (root / "tiny_cnn.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    space = {
        "name": name, "pipeline": str(root / "tiny_cnn.yaml"), "root": str(root / "arch_root"), "teacher": "trained",
        "student": {"family": "cnn", "stem_width": [2, 4], "depth": [[1], [1, 2]], "width": [[4], [4, 8]]},
        "constraints": {"max_params": 3000, "latency": {"runs": 2, "warmup": 0}},
        "batch": {"size": 32}, "top_k": 3, "validation": {"epochs": 1, "band": 0.3},
    }
    path = root / f"{name}_space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    run(path, out=root / "searches", validate=3, progress=False)
    return root / "searches" / name


def build_tree(dst: Path, src: Path = REPO) -> Path:
    """A project tree with every input the report reads (real pipeline outputs, two real searches)."""
    dst.mkdir(parents=True, exist_ok=True)
    copy_pipeline_outputs(dst, src)
    run_hparam_search(dst)
    run_arch_search(dst)
    return dst
