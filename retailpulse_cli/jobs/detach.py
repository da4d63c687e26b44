"""Background runs: `submit --detach` hands the job, still locked, to a worker process.

The parent creates the job and holds its flock; the child inherits that very file
descriptor, so the lock never drops between the two and `status` never sees the job as
abandoned while the worker starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from retailpulse_cli.storage.job_dir import Job, Lock, _storage_error

LOCK_FD_ENV = "RETAILPULSE_LOCK_FD"
SETTINGS_ENV = "RETAILPULSE_WORKER_SETTINGS"  # flags given with --detach (and --config)


def spawn_worker(
    jobs: list[Job],
    locks: list[Lock],
    *,
    mode: str = "submit",
    given: dict[str, Any] | None = None,
) -> int:
    """Start one `retailpulse _worker` for all the jobs (one pool, as a foreground submit
    of several files would use), in its own session; return its pid. Every job directory
    gets the worker's log as its worker.log (hard links to one file)."""
    first = jobs[0].log_path
    try:
        _unshare(first)
        log = first.open("ab")
        for job in jobs[1:]:
            if not job.log_path.exists():
                os.link(first, job.log_path)
    except OSError as exc:
        raise _storage_error("write", first, exc) from None
    fds = [lock.fd for lock in locks]
    env = {**os.environ, LOCK_FD_ENV: ",".join(map(str, fds)), "NO_COLOR": "1"}
    env[SETTINGS_ENV] = json.dumps({k: v for k, v in (given or {}).items() if v is not None})
    cmd = [sys.executable, "-m", "retailpulse_cli", "_worker", "--mode", mode]
    cmd += [str(j.dir) for j in jobs]
    with log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=fds,
            env=env,
            start_new_session=True,  # survives the terminal closing; Ctrl-C there does not reach it
            close_fds=True,
        )
    for lock in locks:
        lock.release()  # the child's copies of the descriptors keep the locks held
    return proc.pid


def inherited_locks(jobs: list[Job]) -> list[Lock]:
    """The locks passed down by `spawn_worker`, or fresh ones when started by hand."""
    fds = [int(fd) for fd in os.environ.pop(LOCK_FD_ENV, "").split(",") if fd.isdigit()]
    if len(fds) == len(jobs):
        return [Lock(fd) for fd in fds]
    return [Lock.acquire(job.lock_path) for job in jobs]


def inherited_settings() -> dict[str, Any]:
    """Flags the parent was given (resume/retry --detach), to override stored settings."""
    try:
        value = json.loads(os.environ.pop(SETTINGS_ENV, "") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _unshare(log: Path) -> None:
    """A worker.log hard-linked with sibling jobs (one detached worker ran them all) gets
    its own copy before a new run appends to it, so the siblings' logs stay theirs."""
    try:
        if log.stat().st_nlink <= 1:
            return
    except FileNotFoundError:
        return
    tmp = log.with_name(f".{log.name}.{os.getpid()}")
    shutil.copyfile(log, tmp)
    os.replace(tmp, log)
