"""Spec errors that name the file, the key path, what was expected and what was found."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from pydantic import BaseModel, ValidationError


@dataclass
class SpecIssue:
    """One problem at one key path of a spec."""

    loc: tuple[str | int, ...]
    expected: str
    found: Any = None
    hint: str | None = None
    line: int | None = None
    show_found: bool = True
    found_text: str | None = None  # rendered as is instead of repr(found)

    @property
    def path(self) -> str:
        out = ""
        for part in self.loc:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out or "<top level>"

    def render(self, file: str | None) -> str:
        where = file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        msg = f"{where}: {self.path}: expected {self.expected}"
        if self.show_found:
            msg += f", found {self.found_text or _show(self.found)}"
        if self.hint:
            msg += f" ({self.hint})"
        return msg


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class SpecError(Exception):
    """A spec failed validation. ``str()`` gives one line per issue."""

    def __init__(self, file: str | None, issues: Sequence[SpecIssue]):
        self.file = file
        self.issues = list(issues)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(issue.render(self.file) for issue in self.issues)


def suggest(name: str, valid: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the nearest valid name, or None."""
    valid = [str(v) for v in valid]
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else None


def unknown_name_issue(loc, found: str, valid: Iterable[str], what: str) -> SpecIssue:
    """An unknown registry name (model family, method, data source) with a suggestion."""
    valid = sorted(valid)
    return SpecIssue(
        loc=tuple(loc), expected=f"{what}, one of: {', '.join(valid)}", found=found, hint=suggest(found, valid)
    )


_EXPECT = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "missing": "a value (this key is required)",
    "none_required": "null",
    "finite_number": "a finite number",
}


def _num(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _expected_text(err: dict) -> str:
    t = err["type"]
    ctx = {k: _num(v) for k, v in (err.get("ctx") or {}).items()}
    if t in _EXPECT:
        return _EXPECT[t]
    if t == "greater_than":
        return f"a number greater than {ctx.get('gt')}"
    if t == "greater_than_equal":
        return f"a number greater than or equal to {ctx.get('ge')}"
    if t == "less_than":
        return f"a number less than {ctx.get('lt')}"
    if t == "less_than_equal":
        return f"a number less than or equal to {ctx.get('le')}"
    if t == "literal_error":
        return f"one of {ctx.get('expected')}"
    if t == "string_pattern_mismatch":
        return f"a string matching {ctx.get('pattern')}"
    if t == "value_error":
        return err["msg"].removeprefix("Value error, ")
    return err["msg"][:1].lower() + err["msg"][1:]


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def fields_at(model: type[BaseModel] | None, loc: Sequence[str | int]) -> list[str] | None:
    """Field names of the (sub)model reached by ``loc`` (used for typo suggestions)."""
    current: Any = model
    mapping_key = False  # the previous field was ``dict[str, Model]``: this part is a user's key
    for part in loc:
        if isinstance(part, int) or mapping_key:
            mapping_key = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        fld = current.model_fields.get(part)
        if fld is None:
            return None
        mapping_key = getattr(fld.annotation, "__origin__", None) is dict
        current = _unwrap_model(fld.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def issues_from_validation(
    exc: ValidationError, model: type[BaseModel], prefix: tuple[str | int, ...] = ()
) -> list[SpecIssue]:
    """Turn a pydantic ValidationError into SpecIssues (unknown keys get suggestions)."""
    out: list[SpecIssue] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if err["type"] == "extra_forbidden":
            parent, key = loc[:-1], loc[-1]
            valid = fields_at(model, parent) or []
            listing = ", ".join(valid)
            out.append(
                SpecIssue(
                    loc=prefix + loc,
                    expected=f"a known key ({listing})" if valid else "a known key",
                    found=key,
                    found_text=f"unknown key {key!r}",
                    hint=suggest(str(key), valid),
                )
            )
            continue
        found = err.get("input")
        show = err["type"] != "missing" and not (err["type"] == "value_error" and isinstance(found, dict))
        out.append(SpecIssue(loc=prefix + loc, expected=_expected_text(err), found=found, show_found=show))
    return out
