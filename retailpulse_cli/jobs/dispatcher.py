"""A service's job queue: accepted jobs wait on disk, a few run at once.

    submit -> job directory with status `queued` (fsynced before the caller answers)
           -> FIFO of job ids -> N runner threads -> run.execute
                                 (one set of download threads and GPU slots for all)

The FIFO in memory is an index of the jobs whose status.json says `queued`: `recover`
rebuilds it at start-up, together with the jobs a stop or a crash left `interrupted`
(resumed: recorded images are not done again). A runner runs a job only when, holding
its lock, status.json still says `queued`, so a job resumed by hand meanwhile, or
cancelled, is never run twice. Nothing here prints: events go to the `log` callback.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from retailpulse_cli.errors import ExitCode, JobBusy, JobNotFound, RetailpulseError
from retailpulse_cli.jobs import lifecycle, run
from retailpulse_cli.jobs.idempotency import Claim, IdempotencyIndex
from retailpulse_cli.jobs.read import read_status
from retailpulse_cli.jobs.transitions import (
    SERVICE,
    current_state,
    left_by_service,
    mark_cancelled,
    mark_queued,
    queued_mode,
)
from retailpulse_cli.model import JobState, JobStatus
from retailpulse_cli.processing.download import StopFlag
from retailpulse_cli.processing.spec import JobSpec
from retailpulse_cli.storage.job_dir import Job, JobStore, Lock, fsync_dir

if TYPE_CHECKING:
    from retailpulse_cli.config.settings import Settings
    from retailpulse_cli.processing.dask_engine import DaskEngine
    from retailpulse_cli.processing.pipeline import Pools
    from retailpulse_cli.storage.store_master import StoreMaster

RETRY_AFTER_SECONDS = 5  # what a client told "queue full" or "stopping" waits before trying again


class QueueFull(RetailpulseError):
    exit_code = ExitCode.BUSY
    hint = "try again later"


class UserQueueFull(RetailpulseError):
    """One user has as many jobs waiting as one user may (--max-queued-per-user)."""

    exit_code = ExitCode.BUSY
    hint = "wait for some of your jobs to start"


class NotAccepting(RetailpulseError):
    """The service is stopping (or not started yet): it takes no new work."""

    exit_code = ExitCode.BUSY
    hint = "try again once the service is back"


class JobFinished(RetailpulseError):
    """Cancel of a job that already ran to its end."""

    exit_code = ExitCode.USAGE
    hint = "a finished job has nothing to cancel"


@dataclass(frozen=True)
class RunPlan:
    settings: Settings
    store_master: StoreMaster


class Planner(Protocol):
    """How the front end wants jobs run (its options, with its safety rules applied)."""

    def for_new(self) -> RunPlan: ...
    def for_job(self, job: Job) -> RunPlan: ...


@dataclass(frozen=True)
class _Item:
    job_id: str
    mode: lifecycle.Mode
    owner: str | None = None  # meta.json `owner`: whose share of the queue it takes


class Dispatcher:
    """The queue and its runners; `start`, then submit/retry/cancel, then `stop`."""

    def __init__(
        self,
        store: JobStore,
        planner: Planner,
        *,
        concurrent_jobs: int,
        max_queued: int,
        log: Callable[[str], None],
        engine: DaskEngine | None = None,
        max_queued_per_user: int | None = None,
        on_end: Callable[[Job], None] | None = None,
    ) -> None:
        self.store = store
        self.planner = planner
        self.concurrent_jobs = concurrent_jobs
        self.max_queued = max_queued
        self.max_queued_per_user = max_queued_per_user or max_queued
        self.on_end = on_end  # a job completed, failed or was cancelled (callbacks)
        self.log = log
        self.engine = engine
        self.keys = IdempotencyIndex()
        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._reserved: list[str | None] = []  # owners of submits still writing their job
        self._running: dict[str, StopFlag] = {}
        self._accepting = False
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._pools: Pools | None = None
        self._engine_lock = threading.Lock()  # jobs on a cluster run one after another

    # -- start and stop ----------------------------------------------------------------------

    def start(self) -> None:
        """Index idempotency keys, start the runners, accept work (after `recover`)."""
        from retailpulse_cli.processing.pipeline import Pools

        self.keys.load(self.store)
        settings = self.planner.for_new().settings
        self._pools = Pools.for_settings(settings.downloads, settings.workers)
        for i in range(self.concurrent_jobs):
            thread = threading.Thread(target=self._runner, name=f"rp-serve-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        with self._cond:
            self._accepting = True

    def stop(self, reason: str, grace: float) -> bool:
        """Take no new work; bring running jobs to a safe point (they read `interrupted`
        and the next start resumes them) within `grace` seconds; queued jobs stay queued
        on disk. True when every runner stopped in time."""
        with self._cond:
            self._accepting = False
            self._stopping = True
            for stop in self._running.values():
                stop.request(reason)
            self._cond.notify_all()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stopped = not any(t.is_alive() for t in self._threads)
        if self._pools is not None:
            self._pools.shutdown()
        return stopped

    @property
    def accepting(self) -> bool:
        return self._accepting

    def counts(self) -> dict[str, int]:
        with self._cond:
            queued = len(self._queue) + len(self._reserved)
            return {"queued": queued, "running": len(self._running)}

    # -- use cases -----------------------------------------------------------------------------

    def submit(
        self, job_spec: JobSpec, *, meta: dict[str, Any], claim: Claim | None = None
    ) -> tuple[Job, bool]:
        """Make a queued job; (job, True). With an idempotency `claim` seen before for the
        same body: (that job, False), nothing made. `meta["owner"]` takes a share of the
        queue (UserQueueFull past --max-queued-per-user)."""
        if claim is None:
            return self._create(job_spec, meta), True
        with self.keys.lock:
            existing = self.keys.find(claim)
            if existing is not None:
                with contextlib.suppress(JobNotFound):  # pruned since: make it again
                    return self.store.job(existing), False
            job = self._create(job_spec, {**meta, **claim.to_meta()})
            self.keys.record(claim, job.id)
            return job, True

    def retry(self, job_id: str) -> Job:
        """Queue a run of the job's failed (and never processed) images."""
        job = self.store.job(job_id)
        owner = _owner(job)
        with self._reservation(job_id, owner):
            lock = Lock.acquire(job.lock_path)
            try:
                if current_state(job) == "queued":
                    raise JobBusy(f"job {job.id} is already queued")
                mark_queued(job, "retry")
            finally:
                lock.release()
        self._enqueue(_Item(job.id, "retry", owner))
        return job

    def cancel(self, job_id: str, *, wait: float) -> JobStatus:
        """A queued job never starts; a running one stops at a safe point (waited for up
        to `wait` s); either then reads `cancelled`. Return the job's status."""
        job = self.store.job(job_id)
        for _ in range(2):  # a runner may take the job between our two looks
            if self._stop_running(job.id, wait):
                return read_status(job)
            try:
                lock = Lock.acquire(job.lock_path)
            except JobBusy:
                if job.id in self._running:
                    continue
                raise
            try:
                self._cancel_stopped(job)
            finally:
                lock.release()
            break
        return read_status(job)

    # -- queue internals -----------------------------------------------------------------------

    def _create(self, job_spec: JobSpec, meta: dict[str, Any]) -> Job:
        owner = meta.get("owner")
        with self._reservation(None, owner):
            plan = self.planner.for_new()
            job, lock = lifecycle.create_job(
                self.store,
                job_spec,
                plan.settings,
                plan.store_master,
                state=JobState.QUEUED,
                extra_meta=meta,
                run_by=SERVICE,
            )
            lock.release()
            fsync_dir(self.store.root)  # the job survives a power cut once we answer
        self._enqueue(_Item(job.id, "submit", owner))
        return job

    @contextlib.contextmanager
    def _reservation(self, job_id: str | None, owner: str | None) -> Iterator[None]:
        """A place in the queue, held while the job is written (the queue cannot overfill
        while several submits write at once)."""
        with self._cond:
            if not self._accepting:
                raise NotAccepting("the service is stopping and takes no new jobs")
            if job_id is not None and (
                job_id in self._running or any(i.job_id == job_id for i in self._queue)
            ):
                raise JobBusy(f"job {job_id} is already queued or running")
            self._check_room(owner)
            self._reserved.append(owner)
        try:
            yield
        finally:
            with self._cond:
                self._reserved.remove(owner)

    def _check_room(self, owner: str | None) -> None:
        """A full queue is everyone's (503, first); one user's full share is theirs (429)."""
        if len(self._queue) + len(self._reserved) >= self.max_queued:
            raise QueueFull(f"the queue is full ({self.max_queued} jobs waiting)")
        if owner is None:
            return
        mine = sum(1 for i in self._queue if i.owner == owner) + self._reserved.count(owner)
        if mine >= self.max_queued_per_user:
            raise UserQueueFull(
                f"user {owner} has {mine} jobs waiting, the most one user may queue "
                f"(--max-queued-per-user {self.max_queued_per_user}); wait for some to start"
            )

    def _enqueue(self, item: _Item) -> None:
        with self._cond:
            self._queue.append(item)
            self._cond.notify()

    def _stop_running(self, job_id: str, wait: float) -> bool:
        """If the job runs here: ask it to stop as cancelled and wait; True if it ran."""
        with self._cond:
            stop = self._running.get(job_id)
            if stop is None:
                return False
            stop.request(JobState.CANCELLED)
            self._cond.wait_for(lambda: job_id not in self._running, timeout=wait)
        return True

    def _cancel_stopped(self, job: Job) -> None:
        """Cancel a job nobody runs (we hold its lock)."""
        state = current_state(job)
        if state in ("completed", "failed"):
            raise JobFinished(f"job {job.id} already {state}; nothing to cancel")
        with self._cond:
            self._queue = deque(i for i in self._queue if i.job_id != job.id)
        if state != JobState.CANCELLED:
            mark_cancelled(job)
            self.log(f"job {job.id}: cancelled before it started")
            self._ended(job)

    def _runner(self) -> None:
        while (taken := self._take()) is not None:
            item, stop = taken
            try:
                self._run(item, stop)
            except Exception as exc:  # one bad job stops no other
                what = exc.message if isinstance(exc, RetailpulseError) else repr(exc)
                self.log(f"job {item.job_id}: stopped by an error: {what}")
            finally:
                with self._cond:
                    self._running.pop(item.job_id, None)
                    self._cond.notify_all()

    def _take(self) -> tuple[_Item, StopFlag] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            item = self._queue.popleft()
            stop = self._running[item.job_id] = StopFlag()
            return item, stop

    def _run(self, item: _Item, stop: StopFlag) -> None:
        job = self.store.job(item.job_id)
        try:
            lock = Lock.acquire(job.lock_path)
        except JobBusy:
            self.log(f"job {job.id}: another process is running it; left to it")
            return
        try:
            if current_state(job) != "queued":
                return  # resumed by hand, or cancelled, while it waited
            if stop.is_set():  # cancelled or stopping before it started
                if stop.reason == JobState.CANCELLED:
                    mark_cancelled(job)
                    self._ended(job)
                return
            self._execute(job, stop)
        finally:
            lock.release()

    def _execute(self, job: Job, stop: StopFlag) -> None:
        plan = self.planner.for_job(job)
        mode = lifecycle.continuing_mode(job, queued_mode(job))
        self.log(f"job {job.id}: {mode} started")
        started = time.monotonic()
        engine_slot = self._engine_lock if self.engine is not None else contextlib.nullcontext()
        with engine_slot:
            final = run.execute(
                job,
                mode=mode,
                settings=plan.settings,
                store_master=plan.store_master,
                stop=stop,
                pools=None if self.engine is not None else self._pools,
                engine=self.engine,
                run_by=SERVICE,
            )
        ok, failed = final.get("images_ok", 0), final.get("images_failed", 0)
        total = final.get("images_total", 0)
        self.log(
            f"job {job.id} {final.get('status')}: {ok} ok, {failed} failed of {total} "
            f"image{'' if total == 1 else 's'} in {time.monotonic() - started:.1f}s"
        )
        if final.get("status") in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED):
            self._ended(job)

    def _ended(self, job: Job) -> None:
        """Tell `on_end` (never fatal to the runner: the job is done whatever it does)."""
        if self.on_end is None:
            return
        try:
            self.on_end(job)
        except Exception as exc:
            self.log(f"job {job.id}: end hook failed: {exc!r}")

    # -- start-up ------------------------------------------------------------------------------

    def recover(self) -> int:
        """Queue again, oldest first, every job a service queued or was running when it
        stopped or died; return how many."""
        found: list[tuple[bool, str, str, lifecycle.Mode, str | None]] = []
        for job_id in self.store.job_ids():
            job = Job(self.store.root / job_id)
            try:
                doc = job.read_json("status.json")
                if doc.get("status") == "ongoing" and not job.is_live():
                    doc["status"] = "interrupted"
                if not left_by_service(doc):
                    continue
                queued = self._requeue(job)
            except RetailpulseError as exc:  # damaged, or taken by another process: skip
                self.log(f"job {job_id}: not resumed: {exc.message}")
                continue
            if queued is not None:
                was_running = doc.get("status") != "queued"
                order = job_id if was_running else str(queued.get("queued_at") or job_id)
                found.append((not was_running, order, job_id, queued_mode(job), _owner(job)))
        found.sort(key=lambda row: row[:3])  # the jobs that were running first, then the queue
        with self._cond:
            self._queue.extend(_Item(job_id, mode, owner) for *_, job_id, mode, owner in found)
        return len(found)

    def _requeue(self, job: Job) -> dict[str, Any] | None:
        """Under the job's lock: a queued job as it is, an interrupted one queued to resume."""
        lock = Lock.acquire(job.lock_path)
        try:
            doc = job.read_json("status.json")
            state = doc.get("status")
            if state == "queued":
                return doc
            if state not in ("ongoing", "interrupted"):
                return None
            run = doc.get("run")
            was_retry = isinstance(run, dict) and run.get("mode") == "retry"
            return mark_queued(job, "retry" if was_retry else "resume")
        finally:
            lock.release()


def _owner(job: Job) -> str | None:
    """The user a job belongs to (meta.json `owner`), for the queue's shares."""
    try:
        owner = job.meta().get("owner")
    except RetailpulseError:
        return None
    return owner if isinstance(owner, str) else None
