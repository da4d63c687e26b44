"""The gate every request passes: who is it, is it over its rate, and afterwards one
access-log line and the request metrics.

A plain ASGI middleware (no BaseHTTPMiddleware: it would add a task and a stream per
request). Authentication happens here once; the routes' dependency (`dependencies.py`)
only reads the outcome from the request's state and decides whether it needs one. The
rate limit keys on the user when the credentials are good, and on the client address
otherwise, so a flood of bad tokens is limited too.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retailpulse_cli.server.metrics import UNMATCHED_ROUTE, Metrics
from retailpulse_cli.server.security.authenticate import Authenticator, AuthFailure
from retailpulse_cli.server.security.rate_limit import ApiRateLimiter
from retailpulse_cli.server.security.roles import Principal
from retailpulse_cli.text.escape import safe

# Answer without credentials and without counting against a rate (probes poll them).
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})
COOKIE_NAME = "retailpulse_token"
# A refused request is answered this late: see GateMiddleware._over_rate.
TARPIT_SECONDS = 0.25
SAFE_METHODS = frozenset({"GET", "HEAD"})
_PLAIN_NAME = re.compile(r"[\w.@|:+-]+")


@dataclass(frozen=True)
class Gate:
    """What the gate needs; one per app."""

    authenticator: Authenticator
    limiter: ApiRateLimiter
    metrics: Metrics
    log: Callable[[str], None]  # one access-log line (the server's log: time-stamped)


def principal_of(scope: Scope) -> Principal | None:
    principal = scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else None


def failure_of(scope: Scope) -> AuthFailure | None:
    failure = scope.get("state", {}).get("auth_failure")
    return failure if isinstance(failure, AuthFailure) else None


class GateMiddleware:
    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate
        # Routes that have answered a request: a request refused before routing is labelled
        # with the one of them it matches (a flood repeats requests that were answered).
        # Learnt rather than listed: FastAPI keeps included routers' routes to itself.
        self.known_routes: dict[int, BaseRoute] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        principal = self._authenticate(scope)
        answered = {"status": 500}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            await send(message)

        try:
            if scope["path"] in UNLIMITED_PATHS or not await self._over_rate(
                scope, principal, send_and_note
            ):
                await self.app(scope, receive, send_and_note)
        finally:
            self._record(scope, principal, answered["status"], time.perf_counter() - started)

    def _authenticate(self, scope: Scope) -> Principal | None:
        """Note the caller (or why not) in the request's state for the routes."""
        headers = Headers(scope=scope)
        cookie = None
        if scope["method"] in SAFE_METHODS:  # a cookie never authorises a change (CSRF)
            cookie = _cookie(headers.get("cookie"), COOKIE_NAME)
        state = scope.setdefault("state", {})
        try:
            principal = self.gate.authenticator.principal(headers.get("authorization"), cookie)
        except AuthFailure as failure:
            state["auth_failure"] = failure
            return None
        state["principal"] = principal
        return principal

    async def _over_rate(self, scope: Scope, principal: Principal | None, send: Send) -> bool:
        client = scope.get("client")
        key = f"user:{principal.name}" if principal else f"addr:{client[0] if client else '-'}"
        over = self.gate.limiter.hit(key)
        if over is None:
            return False
        self.gate.metrics.rate_limited.inc()
        scope["route"] = _matching_route(list(self.known_routes.values()), scope)
        # Answered a moment late: a client looping on its connections then sends four
        # requests a second on each instead of hundreds, and the server's time goes to the
        # clients within their rate (bench/auth_fairness.py: the quiet client's p50 under
        # a flood 43-55 ms without this, 6-7 ms with it). Sleeping costs no thread.
        await asyncio.sleep(TARPIT_SECONDS)
        who = f"user {principal.name}" if principal else "this address"
        message = f"too many requests from {who}; retry after {over.retry_after}s"
        error = {"code": "rate_limited", "message": message, "path": None}
        body = json.dumps({"error": error}, separators=(",", ":")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(over.retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return True

    def _record(
        self, scope: Scope, principal: Principal | None, status: int, seconds: float
    ) -> None:
        route = route_of(scope)
        matched = scope.get("route")
        if isinstance(matched, BaseRoute):
            self.known_routes.setdefault(id(matched), matched)
        method = str(scope["method"])
        self.gate.metrics.observe(method, route, status, seconds)
        user = user_label(principal.name) if principal else "-"
        self.gate.log(f"{method} {route} {status} user={user} {seconds * 1000:.1f}ms")


def write_access_line(text: str) -> None:
    """One access line on stderr, starting with the time as the CLI's log lines do (off a
    terminal stderr stamps every line itself), and in the --log-file."""
    from retailpulse_cli.ui.streams import log_line, timestamp

    line = f"retailpulse: {text}"
    stamped = bool(getattr(sys.stderr, "stamp", False))
    sys.stderr.write((line if stamped else f"{timestamp()} {line}") + "\n")
    sys.stderr.flush()
    log_line(line)


def route_of(scope: Scope) -> str:
    """The route template (`/v1/jobs/{job_id}`), never the raw path: ids and whatever a
    scanner makes up stay out of the log's and the metrics' labels."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


def _matching_route(routes: list[BaseRoute], scope: Scope) -> BaseRoute | None:
    for route in routes:
        if route.matches(scope)[0] is Match.FULL:
            return route
    return None


def user_label(name: str) -> str:
    """A user name as the log shows it: plain, or JSON-quoted when it has spaces or
    anything else a log reader would split on."""
    return name if _PLAIN_NAME.fullmatch(name) else json.dumps(safe(name))


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value.strip('"')
    return None
