"""`validate`: check job files and their store ids; create nothing."""

from __future__ import annotations

from typing import Annotated

import typer

from retailpulse_cli.cli.common import (
    CommandGroup,
    JsonOpt,
    StoreMasterOpt,
    examples,
    load_master,
    stdin_once,
)
from retailpulse_cli.cli.option_groups import ReadOptions, master_options
from retailpulse_cli.errors import ExitCode

group = CommandGroup()


@group.command(
    epilog=examples(
        "retailpulse validate examples/jobs/*.json", "cat job.json | retailpulse validate - --json"
    )
)
@master_options
def validate(
    job_files: Annotated[
        list[str], typer.Argument(metavar="JOB_FILE...", help="Job files; - reads stdin.")
    ],
    as_json: JsonOpt = False,
    store_master: StoreMasterOpt = None,
    *,
    read: ReadOptions,
) -> None:
    """Check job files and their store ids without creating a job or downloading anything.

    Exit codes: 0 valid, 1 valid but some store ids are not in the store master (the job
    would end `failed`), 3 invalid, 4 store master problem.
    """
    from retailpulse_cli.jobs.validate import validate_files
    from retailpulse_cli.processing.spec import problem_objects
    from retailpulse_cli.ui.output import print_json, stdout_guard

    stdin_once(job_files)
    rows = validate_files(job_files, load_master(store_master, read.config_file))
    with stdout_guard():
        if as_json:
            print_json([{**r, "problems": problem_objects(r["problems"])} for r in rows])
        else:
            from retailpulse_cli.ui.console import show_validation

            show_validation(read.output, rows)
    if any(not r["valid"] for r in rows):
        raise typer.Exit(int(ExitCode.INVALID_INPUT))
    raise typer.Exit(int(ExitCode.JOB_FAILED) if any(r["unknown_stores"] for r in rows) else 0)
