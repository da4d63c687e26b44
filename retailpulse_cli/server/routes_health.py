"""Probes for supervisors and load balancers; they never need credentials."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from retailpulse_cli.server import schemas
from retailpulse_cli.server.errors import error_response
from retailpulse_cli.server.state import Service, get_service

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Alive",
    responses={200: {"model": schemas.Health, "description": "The process answers."}},
)
async def healthz() -> JSONResponse:
    """The process answers (also while it stops)."""
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="Ready to accept jobs",
    responses={
        200: {"model": schemas.Ready, "description": "Accepting jobs."},
        **schemas.errors(503),
    },
)
async def readyz(service: Service = Depends(get_service)) -> JSONResponse:
    """503 while the service starts or stops (submits would be refused)."""
    if not service.dispatcher.accepting:
        return error_response(503, "not_accepting", "the service is starting or stopping")
    return JSONResponse({"status": "ready", **service.dispatcher.counts()})
