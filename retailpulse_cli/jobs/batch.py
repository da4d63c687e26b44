"""Running several jobs at once: one set of stage threads and one connection pool shared by all."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retailpulse_cli.config.settings import Settings
from retailpulse_cli.jobs import lifecycle
from retailpulse_cli.processing.download import StopFlag
from retailpulse_cli.processing.pipeline import Pools
from retailpulse_cli.processing.spec import JobSpec
from retailpulse_cli.storage.job_dir import Job, Lock
from retailpulse_cli.storage.store_master import StoreMaster

if TYPE_CHECKING:
    from retailpulse_cli.processing.dask_engine import DaskEngine


@dataclass
class Planned:
    """A job ready to run: created (or opened) and locked by us."""

    job: Job
    lock: Lock
    mode: lifecycle.Mode
    settings: Settings
    store_master: StoreMaster
    spec: JobSpec | None = None  # already parsed (submit): not parsed again from job.json


def run_jobs(
    planned: Sequence[Planned],
    *,
    stop: StopFlag,
    observers: Sequence[lifecycle.Observer],
    engine: DaskEngine | None = None,
) -> list[dict[str, Any]]:
    """Run every planned job to its end (or until `stop`); return their final statuses.
    Locks are released whatever happens. With an `engine` (a Dask cluster) the jobs run
    one after another, each spread over the whole cluster."""
    try:
        if len(planned) == 1 or engine is not None:
            return [
                lifecycle.execute(
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
    observers: Sequence[lifecycle.Observer],
) -> list[dict[str, Any]]:
    from retailpulse_cli.processing.fetch import Fetcher

    # One connection pool per distinct settings (an inbox may resume an orphan submitted
    # with other timeouts or limits): each job downloads under its own rules.
    fetchers = {p.settings: Fetcher(p.settings, stop) for p in planned}
    statuses: list[dict[str, Any] | None] = [None] * len(planned)
    errors: list[BaseException] = []
    pools = Pools.for_settings(
        max(p.settings.downloads for p in planned), max(p.settings.workers for p in planned)
    )
    try:

        def one(i: int, p: Planned) -> None:
            try:
                statuses[i] = lifecycle.execute(
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
