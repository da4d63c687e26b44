"""Where a job's images run: this process (the default) or a Dask cluster (`--cluster`).

`DaskEngine.run` keeps the contract of `Pipeline.run`: tasks in, records handed to `sink`
in the calling thread (the job's one writer), `tick` about every 0.2 s, True when every
task is done. The job is cut into shards; each shard is a Dask task running the same
pipeline as the single-process mode in a worker process (`dask_worker.run_shard`). Nothing
here imports Dask until a cluster is asked for: `--cluster local` never loads it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retailpulse_cli.config.settings import DEFAULT_SHARD_SIZE, Settings
from retailpulse_cli.model import Record
from retailpulse_cli.processing.cluster_spec import INSTALL_HINT as INSTALL_HINT
from retailpulse_cli.processing.cluster_spec import ClusterError as ClusterError
from retailpulse_cli.processing.cluster_spec import ClusterSpec as ClusterSpec
from retailpulse_cli.processing.cluster_spec import parse_cluster as parse_cluster
from retailpulse_cli.processing.cluster_spec import require_dask as require_dask
from retailpulse_cli.processing.dask_quiet import QuietLogs, quiet_helpers
from retailpulse_cli.processing.spec import ImageTask
from retailpulse_cli.text.redaction import redact

if TYPE_CHECKING:
    from retailpulse_cli.processing.dask_worker import ShardResult
    from retailpulse_cli.processing.download import StopFlag

WORKER_CRASHED = "worker_crashed"
GRACE = 3.0  # the runner's own 2 s grace inside a shard, plus the trip back to the driver
SCHEDULER_TIMEOUT = 10.0  # seconds to reach a tcp:// scheduler and hear it answer
# Shards are sized from what is left of the job: remaining / (SHARDS_AHEAD x worker
# threads), between 2 x --workers (a shard that fills a worker's GPU slots twice) and
# --shard-size. They shrink toward the end of the job, so the workers finish together:
# 1,200 images in 1,000-image shards left one of two workers idle most of the run.
SHARDS_AHEAD = 2
# A cluster without a single worker for this long cannot finish the job: it is stopped
# (interrupted, resumable) rather than left waiting for good.
NO_WORKER_SECONDS = 30.0


def split_budgets(settings: Settings, processes: int) -> Settings:
    """--per-host and --rate are budgets of the whole job: each of `processes` worker
    processes (one connection pool each, shared by its shards) gets an equal share, at
    least one connection."""
    n = max(1, processes)
    rate = settings.rate / n if settings.rate > 0 else 0.0
    return dataclasses.replace(settings, per_host=max(1, settings.per_host // n), rate=rate)


def shard_size(remaining: int | None, threads: int, settings: Settings, most: int) -> int:
    """The next shard's size (see SHARDS_AHEAD); `most` (--shard-size) when the job's size
    is not known."""
    if remaining is None:
        return most
    guided = math.ceil(remaining / (SHARDS_AHEAD * max(1, threads)))
    return max(1, min(most, max(2 * settings.workers, guided)))


class _Seen:
    """Image indices already handed to the writer in this run, one bit each (a
    1,000,000-image job costs 125 KB), so a shard that ran twice is never written twice."""

    def __init__(self) -> None:
        self.bits = bytearray()

    def add(self, index: int) -> bool:
        """Mark `index`; False if it was already marked."""
        byte, bit = divmod(index, 8)
        if byte >= len(self.bits):
            self.bits.extend(bytes(byte + 1 - len(self.bits) + 1024))
        if self.bits[byte] >> bit & 1:
            return False
        self.bits[byte] |= 1 << bit
        return True


def crashed_record(task: ImageTask) -> Record:
    from retailpulse_cli.processing.download import base_record

    rec = base_record(task)
    rec.update(
        status="failed",
        error_code=WORKER_CRASHED,
        error="the worker process died on this image every time it was tried",
        attempts=0,
    )
    return rec


def _shards(
    tasks: Iterable[ImageTask],
    is_known: Callable[[str], bool],
    sink: Callable[[Record], None],
    size_of_next: Callable[[int], int],
) -> Iterator[list[ImageTask]]:
    """Cut tasks into shards, each as big as `size_of_next(tasks taken so far)`; images of
    unknown stores are recorded here and never sent."""
    taken = 0
    size = size_of_next(0)
    shard: list[ImageTask] = []
    for task in tasks:
        taken += 1
        if not is_known(task.store_id):
            from retailpulse_cli.processing.download import unknown_store_record

            sink(unknown_store_record(task))
            continue
        shard.append(task)
        if len(shard) >= size:
            yield shard
            shard = []
            size = size_of_next(taken)
    if shard:
        yield shard


# Imported once by the forkserver; each worker process is a fork of it, so neither Dask nor
# the pipeline's imports (requests, Pillow) are paid per worker or on its first shard.
FORKSERVER_PRELOAD = [
    "distributed",
    "retailpulse_cli.processing.dask_engine",
    "retailpulse_cli.processing.dask_worker",
]


def _start_forkserver() -> None:
    """Start the forkserver the workers will be forked from, with its preloads, now: it
    imports them (~1 s) while this process imports Dask and starts the scheduler, where it
    used to start only when the first worker was asked for."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    forkserver.ensure_running()


def _start_workers_from_a_forkserver() -> None:
    """LocalCluster workers forked from a preloaded forkserver rather than spawned: measured
    (bench/README.md) 1.3-1.5 s -> 0.9-1.1 s to a 2-worker cluster, and ~0.2 s less on each
    worker's first shard. Not `fork`: the driver has threads running by then. Workers still
    exit with the driver (Dask's parent-alive pipe is passed to them either way)."""
    import multiprocessing

    import dask
    from distributed.utils import get_mp_context

    dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
    get_mp_context()  # Dask's own preload first, so the list below is the one that holds
    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)


def describe(exc: BaseException) -> str:
    """An exception as one redacted line: Dask's messages can span lines and name URLs."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    return redact(f"{name}: {text}" if text else name)


def _lost_reason(exc: Exception) -> str:
    """Dask's reason for cancelling futures (`scheduler-connection-lost`), not its list of
    every cancelled key; otherwise the exception itself, kept short."""
    groups = getattr(exc, "error_groups", None) or []
    reason = getattr(exc, "reason", None) or (groups[0].reason if groups else None)
    if isinstance(reason, str) and reason:
        return f"{type(exc).__name__} ({reason})"
    text = describe(exc)
    return text if len(text) <= 200 else text[:199] + "…"


def _check_answers(address: str) -> None:
    """Connect and let the scheduler greet us, within SCHEDULER_TIMEOUT. Dask's own connect
    bounds the TCP connection only: its handshake then waits for the first message with no
    timeout, so a listener that accepts and never speaks (a stuck process, the wrong port
    behind a proxy) held `Client(address, timeout=...)` for good (issue 17)."""
    import asyncio

    from distributed.comm.core import connect

    async def greet() -> None:
        comm = await connect(address, timeout=SCHEDULER_TIMEOUT)
        await comm.close()

    try:
        asyncio.run(asyncio.wait_for(greet(), SCHEDULER_TIMEOUT))
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        raise ClusterError(
            f"the Dask scheduler at {redact(address)} accepted the connection but did not "
            f"answer within {SCHEDULER_TIMEOUT:g} s (is a Dask scheduler listening there?)",
            hint="start `dask scheduler` and `dask worker ADDRESS`, or check the address",
        ) from None


class DaskEngine:
    """Runs jobs on a Dask cluster: a LocalCluster of N processes, or a running scheduler."""

    def __init__(self, spec: ClusterSpec, *, shard_size: int = DEFAULT_SHARD_SIZE) -> None:
        self.spec = spec
        self.shard_size = max(1, shard_size)
        self.client: Any = None
        self.cluster: Any = None
        self.quiet = QuietLogs()

    def __enter__(self) -> DaskEngine:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Start or reach the cluster, then check every worker runs our version. Whatever
        Dask raises on the way is one ClusterError (exit 2), never an internal error."""
        quiet_helpers()
        try:
            if self.spec.kind == "local-cluster":
                _start_forkserver()  # it imports Dask for the workers while we import it here
            require_dask(load=True)
            # From here on, the CLI's stderr stays ours. Not before the import: importing
            # Dask sets its loggers' levels from its config.
            self.quiet.enter()
            self._connect()
        except BaseException as exc:  # Ctrl-C while starting, too: nothing left running
            self.close()
            if isinstance(exc, ClusterError) or not isinstance(exc, Exception):
                raise
            raise self._unreachable(exc) from None
        if self.spec.kind == "scheduler":  # local:N workers are forks of this very code
            self._check_versions()

    def _unreachable(self, exc: Exception) -> ClusterError:
        if self.spec.kind == "local-cluster":
            return ClusterError(
                f"cannot start a local Dask cluster of {self.spec.workers} worker processes: "
                f"{describe(exc)}"
            )
        return ClusterError(
            f"cannot reach the Dask scheduler at {redact(self.spec.address)}: {describe(exc)}",
            hint="start `dask scheduler` and `dask worker ADDRESS`, or check the address",
        )

    def _connect(self) -> None:
        import distributed

        if self.spec.kind == "local-cluster":
            import dask

            # One task per worker thread at a time: a worker that dies takes only the shard
            # it was running down with it, not a queued bystander (see `split`).
            dask.config.set({"distributed.scheduler.worker-saturation": 1.0})
            _start_workers_from_a_forkserver()
            self.cluster = distributed.LocalCluster(
                n_workers=self.spec.workers,
                threads_per_worker=1,  # the pipeline has its own threads
                processes=True,
                # The scheduler's HTTP server starts even without a dashboard: on a free
                # loopback port, not 8787 (taken by another cluster: a warning on stderr).
                dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": False},
                silence_logs=logging.CRITICAL,
            )
            self.client = distributed.Client(self.cluster)
        else:
            _check_answers(self.spec.address)
            self.client = distributed.Client(self.spec.address, timeout=SCHEDULER_TIMEOUT)
            try:
                self.client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise ClusterError(
                    f"the Dask scheduler at {redact(self.spec.address)} has no worker "
                    "(none joined within 60 s)",
                    hint="start `dask worker ADDRESS` on the worker machines",
                ) from None

    def _check_versions(self) -> None:
        import retailpulse_cli

        ours = retailpulse_cli.__version__  # read now, not at import: tests patch it
        from retailpulse_cli.processing.dask_worker import retailpulse_version

        try:
            theirs: dict[str, str] = self.client.run(retailpulse_version)
        except Exception as exc:
            self.close()
            raise ClusterError(
                f"the Dask workers cannot run retailpulse ({type(exc).__name__}: {exc})",
                hint=f"install retailpulse {ours} with {INSTALL_HINT} on every worker machine",
            ) from None
        wrong = {w: v for w, v in theirs.items() if v != ours}
        if wrong:
            worker, version = sorted(wrong.items())[0]
            self.close()
            raise ClusterError(
                f"retailpulse version mismatch: this driver is {ours}, worker {worker} "
                f"runs {version} ({len(wrong)} of {len(theirs)} workers differ)",
                hint=f"install retailpulse {ours} on every worker machine",
            )

    def close(self) -> None:
        for part in (self.client, self.cluster):
            if part is not None:
                try:
                    part.close()
                except Exception:  # already gone: nothing left to release
                    logging.getLogger(__name__).debug("close failed", exc_info=True)
        self.client = self.cluster = None
        self.quiet.restore()

    def threads(self) -> tuple[int, int]:
        """Worker processes and worker threads in the cluster now (at least 1 each)."""
        nthreads: dict[str, int] = self.client.nthreads()
        return max(1, len(nthreads)), max(1, int(sum(nthreads.values())))

    def run(
        self,
        tasks: Iterable[ImageTask],
        *,
        settings: Settings,
        base_dir: Path,
        is_known: Callable[[str], bool],
        sink: Callable[[Record], None],
        tick: Callable[[], None],
        stop: StopFlag,
        name: str,
        total: int | None = None,
    ) -> bool:
        """As `Pipeline.run`, on the cluster; `total` (the number of tasks, when known)
        sizes the shards. Return True when every task is done."""
        run = _DriverRun(self, settings, base_dir, sink, tick, stop, name)

        def size_of_next(taken: int) -> int:
            remaining = None if total is None else max(0, total - taken)
            return shard_size(remaining, run.threads, settings, self.shard_size)

        return run.run(_shards(tasks, is_known, sink, size_of_next))


class _DriverRun:
    """One job's run on the cluster: bounded submission, dedup, bisection, stop."""

    def __init__(
        self,
        engine: DaskEngine,
        settings: Settings,
        base_dir: Path,
        sink: Callable[[Record], None],
        tick: Callable[[], None],
        stop: StopFlag,
        name: str,
    ) -> None:
        from distributed import Event

        self.client = engine.client
        processes, self.threads = engine.threads()
        self.cap = 2 * self.threads  # shards in flight: the driver's memory stays flat
        self.settings = split_budgets(settings, processes)
        self.base_dir = base_dir
        self.sink, self.tick, self.stop = sink, tick, stop
        self.job_id = name
        self.stop_name = f"retailpulse-stop-{name}-{os.getpid()}"
        self.event = Event(self.stop_name, client=self.client)
        self.event.clear()
        self.pending: dict[Any, list[ImageTask]] = {}
        self.seen = _Seen()
        self.undone = False
        self.next_id = 0
        self.strikes: set[int] = set()  # images that killed a worker running alone, once
        self.isolating = False  # a shard killed workers: shards no longer overlap (`split`)
        self.workers_seen = time.monotonic()  # when the cluster last had a worker

    def submit(self, shard: list[ImageTask], *, last: bool = False) -> None:
        """Send a shard to the cluster. It may overlap the worker's next shard unless it is
        the job's `last` (nothing to overlap: seceding then only delayed its result, by up
        to 0.6 s measured on a 1-image job) or a shard killed workers (`split`)."""
        from retailpulse_cli.processing import dask_worker

        fn = dask_worker.run_shard  # looked up now, so a test can swap in a crashing shard
        future = self.client.submit(
            fn,
            shard,
            self.settings,
            self.base_dir,
            self.next_id,
            self.stop_name,
            not (self.isolating or last),
            pure=False,
            retries=1,
        )
        self.pending[future] = shard
        self.next_id += 1

    def run(self, shards: Iterator[list[ImageTask]]) -> bool:
        exhausted = False
        stopped_at: float | None = None
        last_tick = time.monotonic()
        upcoming = next(shards, None)  # one shard ahead: the last one is sent as such
        try:
            while True:
                while not exhausted and len(self.pending) < self.cap and not self.stop.is_set():
                    shard, upcoming = upcoming, next(shards, None)
                    if shard is None:
                        exhausted = True
                    else:
                        self.submit(shard, last=upcoming is None)
                if not self.pending and (exhausted or self.stop.is_set()):
                    break
                if not self.wait_and_collect():
                    break
                now = time.monotonic()
                if now - last_tick >= 0.2:
                    self.tick()
                    self.check_workers(now)
                    last_tick = now
                if self.stop.is_set():
                    if stopped_at is None:
                        stopped_at = now
                        self.event.set()  # running shards stop; queued ones start and end at once
                    elif now - stopped_at > GRACE:
                        break
        finally:
            self.cancel_pending()
        self.tick()
        return exhausted and not self.undone and not self.stop.is_set()

    def wait_and_collect(self) -> bool:
        """Collect the shards that finish within 0.2 s; False when the scheduler is gone
        after a stop (nothing more will come back)."""
        from distributed import wait

        try:
            done, _ = wait(list(self.pending), timeout=0.2, return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        except Exception as exc:  # the client lost its scheduler
            if not self.stop.is_set():
                raise self.lost(exc) from None
            return False
        for future in done:
            self.collect(future)
        return True

    def check_workers(self, now: float) -> None:
        """A cluster that has had no worker for NO_WORKER_SECONDS (every process lost, and
        none restarted or joining) ends the run, rather than waiting for good."""
        try:
            workers = self.client.scheduler_info().get("workers") or {}
        except Exception:  # a hiccup: the next look decides
            return
        if workers:
            self.workers_seen = now
        elif now - self.workers_seen > NO_WORKER_SECONDS and not self.stop.is_set():
            raise self.lost(RuntimeError(f"no worker for {NO_WORKER_SECONDS:g} s"))

    def cancel_pending(self) -> None:
        if self.pending:
            self.undone = True  # left to resume
            try:
                self.client.cancel(list(self.pending))
            except Exception:  # the scheduler is gone, and its tasks with it
                logging.getLogger(__name__).debug("cancel failed", exc_info=True)

    def collect(self, future: Any) -> None:
        """Take a finished shard's records (once each), or split a shard that kills workers."""
        from distributed import KilledWorker

        shard = self.pending.pop(future)
        try:
            result: ShardResult = future.result()
        except KilledWorker:
            self.split(shard)
            return
        except Exception as exc:  # cancelled, connection lost, ...: not this shard's fault
            self.undone = True
            if self.stop.is_set():
                return  # we cancelled it: left to resume
            raise self.lost(exc) from None
        for record in result.records:
            if self.seen.add(record["index"]):
                self.sink(record)
        if not result.complete:
            self.undone = True

    def lost(self, exc: Exception) -> ClusterError:
        """The cluster failed under a running job. The records received so far went to
        the writer (`sink`); raising marks the job interrupted, and resume skips them."""
        return ClusterError(
            f"lost the Dask cluster: {_lost_reason(exc)}; the job is interrupted, "
            f"`retailpulse resume {self.job_id}` finishes it",
            hint="resume runs here without --cluster, or on the cluster once it is back",
        )

    def split(self, shard: list[ImageTask]) -> None:
        """Dask gave up on a shard after it killed `allowed-failures` workers: run its halves
        apart until the culprit image is alone, then record that image as failed."""
        self.isolating = True  # a death must take down only the shard that caused it
        if len(shard) == 1:
            index = shard[0].image_index
            if index not in self.strikes:  # a bystander of the culprit's crash, maybe: again
                self.strikes.add(index)
                self.submit(shard)
            elif self.seen.add(index):
                self.sink(crashed_record(shard[0]))
            return
        half = len(shard) // 2
        self.submit(shard[:half])
        self.submit(shard[half:])
