"""Signals while jobs run: the first SIGINT/SIGTERM stops them gracefully, a second one
exits at once; SIGHUP (the terminal or ssh session went away) does not stop them.

Losing the terminal is like losing any other reader of progress: it costs the output, not
the work (`nohup` and wget behave so too). What the user is told goes through the
front end's `SignalNotes`; nothing here prints.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from retailpulse_cli.errors import ExitCode

if TYPE_CHECKING:
    from retailpulse_cli.processing.download import StopFlag

Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class SignalNotes(Protocol):
    def stopping(self, signal_name: str) -> None:
        """The first SIGINT/SIGTERM: the jobs are stopping."""

    def hung_up(self) -> None:
        """SIGHUP: the terminal is gone; the jobs go on."""


class StopOnSignals:
    """Installs the handlers for as long as the `with` block runs."""

    def __init__(self, stop: StopFlag, notes: SignalNotes) -> None:
        self.stop = stop
        self.notes = notes
        self.previous: dict[int, Handler] = {}

    def __enter__(self) -> StopOnSignals:
        handlers: list[tuple[signal.Signals, Callable[[int, FrameType | None], None]]] = [
            (signal.SIGINT, self._stop),
            (signal.SIGTERM, self._stop),
        ]
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup: stay so
            handlers.append((signal.SIGHUP, self._hang_up))
        for sig, handler in handlers:
            # ValueError: not the main thread (some test runners); then no handler is needed
            with contextlib.suppress(ValueError):
                self.previous[sig] = signal.signal(sig, handler)
        return self

    def _hang_up(self, _signum: int, _frame: FrameType | None) -> None:
        self.notes.hung_up()

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set():
            os._exit(int(ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.INTERRUPTED))
        name = signal.Signals(signum).name
        self.stop.request(name)
        self.notes.stopping(name)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
