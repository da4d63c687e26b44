"""Use cases: create a job, run it (submit / resume / retry), and read it back.

The CLI calls one function here per command; nothing here prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from retailpulse_cli.config.settings import Settings
from retailpulse_cli.errors import InvalidJobFile, JobDamaged, RetailpulseError
from retailpulse_cli.processing import spec
from retailpulse_cli.processing.tally import STORE_NOT_FOUND, Tally
from retailpulse_cli.storage.job_dir import (
    SCHEMA_VERSION,
    Job,
    JobStore,
    Lock,
    ResultsWriter,
    fsync_dir,
    host_info,
    now_iso,
)
from retailpulse_cli.storage.store_master import StoreMaster

if TYPE_CHECKING:  # runner and fetch pull in requests and Pillow: not for `status`/`list`
    from retailpulse_cli.processing.dask_engine import DaskEngine
    from retailpulse_cli.processing.download import StopFlag
    from retailpulse_cli.processing.fetch import Fetcher
    from retailpulse_cli.processing.pipeline import Pools

Mode = Literal["submit", "resume", "retry"]
STATUS_SYNC_SECONDS = 0.5  # how stale `status` may be while a job runs
RESULTS_SYNC_SECONDS = 1.0  # a kill loses at most this much finished work (plus in-flight)
RESULTS_SYNC_RECORDS = 500


class Observer(Protocol):
    """Progress callbacks; the CLI's Rich display implements them."""

    def started(self, job: Job, tally: Tally, todo: int, source: str) -> None: ...
    def record(self, record: dict[str, Any], tally: Tally) -> None: ...
    def tick(self, tally: Tally) -> None: ...


class NullObserver:
    def started(self, job: Job, tally: Tally, todo: int, source: str) -> None:
        pass

    def record(self, record: dict[str, Any], tally: Tally) -> None:
        pass

    def tick(self, tally: Tally) -> None:
        pass


def create_job(
    store: JobStore, job_spec: spec.JobSpec, settings: Settings, store_master: StoreMaster
) -> tuple[Job, Lock]:
    """Create the job directory (status `ongoing`, no results yet), returned locked."""
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
    }
    tally = new_tally(job_spec)
    status = status_doc("", "ongoing", tally, created=created, mode="submit")
    return store.create(job_spec.raw, meta, status)


def new_tally(job_spec: spec.JobSpec) -> Tally:
    return Tally(
        images_total=job_spec.image_count,
        images_per_store=Counter(job_spec.store_images),
        visits=job_spec.visit_count,
    )


def status_doc(
    job_id: str,
    state: str,
    tally: Tally,
    *,
    created: str,
    mode: str,
    started: str | None = None,
    finished: str | None = None,
    interrupted_by: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "job_id": job_id,
        "status": state,
        "created_at": created,
        "started_at": started,
        "updated_at": now_iso(),
        "finished_at": finished,
        **tally.counts(),
        "run": {"mode": mode, **host_info()},
    }
    if interrupted_by:
        doc["interrupted_by"] = interrupted_by
    return doc


def load_spec(job: Job) -> spec.JobSpec:
    meta = job.meta()
    try:
        return spec.parse(
            job.job_file(), source=str(meta.get("source")), base_dir=Path(meta["base_dir"])
        )
    except (KeyError, InvalidJobFile) as exc:
        raise JobDamaged(f"job {job.id}: stored job file or meta.json is damaged: {exc}") from None


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
    unfinished = status.get("status") in ("ongoing", "interrupted")
    return "retry" if was_retry and unfinished else asked


def stored_settings(job: Job) -> dict[str, Any]:
    value = job.meta().get("settings")
    return value if isinstance(value, dict) else {}


def _settings_to_json(settings: Settings) -> dict[str, Any]:
    from retailpulse_cli.text.redaction import redact

    out = dataclasses.asdict(settings)
    out["gpu_delay"] = list(settings.gpu_delay)
    if settings.save_images:  # credentials come from the environment, never from a file
        out["save_images"] = redact(settings.save_images)
    return out


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
) -> dict[str, Any]:
    """Run (or finish, or retry) a job while holding its lock; return its final status.

    Several jobs may run at once in threads sharing `pools` and one `fetcher` (one set of
    stage threads, one connection pool); each job still has its own single writer.
    """
    from retailpulse_cli.processing.fetch import (
        Fetcher,  # heavy (requests): only commands that download import it
    )

    job_spec = job_spec or load_spec(job)
    plan = _plan(job, job_spec, mode)
    run = _JobRun(job, mode, plan, observer or NullObserver())
    if run.nothing_to_do():
        return read_status(job)  # nothing to do: the job's history stays as it was
    run.open()
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

    def __init__(self, job: Job, mode: Mode, plan: _Plan, observer: Observer) -> None:
        self.job = job
        self.mode = mode
        self.plan = plan
        self.observer = observer
        self.meta = job.meta()
        self.created = str(self.meta.get("created_at"))
        self.started = now_iso()
        self.todo = plan.tally.images_total - len(plan.skip)  # a retry redoes counted ones
        self.last_status = time.monotonic()

    def open(self) -> None:
        """Write status `ongoing` and open the results file this run appends to."""
        self.job.write_state(self.doc("ongoing"), self.plan.tally.errors())
        path = self.job.retry_path if self.mode == "retry" else self.job.results_path
        self.writer = ResultsWriter.open(path)

    def doc(self, state: str, **kw: Any) -> dict[str, Any]:
        return status_doc(
            self.job.id,
            state,
            self.plan.tally,
            created=self.created,
            mode=self.mode,
            started=self.started,
            **kw,
        )

    def nothing_to_do(self) -> bool:
        if self.todo or self.mode == "submit":
            return False
        return self.job.read_json("status.json").get("status") in ("completed", "failed")

    def sink(self, record: dict[str, Any]) -> None:
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
            self.job.write_state(self.doc("ongoing"), self.plan.tally.errors())
            self.last_status = now
        self.observer.tick(self.plan.tally)

    def interrupted(self, exc: BaseException) -> None:
        with contextlib.suppress(Exception):  # best effort: the disk may be what failed
            self.writer.sync()
            reason = exc.message if isinstance(exc, RetailpulseError) else type(exc).__name__
            doc = self.doc("interrupted", interrupted_by=reason)
            self.job.write_state(doc, self.plan.tally.errors())

    def finish(self, complete: bool, stop_reason: str | None) -> dict[str, Any]:
        if self.mode == "retry":
            merge_retry(self.job)
        tally = self.plan.tally
        if complete:
            final = self.doc("failed" if tally.failed else "completed", finished=now_iso())
        else:
            final = self.doc("interrupted", interrupted_by=stop_reason or "stopped")
        errors = tally.errors()
        self.job.write_state(final, errors)
        return with_errors(final, errors)


def with_errors(status: dict[str, Any], errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The status object users see: status.json plus `error` (the per-store list)."""
    return {**status, "error": errors}  # always a list: `jq '.error[]'` works on any job


def read_status(job: Job) -> dict[str, Any]:
    status = job.status()
    return with_errors({**status, "source": job.meta().get("source")}, job.errors())


def wait_for(
    job: Job, timeout: float | None, poll: float = 0.2, on_poll: Any = None
) -> dict[str, Any]:
    """Block until the job is no longer `ongoing`; WaitTimeout after `timeout` seconds.
    `on_poll(status)` sees each status read (a progress display)."""
    from retailpulse_cli.errors import WaitTimeout

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        current = read_status(job)
        if on_poll is not None:
            on_poll(current)
        if current.get("status") != "ongoing":
            return current
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(f"job {job.id} still ongoing after {timeout:g}s")
        time.sleep(poll)


_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)\s*([mhdw])")


def parse_duration(text: str) -> timedelta:
    """`30m`, `24h`, `7d`, `2w` -> a timedelta; ValueError (one clear sentence) otherwise."""
    m = _DURATION.fullmatch(text.strip().lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration such as 30m, 24h, 7d or 2w")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds > 100 * 365 * 86400:  # past datetime's range once taken from now
        raise ValueError(f"{text!r} is more than 100 years")
    return timedelta(seconds=seconds)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or date-time (UTC without an offset), `today` or `yesterday`
    (midnight UTC), or an age such as `30m`, `24h`, `7d`, `2w` before now."""
    value = text.strip()
    now = now or datetime.now(timezone.utc)
    midnight = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if value.lower() in ("today", "yesterday"):
        return midnight - timedelta(days=1 if value.lower() == "yesterday" else 0)
    if _DURATION.fullmatch(value.lower()):
        return now - parse_duration(value)
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or an age: use an ISO 8601 date or date-time "
            "(2026-11-30), today, yesterday, or an age such as 30m, 24h, 7d"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def list_jobs(
    store: JobStore,
    *,
    status: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Jobs newest first, as small summaries; a damaged job is listed as such, not fatal."""
    out: list[dict[str, Any]] = []
    for job_id in store.job_ids():
        job = Job(store.root / job_id)
        try:
            st = job.status()
            row = {
                "job_id": job_id,
                "created_at": st.get("created_at"),
                "status": st.get("status"),
                "images_total": st.get("images_total", 0),
                "images_done": st.get("images_done", 0),
                "images_failed": st.get("images_failed", 0),
                "source": job.meta().get("source"),  # job.status() read meta.json already
            }
            if since is not None and parse_since(str(row["created_at"])) < since:
                continue
        except RetailpulseError as exc:
            row = {"job_id": job_id, "created_at": None, "status": "damaged", "error": exc.message}
        except ValueError:  # a created_at edited into something that is not a date
            row = {
                "job_id": job_id,
                "created_at": None,
                "status": "damaged",
                "error": f"job {job_id}: status.json has no valid created_at",
            }
        if since is not None and row["status"] == "damaged":
            continue
        if status and row["status"] != status:
            continue
        out.append(row)
        if limit is not None and len(out) >= limit:
            break
    return out
