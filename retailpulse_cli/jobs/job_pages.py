"""Jobs newest first, a page at a time (`GET /v1/jobs`): no request reads every job.

A page starts after a cursor (the last job id of the previous page: ids sort by creation
time) and reads at most `SCAN_BUDGET` jobs' status files, so a filter that matches little
yields short pages rather than one request that reads the whole jobs directory.
Nothing here prints.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from retailpulse_cli.jobs.read import listing
from retailpulse_cli.model import JobListing
from retailpulse_cli.storage.job_dir import Job, JobStore

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
SCAN_BUDGET = 2000  # status files one page may read, matching or not
# A job's id is stamped a moment after its created_at: an id this much older than `since`
# cannot belong to a job created at or after it.
_ID_SLACK = timedelta(seconds=5)


@dataclass(frozen=True)
class Page:
    jobs: list[JobListing]
    next_cursor: str | None  # None: this was the last page


def id_time(job_id: str) -> datetime | None:
    """The UTC time a job id was made (YYYYMMDD-HHMMSS-mmm-xxxx); None for other names."""
    try:
        return datetime.strptime(job_id[:19], "%Y%m%d-%H%M%S-%f").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def page_jobs(
    store: JobStore,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    owner: str | None = None,
) -> Page:
    """Up to `limit` jobs after `cursor`, newest first, filtered by state, creation time
    and owner (None: everyone's)."""
    ids = store.job_ids()  # names only (one directory listing), newest first
    start = 0
    if cursor is not None:  # ids are sorted descending: skip every id >= cursor
        start = len(ids) - bisect.bisect_left(ids[::-1], cursor)
    rows: list[JobListing] = []
    for position in range(start, len(ids)):
        job_id = ids[position]
        made = id_time(job_id)
        if since is not None and made is not None and made < since - _ID_SLACK:
            return Page(rows, None)  # every later id is older still
        if position - start >= max(SCAN_BUDGET, limit) or len(rows) >= limit:
            return Page(rows, ids[position - 1])
        row = listing(Job(store.root / job_id), since)
        if row is None or (status is not None and row["status"] != status):
            continue
        if owner is None or row.get("owner") == owner:
            rows.append(row)
    return Page(rows, None)
