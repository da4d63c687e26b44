"""A job's life before it runs: created from a job file, or opened again to resume or
retry, and in either case locked by us and planned (`Planned`) with its settings.

Nothing here prints; notes (a store master that is gone) go to a `Notes`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from retailpulse_cli.config import options
from retailpulse_cli.config.options import RunFlags
from retailpulse_cli.config.settings import Settings
from retailpulse_cli.jobs.notes import Notes
from retailpulse_cli.model import JobState, JobStatus, RunSpan
from retailpulse_cli.processing import spec
from retailpulse_cli.processing.tally import Tally
from retailpulse_cli.storage import store_master as store_masters
from retailpulse_cli.storage.job_dir import SCHEMA_VERSION, Job, JobStore, Lock, host_info, now_iso
from retailpulse_cli.storage.store_master import StoreMaster

Mode = Literal["submit", "resume", "retry"]


@dataclass
class Planned:
    """A job ready to run: created (or opened) and locked by us."""

    job: Job
    lock: Lock
    mode: Mode
    settings: Settings
    store_master: StoreMaster
    spec: spec.JobSpec | None = None  # already parsed (submit): not parsed again from job.json


def create_job(
    store: JobStore,
    job_spec: spec.JobSpec,
    settings: Settings,
    store_master: StoreMaster,
    *,
    state: JobState = JobState.ONGOING,
    extra_meta: dict[str, Any] | None = None,
    run_by: str | None = None,
) -> tuple[Job, Lock]:
    """Create the job directory (status `ongoing`, or `queued` for a service's queue; no
    results yet), returned locked. `extra_meta` (origin, idempotency key) is written with
    the job in one rename, so the job never exists without it."""
    created = now_iso()
    meta = {
        "schema_version": SCHEMA_VERSION,
        "created_at": created,
        "source": job_spec.source,
        "base_dir": str(job_spec.base_dir),
        "visits": job_spec.visit_count,
        "images_total": job_spec.image_count,
        "store_master": str(store_master.path.resolve()),
        "settings": _settings_to_json(settings),
        **(extra_meta or {}),
    }
    tally = new_tally(job_spec)
    status = status_doc("", state, tally, created=created, mode="submit", run_by=run_by)
    if state == JobState.QUEUED:
        status["queued_at"] = created
    return store.create(job_spec.raw, meta, status)


def new_tally(job_spec: spec.JobSpec) -> Tally:
    return Tally(
        images_total=job_spec.image_count,
        images_per_store=Counter(job_spec.store_images),
        visits=job_spec.visit_count,
    )


def status_doc(
    job_id: str,
    state: JobState,
    tally: Tally,
    *,
    created: str,
    mode: str,
    started: str | None = None,
    finished: str | None = None,
    interrupted_by: str | None = None,
    runs: list[RunSpan] | None = None,
    now: str | None = None,
    run_by: str | None = None,
) -> JobStatus:
    """A status.json document: the state, the times, the counts, who runs it (`run_by`:
    "serve" for a service, which resumes its own jobs after a crash), and every run the
    job had (`runs`, so a report's duration covers them all)."""
    # a plain dict literal: the key order is status.json's (mypy cannot check ** of counts)
    doc = cast(
        JobStatus,
        {
            "schema_version": SCHEMA_VERSION,
            "job_id": job_id,
            "status": state.value,
            "created_at": created,
            "started_at": started,
            "updated_at": now or now_iso(),
            "finished_at": finished,
            **tally.counts(),
            "run": {"mode": mode, **({"by": run_by} if run_by else {}), **host_info()},
            "runs": runs or [],
        },
    )
    if interrupted_by:
        doc["interrupted_by"] = interrupted_by
    return doc


def stored_store_master(job: Job) -> Path | None:
    """The store master the job was submitted with, if that file is still there."""
    recorded = job.meta().get("store_master")
    path = Path(str(recorded)) if recorded else None
    return path if path is not None and path.is_file() else None


def continuing_mode(job: Job, asked: Mode) -> Mode:
    """`resume` of a retry that was interrupted goes on retrying (else its failed images
    that were not reached yet would stay failed)."""
    if asked != "resume":
        return asked
    status = job.read_json("status.json")
    run = status.get("run")
    was_retry = isinstance(run, dict) and run.get("mode") == "retry"
    unfinished = status.get("status") in (
        JobState.QUEUED,
        JobState.ONGOING,
        JobState.INTERRUPTED,
        JobState.CANCELLED,
    )
    return "retry" if was_retry and unfinished else asked


def earlier_runs(status: Mapping[str, object]) -> list[RunSpan]:
    """The runs a job had before this one, each {mode, started_at, ended_at}, so that a
    report's duration and speed cover them all. A job written before `runs` existed had
    one run we know of: its last, from `started_at` to its last status update."""
    runs = status.get("runs")
    if isinstance(runs, list):
        return [cast(RunSpan, r) for r in runs if isinstance(r, dict)]
    started, ended = status.get("started_at"), status.get("updated_at")
    if not isinstance(started, str) or not isinstance(ended, str):
        return []  # never started
    run = status.get("run")
    mode = run.get("mode") if isinstance(run, dict) else None
    return [{"mode": str(mode or "submit"), "started_at": started, "ended_at": ended}]


def stored_settings(job: Job) -> dict[str, object]:
    value = job.meta().get("settings")
    return value if isinstance(value, dict) else {}


def _settings_to_json(settings: Settings) -> dict[str, Any]:
    from retailpulse_cli.text.redaction import redact

    out = dataclasses.asdict(settings)
    out["gpu_delay"] = list(settings.gpu_delay)
    if settings.save_images:  # credentials come from the environment, never from a file
        out["save_images"] = redact(settings.save_images)
    if settings.results_db:  # usable again on resume; PGPASSWORD or .pgpass for the password
        from retailpulse_cli.storage.results_db.url import without_password

        out["results_db"] = without_password(settings.results_db)
    return out


def create_jobs(
    store: JobStore, specs: list[spec.JobSpec], settings: Settings, master: StoreMaster
) -> list[Planned]:
    """A locked job per spec; if one cannot be made, the ones made so far are unlocked
    (they read `interrupted` and `resume` finishes them). `specs` is emptied: each spec
    then lives only as long as its job runs."""
    planned = []
    try:
        while specs:
            job_spec = specs.pop(0)
            job, lock = create_job(store, job_spec, settings, master)
            planned.append(Planned(job, lock, "submit", settings, master, job_spec))
    except BaseException:
        for p in planned:
            p.lock.release()
        raise
    return planned


def open_for_run(
    job: Job, mode: Mode, flags: RunFlags, notes: Notes, lock: Lock | None = None
) -> Planned:
    """Lock an existing job (unless its lock is handed over) and plan its run with the
    settings it was submitted with, overridden by flags, environment and config file;
    unlock if planning fails."""
    lock = lock or Lock.acquire(job.lock_path)
    try:
        mode = continuing_mode(job, mode)
        resolved = flags.resolve(stored=stored_settings(job))
        master = job_store_master(job, resolved.get("store_master"), notes)
        settings = options.settings_from(resolved)
        check_sinks(settings)
        return Planned(job, lock, mode, settings, master)
    except BaseException:
        lock.release()
        raise


def open_handed_over(
    jobs: list[Job], locks: list[Lock], mode: Mode, flags: RunFlags, notes: Notes
) -> list[Planned]:
    """Plan jobs whose locks a `--detach` parent handed over; if one cannot be planned,
    every lock is released (the jobs read `interrupted`)."""
    planned = []
    try:
        for job, lock in zip(jobs, locks, strict=True):
            planned.append(open_for_run(job, mode, flags, notes, lock=lock))
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return planned


def job_store_master(job: Job, option: Path | None, notes: Notes) -> StoreMaster:
    """--store-master (or its variable or config key), else the one the job was submitted
    with, else the default."""
    if option is None:
        option = stored_store_master(job)
        if option is None:
            notes.info(f"job {job.id}: its store master is gone; using the default one")
    return store_masters.load(store_masters.resolve_path(option))


def check_sinks(settings: Settings) -> None:
    """--save-images and --results-db checked before any job is made or run: a missing
    extra, a bucket that is not there, a read-only folder or a database that cannot be
    reached (or is newer than this tool) is one line now, not one failure per image."""
    if settings.save_images:
        from retailpulse_cli.storage.image_archive import open_store

        open_store(settings.save_images).check()
    if settings.results_db:  # reached, and its schema made or migrated
        from retailpulse_cli.storage import results_db

        results_db.check(settings.results_db)
