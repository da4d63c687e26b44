"""What the OpenAPI document says about security: the bearer scheme (an API token or a
JWT) on every route that needs one, and the answers it adds (401, 403, 429)."""

from __future__ import annotations

from typing import Any

from retailpulse_cli.server.security.gate import UNLIMITED_PATHS

SCHEME = "bearer"
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _answer(description: str, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
    if headers:
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return out


def document(doc: dict[str, Any], *, open_mode: bool) -> None:
    """Add the scheme and the answers to `doc` in place (nothing in --no-auth mode, where
    nobody is asked for credentials and nothing is limited unless --api-rate says so)."""
    if open_mode:
        return
    components = doc.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (`retailpulse token create`) or a JWT from the "
        "identity provider the server was started with.",
    }
    for path, operations in doc.get("paths", {}).items():
        if path in UNLIMITED_PATHS:
            continue
        for operation in operations.values():
            operation["security"] = [{SCHEME: []}]
            responses = operation.setdefault("responses", {})
            responses.setdefault(
                "401",
                _answer(
                    "No credentials, or ones that prove nothing.",
                    **{"WWW-Authenticate": 'Bearer (with error="invalid_token" if bad)'},
                ),
            )
            responses.setdefault(
                "403", _answer("The caller's role may not do this (or names no known role).")
            )
            responses.setdefault(
                "429",
                _answer(
                    "Over the caller's request rate, or (submits) its share of the queue.",
                    **{"Retry-After": "seconds to wait"},
                ),
            )
