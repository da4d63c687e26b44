"""What every command writes, without Rich: lines on stderr, JSON and text on stdout,
and how much (`Output`). Commands that only read (`status --json`, `list --json`,
`results`) print through this module alone, so they never import Rich; tables and
progress bars (ui.console, ui.progress) build their Rich console from `Output`.

Data (tables, JSON, ids) goes to stdout; progress, logs and diagnostics go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, TextIO

from retailpulse_cli.text.escape import safe, without_surrogates
from retailpulse_cli.ui.streams import log_line

if TYPE_CHECKING:
    from rich.console import Console


class Output(NamedTuple):
    """How much and in what form to print; one per command invocation. (A NamedTuple:
    a dataclass would cost every command a code generation at start-up.)"""

    quiet: bool = False
    verbose: bool = False
    no_color: bool = False

    def console(self, stream: TextIO) -> Console:
        from retailpulse_cli.ui.console import make_console

        return make_console(stream, plain=self.no_color or bool(os.environ.get("NO_COLOR")))

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


def print_json(obj: object) -> None:
    """JSON on stdout, nothing else: safe to pipe into jq. Always valid Unicode: a lone
    surrogate (a file name that is not UTF-8, or a job file's `\\ud800`) is written as the
    text output shows it, `\\udcff`. Text that the stream cannot encode (any non-ASCII
    under LANG=C) is written as JSON \\u escapes: the same value to any JSON reader."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        obj = without_surrogates(obj)
        text = json.dumps(obj, indent=2, ensure_ascii=False)
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        text = json.dumps(obj, indent=2)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_lines(lines: list[str]) -> None:
    """Plain lines of data on stdout (ids, tab-separated rows)."""
    for line in lines:
        sys.stdout.write(line + "\n")


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


def route_core_logs() -> None:
    """The core's warnings through the `logging` module (a results database that went away
    while a job runs, from its background thread) as lines like every other."""
    import logging

    class CoreLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            info_line(record.getMessage())

    logger = logging.getLogger("retailpulse")
    if not any(type(h).__name__ == "CoreLog" for h in logger.handlers):
        logger.addHandler(CoreLog(logging.WARNING))
        logger.propagate = False


class StderrNotes:
    """The core's notes (jobs.notes.Notes) as lines on stderr and in the --log-file."""

    def info(self, message: str) -> None:
        info_line(message)

    def error(self, message: str) -> None:
        error_line(message)
