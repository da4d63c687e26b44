"""What the command modules share: the command group each one declares, help examples,
completion, single options, and reaching the jobs directory and the store master.

Heavy modules (requests, Pillow, Rich, Dask) are imported inside the commands that need
them, never here: `status --json`, `list --json` and `results` start fast.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retailpulse_cli.errors import ExitCode

if TYPE_CHECKING:
    from retailpulse_cli.storage.job_dir import JobStore
    from retailpulse_cli.storage.store_master import StoreMaster

Command = Callable[..., None]


class CommandGroup:
    """The commands of one module, in the order `--help` lists them; cli.app registers
    them on the app (all, or only the one a run needs)."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, Command, dict[str, Any]]] = []

    def command(self, **options: Any) -> Callable[[Command], Command]:
        """Declare a command; `options` are Typer's (name, epilog, hidden, ...)."""

        def add(func: Command) -> Command:
            name = options.get("name") or func.__name__.replace("_", "-")
            self.commands.append((name, func, options))
            return func

        return add

    def register(
        self, app: typer.Typer, wrap: Callable[[Command], Command], only: str | None = None
    ) -> None:
        """Add the commands to `app` (with `only`, just that one), each wrapped by `wrap`."""
        for name, func, options in self.commands:
            if only is None or name == only:
                app.command(**options)(wrap(func))


def examples(*lines: str) -> str:
    """A command's help ends with examples (shown after the options)."""
    return "**Examples**\n\n" + "\n\n".join(f"`{line}`" for line in lines)


def complete_job_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for JOB_ID: the ids in --jobs-dir (if typed already) or the default."""
    try:
        store = open_jobs(ctx.params.get("jobs_dir"), ctx.params.get("config_file"))
        return [j for j in store.job_ids() if j.startswith(incomplete)]
    except Exception:  # completion must never print a traceback into the shell
        return []


def choices(*values: str) -> Callable[[str], list[str]]:
    return lambda incomplete: [v for v in values if v.startswith(incomplete.lower())]


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (nothing else on stdout).")
]
DetachOpt = Annotated[
    bool,
    typer.Option("--detach", "-d", help="Return at once; a background worker does the work."),
]
StoreMasterOpt = Annotated[
    str | None,  # a path, checked as the run option is (an empty one is refused)
    typer.Option(
        "--store-master",
        help="Store master CSV. [env: RETAILPULSE_STORE_MASTER; default: the shipped one]",
        show_default=False,
    ),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="WHEN",
        help="Only jobs created at or after WHEN: an ISO 8601 date or date-time (UTC unless "
        "an offset is given), today, yesterday, or an age: 30s, 30m, 24h, 7d.",
    ),
]
JobIdArg = Annotated[
    str, typer.Argument(help="Job id, as printed by submit.", autocompletion=complete_job_ids)
]


def open_jobs(jobs_dir: str | Path | None, config_file: Path | None) -> JobStore:
    """--jobs-dir, else RETAILPULSE_JOBS_DIR, else the config file, else the default:
    each checked as the run option is (an empty value is refused, from any of them)."""
    from retailpulse_cli.config import options
    from retailpulse_cli.storage.job_dir import JobStore, default_jobs_dir

    given = {"jobs_dir": jobs_dir}
    resolved = options.resolve(given, config_file=config_file, only={"jobs_dir"})
    return JobStore(resolved.get("jobs_dir") or default_jobs_dir())


def load_master(path: str | Path | None, config_file: Path | None) -> StoreMaster:
    """--store-master, else RETAILPULSE_STORE_MASTER, else the config file, else the
    shipped one (checked as `open_jobs` checks the jobs dir)."""
    from retailpulse_cli.config import options
    from retailpulse_cli.storage import store_master

    given = {"store_master": path}
    resolved = options.resolve(given, config_file=config_file, only={"store_master"})
    return store_master.load(store_master.resolve_path(resolved.get("store_master")))


def stdin_once(job_files: list[str]) -> None:
    """`-` (stdin) can be read once."""
    if job_files.count("-") > 1:
        raise typer.BadParameter("stdin (-) can be given only once", param_hint="JOB_FILE...")


def parse_since_option(text: str | None) -> datetime | None:
    """--since WHEN as a datetime; a bad value is one line and the usage exit code."""
    from retailpulse_cli.jobs.read import parse_since
    from retailpulse_cli.ui.output import error_line

    if text is None:
        return None
    try:
        return parse_since(text)
    except ValueError as exc:
        error_line(f"--since: {exc}")
        raise typer.Exit(int(ExitCode.USAGE)) from None
