"""The commands that read jobs: status, results, list, and schema (the job file's format).

`status --json`, `list --json` and `results` print through ui.output alone: they import
neither Rich nor the download machinery, and start about as fast as Typer itself.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from retailpulse_cli.cli.common import (
    CommandGroup,
    JobIdArg,
    JsonOpt,
    SinceOpt,
    choices,
    complete_job_ids,
    examples,
    open_jobs,
    parse_since_option,
)
from retailpulse_cli.cli.option_groups import ReadOptions, ignored_output_options, read_options
from retailpulse_cli.errors import ExitCode, WaitTimeout
from retailpulse_cli.model import JobState, JobStatus
from retailpulse_cli.ui.output import Output

if TYPE_CHECKING:
    from retailpulse_cli.storage.job_dir import Job

group = CommandGroup()
STATES = ", ".join(state.value for state in JobState)


@group.command(
    epilog=examples(
        "retailpulse status $JOB",
        "retailpulse status --wait --timeout 600 --json $JOB | jq '.error[]'",
    )
)
@read_options
def status(
    job_id: JobIdArg,
    as_json: JsonOpt = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Block until the job ends; exit with its outcome code.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.0, help="With --wait: give up after this many seconds (exit 8)."
        ),
    ] = None,
    *,
    read: ReadOptions,
) -> None:
    """Show a job's status, counts and errors.

    `ongoing` jobs whose worker died show as `interrupted`. Exit codes: 0 shown, 5 no such
    job, 7 damaged job directory; with --wait the job's outcome (0, 1, 130, 143) or 8.
    """
    from retailpulse_cli.jobs.read import read_status
    from retailpulse_cli.ui.output import print_json, stdout_guard

    job = open_jobs(read.jobs_dir, read.config_file).job(job_id)
    current = read_status(job)
    code: int | None = None
    if wait:
        current, code = wait_for_end(job, current, timeout, read.output)
    with stdout_guard():
        if as_json:
            print_json(current)
        else:
            from retailpulse_cli.ui.console import show_status

            show_status(read.output, current)
    if code is not None:
        raise typer.Exit(code)


def wait_for_end(
    job: Job, current: JobStatus, timeout: float | None, output: Output
) -> tuple[JobStatus, int]:
    """--wait: the status once the job ended and its outcome code; on a timeout the status
    as it stands (scripts log it) and exit code 8."""
    from retailpulse_cli.jobs.outcome import outcome_code
    from retailpulse_cli.jobs.read import read_status, wait_for
    from retailpulse_cli.ui.output import error_line, hint_line, info_line
    from retailpulse_cli.ui.progress import StatusWatch

    try:
        with StatusWatch(output) as watch:  # a live bar on a terminal only
            current = wait_for(job, timeout, on_poll=watch.update)
        return current, outcome_code(current)
    except KeyboardInterrupt:
        info_line(f"stopped waiting; job {job.id} goes on (status: {current['status']})")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except WaitTimeout as exc:
        error_line(exc.message)
        hint_line(exc.hint)
        return read_status(job), int(ExitCode.WAIT_TIMEOUT)


@group.command(
    epilog=examples(
        "retailpulse results $JOB --failed", "retailpulse results $JOB --format csv > results.csv"
    )
)
@read_options
def results(
    job_id: Annotated[str, typer.Argument(help="Job id.", autocompletion=complete_job_ids)],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="jsonl or csv.", autocompletion=choices("jsonl", "csv")
        ),
    ] = "jsonl",
    failed: Annotated[bool, typer.Option("--failed", help="Only images that failed.")] = False,
    *,
    read: ReadOptions,
) -> None:
    """Print one record per image (JSON Lines or CSV), streamed in the order images finished."""
    from retailpulse_cli.jobs import results_export
    from retailpulse_cli.ui.output import info_line, stdout_guard

    fmt = fmt.lower()
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("use jsonl or csv", param_hint="--format")
    job = open_jobs(read.jobs_dir, read.config_file).job(job_id)
    job.status()  # checks the job directory is readable and of a known schema
    with stdout_guard():
        n = results_export.write(job, fmt=fmt, only_failed=failed, out=sys.stdout)
        if read.output.verbose and not read.output.quiet:
            info_line(f"job {job.id}: {n:,} records")


@group.command(epilog=examples("retailpulse schema > job.schema.json"))
@ignored_output_options  # accepted as on every command; the schema is data either way
def schema() -> None:
    """Print the JSON Schema of the job file (for editors and other tools)."""
    from retailpulse_cli.processing.spec import JOB_SCHEMA
    from retailpulse_cli.ui.output import print_json, stdout_guard

    with stdout_guard():
        print_json(JOB_SCHEMA)


@group.command(
    name="list",
    epilog=examples(
        "retailpulse list --status failed --since 2026-11-30", "retailpulse list --json --limit 5"
    ),
)
@read_options
def list_(
    status_filter: Annotated[
        JobState | None,
        typer.Option(
            "--status",
            metavar="STATE",
            case_sensitive=False,
            help=f"Only jobs in this state: {STATES}.",
        ),
    ] = None,
    since: SinceOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="At most this many jobs.")
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Only jobs this user submitted to `retailpulse serve`."),
    ] = None,
    as_json: JsonOpt = False,
    *,
    read: ReadOptions,
) -> None:
    """List jobs, newest first: id, created, status, images, failures."""
    from retailpulse_cli.jobs.read import list_jobs
    from retailpulse_cli.ui.output import print_json, stdout_guard

    since_dt = parse_since_option(since)
    store = open_jobs(read.jobs_dir, read.config_file)
    rows = list_jobs(store, status=status_filter, since=since_dt, limit=limit, owner=owner)
    with stdout_guard():
        if as_json:
            print_json(rows)
        else:
            from retailpulse_cli.ui.console import show_jobs

            show_jobs(read.output, rows, store.root)
