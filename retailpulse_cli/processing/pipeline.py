"""Two stages with their own concurrency: downloads run ahead of the GPU stage.

    tasks -> download stage (--downloads threads: fetch, measure, optional keep)
          -> bounded buffer (count and bytes) -> GPU stage (--workers slots) -> records

The calling thread schedules both stages and hands every record to `sink`; it is the one
thread that sees results, so the caller (the job directory's one writer, or a Dask task
returning a shard's records) needs no locks. A hanging URL holds a download slot, never a
GPU slot. Nothing here knows about job directories: a Pipeline is plain settings, a
fetcher, the job file's base folder and a stop flag, so it can run inside any process.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retailpulse_cli.config.settings import Settings
from retailpulse_cli.model import Record
from retailpulse_cli.processing.download import (
    Download,
    Keep,
    Later,
    Measured,
    failed,
    unknown_store_record,
)
from retailpulse_cli.processing.download_window import DownloadWindow
from retailpulse_cli.processing.fetch import Fetcher, Tries, scrub
from retailpulse_cli.processing.gpu import GpuItem, GpuStage, SimulatedGpu
from retailpulse_cli.processing.spec import ImageTask

MAX_WAITING_RETRIES = 10_000  # ~3 MB; beyond it new images wait for retries to drain
# Measured images waiting per GPU slot, so a slot that frees up finds its next image. 1, 2
# and 4 per slot measured the same within noise (bench/faulty.py and the 1,000-image GPU
# curve); 2 keeps the run-ahead, and the memory it holds, small.
BUFFER_PER_SLOT = 2
BUFFER_BYTES = 256 * 1024 * 1024  # when the GPU stage takes bytes: stop downloading past it
TICK_SECONDS = 0.2


@dataclass
class Pools:
    """The download threads and the GPU slots; shared by several jobs run at once."""

    download: Executor
    gpu_slots: threading.Semaphore

    @classmethod
    def for_settings(cls, downloads: int, workers: int) -> Pools:
        return cls(
            ThreadPoolExecutor(downloads, thread_name_prefix="rp-download"),
            threading.BoundedSemaphore(workers),
        )

    def shutdown(self) -> None:
        # No waiting: a download stuck in a DNS lookup must not hold up the exit.
        self.download.shutdown(wait=False, cancel_futures=True)


class _Feed:
    """The buffer between the stages. GPU threads take from it themselves, so a free GPU
    slot does not wait for the scheduling thread to hand it the next image."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: deque[Measured] = deque()
        self.nbytes = 0
        self.waits = 0  # times a GPU slot found it empty: the GPU stage waited for images
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Measured) -> None:
        with self._cond:
            self._items.append(item)
            self.nbytes += item.nbytes
            self._cond.notify()

    def take(self, most: int) -> list[Measured] | None:
        """Up to `most` images, waiting for one; None once closed."""
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                self.waits += 1
                self._cond.wait()
            batch = [self._items.popleft() for _ in range(min(most, len(self._items)))]
            self.nbytes -= sum(m.nbytes for m in batch)
            return batch

    def close(self) -> int:
        """End the GPU threads; return how many images were left in it (undone)."""
        with self._cond:
            self._closed = True
            left = len(self._items)
            self._items.clear()
            self.nbytes = 0
            self._cond.notify_all()
            return left


@dataclass
class GpuDone:
    """A finished GPU batch: its images and one result (or None) per image."""

    items: list[Measured]
    results: list[dict[str, Any] | None]
    error: str | None = None  # the stage raised: every image of the batch failed
    seconds: float = 0.0  # how long the batch held its GPU slot


@dataclass
class Counts:
    """The most there ever were at once; read by tests and the benchmark."""

    downloading: int = 0  # downloads in flight
    window: int = 0  # the widest the download window was sized (slow-host replacements aside)
    held: int = 0  # downloads in flight + measured images waiting in the buffer
    buffered_bytes: int = 0


@dataclass
class _State:
    """One run's schedule: what is where. Only the calling thread touches it."""

    pending: Iterator[ImageTask]
    sink: Callable[[Record], None]
    window: DownloadWindow
    exhausted: bool = False
    downloading: int = 0
    feed: _Feed = field(default_factory=_Feed)
    feed_waits: int = 0  # the feed's `waits` when last looked at
    on_exhausted: Callable[[], None] | None = None
    measured: int = 0  # in the feed or in the GPU stage
    waiting: list[tuple[float, int, Later]] = field(default_factory=list)  # retries by due time
    undone: int = 0
    stopped_at: float | None = None
    last_tick: float = field(default_factory=time.monotonic)

    @property
    def in_flight(self) -> int:
        return self.downloading + self.measured

    def drained(self) -> bool:
        return self.exhausted and not self.in_flight and not self.waiting


class Pipeline:
    """Runs image tasks through the download stage and the GPU stage in this process."""

    def __init__(
        self,
        settings: Settings,
        fetcher: Fetcher,
        base_dir: Path,
        stop: threading.Event,
        *,
        is_known: Callable[[str], bool] | None = None,
        gpu: GpuStage | None = None,
        keep: Keep | None = None,
        pools: Pools | None = None,
        grace: float = 2.0,
    ) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.stop = stop
        self.is_known = is_known or (lambda _store: True)
        self.gpu: GpuStage = gpu or SimulatedGpu(settings, stop)
        self.download = Download(fetcher, settings, base_dir, stop, keep, self.gpu.needs_bytes)
        self.pools = pools
        self.grace = grace
        # Images between the network and the GPU: downloads in flight plus the buffer.
        self.hold = settings.downloads + BUFFER_PER_SLOT * self.gpu.slots
        self.counts = Counts()
        self._done: queue.SimpleQueue[Future[Any] | GpuDone] = queue.SimpleQueue()
        self._order = itertools.count()
        self._aborted = False

    def run(
        self,
        tasks: Iterable[ImageTask],
        sink: Callable[[Record], None],
        tick: Callable[[], None],
        *,
        on_exhausted: Callable[[], None] | None = None,
    ) -> bool:
        """Pass each image's record to `sink` (in this thread); call `tick` about every
        0.2 s, and `on_exhausted` once every task has been taken (only the tail of the run
        is left). Images that asked to be tried again later wait in a heap, not in a
        download slot, and go before new images once due. Return True when every task is
        done."""
        window = DownloadWindow(self.gpu.slots, self.settings.downloads)
        state = _State(iter(tasks), sink, window, on_exhausted=on_exhausted)
        own = self.pools is None
        pools = self.pools or Pools.for_settings(self.settings.downloads, self.gpu.slots)
        if not self.gpu.instant:
            for i in range(max(1, self.gpu.slots // self.gpu.batch)):
                name = f"rp-gpu-{i}"
                args = (state.feed, pools.gpu_slots)
                threading.Thread(target=self._gpu_loop, args=args, name=name, daemon=True).start()
        try:
            while not self._step(state, pools, tick):
                pass
        finally:
            state.feed.close()
            if own:
                pools.shutdown()
        tick()
        return state.drained() and not state.undone

    def _step(self, state: _State, pools: Pools, tick: Callable[[], None]) -> bool:
        """One round of scheduling; True when the run is over."""
        if not self.stop.is_set():
            self._feed_downloads(state, pools)
        elif not state.in_flight:
            self._abandon_queued(state)
            return True
        if state.drained():
            return True
        self._take_one(state)
        now = time.monotonic()
        if now - state.last_tick >= TICK_SECONDS:
            tick()
            state.last_tick = now
        return self._grace_over(state, now)

    # -- admission -------------------------------------------------------------------------

    def _gpu_loop(self, feed: _Feed, slots: threading.Semaphore) -> None:
        """One GPU slot: take images from the feed, run them, report; until closed."""
        while (batch := feed.take(self.gpu.batch)) is not None:
            with slots:
                began = time.monotonic()
                done = self._run_gpu(batch)
                done.seconds = time.monotonic() - began
            self._done.put(done)

    def _room(self, state: _State, limit: int) -> bool:
        return (
            state.downloading < limit
            and state.downloading + len(state.feed) < self.hold
            and state.feed.nbytes < BUFFER_BYTES
        )

    def _feed_downloads(self, state: _State, pools: Pools) -> None:
        now = time.monotonic()
        window = state.window
        if self.gpu.instant or state.feed.waits != state.feed_waits:
            state.feed_waits = state.feed.waits
            window.gpu_waited()
        limit = window.limit(now)
        while state.waiting and state.waiting[0][0] <= now and self._room(state, limit):
            later = heapq.heappop(state.waiting)[2]
            self._submit_download(state, pools, later.task, later.tries, now)
        while (
            not state.exhausted
            and len(state.waiting) < MAX_WAITING_RETRIES
            and self._room(state, limit)
        ):
            task = next(state.pending, None)
            if task is None:
                state.exhausted = True
                if state.on_exhausted is not None:
                    state.on_exhausted()
            elif not self.is_known(task.store_id):
                state.sink(unknown_store_record(task))  # never touches the network
            else:
                self._submit_download(state, pools, task, None, now)
        more = not state.exhausted or bool(state.waiting)
        window.held(by_window=more and state.downloading >= limit)
        self.counts.window = max(self.counts.window, window.widest)

    def _submit_download(
        self, state: _State, pools: Pools, task: ImageTask, tries: Tries | None, now: float
    ) -> None:
        future = pools.download.submit(self.download, task, tries)
        state.window.started(future, now)
        future.add_done_callback(self._done.put)
        state.downloading += 1
        c = self.counts
        c.downloading = max(c.downloading, state.downloading)
        c.held = max(c.held, state.downloading + len(state.feed))

    def _run_gpu(self, batch: list[Measured]) -> GpuDone:
        items = [GpuItem(m.task.image_index, m.size, m.data) for m in batch]
        for m in batch:
            m.data = None  # the stage has them now; not held past it
        try:
            results = self.gpu.run(items)
        except Exception as exc:  # a bug in a model must cost its batch, not the job
            return GpuDone(batch, [None] * len(batch), scrub(repr(exc), batch[0].task.url))
        return GpuDone(batch, list(results))

    # -- completion ------------------------------------------------------------------------

    def _take_one(self, state: _State) -> None:
        timeout = TICK_SECONDS
        if state.waiting:
            timeout = min(timeout, max(0.0, state.waiting[0][0] - time.monotonic()))
        try:
            item = self._done.get(timeout=timeout)
        except queue.Empty:
            return
        if isinstance(item, GpuDone):
            state.measured -= len(item.items)
            state.window.gpu_batch(item.seconds)
            self._gpu_finished(state, item)
        else:
            state.window.finished(item, time.monotonic())
            self._download_finished(state, item.result())

    def _download_finished(self, state: _State, result: Measured | Record | Later | None) -> None:
        state.downloading -= 1
        if result is None:
            state.undone += 1
        elif isinstance(result, Later):
            heapq.heappush(state.waiting, (result.not_before, next(self._order), result))
        elif isinstance(result, Measured) and self.gpu.instant:
            self._gpu_finished(state, self._run_gpu([result]))
        elif isinstance(result, Measured):
            state.feed.put(result)
            state.measured += 1
            self.counts.buffered_bytes = max(self.counts.buffered_bytes, state.feed.nbytes)
        else:
            state.sink(result)

    def _gpu_finished(self, state: _State, done: GpuDone) -> None:
        for m, extra in zip(done.items, done.results, strict=True):
            if done.error is not None:
                state.sink(failed(m.task, "internal_error", done.error, m.attempts, m.started))
            elif extra is None:
                state.undone += 1
            else:
                state.sink(m.record(extra))

    # -- stopping --------------------------------------------------------------------------

    def _abandon_queued(self, state: _State) -> None:
        """Images measured or waiting for a retry are not run now: resume does them."""
        left = state.feed.close()
        state.measured -= left
        state.undone += left + len(state.waiting)
        state.waiting.clear()

    def _grace_over(self, state: _State, now: float) -> bool:
        if not self.stop.is_set():
            return False
        if not self._aborted:
            self._aborted = True
            self.fetcher.watchdog.abort_all()  # cut downloads in flight: redone on resume
        state.stopped_at = state.stopped_at or now
        if now - state.stopped_at <= self.grace:
            return False
        self._abandon_queued(state)
        state.undone += state.in_flight  # in-flight images stay undone; resume redoes them
        return True
