"""Option groups: options several commands share, declared once.

Typer reads a command's parameters from its signature, so a group adds its options to
the signature and hands the command one object instead of loose parameters: commands
cannot drift apart (`inbox --rate` once did). `run_options` (cli.run_options) is the run
commands' group; here are the output options every command takes and the read options
of the commands that read jobs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

import typer

from retailpulse_cli.ui.output import Output

F = TypeVar("F", bound=Callable[..., Any])
KEYWORD = inspect.Parameter.KEYWORD_ONLY


def with_group(
    func: F,
    receive: str | None,
    extra: list[inspect.Parameter],
    build: Callable[[dict[str, Any]], Any],
) -> F:
    """`func` with the `extra` options added to its signature; the values given for them
    reach `func` as one keyword argument, `receive`, made by `build(values)` (with
    `receive` None, the options are accepted and dropped)."""
    own = inspect.signature(func, eval_str=True)
    kept = [p.replace(kind=KEYWORD) for name, p in own.parameters.items() if name != receive]
    names = {p.name for p in extra}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        if receive is not None:
            kwargs[receive] = build(given)
        return func(*args, **kwargs)

    params = kept + extra
    wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read our signature, not the original's
    return wrapper  # type: ignore[return-value]


def option(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, KEYWORD, default=default, annotation=annotation)


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only data and errors.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="A line per image on stderr.")]
NoColor = Annotated[bool, typer.Option("--no-color", help="No colour (also: NO_COLOR env var).")]
JobsDir = Annotated[
    str | None,  # a path, checked as the run option is (an empty one is refused)
    typer.Option(
        "--jobs-dir",
        help="Where jobs live. [env: RETAILPULSE_JOBS_DIR; default: per-user data dir]",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="TOML config file. [env: RETAILPULSE_CONFIG; default: the per-user one]",
        show_default=False,
    ),
]
OUTPUT_OPTIONS = [
    option("quiet", Quiet, False),
    option("verbose", Verbose, False),
    option("no_color", NoColor, False),
]


def _output(given: dict[str, Any]) -> Output:
    return Output(quiet=given["quiet"], verbose=given["verbose"], no_color=given["no_color"])


def output_options(func: F) -> F:
    """--quiet, --verbose, --no-color; the command receives them as `output`."""
    return with_group(func, "output", OUTPUT_OPTIONS, _output)


def ignored_output_options(func: F) -> F:
    """The output options, accepted by a command that has nothing to say but its data."""
    return with_group(func, None, OUTPUT_OPTIONS, _output)


class ReadOptions(NamedTuple):
    """What a command that reads jobs was given besides its own options."""

    output: Output
    config_file: Path | None  # --config: its jobs-dir and store-master count here too
    jobs_dir: Path | None = None  # --jobs-dir (None: variable, config file or default)


def read_options(func: F) -> F:
    """--jobs-dir, the output options and --config; the command receives them as `read`."""
    extra = [option("jobs_dir", JobsDir), *OUTPUT_OPTIONS, option("config_file", ConfigOpt)]
    return with_group(func, "read", extra, _read)


def master_options(func: F) -> F:
    """As `read_options` without --jobs-dir: for a command that reads no job (validate)."""
    extra = [*OUTPUT_OPTIONS, option("config_file", ConfigOpt)]
    return with_group(func, "read", extra, _read)


def _read(given: dict[str, Any]) -> ReadOptions:
    return ReadOptions(_output(given), given["config_file"], given.get("jobs_dir"))
