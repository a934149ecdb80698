"""Terminal output shared by every job: a live progress line and a closing summary table.

On a terminal the progress is a rich bar with the job's own fields; elsewhere (CI, Ray Job
logs, a pipe) it prints a plain line at most every ``log_every`` seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Off a terminal (CI, job logs) rich would wrap at 80 columns; logs are wider than that.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, highlight=False)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ProgressLine:
    """A progress bar with free-form fields (``update(done, best=0.93, rate='12/h')``)."""

    def __init__(self, total: int, description: str, log_every: float = 10.0) -> None:
        self.total = total
        self.description = description
        self.log_every = log_every
        self._last_log = 0.0
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> ProgressLine:
        if console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                console=console,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, info="")
        return self

    def update(self, completed: int, **fields: Any) -> None:
        info = "  ".join(f"{k}={fmt(v)}" for k, v in fields.items())
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, info=info)
            return
        now = time.monotonic()
        if completed >= self.total or now - self._last_log >= self.log_every:
            self._last_log = now
            print(f"{self.description}: {completed}/{self.total}  {info}", flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


@contextmanager
def progress(total: int, description: str, log_every: float = 10.0) -> Iterator[ProgressLine]:
    with ProgressLine(total, description, log_every) as line:
        yield line


def print_table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                max_rows: int | None = None) -> None:
    """Print rows as a table (the closing summary of a job, ``results show``)."""
    if not rows:
        console.print(f"[bold]{title}[/bold]: (empty)")
        return
    columns = list(columns or rows[0].keys())
    console.print(f"[bold]{title}[/bold]")  # not a table title: those wrap at the table's width
    table = Table()
    for col in columns:
        table.add_column(str(col), overflow="fold")
    for row in rows[:max_rows] if max_rows else rows:
        table.add_row(*(fmt(row.get(c, "")) for c in columns))
    console.print(table)


def print_kv(title: str, mapping: Mapping[str, Any]) -> None:
    print_table(title, [{"key": k, "value": v} for k, v in mapping.items()], ["key", "value"])


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
