"""What a search writes under ``searches/<name>/``.

- ``ranking.json``: the space, the pipeline/teacher/batch it ran with, the latency setup, and
  per candidate its architecture spec, params, ``flops`` (multiply-accumulates at batch 1),
  latency, every proxy's value and rank, the combined score and the milliseconds spent;
  rejected candidates with the reason;
- ``ranking.csv`` (one row per candidate) and ``ranking.md`` (a readable table);
- ``ranking.png``: combined score against parameter count for every candidate;
- ``shortlist.yaml``: the top-k as a list of ``{name, params}`` model specs, exactly the
  ``student.model`` shape of a pipeline spec (what the hyperparameter search accepts);
- with ``--validate``: ``validation.json``/``.csv``/``.md`` and ``validation.png`` (each
  proxy against the distilled metric (accuracy, or perplexity), band candidates highlighted);
- ``manifest.json``: lineage (parents: the prepared data and the teacher).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import yaml

from autokd.lineage.manifest import write_manifest
from autokd.search.arch.constraints import latency_setup
from autokd.search.arch.proxies import PROXIES
from autokd.search.arch.ranking import SearchResult
from autokd.utils.io import atomic_path, atomic_write_json, atomic_write_text

RANKING_FILES = ("ranking.json", "ranking.csv", "ranking.md", "ranking.png", "shortlist.yaml")


def _num(v: Any) -> Any:
    """JSON-safe numbers: non-finite floats become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def shortlist(result: SearchResult, k: int | None = None) -> list[dict[str, Any]]:
    """The top-k as ``student.model`` specs: ``[{name: <family>, params: {...}}, ...]``."""
    k = result.spec.top_k if k is None else k
    return [s.candidate.model for s in result.top(k)]


def ranking_rows(result: SearchResult) -> list[dict[str, Any]]:
    rows = []
    for i, (s, comb) in enumerate(zip(result.ranked, result.combined)):
        m = s.measurement
        rows.append({
            "rank": i + 1,
            "key": s.candidate.key,
            "model": s.candidate.model,
            "params": m.params,
            "flops": m.flops,
            "latency_ms": _num(m.latency_ms),
            "combined": _num(comb),
            "proxies": {k: _num(v) for k, v in s.values.items()},
            "ranks": {k: result.ranks[k][i] for k in result.proxies},
            "ms": {k: round(v, 3) for k, v in s.ms.items()},
        })
    return rows


def ranking_document(result: SearchResult, ctx) -> dict[str, Any]:
    spec = result.spec
    combined = set(spec.combined_proxies)
    return {
        "name": spec.name,
        "space_file": spec.file,
        "space": spec.model_dump(mode="json"),
        "family": spec.space.family,
        "pipeline": {
            "file": ctx.pipeline_file,
            "root": str(ctx.layout.root),
            "data_sha256": ctx.data.sha256,
            "task": ctx.task.name,
            "input_shape": list(ctx.input_shape),
            "num_classes": ctx.num_classes,
            "teacher": {"state": spec.teacher, "model": ctx.pipeline.teacher.model.model_dump(),
                        "sha256": ctx.teacher_sha256},
            "artifacts_made": ctx.actions,
        },
        "batch": spec.batch.model_dump(),
        "latency_setup": latency_setup(spec.constraints.latency),
        "constraints": spec.constraints.model_dump(exclude={"latency"}),
        "proxies": [
            {"name": n, "higher_is_better": PROXIES[n].higher_is_better, "combined": n in combined,
             "summary": PROXIES[n].summary, "paper": PROXIES[n].paper}
            for n in result.proxies
        ],
        "combine": {"method": spec.combine.method, "proxies": spec.combined_proxies},
        "search": result.meta,
        "top_k": spec.top_k,
        "shortlist": [s.candidate.key for s in result.top(spec.top_k)],
        "candidates": ranking_rows(result),
        "rejected": [
            {"key": r.candidate.key, "model": r.candidate.model, "reason": r.reason, "params": r.measurement.params,
             "flops": r.measurement.flops, "latency_ms": _num(r.measurement.latency_ms)}
            for r in result.rejected
        ],
    }


def ranking_csv(result: SearchResult) -> str:
    buf = io.StringIO()
    fields = (["rank", "key", "params", "flops", "latency_ms", "combined"] + list(result.proxies)
              + [f"{p}_rank" for p in result.proxies] + ["ms_total", "model"])
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for row in ranking_rows(result):
        out = {k: row[k] for k in ("rank", "key", "params", "flops", "latency_ms", "combined")}
        out.update({p: row["proxies"][p] for p in result.proxies})
        out.update({f"{p}_rank": row["ranks"][p] for p in result.proxies})
        out["ms_total"] = row["ms"]["total"]
        out["model"] = json.dumps(row["model"], sort_keys=True)
        w.writerow(out)
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def ranking_markdown(doc: dict[str, Any], limit: int = 100) -> str:
    meta, proxies = doc["search"], [p["name"] for p in doc["proxies"]]
    lat = doc["latency_setup"]
    lines = [
        f"# Architecture ranking: {doc['name']}",
        "",
        f"- family `{doc['family']}`, pipeline `{doc['pipeline']['file']}` (root `{doc['pipeline']['root']}`), "
        f"teacher {doc['pipeline']['teacher']['state']}, input {tuple(doc['pipeline']['input_shape'])}, "
        + (f"vocabulary {doc['pipeline']['num_classes']}" if doc["pipeline"].get("task") == "lm"
           else f"{doc['pipeline']['num_classes']} classes"),
        f"- {meta['algorithm']} search, seed {meta['seed']}: space {meta['space_size']}, visited {meta['visited']}, "
        f"admitted {meta['admitted']}, rejected {meta['rejected']} by {_constraints_text(doc['constraints'])}",
        f"- latency: {lat['device']}, batch {lat['batch_size']}, {lat['threads']} thread(s), median of "
        f"{lat['runs']} runs ({lat['processor']}, {lat['cpu_count']} CPUs)",
        f"- proxy batch: {doc['batch']['size']} samples of the {doc['batch']['split']} split (seed {doc['batch']['seed']})",
        f"- combined: {doc['combine']['method']} mean of {', '.join(doc['combine']['proxies'])}",
        f"- cost: median {meta['median_s_per_candidate']:.3f} s per candidate, {meta['seconds']:.1f} s in all, "
        f"peak RSS {meta['peak_rss_mb']:.0f} MiB",
        "",
        "Ranks: 1 is best for each proxy (distances: smallest).",
        "",
    ]
    head = ["rank", "candidate", "params", "flops (MACs)", "latency ms", "combined"] + [f"{p} (rank)" for p in proxies] + ["ms"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    shown = doc["candidates"][:limit]
    for c in shown:
        cells = [str(c["rank"]), f"`{c['key']}`", str(c["params"]), _fmt(c["flops"]), _fmt(c["latency_ms"]),
                 _fmt(c["combined"])]
        cells += [f"{_fmt(c['proxies'][p])} ({c['ranks'][p]:g})" for p in proxies]
        cells.append(_fmt(c["ms"]["total"]))
        lines.append("| " + " | ".join(cells) + " |")
    if len(doc["candidates"]) > limit:
        lines.append(f"\n… {len(doc['candidates']) - limit} more in ranking.csv")
    lines += ["", f"Shortlist (top {doc['top_k']}, shortlist.yaml): " + ", ".join(f"`{k}`" for k in doc["shortlist"])]
    return "\n".join(lines) + "\n"


def _constraints_text(c: dict[str, Any]) -> str:
    parts = [f"{k} {v:g}" for k, v in c.items() if v is not None]
    return ", ".join(parts) if parts else "no constraints"


def _savefig(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_ranking(result: SearchResult, path: Path) -> None:
    """Combined score against parameter count, one dot per admitted candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    params = [s.measurement.params for s in result.ranked]
    k = result.spec.top_k
    ax.scatter(params[k:], result.combined[k:], s=14, alpha=0.6, label="candidates")
    ax.scatter(params[:k], result.combined[:k], s=30, color="tab:red", label=f"top {k}")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"combined score ({result.spec.combine.method})")
    ax.set_title(f"{result.spec.name}: {len(params)} candidates")
    ax.legend(fontsize=8)
    _savefig(fig, path)
    plt.close(fig)


def write_ranking(result: SearchResult, ctx, out_dir: str | Path) -> list[str]:
    """Write the ranking files and the shortlist; returns their names."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = ranking_document(result, ctx)
    atomic_write_json(out_dir / "ranking.json", doc)
    atomic_write_text(out_dir / "ranking.csv", ranking_csv(result))
    atomic_write_text(out_dir / "ranking.md", ranking_markdown(doc))
    atomic_write_text(out_dir / "shortlist.yaml", yaml.safe_dump(shortlist(result), sort_keys=False))
    plot_ranking(result, out_dir / "ranking.png")
    return list(RANKING_FILES)


def write_search_manifest(out_dir: str | Path, ctx, result: SearchResult, files: list[str]) -> None:
    parents = [ctx.layout.data]
    if (ctx.space.teacher == "trained" and ctx.teacher is not None) or "validation.json" in files:
        parents.append(ctx.layout.model_dir("teacher"))
    write_manifest(
        out_dir, kind="arch_search", content=[f for f in files if f.endswith((".json", ".csv", ".yaml"))],
        parents=parents, spec={"arch_space": result.spec.model_dump(mode="json")},
        metrics={"admitted": result.meta["admitted"], "median_s_per_candidate": result.meta["median_s_per_candidate"]},
        root=Path.cwd(),
    )


# ------------------------------------------------------------------------- validation


def _target(v: dict[str, Any]) -> dict[str, Any]:
    """The validated metric (a classifier's test accuracy unless the validation names another)."""
    return v.get("target") or {"key": "accuracy", "label": "accuracy", "higher_is_better": True}


def validation_markdown(v: dict[str, Any]) -> str:
    t = _target(v)
    key = t["key"]
    against = key if t["higher_is_better"] else f"−{key} (higher is better)"
    lines = [
        f"# Ranking validation: {v['name']}",
        "",
        f"{len(v['candidates'])} candidates distilled for {v['epochs']} epochs with the pipeline's "
        f"`{v['method']}` objective; {key} = {v['metric']}; τ and ρ against {against}. Parameter band: {v['band']['lo']}–{v['band']['hi']} "
        f"params (budget {v['band']['budget']} ± {v['band']['rel'] * 100:g}%, {v['band']['n']} validated "
        f"candidates inside). Total {v['seconds']:.0f} s.",
        "",
        "| proxy | τ (all) | ρ (all) | n | τ (band) | ρ (band) | n band |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in v["correlations"].items():
        a, b = row["all"], row["band"]
        lines.append(f"| {name} | {_fmt(a['tau'])} | {_fmt(a['rho'])} | {a['n']} | {_fmt(b['tau'])} | "
                     f"{_fmt(b['rho'])} | {b['n']} |")
    cal = v.get("calibrated") or {}
    if cal.get("top_unvalidated"):
        lines += ["", f"Calibrated ranking (ridge of {against} on {', '.join(cal['features'])}; α={cal['alpha']:g}; "
                  f"`calibrated_loo` above: each candidate scored by a fit on the others). Best undistilled "
                  "candidates by the fit on all: " + ", ".join(
                      f"`{c['key']}` ({c['predicted_' + key]:.3f})" for c in cal["top_unvalidated"])]
    lines += ["", f"| ranking rank | candidate | params | in band | {key} | val {key} | seconds |",
              "|---|---|---|---|---|---|---|"]
    for c in v["candidates"]:
        lines.append(f"| {c['ranking_rank']} | `{c['key']}` | {c['params']} | {'yes' if c['in_band'] else ''} | "
                     f"{c[key]:.4f} | {_fmt(c['val_' + key])} | {c['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def validation_csv(v: dict[str, Any]) -> str:
    buf = io.StringIO()
    names = list(v["correlations"])
    key = _target(v)["key"]
    fields = ["ranking_rank", "key", "params", "in_band", key, f"val_{key}", "seconds"] + names
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for c in v["candidates"]:
        row = {k: c[k] for k in fields if k in c}
        row.update({n: c["scores"].get(n) for n in names})
        w.writerow(row)
    return buf.getvalue()


def plot_validation(v: dict[str, Any], path: Path) -> None:
    """One panel per proxy: its score (higher = better) against the distilled metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    names = list(v["correlations"])
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    t = _target(v)
    acc = [c[t["key"]] for c in v["candidates"]]
    band = [c["in_band"] for c in v["candidates"]]
    for ax, name in zip(axes.flat, names):
        xs = [c["scores"].get(name) for c in v["candidates"]]
        pts = [(x, a, b) for x, a, b in zip(xs, acc, band) if x is not None]
        ax.scatter([p[0] for p in pts if not p[2]], [p[1] for p in pts if not p[2]], s=16, label="outside band")
        ax.scatter([p[0] for p in pts if p[2]], [p[1] for p in pts if p[2]], s=22, color="tab:orange",
                   label="inside band")
        if name in PROXIES and PROXIES[name].log_scale and pts and all(p[0] > 0 for p in pts):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        corr = v["correlations"][name]
        ax.set_title(f"{name}: τ={_fmt(corr['all']['tau'])} (band {_fmt(corr['band']['tau'])})", fontsize=9)
        ax.set_xlabel("score (higher = better)", fontsize=8)
        ax.set_ylabel(f"distilled {t['label']}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{v['name']}: proxies vs distilled {t['label']} ({len(acc)} candidates, {v['epochs']} epochs)")
    fig.tight_layout()
    _savefig(fig, path)
    plt.close(fig)


def write_validation(v: dict[str, Any], out_dir: str | Path) -> list[str]:
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "validation.json", v)
    atomic_write_text(out_dir / "validation.csv", validation_csv(v))
    atomic_write_text(out_dir / "validation.md", validation_markdown(v))
    plot_validation(v, out_dir / "validation.png")
    return ["validation.json", "validation.csv", "validation.md", "validation.png"]
