"""Search progress: a live table on a terminal, one plain line per finished trial otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


class SearchProgress:
    """Collects trial events from a backend and shows them.

    ``result(trial, desc, metrics)`` after every epoch, ``done(trial, status, desc, metrics,
    reason)`` when a trial ends. With ``live=None`` the table is shown only on a terminal.
    """

    def __init__(self, total: int, primary_key: str = "val_accuracy", live: bool | None = None,
                 echo: Callable[[str], None] | None = None, val_key: str = "val_accuracy",
                 test_key: str = "test_accuracy", val_mode: str = "max"):
        self.total = total
        self.primary_key = primary_key
        self.val_key, self.test_key, self.val_mode = val_key, test_key, val_mode
        self.live_enabled = sys.stdout.isatty() if live is None else live
        self.echo = echo or (lambda line: print(line, flush=True))
        self.rows: dict[str, dict[str, Any]] = {}
        self.finished = 0
        self.t0 = time.time()
        self._live = None

    def __getstate__(self):  # picklable for Ray's experiment state
        state = self.__dict__.copy()
        state["_live"] = None
        state["echo"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.echo is None:
            self.echo = lambda line: print(line, flush=True)

    # -- events ------------------------------------------------------------------------

    def result(self, trial: str, desc: str, metrics: dict[str, Any]) -> None:
        row = self.rows.setdefault(trial, {"status": "running", "desc": desc})
        row.update({"epoch": metrics.get("epoch"), "val": metrics.get(self.val_key),
                    "test": metrics.get(self.test_key), "node": metrics.get("node")})
        self._refresh()

    def done(self, trial: str, status: str, desc: str, metrics: dict[str, Any], reason: str = "") -> None:
        row = self.rows.setdefault(trial, {"desc": desc})
        failed = status == "failed"
        row.update({"status": status, "epoch": metrics.get("epoch", row.get("epoch")),
                    "val": None if failed else metrics.get(self.val_key, row.get("val")),
                    "test": None if failed else metrics.get(self.test_key, row.get("test")), "reason": reason})
        self.finished += 1
        if self._live is None:
            line = (f"[search] {self.finished}/{self.total} trial {trial} {status}: "
                    f"val {_fmt(row.get('val'))} test {_fmt(row.get('test'))} after {row.get('epoch') or 0} epochs "
                    f"| {desc}" + (f" | {reason}" if reason else "")
                    + f" | {time.time() - self.t0:.0f}s")
            self.echo(line)
        self._refresh()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- terminal table ----------------------------------------------------------------

    def _table(self):
        from rich.table import Table

        done = [r["val"] for r in self.rows.values() if r.get("status") == "completed" and r.get("val") is not None]
        best = (min if self.val_mode == "min" else max)(done, default=None)
        table = Table(title=f"search: {self.finished}/{self.total} finished"
                      + (f", best val {best:.4f}" if best is not None else ""))
        label = self.val_key.removeprefix("val_")
        for col in ("trial", "status", "epoch", f"val {label}", f"test {label}", "parameters"):
            table.add_column(col)
        for trial, r in list(self.rows.items())[-30:]:
            table.add_row(trial, r.get("status", ""), _fmt(r.get("epoch")), _fmt(r.get("val")),
                          _fmt(r.get("test")), r.get("desc", "") + (f" ({r['reason']})" if r.get("reason") else ""))
        return table

    def _refresh(self) -> None:
        if not self.live_enabled:
            return
        if self._live is None:
            from rich.live import Live

            self._live = Live(self._table(), refresh_per_second=4, transient=False)
            self._live.start()
        else:
            self._live.update(self._table())
