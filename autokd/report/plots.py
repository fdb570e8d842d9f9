"""Figures for the report, drawn with matplotlib (Agg) into PNG ``data:`` URIs.

Deterministic: the same inputs give the same bytes (matplotlib's default style whatever the
user's matplotlibrc, no ``Software``/date metadata in the PNG, fixed sizes and DPI).
"""

from __future__ import annotations

import base64
import io
import math
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

DPI = 96
COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
          "tab:olive", "tab:cyan"]


@contextmanager
def figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.0, 4.0)) -> Iterator[tuple[Any, Any]]:
    """``(fig, axes)`` under matplotlib's default style; always closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.style.context("default"), matplotlib.rc_context({"font.size": 9}):
        fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False)
        try:
            yield fig, axes
        finally:
            plt.close(fig)


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def curves(panels: dict[str, dict[str, tuple[list[float], list[float]]]]) -> str:
    """One panel per metric (``train/loss``, ``val/accuracy``, ...), one line per role."""
    names = list(panels)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    with figure(rows, cols, (4.2 * cols, 3.0 * rows)) as (fig, axes):
        flat = list(axes.flat)
        for ax, name in zip(flat, names):
            for i, (role, (xs, ys)) in enumerate(panels[name].items()):
                ax.plot(xs, ys, label=role, color=COLORS[i % len(COLORS)], lw=1.4)
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        for ax in flat[len(names):]:
            ax.axis("off")
        return to_data_uri(fig)


def method_bars(names: Sequence[str], means: Sequence[float], stds: Sequence[float], kinds: Sequence[str],
                baseline: float | None, teacher: float | None) -> str:
    """Test accuracy per method (mean ± std) with the labels-only and teacher accuracies as lines."""
    palette = {"baseline": "0.55", "logit": "tab:blue", "label": "tab:olive", "feature": "tab:orange",
               "relation": "tab:green"}
    with figure(1, 1, (max(6.0, 0.5 * len(names) + 2), 3.6)) as (fig, axes):
        ax = axes[0][0]
        xs = list(range(len(names)))
        ax.bar(xs, means, yerr=stds, color=[palette.get(k, "tab:gray") for k in kinds], capsize=3)
        if baseline is not None:
            ax.axhline(baseline, color="0.3", ls="--", lw=1, label=f"labels only {baseline:.3f}")
        if teacher is not None:
            ax.axhline(teacher, color="tab:red", ls=":", lw=1, label=f"teacher {teacher:.3f}")
        lo = min((m - s for m, s in zip(means, stds)), default=0.0)
        hi = max([m + s for m, s in zip(means, stds)] + [v for v in (baseline, teacher) if v is not None])
        ax.set_ylim(max(0.0, lo - 0.03), min(1.0, hi + 0.015))
        ax.set_xticks(xs, list(names), rotation=45, ha="right")
        ax.set_ylabel("student test accuracy")
        ax.grid(axis="y", alpha=0.3)
        if baseline is not None or teacher is not None:
            ax.legend(fontsize=8, loc="lower right")
        return to_data_uri(fig)


def trial_scatter(numeric: dict[str, list[float | None]], methods: list[str], acc: list[float | None],
                  acc_label: str) -> str:
    """Accuracy against each numeric hyperparameter, one colour per method (categorical choice)."""
    names = list(numeric) or ["trial"]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    kinds = list(dict.fromkeys(methods))
    with figure(rows, cols, (4.0 * cols, 3.0 * rows)) as (fig, axes):
        flat = list(axes.flat)
        for ax, name in zip(flat, names):
            xs = numeric.get(name) or list(range(len(acc)))
            for i, kind in enumerate(kinds):
                pts = [(x, a) for x, a, m in zip(xs, acc, methods) if m == kind and _finite(x) and _finite(a)]
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=26, color=COLORS[i % len(COLORS)],
                           label=kind or "–", alpha=0.85)
            ax.set_xlabel(name)
            ax.set_ylabel(acc_label)
            ax.grid(alpha=0.3)
        flat[0].legend(fontsize=8, title="method" if any(kinds) else None)
        for ax in flat[len(names):]:
            ax.axis("off")
        return to_data_uri(fig)


def parallel_coordinates(axes_values: dict[str, list[Any]], color_by: list[float | None], color_label: str) -> str:
    """One polyline per trial across the axes (each scaled to its own range; categories evenly
    spaced and labelled), coloured by ``color_by`` (accuracy)."""
    import matplotlib.cm as cm
    from matplotlib.colors import Normalize

    names = list(axes_values)
    scaled: dict[str, list[float | None]] = {}
    ticks: dict[str, list[tuple[float, str]]] = {}
    for name, vals in axes_values.items():
        if all(v is None or _finite(v) for v in vals):
            nums = [v for v in vals if _finite(v)]
            lo, hi = (min(nums), max(nums)) if nums else (0.0, 1.0)
            span = (hi - lo) or 1.0
            scaled[name] = [(v - lo) / span if _finite(v) else None for v in vals]
            ticks[name] = [(0.0, f"{lo:.3g}"), (1.0, f"{hi:.3g}")]
        else:
            cats = sorted({str(v) for v in vals if v is not None})
            pos = {c: (i / (len(cats) - 1) if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
            scaled[name] = [pos[str(v)] if v is not None else None for v in vals]
            ticks[name] = [(p, c) for c, p in pos.items()]
    good = [c for c in color_by if _finite(c)]
    norm = Normalize(min(good), max(good) if max(good) > min(good) else min(good) + 1e-9) if good else Normalize(0, 1)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    with figure(1, 1, (max(5.0, 1.6 * len(names) + 1.5), 3.6)) as (fig, axes):
        ax = axes[0][0]
        xs = list(range(len(names)))
        order = sorted(range(len(color_by)), key=lambda i: color_by[i] if _finite(color_by[i]) else -math.inf)
        for i in order:
            ys = [scaled[n][i] for n in names]
            if any(y is None for y in ys):
                continue
            c = color_by[i]
            ax.plot(xs, ys, color=cmap(norm(c)) if _finite(c) else "0.8", lw=1.5, alpha=0.9)
        for x, name in zip(xs, names):
            ax.axvline(x, color="0.3", lw=0.8)
            for y, label in ticks[name]:
                ax.text(x + 0.03, y, label, fontsize=7, va="center")
        ax.set_xticks(xs, names, rotation=15)
        ax.set_yticks([])
        ax.set_ylim(-0.08, 1.08)
        ax.set_xlim(-0.2, len(names) - 0.5)
        sm = cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=ax, label=color_label)
        return to_data_uri(fig)


def pareto(xs: list[float], ys: list[float], fx: list[float], fy: list[float], xlabel: str, ylabel: str,
           log_x: bool) -> str:
    """Every completed trial and the front (red, joined in x order)."""
    with figure(1, 1, (5.5, 3.8)) as (fig, axes):
        ax = axes[0][0]
        ax.scatter(xs, ys, s=20, color="0.6", label="completed trials")
        front = sorted(zip(fx, fy))
        ax.plot([p[0] for p in front], [p[1] for p in front], "o-", color="tab:red", label="Pareto front")
        if log_x and all(x > 0 for x in xs + fx):
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return to_data_uri(fig)


def ranking_scatter(params: list[float], combined: list[float], top_k: int) -> str:
    """Combined proxy score against parameters; the shortlist in red."""
    with figure(1, 1, (5.5, 3.8)) as (fig, axes):
        ax = axes[0][0]
        ax.scatter(params[top_k:], combined[top_k:], s=16, alpha=0.6, label="candidates")
        ax.scatter(params[:top_k], combined[:top_k], s=34, color="tab:red", label=f"top {top_k}")
        if params and all(p > 0 for p in params):
            ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("combined score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return to_data_uri(fig)


def validation_scatter(panels: dict[str, list[tuple[float, float, bool]]], titles: dict[str, str]) -> str:
    """Per proxy: its score against distilled accuracy; candidates inside the parameter band in orange."""
    names = list(panels)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    with figure(rows, cols, (3.4 * cols, 2.8 * rows)) as (fig, axes):
        flat = list(axes.flat)
        for ax, name in zip(flat, names):
            pts = panels[name]
            out = [p for p in pts if not p[2]]
            inside = [p for p in pts if p[2]]
            ax.scatter([p[0] for p in out], [p[1] for p in out], s=16, label="outside band")
            ax.scatter([p[0] for p in inside], [p[1] for p in inside], s=22, color="tab:orange", label="inside band")
            ax.set_title(titles.get(name, name), fontsize=8)
            ax.set_xlabel("score", fontsize=8)
            ax.set_ylabel("distilled accuracy", fontsize=8)
            ax.tick_params(labelsize=7)
        flat[0].legend(fontsize=7)
        for ax in flat[len(names):]:
            ax.axis("off")
        return to_data_uri(fig)
