"""`serve`'s security options, an option group (cli.option_groups): the command receives
them as one `SecuritySettings`, `security`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from retailpulse_cli.cli.option_groups import option, with_group

F = TypeVar("F", bound=Callable[..., Any])
PANEL = "Security (see README, Service)"


def _flag(name: str, kind: Any, help_text: str, **kw: Any) -> Any:
    """One option: --NAME, also from RETAILPULSE_<NAME>; None (or False) when not given."""
    dest = name.replace("-", "_")
    env = "RETAILPULSE_" + dest.upper()
    flag = typer.Option(
        f"--{name}", help=help_text, envvar=env, rich_help_panel=PANEL, show_default=False, **kw
    )
    return option(dest, Annotated[kind, flag], False if kind is bool else None)


SECURITY_OPTIONS = [
    _flag("no-auth", bool, "No authentication at all (refused unless --host is loopback)."),
    _flag(
        "jwt-secret-file",
        Path | None,
        "Accept HS256 JWTs signed with this file's secret.",
        metavar="FILE",
    ),
    _flag(
        "jwt-public-key",
        Path | None,
        "Accept RS256/ES256 JWTs verified with this PEM public key.",
        metavar="FILE",
    ),
    _flag("jwt-audience", str | None, "Required JWT `aud`."),
    _flag("jwt-issuer", str | None, "Required JWT `iss`."),
    _flag(
        "api-rate",
        str | None,
        "Requests per user (per address without credentials): N/s, N/m, N/h; 0 for no "
        "limit. [default: 20/s; none with --no-auth]",
        metavar="RATE",
    ),
    _flag("api-burst", int | None, "Requests one caller may send at once. [default: 40]", min=1),
    _flag(
        "max-queued-per-user",
        int | None,
        "Queued jobs one user may have. [default: max(1, max-queued-jobs / 4); all with --no-auth]",
        min=1,
    ),
    _flag(
        "callback-secret-file",
        Path | None,
        "Sign callbacks (callback_url) with this file's content; without it callback_url "
        "is refused.",
        metavar="FILE",
    ),
]


def _settings(given: dict[str, Any]) -> Any:
    from retailpulse_cli.config.security_settings import SecuritySettings

    return SecuritySettings(**{k: v for k, v in given.items() if v is not None})


def security_options(func: F) -> F:
    """Give `func` the security options; it receives them as `security`."""
    return with_group(func, "security", SECURITY_OPTIONS, _settings)
