"""The seed's API, exactly as its clients call it:

POST /api/submit/ (and /api/submit)  -> 201 {"job_id": "..."} | 400 {"error": "..."}
GET  /api/status?jobid=ID            -> 200 {"status", "job_id"[, "error"]} | 400 {}
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from retailpulse_cli.errors import InvalidJobFile, RetailpulseError
from retailpulse_cli.jobs.transitions import left_by_service
from retailpulse_cli.server import schemas
from retailpulse_cli.server.errors import problems_text
from retailpulse_cli.server.security.dependencies import require, visible_job
from retailpulse_cli.server.security.roles import Action, Principal
from retailpulse_cli.server.state import Service, get_service

router = APIRouter(tags=["seed API"])

SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"model": schemas.SeedSubmitted, "description": "The job is queued."},
    400: {"model": schemas.SeedError, "description": "The job file is invalid."},
    **schemas.errors(413, 503, 507),
}


async def _submit(request: Request, service: Service, user: Principal) -> JSONResponse:
    body = await request.body()
    try:
        job_spec = await run_in_threadpool(service.parse, body)
    except InvalidJobFile as exc:
        return JSONResponse({"error": problems_text(exc)}, status_code=400)
    job, _ = await run_in_threadpool(service.dispatcher.submit, job_spec, meta=service.meta(user))
    return JSONResponse({"job_id": job.id}, status_code=201)


@router.post(
    "/api/submit/",
    status_code=201,
    summary="Submit a job (the seed's path)",
    responses=SUBMIT_RESPONSES,
    openapi_extra=schemas.JOB_FILE_BODY,
)
async def seed_submit(
    request: Request,
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.SUBMIT)),
) -> JSONResponse:
    """Validate the job file and queue it; the answer comes once the job is on disk."""
    return await _submit(request, service, user)


@router.post(
    "/api/submit",
    status_code=201,
    summary="Submit a job (without the trailing slash)",
    responses=SUBMIT_RESPONSES,
    openapi_extra=schemas.JOB_FILE_BODY,
)
async def seed_submit_no_slash(
    request: Request,
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.SUBMIT)),
) -> JSONResponse:
    """The same as `POST /api/submit/`."""
    return await _submit(request, service, user)


def seed_state(status: dict[str, Any]) -> str:
    """The seed has three states. Queued and running jobs, and interrupted ones the
    service resumes when it starts, are `ongoing`; cancelled and other interrupted jobs
    did not complete: `failed`."""
    state = status.get("status")
    if state in ("queued", "ongoing") or (state == "interrupted" and left_by_service(status)):
        return "ongoing"
    return "completed" if state == "completed" else "failed"


@router.get(
    "/api/status",
    summary="A job's status (the seed's shape)",
    responses={
        200: {"model": schemas.SeedStatus, "description": "The job's state."},
        400: {"model": schemas.Empty, "description": "No job id, or no such job: `{}`."},
    },
)
async def seed_status(
    jobid: str | None = Query(None, description="The id `POST /api/submit/` answered."),
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.READ)),
) -> JSONResponse:
    """`ongoing`, `completed` or `failed`; a failed job lists its stores' errors. Another
    user's job answers as an unknown one: `{}`."""
    try:
        job = visible_job(service.store, jobid or "", user)
        status = job.status()
        state = seed_state(status)
        body: dict[str, Any] = {"status": state, "job_id": job.id}
        if state == "failed":
            body["error"] = [
                {"store_id": e.get("store_id"), "error": e.get("error")} for e in job.errors()
            ]
    except RetailpulseError:  # no such job, or one that cannot be read
        return JSONResponse({}, status_code=400)
    return JSONResponse(body)
