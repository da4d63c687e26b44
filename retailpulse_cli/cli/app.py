"""The Typer app: its commands (one module per group, registered below), the one place
errors become a line and an exit code, and the entry point.

A command parses its options, calls the core (retailpulse_cli.jobs) and renders (ui).
Heavy modules (requests, Pillow, Rich, Dask) are imported inside the commands that need
them, so `status`, `list` and `results` start fast.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from retailpulse_cli import __version__
from retailpulse_cli.cli import (
    config_command,
    inbox_command,
    read_commands,
    report_commands,
    run_commands,
    validate_command,
)
from retailpulse_cli.errors import EXIT_CODE_HELP, ExitCode, RetailpulseError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_TEXT = "| code | meaning |\n|---:|---|\n" + "\n".join(
    f"| {int(c)} | {text} |" for c, text in EXIT_CODE_HELP.items()
)

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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retailpulse {__version__}")
        raise typer.Exit()


@app.callback()
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


# Every command, in the order `--help` lists them: a new command is a function in a module
# of its group (cli/*_command.py or cli/*_commands.py, declared with `group.command`), and a
# new group is one more module here.
for command_group in (
    run_commands,  # submit, resume, retry (and the hidden _worker)
    read_commands,  # status, results, schema, list
    validate_command,  # validate
    inbox_command,  # inbox
    config_command,  # config
    report_commands,  # report, prune
):
    command_group.group.register(app, wrap=handle_errors)


def main() -> None:
    """Console-script entry point."""
    from retailpulse_cli.ui.streams import protect_stderr, reopen_closed_std_fds

    reopen_closed_std_fds()  # `2>&-` in a crontab: /dev/null, not a dead job
    protect_stderr()  # losing the reader of progress and logs never stops a job
    try:
        app()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
