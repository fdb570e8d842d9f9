"""The pipeline's sections: metrics, training curves, confusion matrices, method comparison, lineage.

Each builder takes the project root and returns a :class:`Section`; when its inputs are absent
the section holds one "not available: … run …" note, and when an input is unreadable it says
which file and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autokd.report import plots
from autokd.report.html import Cell, Section, cell, code, esc, fmt, image, missing, note, para, table
from autokd.report.inputs import ReportInputError, read_json, read_series, rel, subdirs

ROLES = ("teacher", "baseline", "student")
METRIC_COLUMNS = ("accuracy", "nll", "ece", "agreement", "params", "flops", "latency_ms", "throughput")
REPRO = "dvc repro"


def _error_section(key: str, title: str, exc: ReportInputError) -> Section:
    return Section(key, title, f'<p class="missing">not available: {esc(exc)}</p>', False)


# ---------------------------------------------------------------------------------- metrics


def _manifest_cells(root: Path, role: str) -> list[Cell]:
    """Model, epochs, content hash and git commit from ``artifacts/<role>/manifest.json``."""
    m = read_json(root, f"artifacts/{role}/manifest.json") or {}
    spec = next(iter((m.get("spec") or {}).values()), {}) if isinstance(m.get("spec"), dict) else {}
    model = spec.get("model") if isinstance(spec, dict) else None
    train = spec.get("train") if isinstance(spec, dict) else None
    name = f"{model.get('name')} {fmt(model.get('params') or {})}" if isinstance(model, dict) else "–"
    git = m.get("git") or {}
    commit = (str(git.get("commit") or "")[:10] + ("+dirty" if git.get("dirty") else "")) or "–"
    return [cell(name), cell(train.get("epochs") if isinstance(train, dict) else None),
            cell(str(m.get("sha256") or "–")[:12]), cell(commit)]


def metrics_section(root: Path) -> Section:
    key, title = "metrics", "Pipeline metrics"
    try:
        metrics = read_json(root, "reports/metrics.json")
        if not isinstance(metrics, dict):
            return Section(key, title, missing("reports/metrics.json (test metrics of teacher, baseline, student)",
                                               REPRO), False)
        roles = [r for r in ROLES if isinstance(metrics.get(r), dict)]
        roles += sorted(r for r, v in metrics.items() if isinstance(v, dict) and r not in ROLES)
        rows = []
        for role in roles:
            m = metrics[role]
            rows.append([cell(role)] + [cell(m.get(c)) for c in METRIC_COLUMNS] + _manifest_cells(root, role))
    except ReportInputError as exc:
        return _error_section(key, title, exc)
    headers = ["model"] + [c.replace("_", " ") for c in METRIC_COLUMNS] + ["architecture", "epochs", "sha256",
                                                                            "git"]
    summary = ", ".join(f"{k} {fmt(metrics[k])}" for k in ("kd_gain", "compression", "test_samples") if k in metrics)
    body = table(headers, rows, table_id="metrics-table")
    body += note("Test split. accuracy 0..1; nll and ece (15 bins) lower is better; flops = multiply-accumulates "
                 "of one forward pass; latency: batch 1, CPU, median. Architecture and hashes from "
                 "artifacts/<model>/manifest.json." + (f" {summary}." if summary else ""))
    return Section(key, title, body, True)


# ---------------------------------------------------------------------------------- curves


def curve_panels(root: Path) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """``{"train/loss": {"teacher": (steps, values), ...}, ...}`` from ``dvclive/<role>/plots/metrics``."""
    panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    roles = [d for d in subdirs(root / "dvclive") if (d / "plots" / "metrics").is_dir()]
    order = {r: i for i, r in enumerate(ROLES)}
    roles.sort(key=lambda d: (order.get(d.name, len(ROLES)), d.name))
    for d in roles:
        base = d / "plots" / "metrics"
        for tsv in sorted(base.glob("**/*.tsv"), key=lambda p: p.as_posix()):
            name = tsv.relative_to(base).with_suffix("").as_posix()
            xs, ys = read_series(root, tsv)
            if xs:
                panels.setdefault(name, {})[d.name] = (xs, ys)
    first = ("train/loss", "val/accuracy", "val/loss", "train/accuracy")
    return {k: panels[k] for k in sorted(panels, key=lambda k: (first.index(k) if k in first else len(first), k))}


def curves_section(root: Path) -> Section:
    key, title = "curves", "Training curves"
    try:
        panels = curve_panels(root)
    except ReportInputError as exc:
        return _error_section(key, title, exc)
    if not panels:
        return Section(key, title, missing("dvclive/<model>/plots/metrics/*.tsv (per-epoch metrics)", REPRO), False)
    roles = sorted({r for p in panels.values() for r in p})
    body = image(plots.curves(panels), "training curves: " + ", ".join(panels))
    body += note(f"Per-epoch metrics logged by DVCLive for {', '.join(roles)} (dvclive/<model>/plots/metrics/).")
    return Section(key, title, body, True)


# ---------------------------------------------------------------------------------- confusion


def confusion_matrix(rows: Any) -> tuple[list[str], list[list[int]]]:
    """Labels and counts (rows true, columns predicted) from DVC's confusion data
    (``[{"actual": …, "predicted": …}, …]``)."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "actual" in r and "predicted" in r for r in rows):
        raise ReportInputError("expected a list of {actual, predicted} records")
    labels = sorted({str(r["actual"]) for r in rows} | {str(r["predicted"]) for r in rows},
                    key=lambda s: (0, int(s), s) if s.lstrip("-").isdigit() else (1, 0, s))
    index = {lab: i for i, lab in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for r in rows:
        counts[index[str(r["actual"])]][index[str(r["predicted"])]] += 1
    return labels, counts


def confusion_table(labels: list[str], counts: list[list[int]], caption: str) -> str:
    """A heat-map table: darker blue = more samples; the diagonal is correct."""
    peak = max((max(r) for r in counts), default=0) or 1
    rows = []
    for lab, row in zip(labels, counts):
        cells = [Cell(lab, cls="label")]
        for v in row:
            shade = v / peak
            style = f"background: rgba(31, 94, 168, {shade:.3f}); color: {'#fff' if shade > 0.5 else '#1d2430'}"
            cells.append(Cell(str(v) if v else "", style=style))
        rows.append(cells)
    return table(["true \\ predicted"] + labels, rows, caption=caption, cls="confusion")


def confusion_files(root: Path) -> list[Path]:
    found = sorted((root / "reports" / "plots").glob("confusion_*.json"))
    for run in subdirs(root / "runs"):
        found += sorted((run / "reports" / "plots").glob("confusion_*.json"))
    return found


def confusion_section(root: Path) -> Section:
    key, title = "confusion", "Confusion matrices"
    files = confusion_files(root)
    if not files:
        return Section(key, title, missing("reports/plots/confusion_*.json (test-split confusion data)", REPRO), False)
    parts = []
    for path in files:
        name = rel(root, path)
        try:
            labels, counts = confusion_matrix(read_json(root, name))
        except ReportInputError as exc:
            parts.append(f'<div><p class="missing">not available: {esc(name)}: {esc(exc)}</p></div>')
            continue
        total = sum(map(sum, counts))
        correct = sum(counts[i][i] for i in range(len(labels)))
        acc = correct / total if total else 0.0
        parts.append("<div>" + confusion_table(labels, counts, f"{name}: {total} samples, accuracy {acc:.4f}")
                     + "</div>")
    body = '<div class="pair">' + "".join(parts) + "</div>"
    body += note("Rows: true class, columns: predicted class; empty cells are zero.")
    return Section(key, title, body, True)


# ---------------------------------------------------------------------------------- methods


def _pm(mean: Any, std: Any) -> str:
    if not isinstance(mean, (int, float)):
        return "–"
    return f"{mean:.4f} ± {std:.4f}" if isinstance(std, (int, float)) else f"{mean:.4f}"


def methods_section(root: Path) -> Section:
    key, title = "methods", "Method comparison"
    try:
        report = read_json(root, "reports/methods.json")
    except ReportInputError as exc:
        return _error_section(key, title, exc)
    methods = report.get("methods") if isinstance(report, dict) else None
    if not isinstance(methods, dict) or not methods:
        return Section(key, title, missing("reports/methods.json (every method vs the labels-only baseline)",
                                           "dvc repro pipelines/compare/dvc.yaml"), False)
    n = len(report.get("seeds") or [])
    rows = []
    for name, r in methods.items():
        gain = None if name == "baseline" else r.get("kd_gain_mean")
        rows.append([
            cell(name), cell(r.get("kind")),
            cell(r.get("accuracy_mean"), text=_pm(r.get("accuracy_mean"), r.get("accuracy_std"))),
            cell(gain, text="–" if gain is None else f"{100 * gain:+.2f} ± {100 * (r.get('kd_gain_std') or 0):.2f}"),
            cell(r.get("seconds_per_epoch_mean"), 3),
            cell(r.get("nll_mean")), cell(r.get("ece_mean")), cell(r.get("agreement_mean")),
        ])
    headers = ["method", "kind", f"test accuracy (mean ± std, {n} seeds)", "kd_gain (points)", "s/epoch", "nll",
               "ece", "agreement"]
    body = table(headers, rows, sortable=True, table_id="methods-table")
    names = list(methods)
    means = [float(methods[m].get("accuracy_mean") or 0.0) for m in names]
    stds = [float(methods[m].get("accuracy_std") or 0.0) for m in names]
    base = methods.get("baseline", {}).get("accuracy_mean")
    body += image(plots.method_bars(names, means, stds, [str(methods[m].get("kind")) for m in names], base,
                                    report.get("teacher_accuracy")), "test accuracy per method")
    facts = f"pipeline {report.get('pipeline')}, {report.get('epochs')} epochs, {report.get('test_samples')} test samples."
    body += note(facts + " " + str(report.get("notes") or ""))
    return Section(key, title, body, True)


# ---------------------------------------------------------------------------------- lineage


def lineage_section(root: Path) -> Section:
    """``autokd.lineage.build_graph(root).to_svg()`` inline."""
    key, title = "lineage", "Lineage"
    try:
        from autokd.lineage.graph import build_graph
    except ImportError:
        return Section(key, title, note("not available: this autokd has no lineage graph renderer "
                                        "(autokd.lineage.graph.build_graph)", "missing"), False)
    try:  # a graph that cannot be drawn costs this section only, never the whole report
        graph = build_graph(root)
        data = graph.to_dict()
        nodes = data.get("nodes") if isinstance(data, dict) else None
        svg = graph.to_svg() if nodes else ""
    except Exception as exc:  # noqa: BLE001 - shown on the page, with its type
        return Section(key, title, f'<p class="missing">not available: lineage graph: {esc(type(exc).__name__)}: '
                                   f"{esc(exc)}</p>", False)
    if not nodes:
        return Section(key, title, missing("manifests (artifacts/*/manifest.json)", REPRO), False)
    body = f'<div class="lineage" id="lineage-graph">{svg}</div>'
    body += para(esc(f"{len(nodes)} artifacts, their content hashes and parents, from every manifest.json under "
                     "the root. The same graph as text: "), code("autokd lineage show artifacts/student"), ".")
    return Section(key, title, body, True)
