"""Everything users see: Rich progress and tables on a terminal, plain text or JSON elsewhere.

Data (tables, JSON, ids) goes to stdout; progress, logs and diagnostics go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .escape import safe
from .tally import Tally


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """Rich exits 1 when the reader goes away; let stdout_guard keep the real code."""
        self.quiet = True
        raise BrokenPipeError


@dataclass(frozen=True)
class Output:
    """How much and in what form to print; one per command invocation."""

    quiet: bool = False
    verbose: bool = False
    no_color: bool = False

    def console(self, stream: TextIO) -> Console:
        plain = self.no_color or bool(os.environ.get("NO_COLOR"))
        # color_system=None drops bold and the rest too: --no-color means no escape codes
        kwargs: dict[str, Any] = {"color_system": None} if plain else {}
        return _Console(file=stream, highlight=False, soft_wrap=True, emoji=False, **kwargs)

    @property
    def out(self) -> Console:
        return self.console(sys.stdout)

    @property
    def err(self) -> Console:
        return self.console(sys.stderr)


@contextlib.contextmanager
def stdout_guard() -> Iterator[None]:
    """`retailpulse ... | head -1`: a reader that stops early is not an error; the rest of
    the output is dropped and the command keeps its own exit code."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as exc:  # e.g. > /dev/full: the user's disk, not our bug
        from .errors import StorageError

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise StorageError(
            f"cannot write to standard output: {exc.strerror or exc}",
            hint="check the disk or file that standard output goes to",
        ) from None


def print_json(obj: Any) -> None:
    """JSON on stdout, nothing else: safe to pipe into jq. Text that the stream cannot
    encode (a lone surrogate from a job file, or any non-ASCII under LANG=C) is written
    as JSON \\u escapes instead: the same value to any JSON reader."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        text = json.dumps(obj, indent=2)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    sys.stderr.write(f"retailpulse: error: {safe(message)}\n")


def hint_line(message: str) -> None:
    sys.stderr.write(f"retailpulse: hint: {safe(message)}\n")


def info_line(message: str) -> None:
    sys.stderr.write(f"retailpulse: {safe(message)}\n")
    sys.stderr.flush()


def cell(value: Any) -> Text:
    """User data in a Rich table: never read as markup, control characters shown."""
    return Text(safe(str(value)))


def _fmt_rate(n: float) -> str:
    return f"{n:,.1f}" if n < 100 else f"{n:,.0f}"


class ProgressBoard:
    """Live progress on stderr for one or several jobs: a Rich bar per job on a terminal;
    otherwise a plain line per job at each 10 % and every few seconds, so cron logs stay
    short and free of escape codes."""

    PLAIN_EVERY = 10.0

    def __init__(self, output: Output) -> None:
        self.output = output
        self.console = output.err
        self.live = self.console.is_terminal and not output.quiet and not output.verbose
        self.progress: Any = None
        if self.live:
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
                TextColumn("{task.fields[rate]} img/s"),
                TextColumn("[red]{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.start()

    def observer(self) -> JobProgress:
        return JobProgress(self)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __enter__(self) -> ProgressBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JobProgress:
    """One job's progress on a ProgressBoard (the service's Observer)."""

    def __init__(self, board: ProgressBoard) -> None:
        self.board = board
        self.output = board.output
        self.label = ""
        self.task: Any = None
        self.t0 = time.monotonic()
        self.base = 0  # images settled before this run (a retry redoes some of the counted)
        self.processed = 0  # images this run has recorded
        self.last_plain = 0.0
        self.last_decile = -1

    def started(self, job: Any, tally: Tally, todo: int, source: str = "") -> None:
        self.t0 = time.monotonic()
        self.base = tally.images_total - todo
        self.label = job.id
        if self.output.quiet:
            return
        progress = self.board.progress
        if progress is not None:
            self.task = progress.add_task(
                self.label,
                total=tally.images_total,
                completed=self.base,
                rate="-",
                failed=tally.failed,
            )
        else:
            info_line(
                f"job {self.label}{f' ({source})' if source else ''}: "
                f"{todo:,} of {tally.images_total:,} images to process"
            )
            if todo == 0:
                info_line(f"job {self.label}: nothing left to do")

    def record(self, record: dict[str, Any], tally: Tally) -> None:
        self.processed += 1
        if self.output.verbose and not self.output.quiet:
            if record.get("status") == "ok":
                what = f"ok {record['width']}x{record['height']} perimeter={record['perimeter']}"
            else:
                what = f"FAILED {record.get('error_code')}: {record.get('error')}"
            where = f"job {self.label} [{record['index'] + 1}/{tally.images_total}]"
            info_line(f"{where} {record['store_id']} {record['image_url']} {what}")

    def rate(self, tally: Tally) -> float:
        return self.processed / max(time.monotonic() - self.t0, 1e-6)

    def tick(self, tally: Tally) -> None:
        if self.output.quiet:
            return
        progress = self.board.progress
        if progress is not None and self.task is not None:
            progress.update(
                self.task,
                completed=tally.done,
                rate=_fmt_rate(self.rate(tally)),
                failed=tally.failed,
            )
            return
        if self.output.verbose:
            return
        settled = self.base + self.processed
        decile = settled * 10 // max(tally.images_total, 1)
        now = time.monotonic()
        if decile != self.last_decile or now - self.last_plain >= self.board.PLAIN_EVERY:
            if settled < tally.images_total:
                info_line(
                    f"job {self.label}: {settled:,}/{tally.images_total:,} images, "
                    f"{tally.failed:,} failed, {_fmt_rate(self.rate(tally))} img/s"
                )
            self.last_decile = decile
            self.last_plain = now

    def finished(self, status: dict[str, Any]) -> None:
        """A plain closing line: what happened, how many, how fast."""
        if self.output.quiet:
            return
        elapsed = time.monotonic() - self.t0
        done = self.processed
        info_line(
            f"job {self.label} {status.get('status')}: {status.get('images_ok', 0):,} ok, "
            f"{status.get('images_failed', 0):,} failed of {status.get('images_total', 0):,} "
            f"images in {elapsed:.1f}s ({done / max(elapsed, 1e-6):,.1f} img/s)"
        )


STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "ongoing": "yellow",
    "interrupted": "magenta",
}


def status_table(status: dict[str, Any]) -> Table:
    state = str(status.get("status"))
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("job", cell(status.get("job_id")))
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
    if status.get("stores_unknown"):
        table.add_row("unknown stores", f"{status['stores_unknown']:,}")
    by_code = status.get("failures_by_code") or {}
    if by_code:
        table.add_row("failures", cell(", ".join(f"{c} x{n}" for c, n in by_code.items())))
    for key in ("created_at", "started_at", "finished_at"):
        if status.get(key):
            table.add_row(key.replace("_at", ""), cell(status[key]))
    return table


def errors_table(errors: list[dict[str, Any]], limit: int = 50) -> Table:
    table = Table(title=f"errors ({len(errors)})", title_justify="left")
    table.add_column("store_id", style="bold")
    table.add_column("code")
    table.add_column("error")
    for err in errors[:limit]:
        table.add_row(cell(err.get("store_id")), cell(err.get("code", "")), cell(err.get("error")))
    if len(errors) > limit:
        table.add_row("...", "", f"{len(errors) - limit} more (status --json lists all)")
    return table


def show_status(output: Output, status: dict[str, Any], console: Console | None = None) -> None:
    con = console or output.out
    con.print(status_table(status))
    errors = status.get("error") or []
    if errors:
        con.print(errors_table(errors))


def show_jobs(output: Output, rows: list[dict[str, Any]], where: Any = None) -> None:
    if not rows:
        if not output.quiet:
            info_line(f"no jobs in {where}" if where is not None else "no jobs")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("job_id", "created", "status", "images", "failed"):
        table.add_column(col, justify="right" if col in ("images", "failed") else "left")
    for r in rows:
        state = str(r.get("status"))
        done, total = r.get("images_done", 0), r.get("images_total", 0)
        images = f"{total:,}" if done == total else f"{done:,}/{total:,}"
        table.add_row(
            cell(r["job_id"]),
            cell(r.get("created_at") or "-"),
            Text(state, style=STATUS_STYLE.get(state, "")),
            images,
            f"{r.get('images_failed', 0):,}",
        )
    output.out.print(table)


def show_validation(output: Output, rows: list[dict[str, Any]]) -> None:
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
                safe(f"{r['file']}: valid ({r['visits']:,} visits, {r['images']:,} images)"),
                markup=False,
            )
