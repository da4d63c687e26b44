"""The option group of every command that runs jobs, built from the option table
(config.options.OPTIONS): each command receives them as one `run_flags` (config.RunFlags),
and submit, resume, retry and inbox cannot drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from retailpulse_cli.cli.option_groups import ConfigOpt, option, with_group
from retailpulse_cli.config.options import OPTIONS, Option, RunFlags

F = TypeVar("F", bound=Callable[..., Any])
PANEL = "Run options (also from RETAILPULSE_<NAME> or the config file)"


def _parameter(opt: Option) -> inspect.Parameter:
    default_text = f" [default: {_default_text(opt)}]" if opt.default is not None else ""
    help_text = f"{opt.help}{default_text} [env: {opt.env}]"
    if opt.switch:
        switch = typer.Option(*opt.flags, help=help_text, rich_help_panel=PANEL)
        return option(opt.dest, Annotated[bool, switch], False)
    metavar = "MIN:MAX" if opt.name == "gpu-delay" else None
    flag = typer.Option(
        *opt.flags, help=help_text, show_default=False, metavar=metavar, rich_help_panel=PANEL
    )
    return option(opt.dest, Annotated[opt.flag_type | None, flag])


def _default_text(opt: Option) -> str:
    if isinstance(opt.default, tuple):
        return ":".join(f"{v:g}" for v in opt.default)
    if isinstance(opt.default, bool):
        return "off"
    return str(opt.default)


def _flags(given: dict[str, Any]) -> RunFlags:
    config_file = given.pop("config_file", None)
    return RunFlags(given, config_file)


def run_options(func: F) -> F:
    """Give `func` every run option plus --config; it receives them as `run_flags`."""
    extra = [_parameter(o) for o in OPTIONS]
    extra.append(option("config_file", ConfigOpt))
    return with_group(func, "run_flags", extra, _flags)
