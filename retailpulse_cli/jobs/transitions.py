"""State changes made between runs: put a job in a service's queue, cancel it.

Each is a rewrite of status.json (counts kept) by the holder of the job's lock, so it
never races a run: a job being run by any process cannot be re-queued or marked
cancelled under it. Nothing here prints.
"""

from __future__ import annotations

from typing import Any

from retailpulse_cli.jobs.lifecycle import Mode
from retailpulse_cli.model import JobState
from retailpulse_cli.storage.job_dir import Job, host_info, now_iso

SERVICE = "serve"  # status.json run.by of jobs a `retailpulse serve` queued or ran


def current_state(job: Job) -> str:
    """status.json's state as written (the caller holds the lock: `ongoing` means its
    runner died, which Job.status() would show as `interrupted`)."""
    return str(job.read_json("status.json").get("status"))


def mark_queued(job: Job, mode: Mode) -> dict[str, Any]:
    """The job waits in a service's queue to be run in `mode`; call with its lock held."""
    doc = job.read_json("status.json")
    doc.pop("interrupted_by", None)
    now = now_iso()
    doc.update(status=JobState.QUEUED.value, updated_at=now, queued_at=now, finished_at=None)
    doc["run"] = {"mode": mode, "by": SERVICE, **host_info()}
    job.write_state(doc, job.errors())
    return doc


def mark_cancelled(job: Job) -> dict[str, Any]:
    """A job that is not running will not be run (until `resume`); call with its lock held."""
    doc = job.read_json("status.json")
    doc.pop("interrupted_by", None)
    doc.update(status=JobState.CANCELLED.value, updated_at=now_iso())
    job.write_state(doc, job.errors())
    return doc


def queued_mode(job: Job) -> Mode:
    """The mode a queued job is to run in (written by `mark_queued`, `submit` when made)."""
    run = job.read_json("status.json").get("run")
    mode = run.get("mode") if isinstance(run, dict) else None
    return mode if mode in ("submit", "resume", "retry") else "resume"


def left_by_service(status: dict[str, Any]) -> bool:
    """A status (as Job.status() reads it) of a job a service queued or was running when
    it stopped or died: the service's next start runs it."""
    run = status.get("run")
    by_service = isinstance(run, dict) and run.get("by") == SERVICE
    return by_service and status.get("status") in ("queued", "interrupted")
