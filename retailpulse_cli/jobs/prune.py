"""Removing old job directories, safely.

A job's age is counted from `finished_at`, else (never finished) `created_at`, both in
status.json. A job is removed only while we hold its lock (taken without waiting: a
running job is skipped), and first renamed to `<jobs-dir>/.trash-<id>` so a crash midway
leaves no half job in `list`; the next prune deletes what such a crash left behind.
Nothing here prints."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypedDict

from retailpulse_cli.errors import JobBusy, RetailpulseError, StorageError
from retailpulse_cli.model import JobState
from retailpulse_cli.storage.job_dir import Job, JobStore, Lock, fsync_dir, parse_time

DEFAULT_STATUSES = (JobState.COMPLETED, JobState.FAILED)
PRUNABLE = (JobState.COMPLETED, JobState.FAILED, JobState.INTERRUPTED, JobState.CANCELLED)
TRASH_PREFIX = ".trash-"


class _Candidate(TypedDict):
    job_id: str
    status: str
    created_at: str | None


class PrunedJob(_Candidate, total=False):
    """A job removed (or, with dry_run, to remove), as `prune --json` prints it."""

    bytes: int


@dataclass
class PruneResult:
    removed: list[PrunedJob] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # old enough, but locked by a live process
    trash_bytes: int = 0  # freed by clearing what an earlier prune left behind

    @property
    def freed(self) -> int:
        return sum(int(r["bytes"]) for r in self.removed) + self.trash_bytes


def tree_size(path: Path) -> int:
    """Bytes in the files under `path` (what removing it frees, near enough)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _age_from(status: dict[str, Any]) -> datetime | None:
    return parse_time(status.get("finished_at") or status.get("created_at"))


def _candidate(
    job: Job, statuses: tuple[str, ...], cutoff: datetime, *, locked: bool = False
) -> PrunedJob | None:
    """The job's row if it is old enough and in one of `statuses`; damaged jobs never are.
    `locked`: we hold the job's lock, so an `ongoing` job is one whose worker died."""
    try:
        status = job.status()
    except RetailpulseError:
        return None
    if locked and status.get("status") == JobState.ONGOING:
        status["status"] = JobState.INTERRUPTED.value
    when = _age_from(status)
    if status.get("status") not in statuses or when is None or when >= cutoff:
        return None
    return {"job_id": job.id, "status": status["status"], "created_at": status.get("created_at")}


def clear_trash(root: Path) -> int:
    """Delete what a prune that crashed left behind; return the bytes freed."""
    freed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(root):
            if entry.name.startswith(TRASH_PREFIX) and entry.is_dir(follow_symlinks=False):
                freed += tree_size(Path(entry.path))
                shutil.rmtree(entry.path, ignore_errors=True)
    return freed


def _remove(job: Job, row: PrunedJob, statuses: tuple[str, ...], cutoff: datetime) -> bool:
    """Remove one job while holding its lock; False if it is busy or changed meanwhile."""
    try:
        lock = Lock.acquire(job.lock_path, wait=0)
    except JobBusy:
        return False
    try:
        # Re-check under the lock: it may have been resumed between our look and the lock.
        if _candidate(job, statuses, cutoff, locked=True) is None:
            return False
        row["bytes"] = tree_size(job.dir)
        trash = job.dir.with_name(TRASH_PREFIX + job.id)
        shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(job.dir, trash)
        except OSError as exc:
            raise StorageError(f"cannot remove {job.dir}: {exc.strerror or exc}") from None
        fsync_dir(job.dir.parent)
        shutil.rmtree(trash, ignore_errors=True)
        return True
    finally:
        lock.release()


def prune(
    store: JobStore,
    *,
    older_than: timedelta,
    statuses: tuple[str, ...] = DEFAULT_STATUSES,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneResult:
    """Remove (or with `dry_run` only list) jobs in `statuses` older than `older_than`."""
    cutoff = (now or datetime.now(timezone.utc)) - older_than
    result = PruneResult()
    if not dry_run:
        result.trash_bytes = clear_trash(store.root)
    for job_id in reversed(store.job_ids()):  # oldest first
        job = Job(store.root / job_id)
        row = _candidate(job, statuses, cutoff)
        if row is None:
            continue
        if dry_run:
            if job.is_live():
                result.busy.append(job_id)
            else:
                result.removed.append({**row, "bytes": tree_size(job.dir)})
        elif _remove(job, row, statuses, cutoff):
            result.removed.append(row)
        elif job.is_live():
            result.busy.append(job_id)
    return result
