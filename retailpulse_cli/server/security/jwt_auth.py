"""JSON Web Tokens from a team's identity provider (PyJWT).

One key, one pinned algorithm list: a shared secret verifies HS256 only; an RSA public
key RS256 only; an EC key ES256/384/512 by its curve. Pinning is what defeats `alg: none`
and the algorithm confusion attack (an HS256 token "signed" with the public key's PEM
text): PyJWT refuses any algorithm not in the list before it looks at the signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from retailpulse_cli.errors import ConfigError
from retailpulse_cli.server.security.roles import Principal, Role, parse_role

LEEWAY_SECONDS = 10  # clock skew allowed on exp and nbf
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash
MAX_SUBJECT_CHARS = 200
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class InvalidToken(Exception):
    """A JWT that does not prove anything (401); the message never holds the token."""


class NoRole(Exception):
    """A valid JWT whose claims name no role we know (403)."""


@dataclass(frozen=True)
class JwtVerifier:
    key: Any  # bytes (HS256) or a cryptography public key
    algorithms: tuple[str, ...]
    audience: str | None = None
    issuer: str | None = None
    leeway: float = LEEWAY_SECONDS

    def principal(self, token: str) -> Principal:
        """The caller a valid token names; InvalidToken or NoRole otherwise."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {_reason(exc)}") from None
        return Principal(name=_subject(claims), role=role_from(claims), via="jwt")


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


def _subject(claims: dict[str, Any]) -> str:
    sub = claims.get("sub")
    if (
        not isinstance(sub, str)
        or not sub.strip()
        or len(sub) > MAX_SUBJECT_CHARS
        or not sub.isprintable()
    ):
        raise InvalidToken(
            f"invalid token: sub must be a printable string of 1-{MAX_SUBJECT_CHARS} chars"
        )
    return sub


def role_from(claims: dict[str, Any]) -> Role:
    """The `role` claim, else the first known role in `roles`."""
    role = parse_role(claims.get("role"))
    if role is None and isinstance(claims.get("roles"), list):
        role = next((r for r in map(parse_role, claims["roles"]) if r is not None), None)
    if role is None:
        raise NoRole("the token names no role: give it a role claim (viewer, submitter or admin)")
    return role


def from_files(
    *,
    secret_file: Path | None,
    public_key_file: Path | None,
    audience: str | None = None,
    issuer: str | None = None,
) -> JwtVerifier | None:
    """The verifier `serve`'s --jwt-* options describe; None when JWTs are not turned on."""
    if secret_file is not None and public_key_file is not None:
        raise ConfigError("give --jwt-secret-file or --jwt-public-key, not both")
    if secret_file is not None:
        return JwtVerifier(_secret(secret_file), ("HS256",), audience, issuer)
    if public_key_file is not None:
        key, algorithm = _public_key(public_key_file)
        return JwtVerifier(key, (algorithm,), audience, issuer)
    if audience is not None or issuer is not None:
        raise ConfigError("--jwt-audience/--jwt-issuer need --jwt-secret-file or --jwt-public-key")
    return None


def _read(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None


def _secret(path: Path) -> bytes:
    secret = _read(path, "--jwt-secret-file").rstrip(b"\r\n")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"--jwt-secret-file: {path} holds {len(secret)} bytes; HS256 needs at least "
            f"{MIN_SECRET_BYTES}",
            hint="make one with `openssl rand -hex 32 > FILE`",
        )
    return secret


def _public_key(path: Path) -> tuple[Any, str]:
    try:
        key = serialization.load_pem_public_key(_read(path, "--jwt-public-key"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"--jwt-public-key: {path} is not a PEM public key ({exc})",
            hint="give the identity provider's public key (-----BEGIN PUBLIC KEY-----)",
        ) from None
    if isinstance(key, rsa.RSAPublicKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        return key, _EC_ALGORITHMS[key.curve.name]
    raise ConfigError(f"--jwt-public-key: {path}: use an RSA or EC (P-256/384/521) public key")


def looks_like_jwt(credential: str) -> bool:
    """Three base64url parts, the first a JSON object (`eyJ`): tokens we issue never are."""
    return credential.startswith("eyJ") and credential.count(".") == 2
