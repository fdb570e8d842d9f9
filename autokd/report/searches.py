"""The searches' sections: every hyperparameter search's trials (sortable table, scatter,
parallel coordinates, Pareto front) and every architecture search's ranking and validation.

A folder under ``searches/`` is a hyperparameter search when it has ``trials.json`` (or only
``trials.csv``), an architecture search when it has ``ranking.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autokd.report import plots
from autokd.report.html import Cell, Section, cell, esc, fmt, heading, image, missing, note, table
from autokd.report.inputs import ReportInputError, number, read_csv_rows, read_json, read_yaml, subdirs

SEARCHES = "searches"
HPARAMS_RUN = "autokd search hparams search_spaces/default.yaml"
ARCH_RUN = "autokd search arch search_spaces/students.yaml --validate 24"
#: Short names for the usual knobs (the full spec path is in the header's tooltip-free caption).
SHORT = {"distill.temperature": "T", "distill.alpha": "λ", "distill.method": "method", "student.model": "student"}
ACCURACY = "val_accuracy"
RANKING_ROWS = 60


def short(name: str) -> str:
    return SHORT.get(name, name)


# ----------------------------------------------------------------------------- trials


def trials_from_csv(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """``trials.csv`` rows in ``trials.json``'s shape (what a search writes when JSON is absent)."""
    out = []
    for r in rows:
        params = {k[len("param:"):]: (number(v) if number(v) is not None else v)
                  for k, v in r.items() if k.startswith("param:") and v != ""}
        final = {k: number(r.get(k)) for k in ("val_accuracy", "test_accuracy", "val_loss", "params") if r.get(k)}
        out.append({"trial": r.get("trial", ""), "status": r.get("status", ""), "reason": r.get("reason", ""),
                    "params": params, "final": final, "epochs": number(r.get("epochs")),
                    "seconds": number(r.get("seconds"))})
    return out


def load_trials(root: Path, d: Path) -> list[dict[str, Any]] | None:
    base = f"{SEARCHES}/{d.name}"
    trials = read_json(root, f"{base}/trials.json")
    if trials is None:
        rows = read_csv_rows(root, f"{base}/trials.csv")
        return None if rows is None else trials_from_csv(rows)
    if not isinstance(trials, list) or not all(isinstance(t, dict) for t in trials):
        raise ReportInputError(f"{base}/trials.json: expected a list of trial records")
    return trials


def param_names(trials: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for t in trials:
        for k in (t.get("params") or {}):
            if k not in names:
                names.append(k)
    return names


def _is_numeric(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(number(v) is not None and not isinstance(v, str) for v in present)


def trials_table(name: str, trials: list[dict[str, Any]], front: set[str], best: str | None) -> str:
    params = param_names(trials)
    headers = ["trial", "status"] + [short(p) for p in params] + ["val accuracy", "test accuracy", "val loss",
                                                                   "model params", "epochs", "seconds", "note"]
    rows = []
    for t in trials:
        final = t.get("final") or {}
        marks = [m for m, on in (("best", t.get("trial") == best), ("Pareto front", t.get("trial") in front)) if on]
        row: list[Cell] = [cell(t.get("trial")), cell(t.get("status"))]
        row += [cell((t.get("params") or {}).get(p)) for p in params]
        row += [cell(final.get(k)) for k in ("val_accuracy", "test_accuracy", "val_loss", "params")]
        notes = marks + ([str(t["reason"])] if t.get("reason") else [])
        row += [cell(t.get("epochs")), cell(t.get("seconds"), 3), cell("; ".join(notes))]
        rows.append(row)
    return '<div class="scroll">' + table(headers, rows, sortable=True, table_id=f"trials-{name}", cls="trials") + "</div>"


def trial_plots(trials: list[dict[str, Any]]) -> str:
    """Accuracy against each numeric knob (colour: the method) and parallel coordinates of every knob."""
    done = [t for t in trials if number((t.get("final") or {}).get(ACCURACY)) is not None]
    if not done:
        return note("No trial reported a validation accuracy yet: nothing to plot.")
    params = param_names(done)
    values = {p: [(t.get("params") or {}).get(p) for t in done] for p in params}
    numeric = {short(p): [number(v) for v in vs] for p, vs in values.items() if _is_numeric(vs)}
    categorical = [p for p in params if not _is_numeric(values[p])]
    color_key = "distill.method" if "distill.method" in params else (categorical[0] if categorical else None)
    methods = [str(v) if v is not None else "" for v in values[color_key]] if color_key else [""] * len(done)
    acc = [number(t["final"][ACCURACY]) for t in done]
    out = image(plots.trial_scatter(numeric, methods, acc, "validation accuracy"),
                "validation accuracy against " + ", ".join(numeric or ["trial"]))
    axes = {short(p): ([number(v) for v in values[p]] if _is_numeric(values[p]) else values[p]) for p in params}
    if axes:
        axes["val accuracy"] = acc
        out += image(plots.parallel_coordinates(axes, acc, "validation accuracy"), "parallel coordinates")
    return out


def pareto_part(root: Path, name: str, trials: list[dict[str, Any]]) -> tuple[str, set[str]]:
    doc = read_json(root, f"{SEARCHES}/{name}/pareto.json")
    if not isinstance(doc, dict) or not isinstance(doc.get("front"), list):
        return "", set()
    objectives = doc.get("objectives") or {}
    names = list(objectives)
    front = [p for p in doc["front"] if isinstance(p, dict)]
    members = {str(p.get("trial")) for p in front}
    rows = [[cell(p.get("trial"))] + [cell(p.get(n)) for n in names] + [cell(p.get("test_accuracy")),
                                                                      cell(json.dumps(p.get("patch"), sort_keys=True))]
            for p in front]
    out = heading(f"Pareto front ({len(front)} trials)", 4)
    out += table(["trial"] + [f"{n} ({objectives[n]})" for n in names] + ["test accuracy", "patch"], rows,
                 sortable=True, table_id=f"pareto-{name}")
    acc = next((n for n in names if n == "student.accuracy"), names[0] if names else None)
    other = next((n for n in names if n != acc), None)
    if acc and other:
        key = {"student.accuracy": "val_accuracy", "student.params": "params", "student.flops": "flops",
               "student.latency": "latency_ms"}
        pts = [((t.get("final") or {}).get(key.get(other, other)), (t.get("final") or {}).get(key.get(acc, acc)))
               for t in trials if t.get("status") == "completed"]
        pts = [(number(x), number(y)) for x, y in pts if number(x) is not None and number(y) is not None]
        fx = [number(p.get(other)) for p in front]
        fy = [number(p.get(acc)) for p in front]
        if pts and all(v is not None for v in fx + fy):
            out += image(plots.pareto([p[0] for p in pts], [p[1] for p in pts], fx, fy, f"{other} ({objectives[other]})",
                                      f"{acc} ({objectives[acc]}, validation)",
                                      other in ("student.params", "student.flops")), "Pareto front")
    return out, members


def hparam_search_part(root: Path, d: Path, trials: list[dict[str, Any]]) -> str:
    name = d.name
    best_doc = read_yaml(root, f"{SEARCHES}/{name}/best.yaml")
    best = best_doc.get("trial") if isinstance(best_doc, dict) else None
    statuses: dict[str, int] = {}
    for t in trials:
        statuses[str(t.get("status"))] = statuses.get(str(t.get("status")), 0) + 1
    pareto_html, front = pareto_part(root, name, trials)
    summary = f"{len(trials)} trials (" + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + ")"
    if isinstance(best_doc, dict):
        objectives = ", ".join(f"{k} ({v})" for k, v in (best_doc.get("objectives") or {}).items())
        metrics = best_doc.get("metrics") or {}
        summary += (f"; objectives {objectives}; best trial {best}: validation accuracy "
                    f"{fmt(metrics.get('val_accuracy'))}, test accuracy {fmt(metrics.get('test_accuracy'))}")
    out = f'<div class="search" id="search-{esc(name)}">' + heading(f"searches/{name}") + note(summary + ".")
    out += trials_table(name, trials, front, best) + trial_plots(trials) + pareto_html
    return out + "</div>"


def hparams_section(root: Path) -> Section:
    key, title = "hparams", "Hyperparameter searches"
    parts, errors = [], []
    for d in subdirs(root / SEARCHES):
        try:
            trials = load_trials(root, d)
            if trials is not None:
                parts.append(hparam_search_part(root, d, trials))
        except ReportInputError as exc:
            errors.append(f'<p class="missing">not available: {esc(exc)}</p>')
    if not parts:
        return Section(key, title, "".join(errors) + missing("searches/<name>/trials.json", HPARAMS_RUN), False)
    body = note("Click a column header to sort. Accuracy is the validation split's (what the search optimises); "
                "T = distill.temperature, λ = distill.alpha.") + "".join(errors) + "".join(parts)
    return Section(key, title, body, True)


# ----------------------------------------------------------------------------- architectures


def ranking_part(name: str, doc: dict[str, Any]) -> str:
    cands = [c for c in doc.get("candidates") or [] if isinstance(c, dict)]
    proxies = [p.get("name") for p in doc.get("proxies") or [] if isinstance(p, dict)]
    meta = doc.get("search") or {}
    top_k = int(doc.get("top_k") or 0)
    facts = (f"family {doc.get('family')}; {meta.get('algorithm')} search, seed {meta.get('seed')}: space "
             f"{meta.get('space_size')}, admitted {meta.get('admitted')}, rejected {meta.get('rejected')} by the "
             f"constraints; combined = {(doc.get('combine') or {}).get('method')} of "
             f"{', '.join((doc.get('combine') or {}).get('proxies') or [])}; shortlist: "
             f"{', '.join(doc.get('shortlist') or [])}.")
    headers = ["rank", "candidate", "params", "flops (MACs)", "latency ms", "combined"] + [f"{p} rank" for p in proxies]
    rows = [[cell(c.get("rank")), cell(c.get("key")), cell(c.get("params")), cell(c.get("flops")),
             cell(c.get("latency_ms")), cell(c.get("combined"))]
            + [cell((c.get("ranks") or {}).get(p)) for p in proxies] for c in cands[:RANKING_ROWS]]
    out = note(facts) + '<div class="scroll">' + table(headers, rows, sortable=True, table_id=f"ranking-{name}") + "</div>"
    if len(cands) > RANKING_ROWS:
        out += note(f"{len(cands) - RANKING_ROWS} more candidates in searches/{name}/ranking.csv.")
    pts = [(number(c.get("params")), number(c.get("combined"))) for c in cands]
    if pts and all(x is not None and y is not None for x, y in pts):
        out += image(plots.ranking_scatter([p[0] for p in pts], [p[1] for p in pts], top_k),
                     "combined score against parameters")
    return out


def validation_part(name: str, v: dict[str, Any]) -> str:
    corr = v.get("correlations") or {}
    band = v.get("band") or {}
    rows = []
    for proxy, row in corr.items():
        a, b = row.get("all") or {}, row.get("band") or {}
        rows.append([cell(proxy), cell(a.get("tau"), 3), cell(a.get("rho"), 3), cell(a.get("n")),
                     cell(b.get("tau"), 3), cell(b.get("rho"), 3), cell(b.get("n"))])
    cands = [c for c in v.get("candidates") or [] if isinstance(c, dict)]
    out = heading("Ranking validation", 4) + note(
        f"{len(cands)} candidates distilled for {v.get('epochs')} epochs with the pipeline's {v.get('method')} "
        f"objective; accuracy = {v.get('metric')}. Parameter band {band.get('lo')}–{band.get('hi')} params "
        f"({band.get('n')} validated candidates inside). Kendall τ / Spearman ρ of each proxy with accuracy.")
    out += table(["proxy", "τ (all)", "ρ (all)", "n", "τ (band)", "ρ (band)", "n band"], rows, sortable=True,
                 table_id=f"validation-{name}")
    panels: dict[str, list[tuple[float, float, bool]]] = {}
    for proxy in list(corr)[:12]:
        pts = [(number((c.get("scores") or {}).get(proxy)), number(c.get("accuracy")), bool(c.get("in_band")))
               for c in cands]
        pts = [p for p in pts if p[0] is not None and p[1] is not None]
        if pts:
            panels[proxy] = pts
    titles = {p: f"{p}: τ={fmt((corr[p].get('all') or {}).get('tau'), 3)}" for p in panels}
    if panels:
        out += image(plots.validation_scatter(panels, titles), "proxy scores against distilled accuracy")
    return out


def arch_section(root: Path) -> Section:
    key, title = "arch", "Architecture searches"
    parts, errors = [], []
    for d in subdirs(root / SEARCHES):
        try:
            doc = read_json(root, f"{SEARCHES}/{d.name}/ranking.json")
            if not isinstance(doc, dict):
                continue
            part = ranking_part(d.name, doc)
            v = read_json(root, f"{SEARCHES}/{d.name}/validation.json")
            part += validation_part(d.name, v) if isinstance(v, dict) else missing(
                f"a validation of this ranking (searches/{d.name}/validation.json)", ARCH_RUN)
            parts.append(f'<div class="search" id="arch-{esc(d.name)}">' + heading(f"searches/{d.name}") + part
                         + "</div>")
        except (ReportInputError, TypeError, AttributeError, ValueError) as exc:
            errors.append(f'<p class="missing">not available: searches/{esc(d.name)}: {esc(exc)}</p>')
    if not parts:
        return Section(key, title, "".join(errors) + missing("searches/<name>/ranking.json", ARCH_RUN), False)
    return Section(key, title, "".join(errors) + "".join(parts), True)
