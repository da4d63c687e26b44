"""The download stage's unit of work (fetch -> measure -> optional keep) and the records.

Plain functions of plain data: an ImageTask in, a Measured image, a failed record, a
Later (retry after a back-off) or None (stopped) out. `pipeline.Pipeline` drives them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retailpulse_cli.config.settings import Settings
from retailpulse_cli.model import Record
from retailpulse_cli.processing.fetch import Fetcher, FetchFailure, RetryLater, Tries, redact, scrub
from retailpulse_cli.processing.imaging import ImageFailure, Size, measure
from retailpulse_cli.processing.spec import ImageTask
from retailpulse_cli.processing.tally import STORE_NOT_FOUND
from retailpulse_cli.storage.image_archive import ImageStore, StoreFailed


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


class KeepFailure(Exception):
    """Raised by a `keep` step (e.g. storing the bytes) to fail one image with a code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# The seam after measure: given the task, its bytes and size, return extra record fields
# (e.g. sha256, stored_as) or raise KeepFailure. Runs in the download stage, so bytes are
# not held through the GPU pause.
Keep = Callable[[ImageTask, bytes, Size], dict[str, Any]]


def store_keep(store: ImageStore, settings: Settings, stop: threading.Event) -> Keep:
    """The keep step of --save-images: store the bytes as downloaded; the record gets
    sha256, bytes and stored_as. A transient failure is tried again like a network one
    (--retries, the same back-off); then, or at once for a permanent one, store_failed."""

    def keep(task: ImageTask, data: bytes, size: Size) -> dict[str, Any]:
        for attempt in range(settings.retries + 1):
            try:
                stored = store.put(data, size.format)
            except StoreFailed as exc:
                pause = min(settings.backoff_max, settings.backoff * 2**attempt)
                if not exc.retryable or attempt == settings.retries or stop.wait(pause):
                    raise KeepFailure(exc.code, exc.message) from None
                continue
            return {"sha256": stored.sha256, "bytes": stored.bytes, "stored_as": stored.stored_as}
        raise AssertionError("unreachable: the last attempt returns or raises")

    return keep


@dataclass
class Measured:
    """A downloaded, measured image waiting for the GPU stage: plain data."""

    task: ImageTask
    size: Size
    attempts: int
    started: float  # monotonic, when its first attempt began
    fields: dict[str, Any] = field(default_factory=dict)  # from `keep`
    data: bytes | None = None  # only for a GPU stage that needs the bytes

    @property
    def nbytes(self) -> int:
        return len(self.data) if self.data is not None else 0

    def record(self, extra: dict[str, Any]) -> Record:
        """The finished image's record: `extra` are the GPU stage's fields."""
        rec = base_record(self.task)
        size = self.size
        rec.update(
            status="ok",
            width=size.width,
            height=size.height,
            perimeter=size.perimeter,
            format=size.format,
        )
        rec.update(self.fields)
        rec.update(extra)
        return finish(rec, self.attempts, self.started)


def finish(rec: Record, attempts: int, started: float) -> Record:
    rec["attempts"] = attempts
    rec["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    return rec


def failed(task: ImageTask, code: str, message: str, attempts: int, started: float) -> Record:
    rec = base_record(task)
    rec.update(status="failed", error_code=code, error=message)
    return finish(rec, attempts, started)


@dataclass(frozen=True)
class Download:
    """What the download stage needs besides the task; picklable but for the fetcher."""

    fetcher: Fetcher
    settings: Settings
    base_dir: Path
    stop: threading.Event
    keep: Keep | None = None
    keep_bytes: bool = False  # hand the bytes on to the GPU stage (counted in the buffer)

    def __call__(self, task: ImageTask, tries: Tries | None) -> Measured | Record | Later | None:
        """Fetch and measure one image. None means undone (stopped); Later means a
        transient failure whose next attempt is due after a back-off."""
        if self.stop.is_set():
            return None
        started = tries.started if tries is not None else time.monotonic()
        attempts = 0
        try:
            data, attempts = self.fetcher.fetch(task.url, self.base_dir, tries)
            size = measure(data, max_pixels=self.settings.max_pixels)
            fields = self.keep(task, data, size) if self.keep is not None else {}
        except RetryLater as later:
            return Later(task, later.not_before, later.tries)
        except FetchFailure as failure:
            if self.stop.is_set():
                return None  # cut short by Ctrl-C: do it again on resume, not a failure
            return failed(task, failure.code, failure.message, failure.attempts, started)
        except KeepFailure as failure:
            if self.stop.is_set():
                return None  # a store retry cut short by Ctrl-C: undone, redone on resume
            return failed(task, failure.code, failure.message, attempts, started)
        except ImageFailure as failure:
            return failed(task, failure.code, failure.message, attempts, started)
        except Exception as exc:  # a bug must cost one image, not the job
            return failed(task, "internal_error", scrub(repr(exc), task.url), attempts, started)
        return Measured(task, size, attempts, started, fields, data if self.keep_bytes else None)
