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

from pathlib import Path
from typing import Any

from autokd.spec.chain import ChainSpec
from autokd.utils.code import STAGE_CODE, STAGE_FILES

#: In a user's project (autokd installed, no source tree): the record of the installed code that
#: every stage depends on instead of :data:`CODE_DEPS` (written by the ``code`` stage, see
#: :func:`code_stage`).
INSTALLED_CODE = ".autokd/code.json"

#: The library code every stage depends on (paths relative to the repo root).
CODE_DEPS = [f"autokd/{name}" for name in STAGE_FILES + STAGE_CODE]


def dvc_stage(cmd: str, *, deps: list[Any] | tuple = (), code: tuple[str, ...] | list[str] | None = None,
              params: list[Any] | None = None, outs: list[Any] | None = None, metrics: list[Any] | None = None,
              wdir: str | None = None, matrix: dict[str, Any] | None = None,
              always_changed: bool = False) -> dict[str, Any]:
    """One stage of any DVC file autokd writes, its keys in DVC's usual order.

    ``code``: the library code the command imports (default :data:`CODE_DEPS`; ``()`` for a stage
    checked by other means, see ``tests/test_dvc_deps.py``), listed after ``deps``."""
    stage: dict[str, Any] = {}
    if matrix:
        stage["matrix"] = matrix
    if wdir:
        stage["wdir"] = wdir
    stage["cmd"] = cmd
    all_deps = list(deps) + list(CODE_DEPS if code is None else code)
    if all_deps:
        stage["deps"] = all_deps
    for key, value in (("params", params), ("outs", outs), ("metrics", metrics)):
        if value:
            stage[key] = value
    if always_changed:
        stage["always_changed"] = True
    return stage


def code_stage(wdir: str | None = None) -> dict[str, Any]:
    """The first stage of a user project's DVC file: records the installed autokd (version and
    code digest) in :data:`INSTALLED_CODE` on every ``dvc repro``; the file's bytes change only
    when the code does, so the stages that depend on it rerun only then."""
    return dvc_stage(f"python -m autokd code-record {INSTALLED_CODE}", code=(), wdir=wdir,
                     outs=[uncached(INSTALLED_CODE)], always_changed=True)


def code_mode(repo_root: str | Path = ".") -> str:
    """``source`` where the repo root holds autokd's own source tree (this repository), else
    ``installed`` (a user's project: stages depend on :data:`INSTALLED_CODE`)."""
    return "source" if (Path(repo_root) / "autokd" / "stages" / "dvcgen.py").is_file() else "installed"


def uncached(path: str, persist: bool = False) -> dict[str, dict[str, bool]]:
    """An output DVC does not cache (``persist``: kept across runs, e.g. a checkpoint folder)."""
    return {path: {"persist": True, "cache": False} if persist else {"cache": False}}


def dvc_text(header: str, stages: dict[str, Any], *, vars: list[Any] | None = None,
             plots: list[Any] | None = None) -> str:
    """The text of a ``dvc.yaml``: the header comment, then ``vars``, ``stages``, ``plots``."""
    import yaml

    doc: dict[str, Any] = {"vars": vars} if vars else {}
    doc["stages"] = stages
    if plots:
        doc["plots"] = plots
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def _code_deps(code: str) -> list[str]:
    """The code dependency of every stage: :data:`CODE_DEPS` (``source``) or :data:`INSTALLED_CODE`."""
    if code not in ("source", "installed"):
        raise ValueError(f"code must be 'source' or 'installed', not {code!r}")
    return list(CODE_DEPS) if code == "source" else [INSTALLED_CODE]


def dvc_stages(spec: ChainSpec, spec_path: str, root: str, raw: dict[str, Any] | None = None,
               code: str = "source") -> dict[str, Any]:
    """The ``stages:`` of ``pipelines/<name>/dvc.yaml`` for this chain (each lists only the keys it reads).

    Paths are relative to the repo root (``wdir: ../..``). ``raw`` is the spec file's mapping:
    DVC refuses params keys a file lacks, so keys left to their defaults are not listed (add
    one to the spec file, then regenerate). ``code``: as for :func:`pipeline_dvc` (in a user's
    project the root ``dvc.yaml``'s ``code`` stage writes :data:`INSTALLED_CODE`).
    ``autokd chain dvc SPEC`` prints the file.
    """
    r = root.rstrip("/")
    deps_code = _code_deps(code)

    def keys(*dotted: str) -> list[dict[str, list[str]]]:
        present = [k for k in dotted if raw is None or _has_path(raw, k)]
        return [{spec_path: present}] if present else []

    def step(name: str, deps: list[str], params: list[Any], outs: list[Any], cmd: str | None = None,
             metrics: list[Any] | None = None) -> dict[str, Any]:
        cmd = cmd or f"python -m autokd chain step {spec_path} {name} --root {r}"
        return dvc_stage(cmd, deps=deps, code=deps_code, params=params, outs=outs, metrics=metrics, wdir="../..")

    def model_outs(role: str, with_outputs: bool) -> list[Any]:
        outs: list[Any] = [f"{r}/artifacts/{role}"]
        if with_outputs:
            outs.append(f"{r}/artifacts/{'teacher_outputs' if role == 'teacher' else role + '_outputs'}")
        return outs + [uncached(f"{r}/checkpoints/{role}", persist=True), uncached(f"{r}/dvclive/{role}")]

    data = f"{r}/artifacts/data"
    last = len(spec.steps) - 1
    out: dict[str, Any] = {
        "prepare": step("prepare", [], keys("data"), [data]),
        "teacher": step("teacher", [data], keys("teacher", "runtime"), model_outs("teacher", True)),
    }
    for i, s in enumerate(spec.steps):
        source = spec.source(i)
        src_out = "teacher_outputs" if source == "teacher" else f"{source}_outputs"
        out[s.name] = step(s.name, [data, f"{r}/artifacts/{source}", f"{r}/artifacts/{src_out}"],
                           keys(f"steps.{i}", "runtime"), model_outs(s.name, True))
    if spec.baseline:
        out["baseline"] = step("baseline", [data], keys(f"steps.{last}.model", f"steps.{last}.train", "runtime"),
                               model_outs("baseline", False))
    if spec.direct:
        out["direct"] = step("direct", [data, f"{r}/artifacts/teacher", f"{r}/artifacts/teacher_outputs"],
                             keys(f"steps.{last}.model", f"steps.{last}.train", f"steps.{last}.distill", "runtime"),
                             model_outs("direct", False))
    out["evaluate"] = step("evaluate", [data] + [f"{r}/artifacts/{n}" for n in spec.model_names()],
                           keys("evaluate", "ensemble"),
                           [uncached(f"{r}/reports/plots"), uncached(f"{r}/reports/manifest.json")],
                           cmd=f"python -m autokd chain evaluate {spec_path} --root {r}",
                           metrics=[uncached(f"{r}/reports/metrics.json")])
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


def dvc_yaml_text(spec: ChainSpec, spec_path: str, root: str, raw: dict[str, Any] | None = None,
                  code: str = "source") -> str:
    made_by = (f"#   python -m autokd chain dvc {spec_path} --root {root} > pipelines/{spec.name}/dvc.yaml\n"
               if code == "source" else "#   autokd init . --update   (for every chain spec in pipelines/)\n")
    header = (
        f"# The {spec.name} chain ({spec_path}) as DVC stages; generated by\n{made_by}"
        f"# Run:  dvc repro pipelines/{spec.name}/dvc.yaml      (commands run at the repo root: wdir ../..)\n"
    )
    return dvc_text(header, dvc_stages(spec, spec_path, root, raw, code))


# ------------------------------------------------------------------ a pipeline of any task


def params_entry(spec_path: str, keys: tuple[str, ...] | list[str], raw: dict[str, Any] | None) -> list[Any]:
    """A stage's ``params:``: each dotted key the spec file has; a key it lacks is replaced by its
    top-level section (DVC refuses a key a file lacks, and a key added later must still rerun the
    stage), a section it lacks is left out (defaults; regenerate after adding it)."""
    out: list[str] = []
    for key in keys:
        top = key.split(".")[0]
        pick = key if raw is None or _has_path(raw, key) else (top if _has_path(raw, top) else None)
        if pick is not None and pick not in out:
            out.append(pick)
    sections = {k for k in out if "." not in k}
    out = [k for k in out if "." not in k or k.split(".")[0] not in sections]  # a whole section covers its keys
    return [{spec_path: out}] if out else []


def pipeline_dvc(task, spec, spec_path: str, root: str = ".", raw: dict[str, Any] | None = None,
                 wdir: str | None = None, code: str = "source") -> dict[str, Any]:
    """The ``stages:`` of a pipeline of any task, from its :class:`~autokd.stages.task.StageIO` list.

    ``root``: the output root (``.``: the repo root, ``runs/lm``); ``wdir``: from the DVC file's
    folder to the repo root (``../..`` for ``pipelines/<name>/dvc.yaml``), where commands run.
    ``code``: ``source`` (each stage lists :data:`CODE_DEPS`) or ``installed`` (a first ``code``
    stage, and each stage depends on :data:`INSTALLED_CODE`; see :func:`code_mode`)."""
    r = "" if root in (".", "") else root.rstrip("/") + "/"
    root_opt = "" if not r else f" --root {root.rstrip('/')}"
    deps_code = _code_deps(code)
    stages: dict[str, Any] = {"code": code_stage(wdir)} if code == "installed" else {}
    for io in task.stage_io(spec):
        cmd = io.cmd.format(root=r) if io.cmd else f"python -m autokd stage {io.name} {spec_path}{root_opt}"
        outs: list[Any] = [f"{r}{o}" for o in io.outs]
        if io.trains:
            outs += [uncached(f"{r}checkpoints/{io.trains}", persist=True), uncached(f"{r}dvclive/{io.trains}")]
        outs += [uncached(f"{r}{o}") for o in io.uncached]
        stages[io.name] = dvc_stage(cmd, deps=[f"{r}{p}" for p in io.reads], code=deps_code,
                                    params=params_entry(spec_path, io.params, raw), outs=outs,
                                    metrics=[uncached(f"{r}{m}") for m in io.metrics], wdir=wdir)
    return stages


def pipeline_dvc_text(task, spec, spec_path: str, root: str = ".", raw: dict[str, Any] | None = None,
                      wdir: str | None = None, code: str = "source") -> str:
    """The ``dvc.yaml`` of a pipeline of any task: the task's header comment, its stages and plots."""
    r = "" if root in (".", "") else root.rstrip("/") + "/"
    header = task.dvc_header(spec_path, root) if code == "source" else project_header(task, spec_path)
    return dvc_text(header, pipeline_dvc(task, spec, spec_path, root, raw, wdir, code), plots=task.dvc_plots(spec, r))


def project_header(task, spec_path: str) -> str:
    """The header of a user project's DVC file (``autokd init``, ``autokd init . --update``)."""
    return (
        f"# The {task.name} pipeline {spec_path} as DVC stages, generated by autokd from the spec:\n"
        "#   autokd init . --update     regenerate after adding a section (keeps stages and files you changed)\n"
        "# Each stage lists only the spec keys it reads. Code: every stage depends on the installed autokd\n"
        f"# ({INSTALLED_CODE}: version and code digest, rewritten by the `code` stage on each repro).\n"
        "#   dvc repro                  run / update everything\n"
        f"#   dvc exp run -S {spec_path}:distill.alpha=0.7   an experiment\n"
        "#   dvc exp show --md          experiments with metrics\n"
    )
