"""Keeping Dask and its helper processes off the CLI's stderr while a cluster is open.

Two sources of noise: Dask's loggers (and tornado's and asyncio's under them), and the
helper processes Python starts for a `local:N` cluster (the multiprocessing resource
tracker, the forkserver, and through it the workers), which write to the stderr they were
started with. Killing the resource tracker mid-job made Python start another one, which
printed a `KeyError: '/mp-…'` traceback for every semaphore the first one had known
(issue 17). Once `quiet_helpers` has run, helpers get /dev/null as stderr.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from collections.abc import Sequence
from typing import Any

# Python's warning when it restarts a resource tracker that was killed: nothing leaks that
# matters here (the semaphores belong to worker processes that exit with the driver).
TRACKER_RESTARTED = "resource_tracker: process died unexpectedly"


class QuietLogs:
    """Dask's loggers (`distributed` and every child it made, which can carry their own
    levels: `distributed.client` printed with only the parent set), and the `tornado` and
    `asyncio` loops under it, kept off stderr while an engine is open; put back on close."""

    ROOTS = ("distributed", "tornado", "asyncio")

    def __init__(self) -> None:
        self.saved: list[tuple[logging.Logger, int, bool]] = []

    def enter(self) -> None:
        if self.saved:
            return
        names = [
            name
            for name, lg in logging.root.manager.loggerDict.items()
            if isinstance(lg, logging.Logger) and name.split(".")[0] in self.ROOTS
        ]
        for name in dict.fromkeys([*self.ROOTS, *names]):
            lg = logging.getLogger(name)
            self.saved.append((lg, lg.level, lg.propagate))
            lg.setLevel(logging.CRITICAL + 1)  # nothing, not even a CRITICAL line
            if name in self.ROOTS:
                lg.propagate = False  # children made later inherit the level; root never sees them

    def restore(self) -> None:
        for lg, level, propagate in reversed(self.saved):
            lg.setLevel(level)
            lg.propagate = propagate
        self.saved = []


# Started helpers, kept so that subprocess never reaps them behind multiprocessing's back
# (it waits for them by pid itself).
_STARTED: list[subprocess.Popen[bytes]] = []


def _spawn_quietly(path: bytes | str, args: Sequence[Any], passfds: Sequence[int]) -> int:
    """`multiprocessing.util.spawnv_passfds` with stderr on /dev/null: the same program,
    arguments, inherited descriptors and signal handling (none restored)."""
    proc = subprocess.Popen(
        list(args),
        executable=path,
        pass_fds=tuple(sorted(map(int, passfds))),
        stderr=subprocess.DEVNULL,
        restore_signals=False,
    )
    _STARTED.append(proc)
    return proc.pid


def quiet_helpers() -> None:
    """From now on, for the rest of this process, the helper processes multiprocessing
    starts (the resource tracker, the forkserver; restarted ones too) write their stderr to
    /dev/null, and its warning about a restarted tracker is not shown. For the rest of the
    process, not just while an engine is open: Dask's nannies release their semaphores in
    finalizers that can run at exit, after the engine closed, and each release reaches the
    tracker (a restarted one prints a traceback for every name it never saw)."""
    from multiprocessing import util

    if util.spawnv_passfds is _spawn_quietly:
        return
    util.spawnv_passfds = _spawn_quietly
    warnings.filterwarnings("ignore", message=TRACKER_RESTARTED, category=UserWarning)
