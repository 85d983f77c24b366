"""Progress for the long-running commands: a live bar on a terminal, plain lines everywhere else.

A rich bar draws nothing when stderr is not a terminal (CI logs, ``nohup``, a pipe), which left batch
runs silent for hours. :func:`progress` returns rich's bar on a terminal and :class:`LineProgress`
otherwise; both take the same calls, so a command writes its loop once. Both say how long is left:
the bar in a column, the lines as ``image 3/12 done, eta 0:01:10``. :func:`print_table` prints a
results table so that no column is cut at a log's 80 columns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text


def format_eta(seconds: float) -> str:
    """``H:MM:SS``, as rich's remaining-time column writes it."""
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class LineProgress:
    """The subset of :class:`rich.progress.Progress` the commands use, printing ``<unit> n/N done`` lines.

    Only tasks added with a ``unit`` field (e.g. ``unit="image"``) print, once per advance; finer
    tasks (network tiles) stay silent so a log gets one line per item, not thousands. An advance
    made with ``outcome="failed"`` says so instead of ``done``. The ETA is the remaining items at the
    mean rate since the task started (or was reset); ``clock`` is injectable for tests.
    """

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.clock = clock
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = {"description": description, "total": total, "completed": 0, **fields,
                                "started": self.clock()}
        return task_id

    def update(self, task_id: int, *, total: float | None = None, completed: float | None = None,
               description: str | None = None, advance: float | None = None, outcome: str = "done",
               **fields: Any) -> None:
        task = self._tasks[task_id]
        for key, value in (("total", total), ("completed", completed), ("description", description)):
            if value is not None:
                task[key] = value
        task.update(fields)
        if advance:
            task["completed"] += advance
            if task.get("unit"):
                self.console.print(self._line(task, outcome), markup=False, highlight=False, soft_wrap=True)

    def reset(self, task_id: int, *, total: float | None = None, **fields: Any) -> None:
        self.update(task_id, total=total, completed=0, **fields)
        self._tasks[task_id]["started"] = self.clock()

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _line(self, task: dict[str, Any], outcome: str) -> str:
        done, total = task["completed"], task["total"]
        line = f"{task['unit']} {done:g}{f'/{total:g}' if total is not None else ''} {outcome}"
        elapsed = self.clock() - task["started"]
        if total is not None and 0 < done < total and elapsed > 0:
            line += f", eta {format_eta(elapsed / done * (total - done))}"
        return line


def progress(console: Console) -> Progress | LineProgress:
    """A bar of images (and of the current image's tiles) on a terminal; ``LineProgress`` otherwise."""
    if not console.is_terminal:
        return LineProgress(console)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    return Progress(*columns, console=console, transient=True)


def table_records(table: Table) -> Group:
    """``table`` as one block per row (``column: value`` lines): the shape that fits any width."""
    headers = [str(column.header) for column in table.columns]
    cells = [[str(cell) for cell in column.cells] for column in table.columns]
    blocks: list[Text] = [Text(str(table.title))] if table.title else []
    for row in zip(*cells):
        blocks.append(Text(f"{headers[0] or 'row'}: {row[0]}" if headers[0] else row[0]))
        blocks += [Text(f"  {header}: {value}") for header, value in zip(headers[1:], row[1:]) if value]
    if table.caption:
        blocks.append(Text(str(table.caption)))
    return Group(*blocks)


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` so that no cell is cut, whatever the width.

    rich shrinks a table to the console's width and ends cut cells with an ellipsis: off a terminal
    that width is 80 columns, and a cut number in a CI log is a wrong number. Cells therefore fold
    instead of being cut, and a table wider than a console that is not a terminal is printed as one
    block of ``column: value`` lines per row.
    """
    for column in table.columns:
        column.overflow = "fold"
    natural = console.measure(table, options=console.options.update_width(1_000_000)).maximum
    if console.is_terminal or natural <= console.width:
        console.print(table)
    else:
        console.print(table_records(table), soft_wrap=True)
