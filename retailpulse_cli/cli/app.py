"""The Typer app: its commands (one module per group, listed in COMMANDS), the one place
errors become a line and an exit code, and the entry point.

A command parses its options, calls the core (retailpulse_cli.jobs) and renders (ui).
Heavy modules (requests, Pillow, Rich, Dask) are imported inside the commands that need
them, and `main` builds the app with only the group of the command it runs: `status`,
`list` and `results` start about as fast as Typer itself (bench/startup.py).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from retailpulse_cli import __version__
from retailpulse_cli.errors import EXIT_CODE_HELP, ExitCode, RetailpulseError

F = TypeVar("F", bound=Callable[..., Any])

# Every command, in the order `--help` lists them, and the module of cli/ that declares it
# (with `group.command`). A new command: a function in its group's module and a line here;
# a new group: a module cli/NAME_command(s).py with `group = CommandGroup()`.
COMMANDS = {
    "submit": "run_commands",
    "_worker": "run_commands",  # hidden: the background worker `--detach` starts
    "resume": "run_commands",
    "retry": "run_commands",
    "status": "read_commands",
    "results": "read_commands",
    "schema": "read_commands",
    "list": "read_commands",
    "validate": "validate_command",
    "inbox": "inbox_command",
    "config": "config_command",
    "report": "report_commands",
    "prune": "report_commands",
    "serve": "serve_command",
    "export": "export_command",
    "token": "token_command",  # last: a group of subcommands (token create|list|revoke)
}

EXIT_CODES_TEXT = "| code | meaning |\n|---:|---|\n" + "\n".join(
    f"| {int(c)} | {text} |" for c, text in EXIT_CODE_HELP.items()
)


def new_app() -> typer.Typer:
    """The app with no commands yet (`build_app` adds them)."""
    app = typer.Typer(
        name="retailpulse",
        help=(
            "Check store visits against the store master, download and measure shelf photos, "
            "and keep each job's results on disk.\n\nExit codes:\n\n" + EXIT_CODES_TEXT
        ),
        rich_markup_mode="markdown",
        pretty_exceptions_enable=False,
        no_args_is_help=True,
        add_completion=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    return app


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retailpulse {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """retailpulse: shelf-photo jobs from the command line."""


def handle_errors(func: F) -> F:
    """The one place where exceptions become one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from retailpulse_cli.ui.output import error_line, hint_line

        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter, SystemExit):
            raise  # Typer's own: usage errors print their usage and exit 2
        except RetailpulseError as exc:
            from retailpulse_cli.errors import InvalidJobFile

            if isinstance(exc, InvalidJobFile) and len(exc.problems) > 1:
                for problem in exc.problems:
                    error_line(f"{exc.source}: {problem}")
            else:
                error_line(exc.message)
            if exc.hint:
                hint_line(exc.hint)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            error_line("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if os.environ.get("RETAILPULSE_DEBUG"):
                raise
            error_line(f"internal error: {type(exc).__name__}: {exc}")
            hint_line(
                "this is a bug; rerun with RETAILPULSE_DEBUG=1 for the traceback and report it"
            )
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


def build_app(command: str | None = None) -> typer.Typer:
    """The app with every command, or with only `command` (the one a run needs)."""
    app = new_app()
    if command in COMMANDS:
        module = importlib.import_module(f"retailpulse_cli.cli.{COMMANDS[command]}")
        module.group.register(app, wrap=handle_errors, only=command)
        return app
    for name in dict.fromkeys(COMMANDS.values()):
        module = importlib.import_module(f"retailpulse_cli.cli.{name}")
        module.group.register(app, wrap=handle_errors)
    return app


def __getattr__(name: str) -> typer.Typer:
    """`app`, the whole app (tests, `--help`), built on first use: `main` builds only
    the part it runs."""
    if name != "app":
        raise AttributeError(name)
    app = globals()["app"] = build_app()
    return app


def command_named(argv: list[str]) -> str | None:
    """The command in argv: its first word that is not an option (the app's own options
    take no value)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main() -> None:
    """Console-script entry point."""
    from retailpulse_cli.ui.streams import protect_stderr, reopen_closed_std_fds

    reopen_closed_std_fds()  # `2>&-` in a crontab: /dev/null, not a dead job
    protect_stderr()  # losing the reader of progress and logs never stops a job
    try:
        # not standalone: usage errors come back here, to be shown as our own lines
        code = build_app(command_named(sys.argv[1:]))(standalone_mode=False)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except typer.Abort:
        sys.stderr.write("Aborted!\n")
        sys.exit(1)
    except click_error() as exc:
        sys.exit(usage_error(exc))
    sys.exit(code if isinstance(code, int) else 0)


def click_error() -> type[Exception]:
    """Click's ClickException (usage errors derive from it), as this Typer has it: its own
    copy of Click since 0.2x, Click itself before, so found by name, not imported."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def usage_error(error: Exception) -> int:
    """A bad flag or a missing argument: Typer's box on a terminal; elsewhere (cron, a
    pipe, a log) one error line and one hint line like every other error, not a box
    drawn around a message with a timestamp on each of its lines. Returns the exit code."""
    exc: Any = error  # a ClickException: exit_code, format_message(), maybe ctx
    if type(exc).__name__ == "NoArgsIsHelpError":
        return int(exc.exit_code)  # the help is printed already
    if sys.stderr.isatty():
        from typer import rich_utils

        rich_utils.rich_format_error(exc)
        return int(exc.exit_code)
    from retailpulse_cli.ui.output import error_line, hint_line

    error_line(exc.format_message())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        usage = ctx.get_usage().removeprefix("Usage: ")
        hint_line(f"usage: {usage}; `{ctx.command_path} --help` lists the options")
    return int(exc.exit_code)


if __name__ == "__main__":
    main()
