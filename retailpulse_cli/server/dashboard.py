"""`GET /`: the dashboard; `POST /login` and `POST /logout`: its cookie.

The token typed in the form is checked like a bearer token and then kept in a cookie
(HttpOnly: no script can read it; SameSite=Strict: no other site's page can make the
browser send it; Secure over TLS). The gate accepts the cookie on GET and HEAD only, so a
cookie can read the user's jobs, results and reports, never change anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from retailpulse_cli.errors import RetailpulseError
from retailpulse_cli.server.security.authenticate import Authenticator, AuthFailure
from retailpulse_cli.server.security.gate import COOKIE_NAME, failure_of, principal_of
from retailpulse_cli.server.security.roles import Principal
from retailpulse_cli.storage.job_dir import Job, JobStore
from retailpulse_cli.ui import dashboard_html

DASHBOARD_JOBS = 50  # newest jobs shown
SCAN_BUDGET = 5000  # job directories one page may look at to find them
MAX_FORM_BYTES = 16 * 1024


def jobs_of(
    store: JobStore, principal: Principal, limit: int = DASHBOARD_JOBS
) -> list[dict[str, Any]]:
    """The caller's newest jobs (an admin's: everyone's) as status objects."""
    from retailpulse_cli.jobs import read

    out: list[dict[str, Any]] = []
    for job_id in store.job_ids()[:SCAN_BUDGET]:
        job = Job(store.root / job_id)
        try:
            owner = job.meta().get("owner")
            if not principal.sees(owner):
                continue
            out.append(dict(read.read_status(job)))
        except RetailpulseError:
            if principal.sees_all:
                out.append({"job_id": job_id, "status": "damaged"})
            continue
        if len(out) >= limit:
            break
    return out


def result_links(job_id: str) -> list[tuple[str, str]]:
    quoted = quote(job_id, safe="")
    return [
        ("results", f"/v1/jobs/{quoted}/results"),
        ("csv", f"/v1/jobs/{quoted}/results?format=csv"),
        ("report", f"/report?job={quoted}"),
    ]


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        text,
        status_code=status,
        headers={
            "Content-Security-Policy": dashboard_html.CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",  # no-referrer would make Origin `null`
        },
    )


def _same_origin(request: Request) -> bool:
    """A login posted from another site's page is refused (login CSRF)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


def router(
    store: JobStore,
    authenticator: Authenticator,
    *,
    links: Callable[[str], list[tuple[str, str]]] = result_links,
) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/", response_class=HTMLResponse)
    def dashboard(request: Request) -> Response:
        principal = principal_of(request.scope)
        if principal is None:
            failure = failure_of(request.scope)
            had_cookie = COOKIE_NAME in request.cookies
            message = failure.message if had_cookie and failure is not None else None
            return _html(dashboard_html.login_page(message), 401 if had_cookie else 200)
        jobs = jobs_of(store, principal)
        note = f"the newest {DASHBOARD_JOBS} jobs are shown" if len(jobs) >= DASHBOARD_JOBS else ""
        page = dashboard_html.jobs_page(
            principal.name, principal.role.value, jobs, links=links, note=note
        )
        return _html(page)

    @routes.post("/login")
    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return _html(dashboard_html.login_page("sign in from this server's own page"), 403)
        body = await request.body()
        token = (parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace")).get("token") or [""])[0]
        try:
            authenticator.principal(None, cookie_token=token.strip())
        except AuthFailure as failure:
            return _html(dashboard_html.login_page(failure.message), failure.status)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @routes.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    return routes
