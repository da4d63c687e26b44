"""`retailpulse serve`: parse the options, check what must hold before binding, hand over
to the server package. Kept thin: the service lives in retailpulse_cli/server/, the
queue and job logic in retailpulse_cli/jobs/."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from retailpulse_cli.cli.run_options import RunFlags, run_options
from retailpulse_cli.config import serve_settings as defaults
from retailpulse_cli.config.security_settings import SecuritySettings
from retailpulse_cli.errors import ExitCode, RetailpulseError

if TYPE_CHECKING:
    from retailpulse_cli.config.serve_settings import ServeSettings

EPILOG = (
    "**Examples**\n\n`retailpulse serve`\n\n"
    "`retailpulse serve --port 0 --concurrent-jobs 4 --jobs-dir /data/jobs`"
)


class ServeUsageError(RetailpulseError):
    """One line, exit 2: the service cannot start as asked."""

    exit_code = ExitCode.USAGE


def serve(
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on; any with authentication, loopback with --no-auth."
        ),
    ] = defaults.DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port; 0 picks a free one.")
    ] = defaults.DEFAULT_PORT,
    concurrent_jobs: Annotated[
        int, typer.Option("--concurrent-jobs", min=1, max=64, help="Jobs run at once.")
    ] = defaults.DEFAULT_CONCURRENT_JOBS,
    max_queued_jobs: Annotated[
        int,
        typer.Option(
            "--max-queued-jobs", min=1, help="Jobs accepted and not started; past it 503."
        ),
    ] = defaults.DEFAULT_MAX_QUEUED_JOBS,
    grace: Annotated[
        float,
        typer.Option(
            "--grace", min=0.0, help="Seconds SIGTERM gives running jobs to reach a safe point."
        ),
    ] = defaults.DEFAULT_GRACE,
    max_request_bytes: Annotated[
        int,
        typer.Option("--max-request-bytes", min=1, help="Largest request body; past it 413."),
    ] = defaults.DEFAULT_MAX_REQUEST_BYTES,
    allow_local_files: Annotated[
        bool,
        typer.Option(
            "--allow-local-files", help="Let jobs from the network read file:// URLs and paths."
        ),
    ] = False,
    allow_private_networks: Annotated[
        bool,
        typer.Option(
            "--allow-private-networks",
            help="Let jobs from the network reach loopback, private and link-local addresses.",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No line per job; only errors.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also a line per HTTP request.")
    ] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colour.")] = False,
    *,
    run_flags: RunFlags,
    security: SecuritySettings,
) -> None:
    """Serve the HTTP API (the seed's /api/submit/ and /api/status, /v1, docs at /docs)
    over the jobs directory; jobs queue on disk and survive a crash.

    Needs `pip install 'retailpulse[server]'`. Run options apply to every job it runs;
    jobs from the network never read local files or private addresses unless allowed.
    Exit codes: 0 stopped by SIGTERM/Ctrl-C, 2 bad usage (a non-loopback --host, a port
    in use, the extra missing), 4 store master problem, 7 jobs directory not writable.
    """
    settings = defaults.ServeSettings(
        host=host,
        port=port,
        concurrent_jobs=concurrent_jobs,
        max_queued_jobs=max_queued_jobs,
        grace=grace,
        max_request_bytes=max_request_bytes,
        allow_local_files=allow_local_files,
        allow_private_networks=allow_private_networks,
        security=security,
    )
    if security.no_auth and not is_loopback(host):
        raise ServeUsageError(
            f"--host {host}: --no-auth serves anyone who can connect, so it listens only on "
            "loopback addresses (127.0.0.1, ::1, localhost)",
            hint="drop --no-auth and give clients tokens (`retailpulse token create`)",
        )
    _require_extra()
    _serve(settings, run_flags, quiet=quiet, verbose=verbose)


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback one."""
    import ipaddress
    import socket

    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = {str(info[4][0]) for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def _require_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ServeUsageError(f"serve needs the server extra: {defaults.SERVER_EXTRA}") from None


def _serve(settings: ServeSettings, flags: RunFlags, *, quiet: bool, verbose: bool) -> None:
    from retailpulse_cli.cli import app as cli
    from retailpulse_cli.server import runner
    from retailpulse_cli.server.planner import OptionPlanner

    cli._open_log(flags)
    planner = OptionPlanner(flags.values, flags.config_file, settings)
    cli.check_store(planner.for_new().settings)
    place = cli.where(flags)
    store = cli._jobs_store(flags.values.get("jobs_dir"))
    cli.raise_open_files_limit()
    cli.limit_malloc_arenas()
    try:
        sock = runner.bind(settings.host, settings.port)
    except OSError as exc:  # the port is taken, or not ours to bind
        raise ServeUsageError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    with cli.engine_for(place) as engine:
        runner.run(settings, planner, store, sock, engine=engine, quiet=quiet, verbose=verbose)
    # A download thread stuck in a DNS lookup or a blocking read must not hold the exit
    # (the interpreter would join it): the jobs are on disk, and the next start resumes them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def register(app: typer.Typer) -> None:
    """Add `serve` to the CLI (the one line in cli/app.py calls this)."""
    from retailpulse_cli.cli.app import handle_errors
    from retailpulse_cli.cli.security_options import security_options

    app.command(name="serve", epilog=EPILOG)(handle_errors(run_options(security_options(serve))))
