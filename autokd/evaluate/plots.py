"""PNG plots (DVC's HTML renders blank offline, so the pipeline draws its own)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from autokd.utils.io import atomic_path  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_confusion(cm: np.ndarray, class_names: list[str], path: str | Path, title: str) -> None:
    k = cm.shape[0]
    fig, ax = plt.subplots(figsize=(0.45 * k + 2.5, 0.45 * k + 2))
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(k), class_names, fontsize=7, rotation=90 if k > 12 else 0)
    ax.set_yticks(range(k), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    _save(fig, Path(path))


def plot_curves(histories: dict[str, list[dict]], path: str | Path) -> None:
    """Training loss and validation accuracy per epoch for each model."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, hist in histories.items():
        if not hist:
            continue
        ep = [r["epoch"] for r in hist]
        axes[0].plot(ep, [r["train_loss"] for r in hist], label=name)
        if "val_accuracy" in hist[0]:
            axes[1].plot(ep, [r["val_accuracy"] for r in hist], label=name)
    axes[0].set_title("training loss")
    axes[1].set_title("validation accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, Path(path))
