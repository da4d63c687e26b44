"""`serve`'s security options, added to its signature in one decorator (like run_options):
the command receives one `SecuritySettings` as `security`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])
PANEL = "Security (see README, Service)"


def _opt(name: str, help_text: str, **kw: Any) -> Any:
    env = "RETAILPULSE_" + name.upper().replace("-", "_")
    return typer.Option(f"--{name}", help=help_text, envvar=env, rich_help_panel=PANEL, **kw)


SECURITY_PARAMETERS: dict[str, tuple[Any, Any]] = {
    "no_auth": (
        Annotated[
            bool,
            _opt("no-auth", "No authentication at all (refused unless --host is loopback)."),
        ],
        False,
    ),
    "jwt_secret_file": (
        Annotated[
            Path | None,
            _opt(
                "jwt-secret-file",
                "Accept HS256 JWTs signed with this file's secret.",
                metavar="FILE",
                show_default=False,
            ),
        ],
        None,
    ),
    "jwt_public_key": (
        Annotated[
            Path | None,
            _opt(
                "jwt-public-key",
                "Accept RS256/ES256 JWTs verified with this PEM public key.",
                metavar="FILE",
                show_default=False,
            ),
        ],
        None,
    ),
    "jwt_audience": (
        Annotated[str | None, _opt("jwt-audience", "Required JWT `aud`.", show_default=False)],
        None,
    ),
    "jwt_issuer": (
        Annotated[str | None, _opt("jwt-issuer", "Required JWT `iss`.", show_default=False)],
        None,
    ),
    "api_rate": (
        Annotated[
            str | None,
            _opt(
                "api-rate",
                "Requests per user (per address without credentials): N/s, N/m; "
                "0 for no limit. [default: 20/s; none with --no-auth]",
                metavar="RATE",
                show_default=False,
            ),
        ],
        None,
    ),
    "api_burst": (
        Annotated[
            int | None,
            _opt(
                "api-burst",
                "Requests one caller may send at once. [default: 40]",
                min=1,
                show_default=False,
            ),
        ],
        None,
    ),
    "max_queued_per_user": (
        Annotated[
            int | None,
            _opt(
                "max-queued-per-user",
                "Queued jobs one user may have. [default: max(1, max-queued-jobs / 4)]",
                min=1,
                show_default=False,
            ),
        ],
        None,
    ),
    "callback_secret_file": (
        Annotated[
            Path | None,
            _opt(
                "callback-secret-file",
                "Sign callbacks (callback_url) with this file's "
                "content; without it callback_url is refused.",
                metavar="FILE",
                show_default=False,
            ),
        ],
        None,
    ),
}


def security_options(func: F) -> F:
    """Give `func` the security options; it receives them as `security`."""
    from retailpulse_cli.config.security_settings import SecuritySettings

    own = inspect.signature(func, eval_str=True)
    kept = [p for name, p in own.parameters.items() if name != "security"]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)
        for name, (hint, default) in SECURITY_PARAMETERS.items()
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {k: kwargs.pop(k) for k in list(kwargs) if k in SECURITY_PARAMETERS}
        chosen = {k: v for k, v in given.items() if v is not None}
        return func(*args, security=SecuritySettings(**chosen), **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept] + extra
    wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read our signature, not the original's
    return wrapper  # type: ignore[return-value]
