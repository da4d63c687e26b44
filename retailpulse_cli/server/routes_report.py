"""The report: `GET /v1/report` (the JSON `retailpulse report --json` prints) and
`GET /report` (the HTML page `report --html` writes)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from retailpulse_cli.jobs import lifecycle, report_counts
from retailpulse_cli.server import schemas
from retailpulse_cli.server.errors import ApiError
from retailpulse_cli.server.security import current_user
from retailpulse_cli.server.state import Service, get_service

router = APIRouter(tags=["report"], dependencies=[Depends(current_user)])

SINCE = Query(
    None,
    description="Jobs created at or after WHEN (ISO 8601 date or date-time, today, "
    "yesterday, or an age: 30m, 24h, 7d); without it, the latest job.",
    examples=["24h"],
)


def _summary(service: Service, since: str | None) -> report_counts.Summary:
    try:
        when = None if since is None else lifecycle.parse_since(since)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"since: {exc}") from None
    return report_counts.summarize(service.store, [], when)


@router.get(
    "/v1/report",
    summary="Per-store counts, failures by code, durations",
    responses={
        200: {"model": schemas.Report, "description": "The report."},
        **schemas.errors(400, 404),
    },
)
async def report_json(
    since: str | None = SINCE, service: Service = Depends(get_service)
) -> JSONResponse:
    """The same object as `retailpulse report --json`."""
    summary = await run_in_threadpool(_summary, service, since)
    return JSONResponse(summary.to_json())


@router.get(
    "/report",
    summary="The report as an HTML page",
    response_class=HTMLResponse,
    responses={
        200: {"description": "A self-contained page (no script, nothing loaded)."},
        **schemas.errors(400, 404),
    },
)
async def report_page(
    since: str | None = SINCE, service: Service = Depends(get_service)
) -> HTMLResponse:
    """The page `retailpulse report --html` writes."""
    from retailpulse_cli.ui import report_html

    summary = await run_in_threadpool(_summary, service, since)
    return HTMLResponse(report_html.render(summary))
