"""The commands that run jobs: submit, resume, retry (and the hidden `_worker` that
`--detach` starts). Each parses, makes its core calls (jobs.lifecycle, jobs.batch) and
renders; inbox, which runs jobs too, has its own module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from retailpulse_cli.cli.common import (
    CommandGroup,
    DetachOpt,
    JsonOpt,
    complete_job_ids,
    examples,
    load_master,
    open_jobs,
    stdin_once,
)
from retailpulse_cli.cli.option_groups import output_options
from retailpulse_cli.cli.run_options import run_options
from retailpulse_cli.config.options import RunFlags
from retailpulse_cli.errors import ExitCode
from retailpulse_cli.ui.output import Output

if TYPE_CHECKING:
    from retailpulse_cli.jobs.lifecycle import Mode, Planned
    from retailpulse_cli.jobs.validate import Rejected
    from retailpulse_cli.model import JobStatus
    from retailpulse_cli.processing.dask_engine import DaskEngine
    from retailpulse_cli.storage.job_dir import Job

group = CommandGroup()


@group.command(
    epilog=examples(
        "retailpulse submit examples/jobs/offline.json",
        "JOB=$(retailpulse submit -d job.json) && retailpulse status --wait $JOB",
    )
)
@run_options
@output_options
def submit(
    job_files: Annotated[
        list[str],
        typer.Argument(metavar="JOB_FILE...", help="Job files (JSON); - reads one from stdin."),
    ],
    detach: Annotated[
        bool,
        typer.Option(
            "--detach", "-d", help="Create the job, print its id, run it in the background."
        ),
    ] = False,
    as_json: JsonOpt = False,
    *,
    output: Output,
    run_flags: RunFlags,
) -> None:
    """Validate job files, create a job for each and process them; print one job id per line.

    Several files share one worker pool and one progress display; a bad file is reported
    and skipped. `--json` prints the final status object (an array for several files).
    Exit codes: 0 completed, 1 failed, 3 invalid job file, 4 store master problem,
    7 storage problem, 130/143 interrupted (`retailpulse --help` lists all).
    """
    from retailpulse_cli.config import options
    from retailpulse_cli.jobs import lifecycle, placement
    from retailpulse_cli.jobs.validate import load_specs
    from retailpulse_cli.ui.output import StderrNotes

    open_log(run_flags)
    resolved = run_flags.resolve()
    settings = options.settings_from(resolved)
    cluster = placement.placement(run_flags)  # a bad --cluster: before any job is made
    lifecycle.check_sinks(settings)
    stdin_once(job_files)
    many = len(job_files) > 1
    specs, rejected = load_specs(job_files, strict=not many, notes=StderrNotes())
    if not specs:
        nothing_valid(rejected, as_json=as_json)
    master = load_master(resolved.get("store_master"), run_flags.config_file)
    store = open_jobs(resolved.get("jobs_dir"), run_flags.config_file)
    with placement.engine_for(None if detach else cluster) as engine:  # the worker opens it
        planned = lifecycle.create_jobs(store, specs, settings, master)
        if detach:
            hand_over(planned, run_flags, as_json=as_json, many=many, rejected=rejected)
            raise typer.Exit(int(ExitCode.INVALID_INPUT) if rejected else 0)
        statuses = run_planned(planned, output=output, engine=engine)
    finish(statuses, output, as_json=as_json, rejected=rejected, many=many)


def nothing_valid(rejected: list[tuple[int, Rejected]], *, as_json: bool) -> NoReturn:
    """Every job file was rejected: their rows with --json, and exit 3."""
    from retailpulse_cli.jobs.validate import in_input_order
    from retailpulse_cli.ui.output import print_json, stdout_guard

    if as_json:
        with stdout_guard():
            print_json(in_input_order([], rejected))
    raise typer.Exit(int(ExitCode.INVALID_INPUT))


@group.command(name="_worker", hidden=True)
def worker(
    job_dirs: Annotated[list[Path], typer.Argument()],
    mode: Annotated[str, typer.Option("--mode")] = "submit",
) -> None:
    """Detached worker: runs jobs handed over by `--detach` (their locks inherited)."""
    from typing import cast

    from retailpulse_cli.jobs import lifecycle, outcome, placement
    from retailpulse_cli.jobs.detach import inherited_locks, inherited_settings
    from retailpulse_cli.storage.job_dir import Job
    from retailpulse_cli.ui.output import StderrNotes, info_line

    jobs = [Job(d) for d in job_dirs]
    locks = inherited_locks(jobs)
    given = inherited_settings()
    config_file = given.pop("config_file", None)
    flags = RunFlags(given, Path(config_file) if config_file else None)
    open_log(flags)
    cluster = placement.placement(flags)
    run_mode = cast("Mode", mode)
    planned = lifecycle.open_handed_over(jobs, locks, run_mode, flags, StderrNotes())
    info_line(f"worker pid {os.getpid()} started on {', '.join(j.id for j in jobs)}")
    with placement.engine_for(cluster) as engine:
        statuses = run_planned(planned, output=Output(no_color=True), engine=engine)
    code = outcome.combined_code(statuses)
    info_line(f"worker pid {os.getpid()} exits {code}")
    exit_after_run(statuses, code)


@group.command(
    epilog=examples(
        "retailpulse resume 20261130-015222-322-c07c",
        "retailpulse resume $JOB --workers 64 --detach",
    )
)
@run_options
@output_options
def resume(
    job_id: Annotated[
        str, typer.Argument(help="The job to finish.", autocompletion=complete_job_ids)
    ],
    detach: DetachOpt = False,
    as_json: JsonOpt = False,
    *,
    output: Output,
    run_flags: RunFlags,
) -> None:
    """Finish an interrupted job: images already recorded are not downloaded again.

    Settings are those the job was submitted with unless given again. Exit codes as for
    `submit`; 6 when another process is working on the job.
    """
    resume_or_retry("resume", job_id, run_flags, output, as_json=as_json, detach=detach)


@group.command(
    epilog=examples("retailpulse retry $JOB", "retailpulse retry $JOB --timeout 120 --retries 5")
)
@run_options
@output_options
def retry(
    job_id: Annotated[
        str,
        typer.Argument(
            help="The job whose failed images to run again.", autocompletion=complete_job_ids
        ),
    ],
    detach: DetachOpt = False,
    as_json: JsonOpt = False,
    *,
    output: Output,
    run_flags: RunFlags,
) -> None:
    """Run the failed images of a job again (and any never processed); unknown stores stay failed.

    Exit codes as for `submit`; 6 when another process is working on the job.
    """
    resume_or_retry("retry", job_id, run_flags, output, as_json=as_json, detach=detach)


def resume_or_retry(
    mode: Mode, job_id: str, flags: RunFlags, output: Output, *, as_json: bool, detach: bool
) -> None:
    from retailpulse_cli.jobs import lifecycle, placement
    from retailpulse_cli.ui.output import StderrNotes

    open_log(flags)
    cluster = placement.placement(flags)  # a bad --cluster fails before the job is touched
    job = open_jobs(flags.values.get("jobs_dir"), flags.config_file).job(job_id)
    planned = lifecycle.open_for_run(job, mode, flags, StderrNotes())
    if planned.mode == "resume" and already_finished(planned, output, as_json):
        return
    if detach:
        hand_over([planned], flags, as_json=as_json, many=False)
        return
    with placement.engine_for(cluster) as engine:
        statuses = run_planned([planned], output=output, engine=engine)
    finish(statuses, output, as_json=as_json)


def already_finished(planned: Planned, output: Output, as_json: bool) -> bool:
    """`resume` of a job that ran to its end: say so, print it as usual, run nothing."""
    from retailpulse_cli.jobs.read import read_status
    from retailpulse_cli.model import FINISHED, JobState
    from retailpulse_cli.ui.output import info_line

    current = read_status(planned.job)
    if current.get("status") not in FINISHED:
        return False
    planned.lock.release()
    state = current["status"]
    hint = "; `retailpulse retry` runs its failed images again" if state == JobState.FAILED else ""
    if not output.quiet:
        info_line(f"job {planned.job.id} already {state}; nothing to resume{hint}")
    finish([current], output, as_json=as_json)
    return True


def open_log(flags: RunFlags) -> None:
    """--log-file (or RETAILPULSE_LOG_FILE, or the config file's `log-file`): from now on
    every stderr line is also appended there. A file that cannot be opened exits 7."""
    from retailpulse_cli.errors import StorageError
    from retailpulse_cli.ui.streams import LogFile

    resolved = flags.resolve(only={"log_file"})
    path = resolved.get("log_file")
    if path is None:
        return
    source = resolved.sources.get("log_file", "flag")
    where = {"flag": "--log-file"}.get(source, source.removeprefix("env "))
    try:
        LogFile.open(path)
    except OSError as exc:
        raise StorageError(
            f"{where}: cannot open {path} for appending: {exc.strerror or exc}",
            hint="check the folder exists and is writable, or use another --log-file",
        ) from None


def run_planned(
    planned: Sequence[Planned], *, output: Output, engine: DaskEngine | None = None
) -> list[JobStatus]:
    """Run jobs we hold the locks of, with progress on stderr and signal handling; on a
    Dask cluster when `engine` is given."""
    from retailpulse_cli.jobs.batch import run_until_stopped
    from retailpulse_cli.ui.output import route_core_logs
    from retailpulse_cli.ui.progress import ProgressBoard, SignalLines

    route_core_logs()  # e.g. the results database's warnings
    notes = SignalLines([p.job.log_path for p in planned])
    with ProgressBoard(output) as board:
        observers = [board.observer() for _ in planned]
        statuses = run_until_stopped(planned, observers=observers, notes=notes, engine=engine)
    for obs, st in zip(observers, statuses, strict=True):
        obs.finished(st)  # on a terminal the bar said it: only the --log-file gets the line
    return statuses


def hand_over(
    planned: Sequence[Planned],
    flags: RunFlags,
    *,
    as_json: bool,
    many: bool,
    rejected: Sequence[tuple[int, Rejected]] = (),
) -> None:
    """--detach: a background worker takes the jobs (and their locks); print their ids."""
    from retailpulse_cli.jobs.detach import spawn_worker

    jobs, locks = [p.job for p in planned], [p.lock for p in planned]
    spawn_worker(jobs, locks, mode=planned[0].mode, given=handed_over(flags))
    print_ids(jobs, as_json=as_json, many=many, rejected=rejected)


def handed_over(flags: RunFlags) -> dict[str, Any]:
    """The flags a detached worker resolves again (as JSON: paths become text)."""
    given = {k: str(v) if isinstance(v, Path) else v for k, v in flags.values.items()}
    if flags.config_file is not None:
        given["config_file"] = str(flags.config_file.resolve())
    return given


def print_ids(
    jobs: list[Job], *, as_json: bool, many: bool, rejected: Sequence[tuple[int, Rejected]] = ()
) -> None:
    """What --detach prints: the ids, or the status objects with --json, rejected job
    files in their place among them (as a run without --detach prints them)."""
    from retailpulse_cli.jobs.read import read_status
    from retailpulse_cli.jobs.validate import in_input_order
    from retailpulse_cli.ui.output import print_json, print_lines, stdout_guard

    with stdout_guard():
        if as_json:
            docs = [read_status(job) for job in jobs]
            print_json(in_input_order(docs, rejected) if many else docs[0])
        else:
            print_lines([job.id for job in jobs])


def finish(
    statuses: list[JobStatus],
    output: Output,
    *,
    as_json: bool,
    rejected: list[tuple[int, Rejected]] | None = None,
    many: bool = False,
) -> NoReturn:
    """Print finished runs (ids, a table on a terminal, or JSON) and exit with their code.
    With --json, rejected job files appear in the array, in the order they were given."""
    from retailpulse_cli.jobs.outcome import combined_code
    from retailpulse_cli.jobs.validate import in_input_order
    from retailpulse_cli.ui.output import print_json, print_lines, stdout_guard

    rejected = rejected or []
    code = combined_code(statuses, len(rejected))
    if sys.stderr.isatty() and not output.quiet and not as_json:
        from retailpulse_cli.ui.console import show_status

        for st in statuses:
            show_status(output, st, output.err)
    with stdout_guard():
        if as_json:
            print_json(in_input_order(statuses, rejected) if many else statuses[0])
        else:
            print_lines([st["job_id"] for st in statuses])
    exit_after_run(statuses, code)


def exit_after_run(statuses: list[JobStatus], code: int) -> NoReturn:
    """Exit with `code`. After an interrupted run, a worker thread may still be stuck in
    a DNS lookup or a connect: it must not keep the process alive, so exit at once."""
    from retailpulse_cli.jobs.outcome import interrupted
    from retailpulse_cli.ui.output import info_line

    stopped = interrupted(statuses)
    for st in stopped:  # the next step, where cron logs and people look
        info_line(f"to finish job {st['job_id']}: retailpulse resume {st['job_id']}")
    sys.stdout.flush()
    sys.stderr.flush()
    if stopped:
        os._exit(code)
    raise typer.Exit(code)
