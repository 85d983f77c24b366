"""Progress for the long-running commands: a live bar on a terminal, plain lines everywhere else.

A rich bar draws nothing when stderr is not a terminal (CI logs, ``nohup``, a pipe), which left batch
runs silent for hours. :func:`progress` returns rich's bar on a terminal and :class:`LineProgress`
otherwise; both take the same calls, so a command writes its loop once.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class LineProgress:
    """The subset of :class:`rich.progress.Progress` the commands use, printing ``<unit> n/N done`` lines.

    Only tasks added with a ``unit`` field (e.g. ``unit="image"``) print, once per advance; finer
    tasks (network tiles) stay silent so a log gets one line per item, not thousands.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = {"description": description, "total": total, "completed": 0, **fields}
        return task_id

    def update(self, task_id: int, *, total: float | None = None, completed: float | None = None,
               description: str | None = None, **fields: Any) -> None:
        task = self._tasks[task_id]
        for key, value in (("total", total), ("completed", completed), ("description", description)):
            if value is not None:
                task[key] = value
        task.update(fields)

    def reset(self, task_id: int, *, total: float | None = None, **fields: Any) -> None:
        self.update(task_id, total=total, completed=0, **fields)

    def advance(self, task_id: int, advance: float = 1) -> None:
        task = self._tasks[task_id]
        task["completed"] += advance
        if task.get("unit"):
            total = f"/{task['total']:g}" if task["total"] is not None else ""
            self.console.print(f"{task['unit']} {task['completed']:g}{total} done", markup=False, highlight=False,
                               soft_wrap=True)


def progress(console: Console) -> Progress | LineProgress:
    """A bar of images (and of the current image's tiles) on a terminal; ``LineProgress`` otherwise."""
    if not console.is_terminal:
        return LineProgress(console)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=console, transient=True)
