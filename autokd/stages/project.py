"""``autokd init``: a user's own git + DVC project around one pipeline, from the installed package.

The project holds ``pipelines/<name>.yaml`` and ``search_spaces/<name>.yaml`` (the shipped specs
of :mod:`autokd.resources`, renamed and pointed at the user's data), a ``dvc.yaml`` generated from
the spec with the installed autokd as every stage's code dependency (``.autokd/code.json``, see
:func:`autokd.stages.dvcgen.code_stage`), ``.gitignore``/``.dvcignore`` and a short README.
``.autokd/project.json`` records the sha256 of every file init wrote and the stages it
generated, so ``autokd init --update`` rewrites only files the user has not changed and keeps
the stages the user added to ``dvc.yaml``.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from autokd.utils.io import atomic_write_text

RECORD = ".autokd/project.json"
#: --data -> (task it suits, how to write it into the spec)
BUILTIN_DATA = {"digits": "classify", "pydoc": "lm"}
IGNORES = ["/checkpoints/", "/searches/", "/dvclive/*/plots/", "__pycache__/", "*.pyc"]


class ProjectError(ValueError):
    """``autokd init`` cannot make the project as asked (bad options, a non-empty folder)."""


@dataclass
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # files the user changed: left as they are


def resource_text(kind: str, task: str) -> str:
    """The shipped spec (``kind``: pipelines | search_spaces) of ``task`` (classify | lm)."""
    name = "default.yaml" if task == "classify" else "lm.yaml"
    return resources.files("autokd.resources").joinpath(kind, name).read_text(encoding="utf-8")


def _yaml():
    from ruamel.yaml import YAML

    y = YAML()  # round trip: the shipped comments stay
    y.preserve_quotes = True
    y.width = 120
    return y


def _dump(doc: Any) -> str:
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    return buf.getvalue()


def parse_data(data: str | None, task: str) -> dict[str, Any] | None:
    """``--data`` (digits | pydoc | csv:PATH | folder:PATH) -> the spec's new ``data`` keys (None
    keeps the shipped data)."""
    if data is None:
        return None
    kind, _, path = data.partition(":")
    if kind in BUILTIN_DATA and not path:
        if BUILTIN_DATA[kind] != task:
            raise ProjectError(f"--data {kind} is {BUILTIN_DATA[kind]} data; with --task {task} use "
                               + ("csv:PATH or folder:PATH" if task == "classify" else "pydoc or folder:PATH"))
        return None
    if kind not in ("csv", "folder") or not path:
        raise ProjectError(f"--data {data!r}: expected digits, pydoc, csv:PATH or folder:PATH")
    if kind == "csv":
        if task != "classify":
            raise ProjectError("--data csv:PATH is tabular classification data (use --task classify)")
        return {"source": "csv", "path": path}
    return {"source": "image_folder" if task == "classify" else "files", "path": path}


def render_pipeline(task: str, name: str, data: dict[str, Any] | None) -> str:
    doc = _yaml().load(resource_text("pipelines", task))
    doc["name"] = name
    if data is not None:
        d = doc["data"]
        for key in ("block_chars",) if task == "lm" else ():
            d.pop(key, None)
        d.update(data)
        if data.get("source") == "csv":  # tabular features: MLPs, not the 8x8 image CNNs
            doc["teacher"]["model"] = {"name": "mlp", "params": {"hidden": [128, 128]}}
            doc["student"]["model"] = {"name": "mlp", "params": {"hidden": [16]}}
    return _dump(doc)


def render_search_space(task: str, name: str, data: dict[str, Any] | None = None) -> str:
    doc = _yaml().load(resource_text("search_spaces", task))
    doc["name"] = name
    doc["pipeline"] = f"pipelines/{name}.yaml"
    doc["root"] = "."
    space = doc["space"]
    if data is not None and "student.model" in space:  # the shipped students suit the shipped data only
        del space["student.model"]
    return _dump(doc)


def project_readme(task: str, name: str) -> str:
    return (f"# {name}: a knowledge-distillation project (autokd, task {task})\n\n"
            f"- `pipelines/{name}.yaml`: data, teacher, student, distillation (`autokd validate "
            f"pipelines/{name}.yaml`).\n"
            "- `dvc repro`: prepare, teacher, labels-only baseline, distillation, evaluation (cached).\n"
            f"- `autokd search hparams search_spaces/{name}.yaml`: a Ray Tune + Optuna search; each completed "
            "trial is a DVC experiment (`dvc exp show`).\n"
            f"- `autokd init --update .`: regenerate `dvc.yaml` after adding a section to the spec "
            "(stages you added are kept; files you changed are not overwritten).\n")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ProjectError(f"`{' '.join(cmd)}` failed in {cwd}: {(r.stderr or r.stdout).strip()}")


def generated_dvc(root: Path, spec_rel: str, previous: list[str]) -> tuple[str, list[str]]:
    """``dvc.yaml`` from the spec, the installed code as dependency, keeping every stage of an
    existing ``dvc.yaml`` that autokd did not generate (not in ``previous``)."""
    import yaml

    from autokd.spec.document import load_yaml
    from autokd.stages.dvcgen import dvc_text, pipeline_dvc, project_header
    from autokd.stages.task import task_of

    spec_file = root / spec_rel
    raw = load_yaml(spec_file)
    task = task_of(raw, str(spec_file))
    spec = task.load(spec_file, root=root)
    stages = pipeline_dvc(task, spec, spec_rel, ".", raw, None, code="installed")
    ours = list(stages)
    existing = root / "dvc.yaml"
    if existing.exists():
        old = (yaml.safe_load(existing.read_text()) or {}).get("stages", {})
        stages.update({k: v for k, v in old.items() if k not in ours and k not in previous})
    return dvc_text(project_header(task, spec_rel), stages, plots=task.dvc_plots(spec, "")), ours


def chain_dvc_files(root: Path, main_spec: str) -> dict[str, str]:
    """``pipelines/<chain>/dvc.yaml`` for every chain spec in ``pipelines/`` (a spec with ``steps:``,
    e.g. a teaching-assistant chain the user added), its stages on the installed code, outputs
    under ``runs/<chain>/``; a chain spec that does not validate is a :class:`ProjectError`."""
    from autokd.spec.document import load_yaml
    from autokd.spec.errors import SpecError
    from autokd.stages.dvcgen import dvc_yaml_text
    from autokd.stages.validate import load_chain_spec

    files: dict[str, str] = {}
    for path in sorted((root / "pipelines").glob("*.yaml")):
        rel = f"pipelines/{path.name}"
        raw = load_yaml(path) if rel != main_spec else None
        if not isinstance(raw, dict) or "steps" not in raw:
            continue
        try:
            spec = load_chain_spec(path, root=root)
        except SpecError as exc:
            raise ProjectError(f"the chain spec {rel} does not validate:\n{exc}") from None
        files[f"pipelines/{spec.name}/dvc.yaml"] = dvc_yaml_text(spec, rel, f"runs/{spec.name}", raw, code="installed")
    return files


def compare_dvc_files(root: Path) -> dict[str, str]:
    """``pipelines/<folder>/dvc.yaml`` next to every comparison spec in a folder of ``pipelines/``
    (a spec with ``methods:`` and ``pipeline:``, e.g. a copy of this repository's
    ``pipelines/compare/methods.yaml``; its DVC file reads it as ``vars``, so it sits beside it),
    on the installed code; a comparison spec that does not validate is a :class:`ProjectError`."""
    from autokd.spec.document import load_yaml
    from autokd.spec.errors import SpecError
    from autokd.stages.compare_spec import load_compare_spec
    from autokd.stages.dvcgen_studies import compare_dvc_text

    files: dict[str, str] = {}
    for path in sorted((root / "pipelines").glob("*/*.yaml")):
        rel = path.relative_to(root).as_posix()
        raw = load_yaml(path)
        if not isinstance(raw, dict) or "methods" not in raw or "pipeline" not in raw:
            continue
        try:
            spec = load_compare_spec(path, root=root)
        except SpecError as exc:
            raise ProjectError(f"the comparison spec {rel} does not validate:\n{exc}") from None
        pipeline = root / spec.pipeline
        files[f"{path.parent.relative_to(root).as_posix()}/dvc.yaml"] = compare_dvc_text(
            rel, spec.pipeline, load_yaml(pipeline) if pipeline.exists() else None, code="installed")
    return files


def init_project(root: str | Path, task: str = "classify", data: str | None = None, name: str | None = None,
                 force: bool = False, update: bool = False, git: bool = True) -> InitResult:
    """Make (or, with ``update``, refresh) the project at ``root``; see the module doc."""
    root = Path(root).resolve()
    record_path = root / RECORD
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    if update:
        if not record:
            raise ProjectError(f"{root} is not an autokd project ({RECORD} is missing): run autokd init first")
        task, name, data = record["task"], record["name"], record.get("data")
    if task not in ("classify", "lm"):
        raise ProjectError(f"--task {task!r}: expected classify or lm")
    data_keys = parse_data(data, task)
    name = name or ("default" if task == "classify" else "lm")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ProjectError(f"--name {name!r}: letters, digits, '-' and '_' only")
    if root.exists() and any(root.iterdir()) and not (force or update):
        raise ProjectError(f"{root} is not empty: pass --force to make the project there anyway "
                           "(files you changed are never overwritten)")
    root.mkdir(parents=True, exist_ok=True)
    if git and not (root / ".git").exists():
        _run(["git", "init", "-q"], root)
    made_by_dvc: dict[str, str] = {}
    if not (root / ".dvc").exists():
        had_dvcignore = (root / ".dvcignore").exists()
        _run(["dvc", "init", "-q"] + ([] if git else ["--no-scm"]), root)
        if not had_dvcignore and (root / ".dvcignore").exists():  # dvc init's own: ours to fill in
            made_by_dvc[".dvcignore"] = _sha((root / ".dvcignore").read_text())
    _run(["dvc", "config", "core.analytics", "false"], root)

    spec_rel = f"pipelines/{name}.yaml"
    files = {
        spec_rel: render_pipeline(task, name, data_keys),
        f"search_spaces/{name}.yaml": render_search_space(task, name, data_keys),
        ".gitignore": "\n".join(IGNORES) + "\n",
        ".dvcignore": ("# search results (Ray/Optuna files; trials are recorded as DVC experiments), but the\n"
                       "# comparison's tuned searches, outputs of its tune stage (pipelines/compare/dvc.yaml)\n"
                       "/searches/*\n!/searches/compare\n"),
        "README.md": project_readme(task, name),
    }
    result = InitResult(root)
    hashes: dict[str, str] = {**record.get("files", {}), **made_by_dvc}

    def put(rel: str, text: str) -> None:
        target = root / rel
        if target.exists() and hashes.get(rel) != _sha(target.read_text()):
            result.kept.append(rel)  # the user's file (or changed by the user): never overwritten
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
        hashes[rel] = _sha(text)
        result.written.append(rel)

    studies = ({**chain_dvc_files(root, spec_rel), **compare_dvc_files(root)}  # checked before writing
               if (root / "pipelines").is_dir() else {})
    for rel, text in files.items():
        put(rel, text)
    from autokd.spec.errors import SpecError

    try:
        dvc, ours = generated_dvc(root, spec_rel, record.get("stages", []))
    except SpecError as exc:
        raise ProjectError(f"the project's spec does not validate:\n{exc}") from None
    hashes.pop("dvc.yaml", None)  # dvc.yaml is merged, not kept: the user's stages survive regeneration
    atomic_write_text(root / "dvc.yaml", dvc)
    result.written.append("dvc.yaml")
    for rel, text in studies.items():  # a chain's or comparison's file: regenerated unless the user changed it
        put(rel, text)
    record = {"task": task, "name": name, "data": data, "files": hashes, "stages": ours}
    record_path.parent.mkdir(exist_ok=True)
    atomic_write_text(record_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return result
