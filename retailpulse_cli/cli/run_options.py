"""One option set for every command that runs jobs, built from `config.OPTIONS`.

Typer reads a command's parameters from its signature, so `run_options` adds the shared
options to the signature and hands the command one `RunFlags` instead of fifteen loose
parameters: submit, resume, retry and inbox cannot drift apart (`inbox --rate` once did).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from retailpulse_cli.config.options import OPTIONS, Option

F = TypeVar("F", bound=Callable[..., Any])
PANEL = "Run options (also from RETAILPULSE_<NAME> or the config file)"


@dataclass(frozen=True)
class RunFlags:
    """What was given on the command line: dest -> value (None = not given)."""

    values: dict[str, Any]
    config_file: Path | None


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="TOML config file. [env: RETAILPULSE_CONFIG; default: the per-user one]",
        show_default=False,
    ),
]


def _parameter(opt: Option) -> inspect.Parameter:
    default_text = f" [default: {_default_text(opt)}]" if opt.default is not None else ""
    help_text = f"{opt.help}{default_text} [env: {opt.env}]"
    if opt.switch:
        annotation: Any = Annotated[
            bool, typer.Option(*opt.flags, help=help_text, rich_help_panel=PANEL)
        ]
        default: Any = False
    else:
        metavar = "MIN:MAX" if opt.name == "gpu-delay" else None
        annotation = Annotated[
            opt.flag_type | None,
            typer.Option(
                *opt.flags,
                help=help_text,
                show_default=False,
                metavar=metavar,
                rich_help_panel=PANEL,
            ),
        ]
        default = None
    return inspect.Parameter(
        opt.dest, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _default_text(opt: Option) -> str:
    if isinstance(opt.default, tuple):
        return ":".join(f"{v:g}" for v in opt.default)
    if isinstance(opt.default, bool):
        return "off"
    return str(opt.default)


def run_options(func: F) -> F:
    """Give `func` every run option plus --config; it receives them as `run_flags`."""
    own = inspect.signature(func, eval_str=True)
    kept = [p for name, p in own.parameters.items() if name != "run_flags"]
    extra = [_parameter(o) for o in OPTIONS]
    extra.append(
        inspect.Parameter(
            "config_file", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOpt
        )
    )
    names = {o.dest for o in OPTIONS}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        flags = RunFlags(values, kwargs.pop("config_file", None))
        return func(*args, run_flags=flags, **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept] + extra
    wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read our signature, not the original's
    return wrapper  # type: ignore[return-value]
