"""/v1/jobs: the fuller API, answering the objects the CLI's `--json` prints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from retailpulse_cli.jobs import job_pages, read, results_export
from retailpulse_cli.jobs.idempotency import MAX_KEY_LENGTH, claim_for
from retailpulse_cli.server import schemas
from retailpulse_cli.server.errors import ApiError
from retailpulse_cli.server.security.dependencies import (
    current_user,
    owner_filter,
    require,
    visible_job,
)
from retailpulse_cli.server.security.roles import Action, Principal
from retailpulse_cli.server.state import Service, get_service

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(current_user)])

CANCEL_WAIT_SECONDS = 10.0  # a running job reaches a safe point in ~2 s; the answer waits
JobId = Path(description="A job id, as submit answered it.", examples=[schemas.JOB_ID_EXAMPLE])
STATUS = {"model": schemas.JobStatus, "description": "The job's status object."}


def _location(job_id: str) -> dict[str, str]:
    return {"Location": f"/v1/jobs/{job_id}"}


@router.post(
    "/jobs",
    status_code=202,
    summary="Submit a job",
    responses={
        202: {**STATUS, "description": "Queued; `Location` is the job."},
        200: {**STATUS, "description": "The job this Idempotency-Key already made."},
        **schemas.errors(400, 409, 413, 503, 507),
    },
    openapi_extra=schemas.JOB_FILE_BODY,
)
async def submit_job(
    request: Request,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="Makes a retried submit safe: the same key and the same body (byte for "
        "byte) within 24 h answer the job the first request made (200); the same key with "
        "another body is 409.",
    ),
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.SUBMIT)),
) -> JSONResponse:
    """Validate the job file and queue it; answered once the job is on disk. With
    `callback_url`, the job's status is POSTed there, signed, when it ends."""
    body = await request.body()
    job_spec = await run_in_threadpool(service.parse, body)
    meta = {**service.meta(user), **service.security.callback_meta(body)}
    claim = None if idempotency_key is None else claim_for(idempotency_key, body, user.name)
    job, created = await run_in_threadpool(
        service.dispatcher.submit, job_spec, meta=meta, claim=claim
    )
    status = await run_in_threadpool(read.read_status, job)
    return JSONResponse(status, status_code=202 if created else 200, headers=_location(job.id))


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return read.parse_since(text)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"since: {exc}") from None


@router.get(
    "/jobs",
    summary="List jobs, newest first",
    responses={
        200: {"model": schemas.JobPage, "description": "A page of jobs."},
        400: {"model": schemas.ErrorBody, "description": "A bad parameter."},
    },
)
async def list_jobs(
    status: schemas.State | Literal["damaged"] | None = Query(None, description="Only this state."),
    since: str | None = Query(
        None,
        description="Created at or after: an ISO 8601 date or date-time, today, yesterday, "
        "or an age (30m, 24h, 7d).",
        examples=["24h"],
    ),
    limit: int = Query(job_pages.DEFAULT_LIMIT, ge=1, le=job_pages.MAX_LIMIT),
    cursor: str | None = Query(
        None, max_length=255, description="`next_cursor` of the previous page."
    ),
    owner: str | None = Query(
        None, max_length=200, description="Only this user's jobs (admin; others see their own)."
    ),
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.READ)),
) -> JSONResponse:
    """A page may hold fewer than `limit` jobs when a filter skips many (one request reads
    at most a couple of thousand jobs); follow `next_cursor` until it is null. Each user
    sees their own jobs; an admin sees everyone's."""
    page = await run_in_threadpool(
        job_pages.page_jobs,
        service.store,
        limit=limit,
        cursor=cursor,
        status=status,
        since=_since(since),
        owner=owner_filter(user, owner),
    )
    return JSONResponse({"jobs": page.jobs, "next_cursor": page.next_cursor})


@router.get(
    "/jobs/{job_id}",
    summary="A job's status (`retailpulse status --json`)",
    responses={200: STATUS, **schemas.errors(404)},
)
async def get_job(
    job_id: str = JobId,
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.READ)),
) -> JSONResponse:
    """Reads the job's own small files only, whatever the size of the jobs directory."""
    return JSONResponse(read.read_status(visible_job(service.store, job_id, user)))


@router.get(
    "/jobs/{job_id}/results",
    summary="A job's records, streamed (JSON Lines or CSV)",
    response_class=StreamingResponse,  # its media types are documented below
    responses={
        200: {
            "description": "One record per image, in the order images finished.",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **schemas.errors(404),
    },
)
async def get_results(
    job_id: str = JobId,
    format: Literal["jsonl", "csv"] = Query("jsonl", description="jsonl or csv."),
    failed: bool = Query(False, description="Only images that failed."),
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.READ)),
) -> StreamingResponse:
    """Streamed from the job's results file: never the whole job in memory."""
    job = visible_job(service.store, job_id, user)
    job.status()  # a damaged job is an error now, not a response cut short
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    body = results_export.chunks(job, fmt=format, only_failed=failed)
    return StreamingResponse(body, media_type=media)


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    summary="Run a job's failed images again",
    responses={202: {**STATUS, "description": "Queued to retry."}, **schemas.errors(404, 409, 503)},
)
async def retry_job(
    job_id: str = JobId,
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.RETRY)),
) -> JSONResponse:
    """Queues a run of the failed (and never processed) images; unknown stores stay failed."""
    visible_job(service.store, job_id, user)
    job = await run_in_threadpool(service.dispatcher.retry, job_id)
    status = await run_in_threadpool(read.read_status, job)
    return JSONResponse(status, status_code=202, headers=_location(job.id))


@router.post(
    "/jobs/{job_id}/cancel",
    summary="Cancel a queued or running job",
    responses={
        200: {**STATUS, "description": "Cancelled (or it had ended on its own meanwhile)."},
        202: {**STATUS, "description": "Still stopping: it reads `cancelled` shortly."},
        **schemas.errors(404, 409),
    },
)
async def cancel_job(
    job_id: str = JobId,
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.CANCEL)),
) -> JSONResponse:
    """A queued job never starts; a running one stops at a safe point (the answer waits
    for it). It reads `cancelled`; `retailpulse resume` can still finish it."""
    visible_job(service.store, job_id, user)
    status = await run_in_threadpool(service.dispatcher.cancel, job_id, wait=CANCEL_WAIT_SECONDS)
    code = 202 if status.get("status") in ("queued", "ongoing") else 200
    return JSONResponse(status, status_code=code, headers=_location(job_id))
