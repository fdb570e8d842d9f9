"""Spec documents: YAML in (``safe_load`` only), dotted-path overrides, key paths to lines."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel

from autokd.spec.errors import SpecError, SpecIssue


def load_yaml(path: str | Path, allow_empty: bool = False) -> dict[str, Any]:
    """``yaml.safe_load`` a mapping, with file-named errors. An empty file is an error
    (it would silently validate as every default) unless ``allow_empty``."""
    path = Path(path)
    if not path.exists():
        raise SpecError(str(path), [SpecIssue(loc=(), expected="an existing spec file", found=str(path), show_found=False)])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            str(path), [SpecIssue(loc=(), expected="valid YAML", found_text=str(problem), line=line)]
        ) from None
    if data is None:
        if allow_empty:
            return {}
        raise SpecError(str(path), [SpecIssue(loc=(), expected="a spec with at least one section (the file is empty)",
                                              found_text="an empty document", line=1)])
    if not isinstance(data, dict):
        raise SpecError(str(path), [SpecIssue(loc=(), expected="a mapping at the top level", found=data, line=1)])
    return data


def read_document(path: str | Path, overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], str | None]:
    """A spec file's mapping with ``overrides`` applied, and its text for line numbers
    (None when overridden: lines would no longer match the values)."""
    path = Path(path)
    data = apply_overrides(load_yaml(path), overrides)
    return data, (path.read_text() if not overrides else None)


def line_index(text: str) -> dict[tuple, int]:
    """Map key paths to 1-based line numbers using the YAML node tree."""
    index: dict[tuple, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return index

    def walk(node, loc):
        index[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                walk(value_node, loc + (key,))
                index[loc + (key,)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, loc + (i,))

    if root is not None:
        walk(root, ())
    return index


def attach_lines(issues: list[SpecIssue], text: str | None) -> None:
    """Give each issue the line of the deepest key of its path found in ``text``."""
    if not text:
        return
    index = line_index(text)
    for issue in issues:
        if issue.line is not None:
            continue
        loc = tuple(issue.loc)
        while loc and loc not in index:
            loc = loc[:-1]
        if loc in index:
            issue.line = index[loc]


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts, creating mappings on the way."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise SpecError(None, [SpecIssue(loc=tuple(parts), expected=f"{part} to be a mapping", found=nxt)])
        node = nxt
    node[parts[-1]] = value


def get_path(data: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of ``data`` with dotted-path overrides (``distill.temperature: 8``)."""
    out = copy.deepcopy(data)
    for key, value in (overrides or {}).items():
        set_path(out, key, value)
    return out


def dump_spec(spec: BaseModel) -> dict[str, Any]:
    """A plain, YAML/JSON-ready dict of a spec (or spec section)."""
    return spec.model_dump(mode="json")
