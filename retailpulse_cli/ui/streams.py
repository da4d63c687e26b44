"""Progress and logs whose reader may go away: `| head`, a closed terminal, `2>/dev/full`.

Losing the reader of stderr must never stop or fail a job (issue 9): the job's results
and status are on disk, and `status` tells the outcome. So stderr becomes a stream that,
on its first failed write, points its file descriptor at /dev/null and keeps going.
Stdout carries data and keeps its own rule (report.stdout_guard).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO, cast

_LINES = re.compile(r"[^\n]*\n|[^\n]+")


def timestamp() -> str:
    """ISO 8601 UTC to the second: what starts every log line off a terminal."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class LossTolerant:
    """Wraps a text stream: writes that fail (EPIPE, EIO after a hang-up, ENOSPC) are
    dropped, and so is everything after them. Anything else is the wrapped stream's.

    With `stamp`, every line starts with a UTC timestamp (cron logs say which night a
    line is from). Done here, on the stream, so every line gets one: ours, Typer's usage
    errors, warnings."""

    def __init__(self, stream: TextIO, *, stamp: bool = False) -> None:
        self._stream = stream
        self.lost = False
        self.stamp = stamp
        self._at_line_start = True
        # re-entrant: a signal handler may write while the main thread is writing
        self._lock = threading.RLock()

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self._stream.write(self._stamped(text) if self.stamp else text)
            except OSError:
                self._lose()
        return len(text)

    def _stamped(self, text: str) -> str:
        with self._lock:
            out = []
            for line in _LINES.findall(text):
                out.append(timestamp() + " " + line if self._at_line_start else line)
                self._at_line_start = line.endswith("\n")
            return "".join(out)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except OSError:
                self._lose()

    def _lose(self) -> None:
        """Point the descriptor at /dev/null, so what is still buffered (and the final
        flush at exit) goes nowhere instead of raising again."""
        self.lost = True
        to_null(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def to_null(stream: TextIO) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)


def reopen_closed_std_fds() -> None:
    """A command started with stdin, stdout or stderr closed (`2>&-` in a crontab) gets
    /dev/null there: Python would leave sys.stderr None and the first write would kill
    the job, and a file we open next could take fd 1 or 2 and receive our output."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))  # noqa: SIM115


def protect_stderr() -> None:
    """From now on a lost stderr costs the lines, never the job (idempotent); off a
    terminal, its lines are timestamped."""
    if sys.stderr is not None and not isinstance(sys.stderr, LossTolerant):
        stamp = 2 not in terminal_fds()
        sys.stderr = cast(TextIO, LossTolerant(sys.stderr, stamp=stamp))


class LogFile:
    """--log-file: the lines retailpulse writes to stderr, timestamped, appended to a file
    (line-buffered: `tail -f` and a crash see whole lines). A write that fails (disk full)
    drops the log, never the job."""

    current: LogFile | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: TextIO | None = path.open("a", buffering=1, encoding="utf-8", errors="replace")

    def line(self, text: str) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(f"{timestamp()} {text}\n")
        except (OSError, ValueError):
            self._fh = None

    @classmethod
    def open(cls, path: Path) -> None:
        """Start appending to `path` (OSError if it cannot be opened)."""
        if cls.current is None or cls.current.path != path:
            cls.current = LogFile(path)


def log_line(text: str) -> None:
    """Append one line to the --log-file, if one is open."""
    if LogFile.current is not None:
        LogFile.current.line(text)


def terminal_fds() -> list[int]:
    """Which of stdout and stderr are a terminal (asked before it may be gone: after a
    hang-up, isatty() itself fails)."""
    out = []
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                out.append(fd)
    return out


def leave_terminal(fds: list[int]) -> None:
    """The terminal hung up: send what would go there to /dev/null from now on."""
    for fd in fds:
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
