"""Who is calling. Until authentication exists (issue 19) everyone is the anonymous user
and the server binds only loopback addresses; the routes already ask for the caller
through `current_user`, so authentication replaces this one dependency."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class User:
    name: str
    roles: tuple[str, ...] = ()


ANONYMOUS = User("anonymous", roles=("submitter", "reader"))


async def current_user() -> User:
    """FastAPI dependency: the caller (anonymous today)."""
    return ANONYMOUS
