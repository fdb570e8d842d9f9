"""What every trial reads: the prepared data and the teacher's cached outputs, made once.

Trials never prepare data or train a teacher. Before a search starts, :func:`ensure_inputs`
checks the pipeline root (the repo root where ``dvc repro`` put ``artifacts/``): if the
prepared data or the teacher (with its output cache) are missing, it runs the pipeline's own
``prepare`` and ``train_teacher`` stages into that root, once. If they exist but were made
from a different ``data`` or ``teacher`` section than the searched spec has, it refuses
(the trials would otherwise distil from the wrong teacher). On a cluster the root must be on
storage every node can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autokd.spec.errors import SpecError, SpecIssue
from autokd.spec.document import dump_spec
from autokd.spec.pipeline import PipelineSpec


@dataclass(frozen=True)
class Inputs:
    """The lineage every trial records."""

    root: str
    data_sha256: str
    teacher_sha256: str
    teacher_outputs_sha256: str


def _manifest_spec(directory: Path) -> dict | None:
    from autokd.lineage.manifest import read_manifest

    try:
        return read_manifest(directory).get("spec", {})
    except FileNotFoundError:
        return None


def section_issues(sections: dict[str, tuple], command: str = "dvc repro") -> list[SpecIssue]:
    """Issues for spec sections that differ from the ones that made the root's artifacts:
    ``{section: (manifest or None, wanted section mapping, artifact folder)}``."""
    return [SpecIssue((section,), expected=f"the {section} section that made {where}", found_text="a different one",
                      hint=f"run `{command}` for this pipeline first, or give the search another root")
            for section, (manifest, want, where) in sections.items()
            if manifest is not None and manifest.get("spec", {}) != {section: want}]


def ensure_inputs(spec: PipelineSpec, root: str | Path, pipeline_file: str | None = None,
                  log=print) -> Inputs:
    """Make sure ``root`` holds the data and teacher outputs of ``spec``; return their hashes."""
    from autokd.lineage.manifest import file_sha256
    from autokd.models.artifact import MODEL_FILE
    from autokd.stages import Layout, prepare, train_teacher
    from autokd.train.teacher_cache import CACHE_NAME, load_teacher_outputs

    layout = Layout(Path(root).resolve())
    data_spec = _manifest_spec(layout.data)
    teacher_spec = _manifest_spec(layout.model_dir("teacher"))
    cache_file = layout.teacher_outputs / CACHE_NAME
    problems = section_issues({"data": ({"spec": data_spec} if data_spec is not None else None,
                                        dump_spec(spec.data), layout.data),
                               "teacher": ({"spec": teacher_spec} if teacher_spec is not None else None,
                                           dump_spec(spec.teacher), layout.model_dir("teacher"))})
    if problems:
        raise SpecError(pipeline_file, problems)
    made = False
    if data_spec is None:
        log(f"[search] no prepared data under {layout.root}: running prepare once")
        prepare(spec, layout)
        made = True
    if made or teacher_spec is None or not cache_file.exists():
        log(f"[search] no teacher outputs under {layout.root}: running train_teacher once")
        train_teacher(spec, layout, progress=False)
    from autokd.lineage.manifest import read_manifest

    data_sha = read_manifest(layout.data).get("data_sha256", "")
    teacher_sha = file_sha256(layout.model_dir("teacher") / MODEL_FILE)
    cache = load_teacher_outputs(cache_file)
    cache.check(data_sha or cache.data_sha256, cache.logits.shape[0], teacher_sha)
    return Inputs(root=str(layout.root), data_sha256=data_sha or cache.data_sha256, teacher_sha256=teacher_sha,
                  teacher_outputs_sha256=file_sha256(cache_file))
