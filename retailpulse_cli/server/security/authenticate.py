"""From a request's credentials to a Principal, or a refusal with its HTTP status.

Framework-free: the server's dependency passes the Authorization header (and the
dashboard's cookie); this decides. Messages never repeat what the client sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from retailpulse_cli.errors import RetailpulseError
from retailpulse_cli.server.security.jwt_auth import (
    InvalidToken,
    JwtVerifier,
    NoRole,
    looks_like_jwt,
)
from retailpulse_cli.server.security.roles import OPEN_PRINCIPAL, Action, Principal
from retailpulse_cli.server.security.tokens import TokenVerifier

MAX_CREDENTIAL_CHARS = 8192  # a JWT with many claims fits; a megabyte header does not


class AuthFailure(Exception):
    """Refused: `status` 401 (who are you?), 403 (not allowed) or 503 (cannot check)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def unauthenticated(message: str) -> AuthFailure:
    return AuthFailure(401, "unauthenticated", message)


def forbidden(principal: Principal, action: Action) -> AuthFailure:
    return AuthFailure(
        403,
        "forbidden",
        f"role {principal.role.value} may not {action.value} (user {principal.name})",
    )


@dataclass(frozen=True)
class Authenticator:
    """Tokens from tokens.json and/or JWTs; `open_mode` (--no-auth) lets everyone in."""

    tokens: TokenVerifier | None
    jwt: JwtVerifier | None = None
    open_mode: bool = False

    def principal(self, authorization: str | None, cookie_token: str | None = None) -> Principal:
        """The caller, from `Authorization: Bearer ...` or else the dashboard cookie."""
        if self.open_mode:
            return OPEN_PRINCIPAL
        credential = bearer(authorization) if authorization else cookie_token
        if not credential:
            raise unauthenticated("missing credentials: send Authorization: Bearer <token>")
        if len(credential) > MAX_CREDENTIAL_CHARS:
            raise unauthenticated("invalid token: too long")
        if self.jwt is not None and looks_like_jwt(credential):
            return self._from_jwt(self.jwt, credential)
        return self._from_token(credential)

    def _from_jwt(self, verifier: JwtVerifier, credential: str) -> Principal:
        try:
            return verifier.principal(credential)
        except InvalidToken as exc:
            raise unauthenticated(str(exc)) from None
        except NoRole as exc:
            raise AuthFailure(403, "forbidden", str(exc)) from None

    def _from_token(self, credential: str) -> Principal:
        if self.tokens is None:
            raise unauthenticated("invalid token")
        try:
            entry = self.tokens.verify(credential)
        except RetailpulseError as exc:  # tokens.json damaged: refuse everyone, say why
            raise AuthFailure(503, "auth_unavailable", exc.message) from None
        if entry is None:
            raise unauthenticated("invalid or revoked token")
        return Principal(name=entry.name, role=entry.role, via="token")


def bearer(authorization: str) -> str:
    """The credential of `Bearer <credential>`; 401 for any other scheme or shape."""
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        raise unauthenticated("use Authorization: Bearer <token>")
    return credential
