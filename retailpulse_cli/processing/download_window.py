"""How many downloads the pipeline keeps in flight: sized from the work, not fixed.

By Little's law the downloads in flight are the rate images leave the stage times the time
one takes. The window starts at one download per GPU slot (the GPU stage takes that many at
once). While the GPU stage waits for images and the window is what holds downloads back
(not the buffer or the end of the job), it widens: at once to what the GPU stage needs
(twice its measured rate x the typical download time), never past it; while the need is
unknown (a GPU stage without model time, or before its first batch), by doubling, kept
only while completions per second rise by PAYS. When doubling does not pay (the stage is
bound by the CPU, as on a fast network, where more downloads at once only share the
cores), it goes back and tries again later, less often each time.

Downloads that wait on a slow or hanging host (running far longer than the typical one:
a URL that never answers, a host holding requests back after a 429) do not count against
the window: each gets a replacement, up to --downloads, so they cost slots, not the run.
Only the pipeline's scheduling thread calls this: no locks.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Hashable

# A download counts as waiting on a slow host once it has run SLOW_FACTOR x the typical
# (lower-quartile) download time, and at least SLOW_FLOOR: well past the spread of healthy
# downloads on a busy machine, well inside a 1 s Retry-After hold of a host.
SLOW_FACTOR = 8
SLOW_FLOOR = 0.25
PAYS = 1.15  # a widening is kept when completions per second rose by this much
# A measurement lasts at least WINDOW_MIN and 4 x window completions (at least 32), at
# most WINDOW_MAX: at 0.1 s and 2 x, rates of the same window size on a busy machine
# varied by +-15 %, as much as PAYS. The first one is warm-up (connections opening).
WINDOW_MIN = 0.2
WINDOW_MAX = 1.0
REPROBE_FIRST, REPROBE_MOST = 1.0, 8.0  # seconds before widening is tried again
RECENT = 64  # download times kept for the typical one
GPU_HEADROOM = 2.0  # the GPU stage's rate x download time, times this, is the most needed


class DownloadWindow:
    """The number of downloads to keep in flight; fed by the pipeline's scheduling thread."""

    def __init__(self, slots: int, most: int) -> None:
        now = time.monotonic()
        self.paced = max(1, min(slots, most))  # the window before slow-host replacements
        self.most = most
        self.slots = slots
        self.in_flight: dict[Hashable, float] = {}  # started at, in start order
        self.recent: deque[float] = deque(maxlen=RECENT)
        self.gpu_seconds: float | None = None  # a GPU slot's time per batch, smoothed
        self.widest = self.paced  # the most the window reached (tests, the benchmark)
        self._stuck = 0
        self._stuck_at = 0.0
        self._warm = False
        self._probe: tuple[int, float] | None = None  # (window before, its rate)
        self._next_probe = now
        self._reprobe = REPROBE_FIRST
        self._window_start(now)

    def _window_start(self, now: float) -> None:
        self._since = now
        self._done = 0
        self._held_by_window = 0
        self._held_otherwise = 0
        self._gpu_waited = False

    # -- what the pipeline reports -------------------------------------------------------

    def started(self, key: Hashable, now: float) -> None:
        self.in_flight[key] = now

    def finished(self, key: Hashable, now: float) -> None:
        started = self.in_flight.pop(key, None)
        if started is not None:
            self.recent.append(now - started)
            self._done += 1

    def held(self, *, by_window: bool) -> None:
        """Submission stopped: because of the window, or of something else (the buffer is
        full, the job has no more images): only the first says more downloads would help."""
        if by_window:
            self._held_by_window += 1
        else:
            self._held_otherwise += 1

    def gpu_waited(self) -> None:
        """A GPU slot found no image waiting (an instant GPU stage always says so)."""
        self._gpu_waited = True

    def gpu_batch(self, seconds: float) -> None:
        prev = self.gpu_seconds
        self.gpu_seconds = seconds if prev is None else 0.8 * prev + 0.2 * seconds

    # -- the answer ------------------------------------------------------------------------

    def limit(self, now: float) -> int:
        """Downloads allowed in flight now."""
        self._judge(now)
        return min(self.most, self.paced + self._slow(now))

    def typical(self) -> float | None:
        """The lower-quartile time of recent downloads: the healthy ones' pace."""
        if len(self.recent) < 8:
            return None
        return sorted(self.recent)[len(self.recent) // 4]

    def _slow(self, now: float) -> int:
        """Downloads in flight for longer than a healthy one takes; counted every 20 ms
        (the oldest come first, so the count stops at the first young one)."""
        if now - self._stuck_at < 0.02:
            return self._stuck
        typical = self.typical()
        after = max(SLOW_FLOOR, SLOW_FACTOR * typical) if typical is not None else SLOW_FLOOR
        stuck = 0
        for started in self.in_flight.values():
            if now - started < after:
                break
            stuck += 1
        self._stuck, self._stuck_at = stuck, now
        return stuck

    def _needed(self) -> int | None:
        """Twice what the GPU stage can take: its rate x the download time (None: not known
        yet, or no model time)."""
        if self.gpu_seconds is None or self.gpu_seconds <= 0:
            return None  # checked first: `typical` sorts, and this runs on every call
        typical = self.typical()
        if typical is None:
            return None
        rate = self.slots / self.gpu_seconds
        return max(1, math.ceil(GPU_HEADROOM * rate * typical))

    def _widen_to_need(self, now: float) -> bool:
        """The GPU stage waits and the window is below what it needs: widen to that at
        once (no probe: Little's law says it is needed, e.g. when a host holds requests
        back after a 429 and every download takes a second)."""
        needed = self._needed()
        if needed is None or needed <= self.paced or self.paced >= self.most:
            return False
        self.paced = min(self.most, needed)
        self.widest = max(self.widest, self.paced)
        self._probe = None
        self._window_start(now)
        return True

    def _judge(self, now: float) -> None:
        elapsed = now - self._since
        if elapsed < WINDOW_MIN:
            return
        starved = self._gpu_waited and self._held_by_window > self._held_otherwise
        if starved and self._widen_to_need(now):
            return
        if self._done < max(32, 4 * self.paced) and elapsed < WINDOW_MAX:
            return
        rate = self._done / elapsed
        warm, self._warm = self._warm, True
        self._window_start(now)
        if not warm or not starved:
            self._probe = None  # the GPU stage has what it needs: nothing to judge
            return
        if self._probe is not None:
            before, before_rate = self._probe
            self._probe = None
            if rate < PAYS * before_rate:
                self.paced = before  # it did not pay: back, and try again later
                self._next_probe = now + self._reprobe
                self._reprobe = min(REPROBE_MOST, 2 * self._reprobe)
                return
            self._reprobe = REPROBE_FIRST
        needed = self._needed()
        if now < self._next_probe or self.paced >= self.most:
            return
        if needed is None or self.paced < needed:
            self._probe = (self.paced, rate)
            self.paced = min(self.most, 2 * self.paced)
            self.widest = max(self.widest, self.paced)
