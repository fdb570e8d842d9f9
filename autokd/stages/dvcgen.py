"""DVC files for the chains: the stages of ``pipelines/<name>/dvc.yaml``, and the code they depend on.

**Code dependencies.** Every stage command (``python -m autokd …``) imports the CLI, validates
its whole spec against the registries (so the loss, model and reader modules are imported
even by ``prepare``) and runs library code; a stage must rerun when any of that changes, or
a changed default, batch order or loss would leave a trained model cached. So every stage
lists :data:`CODE_DEPS`: the whole library except the search (which no stage imports).
``tests/test_dvc_deps.py`` runs each stage, records the ``autokd`` modules it imported, and
checks ``dvc.yaml``, ``pipelines/compare/dvc.yaml`` and every generated ``pipelines/*/dvc.yaml``.
"""

from __future__ import annotations

from typing import Any

from autokd.spec.chain import ChainSpec

#: The library code every stage depends on (paths relative to the repo root).
CODE_DEPS = [
    "autokd/__init__.py", "autokd/__main__.py", "autokd/cli", "autokd/spec", "autokd/utils", "autokd/data",
    "autokd/models", "autokd/losses", "autokd/train", "autokd/evaluate", "autokd/lineage", "autokd/stages",
    "autokd/export",
]


def dvc_stages(spec: ChainSpec, spec_path: str, root: str, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``stages:`` of ``pipelines/<name>/dvc.yaml`` for this chain (each lists only the keys it reads).

    Paths are relative to the repo root (``wdir: ../..``). ``raw`` is the spec file's mapping:
    DVC refuses params keys a file lacks, so keys left to their defaults are not listed (add
    one to the spec file, then regenerate). ``autokd chain dvc SPEC`` prints the file.
    """
    r = root.rstrip("/")

    def keys(*dotted: str) -> list[dict[str, list[str]]]:
        present = [k for k in dotted if raw is None or _has_path(raw, k)]
        return [{spec_path: present}] if present else []

    cmd = f"python -m autokd chain step {spec_path} {{}} --root {r}"

    def model_outs(role: str, with_outputs: bool) -> list[Any]:
        outs: list[Any] = [f"{r}/artifacts/{role}"]
        if with_outputs:
            outs.append(f"{r}/artifacts/{'teacher_outputs' if role == 'teacher' else role + '_outputs'}")
        outs.append({f"{r}/checkpoints/{role}": {"persist": True, "cache": False}})
        outs.append({f"{r}/dvclive/{role}": {"cache": False}})
        return outs

    last = len(spec.steps) - 1
    out: dict[str, Any] = {
        "prepare": {"wdir": "../..", "cmd": cmd.format("prepare"), "deps": CODE_DEPS,
                    "params": keys("data"), "outs": [f"{r}/artifacts/data"]},
        "teacher": {"wdir": "../..", "cmd": cmd.format("teacher"), "deps": [f"{r}/artifacts/data"] + CODE_DEPS,
                    "params": keys("teacher", "runtime"), "outs": model_outs("teacher", True)},
    }
    for i, step in enumerate(spec.steps):
        source = spec.source(i)
        src_out = "teacher_outputs" if source == "teacher" else f"{source}_outputs"
        out[step.name] = {
            "wdir": "../..", "cmd": cmd.format(step.name),
            "deps": [f"{r}/artifacts/data", f"{r}/artifacts/{source}", f"{r}/artifacts/{src_out}"] + CODE_DEPS,
            "params": keys(f"steps.{i}", "runtime"), "outs": model_outs(step.name, True),
        }
    if spec.baseline:
        out["baseline"] = {
            "wdir": "../..", "cmd": cmd.format("baseline"), "deps": [f"{r}/artifacts/data"] + CODE_DEPS,
            "params": keys(f"steps.{last}.model", f"steps.{last}.train", "runtime"),
            "outs": model_outs("baseline", False),
        }
    if spec.direct:
        out["direct"] = {
            "wdir": "../..", "cmd": cmd.format("direct"),
            "deps": [f"{r}/artifacts/data", f"{r}/artifacts/teacher", f"{r}/artifacts/teacher_outputs"]
            + CODE_DEPS,
            "params": keys(f"steps.{last}.model", f"steps.{last}.train", f"steps.{last}.distill", "runtime"),
            "outs": model_outs("direct", False),
        }
    out["evaluate"] = {
        "wdir": "../..", "cmd": f"python -m autokd chain evaluate {spec_path} --root {r}",
        "deps": [f"{r}/artifacts/data"] + [f"{r}/artifacts/{n}" for n in spec.model_names()] + CODE_DEPS,
        "params": keys("evaluate", "ensemble"),
        "outs": [{f"{r}/reports/plots": {"cache": False}}, {f"{r}/reports/manifest.json": {"cache": False}}],
        "metrics": [{f"{r}/reports/metrics.json": {"cache": False}}],
    }
    return out


def _has_path(raw: dict[str, Any], dotted: str) -> bool:
    node: Any = raw
    for part in dotted.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def dvc_yaml_text(spec: ChainSpec, spec_path: str, root: str, raw: dict[str, Any] | None = None) -> str:
    import yaml

    header = (
        f"# The {spec.name} chain ({spec_path}) as DVC stages; generated by\n"
        f"#   python -m autokd chain dvc {spec_path} --root {root} > pipelines/{spec.name}/dvc.yaml\n"
        f"# Run:  dvc repro pipelines/{spec.name}/dvc.yaml      (commands run at the repo root: wdir ../..)\n"
    )
    return header + yaml.safe_dump({"stages": dvc_stages(spec, spec_path, root, raw)}, sort_keys=False, width=120)




#: The language-model pipeline's stages: (name, the outputs of other stages it reads, params sections, outs).
LM_STAGE_IO = [
    ("prepare", [], ["data"], ["artifacts/data"]),
    ("train_teacher", ["artifacts/data"], ["teacher", "runtime"], ["artifacts/teacher"]),
    ("cache_teacher", ["artifacts/data", "artifacts/teacher"], ["distill"], ["artifacts/teacher_outputs"]),
    ("train_baseline", ["artifacts/data"], ["student", "runtime"], ["artifacts/baseline"]),
    ("train_baseline_equal", ["artifacts/data"], ["teacher", "student", "distill", "runtime"], ["artifacts/baseline_equal"]),
    ("distill", ["artifacts/data", "artifacts/teacher", "artifacts/teacher_outputs"],
     ["student", "distill", "runtime"], ["artifacts/student"]),
    ("evaluate", ["artifacts/data", "artifacts/teacher", "artifacts/baseline", "artifacts/baseline_equal",
                  "artifacts/student", "artifacts/teacher_outputs"], ["evaluate"], []),
]
TRAINED = {"train_teacher": "teacher", "train_baseline": "baseline", "train_baseline_equal": "baseline_equal",
           "distill": "student"}


def lm_dvc_stages(spec_path: str, root: str) -> dict[str, Any]:
    """The ``stages:`` of ``pipelines/lm/dvc.yaml`` (run at the repo root: ``wdir: ../..``).

    Checkpoints and DVCLive logs are persisted, uncached outputs (a crashed stage resumes);
    ``reports/metrics.json`` holds timings (tokens/s) and is an uncached metrics file."""
    r = root.rstrip("/")
    stages: dict[str, Any] = {}
    for name, reads, params, outs in LM_STAGE_IO:
        stage: dict[str, Any] = {
            "wdir": "../..",
            "cmd": f"python -m autokd stage {name} {spec_path} --root {r}",
            "deps": [f"{r}/{p}" for p in reads] + list(CODE_DEPS),
            "params": [{spec_path: list(params)}],
        }
        out_list: list[Any] = [f"{r}/{o}" for o in outs]
        if name in TRAINED:
            role = TRAINED[name]
            out_list += [{f"{r}/checkpoints/{role}": {"persist": True, "cache": False}},
                         {f"{r}/dvclive/{role}": {"cache": False}}]
        if out_list:
            stage["outs"] = out_list
        if name == "evaluate":
            stage["metrics"] = [{f"{r}/reports/metrics.json": {"cache": False}}]
        stages[name] = stage
    return stages
