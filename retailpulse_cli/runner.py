"""Runs images through a worker pool: fetch -> measure -> simulated GPU delay.

The unit of work is a plain function of plain data (an ImageTask in, a result record out),
handed to a `concurrent.futures` executor; the calling thread is the one writer. A
different executor (e.g. dask.distributed's) can be passed without touching the rest.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fetch import Fetcher, FetchFailure, RetryLater, Tries, redact, scrub
from .imaging import ImageFailure, measure
from .settings import Settings
from .spec import ImageTask
from .tally import STORE_NOT_FOUND

Record = dict[str, Any]


class StopFlag(threading.Event):
    """Set by a signal handler; `reason` says which ("SIGINT", "SIGTERM", ...)."""

    reason: str | None = None

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.set()


def gpu_delay(settings: Settings, index: int) -> float:
    """The simulated GPU time of one image; with --seed it depends only on seed and index,
    so a run is reproducible whatever order the threads finish in."""
    lo, hi = settings.gpu_delay
    if hi <= 0:
        return 0.0
    if settings.seed is None:
        return random.uniform(lo, hi)
    return random.Random(settings.seed * 1_000_003 + index).uniform(lo, hi)


def base_record(task: ImageTask) -> Record:
    return {
        "index": task.image_index,
        "visit": task.visit,
        "store_id": task.store_id,
        "visit_time": task.visit_time,
        "image_url": redact(task.url),
    }


def unknown_store_record(task: ImageTask) -> Record:
    rec = base_record(task)
    rec.update(
        status="failed",
        error_code=STORE_NOT_FOUND,
        error=f"store id {task.store_id} is not in the store master; image not downloaded",
        attempts=0,
    )
    return rec


@dataclass(frozen=True)
class Later:
    """An image to try again once `not_before` (monotonic) has passed."""

    task: ImageTask
    not_before: float
    tries: Tries


def process_image(
    task: ImageTask,
    tries: Tries | None = None,
    *,
    base_dir: Path,
    fetcher: Fetcher,
    settings: Settings,
) -> Record | Later | None:
    """Fetch, measure and 'run the model' on one image. None means undone (stopped);
    Later means a transient failure whose next attempt is due after a back-off."""
    stop = fetcher.stop
    if stop.is_set():
        return None
    started = tries.started if tries is not None else time.monotonic()
    rec = base_record(task)
    attempts = 0
    try:
        data, attempts = fetcher.fetch(task.url, base_dir, tries)
        size = measure(data, max_pixels=settings.max_pixels)
        del data  # not held through the GPU pause: 128 sleeping workers x 300 KB adds up
    except RetryLater as later:
        return Later(task, later.not_before, later.tries)
    except FetchFailure as failure:
        if stop.is_set():
            return None  # cut short by Ctrl-C: do it again on resume, not a failure
        rec.update(status="failed", error_code=failure.code, error=failure.message)
        attempts = failure.attempts
    except ImageFailure as failure:
        rec.update(status="failed", error_code=failure.code, error=failure.message)
    except Exception as exc:  # a bug must cost one image, not the job
        rec.update(status="failed", error_code="internal_error", error=scrub(repr(exc), task.url))
    else:
        delay = gpu_delay(settings, task.image_index)
        if delay and stop.wait(delay):
            return None  # the 'model' did not finish: undone
        rec.update(
            status="ok",
            width=size.width,
            height=size.height,
            perimeter=size.perimeter,
            format=size.format,
        )
    rec["attempts"] = attempts
    rec["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    return rec


MAX_WAITING_RETRIES = 10_000  # ~3 MB; beyond it new images wait for retries to drain


def run(
    tasks: Iterable[ImageTask],
    *,
    work: Callable[[ImageTask, Tries | None], Record | Later | None],
    is_known: Callable[[str], bool],
    sink: Callable[[Record], None],
    tick: Callable[[], None],
    workers: int,
    stop: StopFlag,
    executor: Executor | None = None,
    grace: float = 2.0,
) -> bool:
    """Feed tasks to the pool with a bounded number in flight; pass each record to `sink`
    (in this thread); call `tick` about every 0.2 s. Images that asked to be tried again
    later wait in a heap, not in a worker, and go before new images once due.
    Return True when every task is done."""
    own = executor is None
    pool = executor or ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rp-worker")
    done: queue.SimpleQueue[Future[Record | Later | None]] = queue.SimpleQueue()
    in_flight, cap = 0, workers * 2  # bounded: a 200,000-image job holds ~2x workers futures
    waiting: list[tuple[float, int, Later]] = []  # retries by due time
    order = itertools.count()
    pending = iter(tasks)
    exhausted = False
    undone = 0
    stopped_at: float | None = None
    last_tick = time.monotonic()

    def submit(task: ImageTask, tries: Tries | None) -> None:
        nonlocal in_flight
        pool.submit(work, task, tries).add_done_callback(done.put)
        in_flight += 1

    try:
        while True:
            now = time.monotonic()
            while waiting and waiting[0][0] <= now and in_flight < cap and not stop.is_set():
                later = heapq.heappop(waiting)[2]
                submit(later.task, later.tries)
            while (
                not exhausted
                and in_flight < cap
                and len(waiting) < MAX_WAITING_RETRIES
                and not stop.is_set()
            ):
                task = next(pending, None)
                if task is None:
                    exhausted = True
                elif not is_known(task.store_id):
                    sink(unknown_store_record(task))
                else:
                    submit(task, None)
            if stop.is_set() and in_flight == 0:
                undone += len(waiting)  # not retried now: resume does them again
                waiting.clear()
                break
            if in_flight == 0 and not waiting and exhausted:
                break
            timeout = 0.2 if not waiting else min(0.2, max(0.0, waiting[0][0] - now))
            try:
                future = done.get(timeout=timeout)
            except queue.Empty:
                future = None
            if future is not None:
                in_flight -= 1
                result = future.result()
                if result is None:
                    undone += 1
                elif isinstance(result, Later):
                    heapq.heappush(waiting, (result.not_before, next(order), result))
                else:
                    sink(result)
            now = time.monotonic()
            if now - last_tick >= 0.2:
                tick()
                last_tick = now
            if stop.is_set():
                stopped_at = stopped_at or now
                if now - stopped_at > grace:
                    break  # in-flight images stay undone; resume does them again
    finally:
        if own:
            pool.shutdown(wait=False, cancel_futures=True)
    tick()
    return exhausted and in_flight == 0 and undone == 0 and not waiting
