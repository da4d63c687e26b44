"""The worker side of `--cluster`: what one Dask task does with a shard of a job.

A shard runs the single-process pipeline (both stages) in a worker process. The shards of
one job in one process share a connection pool, the download threads and the GPU slots, so
two shards that overlap there (see `run_shard`) still have --workers images in the GPU
stage at most. Plain data in and out; imported by the workers (and preloaded by the
forkserver of a `local:N` cluster), never by `--cluster local`.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from retailpulse_cli.config.settings import Settings
from retailpulse_cli.model import Record
from retailpulse_cli.processing.download import StopFlag, store_keep
from retailpulse_cli.processing.fetch import Fetcher
from retailpulse_cli.processing.pipeline import Pipeline, Pools
from retailpulse_cli.processing.spec import ImageTask
from retailpulse_cli.storage.image_archive import ImageStore

JOBS_KEPT = 4  # jobs whose pools a worker process keeps for their next shards


@dataclass(frozen=True)
class ShardResult:
    """What one shard sends back: its records, and whether every image of it was done."""

    shard_id: int
    records: list[Record]
    complete: bool


class JobHere:
    """What the shards of one job share in this worker process: the job's stop flag, one
    connection pool with its per-host caps, and the download threads and GPU slots."""

    def __init__(self, settings: Settings) -> None:
        self.stop = StopFlag()
        self.fetcher = Fetcher(settings, self.stop)
        self.pools = Pools.for_settings(settings.downloads, settings.workers)

    def close(self) -> None:
        self.pools.shutdown()
        self.fetcher.close()


_JOBS: OrderedDict[tuple[Settings, str], JobHere] = OrderedDict()
_JOBS_LOCK = threading.Lock()


def job_here(settings: Settings, stop_name: str) -> JobHere:
    """The job's shared parts in this process, made by its first shard here and kept for
    the next ones (the job's stop Event name is unique to the job's run)."""
    key = (settings, stop_name)
    with _JOBS_LOCK:
        job = _JOBS.get(key)
        if job is None:
            while len(_JOBS) >= JOBS_KEPT:  # the oldest job is over: its shards came first
                _JOBS.popitem(last=False)[1].close()
            job = _JOBS[key] = JobHere(settings)
        _JOBS.move_to_end(key)
    return job


@functools.lru_cache(maxsize=4)
def _store_for(dest: str) -> ImageStore:
    """One image store per destination in a worker process, kept for the next shards."""
    from retailpulse_cli.storage.image_archive import open_store

    return open_store(dest)


def _watch_stop(event_name: str, job: JobHere) -> threading.Event:
    """Poll the job's stop Event (set by the driver on Ctrl-C/SIGTERM) while a shard runs;
    setting the returned Event ends the polling."""
    from distributed import Event

    event = Event(event_name)
    event.is_set()  # first use in the task's thread: it binds the Event to this worker
    finished = threading.Event()

    def poll() -> None:
        while not finished.wait(0.25):
            try:
                is_set = event.is_set()
            except Exception:  # a scheduler hiccup: the next poll asks again
                continue
            if is_set:
                job.stop.request("stop")
                job.fetcher.watchdog.abort_all()  # cut downloads in flight; resume redoes them
                return

    threading.Thread(target=poll, name="rp-stop-watch", daemon=True).start()
    return finished


def _secede_once() -> None:
    """Leave the worker's thread pool: the worker starts its next shard now, while this
    one's last images go through the GPU stage (the slots are shared, see JobHere)."""
    from distributed import secede

    secede()


def run_shard(
    tasks: list[ImageTask],
    settings: Settings,
    base_dir: Path,
    shard_id: int,
    stop_name: str,
    overlap: bool = False,
) -> ShardResult:
    """A Dask task: run one shard's images in this worker process. With `overlap`, once
    every image of the shard has been handed to the download stage, the task secedes, so
    the worker never idles its GPU slots between two shards; a shard run while the driver
    isolates an image that kills workers does not, so a death takes only it down."""
    job = job_here(settings, stop_name)
    records: list[Record] = []
    store = _store_for(settings.save_images) if settings.save_images else None
    # each worker writes its own images; unknown stores were recorded by the driver
    keep = store_keep(store, settings, job.stop) if store is not None else None
    pipeline = Pipeline(settings, job.fetcher, base_dir, job.stop, keep=keep, pools=job.pools)
    watching = _watch_stop(stop_name, job)
    try:
        exhausted = _secede_once if overlap else None
        complete = pipeline.run(tasks, records.append, lambda: None, on_exhausted=exhausted)
    finally:
        watching.set()
    if store is not None:
        store.flush()  # durable before the driver fsyncs the records that name them
    return ShardResult(shard_id, records, complete)


def retailpulse_version() -> str:
    import retailpulse_cli

    return retailpulse_cli.__version__
