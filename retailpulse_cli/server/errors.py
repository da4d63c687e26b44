"""The one error shape of the HTTP API, and the one place exceptions become HTTP answers:

    {"error": {"code": "<stable code>", "message": "...", "path": "<JSON path or null>"}}

Codes follow the CLI's names where one fits (a job file's problems, an unknown job, a busy
job, storage). Never a traceback, never a credential (messages are the CLI's, which are
redacted already).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from retailpulse_cli.errors import (
    ConfigError,
    InvalidJobFile,
    JobBusy,
    JobDamaged,
    JobNotFound,
    RetailpulseError,
    StorageError,
    StoreMasterError,
)
from retailpulse_cli.jobs.dispatcher import (
    RETRY_AFTER_SECONDS,
    JobFinished,
    NotAccepting,
    QueueFull,
    UserQueueFull,
)
from retailpulse_cli.jobs.idempotency import IdempotencyConflict
from retailpulse_cli.processing.spec import Problem, json_path

# exception class -> (HTTP status, code); the first match in this order wins
ERRORS: tuple[tuple[type[RetailpulseError], int, str], ...] = (
    (InvalidJobFile, 400, "invalid_job_file"),
    (ConfigError, 400, "invalid_parameter"),
    (JobNotFound, 404, "job_not_found"),
    (IdempotencyConflict, 409, "idempotency_key_reused"),
    (JobFinished, 409, "job_finished"),
    (JobBusy, 409, "job_busy"),
    (QueueFull, 503, "queue_full"),
    (UserQueueFull, 429, "user_queue_full"),
    (NotAccepting, 503, "not_accepting"),
    (StorageError, 507, "storage_error"),
    (JobDamaged, 500, "job_damaged"),
    (StoreMasterError, 500, "store_master"),
)
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An answer that is an error: raised by routes for what is not a RetailpulseError."""

    def __init__(self, status: int, code: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.path = status, code, message, path


def error_body(code: str, message: str, path: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "path": path}}


def error_response(status: int, code: str, message: str, path: str | None = None) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status in (429, 503) else None
    return JSONResponse(error_body(code, message, path), status_code=status, headers=headers)


def error_bytes(code: str, message: str) -> bytes:
    """For answers sent below FastAPI (the request-size guard)."""
    return json.dumps(error_body(code, message)).encode()


def classify(exc: RetailpulseError) -> tuple[int, str]:
    for kind, status, code in ERRORS:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal_error"


def first_path(exc: InvalidJobFile) -> str | None:
    """The JSON path of the first problem of a job file (null for a file-level one)."""
    first = exc.problems[0] if exc.problems else None
    if isinstance(first, Problem) and first.parts is not None:
        return json_path(first.parts)
    return None


def problems_text(exc: InvalidJobFile) -> str:
    """Every problem, each naming its JSON path, in one message."""
    if len(exc.problems) == 1:
        return exc.problems[0]
    return f"{len(exc.problems)} problems: " + "; ".join(exc.problems)


SERVER_SIDE = {
    "storage_error": "the jobs directory cannot be written (full or read-only)",
    "job_damaged": "the job's directory is damaged",
    "store_master": "the store master cannot be read",
}


def from_retailpulse(exc: RetailpulseError, jobs_root: Path) -> JSONResponse:
    """The answer for a RetailpulseError. Problems of the server's own disk are logged in
    full and answered in general terms: a client learns no server path."""
    status, code = classify(exc)
    if isinstance(exc, InvalidJobFile):
        return error_response(status, code, problems_text(exc), first_path(exc))
    if code in SERVER_SIDE:
        from retailpulse_cli.ui import output as console

        console.error_line(exc.message)
        return error_response(status, code, f"{SERVER_SIDE[code]}; the server log says more")
    return error_response(status, code, exc.message.replace(f" in {jobs_root}", ""))


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    where = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "header")]
    name = ".".join(where) or "request"
    return f"{name}: {first.get('msg', 'invalid value')}", None


def install(app: FastAPI) -> None:
    """Every error, whatever raised it, leaves in the one shape."""

    @app.exception_handler(RetailpulseError)
    async def _retailpulse(request: Request, exc: RetailpulseError) -> Response:
        return from_retailpulse(exc, request.app.state.service.store.root)

    @app.exception_handler(ApiError)
    async def _api(_request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        message, path = _validation_message(exc)
        return error_response(400, "invalid_parameter", message, path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        response = error_response(exc.status_code, code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        from retailpulse_cli.ui import output as console

        console.error_line(f"internal error on {request.method} {request.url.path}: {exc!r}")
        if os.environ.get("RETAILPULSE_DEBUG"):
            import traceback

            traceback.print_exception(exc)
        return error_response(500, "internal_error", "internal error; the server log says more")
