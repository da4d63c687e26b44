"""Rich output on stdout: the status, list and validate tables (plain text off a terminal).

Only commands that print a table import this module (and Rich with it); JSON and plain
lines go through ui.output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from retailpulse_cli.model import JobListing, JobState, JobStatus, StoreProblem
from retailpulse_cli.text.escape import safe
from retailpulse_cli.text.figures import plural
from retailpulse_cli.ui.output import Output, info_line

if TYPE_CHECKING:
    from retailpulse_cli.jobs.validate import ValidationRow


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """Rich exits 1 when the reader goes away; let stdout_guard keep the real code."""
        self.quiet = True
        raise BrokenPipeError


def make_console(stream: TextIO, *, plain: bool) -> Console:
    """A Rich console on `stream`; `plain`: no escape codes at all (--no-color, NO_COLOR)."""
    # color_system=None drops bold and the rest too: --no-color means no escape codes
    kwargs: dict[str, Any] = {"color_system": None} if plain else {}
    return _Console(file=stream, highlight=False, soft_wrap=True, emoji=False, **kwargs)


def cell(value: object) -> Text:
    """User data in a Rich table: never read as markup, control characters shown."""
    return Text(safe(str(value)))


def source_label(source: str, fallback: str) -> str:
    """A job's row label: the job file's name (`<stdin>` stays so), escaped."""
    return safe(os.path.basename(source) or source) if source else fallback


# keyed by the text: a status read from status.json is a plain str
STATUS_STYLE = {
    JobState.COMPLETED.value: "green",
    JobState.FAILED.value: "red",
    JobState.ONGOING.value: "yellow",
    JobState.INTERRUPTED.value: "magenta",
    JobState.QUEUED.value: "cyan",
    JobState.CANCELLED.value: "magenta",
}


def status_table(status: JobStatus) -> Table:
    state = str(status.get("status"))
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("job", cell(status.get("job_id")))
    if status.get("source"):
        table.add_row("source", cell(status["source"]))
    if status.get("owner"):  # submitted to `serve` by this user
        table.add_row("owner", cell(status["owner"]))
    table.add_row("status", Text(state, style=STATUS_STYLE.get(state, "")))
    if status.get("interrupted_by"):
        table.add_row("interrupted by", cell(status["interrupted_by"]))
    table.add_row("visits", f"{status.get('visits', 0):,}")
    done, total = status.get("images_done", 0), status.get("images_total", 0)
    table.add_row(
        "images",
        f"{done:,} of {total:,} done, {status.get('images_ok', 0):,} ok, "
        f"{status.get('images_failed', 0):,} failed",
    )
    if status.get("images_stored"):
        table.add_row("stored", f"{status['images_stored']:,} (--save-images)")
    if status.get("stores_unknown"):
        table.add_row("unknown stores", f"{status['stores_unknown']:,}")
    by_code = status.get("failures_by_code") or {}
    if by_code:
        table.add_row("failures", cell(", ".join(f"{c} x{n}" for c, n in by_code.items())))
    for key in ("created_at", "started_at", "finished_at"):
        if status.get(key):
            table.add_row(key.replace("_at", ""), cell(status[key]))
    return table


def errors_table(errors: list[StoreProblem], limit: int = 50) -> Table:
    table = Table(title=f"errors ({len(errors)})", title_justify="left")
    table.add_column("store_id", style="bold")
    table.add_column("code")
    table.add_column("error")
    for err in errors[:limit]:
        table.add_row(cell(err.get("store_id")), cell(err.get("code", "")), cell(err.get("error")))
    if len(errors) > limit:
        table.add_row("...", "", f"{len(errors) - limit} more (status --json lists all)")
    return table


def show_status(output: Output, status: JobStatus, console: Console | None = None) -> None:
    con = console or output.out
    if not con.is_terminal:  # a pipe or a file gets whole paths and messages
        con.width = 250
    con.print(status_table(status))
    errors = status.get("error") or []
    if errors:
        con.print(errors_table(errors))


def show_jobs(output: Output, rows: list[JobListing], where: Path | None = None) -> None:
    if not rows:
        if not output.quiet:
            info_line(f"no jobs in {where}" if where is not None else "no jobs")
        return
    from retailpulse_cli.ui.job_list import jobs_table

    out = output.out
    if not out.is_terminal:  # a pipe or a file gets whole lines, not 80 columns
        out.width = 250
    out.print(jobs_table(rows, out.width))


def show_validation(output: Output, rows: list[ValidationRow]) -> None:
    out = output.out
    for r in rows:
        if not r["valid"]:
            for problem in r["problems"]:
                out.print(safe(f"{r['file']}: invalid: {problem}"), markup=False)
        elif r["unknown_stores"]:
            ids = ", ".join(r["unknown_stores"])
            n = len(r["unknown_stores"])
            out.print(
                safe(
                    f"{r['file']}: valid, but {n} store id{'s are' if n > 1 else ' is'} not in "
                    f"the store master: {ids}"
                ),
                markup=False,
            )
        else:
            out.print(
                safe(
                    f"{r['file']}: valid ({plural(r['visits'], 'visit')}, "
                    f"{plural(r['images'], 'image')})"
                ),
                markup=False,
            )
