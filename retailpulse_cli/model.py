"""The data that crosses modules: a job's state, its status object, an image's record.

Plain types only (an enum and typed dicts), so any layer can import this without cost.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypedDict

Record = dict[str, Any]
"""One image's result, one line of results.jsonl: job_id, index, visit, store_id,
visit_time, image_url, status (`ok` or `failed`), then width, height, perimeter, format,
sha256, bytes, stored_as for an ok image or error_code, error for a failed one; attempts
and elapsed_ms. A plain dict: records are built field by field by the download steps and
written as they are."""


class JobState(str, Enum):
    """The `status` of a job. `damaged` is never written: `list` shows it for a job whose
    files cannot be read. `queued` and `cancelled` are written by `retailpulse serve`'s
    queue (a job accepted and not started; a job stopped on request, which `resume` can
    still finish)."""

    QUEUED = "queued"
    ONGOING = "ongoing"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    DAMAGED = "damaged"

    def __str__(self) -> str:  # "failed", not "JobState.FAILED", in f-strings on any Python
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


FINISHED = (JobState.COMPLETED, JobState.FAILED)  # ran to the end: nothing left to resume
WAITING = (JobState.QUEUED, JobState.ONGOING)  # not ended yet: `status --wait` waits
REJECTED = "rejected"  # the status of a job file refused before any job was made (--json rows)


class StoreProblem(TypedDict, total=False):
    """One entry of a status's `error` list: a store with an unknown id or failed images."""

    store_id: str
    error: str
    code: str
    images: int  # store_not_found: the store's images, none downloaded
    failed_images: int  # image_failed: how many, and by code
    codes: dict[str, int]


class JobCounts(TypedDict):
    """A job's running counts (processing.tally.Tally.counts), as status.json holds them."""

    visits: int
    images_total: int
    images_done: int
    images_ok: int
    images_failed: int
    images_stored: int
    stores_unknown: int
    failures_by_code: dict[str, int]


class RunSpan(TypedDict):
    """One run of a job (the submit, a resume, a retry): when it started and when it ended,
    or last wrote its status if it was killed. status.json keeps them all in `runs`."""

    mode: str
    started_at: str
    ended_at: str


class JobStatus(JobCounts, total=False):
    """The status object: status.json, plus `source` and `error` when read back
    (`status --json` prints it; README "status" shows an example)."""

    schema_version: int
    job_id: str
    status: str  # a JobState value
    created_at: str
    started_at: str | None
    updated_at: str
    finished_at: str | None
    run: dict[str, Any]  # the latest run: mode (submit, resume, retry), by (serve), pid, host
    runs: list[RunSpan]  # every run, oldest first
    interrupted_by: str  # SIGINT, SIGTERM, worker died, or the error that stopped it
    queued_at: str  # when `retailpulse serve` queued it
    source: str | None  # the job file as given (a path or <stdin>)
    owner: str | None  # the user who submitted it to `serve` (none: the CLI)
    error: list[StoreProblem]


class ProblemObject(TypedDict):
    """One problem of a job file as `--json` prints it (validate, submit, inbox): its
    JSONPath, the message, the line and column; null where not known."""

    path: str | None
    message: str
    line: int | None
    column: int | None


class JobListing(TypedDict, total=False):
    """One row of `list`: a job in brief, or a damaged one with the reason (`error`)."""

    job_id: str
    created_at: str | None
    status: str  # a JobState value, `damaged` included
    images_total: int
    images_done: int
    images_failed: int
    source: str | None
    owner: str | None  # the user who submitted it to `serve`
    error: str
