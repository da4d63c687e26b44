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
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from . import __version__
from .errors import EXIT_CODE_HELP, ExitCode, RetailpulseError

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


def handle_errors(func: F) -> F:
    """The one place where exceptions become one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from . import report

        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter, SystemExit):
            raise  # Typer's own: usage errors print their usage and exit 2
        except RetailpulseError as exc:
            from .errors import InvalidJobFile

            if isinstance(exc, InvalidJobFile) and len(exc.problems) > 1:
                for problem in exc.problems:
                    report.error_line(f"{exc.source}: {problem}")
            else:
                report.error_line(exc.message)
            if exc.hint:
                report.hint_line(exc.hint)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            report.error_line("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if os.environ.get("RETAILPULSE_DEBUG"):
                raise
            report.error_line(f"internal error: {type(exc).__name__}: {exc}")
            report.hint_line(
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
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only data and errors.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="A line per image on stderr.")]
NoColor = Annotated[bool, typer.Option("--no-color", help="No colour (also: NO_COLOR env var).")]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-w",
        min=1,
        max=1024,
        help="Images processed at once. [default: 32]",
        show_default=False,
    ),
]
GpuDelay = Annotated[
    str | None,
    typer.Option(
        "--gpu-delay",
        metavar="MIN:MAX",
        help="Simulated GPU seconds per image; 0 turns it off. [default: 0.1:0.4]",
        show_default=False,
    ),
]
Seed = Annotated[int | None, typer.Option("--seed", help="Make the GPU delays reproducible.")]
Retries = Annotated[
    int | None,
    typer.Option(
        "--retries",
        min=0,
        max=20,
        help="Extra attempts for transient failures. [default: 3]",
        show_default=False,
    ),
]
Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=0.1,
        help="Seconds of network time per image, all attempts included. [default: 60]",
        show_default=False,
    ),
]
ReadTimeout = Annotated[
    float | None,
    typer.Option(
        "--read-timeout",
        min=0.1,
        help="Longest silence from a server. [default: 20]",
        show_default=False,
    ),
]
MaxBytes = Annotated[
    int | None,
    typer.Option(
        "--max-bytes",
        min=1,
        help="Largest image body accepted. [default: 52428800 (50 MiB)]",
        show_default=False,
    ),
]
MaxPixels = Annotated[
    int | None,
    typer.Option(
        "--max-pixels",
        min=1,
        help="Largest width x height accepted. [default: 100000000]",
        show_default=False,
    ),
]
PerHost = Annotated[
    int | None,
    typer.Option(
        "--per-host",
        min=1,
        help="Connections at once to one host. [default: as --workers]",
        show_default=False,
    ),
]
Rate = Annotated[
    float | None,
    typer.Option(
        "--rate",
        min=0.0,
        help="Requests per second per host; 0 = no limit. [default: 0]",
        show_default=False,
    ),
]
NoLocal = Annotated[
    bool, typer.Option("--no-local-files", help="Refuse file:// URLs and paths (untrusted jobs).")
]
BlockPrivate = Annotated[
    bool,
    typer.Option(
        "--block-private-networks",
        help="Refuse hosts on loopback, private, link-local or metadata addresses.",
    ),
]


def where(cluster: str | None, shard_size: int) -> Any:
    """--cluster checked (syntax, Dask installed) before any job is made: None means this
    process, else the ClusterSpec and shard size `run_planned` opens an engine with."""
    from .engine import parse_cluster, require_dask

    spec = parse_cluster(cluster)
    if not spec.is_dask:
        return None
    require_dask()
    return (spec, shard_size)


Cluster = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        envvar="RETAILPULSE_CLUSTER",
        metavar="local|local:N|tcp://HOST:PORT",
        help="Where images run: this process, N Dask worker processes here, or a Dask "
        "scheduler (needs retailpulse[dask]). [default: local]",
        show_default=False,
    ),
]
ShardSize = Annotated[
    int,
    typer.Option(
        "--shard-size",
        envvar="RETAILPULSE_SHARD_SIZE",
        min=1,
        help="Images per Dask task with --cluster.",
    ),
]
DEFAULT_SHARD_SIZE = 1000


def parse_gpu_delay(text: str) -> tuple[float, float]:
    """'0' -> off, '0.25' -> fixed, '0.1:0.4' -> uniform range."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not MIN:MAX seconds, e.g. 0.1:0.4 or 0") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or parts[0] < 0 or parts[1] < parts[0]:
        raise typer.BadParameter(f"{text!r}: need 0 <= MIN <= MAX, e.g. 0.1:0.4 or 0")
    return parts[0], parts[1]


def build_settings(base: dict[str, Any] | None = None, **given: Any) -> Any:
    """Defaults, then settings stored with the job (resume/retry), then flags given now."""
    from .settings import Settings

    values: dict[str, Any] = {}
    fields = set(Settings.__dataclass_fields__)
    for key, value in (base or {}).items():
        if key in fields:
            values[key] = tuple(value) if key == "gpu_delay" else value
    if given.get("gpu_delay") is not None:
        given["gpu_delay"] = parse_gpu_delay(given["gpu_delay"])
    for flag, unset in (("allow_local_files", True), ("block_private_networks", False)):
        if given.get(flag) is unset:
            given[flag] = None  # a switch not given keeps the stored value
    values.update({k: v for k, v in given.items() if v is not None})
    if "per_host" not in values and "workers" in values:
        values["per_host"] = values["workers"]
    return Settings(**values)


def _jobs_store(jobs_dir: Path | None) -> Any:
    from .jobstore import JobStore, default_jobs_dir

    return JobStore(jobs_dir.expanduser() if jobs_dir else default_jobs_dir())


def _store_master(path: Path | None) -> Any:
    from . import stores

    return stores.load(stores.resolve_path(path))


def _output(quiet: bool, verbose: bool, no_color: bool) -> Any:
    from .report import Output

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
    """SIGINT/SIGTERM: first one stops the job gracefully, a second one exits at once."""

    def __init__(self, stop: Any) -> None:
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            # ValueError: not the main thread (some test runners); then no handler is needed
            with contextlib.suppress(ValueError):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            os._exit(int(ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.INTERRUPTED))
        self.stop.request(name)
        sys.stderr.write(
            f"\nretailpulse: {name}: stopping; finishing images in flight (again to quit now)\n"
        )

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def run_planned(planned: list[Any], *, output: Any, cluster: Any = None) -> list[dict[str, Any]]:
    """Run jobs we hold the locks of, with progress on stderr and signal handling;
    `cluster` (from `where`) runs them on Dask."""
    from . import report
    from .batch import run_jobs
    from .runner import StopFlag

    raise_open_files_limit()
    limit_malloc_arenas()
    stop = StopFlag()
    with contextlib.ExitStack() as stack:
        engine = _open_engine(cluster, planned, stack)
        board = stack.enter_context(report.ProgressBoard(output))
        stack.enter_context(Signals(stop))
        observers = [board.observer() for _ in planned]
        statuses = run_jobs(planned, stop=stop, observers=observers, engine=engine)
    if not board.live:
        for obs, st in zip(observers, statuses, strict=True):
            obs.finished(st)
    return statuses


def _open_engine(cluster: Any, planned: list[Any], stack: contextlib.ExitStack) -> Any:
    """The Dask engine asked for (None: this process); locks released if it cannot start."""
    if cluster is None:
        return None
    from .engine import DaskEngine

    spec, shard_size = cluster
    try:
        return stack.enter_context(DaskEngine(spec, shard_size=shard_size))
    except BaseException:
        for p in planned:
            p.lock.release()  # a job created by this submit reads `interrupted`: resume it
        raise


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
    output: Any,
    *,
    as_json: bool,
    invalid: int = 0,
    many: bool = False,
) -> None:
    """Print finished runs (ids, a table on a terminal, or JSON) and exit with their code."""
    from . import report

    code = combined_code(statuses, invalid)
    if sys.stderr.isatty() and not output.quiet and not as_json:
        for st in statuses:
            report.show_status(output, st, output.err)
    with report.stdout_guard():
        if as_json:
            report.print_json(statuses if many else statuses[0])
        else:
            for st in statuses:
                sys.stdout.write(st["job_id"] + "\n")
    exit_after_run(statuses, code)


def exit_after_run(statuses: list[dict[str, Any]], code: int) -> NoReturn:
    """Exit with `code`. After an interrupted run, a worker thread may still be stuck in
    a DNS lookup or a connect: it must not keep the process alive, so exit at once."""
    sys.stdout.flush()
    sys.stderr.flush()
    if any(s.get("status") == "interrupted" for s in statuses):
        os._exit(code)
    raise typer.Exit(code)


def load_specs(job_files: list[str], *, strict: bool) -> tuple[list[Any], int]:
    """Validate job files; report each bad one on stderr. With `strict` (a single file),
    the error propagates so it exits 3 with its own message."""
    from . import report, spec
    from .errors import InvalidJobFile

    if job_files.count("-") > 1:
        raise typer.BadParameter("stdin (-) can be given only once", param_hint="JOB_FILE...")
    specs, invalid = [], 0
    for name in job_files:
        try:
            specs.append(spec.load(name))
        except InvalidJobFile as exc:
            if strict:
                raise
            invalid += 1
            for problem in exc.problems:
                report.error_line(f"{exc.source}: {problem}")
            report.info_line(f"skipped {exc.source}: invalid job file")
    return specs, invalid


# -- commands ------------------------------------------------------------------------------


@app.command()
@handle_errors
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
    jobs_dir: JobsDir = None,
    store_master: StoreMasterOpt = None,
    workers: Workers = None,
    gpu_delay: GpuDelay = None,
    seed: Seed = None,
    retries: Retries = None,
    timeout: Timeout = None,
    read_timeout: ReadTimeout = None,
    max_bytes: MaxBytes = None,
    max_pixels: MaxPixels = None,
    per_host: PerHost = None,
    rate: Rate = None,
    no_local_files: NoLocal = False,
    block_private_networks: BlockPrivate = False,
    cluster: Cluster = None,
    shard_size: ShardSize = DEFAULT_SHARD_SIZE,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Validate job files, create a job for each and process them; print one job id per line.

    Several files share one worker pool and one progress display; a bad file is reported
    and skipped. `--json` prints the final status object (an array for several files).
    Exit codes: 0 completed, 1 failed, 3 invalid job file, 4 store master problem,
    7 storage problem, 130/143 interrupted (`retailpulse --help` lists all).
    """
    from . import service
    from .batch import Planned

    output = _output(quiet, verbose, no_color)
    place = where(cluster, shard_size)
    settings = build_settings(
        workers=workers,
        gpu_delay=gpu_delay,
        seed=seed,
        retries=retries,
        timeout=timeout,
        read_timeout=read_timeout,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        per_host=per_host,
        rate=rate,
        allow_local_files=not no_local_files,
        block_private_networks=block_private_networks,
    )
    many = len(job_files) > 1
    specs, invalid = load_specs(job_files, strict=not many)
    if not specs:
        raise typer.Exit(int(ExitCode.INVALID_INPUT))
    master = _store_master(store_master)
    store = _jobs_store(jobs_dir)
    planned = []
    try:
        while specs:  # popped: each spec then lives only as long as its job runs
            job_spec = specs.pop(0)
            job, lock = service.create_job(store, job_spec, settings, master)
            planned.append(Planned(job, lock, "submit", settings, master, job_spec))
    except BaseException:
        for p in planned:
            p.lock.release()  # jobs created so far read `interrupted`; resume finishes them
        raise
    if detach:
        _pass_cluster(cluster, shard_size)
        _detach(planned, as_json=as_json, many=many)
        raise typer.Exit(int(ExitCode.INVALID_INPUT) if invalid else 0)
    statuses = run_planned(planned, output=output, cluster=place)
    finish(statuses, output, as_json=as_json, invalid=invalid, many=many)


def _pass_cluster(cluster: str | None, shard_size: int) -> None:
    """The detached worker reads --cluster and --shard-size from its environment."""
    if cluster:
        os.environ["RETAILPULSE_CLUSTER"] = cluster
    os.environ["RETAILPULSE_SHARD_SIZE"] = str(shard_size)


def _detach(planned: list[Any], *, as_json: bool, many: bool) -> None:
    from .detach import spawn_worker

    spawn_worker([p.job for p in planned], [p.lock for p in planned])
    _print_ids([p.job for p in planned], as_json=as_json, many=many)


def _print_ids(jobs: list[Any], *, as_json: bool, many: bool) -> None:
    """What --detach prints: the ids, or the status objects with --json."""
    from . import report, service

    with report.stdout_guard():
        if as_json:
            docs = [service.read_status(job) for job in jobs]
            report.print_json(docs if many else docs[0])
        else:
            for job in jobs:
                sys.stdout.write(job.id + "\n")


@app.command(name="_worker", hidden=True)
@handle_errors
def worker(
    job_dirs: Annotated[list[Path], typer.Argument()],
    mode: Annotated[str, typer.Option("--mode")] = "submit",
    store_master: StoreMasterOpt = None,
    cluster: Cluster = None,
    shard_size: ShardSize = DEFAULT_SHARD_SIZE,
) -> None:
    """Detached worker: runs jobs handed over by `--detach` (their locks inherited)."""
    from . import report
    from .detach import inherited_locks, inherited_settings
    from .jobstore import Job

    jobs = [Job(d) for d in job_dirs]
    locks = inherited_locks(jobs)
    given = inherited_settings()
    planned = []
    try:
        for job, lock in zip(jobs, locks, strict=True):
            planned.append(_open_for_run(job, mode, given, store_master, lock=lock))
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    report.info_line(f"worker pid {os.getpid()} started on {', '.join(j.id for j in jobs)}")
    statuses = run_planned(
        planned, output=_output(False, False, True), cluster=where(cluster, shard_size)
    )
    code = combined_code(statuses)
    report.info_line(f"worker pid {os.getpid()} exits {code}")
    exit_after_run(statuses, code)


def _job_store_master(job: Any, option: Path | None) -> Any:
    """--store-master if given, else the one the job was submitted with, else the default."""
    from . import report, service

    if option is None:
        option = service.stored_store_master(job)
        if option is None:
            report.info_line(f"job {job.id}: its store master is gone; using the default one")
    return _store_master(option)


def _open_for_run(
    job: Any, mode: Any, given: dict[str, Any], store_master: Path | None, lock: Any = None
) -> Any:
    """Lock an existing job (unless its lock is handed over) and plan its run with the
    settings it was submitted with, overridden by `given`; unlock if planning fails."""
    from . import service
    from .batch import Planned
    from .jobstore import Lock

    lock = lock or Lock.acquire(job.lock_path)
    try:
        mode = service.continuing_mode(job, mode)
        settings = build_settings(service.stored_settings(job), **given)
        return Planned(job, lock, mode, settings, _job_store_master(job, store_master))
    except BaseException:
        lock.release()
        raise


def _resume_or_retry(
    mode: Any,
    job_id: str,
    jobs_dir: Path | None,
    store_master: Path | None,
    as_json: bool,
    output: Any,
    given: dict[str, Any],
    detach: bool = False,
    cluster: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> None:
    place = where(cluster, shard_size)
    job = _jobs_store(jobs_dir).job(job_id)
    planned = _open_for_run(job, mode, given, store_master)
    if detach:
        from .detach import spawn_worker

        _pass_cluster(cluster, shard_size)
        spawn_worker(
            [job], [planned.lock], mode=planned.mode, given=given, store_master=store_master
        )
        _print_ids([job], as_json=as_json, many=False)
        return
    statuses = run_planned([planned], output=output, cluster=place)
    finish(statuses, output, as_json=as_json)


@app.command()
@handle_errors
def resume(
    job_id: Annotated[str, typer.Argument(help="The job to finish.")],
    detach: DetachOpt = False,
    as_json: JsonOpt = False,
    jobs_dir: JobsDir = None,
    store_master: StoreMasterOpt = None,
    workers: Workers = None,
    gpu_delay: GpuDelay = None,
    seed: Seed = None,
    retries: Retries = None,
    timeout: Timeout = None,
    cluster: Cluster = None,
    shard_size: ShardSize = DEFAULT_SHARD_SIZE,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Finish an interrupted job: images already recorded are not downloaded again.

    Settings are those the job was submitted with unless given again. Exit codes as for
    `submit`; 6 when another process is working on the job.
    """
    given = {
        "workers": workers,
        "gpu_delay": gpu_delay,
        "seed": seed,
        "retries": retries,
        "timeout": timeout,
    }
    _resume_or_retry(
        "resume",
        job_id,
        jobs_dir,
        store_master,
        as_json,
        _output(quiet, verbose, no_color),
        given,
        detach,
        cluster,
        shard_size,
    )


@app.command()
@handle_errors
def retry(
    job_id: Annotated[str, typer.Argument(help="The job whose failed images to run again.")],
    detach: DetachOpt = False,
    as_json: JsonOpt = False,
    jobs_dir: JobsDir = None,
    store_master: StoreMasterOpt = None,
    workers: Workers = None,
    gpu_delay: GpuDelay = None,
    seed: Seed = None,
    retries: Retries = None,
    timeout: Timeout = None,
    cluster: Cluster = None,
    shard_size: ShardSize = DEFAULT_SHARD_SIZE,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Run the failed images of a job again (and any never processed); unknown stores stay failed.

    Exit codes as for `submit`; 6 when another process is working on the job.
    """
    given = {
        "workers": workers,
        "gpu_delay": gpu_delay,
        "seed": seed,
        "retries": retries,
        "timeout": timeout,
    }
    _resume_or_retry(
        "retry",
        job_id,
        jobs_dir,
        store_master,
        as_json,
        _output(quiet, verbose, no_color),
        given,
        detach,
        cluster,
        shard_size,
    )


@app.command()
@handle_errors
def status(
    job_id: Annotated[str, typer.Argument(help="Job id, as printed by submit.")],
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
) -> None:
    """Show a job's status, counts and errors.

    `ongoing` jobs whose worker died show as `interrupted`. Exit codes: 0 shown, 5 no such
    job, 7 damaged job directory; with --wait the job's outcome (0, 1, 130, 143) or 8.
    """
    from . import report, service

    output = _output(quiet, verbose, no_color)
    store = _jobs_store(jobs_dir)
    job = store.job(job_id)
    current = service.read_status(job)
    if wait:
        try:
            current = service.wait_for(job, timeout)
        except KeyboardInterrupt:
            report.info_line(f"stopped waiting; job {job.id} goes on (status: {current['status']})")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    with report.stdout_guard():
        if as_json:
            report.print_json(current)
        else:
            report.show_status(output, current)
    if wait:
        raise typer.Exit(outcome_code(current))


@app.command()
@handle_errors
def results(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or csv.")] = "jsonl",
    failed: Annotated[bool, typer.Option("--failed", help="Only images that failed.")] = False,
    jobs_dir: JobsDir = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Print one record per image (JSON Lines or CSV), streamed in the order images finished."""
    from . import results as results_mod

    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("use jsonl or csv", param_hint="--format")
    job = _jobs_store(jobs_dir).job(job_id)
    job.status()  # checks the job directory is readable and of a known schema
    from . import report

    with report.stdout_guard():
        n = results_mod.write(job, fmt=fmt, only_failed=failed, out=sys.stdout)
        if verbose and not quiet:
            report.info_line(f"job {job.id}: {n:,} records")


@app.command()
@handle_errors
def schema(
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Print the JSON Schema of the job file (for editors and other tools)."""
    from . import report
    from .spec import JOB_SCHEMA

    with report.stdout_guard():
        report.print_json(JOB_SCHEMA)


@app.command(name="list")
@handle_errors
def list_(
    status_filter: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only jobs in this state: ongoing, completed, failed, interrupted, damaged.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only jobs created at or after this ISO 8601 date or date-time "
            "(UTC unless an offset is given).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="At most this many jobs.")
    ] = None,
    as_json: JsonOpt = False,
    jobs_dir: JobsDir = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """List jobs, newest first: id, created, status, images, failures."""
    from . import report, service

    states = ("ongoing", "completed", "failed", "interrupted", "damaged")
    if status_filter is not None and status_filter not in states:
        raise typer.BadParameter(f"use one of {', '.join(states)}", param_hint="--status")
    try:
        since_dt = service.parse_since(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    output = _output(quiet, verbose, no_color)
    store = _jobs_store(jobs_dir)
    rows = service.list_jobs(store, status=status_filter, since=since_dt, limit=limit)
    with report.stdout_guard():
        if as_json:
            report.print_json(rows)
        else:
            report.show_jobs(output, rows, store.root)


@app.command()
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
) -> None:
    """Check job files and their store ids without creating a job or downloading anything.

    Exit codes: 0 valid, 1 valid but some store ids are not in the store master (the job
    would end `failed`), 3 invalid, 4 store master problem.
    """
    from . import report, spec
    from .errors import InvalidJobFile

    if job_files.count("-") > 1:
        raise typer.BadParameter("stdin (-) can be given only once", param_hint="JOB_FILE...")
    master = _store_master(store_master)
    rows: list[dict[str, Any]] = []
    for name in job_files:
        try:
            job_spec = spec.load(name)
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
    with report.stdout_guard():
        if as_json:
            report.print_json(rows)
        else:
            report.show_validation(_output(quiet, verbose, no_color), rows)
    if any(not r["valid"] for r in rows):
        raise typer.Exit(int(ExitCode.INVALID_INPUT))
    raise typer.Exit(int(ExitCode.JOB_FAILED) if any(r["unknown_stores"] for r in rows) else 0)


@app.command()
@handle_errors
def inbox(
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder where job files are dropped.")
    ],
    as_json: JsonOpt = False,
    jobs_dir: JobsDir = None,
    store_master: StoreMasterOpt = None,
    workers: Workers = None,
    gpu_delay: GpuDelay = None,
    seed: Seed = None,
    retries: Retries = None,
    timeout: Timeout = None,
    no_local_files: NoLocal = False,
    block_private_networks: BlockPrivate = False,
    cluster: Cluster = None,
    shard_size: ShardSize = DEFAULT_SHARD_SIZE,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Process every *.json job file in DIR once: each moves to DIR/done/ (job id in
    NAME.job beside it) or DIR/rejected/ (reasons in NAME.reason). Safe to start while
    another run is going: no file is taken twice. Prints `file<TAB>job_id<TAB>status`.

    Exit codes as for `submit` with several files.
    """
    from . import inbox as box
    from . import report
    from .errors import InvalidJobFile, JobBusy

    output = _output(quiet, verbose, no_color)
    given: dict[str, Any] = {
        "workers": workers,
        "gpu_delay": gpu_delay,
        "seed": seed,
        "retries": retries,
        "timeout": timeout,
        "allow_local_files": not no_local_files,
        "block_private_networks": block_private_networks,
    }
    settings = build_settings(**given)
    place = where(cluster, shard_size)
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder", param_hint="DIR")
    master = _store_master(store_master)  # before claiming: a bad master must not strand files
    store = _jobs_store(jobs_dir)
    folder = folder.resolve()
    rows: list[dict[str, Any]] = []
    planned: list[Any] = []
    claims: list[Any] = []
    found, odd = box.claim_all(folder)
    for name in odd:
        report.info_line(f"inbox: skipped {folder / name}: not a regular file")
    for claim in found:
        try:
            item = _inbox_plan(claim, folder, store, settings, given, master)
        except JobBusy as exc:  # its job is being resumed by hand: leave it for next time
            report.info_line(f"inbox: {claim.name}: {exc.message}; left for the next run")
            claim.release()
            continue
        except Exception as exc:  # one odd file must not jam tonight's batch (or tomorrow's)
            problems = exc.problems if isinstance(exc, InvalidJobFile) else [str(exc)]
            dest = box.finish_rejected(folder, claim, problems)
            report.error_line(f"{claim.name}: rejected: {'; '.join(problems)}")
            rows.append(
                {
                    "file": claim.name,
                    "job_id": None,
                    "status": "rejected",
                    "moved_to": str(dest),
                    "problems": problems,
                }
            )
            continue
        planned.append(item)
        claims.append(claim)
    statuses = run_planned(planned, output=output, cluster=place) if planned else []
    for claim, st in zip(claims, statuses, strict=True):
        row = {"file": claim.name, "job_id": st["job_id"], "status": st["status"]}
        if st["status"] != "interrupted":
            row["moved_to"] = str(box.finish_done(folder, claim))
        rows.append(row)
    with report.stdout_guard():
        if as_json:
            report.print_json(rows)
        else:
            for row in rows:
                name = report.safe(row["file"])
                sys.stdout.write(f"{name}\t{row['job_id'] or '-'}\t{row['status']}\n")
    if not rows and not quiet:
        report.info_line(f"inbox {folder}: no job files")
    invalid = sum(1 for r in rows if r["status"] == "rejected")
    exit_after_run(statuses, combined_code(statuses, invalid))


def _inbox_plan(
    claim: Any, folder: Path, store: Any, settings: Any, given: dict[str, Any], master: Any
) -> Any:
    """A claimed inbox file -> a locked job ready to run (resumed if a dead run made it)."""
    from . import inbox as box
    from . import service, spec
    from .batch import Planned
    from .errors import JobDamaged, JobNotFound

    if claim.job_id:  # left by a run that died: finish its job rather than submit again
        try:
            return _open_for_run(store.job(claim.job_id), "resume", given, None)
        except (JobNotFound, JobDamaged):
            pass  # its job is gone: submit the file afresh
    try:
        raw = claim.path.read_bytes()
    except OSError as exc:
        raise OSError(f"cannot be read: {exc.strerror or exc}") from None
    job_spec = spec.parse(raw, source=str(folder / claim.name), base_dir=folder)
    job, lock = service.create_job(store, job_spec, settings, master)
    box.record_job(claim, job.id)
    return Planned(job, lock, "submit", settings, master, job_spec)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
