"""A job's rows follow its results file: a background thread tails the part of the file
that is already fsynced and upserts it, a batch (≤ 1,000 records) at a time.

The job's one writer only says how far the file is synced (`synced`) and what its status
is (`status`): two assignments, nothing on the critical path waits for the database. The
thread reads the records back from the file rather than holding them, so memory stays
flat however far behind it falls, and a database that went away is caught up from where
its rows stop, the same way a slow one is. A row is never ahead of the job directory:
the thread reads only what the writer has fsynced.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from retailpulse_cli.storage.results_db import database as db
from retailpulse_cli.storage.results_db import rows as to_rows
from retailpulse_cli.storage.results_db.url import shown

log = logging.getLogger("retailpulse.results_db")

BATCH_RECORDS = 1000
BATCH_SECONDS = 1.0  # the writer fsyncs at least this often while records come
RETRY_SECONDS = (1.0, 2.0, 5.0)  # waits between attempts at a database that went away
STALL_SECONDS = 10.0  # close() gives up on a thread that made no progress for this long
DOWN_GRACE_SECONDS = 6.0  # ... on one whose database is away: one more connect attempt


@dataclass
class Span:
    """Records of `path` from byte `start` to `end` (None: as far as the writer synced)."""

    path: Path
    start: int
    end: int | None = None
    unless_level: bool = False  # a catch-up: skipped when the database is already level


class _Health:
    """Whether a database is reachable, shared by the jobs of one process: one warning
    when it goes away, one when it is back, however many jobs write to it."""

    def __init__(self) -> None:
        self.down: dict[str, bool] = {}
        self.lock = threading.Lock()

    def failed(self, url: str, why: str) -> None:
        with self.lock:
            if self.down.get(url):
                return
            self.down[url] = True
        log.warning(
            f"results database {shown(url)} is unreachable ({why}); records keep going to "
            "the job directory and are written to the database when it is back"
        )

    def is_down(self, url: str) -> bool:
        return self.down.get(url, False)

    def worked(self, url: str) -> None:
        with self.lock:
            if not self.down.get(url):
                return
            self.down[url] = False
        log.warning(f"results database {shown(url)} is back; catching up")


health = _Health()


@dataclass
class Level:
    """What a run starting on an existing job knows of it: the updated_at of its status
    before this run, and how many records its directory holds."""

    updated_at: str | None
    records: int


class Follower:
    """Writes one job's records and status to the results database, behind its writer."""

    def __init__(
        self,
        url: str,
        job_id: str,
        meta: dict[str, Any],
        spans: list[Span],
        level: Level | None = None,
    ) -> None:
        self.url = url
        self.job_id = job_id
        self.meta = meta
        self.spans = spans
        self.level = level
        self.synced_to = spans[-1].start  # the live file, as far as fsynced
        self.pending: tuple[int, Mapping[str, Any], Sequence[Mapping[str, Any]]] | None = None
        self.final: Mapping[str, Any] | None = None
        self.errors_written: list[dict[str, Any]] | None = None
        self.wake = threading.Event()  # new records or status, or the end
        self.ending = threading.Event()  # close() or given up: no more waiting to retry
        self.closing = False
        self.abandoned = False
        self.progress_at = time.monotonic()
        self.conn: Connection | None = None
        self.thread = threading.Thread(target=self._run, name=f"rp-db-{job_id}", daemon=True)

    def start(self) -> Follower:
        self.thread.start()
        return self

    # -- the writer's side: cheap, never blocks ---------------------------------------

    def synced(self, offset: int) -> None:
        """The live file is fsynced up to `offset` bytes."""
        self.synced_to = offset
        self.wake.set()

    def status(self, doc: Mapping[str, Any], errors: Sequence[Mapping[str, Any]]) -> None:
        """The job's status as just written; its row is written once the rows it counts are."""
        self.pending = (self.synced_to, doc, errors)
        self.wake.set()

    def drain(self) -> bool:
        """Wait until every synced record is in the database. When the thread stalls (the
        database is away) it is given up: the files may change under it next (a retry's
        merge), so only `resume` or `export` may level the job from here."""
        if not self._wait(lambda: self._caught_up() or not self.thread.is_alive()):
            self.abandoned = True
            self.ending.set()
        return not self.abandoned

    def close(self, final: Mapping[str, Any], errors: Sequence[Mapping[str, Any]]) -> bool:
        """Write the final status (marking the job level when every record is in) and stop;
        False when the database could not be brought level (resume or export will)."""
        self.final = final  # first: the thread must know the pending status is the last
        self.pending = (self.synced_to, final, errors)
        self.closing = True
        self.wake.set()
        self.ending.set()
        done = not self.abandoned and self._wait(lambda: not self.thread.is_alive())
        if not done:
            self.abandoned = True
            log.warning(
                f"job {self.job_id}: results database {shown(self.url)} is not level with the "
                f"job directory; `retailpulse export --to URL {self.job_id}` writes the rest"
            )
        return done

    def _wait(self, done: Callable[[], bool]) -> bool:
        self.progress_at = max(self.progress_at, time.monotonic() - STALL_SECONDS / 2)
        while not done():
            # a database known to be away gets one more attempt, not the whole grace
            stall = DOWN_GRACE_SECONDS if health.is_down(self.url) else STALL_SECONDS
            if time.monotonic() - self.progress_at > stall:
                return False
            time.sleep(0.02)
        return True

    def _caught_up(self) -> bool:
        return not self.spans[:-1] and self.spans[-1].start >= self.synced_to

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self.abandoned:
            self.wake.clear()  # before the work: a wake-up during it is not lost
            try:
                self._step()
                attempt = 0
                health.worked(self.url)
            except Exception as exc:  # any database failure: wait, reconnect, carry on
                self._disconnect()
                health.failed(self.url, db.failure(exc, self.url))
                if self.ending.is_set():  # the job is ending: a last few tries, not a spin
                    time.sleep(0.5)
                else:
                    self.ending.wait(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1
                continue
            if self.closing and self.final is None:
                break
            self.wake.wait(BATCH_SECONDS)
        self._disconnect()

    def _step(self) -> None:
        if self.conn is None:
            self.conn = db.open_db(self.url).connect()  # the schema checked once a process
            if self.level is not None:
                self._skip_if_level(self.conn, self.level)
        while self._write_batch(self.conn):
            self.progress_at = time.monotonic()
            if self.abandoned:
                return
        self._write_status(self.conn)
        self.progress_at = time.monotonic()

    def _skip_if_level(self, conn: Connection, level: Level) -> None:
        """A job whose rows were all written when its status was last saved (and that
        still has that many) needs no catch-up."""
        level_at, count = db.level_of(conn, self.job_id)
        conn.rollback()
        if level_at is not None and level_at == level.updated_at and count == level.records:
            self.spans = [s for s in self.spans if not s.unless_level]
        self.level = None

    def _write_batch(self, conn: Connection) -> bool:
        """Upsert the next batch; False when there is nothing to write now."""
        span = self.spans[0]
        end = span.end if span.end is not None else self.synced_to
        if span.start >= end:
            if len(self.spans) == 1:
                return False
            self.spans.pop(0)
            return True
        records, offset = read_span(span.path, span.start, end, BATCH_RECORDS)
        pg = conn.dialect.name == "postgresql"
        rows = [r for rec in records if (r := to_rows.result_values(self.job_id, rec, postgres=pg))]
        with conn.begin():
            db.upsert_results(conn, rows)
        span.start = offset if offset > span.start else end  # a torn line: nothing more
        return True

    def _write_status(self, conn: Connection) -> None:
        pending = self.pending
        if pending is None:
            return
        position, doc, errors = pending  # the status counts the records up to `position`
        if self.spans[:-1] or self.spans[-1].start < position:
            return
        final = doc is self.final
        error_rows = to_rows.error_rows(self.job_id, errors)
        run_rows = to_rows.run_rows(self.job_id, doc)
        level_at = str(doc.get("updated_at")) if final else None
        with conn.begin():
            row = to_rows.job_row({**doc, "job_id": self.job_id}, self.meta)
            db.save_job(
                conn,
                row,
                error_rows if error_rows != self.errors_written else None,
                run_rows,  # a few rows, whose last one moves with every status
                level_at=level_at,
            )
        self.errors_written = error_rows
        if self.pending is pending:
            self.pending = None
        if final:
            self.final = None  # written: the thread may end

    def _disconnect(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                log.debug("closing a broken connection failed", exc_info=True)


def read_span(path: Path, start: int, end: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Up to `limit` records from the lines between byte `start` and `end` of a results
    file (the header line skipped, a line that is not a JSON object passed over), and the
    offset after the last line read."""
    out: list[dict[str, Any]] = []
    try:
        fh = path.open("rb")
    except FileNotFoundError:  # removed by hand: nothing to read, nothing to write
        return out, end
    with fh:
        fh.seek(start)
        offset = start
        while offset < end and len(out) < limit:
            line = fh.readline()
            if not line.endswith(b"\n"):
                break  # a torn tail (a crash); never past what the writer synced
            offset += len(line)
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "retailpulse" not in rec:
                out.append(rec)
    return out, offset
