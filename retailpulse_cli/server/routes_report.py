"""The report: `GET /v1/report` (the JSON `retailpulse report --json` prints) and
`GET /report` (the HTML page `report --html` writes)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from retailpulse_cli.errors import JobNotFound
from retailpulse_cli.jobs import read, report_counts
from retailpulse_cli.server import schemas
from retailpulse_cli.server.errors import ApiError
from retailpulse_cli.server.security.dependencies import current_user, require, visible_job
from retailpulse_cli.server.security.roles import Action, Principal
from retailpulse_cli.server.state import Service, get_service

router = APIRouter(tags=["report"], dependencies=[Depends(current_user)])

SINCE = Query(
    None,
    description="Jobs created at or after WHEN (ISO 8601 date or date-time, today, "
    "yesterday, or an age: 30m, 24h, 7d); without it, the latest job.",
    examples=["24h"],
)
JOB = Query(None, max_length=255, description="One job's report (its id), instead of `since`.")


def _summary(
    service: Service, since: str | None, job: str | None, user: Principal
) -> report_counts.Summary:
    """The report an admin would get, over the caller's own jobs only."""
    try:
        when = None if since is None else read.parse_since(since)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"since: {exc}") from None
    store = service.store
    if job is not None:
        return report_counts.summarize(store, [visible_job(store, job, user).id])
    if user.sees_all:
        return report_counts.summarize(store, [], when)
    mine = [r["job_id"] for r in read.list_jobs(store, since=when, owner=user.name)]
    if not mine:
        raise JobNotFound(f"no jobs of {user.name}" + (f" since {since}" if since else ""))
    return report_counts.summarize(store, mine[::-1] if when else mine[:1])


@router.get(
    "/v1/report",
    summary="Per-store counts, failures by code, durations",
    responses={
        200: {"model": schemas.Report, "description": "The report."},
        **schemas.errors(400, 404),
    },
)
async def report_json(
    since: str | None = SINCE,
    job: str | None = JOB,
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.READ)),
) -> JSONResponse:
    """The same object as `retailpulse report --json`, over the caller's jobs."""
    summary = await run_in_threadpool(_summary, service, since, job, user)
    return JSONResponse(summary.to_json())


@router.get(
    "/report",
    summary="The report as an HTML page",
    response_class=Response,  # errors stay JSON; the page is documented below
    responses={
        200: {
            "description": "A self-contained page (no script, nothing loaded).",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **schemas.errors(400, 404),
    },
)
async def report_page(
    since: str | None = SINCE,
    job: str | None = JOB,
    service: Service = Depends(get_service),
    user: Principal = Depends(require(Action.READ)),
) -> HTMLResponse:
    """The page `retailpulse report --html` writes, over the caller's jobs."""
    from retailpulse_cli.ui import report_html

    summary = await run_in_threadpool(_summary, service, since, job, user)
    return HTMLResponse(report_html.render(summary))
