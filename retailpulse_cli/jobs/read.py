"""Reading jobs back: the status object, waiting for the end, the job list, dates.

Light on purpose (the job directory and nothing of the download machinery): `status`,
`list` and `results` start fast. Nothing here prints.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypedDict, cast

from retailpulse_cli.errors import RetailpulseError, WaitTimeout
from retailpulse_cli.model import WAITING, JobListing, JobState, JobStatus, StoreProblem
from retailpulse_cli.storage.job_dir import Job, JobStore

DAMAGED = JobState.DAMAGED.value


def with_errors(status: JobStatus, errors: list[StoreProblem]) -> JobStatus:
    """The status object users see: status.json plus `error` (the per-store list)."""
    return {**status, "error": errors}  # always a list: `jq '.error[]'` works on any job


def read_status(job: Job) -> JobStatus:
    """The status object of a job as it stands (`interrupted` if its worker died)."""
    meta = job.meta()  # read once: the HTTP API answers this for every poll
    status = cast(JobStatus, job.status(meta))
    errors = cast("list[StoreProblem]", job.errors())
    return with_errors({**status, **origin(meta)}, errors)


class Origin(TypedDict):
    source: str | None
    owner: str | None


def origin(meta: dict[str, Any]) -> Origin:
    """Where a job came from, as status and list show it: its source, and its owner (the
    user who submitted it to `serve`; jobs made by the CLI have none)."""
    return {"source": meta.get("source"), "owner": meta.get("owner")}


def wait_for(
    job: Job,
    timeout: float | None,
    poll: float = 0.2,
    on_poll: Callable[[JobStatus], None] | None = None,
) -> JobStatus:
    """Block until the job is no longer queued or `ongoing`; WaitTimeout after `timeout` s.
    `on_poll(status)` sees each status read (a progress display)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        current = read_status(job)
        if on_poll is not None:
            on_poll(current)
        if current.get("status") not in WAITING:
            return current
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(f"job {job.id} still ongoing after {timeout:g}s")
        time.sleep(poll)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)\s*([smhdw])")


def parse_duration(text: str) -> timedelta:
    """`30s`, `30m`, `24h`, `7d`, `2w` -> a timedelta; ValueError (one clear sentence)
    otherwise."""
    m = _DURATION.fullmatch(text.strip().lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration such as 30s, 30m, 24h, 7d or 2w")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds > 100 * 365 * 86400:  # past datetime's range once taken from now
        raise ValueError(f"{text!r} is more than 100 years")
    return timedelta(seconds=seconds)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or date-time (UTC without an offset), `today` or `yesterday`
    (midnight UTC), or an age such as `30s`, `30m`, `24h`, `7d`, `2w` before now."""
    value = text.strip()
    now = now or datetime.now(timezone.utc)
    midnight = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if value.lower() in ("today", "yesterday"):
        return midnight - timedelta(days=1 if value.lower() == "yesterday" else 0)
    if _DURATION.fullmatch(value.lower()):
        return now - parse_duration(value)
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or an age: use an ISO 8601 date or date-time "
            "(2026-11-30), today, yesterday, or an age such as 30s, 30m, 24h, 7d"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def list_jobs(
    store: JobStore,
    *,
    status: JobState | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    owner: str | None = None,
) -> list[JobListing]:
    """Jobs newest first, as small summaries; a damaged job is listed as such, not fatal
    (but not with `since`: its date is unknown). With `owner`, only the jobs that user
    submitted to `serve`."""
    out: list[JobListing] = []
    for job_id in store.job_ids():
        row = listing(Job(store.root / job_id), since)
        if row is None or (since is not None and row["status"] == DAMAGED):
            continue
        if status and row["status"] != status:
            continue
        if owner is not None and row.get("owner") != owner:
            continue
        out.append(row)
        if limit is not None and len(out) >= limit:
            break
    return out


def listing(job: Job, since: datetime | None) -> JobListing | None:
    """One job's row (its status.json and meta.json read); None when it was created
    before `since`."""
    try:
        st = cast(JobStatus, job.status())
        came_from = origin(job.meta())  # job.status() read meta.json already
        row: JobListing = {
            "job_id": job.id,
            "created_at": st.get("created_at"),
            "status": st["status"],
            "images_total": st.get("images_total", 0),
            "images_done": st.get("images_done", 0),
            "images_failed": st.get("images_failed", 0),
            "source": came_from["source"],
            "owner": came_from["owner"],
        }
        if since is not None and parse_since(str(row["created_at"])) < since:
            return None
    except RetailpulseError as exc:
        return {"job_id": job.id, "created_at": None, "status": DAMAGED, "error": exc.message}
    except ValueError:  # a created_at edited into something that is not a date
        return {
            "job_id": job.id,
            "created_at": None,
            "status": DAMAGED,
            "error": f"job {job.id}: status.json has no valid created_at",
        }
    return row
