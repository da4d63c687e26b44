"""Everything users see: Rich progress and tables on a terminal, plain text or JSON elsewhere.

Data (tables, JSON, ids) goes to stdout; progress, logs and diagnostics go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from retailpulse_cli.processing.tally import Tally
from retailpulse_cli.text.escape import safe
from retailpulse_cli.ui.streams import log_line


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
        from retailpulse_cli.errors import StorageError

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


def _line(text: str) -> None:
    """The one place a line goes to stderr (timestamped off a terminal by the stream,
    streams.protect_stderr) and to the --log-file."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
    log_line(text)


def error_line(message: str) -> None:
    _line(f"retailpulse: error: {safe(message)}")


def hint_line(message: str) -> None:
    _line(f"retailpulse: hint: {safe(message)}")


def info_line(message: str) -> None:
    _line(f"retailpulse: {safe(message)}")


class _CoreLog(logging.Handler):
    """The core's warnings (a results database that went away) as our own stderr lines."""

    def emit(self, record: logging.LogRecord) -> None:
        info_line(record.getMessage())


def route_core_logs() -> None:
    """Send the `retailpulse.*` loggers' warnings to stderr (and the --log-file) as lines
    like every other; the core logs, it never prints."""
    logger = logging.getLogger("retailpulse")
    if not any(isinstance(h, _CoreLog) for h in logger.handlers):
        logger.addHandler(_CoreLog(logging.WARNING))
        logger.propagate = False


def plural(n: int, word: str) -> str:
    """`1 visit`, `2 visits`, `1,000 images`."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


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
        """A job's observer; on a terminal its row is made now (hidden until the job
        starts), so rows stand in the order the files were given, not the order in which
        their threads happened to start."""
        task = None
        if self.progress is not None and not self.output.quiet:
            task = self.progress.add_task("", total=None, visible=False, rate="-", failed=0)
        return JobProgress(self, task)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __enter__(self) -> ProgressBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def source_label(source: str, fallback: str) -> str:
    """A job's row label: the job file's name (`<stdin>` stays so), escaped."""
    return safe(os.path.basename(source) or source) if source else fallback


def _markup_free(text: str) -> str:
    """Progress rows are Rich markup templates: a file named `[red]x.json` stays text."""
    from rich.markup import escape

    return escape(text)


class JobProgress:
    """One job's progress on a ProgressBoard (the service's Observer).

    A retry counts and rates only the images it runs again: its total is those images,
    not the job's (whose failed images were counted once already)."""

    def __init__(self, board: ProgressBoard, task: Any = None) -> None:
        self.board = board
        self.output = board.output
        self.label = ""
        self.name = ""
        self.task: Any = task
        self.t0 = time.monotonic()
        self.base = 0  # images settled before this run and not redone by it
        self.total = 0  # images this display counts towards
        self.retrying = False
        self.processed = 0  # images this run has recorded
        self.failed_now = 0  # of those, failed
        self.last_plain = 0.0
        self.last_decile = -1

    def started(self, job: Any, tally: Tally, todo: int, source: str = "") -> None:
        self.t0 = time.monotonic()
        # images to do that the tally counted already are being retried
        self.retrying = tally.done > tally.images_total - todo
        self.base = 0 if self.retrying else tally.images_total - todo
        self.total = todo if self.retrying else tally.images_total
        self.label = job.id
        self.name = source_label(source, job.id)
        if self.output.quiet:
            return
        progress = self.board.progress
        if progress is not None:
            if self.task is None:
                self.task = progress.add_task("", rate="-", failed=0)
            progress.update(
                self.task,
                description=_markup_free(self.name),
                total=self.total,
                completed=self.base,
                failed=self._failed(tally),
                visible=True,
            )
        where = f"job {self.label}{f' ({source})' if source else ''}"
        if self.retrying:
            self._say(f"{where}: retrying {todo:,} of {plural(tally.images_total, 'image')}")
        else:
            self._say(f"{where}: {todo:,} of {plural(tally.images_total, 'image')} to process")
        if todo == 0:
            self._say(f"job {self.label}: nothing left to do")

    def _say(self, message: str) -> None:
        """A plain line; under the live bar (a terminal) it goes to the --log-file only."""
        if self.board.live:
            log_line(f"retailpulse: {safe(message)}")
        else:
            info_line(message)

    def _failed(self, tally: Tally) -> int:
        return self.failed_now if self.retrying else tally.failed

    def record(self, record: dict[str, Any], tally: Tally) -> None:
        self.processed += 1
        if record.get("status") != "ok":
            self.failed_now += 1
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
                completed=self.base + self.processed,
                rate=_fmt_rate(self.rate(tally)) if self.processed else "-",
                failed=self._failed(tally),
            )
            return
        if self.output.verbose or not self.processed:  # no line, and no rate, before one
            return
        settled = self.base + self.processed
        decile = settled * 10 // max(self.total, 1)
        now = time.monotonic()
        if decile != self.last_decile or now - self.last_plain >= self.board.PLAIN_EVERY:
            if settled < self.total:
                info_line(
                    f"job {self.label} ({self.name}): {settled:,}/{plural(self.total, 'image')}"
                    f"{' retried' if self.retrying else ''}, {self._failed(tally):,} failed, "
                    f"{_fmt_rate(self.rate(tally))} img/s"
                )
            self.last_decile = decile
            self.last_plain = now

    def finished(self, status: dict[str, Any]) -> None:
        """A plain closing line: what happened, how many, how fast."""
        if self.output.quiet:
            return
        elapsed = time.monotonic() - self.t0
        speed = f"{self.processed / max(elapsed, 1e-6):,.1f} img/s"
        if self.retrying:
            speed = f"{self.processed:,} retried, {speed}"
        self._say(
            f"job {self.label} {status.get('status')}: {status.get('images_ok', 0):,} ok, "
            f"{status.get('images_failed', 0):,} failed of "
            f"{plural(status.get('images_total', 0), 'image')} in {elapsed:.1f}s ({speed})"
        )


class StatusWatch:
    """`status --wait` on a terminal: the bar `submit` shows, fed from status.json (polled
    by service.wait_for); its rate counts the images done since the watch began."""

    def __init__(self, output: Output) -> None:
        self.board = ProgressBoard(output)
        self.task: Any = None
        self.t0 = time.monotonic()
        self.first_done = 0

    def update(self, status: dict[str, Any]) -> None:
        progress = self.board.progress
        if progress is None or self.board.output.quiet:
            return
        done = int(status.get("images_done") or 0)
        if self.task is None:
            self.first_done, self.t0 = done, time.monotonic()
            label = source_label(str(status.get("source") or ""), str(status.get("job_id")))
            self.task = progress.add_task(_markup_free(label), total=None, rate="-", failed=0)
        moved = done - self.first_done
        rate = moved / max(time.monotonic() - self.t0, 1e-6)
        progress.update(
            self.task,
            total=int(status.get("images_total") or 0),
            completed=done,
            rate=_fmt_rate(rate) if moved > 0 else "-",
            failed=int(status.get("images_failed") or 0),
        )

    def close(self) -> None:
        self.board.close()

    def __enter__(self) -> StatusWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    if status.get("source"):
        table.add_row("source", cell(status["source"]))
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
    if not con.is_terminal:  # a pipe or a file gets whole paths and messages
        con.width = 250
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
    # ids and dates are never cut: a narrow terminal shortens the source column instead
    widths = {"job_id": 24, "created": 20, "status": 11}
    for col in ("job_id", "created", "status", "images", "failed"):
        right = col in ("images", "failed")
        table.add_column(col, justify="right" if right else "left", min_width=widths.get(col))
    table.add_column("source", overflow="ellipsis")
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
            Text(source_label(str(r.get("source") or ""), "-")),
        )
    out = output.out
    if not out.is_terminal:  # a pipe or a file gets whole lines, not 80 columns
        out.width = 250
    out.print(table)


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
                safe(
                    f"{r['file']}: valid ({plural(r['visits'], 'visit')}, "
                    f"{plural(r['images'], 'image')})"
                ),
                markup=False,
            )
