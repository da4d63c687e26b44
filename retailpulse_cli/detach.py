"""Background runs: `submit --detach` hands the job, still locked, to a worker process.

The parent creates the job and holds its flock; the child inherits that very file
descriptor, so the lock never drops between the two and `status` never sees the job as
abandoned while the worker starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .jobstore import Job, Lock, _storage_error

LOCK_FD_ENV = "RETAILPULSE_LOCK_FD"


def spawn_worker(job: Job, lock: Lock, *, store_master: Path) -> int:
    """Start `retailpulse _worker` on the job in its own session; return its pid."""
    try:
        log = job.log_path.open("ab")
    except OSError as exc:
        raise _storage_error("write", job.log_path, exc) from None
    env = {**os.environ, LOCK_FD_ENV: str(lock.fd), "NO_COLOR": "1"}
    cmd = [
        sys.executable,
        "-m",
        "retailpulse_cli",
        "_worker",
        str(job.dir),
        "--store-master",
        str(store_master),
    ]
    with log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(lock.fd,),
            env=env,
            start_new_session=True,  # survives the terminal closing; Ctrl-C there does not reach it
            close_fds=True,
        )
    lock.release()  # the child's copy of the descriptor keeps the lock held
    return proc.pid


def inherited_lock(job: Job) -> Lock:
    """The lock passed down by `spawn_worker`, or a fresh one when started by hand."""
    fd_text = os.environ.pop(LOCK_FD_ENV, "")
    if fd_text.isdigit():
        return Lock(int(fd_text))
    return Lock.acquire(job.lock_path)
