"""`config`: the effective run settings and where each comes from."""

from __future__ import annotations

from retailpulse_cli.cli.common import CommandGroup, JsonOpt, examples
from retailpulse_cli.cli.run_options import run_options
from retailpulse_cli.config.options import RunFlags

group = CommandGroup()


@group.command(
    name="config",
    epilog=examples(
        "retailpulse config", "RETAILPULSE_RATE=2 retailpulse config --config nightly.toml --json"
    ),
)
@run_options
def config_(as_json: JsonOpt = False, *, run_flags: RunFlags) -> None:
    """Print the effective run settings and where each comes from: the flag, a
    `RETAILPULSE_<NAME>` variable, the config file (TOML, keys are the long option
    names), or the default. Run options given here show as `flag`. Every value is
    checked as a run checks it (exit 2 naming where a bad one came from).
    """
    from retailpulse_cli.config import options
    from retailpulse_cli.jobs import placement
    from retailpulse_cli.storage.job_dir import default_jobs_dir
    from retailpulse_cli.storage.store_master import default_path
    from retailpulse_cli.text.escape import safe
    from retailpulse_cli.ui.output import print_json, print_lines, stdout_guard

    resolved = run_flags.resolve()
    options.settings_from(resolved)  # what submit builds: a value it refuses, refused here
    placement.placement(run_flags)  # --cluster parsed (and Dask found) as a run does
    decided = {"jobs_dir": default_jobs_dir(), "store_master": default_path()}
    rows = options.describe(resolved, decided)
    with stdout_guard():
        if as_json:
            print_json({"config_file": str(resolved.config_file or ""), "settings": rows})
            return
        where = resolved.config_file or "none (no config file found)"
        width = max(len(r["option"]) for r in rows)
        values = [safe(str(shown(r["value"]))) for r in rows]
        room = max(14, *map(len, values))  # the sources line up, after a long path too
        lines = [f"config file: {safe(str(where))}"]
        lines += [
            f"{r['option']:<{width}}  {value:<{room}} {r['source']}"
            for r, value in zip(rows, values, strict=True)
        ]
        print_lines(lines)


def shown(value: object) -> object:
    """A setting's value as the table shows it: `-` for none, MIN:MAX for a range."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return ":".join(f"{v:g}" for v in value)
    return value
