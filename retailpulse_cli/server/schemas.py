"""What the OpenAPI document says each route takes and answers.

These models describe; they do not convert: routes answer the very dicts the CLI's
`--json` prints (no second serialisation on the hot paths), and the tests check those
answers against this document (schemathesis). Objects allow more fields than listed, so
a field added later does not break a client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from retailpulse_cli.processing.spec import JOB_SCHEMA

State = Literal["queued", "ongoing", "completed", "failed", "interrupted", "cancelled"]
SeedState = Literal["ongoing", "completed", "failed"]
JOB_ID_EXAMPLE = "20261130-015222-900-d2d1"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class StoreError(_Open):
    store_id: str
    error: str = Field(examples=["store id S99999999 is not in the store master"])
    code: str = Field(examples=["store_not_found"])
    images: int | None = None
    failed_images: int | None = None
    codes: dict[str, int] | None = None


class RunInfo(_Open):
    mode: Literal["submit", "resume", "retry"]
    by: str | None = Field(None, description="`serve` for jobs the service queued or ran")
    pid: int
    host: str


class JobStatus(_Open):
    """The object `retailpulse status --json` prints."""

    schema_version: int
    job_id: str = Field(examples=[JOB_ID_EXAMPLE])
    status: State
    created_at: str | None
    started_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    queued_at: str | None = None
    interrupted_by: str | None = None
    visits: int
    images_total: int
    images_done: int
    images_ok: int
    images_failed: int
    images_stored: int | None = None
    stores_unknown: int | None = None
    failures_by_code: dict[str, int]
    run: RunInfo | None = None
    source: str | None = None
    owner: str | None = Field(None, description="the user who submitted it (null: the CLI)")
    error: list[StoreError]


class JobRow(_Open):
    """A job as `retailpulse list --json` prints it."""

    job_id: str
    created_at: str | None
    status: State | Literal["damaged"]
    images_total: int | None = None
    images_done: int | None = None
    images_failed: int | None = None
    source: str | None = None
    owner: str | None = None
    error: str | None = Field(None, description="why a damaged job cannot be read")


class JobPage(BaseModel):
    jobs: list[JobRow]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(examples=["invalid_job_file"])
    message: str = Field(examples=["count: says 3 but visits holds 2"])
    path: str | None = Field(examples=["$.count"], description="JSON path into the request")


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


class SeedSubmitted(BaseModel):
    job_id: str = Field(examples=[JOB_ID_EXAMPLE])


class SeedStoreError(BaseModel):
    store_id: str
    error: str


class SeedStatus(BaseModel):
    status: SeedState
    job_id: str
    error: list[SeedStoreError] | None = Field(None, description="only when `failed`")


class SeedError(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: str = Field(examples=["visits[0].store_id: required field is missing"])


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Report(_Open):
    """The object `retailpulse report --json` prints."""

    totals: dict[str, Any]
    jobs: list[dict[str, Any]]
    stores: list[dict[str, Any]]
    failures_by_code: list[dict[str, Any]]
    skipped: list[Any]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(_Open):
    status: Literal["ready"]
    queued: int
    running: int


def _job_file_schema() -> dict[str, Any]:
    return {k: v for k, v in JOB_SCHEMA.items() if k not in ("$schema", "$id")}


JOB_FILE_EXAMPLE = {
    "count": 1,
    "visits": [
        {
            "store_id": "S00339218",
            "image_url": ["https://example.com/shelf-1.jpg", "https://example.com/shelf-2.jpg"],
            "visit_time": "2026-11-28T10:15:00+05:30",
        }
    ],
}
# The body is read as bytes and checked by the job-file validator (every problem with its
# JSON path), not by FastAPI: this only documents it.
JOB_FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A job file, exactly as `retailpulse submit` takes it.",
        "content": {
            "application/json": {"schema": _job_file_schema(), "example": JOB_FILE_EXAMPLE}
        },
    }
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route documents, each in the one error shape."""
    words = {
        400: "Bad request: the body or a parameter is invalid (`path` names where).",
        404: "No such job.",
        409: "Conflict with the job's state (busy, finished) or a reused idempotency key.",
        413: "Request body over --max-request-bytes.",
        503: "Queue full or the service is stopping; `Retry-After` says when to try again.",
        507: "The jobs directory is full or not writable.",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": words[status]}
        if status == 503:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        out[status] = entry
    return out
