"""Running a job: the one writer that turns image records into results.jsonl, the
tally and status.json while the pipeline (here or on a Dask cluster) does the work.

`execute` runs (or finishes, or retries) one job whose lock we hold; jobs.batch runs
several. Nothing here prints: progress goes to an `Observer`.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from retailpulse_cli.config.settings import Settings
from retailpulse_cli.errors import InvalidJobFile, JobDamaged, RetailpulseError
from retailpulse_cli.jobs.lifecycle import Mode, earlier_runs, new_tally, status_doc
from retailpulse_cli.jobs.read import read_status, with_errors
from retailpulse_cli.model import FINISHED, JobState, JobStatus, Record, RunSpan, StoreProblem
from retailpulse_cli.processing import spec
from retailpulse_cli.processing.tally import STORE_NOT_FOUND, Tally
from retailpulse_cli.storage.job_dir import Job, ResultsWriter, fsync_dir, now_iso
from retailpulse_cli.storage.store_master import StoreMaster

if TYPE_CHECKING:  # pipeline and fetch pull in requests and Pillow: imported when a job runs
    from retailpulse_cli.processing.dask_engine import DaskEngine
    from retailpulse_cli.processing.download import StopFlag
    from retailpulse_cli.processing.fetch import Fetcher
    from retailpulse_cli.processing.pipeline import Pools
    from retailpulse_cli.storage.results_db.follower import Follower

STATUS_SYNC_SECONDS = 0.5  # how stale `status` may be while a job runs
RESULTS_SYNC_SECONDS = 1.0  # a kill loses at most this much finished work (plus in-flight)
RESULTS_SYNC_RECORDS = 500


class Observer(Protocol):
    """Progress callbacks; the CLI's Rich display implements them."""

    def started(self, job: Job, tally: Tally, todo: int, source: str) -> None: ...
    def record(self, record: Record, tally: Tally) -> None: ...
    def tick(self, tally: Tally) -> None: ...


class NullObserver:
    def started(self, job: Job, tally: Tally, todo: int, source: str) -> None:
        pass

    def record(self, record: Record, tally: Tally) -> None:
        pass

    def tick(self, tally: Tally) -> None:
        pass


def load_spec(job: Job) -> spec.JobSpec:
    meta = job.meta()
    try:
        return spec.parse(
            job.job_file(), source=str(meta.get("source")), base_dir=Path(meta["base_dir"])
        )
    except (KeyError, InvalidJobFile) as exc:
        raise JobDamaged(f"job {job.id}: stored job file or meta.json is damaged: {exc}") from None


@dataclass
class _Plan:
    tally: Tally  # counts of every record on disk, as `results` shows them
    skip: set[int]  # indices already recorded and not to redo
    redo: dict[int, tuple[str, str]]  # retry: index -> (store_id, error_code) to replace


def _plan(job: Job, job_spec: spec.JobSpec, mode: Mode) -> _Plan:
    """What is already done. Any retry.jsonl left by a killed retry is merged first."""
    merge_retry(job)
    tally = new_tally(job_spec)
    skip: set[int] = set()
    redo: dict[int, tuple[str, str]] = {}
    for rec in job.iter_results():
        index = rec.get("index")
        if not isinstance(index, int) or index in skip or index in redo:
            continue  # our writer makes no duplicates; never count one twice anyway
        tally.add(rec)
        code = str(rec.get("error_code") or "")
        if mode == "retry" and rec.get("status") != "ok" and code != STORE_NOT_FOUND:
            redo[index] = (str(rec.get("store_id")), code)
        else:
            skip.add(index)
    return _Plan(tally, skip, redo)


def merge_retry(job: Job) -> None:
    """Fold retry.jsonl into results.jsonl: one record per image, written to a fresh temp
    file and renamed over results.jsonl, so a merge cut short changes nothing."""
    if not job.retry_path.exists():
        return
    tmp = job.dir / ".results.jsonl.merge"
    tmp.unlink(missing_ok=True)  # left by a merge that died: start it again from scratch
    writer = ResultsWriter.open(tmp)
    try:
        seen: set[int] = set()
        for rec in job.iter_records():
            index = rec.get("index")
            if isinstance(index, int) and index not in seen:
                seen.add(index)
                writer.append(rec)
        writer.close()
        os.replace(tmp, job.results_path)
        fsync_dir(job.dir)
        job.retry_path.unlink()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise


def execute(
    job: Job,
    *,
    mode: Mode,
    settings: Settings,
    store_master: StoreMaster,
    stop: StopFlag,
    observer: Observer | None = None,
    pools: Pools | None = None,
    fetcher: Fetcher | None = None,
    job_spec: spec.JobSpec | None = None,
    engine: DaskEngine | None = None,
    run_by: str | None = None,
) -> JobStatus:
    """Run (or finish, or retry) a job while holding its lock; return its final status.

    Several jobs may run at once in threads sharing `pools` and one `fetcher` (one set of
    stage threads, one connection pool); each job still has its own single writer.
    `run_by` ("serve") is kept in status.json `run.by`: a service resumes after a crash
    the jobs it was running, and only those. A stop whose reason is `cancelled` ends the
    job `cancelled` rather than `interrupted`.
    """
    from retailpulse_cli.processing.fetch import (
        Fetcher,  # heavy (requests): only commands that download import it
    )

    job_spec = job_spec or load_spec(job)
    plan = _plan(job, job_spec, mode)
    run = _JobRun(job, mode, plan, observer or NullObserver(), run_by)
    if run.nothing_to_do():
        return read_status(job)  # nothing to do: the job's history stays as it was
    run.open(settings.results_db)
    own_fetcher = fetcher is None
    fetch = fetcher or Fetcher(settings, stop)
    try:
        complete = _run_pipeline(run, job_spec, settings, store_master, stop, fetch, pools, engine)
    except BaseException as exc:
        if pools is None:
            stop.request("error")  # our own stages: let in-flight images end quickly
        run.interrupted(exc)
        raise
    finally:
        run.writer.close()
        if own_fetcher:
            fetch.close()
    return run.finish(complete, stop.reason)


def _run_pipeline(
    run: _JobRun,
    job_spec: spec.JobSpec,
    settings: Settings,
    store_master: StoreMaster,
    stop: StopFlag,
    fetcher: Fetcher,
    pools: Pools | None,
    engine: DaskEngine | None,
) -> bool:
    """Both stages in this process, or shards of them on a Dask cluster (`engine`)."""
    from retailpulse_cli.processing.pipeline import Pipeline

    skip = run.plan.skip
    tasks = (t for t in job_spec.tasks() if t.image_index not in skip)
    base_dir = Path(str(run.meta.get("base_dir", ".")))
    is_known = store_master.__contains__
    run.observer.started(run.job, run.plan.tally, run.todo, str(run.meta.get("source") or ""))
    if engine is not None:
        return engine.run(
            tasks,
            settings=settings,
            base_dir=base_dir,
            is_known=is_known,
            sink=run.sink,
            tick=run.tick,
            stop=stop,
            name=run.job.id,
            total=run.todo,
        )
    if not settings.save_images:
        pipeline = Pipeline(settings, fetcher, base_dir, stop, is_known=is_known, pools=pools)
        return pipeline.run(tasks, run.sink, run.tick)
    from retailpulse_cli.processing.download import store_keep
    from retailpulse_cli.storage.image_archive import open_store
    from retailpulse_cli.storage.photo_sync import HeldRecords

    store = open_store(settings.save_images)  # checked by the CLI before the job was made
    keep = store_keep(store, settings, stop)
    pipeline = Pipeline(
        settings, fetcher, base_dir, stop, is_known=is_known, pools=pools, keep=keep
    )
    held = HeldRecords(store, run.sink)  # a record is written once the photo it names is durable
    complete = pipeline.run(tasks, held.add, held.ticking(run.tick))
    held.drain()
    return complete


class _JobRun:
    """The one writer of a running job: records to disk, tally, status, observer."""

    def __init__(
        self, job: Job, mode: Mode, plan: _Plan, observer: Observer, run_by: str | None
    ) -> None:
        self.job = job
        self.run_by = run_by
        self.mode = mode
        self.plan = plan
        self.observer = observer
        self.meta = job.meta()
        self.created = str(self.meta.get("created_at"))
        self.started = now_iso()
        self.earlier_runs = earlier_runs(job.read_json("status.json"))
        self.todo = plan.tally.images_total - len(plan.skip)  # a retry redoes counted ones
        self.last_status = time.monotonic()
        self.feed: Follower | None = None  # the results database's follower (--results-db)

    def open(self, results_db: str | None = None) -> None:
        """Write status `ongoing` and open the results file this run appends to (and the
        results database's follower of it)."""
        previous = None if self.mode == "submit" else self.job.read_json("status.json")
        self.save_state(self.doc(JobState.ONGOING))
        path = self.job.retry_path if self.mode == "retry" else self.job.results_path
        self.writer = ResultsWriter.open(path)
        if results_db:
            from retailpulse_cli.storage import results_db as db

            records = len(self.plan.skip) + len(self.plan.redo)
            self.feed = db.follow(
                results_db,
                self.job,
                self.writer,
                meta=self.meta,
                previous=previous,
                records=records,
            )
            self.feed.status(self.doc(JobState.ONGOING), self.plan.tally.errors())

    def save_state(self, doc: JobStatus) -> list[StoreProblem]:
        """status.json and errors.json, and the same to the results database's follower."""
        errors = self.plan.tally.errors()
        self.job.write_state(doc, errors)
        if self.feed is not None:
            self.feed.status(doc, errors)
        return errors

    def doc(self, state: JobState, **kw: str | None) -> JobStatus:
        """The status now; this run's entry in `runs` ends now (or at `finished`)."""
        now = kw.get("finished") or now_iso()
        this_run: RunSpan = {"mode": self.mode, "started_at": self.started, "ended_at": now}
        return status_doc(
            self.job.id,
            state,
            self.plan.tally,
            created=self.created,
            mode=self.mode,
            started=self.started,
            runs=[*self.earlier_runs, this_run],
            now=now,
            run_by=self.run_by,
            **kw,
        )

    def nothing_to_do(self) -> bool:
        if self.todo or self.mode == "submit":
            return False
        return self.job.read_json("status.json").get("status") in FINISHED

    def sink(self, record: Record) -> None:
        tally = self.plan.tally
        self.writer.append(record)
        old = self.plan.redo.pop(record["index"], None)
        if old is not None:  # a retried image: its new record replaces the failed one
            tally.forget({"status": "failed", "store_id": old[0], "error_code": old[1]})
        tally.add(record)
        self.observer.record(record, tally)
        if self.writer.unsynced >= RESULTS_SYNC_RECORDS:
            self.writer.sync()

    def tick(self) -> None:
        writer = self.writer
        now = time.monotonic()
        if writer.unsynced and now - writer.last_sync >= RESULTS_SYNC_SECONDS:
            writer.sync()
        if now - self.last_status >= STATUS_SYNC_SECONDS:
            writer.sync()  # status never counts a result that is not on disk yet
            self.save_state(self.doc(JobState.ONGOING))
            self.last_status = now
        self.observer.tick(self.plan.tally)

    def interrupted(self, exc: BaseException) -> None:
        with contextlib.suppress(Exception):  # best effort: the disk may be what failed
            self.writer.sync()
            reason = exc.message if isinstance(exc, RetailpulseError) else type(exc).__name__
            doc = self.doc(JobState.INTERRUPTED, interrupted_by=reason)
            errors = self.save_state(doc)
            if self.feed is not None:
                self.feed.close(doc, errors)

    def finish(self, complete: bool, stop_reason: str | None) -> JobStatus:
        if self.feed is not None:
            self.feed.drain()  # a retry's rows are read from retry.jsonl, merged next
        if self.mode == "retry":
            merge_retry(self.job)
        tally = self.plan.tally
        if complete:
            state = JobState.FAILED if tally.failed else JobState.COMPLETED
            final = self.doc(state, finished=now_iso())
        elif stop_reason == JobState.CANCELLED:  # asked for; `resume` still finishes it
            final = self.doc(JobState.CANCELLED)
        else:
            final = self.doc(JobState.INTERRUPTED, interrupted_by=stop_reason or "stopped")
        errors = self.save_state(final)
        if self.feed is not None:
            self.feed.close(final, errors)
        # the object `status --json` prints (it adds `source` from meta.json), so that
        # `submit --json` and `status --json` give a job the same shape
        return with_errors({**final, "source": self.meta.get("source")}, errors)
