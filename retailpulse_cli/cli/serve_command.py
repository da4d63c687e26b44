"""`retailpulse serve`: parse the options, check what must hold before binding, hand over
to the server package. Kept thin: the service lives in retailpulse_cli/server/, the
queue and job logic in retailpulse_cli/jobs/."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from retailpulse_cli.cli.common import CommandGroup, examples
from retailpulse_cli.cli.option_groups import option, with_group
from retailpulse_cli.cli.run_options import run_options
from retailpulse_cli.cli.security_options import security_options
from retailpulse_cli.config import serve_settings as defaults
from retailpulse_cli.config.options import RunFlags
from retailpulse_cli.config.security_settings import SecuritySettings
from retailpulse_cli.config.serve_settings import ServeSettings
from retailpulse_cli.errors import ExitCode, RetailpulseError

F = TypeVar("F", bound=Callable[..., Any])
group = CommandGroup()
PANEL = "Service options"


class ServeUsageError(RetailpulseError):
    """One line, exit 2: the service cannot start as asked."""

    exit_code = ExitCode.USAGE


def _flag(
    name: str,
    kind: type,
    default: object,
    help: str,
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """One of serve's own options, as a parameter `with_group` adds to the signature. A
    short metavar (N, S, HOST) leaves room for whole option names in an 80-column help."""
    dest = name.removeprefix("--").replace("-", "_")
    metavar = None if kind is bool else {str: "HOST", float: "S"}.get(kind, "N")
    flag = typer.Option(name, help=help, min=min, max=max, metavar=metavar, rich_help_panel=PANEL)
    return option(dest, Annotated[kind, flag], default)


SERVE_OPTIONS = [
    _flag(
        "--host",
        str,
        defaults.DEFAULT_HOST,
        "Address to listen on; any with authentication, only loopback with --no-auth.",
    ),
    _flag("--port", int, defaults.DEFAULT_PORT, "Port; 0 picks a free one.", min=0, max=65535),
    _flag(
        "--concurrent-jobs",
        int,
        defaults.DEFAULT_CONCURRENT_JOBS,
        "Jobs run at once.",
        min=1,
        max=64,
    ),
    _flag(
        "--max-queued-jobs",
        int,
        defaults.DEFAULT_MAX_QUEUED_JOBS,
        "Jobs accepted and not started; past it 503.",
        min=1,
    ),
    _flag(
        "--grace",
        float,
        defaults.DEFAULT_GRACE,
        "Seconds SIGTERM gives running jobs to reach a safe point.",
        min=0.0,
    ),
    _flag(
        "--max-request-bytes",
        int,
        defaults.DEFAULT_MAX_REQUEST_BYTES,
        "Largest request body; past it 413.",
        min=1,
    ),
    _flag(
        "--allow-local-files", bool, False, "Let jobs from the network read file:// URLs and paths."
    ),
    _flag(
        "--allow-private-networks",
        bool,
        False,
        "Let jobs from the network reach loopback, private and link-local addresses.",
    ),
]


def serve_options(func: F) -> F:
    """serve's own options; the command receives them as one `settings` (ServeSettings)."""
    return with_group(func, "settings", SERVE_OPTIONS, lambda given: ServeSettings(**given))


@group.command(
    epilog=examples(
        "retailpulse serve", "retailpulse serve --port 0 --concurrent-jobs 4 --jobs-dir /data/jobs"
    )
)
@run_options
@serve_options
@security_options
def serve(
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No line per job; only errors.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also a line per HTTP request.")
    ] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colour.")] = False,
    *,
    settings: ServeSettings,
    security: SecuritySettings,
    run_flags: RunFlags,
) -> None:
    """Serve the HTTP API (the seed's /api/submit/ and /api/status, /v1, docs at /docs)
    over the jobs directory; jobs queue on disk and survive a crash.

    Needs `pip install 'retailpulse[server]'`. Run options apply to every job it runs;
    jobs from the network never read local files or private addresses unless allowed.
    Clients send `Authorization: Bearer <token>` (`retailpulse token create`) or a JWT.
    Exit codes: 0 stopped by SIGTERM/Ctrl-C, 2 bad usage (--no-auth with a non-loopback
    --host, a port in use, a bad key file, the extra missing), 4 store master problem,
    7 jobs directory not writable.
    """
    settings = dataclasses.replace(settings, security=security)
    host = settings.host
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
    from retailpulse_cli.cli.common import open_jobs
    from retailpulse_cli.cli.run_commands import open_log
    from retailpulse_cli.jobs import batch, lifecycle, placement
    from retailpulse_cli.server import runner
    from retailpulse_cli.server.planner import OptionPlanner
    from retailpulse_cli.ui.output import route_core_logs

    open_log(flags)
    route_core_logs()  # the results database's warnings while jobs run, as lines
    planner = OptionPlanner(flags.values, flags.config_file, settings)
    lifecycle.check_sinks(planner.for_new().settings)
    cluster = placement.placement(flags)
    store = open_jobs(flags.resolve(only={"jobs_dir"}).get("jobs_dir"), flags.config_file)
    batch.raise_open_files_limit()
    batch.limit_malloc_arenas()
    try:
        sock = runner.bind(settings.host, settings.port)
    except OSError as exc:  # the port is taken, or not ours to bind
        raise ServeUsageError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    with placement.engine_for(cluster) as engine:
        runner.run(settings, planner, store, sock, engine=engine, quiet=quiet, verbose=verbose)
    # A download thread stuck in a DNS lookup or a blocking read must not hold the exit
    # (the interpreter would join it): the jobs are on disk, and the next start resumes them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
