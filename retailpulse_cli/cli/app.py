"""Typer commands: parse options, build settings, call one core function, render.

Heavy modules (requests, Pillow, Rich) are imported inside the commands that need them,
so `status` and `list` start fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeAlias, TypeVar

import typer

from retailpulse_cli import __version__
from retailpulse_cli.cli.run_options import ConfigOpt, RunFlags, run_options
from retailpulse_cli.errors import EXIT_CODE_HELP, ExitCode, RetailpulseError, WaitTimeout

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

if TYPE_CHECKING:  # real types for the checker; imported lazily at run time (start-up)
    from retailpulse_cli.config.options import Resolved
    from retailpulse_cli.jobs.batch import Planned
    from retailpulse_cli.processing.dask_engine import ClusterSpec, DaskEngine

    Place: TypeAlias = tuple[ClusterSpec, int] | None  # where images run; None: here
    from retailpulse_cli.config.settings import Settings
    from retailpulse_cli.jobs.inbox import Claim
    from retailpulse_cli.jobs.lifecycle import Mode
    from retailpulse_cli.processing.spec import JobSpec
    from retailpulse_cli.storage.job_dir import Job, JobStore, Lock
    from retailpulse_cli.storage.store_master import StoreMaster
    from retailpulse_cli.ui.console import Output

F = TypeVar("F", bound=Callable[..., Any])


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
    from retailpulse_cli.ui.console import route_core_logs

    route_core_logs()


def handle_errors(func: F) -> F:
    """The one place where exceptions become one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from retailpulse_cli.ui import console

        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter, SystemExit):
            raise  # Typer's own: usage errors print their usage and exit 2
        except RetailpulseError as exc:
            from retailpulse_cli.errors import InvalidJobFile

            if isinstance(exc, InvalidJobFile) and len(exc.problems) > 1:
                for problem in exc.problems:
                    console.error_line(f"{exc.source}: {problem}")
            else:
                console.error_line(exc.message)
            if exc.hint:
                console.hint_line(exc.hint)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            console.error_line("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if os.environ.get("RETAILPULSE_DEBUG"):
                raise
            console.error_line(f"internal error: {type(exc).__name__}: {exc}")
            console.hint_line(
                "this is a bug; rerun with RETAILPULSE_DEBUG=1 for the traceback and report it"
            )
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


# -- shared options ------------------------------------------------------------------------

JobsDir = Annotated[
    Path | None,
    typer.Option(
        "--jobs-dir",
        help="Where jobs live. [env: RETAILPULSE_JOBS_DIR; default: per-user data dir]",
        show_default=False,
    ),
]
StoreMasterOpt = Annotated[
    Path | None,
    typer.Option(
        "--store-master",
        help="Store master CSV. [env: RETAILPULSE_STORE_MASTER; default: the shipped one]",
        show_default=False,
    ),
]
DetachOpt = Annotated[
    bool,
    typer.Option("--detach", "-d", help="Return at once; a background worker does the work."),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (nothing else on stdout).")
]


def examples(*lines: str) -> str:
    """A command's help ends with examples (shown after the options)."""
    return "**Examples**\n\n" + "\n\n".join(f"`{line}`" for line in lines)


def complete_job_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for JOB_ID: the ids in --jobs-dir (if typed already) or the default."""
    try:
        store = _jobs_store(ctx.params.get("jobs_dir"))
        return [j for j in store.job_ids() if j.startswith(incomplete)]
    except Exception:  # completion must never print a traceback into the shell
        return []


def _choices(*values: str) -> Callable[[str], list[str]]:
    return lambda incomplete: [v for v in values if v.startswith(incomplete.lower())]


SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="WHEN",
        help="Only jobs created at or after WHEN: an ISO 8601 date or date-time (UTC unless "
        "an offset is given), today, yesterday, or an age: 30m, 24h, 7d.",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only data and errors.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="A line per image on stderr.")]
NoColor = Annotated[bool, typer.Option("--no-color", help="No colour (also: NO_COLOR env var).")]


def _use_config(path: Path | None) -> None:
    """--config on a command that reads jobs or the store master: the same file the run
    commands read (its jobs-dir, store-master), for this process."""
    from retailpulse_cli.config.options import CONFIG_ENV

    if path is not None:
        os.environ[CONFIG_ENV] = str(path)


def _resolve(flags: RunFlags, stored: dict[str, Any] | None = None) -> Resolved:
    from retailpulse_cli.config import options

    return options.resolve(flags.values, config_file=flags.config_file, stored=stored)


def _settings(resolved: Resolved) -> Settings:
    from retailpulse_cli.config import options

    return options.settings_from(resolved)


def _open_log(flags: RunFlags) -> None:
    """--log-file (or RETAILPULSE_LOG_FILE, or the config file's `log-file`): from now on
    every stderr line is also appended there. A file that cannot be opened exits 7."""
    from retailpulse_cli.config import options
    from retailpulse_cli.errors import StorageError
    from retailpulse_cli.ui.streams import LogFile

    resolved = options.resolve(flags.values, config_file=flags.config_file, only={"log_file"})
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


def _jobs_store(jobs_dir: Path | None) -> JobStore:
    """--jobs-dir, else RETAILPULSE_JOBS_DIR, else the config file, else the default."""
    from retailpulse_cli.config import options
    from retailpulse_cli.storage.job_dir import JobStore, default_jobs_dir

    if jobs_dir is None:
        jobs_dir = options.resolve({}, only={"jobs_dir"}).get("jobs_dir")
    return JobStore(jobs_dir.expanduser() if jobs_dir else default_jobs_dir())


def _store_master(path: Path | None) -> StoreMaster:
    from retailpulse_cli.config import options
    from retailpulse_cli.storage import store_master

    if path is None:
        path = options.resolve({}, only={"store_master"}).get("store_master")
    return store_master.load(store_master.resolve_path(path))


def _output(quiet: bool, verbose: bool, no_color: bool) -> Any:
    from retailpulse_cli.ui.console import Output

    return Output(quiet=quiet, verbose=verbose, no_color=no_color)


def outcome_code(status: dict[str, Any]) -> int:
    state = status.get("status")
    if state == "completed":
        return int(ExitCode.OK)
    if state == "failed":
        return int(ExitCode.JOB_FAILED)
    if state == "interrupted":
        by = str(status.get("interrupted_by") or "")
        return int(ExitCode.TERMINATED if "SIGTERM" in by else ExitCode.INTERRUPTED)
    return int(ExitCode.OK)


class Signals:
    """SIGINT/SIGTERM: first one stops the job gracefully, a second one exits at once.

    SIGHUP (the terminal or ssh session went away) does not stop the job: like losing
    any other reader of progress, it costs the output, not the work (`nohup` and wget
    behave so too). Output meant for the terminal goes to /dev/null; a line in each
    job's worker.log says what happened and how to see the outcome."""

    def __init__(self, stop: Any, logs: list[Path] | None = None) -> None:
        self.stop = stop
        self.logs = logs or []
        self.previous: dict[int, Any] = {}
        self.ttys: list[int] = []

    def __enter__(self) -> Signals:
        from retailpulse_cli.ui.streams import terminal_fds

        self.ttys = terminal_fds()
        handlers: list[tuple[signal.Signals, Callable[[int, Any], None]]] = [
            (signal.SIGINT, self._handle),
            (signal.SIGTERM, self._handle),
        ]
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup: stay so
            handlers.append((signal.SIGHUP, self._hangup))
        for sig, handler in handlers:
            # ValueError: not the main thread (some test runners); then no handler is needed
            with contextlib.suppress(ValueError):
                self.previous[sig] = signal.signal(sig, handler)
        return self

    def _hangup(self, _signum: int, _frame: Any) -> None:
        from retailpulse_cli.ui import console
        from retailpulse_cli.ui.streams import leave_terminal, timestamp

        note = (
            "SIGHUP (terminal closed): the job goes on; "
            "`retailpulse status JOB_ID` shows its outcome"
        )
        if self.ttys:
            leave_terminal(self.ttys)
            for log in self.logs:
                with contextlib.suppress(OSError), log.open("a", encoding="utf-8") as fh:
                    fh.write(f"{timestamp()} retailpulse: {note}\n")
        # a pipe or a file that still has its reader gets it there; --log-file gets it too
        console.info_line(note)

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            os._exit(int(ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.INTERRUPTED))
        self.stop.request(name)
        from retailpulse_cli.ui import console

        if 2 in self.ttys:
            sys.stderr.write("\n")  # off the progress bar's line
        console.info_line(f"{name}: stopping; finishing images in flight (again to quit now)")

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def run_planned(
    planned: list[Planned], *, output: Output, engine: DaskEngine | None = None
) -> list[dict[str, Any]]:
    """Run jobs we hold the locks of, with progress on stderr and signal handling; on a
    Dask cluster when `engine` (from `engine_for`) is given."""
    from retailpulse_cli.jobs.batch import run_jobs
    from retailpulse_cli.processing.download import StopFlag
    from retailpulse_cli.ui import console

    raise_open_files_limit()
    limit_malloc_arenas()
    stop = StopFlag()
    logs = [p.job.log_path for p in planned]
    with console.ProgressBoard(output) as board, Signals(stop, logs):
        observers = [board.observer() for _ in planned]
        statuses = run_jobs(planned, stop=stop, observers=observers, engine=engine)
    for obs, st in zip(observers, statuses, strict=True):
        obs.finished(st)  # on a terminal the bar said it: only the --log-file gets the line
    return statuses


@contextlib.contextmanager
def engine_for(place: Place) -> Iterator[DaskEngine | None]:
    """The Dask cluster asked for, reached before any job is made or locked (an
    unreachable scheduler must not leave a job behind); None: this process."""
    if place is None:
        yield None
        return
    from retailpulse_cli.processing.dask_engine import DaskEngine

    spec, shard_size = place
    with DaskEngine(spec, shard_size=shard_size) as engine:
        yield engine


def check_store(settings: Settings) -> None:
    """--save-images checked before any job is made or run: a missing extra, a bucket
    that is not there or a read-only folder is one line now, not one failure per image."""
    if settings.save_images:
        from retailpulse_cli.storage.image_archive import open_store

        open_store(settings.save_images).check()
    if settings.results_db:  # reached, and its schema made or migrated, before any job
        from retailpulse_cli.storage import results_db

        results_db.check(settings.results_db)


def where(flags: RunFlags) -> Place:
    """--cluster checked (syntax, Dask installed) before any job is made: None means this
    process, else the ClusterSpec and shard size `run_planned` opens an engine with."""
    from retailpulse_cli.config import options
    from retailpulse_cli.processing.dask_engine import parse_cluster, require_dask

    resolved = options.resolve(
        flags.values, config_file=flags.config_file, only={"cluster", "shard_size"}
    )
    spec = parse_cluster(resolved.get("cluster"))
    if not spec.is_dask:
        return None
    require_dask()
    return (spec, int(resolved.get("shard_size")))


def raise_open_files_limit() -> None:
    """Each worker holds a socket and a file or two: lift the soft limit on open files to
    the hard one, so --workers 1024 does not run into a default `ulimit -n` of 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def limit_malloc_arenas() -> None:
    """glibc gives busy threads malloc arenas of their own, up to 8 per core, and each
    keeps freed memory: 128 workers peaked at ~300 MB. As many arenas as cores measured
    the same speed at less than half the memory (bench/README.md)."""
    import ctypes

    m_arena_max = -8  # from glibc's malloc.h
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, max(2, os.cpu_count() or 2))


def combined_code(statuses: list[dict[str, Any]], invalid: int = 0) -> int:
    """One exit code for a run of several jobs: the most serious outcome wins."""
    codes = [outcome_code(s) for s in statuses]
    for worst in (ExitCode.TERMINATED, ExitCode.INTERRUPTED):
        if worst in codes:
            return int(worst)
    if invalid:
        return int(ExitCode.INVALID_INPUT)
    return max(codes, default=int(ExitCode.OK))


def finish(
    statuses: list[dict[str, Any]],
    output: Output,
    *,
    as_json: bool,
    rejected: list[dict[str, Any]] | None = None,
    many: bool = False,
) -> None:
    """Print finished runs (ids, a table on a terminal, or JSON) and exit with their code.
    With --json, rejected job files appear in the array, in the order they were given."""
    from retailpulse_cli.ui import console

    rejected = rejected or []
    code = combined_code(statuses, len(rejected))
    if sys.stderr.isatty() and not output.quiet and not as_json:
        for st in statuses:
            console.show_status(output, st, output.err)
    with console.stdout_guard():
        if as_json:
            console.print_json(in_input_order(statuses, rejected) if many else statuses[0])
        else:
            for st in statuses:
                sys.stdout.write(st["job_id"] + "\n")
    exit_after_run(statuses, code)


def in_input_order(
    statuses: list[dict[str, Any]], rejected: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Jobs and rejected files merged back into the order the files were given."""
    out = list(statuses)
    for row in sorted(rejected, key=lambda r: int(r["position"])):
        out.insert(int(row["position"]), {k: v for k, v in row.items() if k != "position"})
    return out


def exit_after_run(statuses: list[dict[str, Any]], code: int) -> NoReturn:
    """Exit with `code`. After an interrupted run, a worker thread may still be stuck in
    a DNS lookup or a connect: it must not keep the process alive, so exit at once."""
    from retailpulse_cli.ui import console

    interrupted = [s for s in statuses if s.get("status") == "interrupted"]
    for st in interrupted:  # the next step, where cron logs and people look
        console.info_line(f"to finish job {st['job_id']}: retailpulse resume {st['job_id']}")
    sys.stdout.flush()
    sys.stderr.flush()
    if interrupted:
        os._exit(code)
    raise typer.Exit(code)


def load_specs(job_files: list[str], *, strict: bool) -> tuple[list[JobSpec], list[dict[str, Any]]]:
    """Validate job files; report each bad one on stderr and return it as a `rejected`
    row. With `strict` (a single file), the error propagates so it exits 3 with its own
    message."""
    from retailpulse_cli.errors import InvalidJobFile
    from retailpulse_cli.processing import spec
    from retailpulse_cli.ui import console

    if job_files.count("-") > 1:
        raise typer.BadParameter("stdin (-) can be given only once", param_hint="JOB_FILE...")
    specs: list[JobSpec] = []
    rejected: list[dict[str, Any]] = []
    for position, name in enumerate(job_files):
        try:
            specs.append(spec.load(name))
        except InvalidJobFile as exc:
            if strict:
                raise
            for problem in exc.problems:
                console.error_line(f"{exc.source}: {problem}")
            console.info_line(f"skipped {exc.source}: invalid job file")
            rejected.append(
                {
                    "file": exc.source,
                    "status": "rejected",
                    "problems": spec.problem_objects(exc.problems),
                    "position": position,
                }
            )
    return specs, rejected


# -- commands ------------------------------------------------------------------------------


@app.command(
    epilog=examples(
        "retailpulse submit examples/jobs/offline.json",
        "JOB=$(retailpulse submit -d job.json) && retailpulse status --wait $JOB",
    )
)
@handle_errors
@run_options
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
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
    *,
    run_flags: RunFlags,
) -> None:
    """Validate job files, create a job for each and process them; print one job id per line.

    Several files share one worker pool and one progress display; a bad file is reported
    and skipped. `--json` prints the final status object (an array for several files).
    Exit codes: 0 completed, 1 failed, 3 invalid job file, 4 store master problem,
    7 storage problem, 130/143 interrupted (`retailpulse --help` lists all).
    """

    output = _output(quiet, verbose, no_color)
    _open_log(run_flags)
    resolved = _resolve(run_flags)
    settings = _settings(resolved)
    place = where(run_flags)  # a bad --cluster or a missing extra: before any job is made
    check_store(settings)
    many = len(job_files) > 1
    specs, rejected = load_specs(job_files, strict=not many)
    if not specs:
        if as_json:
            from retailpulse_cli.ui import console

            with console.stdout_guard():
                console.print_json(in_input_order([], rejected))
        raise typer.Exit(int(ExitCode.INVALID_INPUT))
    master = _store_master(resolved.get("store_master"))
    store = _jobs_store(resolved.get("jobs_dir"))
    with engine_for(None if detach else place) as engine:  # the detached worker opens it
        planned = _create_jobs(store, specs, settings, master)
        if detach:
            _detach(planned, run_flags, as_json=as_json, many=many)
            raise typer.Exit(int(ExitCode.INVALID_INPUT) if rejected else 0)
        statuses = run_planned(planned, output=output, engine=engine)
    finish(statuses, output, as_json=as_json, rejected=rejected, many=many)


def _create_jobs(
    store: JobStore, specs: list[JobSpec], settings: Settings, master: StoreMaster
) -> list[Planned]:
    """A locked job per spec; if one cannot be made, the ones made so far are unlocked
    (they read `interrupted` and `resume` finishes them)."""
    from retailpulse_cli.jobs import lifecycle
    from retailpulse_cli.jobs.batch import Planned

    planned = []
    try:
        while specs:  # popped: each spec then lives only as long as its job runs
            job_spec = specs.pop(0)
            job, lock = lifecycle.create_job(store, job_spec, settings, master)
            planned.append(Planned(job, lock, "submit", settings, master, job_spec))
    except BaseException:
        for p in planned:
            p.lock.release()
        raise
    return planned


def _detach(planned: list[Planned], flags: RunFlags, *, as_json: bool, many: bool) -> None:
    from retailpulse_cli.jobs.detach import spawn_worker

    jobs, locks = [p.job for p in planned], [p.lock for p in planned]
    spawn_worker(jobs, locks, given=_handed_over(flags))
    _print_ids([p.job for p in planned], as_json=as_json, many=many)


def _print_ids(jobs: list[Any], *, as_json: bool, many: bool) -> None:
    """What --detach prints: the ids, or the status objects with --json."""
    from retailpulse_cli.jobs import lifecycle
    from retailpulse_cli.ui import console

    with console.stdout_guard():
        if as_json:
            docs = [lifecycle.read_status(job) for job in jobs]
            console.print_json(docs if many else docs[0])
        else:
            for job in jobs:
                sys.stdout.write(job.id + "\n")


@app.command(name="_worker", hidden=True)
@handle_errors
def worker(
    job_dirs: Annotated[list[Path], typer.Argument()],
    mode: Annotated[str, typer.Option("--mode")] = "submit",
) -> None:
    """Detached worker: runs jobs handed over by `--detach` (their locks inherited)."""
    from typing import cast

    from retailpulse_cli.jobs.detach import inherited_locks, inherited_settings
    from retailpulse_cli.storage.job_dir import Job
    from retailpulse_cli.ui import console

    jobs = [Job(d) for d in job_dirs]
    locks = inherited_locks(jobs)
    given = inherited_settings()
    config_file = given.pop("config_file", None)
    flags = RunFlags(given, Path(config_file) if config_file else None)
    _open_log(flags)
    place = where(flags)
    planned = []
    try:
        for job, lock in zip(jobs, locks, strict=True):
            planned.append(_open_for_run(job, cast("Mode", mode), flags, lock=lock))
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    console.info_line(f"worker pid {os.getpid()} started on {', '.join(j.id for j in jobs)}")
    with engine_for(place) as engine:
        statuses = run_planned(planned, output=_output(False, False, True), engine=engine)
    code = combined_code(statuses)
    console.info_line(f"worker pid {os.getpid()} exits {code}")
    exit_after_run(statuses, code)


def _job_store_master(job: Job, option: Path | None) -> StoreMaster:
    """--store-master (or its variable or config key), else the one the job was submitted
    with, else the default."""
    from retailpulse_cli.jobs import lifecycle
    from retailpulse_cli.ui import console

    if option is None:
        option = lifecycle.stored_store_master(job)
        if option is None:
            console.info_line(f"job {job.id}: its store master is gone; using the default one")
    return _store_master(option)


def _open_for_run(job: Job, mode: Mode, flags: RunFlags, lock: Lock | None = None) -> Planned:
    """Lock an existing job (unless its lock is handed over) and plan its run with the
    settings it was submitted with, overridden by flags, environment and config file;
    unlock if planning fails."""
    from retailpulse_cli.jobs import lifecycle
    from retailpulse_cli.jobs.batch import Planned
    from retailpulse_cli.storage.job_dir import Lock

    lock = lock or Lock.acquire(job.lock_path)
    try:
        mode = lifecycle.continuing_mode(job, mode)
        resolved = _resolve(flags, stored=lifecycle.stored_settings(job))
        master = _job_store_master(job, resolved.get("store_master"))
        settings = _settings(resolved)
        check_store(settings)
        return Planned(job, lock, mode, settings, master)
    except BaseException:
        lock.release()
        raise


def _resume_or_retry(
    mode: Mode, job_id: str, flags: RunFlags, as_json: bool, output: Output, detach: bool
) -> None:
    _open_log(flags)
    place = where(flags)  # a bad --cluster fails before the job is touched
    job = _jobs_store(flags.values.get("jobs_dir")).job(job_id)
    planned = _open_for_run(job, mode, flags)
    if planned.mode == "resume" and _already_finished(planned, output, as_json):
        return
    if detach:
        from retailpulse_cli.jobs.detach import spawn_worker

        spawn_worker([job], [planned.lock], mode=planned.mode, given=_handed_over(flags))
        _print_ids([job], as_json=as_json, many=False)
        return
    with engine_for(place) as engine:
        statuses = run_planned([planned], output=output, engine=engine)
    finish(statuses, output, as_json=as_json)


def _already_finished(planned: Planned, output: Output, as_json: bool) -> bool:
    """`resume` of a job that ran to its end: say so, print it as usual, run nothing."""
    from retailpulse_cli.jobs import lifecycle
    from retailpulse_cli.ui import console

    current = lifecycle.read_status(planned.job)
    if current.get("status") not in ("completed", "failed"):
        return False
    planned.lock.release()
    hint = (
        "; `retailpulse retry` runs its failed images again"
        if current["status"] == "failed"
        else ""
    )
    if not output.quiet:
        console.info_line(
            f"job {planned.job.id} already {current['status']}; nothing to resume{hint}"
        )
    finish([current], output, as_json=as_json)
    return True


def _handed_over(flags: RunFlags) -> dict[str, Any]:
    """The flags a detached worker resolves again (as JSON: paths become text)."""
    given = {k: str(v) if isinstance(v, Path) else v for k, v in flags.values.items()}
    if flags.config_file is not None:
        given["config_file"] = str(flags.config_file.resolve())
    return given


@app.command(
    epilog=examples(
        "retailpulse resume 20261130-015222-322-c07c",
        "retailpulse resume $JOB --workers 64 --detach",
    )
)
@handle_errors
@run_options
def resume(
    job_id: Annotated[
        str, typer.Argument(help="The job to finish.", autocompletion=complete_job_ids)
    ],
    detach: DetachOpt = False,
    as_json: JsonOpt = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
    *,
    run_flags: RunFlags,
) -> None:
    """Finish an interrupted job: images already recorded are not downloaded again.

    Settings are those the job was submitted with unless given again. Exit codes as for
    `submit`; 6 when another process is working on the job.
    """
    output = _output(quiet, verbose, no_color)
    _resume_or_retry("resume", job_id, run_flags, as_json, output, detach)


@app.command(
    epilog=examples("retailpulse retry $JOB", "retailpulse retry $JOB --timeout 120 --retries 5")
)
@handle_errors
@run_options
def retry(
    job_id: Annotated[
        str,
        typer.Argument(
            help="The job whose failed images to run again.", autocompletion=complete_job_ids
        ),
    ],
    detach: DetachOpt = False,
    as_json: JsonOpt = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
    *,
    run_flags: RunFlags,
) -> None:
    """Run the failed images of a job again (and any never processed); unknown stores stay failed.

    Exit codes as for `submit`; 6 when another process is working on the job.
    """
    output = _output(quiet, verbose, no_color)
    _resume_or_retry("retry", job_id, run_flags, as_json, output, detach)


@app.command(
    epilog=examples(
        "retailpulse status $JOB",
        "retailpulse status --wait --timeout 600 --json $JOB | jq '.error[]'",
    )
)
@handle_errors
def status(
    job_id: Annotated[
        str,
        typer.Argument(help="Job id, as printed by submit.", autocompletion=complete_job_ids),
    ],
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
    jobs_dir: JobsDir = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
    config_file: ConfigOpt = None,
) -> None:
    """Show a job's status, counts and errors.

    `ongoing` jobs whose worker died show as `interrupted`. Exit codes: 0 shown, 5 no such
    job, 7 damaged job directory; with --wait the job's outcome (0, 1, 130, 143) or 8.
    """
    _use_config(config_file)
    from retailpulse_cli.jobs import lifecycle
    from retailpulse_cli.ui import console

    output = _output(quiet, verbose, no_color)
    store = _jobs_store(jobs_dir)
    job = store.job(job_id)
    current = lifecycle.read_status(job)
    code: int | None = None
    if wait:
        try:
            with console.StatusWatch(output) as watch:  # a live bar on a terminal only
                current = lifecycle.wait_for(job, timeout, on_poll=watch.update)
            code = outcome_code(current)
        except KeyboardInterrupt:
            console.info_line(
                f"stopped waiting; job {job.id} goes on (status: {current['status']})"
            )
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except WaitTimeout as exc:  # still show where the job is: scripts log it
            console.error_line(exc.message)
            console.hint_line(exc.hint)
            current, code = lifecycle.read_status(job), int(ExitCode.WAIT_TIMEOUT)
    with console.stdout_guard():
        if as_json:
            console.print_json(current)
        else:
            console.show_status(output, current)
    if code is not None:
        raise typer.Exit(code)


@app.command(
    epilog=examples(
        "retailpulse results $JOB --failed", "retailpulse results $JOB --format csv > results.csv"
    )
)
@handle_errors
def results(
    job_id: Annotated[str, typer.Argument(help="Job id.", autocompletion=complete_job_ids)],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="jsonl or csv.", autocompletion=_choices("jsonl", "csv")
        ),
    ] = "jsonl",
    failed: Annotated[bool, typer.Option("--failed", help="Only images that failed.")] = False,
    jobs_dir: JobsDir = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
    config_file: ConfigOpt = None,
) -> None:
    """Print one record per image (JSON Lines or CSV), streamed in the order images finished."""
    _use_config(config_file)
    from retailpulse_cli.jobs import results_export as results_mod

    fmt = fmt.lower()
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("use jsonl or csv", param_hint="--format")
    job = _jobs_store(jobs_dir).job(job_id)
    job.status()  # checks the job directory is readable and of a known schema
    from retailpulse_cli.ui import console

    with console.stdout_guard():
        n = results_mod.write(job, fmt=fmt, only_failed=failed, out=sys.stdout)
        if verbose and not quiet:
            console.info_line(f"job {job.id}: {n:,} records")


@app.command(epilog=examples("retailpulse schema > job.schema.json"))
@handle_errors
def schema(
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Print the JSON Schema of the job file (for editors and other tools)."""
    from retailpulse_cli.processing.spec import JOB_SCHEMA
    from retailpulse_cli.ui import console

    with console.stdout_guard():
        console.print_json(JOB_SCHEMA)


@app.command(
    name="list",
    epilog=examples(
        "retailpulse list --status failed --since 2026-11-30", "retailpulse list --json --limit 5"
    ),
)
@handle_errors
def list_(
    status_filter: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only jobs in this state: ongoing, completed, failed, interrupted, damaged.",
            autocompletion=_choices("ongoing", "completed", "failed", "interrupted", "damaged"),
        ),
    ] = None,
    since: SinceOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="At most this many jobs.")
    ] = None,
    as_json: JsonOpt = False,
    jobs_dir: JobsDir = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
    config_file: ConfigOpt = None,
) -> None:
    """List jobs, newest first: id, created, status, images, failures."""
    _use_config(config_file)
    from retailpulse_cli.jobs import lifecycle
    from retailpulse_cli.ui import console

    states = ("ongoing", "completed", "failed", "interrupted", "damaged")
    status_filter = status_filter.lower() if status_filter else None
    if status_filter is not None and status_filter not in states:
        raise typer.BadParameter(f"use one of {', '.join(states)}", param_hint="--status")
    since_dt = parse_since_option(since)
    output = _output(quiet, verbose, no_color)
    store = _jobs_store(jobs_dir)
    rows = lifecycle.list_jobs(store, status=status_filter, since=since_dt, limit=limit)
    with console.stdout_guard():
        if as_json:
            console.print_json(rows)
        else:
            console.show_jobs(output, rows, store.root)


@app.command(
    epilog=examples(
        "retailpulse validate examples/jobs/*.json", "cat job.json | retailpulse validate - --json"
    )
)
@handle_errors
def validate(
    job_files: Annotated[
        list[str], typer.Argument(metavar="JOB_FILE...", help="Job files; - reads stdin.")
    ],
    as_json: JsonOpt = False,
    store_master: StoreMasterOpt = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
    config_file: ConfigOpt = None,
) -> None:
    """Check job files and their store ids without creating a job or downloading anything.

    Exit codes: 0 valid, 1 valid but some store ids are not in the store master (the job
    would end `failed`), 3 invalid, 4 store master problem.
    """
    _use_config(config_file)
    from retailpulse_cli.errors import InvalidJobFile
    from retailpulse_cli.processing import spec
    from retailpulse_cli.ui import console

    if job_files.count("-") > 1:
        raise typer.BadParameter("stdin (-) can be given only once", param_hint="JOB_FILE...")
    master = _store_master(store_master)
    rows: list[dict[str, Any]] = []
    for given in job_files:
        name = "<stdin>" if given == "-" else given  # as every other command names it
        try:
            job_spec = spec.load(given)
        except InvalidJobFile as exc:
            rows.append(
                {"file": name, "valid": False, "problems": exc.problems, "unknown_stores": []}
            )
            continue
        unknown = sorted(s for s in job_spec.store_images if s not in master)
        rows.append(
            {
                "file": name,
                "valid": True,
                "visits": job_spec.visit_count,
                "images": job_spec.image_count,
                "problems": [],
                "unknown_stores": unknown,
            }
        )
    with console.stdout_guard():
        if as_json:
            objects = spec.problem_objects
            console.print_json([{**r, "problems": objects(r["problems"])} for r in rows])
        else:
            console.show_validation(_output(quiet, verbose, no_color), rows)
    if any(not r["valid"] for r in rows):
        raise typer.Exit(int(ExitCode.INVALID_INPUT))
    raise typer.Exit(int(ExitCode.JOB_FAILED) if any(r["unknown_stores"] for r in rows) else 0)


@app.command(
    epilog=examples(
        "retailpulse inbox /data/inbox", "RETAILPULSE_RATE=5 retailpulse inbox /data/inbox --json"
    )
)
@handle_errors
@run_options
def inbox(
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder where job files are dropped.")
    ],
    as_json: JsonOpt = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
    *,
    run_flags: RunFlags,
) -> None:
    """Process every *.json job file in DIR once: each moves to DIR/done/ (job id in
    NAME.job beside it) or DIR/rejected/ (reasons in NAME.reason). Safe to start while
    another run is going: no file is taken twice. Prints `file<TAB>job_id<TAB>status`.

    Exit codes as for `submit` with several files.
    """
    from retailpulse_cli.ui import console

    output = _output(quiet, verbose, no_color)
    _open_log(run_flags)
    resolved = _resolve(run_flags)
    settings = _settings(resolved)
    place = where(run_flags)
    check_store(settings)
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder", param_hint="DIR")
    # before claiming: a bad master must not strand files
    master = _store_master(resolved.get("store_master"))
    store = _jobs_store(resolved.get("jobs_dir"))
    folder = folder.resolve()
    rows: list[dict[str, Any]] = []
    with engine_for(place) as engine:  # reached before a file is claimed
        planned, claims = _inbox_plan_all(folder, store, settings, run_flags, master, rows)
        statuses = run_planned(planned, output=output, engine=engine) if planned else []
    _inbox_file_away(folder, claims, statuses, rows)
    _inbox_print(rows, as_json)
    if not rows and not quiet:
        console.info_line(f"inbox {folder}: no job files")
    invalid = sum(1 for r in rows if r["status"] == "rejected")
    exit_after_run(statuses, combined_code(statuses, invalid))


def _inbox_plan_all(
    folder: Path,
    store: JobStore,
    settings: Settings,
    flags: RunFlags,
    master: StoreMaster,
    rows: list[dict[str, Any]],
) -> tuple[list[Planned], list[Claim]]:
    """Claim every job file and plan its job; rejected files go to `rows`."""
    from retailpulse_cli.jobs import inbox
    from retailpulse_cli.ui import console

    planned: list[Planned] = []
    claims: list[Claim] = []
    found, odd = inbox.claim_all(folder)
    for name in odd:
        console.info_line(f"inbox: skipped {folder / name}: not a regular file")
    for claim in found:
        item = _inbox_take(claim, folder, store, settings, flags, master, rows)
        if item is not None:
            planned.append(item)
            claims.append(claim)
    return planned, claims


def _inbox_file_away(
    folder: Path, claims: list[Claim], statuses: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> None:
    """Move each run file to done/ (an interrupted one stays claimed for the next run)."""
    from retailpulse_cli.jobs import inbox
    from retailpulse_cli.ui import console

    for claim, st in zip(claims, statuses, strict=True):
        row = {"file": claim.name, "job_id": st["job_id"], "status": st["status"]}
        if st["status"] != "interrupted":
            try:
                row["moved_to"] = str(inbox.finish_done(folder, claim))
            except OSError as exc:  # its job is done; the next run moves it (nothing to redo)
                console.error_line(f"inbox: {claim.name}: cannot move to done/: {exc}")
        rows.append(row)


def _inbox_print(rows: list[dict[str, Any]], as_json: bool) -> None:
    from retailpulse_cli.text.escape import safe
    from retailpulse_cli.ui import console

    with console.stdout_guard():
        if as_json:
            console.print_json(rows)
        else:
            for row in rows:
                name = safe(row["file"])
                sys.stdout.write(f"{name}\t{row['job_id'] or '-'}\t{row['status']}\n")


def _inbox_take(
    claim: Claim,
    folder: Path,
    store: JobStore,
    settings: Settings,
    flags: RunFlags,
    master: StoreMaster,
    rows: list[dict[str, Any]],
) -> Planned | None:
    """Plan one claimed file, in isolation: whatever goes wrong with it (a poison file, a
    bug) rejects that file with a reason and stops no other file, tonight or tomorrow."""
    from retailpulse_cli.errors import InvalidJobFile, JobBusy
    from retailpulse_cli.jobs import inbox
    from retailpulse_cli.ui import console

    try:
        return _inbox_plan(claim, folder, store, settings, flags, master)
    except JobBusy as exc:  # its job is being resumed by hand: leave it for next time
        console.info_line(f"inbox: {claim.name}: {exc.message}; left for the next run")
        claim.release()
        return None
    except Exception as exc:
        if isinstance(exc, InvalidJobFile):
            problems = exc.problems
        else:
            problems = [str(exc) or type(exc).__name__]
    row: dict[str, Any] = {"file": claim.name, "job_id": None, "status": "rejected"}
    try:
        row["moved_to"] = str(inbox.finish_rejected(folder, claim, problems))
    except Exception as exc:  # cannot even move it (disk full?): the next run tries again
        console.error_line(f"inbox: {claim.name}: cannot move to rejected/: {exc}")
        claim.release()
        row["moved_to"] = None
    console.error_line(f"{claim.name}: rejected: {'; '.join(problems)}")
    from retailpulse_cli.processing.spec import problem_objects

    rows.append({**row, "problems": problem_objects(problems)})
    return None


def _inbox_plan(
    claim: Claim,
    folder: Path,
    store: JobStore,
    settings: Settings,
    flags: RunFlags,
    master: StoreMaster,
) -> Planned:
    """A claimed inbox file -> a locked job ready to run (resumed if a dead run made it)."""
    from retailpulse_cli.errors import JobDamaged, JobNotFound
    from retailpulse_cli.jobs import inbox, lifecycle
    from retailpulse_cli.jobs.batch import Planned
    from retailpulse_cli.processing import spec

    if claim.job_id:  # left by a run that died: finish its job rather than submit again
        try:
            return _open_for_run(store.job(claim.job_id), "resume", flags)
        except (JobNotFound, JobDamaged):
            pass  # its job is gone: submit the file afresh
    try:
        raw = claim.path.read_bytes()
    except OSError as exc:
        raise OSError(f"cannot be read: {exc.strerror or exc}") from None
    job_spec = spec.parse(raw, source=str(folder / claim.name), base_dir=folder)
    job, lock = lifecycle.create_job(store, job_spec, settings, master)
    try:
        inbox.record_job(claim, job.id)
    except BaseException:
        lock.release()  # the job reads `interrupted`; the file is rejected with the reason
        raise
    return Planned(job, lock, "submit", settings, master, job_spec)


@app.command(
    name="config",
    epilog=examples(
        "retailpulse config", "RETAILPULSE_RATE=2 retailpulse config --config nightly.toml --json"
    ),
)
@handle_errors
@run_options
def config_(as_json: JsonOpt = False, *, run_flags: RunFlags) -> None:
    """Print the effective run settings and where each comes from: the flag, a
    `RETAILPULSE_<NAME>` variable, the config file (TOML, keys are the long option
    names), or the default. Run options given here show as `flag`.
    """
    from retailpulse_cli.config import options
    from retailpulse_cli.text.escape import safe
    from retailpulse_cli.ui import console

    resolved = _resolve(run_flags)
    rows = options.describe(resolved)
    with console.stdout_guard():
        if as_json:
            console.print_json({"config_file": str(resolved.config_file or ""), "settings": rows})
            return
        where = resolved.config_file or "none (no config file found)"
        sys.stdout.write(f"config file: {safe(str(where))}\n")
        width = max(len(r["option"]) for r in rows)
        for r in rows:
            value = "-" if r["value"] is None else r["value"]
            if isinstance(value, list):
                value = ":".join(f"{v:g}" for v in value)
            sys.stdout.write(f"{r['option']:<{width}}  {value!s:<14} {r['source']}\n")


# -- report and prune ----------------------------------------------------------------------


def parse_since_option(text: str | None) -> Any:
    """--since WHEN as a datetime; a bad value is one line and the usage exit code."""
    from retailpulse_cli.jobs import lifecycle
    from retailpulse_cli.ui import console

    if text is None:
        return None
    try:
        return lifecycle.parse_since(text)
    except ValueError as exc:
        console.error_line(f"--since: {exc}")
        raise typer.Exit(int(ExitCode.USAGE)) from None


@app.command(
    epilog=examples(
        "retailpulse report --since 24h --html report.html",
        "retailpulse report $JOB --format csv > stores.csv",
    )
)
@handle_errors
def report(
    job_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[JOB_ID]...",
            help="Jobs to report on. [default: the latest job]",
            autocompletion=complete_job_ids,
            show_default=False,
        ),
    ] = None,
    since: SinceOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="table, csv (a row per store per job) or json.",
            autocompletion=_choices("table", "csv", "json"),
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", help="Also write a self-contained HTML page."),
    ] = None,
    as_json: JsonOpt = False,
    from_db: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="URL",
            help="Read the jobs from this results database instead of the jobs directory "
            "(sqlite:///FILE or postgresql://USER@HOST:PORT/DB).",
        ),
    ] = None,
    jobs_dir: JobsDir = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
    config_file: ConfigOpt = None,
) -> None:
    """Per store: images, ok, failed, unknown; failures by code with sample URLs; duration
    and images/s per job; totals. With --html FILE and no --format/--json, only the page.
    With --from URL, the jobs are those of a results database (one report for many machines).

    Exit codes: 0 shown, 2 bad usage, 5 no such job (or no jobs), 7 damaged job or
    unwritable --html FILE.
    """
    _use_config(config_file)
    from retailpulse_cli.jobs import report_counts
    from retailpulse_cli.ui import console, report_html, report_text

    fmt = (fmt or ("json" if as_json else ("" if html else "table"))).lower()
    if fmt not in ("", "table", "csv", "json") or (as_json and fmt != "json"):
        raise typer.BadParameter(
            "use table, csv or json (--json is --format json)", param_hint="--format"
        )
    if job_ids and since:
        raise typer.BadParameter("give job ids or --since, not both", param_hint="--since")
    since_dt = parse_since_option(since)
    if from_db is not None:
        from retailpulse_cli.cli.export_command import checked_url
        from retailpulse_cli.jobs import report_from_db

        result = report_from_db.summarize(checked_url(from_db), job_ids or [], since_dt)
    else:
        result = report_counts.summarize(_jobs_store(jobs_dir), job_ids or [], since_dt)
    if html is not None:
        report_html.write(result, html)
        if not quiet and str(html) != "-":
            console.info_line(f"report written to {html}")
    with console.stdout_guard():
        if fmt == "json":
            report_text.write_json(result)
        elif fmt == "csv":
            report_text.write_csv(result, sys.stdout)
        elif fmt == "table":
            report_text.show(_output(quiet, verbose, no_color), result)


@app.command(
    epilog=examples(
        "retailpulse prune --older-than 30d --dry-run",
        "retailpulse prune --older-than 7d --status failed --status interrupted --json",
    )
)
@handle_errors
def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Remove jobs finished (else created) longer ago than AGE: 30d, 12h, 2w.",
        ),
    ],
    statuses: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Only jobs in this state (repeatable): completed, failed, interrupted. "
            "[default: completed and failed]",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="List what would go; remove nothing.")
    ] = False,
    as_json: JsonOpt = False,
    jobs_dir: JobsDir = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
    config_file: ConfigOpt = None,
) -> None:
    """Remove old job directories. A job being worked on (locked) is never removed, nor an
    interrupted one unless --status interrupted is given.

    Exit codes: 0 done (busy jobs are skipped), 2 bad usage, 7 cannot remove.
    """
    _use_config(config_file)
    from retailpulse_cli.jobs import lifecycle, prune
    from retailpulse_cli.ui import console

    chosen = tuple(dict.fromkeys(s.lower() for s in statuses or prune.DEFAULT_STATUSES))
    if any(s not in prune.PRUNABLE for s in chosen):
        raise typer.BadParameter(f"use {', '.join(prune.PRUNABLE)}", param_hint="--status")
    try:
        age = lifecycle.parse_duration(older_than)
    except ValueError as exc:
        console.error_line(f"--older-than: {exc}")
        raise typer.Exit(int(ExitCode.USAGE)) from None
    store = _jobs_store(jobs_dir)
    result = prune.prune(store, older_than=age, statuses=chosen, dry_run=dry_run)
    for job_id in result.busy:
        console.info_line(f"skipped {job_id}: being worked on by another process")
    with console.stdout_guard():
        if as_json:
            console.print_json(result.removed)
            return
        verb = "would remove" if dry_run else "removed"
        for r in result.removed:
            size = prune.human_bytes(r["bytes"])
            sys.stdout.write(f"{verb} {r['job_id']}\t{r['status']}\t{r['created_at']}\t{size}\n")
    if not quiet:
        n = len(result.removed)
        freed = prune.human_bytes(result.freed)
        what = f"{n} job{'s' if n != 1 else ''}"
        console.info_line(f"{'would free' if dry_run else 'freed'} {freed} ({what})")


from retailpulse_cli.cli import export_command  # noqa: E402 (it uses the helpers above)

export_command.register(app, handle_errors)


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
