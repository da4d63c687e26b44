"""`export`'s progress: a Rich bar of rows written on a terminal, nothing elsewhere."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from retailpulse_cli.ui.output import Output


class RowsProgress:
    """A context manager whose `advance(n)` moves a rows bar (total known up front)."""

    def __init__(self, output: Output, total: int, label: str = "export") -> None:
        self.progress: Any = None
        self.task: Any = None
        console = output.err
        if console.is_terminal and not output.quiet and total > 0:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("rows"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
            )
            self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> RowsProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def advance(self, rows: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, rows)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.progress is not None:
            self.progress.stop()
