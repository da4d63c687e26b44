"""FastAPI dependencies and handlers: the caller of a route, its rights, its jobs.

    @router.get("/v1/jobs/{job_id}")
    def get_job(job_id: str, user: Principal = Depends(require(Action.READ))) -> ...:
        job = visible_job(store, job_id, user)   # another user's job: 404, as unknown

The gate (gate.py) has authenticated the request already; these only read its outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from retailpulse_cli.errors import JobNotFound, RetailpulseError
from retailpulse_cli.server.security.authenticate import AuthFailure, forbidden, unauthenticated
from retailpulse_cli.server.security.gate import failure_of, principal_of
from retailpulse_cli.server.security.roles import Action, Principal
from retailpulse_cli.storage.job_dir import Job, JobStore

OWNER_KEY = "owner"  # meta.json: the user a job was submitted by


def caller(request: Request) -> Principal:
    """The authenticated caller; 401 (with WWW-Authenticate: Bearer) otherwise."""
    principal = principal_of(request.scope)
    if principal is not None:
        return principal
    raise failure_of(request.scope) or unauthenticated("missing credentials")


async def current_user(request: Request) -> Principal:
    """FastAPI dependency: `caller`. `async`, as every dependency here: FastAPI runs a
    plain `def` one in a worker thread, a hop that costs more than what it does."""
    return caller(request)


def require(action: Action) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller, if its role may do `action`; 403 if not."""

    async def dependency(request: Request) -> Principal:
        principal = caller(request)
        if not principal.may(action):
            raise forbidden(principal, action)
        return principal

    dependency.__name__ = f"require_{action.value}"
    return dependency


def job_owner(job: Job) -> str | None:
    owner = job.meta().get(OWNER_KEY)
    return owner if isinstance(owner, str) else None


def visible_job(store: JobStore, job_id: str, principal: Principal) -> Job:
    """The job, if `principal` may know it exists. Another user's job raises exactly what
    an unknown id raises (same type, same message), so ids do not leak."""
    job = store.job(job_id)  # JobNotFound for an unknown id
    try:
        owner = job_owner(job)
    except RetailpulseError:  # damaged meta.json: only an admin may see the damage
        if principal.sees_all:
            return job
        owner = None
    if not principal.sees(owner):
        raise JobNotFound(f"no job {job_id.strip()!r} in {store.root}")
    return job


def owner_filter(principal: Principal, asked: str | None) -> str | None:
    """Whose jobs a listing shows: an admin's choice (None: everyone's), else the caller's."""
    return asked if principal.sees_all else principal.name


def owner_meta(principal: Principal) -> dict[str, Any]:
    """What a new job records about who submitted it (in meta.json): nothing in --no-auth
    mode, where nobody said who they are (such jobs are then an admin's, as CLI jobs)."""
    return {} if principal.via == "open" else {OWNER_KEY: principal.name}


def auth_failure_response(failure: AuthFailure) -> Response:
    """401 carries a challenge (RFC 6750): plain `Bearer` when nothing was sent, with
    error="invalid_token" when what was sent is not good."""
    headers = {}
    if failure.status == 401:
        missing = failure.message.startswith("missing")
        headers["WWW-Authenticate"] = "Bearer" if missing else 'Bearer error="invalid_token"'
    body = {"error": {"code": failure.code, "message": failure.message, "path": None}}
    return JSONResponse(body, status_code=failure.status, headers=headers)


def install(app: FastAPI) -> None:
    """AuthFailure anywhere -> the API's error shape with its status."""

    async def handler(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthFailure)
        return auth_failure_response(exc)

    app.add_exception_handler(AuthFailure, handler)
