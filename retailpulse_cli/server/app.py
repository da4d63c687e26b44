"""The app factory: one FastAPI app over one Service (jobs directory + queue).

Routers per resource (FastAPI's "bigger applications" layout): the seed's API, /v1 jobs,
the report, health probes, the offline docs; security (server/security/: tokens and
JWTs, roles, rate limits, callbacks), the dashboard at / and /metrics, in one call.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from retailpulse_cli import __version__
from retailpulse_cli.server import (
    errors,
    routes_docs,
    routes_health,
    routes_jobs,
    routes_report,
    routes_seed,
)
from retailpulse_cli.server.body_limit import BodyLimit
from retailpulse_cli.server.security import openapi as security_doc
from retailpulse_cli.server.state import Service

DESCRIPTION = """\
Field agents' visits in, shelf-photo measurements out: the HTTP front end of
retailpulse, over the same job directory as the CLI (`retailpulse status`,
`list`, `results` see these jobs too).

* **Seed API** (`/api/submit/`, `/api/status`): the original contract, unchanged.
* **/v1**: the objects `retailpulse ... --json` prints; errors are always
  `{"error": {"code", "message", "path"}}`.

Jobs from the network may not read the server's files or reach private addresses unless
the operator started `retailpulse serve` with `--allow-local-files` /
`--allow-private-networks`.
"""
TAGS = [
    {"name": "seed API", "description": "The seed's endpoints, exactly as its clients call them."},
    {"name": "jobs", "description": "Submit, list, read, retry and cancel jobs."},
    {"name": "report", "description": "Counts over jobs, as JSON or an HTML page."},
    {"name": "health", "description": "Probes; never need credentials."},
]


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="retailpulse API",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url=None,  # served by routes_docs from installed assets, not from a CDN
        redoc_url=None,
    )
    app.state.service = service
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=service.settings.max_request_bytes)
    # after BodyLimit: its gate is the outermost layer (timed, rate-limited before a body)
    service.security.install(app, service.store, queue_counts=service.dispatcher.counts)
    for router in (
        routes_seed.router,
        routes_jobs.router,
        routes_report.router,
        routes_health.router,
        routes_docs.router,
    ):
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, less the 422 answers it adds to every route with parameters:
    a bad parameter is a 400 in the one error shape here (and documented as such)."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        for path in doc.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None and "400" not in responses:
                    responses["400"] = {
                        "description": "A bad parameter (`message` names it).",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorBody"}
                            }
                        },
                    }
        schemas = doc.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        security_doc.document(doc, open_mode=app.state.service.settings.security.no_auth)
        app.openapi_schema = doc
    return app.openapi_schema
