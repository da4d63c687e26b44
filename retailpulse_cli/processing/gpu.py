"""The GPU stage: what it takes of an image, and a simulated model.

The stage is called with a batch of items (index and measured size; the bytes only for a
stage that asks for them), never with a worker thread, so a real model can take several
images per call. The pipeline keeps at most `slots` images in the stage at once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from retailpulse_cli.config.settings import Settings
from retailpulse_cli.processing.download import gpu_delay
from retailpulse_cli.processing.imaging import Size


@dataclass(frozen=True)
class GpuItem:
    """What the model gets of one image."""

    index: int
    size: Size
    data: bytes | None = None  # set only when the stage's `needs_bytes` is true


class GpuStage(Protocol):
    slots: int  # images in the stage at once (--workers)
    batch: int  # most images per `run` call
    needs_bytes: bool  # hand it the image bytes (they then count in the buffer's byte bound)
    instant: bool  # run() returns at once (no model time): called in the scheduling thread

    def run(self, items: Sequence[GpuItem]) -> list[dict[str, Any] | None]:
        """One result per item: extra record fields, or None for an image the stage did
        not finish (stopped): it stays undone and is done again on resume."""
        ...


class SimulatedGpu:
    """Sleeps `gpu_delay(settings, index)` per image: the stand-in for a vision model.
    Counts the images inside `run` at once (`most_active`), for tests and the benchmark."""

    needs_bytes = False
    batch = 1

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.slots = settings.workers
        # --gpu-delay 0: a hand-off to a GPU thread per image would cost more than the
        # "model" (~30 us of CPU per image, measured), for nothing.
        self.instant = settings.gpu_delay[1] <= 0
        self.stop = stop
        self.active = 0
        self.most_active = 0
        self.images = 0
        self._lock = threading.Lock()

    def run(self, items: Sequence[GpuItem]) -> list[dict[str, Any] | None]:
        with self._lock:
            self.active += len(items)
            self.most_active = max(self.most_active, self.active)
            self.images += len(items)
        try:
            return [self._one(item) for item in items]
        finally:
            with self._lock:
                self.active -= len(items)

    def _one(self, item: GpuItem) -> dict[str, Any] | None:
        delay = gpu_delay(self.settings, item.index)
        if delay and self.stop.wait(delay):
            return None  # the 'model' did not finish: undone
        return {}
