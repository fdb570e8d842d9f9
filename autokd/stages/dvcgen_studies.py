"""DVC files of the studies around the default pipeline: the method comparison
(``pipelines/compare/dvc.yaml``) and the student-architecture ranking (``pipelines/arch/dvc.yaml``).

Both are written by the one stage writer of :mod:`autokd.stages.dvcgen` (:func:`dvc_stage`,
:func:`dvc_text`) and read the root pipeline's prepared data and teacher. Each DVC file lives two
folders below the repo root (``wdir: ../..``); the comparison's sits next to its spec, whose
``methods`` and ``seeds`` it reads as DVC ``vars`` (adding a method there adds its stages, no
regeneration needed).

    autokd compare dvc > pipelines/compare/dvc.yaml
    autokd search arch-dvc search_spaces/students.yaml > pipelines/arch/dvc.yaml
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from autokd.stages.dvcgen import CODE_DEPS, INSTALLED_CODE, _code_deps, dvc_stage, dvc_text, params_entry, uncached

DEFAULT_COMPARE_SPEC = "pipelines/compare/methods.yaml"
#: the default pipeline's outputs every comparison run reads
TEACHER = ["artifacts/data", "artifacts/teacher"]
TEACHER_OUTPUTS = TEACHER + ["artifacts/teacher_outputs"]


def compare_stages(spec_path: str, pipeline: str, pipeline_raw: dict[str, Any] | None,
                   code: str = "source") -> dict[str, Any]:
    """The stages of the comparison ``spec_path`` on ``pipeline`` (its file's mapping ``pipeline_raw``);
    ``code`` as for :func:`autokd.stages.dvcgen.pipeline_dvc` (a user's project: the installed
    code's record, which covers the stage code, not the search the ``tune`` stage also runs)."""
    opt = "" if spec_path == DEFAULT_COMPARE_SPEC else f" --spec {spec_path}"
    deps_code = _code_deps(code)
    tune_code = CODE_DEPS + ["autokd/search"] if code == "source" else [INSTALLED_CODE]

    def run_stage(cmd: str, matrix: dict[str, str], deps: list[str], compare_keys: list[str],
                  pipeline_keys: tuple[str, ...], out: str, item: str | None = None) -> dict[str, Any]:
        item = item or "/".join(f"${{item.{k}}}" for k in matrix)
        return dvc_stage(
            f"python -m autokd compare {cmd}{opt}", matrix=matrix, wdir="../..", deps=deps, code=deps_code,
            params=[{spec_path: compare_keys}] + params_entry(pipeline, pipeline_keys, pipeline_raw),
            outs=[f"runs/{out}/{item}", uncached(f"reports/timings/{out}/{item}.json"),
                  uncached(f"checkpoints/{out}/{item}", persist=True)])

    per_method = {"method": "${methods}", "seed": "${seeds}"}
    return {
        "baseline": run_stage("run baseline ${item.seed}", {"seed": "${seeds}"}, TEACHER,
                              ["pipeline", "overrides"], ("student", "runtime"), "compare", "baseline/${item.seed}"),
        "distill": run_stage("run ${item.method} ${item.seed}", per_method, TEACHER_OUTPUTS,
                             ["pipeline", "overrides", "methods.${item.method}"],
                             ("student", "distill", "runtime"), "compare"),
        # reads the runs' JSON only (tests/test_dvc_deps.py checks what it imports)
        "aggregate": dvc_stage(f"python -m autokd compare aggregate{opt}", wdir="../..", code=(),
                               deps=["runs/compare", "reports/timings/compare"],
                               params=[{spec_path: ["seeds", "methods"]}],
                               outs=[uncached("reports/methods.png")], metrics=[uncached("reports/methods.json")]),
        "tune": dvc_stage(
            f"python -m autokd compare tune ${{item.method}}{opt}", matrix={"method": "${methods}"}, wdir="../..",
            deps=TEACHER_OUTPUTS, code=tune_code,
            params=[{spec_path: ["pipeline", "seeds", "overrides", "tuning", "methods.${item.method}"]}]
            + params_entry(pipeline, ("student", "distill", "runtime"), pipeline_raw),
            outs=["runs/compare_tuned/${item.method}/chosen.json", uncached("searches/compare/${item.method}")]),
        "tuned": run_stage("run-tuned ${item.method} ${item.seed}", per_method,
                           TEACHER_OUTPUTS + ["runs/compare_tuned/${item.method}/chosen.json"],
                           ["pipeline", "overrides", "methods.${item.method}"],
                           ("student", "distill", "runtime"), "compare_tuned"),
        "aggregate_tuned": dvc_stage(f"python -m autokd compare aggregate-tuned{opt}", wdir="../..",
                                     deps=["runs/compare", "runs/compare_tuned"], code=deps_code,
                                     params=[{spec_path: ["seeds", "methods", "tuning"]}],
                                     metrics=[uncached("reports/methods_tuned.json")]),
    }


def compare_dvc_text(spec_path: str, pipeline: str, pipeline_raw: dict[str, Any] | None,
                     code: str = "source") -> str:
    """``pipelines/compare/dvc.yaml``: :func:`compare_stages` with the spec's file as ``vars``."""
    name = PurePosixPath(spec_path).name
    header = (
        f"# The method comparison ({spec_path}): every single-stage method and the labels-only baseline\n"
        f"# over the spec's student seeds, on {pipeline}'s data and teacher, then one aggregate report.\n"
        + (f"# Generated by: autokd compare dvc{'' if spec_path == DEFAULT_COMPARE_SPEC else ' --spec ' + spec_path}"
           " > (the spec's folder)/dvc.yaml\n" if code == "source" else
           "# Generated by: autokd init . --update   (for every comparison spec in pipelines/<folder>/)\n")
        + f"#   dvc repro {PurePosixPath(spec_path).parent}/dvc.yaml   (builds the root prepare/train_teacher first"
        " if stale)\n"
        "#   python -m autokd compare table                the README table from reports/methods.json\n"
        "#   python -m autokd compare table --tuned        untuned beside tuned, from reports/methods_tuned.json\n"
        f"# Methods and seeds come from {name} (vars), so adding a method there adds its stages.\n"
        "# The tuned comparison: each method searched with the spec's `tuning` budget on the validation\n"
        "# split (searches/compare/<method>/, not cached), its chosen configuration in chosen.json; then\n"
        "# that configuration per seed; then untuned beside tuned (reports/methods_tuned.json).\n"
        "# On a Ray cluster: AUTOKD_RAY_ADDRESS=HEAD:6379 dvc repro (this file) (the tune command's --address;\n"
        "# the repo root, and AUTOKD_SEARCH_STORAGE if set, must be on storage every node reads).\n"
        "# Commands run at the repo root (wdir ../..); paths below are relative to it.\n"
    )
    return dvc_text(header, compare_stages(spec_path, pipeline, pipeline_raw, code), vars=[name])


def arch_stages(space_path: str, name: str, pipeline: str, root: str = ".") -> dict[str, Any]:
    """The ranking stage of the architecture space ``space_path`` (its ``name``, ``pipeline``, ``root``)."""
    r = "" if root in (".", "") else root.rstrip("/") + "/"
    return {"arch_search": dvc_stage(
        f"python -m autokd search arch {space_path} --quiet", wdir="../..",
        deps=[space_path, f"{r}artifacts/data", f"{r}artifacts/teacher"], code=CODE_DEPS + ["autokd/search"],
        params=[{pipeline: ["data", "teacher", "runtime"]}],
        # not cached: the ranking reports its own cost (seconds, RSS) and a latency constraint measured
        # on the machine that runs it, so two runs need not be the same bytes (cached outputs must be)
        outs=[uncached(f"searches/{name}")])}


def arch_dvc_text(space_path: str, name: str, pipeline: str, root: str = ".") -> str:
    """``pipelines/arch/dvc.yaml``: :func:`arch_stages` with its header comment."""
    header = (
        f"# A separate DVC pipeline: rank student architectures ({space_path}) for {pipeline}'s trained\n"
        "# teacher, without training them (autokd search arch). Paths are relative to the repo root\n"
        "# (wdir). It depends on the root pipeline's prepared data and teacher, so DVC runs (or\n"
        "# reuses) those stages first. Outputs are not cached: the ranking reports its own cost and a\n"
        "# latency measured on the machine that runs it. Generated by:\n"
        f"#   autokd search arch-dvc {space_path} > pipelines/arch/dvc.yaml\n"
        f"#   dvc repro pipelines/arch/dvc.yaml        rank -> searches/{name}/ (ranking.*, shortlist.yaml)\n"
        "# The ranking validation (`--validate N`, minutes) is a command, not a stage:\n"
        f"#   python -m autokd search arch {space_path} --validate 24\n"
    )
    return dvc_text(header, arch_stages(space_path, name, pipeline, root))
