"""Running several jobs at once: one set of stage threads and one connection pool shared
by all, under signal handling (jobs.signals) and with the process limits a big run needs."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from retailpulse_cli.jobs import run
from retailpulse_cli.jobs.lifecycle import Planned
from retailpulse_cli.jobs.signals import SignalNotes, StopOnSignals
from retailpulse_cli.model import JobStatus
from retailpulse_cli.processing.download import StopFlag
from retailpulse_cli.processing.pipeline import Pools

if TYPE_CHECKING:
    from retailpulse_cli.processing.dask_engine import DaskEngine


def run_until_stopped(
    planned: Sequence[Planned],
    *,
    observers: Sequence[run.Observer],
    notes: SignalNotes,
    engine: DaskEngine | None = None,
) -> list[JobStatus]:
    """Run jobs we hold the locks of until they end or a signal stops them; on a Dask
    cluster when `engine` is given."""
    raise_open_files_limit()
    limit_malloc_arenas()
    stop = StopFlag()
    with StopOnSignals(stop, notes):
        return run_jobs(planned, stop=stop, observers=observers, engine=engine)


def raise_open_files_limit() -> None:
    """Each worker holds a socket and a file or two: lift the soft limit on open files to
    the hard one, so --workers 1024 does not run into a default `ulimit -n` of 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def limit_malloc_arenas() -> None:
    """glibc gives busy threads malloc arenas of their own, up to 8 per core, and each
    keeps freed memory: 128 workers peaked at ~300 MB. As many arenas as cores measured
    the same speed at less than half the memory (bench/README.md)."""
    import ctypes

    m_arena_max = -8  # from glibc's malloc.h
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, max(2, os.cpu_count() or 2))


def run_jobs(
    planned: Sequence[Planned],
    *,
    stop: StopFlag,
    observers: Sequence[run.Observer],
    engine: DaskEngine | None = None,
) -> list[JobStatus]:
    """Run every planned job to its end (or until `stop`); return their final statuses.
    Locks are released whatever happens. With an `engine` (a Dask cluster) the jobs run
    one after another, each spread over the whole cluster."""
    try:
        if len(planned) == 1 or engine is not None:
            return [
                run.execute(
                    p.job,
                    mode=p.mode,
                    settings=p.settings,
                    store_master=p.store_master,
                    stop=stop,
                    observer=obs,
                    job_spec=p.spec,
                    engine=engine,
                )
                for p, obs in zip(planned, observers, strict=True)
            ]
        return _run_shared(planned, stop=stop, observers=observers)
    finally:
        for p in planned:
            p.lock.release()


def _run_shared(
    planned: Sequence[Planned],
    *,
    stop: StopFlag,
    observers: Sequence[run.Observer],
) -> list[JobStatus]:
    from retailpulse_cli.processing.fetch import Fetcher

    # One connection pool per distinct settings (an inbox may resume an orphan submitted
    # with other timeouts or limits): each job downloads under its own rules.
    fetchers = {p.settings: Fetcher(p.settings, stop) for p in planned}
    statuses: list[JobStatus | None] = [None] * len(planned)
    errors: list[BaseException] = []
    pools = Pools.for_settings(
        max(p.settings.downloads for p in planned), max(p.settings.workers for p in planned)
    )
    try:

        def one(i: int, p: Planned) -> None:
            try:
                statuses[i] = run.execute(
                    p.job,
                    mode=p.mode,
                    settings=p.settings,
                    store_master=p.store_master,
                    stop=stop,
                    observer=observers[i],
                    pools=pools,
                    fetcher=fetchers[p.settings],
                    job_spec=p.spec,
                )
            except BaseException as exc:  # re-raised in the calling thread below, once
                errors.append(exc)  # the other jobs have finished: one bad job stops no other

        threads = [
            threading.Thread(target=one, args=(i, p), name=f"rp-job-{i}", daemon=True)
            for i, p in enumerate(planned)
        ]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # short joins keep the main thread free to take signals
    finally:
        pools.shutdown()  # no waiting: stuck downloads must not block the exit
        for fetcher in fetchers.values():
            fetcher.close()
    if errors:
        raise errors[0]
    return [s for s in statuses if s is not None]
