"""What the routes share: the jobs directory, the queue, the service's settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from retailpulse_cli.config.serve_settings import ServeSettings
from retailpulse_cli.errors import InvalidJobFile
from retailpulse_cli.jobs.dispatcher import Dispatcher
from retailpulse_cli.processing import spec
from retailpulse_cli.server.security.dependencies import owner_meta
from retailpulse_cli.server.security.install import Security
from retailpulse_cli.server.security.roles import Principal
from retailpulse_cli.storage.job_dir import JobStore

SOURCE = "<http>"  # a job's `source` when it came over HTTP (as `<stdin>` for stdin)


@dataclass(frozen=True)
class Service:
    store: JobStore
    dispatcher: Dispatcher
    settings: ServeSettings
    base_dir: Path  # where relative image paths point, if local files are allowed at all
    security: Security  # who may call, how often, and their callbacks (server/security/)

    def parse(self, body: bytes) -> spec.JobSpec:
        """A request body as a job file; InvalidJobFile lists every problem."""
        if not body:
            raise InvalidJobFile(SOURCE, ["empty request body, expected a job file (JSON)"])
        return spec.parse(body, source=SOURCE, base_dir=self.base_dir)

    def meta(self, user: Principal) -> dict[str, Any]:
        """What meta.json keeps about who submitted it (its owner) and how."""
        return {"origin": "http", **owner_meta(user)}


async def get_service(request: Request) -> Service:
    """FastAPI dependency: the Service the app was made with. `async`, as every
    dependency here: FastAPI runs a plain `def` one in a worker thread, a hop that cost
    more than the whole status read."""
    service: Service = request.app.state.service
    return service
