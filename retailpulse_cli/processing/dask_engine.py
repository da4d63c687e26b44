"""Where a job's images run: this process (the default) or a Dask cluster (`--cluster`).

`DaskEngine.run` keeps the contract of `runner.run`: tasks in, records handed to `sink` in
the calling thread (the job's one writer), `tick` about every 0.2 s, True when every task
is done. The job is cut into shards; each shard is a Dask task running the same per-image
pipeline as the single-process mode in a worker process (`run_shard`). Nothing here
imports Dask until a cluster is asked for: `--cluster local` never loads it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retailpulse_cli.config.settings import DEFAULT_SHARD_SIZE, Settings
from retailpulse_cli.errors import ExitCode, RetailpulseError
from retailpulse_cli.model import Record
from retailpulse_cli.processing.spec import ImageTask
from retailpulse_cli.text.redaction import redact

if TYPE_CHECKING:
    from retailpulse_cli.processing.download import StopFlag
    from retailpulse_cli.processing.fetch import Fetcher
    from retailpulse_cli.storage.image_archive import ImageStore

WORKER_CRASHED = "worker_crashed"
# `retailpulse[dask]` names the published package; in a checkout pip needs the folder
INSTALL_HINT = "pip install 'retailpulse[dask]' (in a checkout: pip install -e '.[dask]')"
GRACE = 3.0  # the runner's own 2 s grace inside a shard, plus the trip back to the driver


class ClusterError(RetailpulseError):
    """The cluster named by --cluster cannot be used (extra missing, unreachable, mismatch).
    Exit code 2 (usage): like a bad flag, it is fixed by changing the command or the
    installation, and no image was processed."""

    exit_code = ExitCode.USAGE
    hint = "use --cluster local (the default) to run in this process"


@dataclass(frozen=True)
class ClusterSpec:
    """'local' (this process), 'local:N' (N Dask worker processes here) or a scheduler."""

    kind: str  # "local", "local-cluster" or "scheduler"
    workers: int = 0
    address: str = ""

    @property
    def is_dask(self) -> bool:
        return self.kind != "local"


def parse_cluster(text: str | None) -> ClusterSpec:
    """'local' | 'local:N' | 'tcp://HOST:PORT'; None or '' mean local."""
    value = (text or "local").strip()
    if value == "local":
        return ClusterSpec("local")
    if value.startswith("local:"):
        count = value.split(":", 1)[1]
        if not count.isdigit() or not 1 <= int(count) <= 256:
            raise ClusterError(
                f"--cluster {value!r}: N in local:N must be a number of worker processes "
                "from 1 to 256",
                hint="e.g. --cluster local:2",
            )
        return ClusterSpec("local-cluster", workers=int(count))
    if value.startswith("tcp://"):
        return ClusterSpec("scheduler", address=_scheduler_address(value))
    if value.startswith("tls://"):
        # Dask's tls:// needs a certificate, a key and a CA (a `Security` object) that
        # no flag of ours passes on: refused here rather than failing inside Dask.
        raise ClusterError(
            f"--cluster {redact(value)!r}: tls:// scheduler addresses are not supported "
            "(retailpulse cannot pass Dask the certificates they need)",
            hint="use tcp://HOST:PORT, over a VPN or an SSH tunnel if the network is untrusted",
        )
    raise ClusterError(
        f"--cluster {redact(value)!r}: use local, local:N or tcp://HOST:PORT (a Dask scheduler)",
        hint="e.g. --cluster local:2 or --cluster tcp://10.0.0.5:8786",
    )


def _scheduler_address(value: str) -> str:
    """`value` (tcp://...) checked the way Dask will read it: a host, a port from 1 to
    65535 and nothing else. A user:password@ part is refused without being echoed: Dask
    has no use for it and would print it in its own errors."""
    from urllib.parse import urlsplit

    example = "e.g. --cluster tcp://10.0.0.5:8786 (IPv6: tcp://[::1]:8786)"
    if "@" in value:
        raise ClusterError(
            "--cluster: a Dask scheduler address cannot carry a user name or password "
            "(user:password@ before the host); give tcp://HOST:PORT",
            hint=example,
        )
    shown = repr(value)
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # "[::1" (unclosed IPv6 bracket), a port not a number
        raise ClusterError(
            f"--cluster {shown}: not a scheduler address ({exc})", hint=example
        ) from None
    if not host or port is None or not 1 <= port <= 65535:
        raise ClusterError(
            f"--cluster {shown}: a scheduler address needs a host and a port from 1 to 65535 "
            "(tcp://HOST:PORT)",
            hint=example,
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ClusterError(
            f"--cluster {shown}: a scheduler address is only tcp://HOST:PORT, nothing after "
            "the port",
            hint=example,
        )
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def require_dask() -> None:
    """Fail with one line naming the install command when the `dask` extra is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ClusterError(
            f"--cluster needs Dask distributed, which is not installed ({exc})",
            hint=f"install it with: {INSTALL_HINT}",
        ) from None


def split_budgets(settings: Settings, threads: int) -> Settings:
    """--per-host and --rate are budgets of the whole job: each of `threads` shard runners
    (one per worker thread) gets an equal share, at least one connection."""
    n = max(1, threads)
    rate = settings.rate / n if settings.rate > 0 else 0.0
    return dataclasses.replace(settings, per_host=max(1, settings.per_host // n), rate=rate)


# -- worker side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardResult:
    """What one shard sends back: its records, and whether every image of it was done."""

    shard_id: int
    records: list[Record]
    complete: bool


_FETCHERS: dict[tuple[Settings, int], Fetcher] = {}
_FETCHERS_LOCK = threading.Lock()


def _fetcher_for(settings: Settings) -> Fetcher:
    """One fetcher (one connection pool, one set of per-host caps) per worker thread and
    settings, made on first use in the worker process and kept for the next shards."""
    from retailpulse_cli.processing.fetch import Fetcher

    key = (settings, threading.get_ident())
    with _FETCHERS_LOCK:
        fetcher = _FETCHERS.get(key)
        if fetcher is None:
            if len(_FETCHERS) >= 16:  # jobs with other settings came and went
                _FETCHERS.pop(next(iter(_FETCHERS))).close()
            fetcher = _FETCHERS[key] = Fetcher(settings)
    return fetcher


def _run_tasks_locally(
    tasks: list[ImageTask], settings: Settings, base_dir: Path, fetcher: Fetcher, stop: StopFlag
) -> tuple[list[Record], bool]:
    """The single-process pipeline (both stages) on one shard."""
    from retailpulse_cli.processing.pipeline import Pipeline

    records: list[Record] = []
    store = _store_for(settings.save_images) if settings.save_images else None
    keep = None
    if store is not None:
        from retailpulse_cli.processing.download import store_keep

        keep = store_keep(store, settings, stop)  # each worker writes its own images
    # unknown stores were recorded by the driver and never sent
    pipeline = Pipeline(settings, fetcher, base_dir, stop, keep=keep)
    complete = pipeline.run(tasks, records.append, lambda: None)
    if store is not None:
        store.flush()  # durable before the driver fsyncs the records that name them
    return records, complete


@functools.lru_cache(maxsize=4)
def _store_for(dest: str) -> ImageStore:
    """One image store per destination in a worker process, kept for the next shards."""
    from retailpulse_cli.storage.image_archive import open_store

    return open_store(dest)


def _watch_stop(event_name: str, stop: StopFlag, fetcher: Fetcher) -> Callable[[], None]:
    """Poll the job's stop Event (set by the driver on Ctrl-C/SIGTERM); return `done`."""
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
                stop.request("stop")
                fetcher.watchdog.abort_all()  # cut downloads in flight; resume redoes them
                return

    threading.Thread(target=poll, name="rp-stop-watch", daemon=True).start()
    return finished.set


def run_shard(
    tasks: list[ImageTask], settings: Settings, base_dir: Path, shard_id: int, stop_name: str
) -> ShardResult:
    """A Dask task: run one shard's images in this worker process; plain data in and out."""
    from retailpulse_cli.processing.download import StopFlag

    stop = StopFlag()
    fetcher = _fetcher_for(settings)
    fetcher.stop = stop  # this thread's fetcher serves one shard at a time
    done = _watch_stop(stop_name, stop, fetcher)
    try:
        records, complete = _run_tasks_locally(tasks, settings, base_dir, fetcher, stop)
    finally:
        done()
    return ShardResult(shard_id, records, complete)


def _retailpulse_version() -> str:
    import retailpulse_cli

    return retailpulse_cli.__version__


# -- driver side -----------------------------------------------------------------------------


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
    size: int,
) -> Iterator[list[ImageTask]]:
    """Cut tasks into shards; images of unknown stores are recorded here and never sent."""
    shard: list[ImageTask] = []
    for task in tasks:
        if not is_known(task.store_id):
            from retailpulse_cli.processing.download import unknown_store_record

            sink(unknown_store_record(task))
            continue
        shard.append(task)
        if len(shard) >= size:
            yield shard
            shard = []
    if shard:
        yield shard


# Imported once by the forkserver; each worker process is a fork of it, so neither Dask nor
# the pipeline's imports (requests, Pillow) are paid per worker or on its first shard.
FORKSERVER_PRELOAD = [
    "distributed",
    "retailpulse_cli.processing.dask_engine",
    "retailpulse_cli.processing.pipeline",
]


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


class _QuietLogs:
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


class DaskEngine:
    """Runs jobs on a Dask cluster: a LocalCluster of N processes, or a running scheduler."""

    def __init__(self, spec: ClusterSpec, *, shard_size: int = DEFAULT_SHARD_SIZE) -> None:
        self.spec = spec
        self.shard_size = max(1, shard_size)
        self.client: Any = None
        self.cluster: Any = None
        self.quiet = _QuietLogs()

    def __enter__(self) -> DaskEngine:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Start or reach the cluster, then check every worker runs our version. Whatever
        Dask raises on the way is one ClusterError (exit 2), never an internal error."""
        require_dask()
        self.quiet.enter()  # from here on, the CLI's stderr stays ours
        try:
            self._connect()
        except BaseException as exc:  # Ctrl-C while starting, too: nothing left running
            self.close()
            if isinstance(exc, ClusterError) or not isinstance(exc, Exception):
                raise
            raise self._unreachable(exc) from None
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
            self.client = distributed.Client(self.spec.address, timeout="10s")
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
        try:
            theirs: dict[str, str] = self.client.run(_retailpulse_version)
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

    def threads(self) -> int:
        return max(1, int(sum(self.client.nthreads().values())))

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
    ) -> bool:
        """As `runner.run`, on the cluster. Return True when every task is done."""
        return _DriverRun(self, settings, base_dir, sink, tick, stop, name).run(
            _shards(tasks, is_known, sink, self.shard_size)
        )


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
        threads = engine.threads()
        self.cap = 2 * threads  # shards in flight: the driver's memory stays flat
        self.settings = split_budgets(settings, threads)
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

    def submit(self, shard: list[ImageTask]) -> None:
        fn = globals()["run_shard"]  # looked up now, so a test can swap in a crashing shard
        future = self.client.submit(
            fn,
            shard,
            self.settings,
            self.base_dir,
            self.next_id,
            self.stop_name,
            pure=False,
            retries=1,
        )
        self.pending[future] = shard
        self.next_id += 1

    def run(self, shards: Iterator[list[ImageTask]]) -> bool:
        from distributed import wait

        exhausted = False
        stopped_at: float | None = None
        last_tick = time.monotonic()
        try:
            while True:
                while not exhausted and len(self.pending) < self.cap and not self.stop.is_set():
                    shard = next(shards, None)
                    if shard is None:
                        exhausted = True
                    else:
                        self.submit(shard)
                if not self.pending and (exhausted or self.stop.is_set()):
                    break
                try:
                    done, _ = wait(list(self.pending), timeout=0.2, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                except Exception as exc:  # the client lost its scheduler
                    if not self.stop.is_set():
                        raise self.lost(exc) from None
                    break
                for future in done:
                    self.collect(future)
                now = time.monotonic()
                if now - last_tick >= 0.2:
                    self.tick()
                    last_tick = now
                if self.stop.is_set():
                    if stopped_at is None:
                        stopped_at = now
                        self.event.set()  # running shards stop; queued ones start and end at once
                    elif now - stopped_at > GRACE:
                        break
        finally:
            if self.pending:
                self.undone = True  # left to resume
                try:
                    self.client.cancel(list(self.pending))
                except Exception:  # the scheduler is gone, and its tasks with it
                    logging.getLogger(__name__).debug("cancel failed", exc_info=True)
        self.tick()
        return exhausted and not self.undone and not self.stop.is_set()

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
