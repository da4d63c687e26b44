"""Progress and logs whose reader may go away: `| head`, a closed terminal, `2>/dev/full`.

Losing the reader of stderr must never stop or fail a job (issue 9): the job's results
and status are on disk, and `status` tells the outcome. So stderr becomes a stream that,
on its first failed write, points its file descriptor at /dev/null and keeps going.
Stdout carries data and keeps its own rule (report.stdout_guard).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO, cast


class LossTolerant:
    """Wraps a text stream: writes that fail (EPIPE, EIO after a hang-up, ENOSPC) are
    dropped, and so is everything after them. Anything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self._stream.write(text)
            except OSError:
                self._lose()
        return len(text)

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


def protect_stderr() -> None:
    """From now on a lost stderr costs the lines, never the job (idempotent)."""
    if sys.stderr is not None and not isinstance(sys.stderr, LossTolerant):
        sys.stderr = cast(TextIO, LossTolerant(sys.stderr))


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
