"""Training progress: a rich bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import sys


class Progress:
    """A rich progress bar on a terminal, one plain line per epoch otherwise."""

    def __init__(self, name: str, epochs: int, steps: int, enabled: bool = True):
        self.name, self.epochs, self.steps = name, epochs, steps
        self.enabled = enabled
        self.tty = enabled and sys.stdout.isatty()
        self._bar = None
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self._bar = RichProgress(
                TextColumn(f"[bold]{name}[/]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(name, total=epochs * steps, info="")

    def skip_to(self, epoch: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=epoch * self.steps)

    def step(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def epoch(self, rec: dict[str, float]) -> None:
        info = (
            f"epoch {int(rec['epoch'])}/{self.epochs} loss {rec['train_loss']:.4f}"
            + (f" acc {rec['train_accuracy']:.4f}" if "train_accuracy" in rec else "")
            + (f" val_acc {rec['val_accuracy']:.4f}" if "val_accuracy" in rec else "")
            + f" lr {rec['lr']:.2e} {rec['seconds']:.1f}s"
        )
        if self._bar is not None:
            self._bar.update(self._task, info=info)
        elif self.enabled:
            print(f"[{self.name}] {info}", flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()

