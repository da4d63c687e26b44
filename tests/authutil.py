"""Helpers for the tests of the service's security: users with tokens, requests that
carry them, and the check that no token ever lands in a file or a log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from retailpulse_cli.server.security import tokens
from retailpulse_cli.server.security.roles import Role

from .conftest import KNOWN
from .imageserver import ImageServer
from .serveutil import Served, job_doc, visit


def make_tokens(jobs: Path, **roles: str) -> dict[str, str]:
    """A token per user (name=role), made as `retailpulse token create` makes them."""
    path = tokens.tokens_path(jobs)
    return {name: tokens.create(path, name, Role(role)) for name, role in roles.items()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Client:
    """One user's requests to one server."""

    def __init__(self, api: Served, token: str | None) -> None:
        self.api = api
        self.headers = bearer(token) if token else {}

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.api(path), headers=self.headers, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return requests.post(self.api(path), headers=self.headers, timeout=30, **kw)

    def submit(self, doc: dict[str, Any], path: str = "/v1/jobs") -> str:
        import json

        r = self.post(path, data=json.dumps(doc))
        assert r.status_code in (201, 202), r.text
        return str(r.json()["job_id"])

    def wait(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        while True:
            doc: dict[str, Any] = self.get(f"/v1/jobs/{job_id}").json()
            if doc.get("status") not in ("queued", "ongoing"):
                return doc
            assert time.monotonic() < deadline, f"job {job_id} still {doc.get('status')}"
            time.sleep(0.05)


def small_job(server: ImageServer, tag: str = "a") -> dict[str, Any]:
    return job_doc(visit(KNOWN[0], server.url(f"/img/48x36.png?{tag}")))


def files_holding(root: Path, secrets: list[str]) -> list[str]:
    """Every file under `root` whose bytes contain one of `secrets`."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s[:8]}..." for s in secrets if s.encode() in data]
    return found
