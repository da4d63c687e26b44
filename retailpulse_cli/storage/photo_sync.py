"""Make the photos a job stored durable, paying only for our own writes (issue 21).

A download thread writes a photo under a temp name and hands it to the folder's `Syncer`;
a background thread takes everything handed over since its last round and, in one batch:
fdatasyncs each temp file, renames it to its final name, and fsyncs the folders that got new
names (and the parents of new folders). A power cut therefore never finds a final name over
bytes that were not on disk, and a photo counts as durable only once its name is.

Why not syncfs(2), which covered everything in one call before: it waits for every dirty
page of the file system, other programs' too, so a job on a shared disk was paced by its
neighbours (with a `dd` beside it: 0.36x of the throughput without saving, now 0.54x). Why a
batch off the download threads: they never wait for the disk, and the fsyncs of a batch run
on a small pool at once, so the journal commits them together. In the whole CLI the fsyncs
cost too little to measure next to the sha256 and the writes (bench/README.md, issue 21).

`HeldRecords` keeps the other half of the promise: a results record that names a stored
photo reaches the results file only after that photo is durable.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

Record = dict[str, Any]
DURABLE_NAMES_KEPT = 50_000  # a bounded memory of names this process already made durable
# fsyncs in flight at once: the journal commits concurrent ones together, where one thread
# paid a commit and a disk flush per file (~10x slower; bench/storage_bench.py --durability).
SYNC_THREADS = 8
# A round waits this long for more photos first: fewer, larger batches share folder fsyncs.
BATCH_SECONDS = 0.1

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _sync_pool() -> ThreadPoolExecutor:
    """The process's fsync threads, shared by every folder (made again in a forked child)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="rp-photo-sync")
            _pool_pid = os.getpid()
        return _pool


@dataclass(frozen=True)
class Pending:
    """A photo to make durable: written under `temp` (renamed to `final` once its bytes are
    on disk), or, with `temp` None, found already under `final` (another run's or job's)."""

    final: str
    temp: str | None


class Syncer:
    """Batches of `Pending` photos under one folder, made durable by a background thread.

    Tickets: `ticket()` is how many photos were handed over so far; `durable(t)` is True
    once the first `t` are durable. A photo handed over before a record was made is covered
    by any ticket taken after, so a record needs no ticket of its own photo.
    """

    def __init__(self, root: str, on_error: Callable[[OSError, str], Exception]) -> None:
        self.root = root
        self._on_error = on_error
        self._cond = threading.Condition()
        self._queue: list[Pending] = []
        self._in_flight: set[str] = set()  # final names handed over, not yet durable
        self._durable: set[str] = set()  # final names made durable by this syncer
        self._new_dirs: set[str] = {root}  # their entries in their parents need an fsync
        self._handed = 0
        self._done = 0
        self._error: Exception | None = None
        self._running = False
        self._hurry = False  # someone waits for the photos handed over: no batching delay

    def in_flight(self, final: str) -> bool:
        """True when `final` was handed over and is on its way to disk: nothing to write."""
        with self._cond:
            return final in self._in_flight

    def found(self, final: str) -> None:
        """`final` is on disk already: sync it, unless this syncer made it durable itself."""
        with self._cond:
            if final in self._durable:
                return
        self.hand_over(Pending(final, None))

    def new_dir(self, path: str) -> None:
        with self._cond:
            self._new_dirs.add(path)

    def hand_over(self, item: Pending) -> None:
        with self._cond:
            self._queue.append(item)
            self._in_flight.add(item.final)
            self._handed += 1
            if not self._running:
                self._running = True
                threading.Thread(target=self._loop, name="rp-photo-sync", daemon=True).start()

    def ticket(self) -> int:
        with self._cond:
            return self._handed

    def durable(self, ticket: int) -> bool:
        """True once the first `ticket` photos are durable; raise when syncing them failed."""
        with self._cond:
            if self._done >= ticket:
                return True
            if self._error is not None:
                raise self._error
            return False

    def wait(self) -> None:
        """Block until every photo handed over so far is durable (or raise why not)."""
        with self._cond:
            ticket = self._handed
            if self._done < ticket:
                self._hurry = True  # no waiting for more photos: these are the last
                self._cond.notify_all()
            while self._done < ticket and self._error is None:
                self._cond.wait()
        self.durable(ticket)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._hurry, timeout=BATCH_SECONDS)
                if not self._queue or self._error is not None:
                    self._running = self._hurry = False
                    return
                batch, self._queue = self._queue, []
                new_dirs, self._new_dirs = self._new_dirs, set()
                upto = self._handed
            try:
                error = self._sync(batch, new_dirs)
            except RuntimeError as exc:  # the interpreter is exiting: its pools are closed
                error = exc
            with self._cond:
                if error is not None:
                    self._error = error
                else:
                    self._done = upto
                    if len(self._durable) > DURABLE_NAMES_KEPT:
                        self._durable.clear()
                    for item in batch:
                        self._in_flight.discard(item.final)
                        self._durable.add(item.final)
                self._cond.notify_all()

    def _sync(self, batch: list[Pending], new_dirs: set[str]) -> Exception | None:
        # the bytes, before any name points at them
        failed = _sync_all([item.temp or item.final for item in batch], os.fdatasync)
        if failed is None:
            for item in batch:
                if item.temp is not None:
                    try:
                        os.replace(item.temp, item.final)
                    except OSError as exc:
                        return self._on_error(exc, item.final)
            folders = {os.path.dirname(item.final) for item in batch}
            folders.update(os.path.dirname(d) for d in new_dirs)
            failed = _sync_all(sorted(folders), os.fsync)  # the names
        return None if failed is None else self._on_error(failed[1], failed[0])


def _sync_all(paths: list[str], sync: Callable[[int], None]) -> tuple[str, OSError] | None:
    """Sync `paths` on the pool's threads at once, a share each; the first failure."""
    shares = [paths[i::SYNC_THREADS] for i in range(min(SYNC_THREADS, len(paths)))]
    results = _sync_pool().map(_sync_share, shares, [sync] * len(shares))
    return next((r for r in list(results) if r is not None), None)


def _sync_share(paths: list[str], sync: Callable[[int], None]) -> tuple[str, OSError] | None:
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                sync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            return path, exc
    return None


class DurableStore(Protocol):
    def ticket(self) -> int: ...

    def durable(self, ticket: int) -> bool: ...

    def flush(self) -> None: ...


class HeldRecords:
    """Passes records on to `sink` in arrival order, each only once every photo stored
    before it arrived is durable. Records of photos not stored wait behind them (at most
    one sync round), so the results file keeps the order the pipeline finished them in."""

    def __init__(self, store: DurableStore, sink: Callable[[Record], None]) -> None:
        self.store = store
        self.sink = sink
        self.held: deque[tuple[int, Record]] = deque()

    def add(self, record: Record) -> None:
        ticket = self.store.ticket() if "stored_as" in record else 0
        self.held.append((ticket, record))
        self.release()

    def release(self) -> None:
        """Hand on every record at the front whose photos are durable by now."""
        while self.held and self.store.durable(self.held[0][0]):
            self.sink(self.held.popleft()[1])

    def ticking(self, tick: Callable[[], None]) -> Callable[[], None]:
        """`tick`, releasing what became durable since the last record first."""

        def both() -> None:
            self.release()
            tick()

        return both

    def drain(self) -> None:
        """At the end of a run: wait for the last photos, then hand on every record."""
        self.store.flush()
        self.release()
