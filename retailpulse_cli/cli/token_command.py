"""`retailpulse token create|list|revoke`: the API tokens `retailpulse serve` accepts.

A group of subcommands; cli.app's COMMANDS lists it (`group.register`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer

from retailpulse_cli.cli.common import Command, examples

ROLE_HELP = "viewer (read its own jobs), submitter (also submit, retry, cancel), admin (all)"

JobsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--jobs-dir",
        help="The jobs directory the server uses (tokens.json lives there). "
        "[env: RETAILPULSE_JOBS_DIR; default: per-user data dir]",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only data and errors.")]


def _tokens_file(jobs_dir: Path | None) -> Path:
    from retailpulse_cli.config import options
    from retailpulse_cli.server.security.tokens import tokens_path
    from retailpulse_cli.storage.job_dir import default_jobs_dir

    if jobs_dir is None:
        jobs_dir = options.resolve({}, only={"jobs_dir"}).get("jobs_dir")
    return tokens_path(jobs_dir.expanduser() if jobs_dir else default_jobs_dir())


def create(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The user: its jobs are recorded as NAME's.")
    ],
    role: Annotated[str, typer.Option("--role", "-r", help=ROLE_HELP)],
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    jobs_dir: JobsDirOpt = None,
) -> None:
    """Make a token for NAME and print it, once: only its hash is kept."""
    from retailpulse_cli.server.security import tokens
    from retailpulse_cli.server.security.roles import ROLE_NAMES, parse_role
    from retailpulse_cli.ui import output as console

    parsed = parse_role(role)
    if parsed is None:
        raise typer.BadParameter(f"use {', '.join(ROLE_NAMES)}", param_hint="--role")
    path = _tokens_file(jobs_dir)
    token = tokens.create(path, name, parsed)
    with console.stdout_guard():
        if as_json:
            console.print_json({"name": name, "role": parsed.value, "token": token})
        else:
            sys.stdout.write(token + "\n")
    if not quiet:
        console.info_line(
            f"token for {name} ({parsed.value}) created in {path}; it is not shown again: "
            "clients send it as `Authorization: Bearer <token>`"
        )


def list_(as_json: JsonOpt = False, jobs_dir: JobsDirOpt = None) -> None:
    """The tokens: name, role, created, last used (never a secret)."""
    from retailpulse_cli.server.security import tokens
    from retailpulse_cli.text.escape import safe
    from retailpulse_cli.ui import output as console

    path = _tokens_file(jobs_dir)
    rows = [e.public() for e in tokens.read_entries(path)]
    with console.stdout_guard():
        if as_json:
            console.print_json(rows)
            return
        if not rows:
            console.info_line(f"no tokens in {path}")
            return
        table = [("name", "role", "created", "last used")]
        for r in rows:
            cells = (r["name"], r["role"], r["created_at"] or "-", r["last_used_at"] or "never")
            table.append(tuple(safe(str(c)) for c in cells))  # type: ignore[arg-type]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        for row in table:
            lead = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
            sys.stdout.write(f"{lead}  {row[3]}\n")


def revoke(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The token's name (`token list`).")],
    quiet: QuietOpt = False,
    jobs_dir: JobsDirOpt = None,
) -> None:
    """Remove NAME's token: a running server refuses it from its next request on.

    Exit codes: 0 revoked, 5 no token of that name."""
    from retailpulse_cli.server.security import tokens
    from retailpulse_cli.ui import output as console

    entry = tokens.revoke(_tokens_file(jobs_dir), name)
    if not quiet:
        console.info_line(f"revoked the token of {entry.name} ({entry.role.value})")


def _token_app(wrap: Callable[[Command], Command]) -> typer.Typer:
    token_app = typer.Typer(
        name="token",
        help="API tokens for `retailpulse serve`: create (shown once), list, revoke.",
        no_args_is_help=True,
        rich_markup_mode="markdown",
    )
    epilogs = {
        "create": examples("retailpulse token create ci-bot --role submitter"),
        "list": examples("retailpulse token list --json"),
        "revoke": examples("retailpulse token revoke ci-bot"),
    }
    for name, func in (("create", create), ("list", list_), ("revoke", revoke)):
        token_app.command(name=name, epilog=epilogs[name])(wrap(func))
    return token_app


class _TokenGroup:
    """What cli.app's COMMANDS expects of a module (`group.commands`, `group.register`),
    for a group of subcommands rather than commands."""

    commands: ClassVar[list[tuple[str, Callable[..., object], dict[str, Any]]]] = [
        ("token", _token_app, {})
    ]

    def register(
        self, app: typer.Typer, wrap: Callable[[Command], Command], only: str | None = None
    ) -> None:
        if only in (None, "token"):
            app.add_typer(_token_app(wrap), name="token")


group = _TokenGroup()
