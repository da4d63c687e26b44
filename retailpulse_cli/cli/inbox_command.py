"""`inbox`: cron batch mode, every job file dropped in a folder processed once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from retailpulse_cli.cli.common import CommandGroup, JsonOpt, examples, load_master, open_jobs
from retailpulse_cli.cli.option_groups import output_options
from retailpulse_cli.cli.run_commands import exit_after_run, open_log, run_planned
from retailpulse_cli.cli.run_options import run_options
from retailpulse_cli.config.options import RunFlags
from retailpulse_cli.ui.output import Output

if TYPE_CHECKING:
    from retailpulse_cli.jobs.inbox_run import InboxRow

group = CommandGroup()


@group.command(
    epilog=examples(
        "retailpulse inbox /data/inbox", "RETAILPULSE_RATE=5 retailpulse inbox /data/inbox --json"
    )
)
@run_options
@output_options
def inbox(
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder where job files are dropped.")
    ],
    as_json: JsonOpt = False,
    *,
    output: Output,
    run_flags: RunFlags,
) -> None:
    """Process every *.json job file in DIR once: each moves to DIR/done/ (job id in
    NAME.job beside it) or DIR/rejected/ (reasons in NAME.reason). Safe to start while
    another run is going: no file is taken twice. Prints `file<TAB>job_id<TAB>status`.

    Exit codes as for `submit` with several files.
    """
    from retailpulse_cli.config import options
    from retailpulse_cli.jobs import lifecycle, outcome, placement
    from retailpulse_cli.jobs.inbox_run import InboxRun
    from retailpulse_cli.ui.output import StderrNotes, info_line

    open_log(run_flags)
    resolved = run_flags.resolve()
    settings = options.settings_from(resolved)
    cluster = placement.placement(run_flags)
    lifecycle.check_sinks(settings)
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder", param_hint="DIR")
    # before claiming: a bad master must not strand files
    master = load_master(resolved.get("store_master"), run_flags.config_file)
    store = open_jobs(resolved.get("jobs_dir"), run_flags.config_file)
    batch = InboxRun(folder.resolve(), store, settings, run_flags, master, StderrNotes())
    with placement.engine_for(cluster) as engine:  # reached before a file is claimed
        planned, claims = batch.claim_and_plan()
        statuses = run_planned(planned, output=output, engine=engine) if planned else []
    batch.file_away(claims, statuses)
    print_rows(batch.rows, as_json)
    if not batch.rows and not output.quiet:
        info_line(f"inbox {batch.folder}: no job files")
    exit_after_run(statuses, outcome.combined_code(statuses, batch.rejected))


def print_rows(rows: list[InboxRow], as_json: bool) -> None:
    """`file<TAB>job_id<TAB>status` per file, or the rows as JSON."""
    from retailpulse_cli.text.escape import safe
    from retailpulse_cli.ui.output import print_json, print_lines, stdout_guard

    with stdout_guard():
        if as_json:
            print_json(rows)
        else:
            print_lines([f"{safe(r['file'])}\t{r['job_id'] or '-'}\t{r['status']}" for r in rows])
