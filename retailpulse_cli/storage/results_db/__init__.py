"""The results database (`--results-db URL`): every job's records as rows, for SQL across
jobs. The job directory stays the source of truth; the database follows it, behind the
job's one writer, and can always be levelled with it again (`resume`, `export`).

  url.py       which URLs, how they are shown and kept (never with a password)
  schema.py    the tables and the numbered steps that create and migrate them
  database.py  opening it (one clear error), the upserts
  rows.py      records, status and errors as rows
  follower.py  the background thread that writes a running job's rows
  reading.py   what `report --from` reads back
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retailpulse_cli.storage.job_dir import Job, ResultsWriter
    from retailpulse_cli.storage.results_db.follower import Follower


def check(url: str | None) -> None:
    """Reach the database and bring its schema up to date, before any job is made: an
    unreachable or newer database is one line and a non-zero exit, not a job half-run."""
    if url:
        from retailpulse_cli.storage.results_db.database import open_db

        open_db(url)


def follow(
    url: str,
    job: Job,
    writer: ResultsWriter,
    *,
    meta: dict[str, Any],
    previous: dict[str, Any] | None,
    records: int,
) -> Follower:
    """Start writing `job`'s rows behind `writer` (just opened). `previous` is the job's
    status before this run (None for a new job): when the database was level with it,
    only this run's records are written; otherwise every record is (a kill -9, a run
    without the database, an outage that outlived the run). Never raises: a database
    that cannot be reached now is one warning, and is caught up when it is back."""
    from retailpulse_cli.storage.results_db.follower import Follower, Level, Span

    start = writer.fh.tell()
    spans = [Span(writer.path, start)]
    level = None
    if previous is not None:
        results: Path = job.results_path
        end = start if writer.path == results else _size(results)
        spans.insert(0, Span(results, 0, end, unless_level=True))
        level = Level(str(previous.get("updated_at") or ""), records)
    follower = Follower(url, job.id, meta, spans, level).start()
    writer.after_sync = follower.synced
    return follower


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
