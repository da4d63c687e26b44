"""Batch mode for cron: take every job file in a folder, exactly once across concurrent runs.

A file is claimed by flock()ing it and renaming it into `DIR/.processing/`; a run that
loses either race skips the file. The claim's lock lives as long as the claiming process,
so a later run can tell an orphan (its owner died) from a file still being worked on and
pick the orphan up: resuming its job when one was already created.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from retailpulse_cli.storage.job_dir import _storage_error
from retailpulse_cli.text.escape import safe

PROCESSING, DONE, REJECTED = ".processing", "done", "rejected"
JOB_SUFFIX, REASON_SUFFIX = ".job", ".reason"
SETTLE_SECONDS = 5.0  # a file modified this recently may be an upload still under way


@dataclass
class Claim:
    name: str  # the file's name as dropped in the inbox
    path: Path  # where it sits while we work on it
    fd: int  # flock held on it for as long as we work on it
    job_id: str | None = None  # set once a job exists (recorded beside the file)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _lock(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hang the run
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def prepare(inbox: Path) -> None:
    for sub in (PROCESSING, DONE, REJECTED):
        try:
            (inbox / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _storage_error("create", inbox / sub, exc) from None


def claim_all(inbox: Path) -> tuple[list[Claim], list[str]]:
    """Orphans of dead runs first, then every *.json file in the inbox, oldest first.
    Also returns a note per *.json entry left alone: not a regular file, or modified in
    the last SETTLE_SECONDS (an upload still being written)."""
    prepare(inbox)
    claims = _orphans(inbox / PROCESSING)
    files, odd = _oldest_first(inbox)
    for path in files:
        fd = _lock(path)
        if fd is None:
            continue  # another run is claiming it right now
        dest = inbox / PROCESSING / f"{path.name}.{secrets.token_hex(4)}"
        try:
            os.rename(path, dest)
        except FileNotFoundError:
            os.close(fd)  # another run renamed it first
            continue
        claims.append(Claim(path.name, dest, fd))
    return claims, odd


def _oldest_first(inbox: Path) -> tuple[list[Path], list[str]]:
    """Settled regular *.json files by age (one another run renames away meanwhile is
    left out), and the other *.json entries with why they are left: folders, FIFOs,
    symbolic links, and files still being written.

    Only `*.json` is a job file: an upload under a temporary name (`.NAME`, `NAME.tmp`,
    `NAME.part`) is never taken. A file modified in the last SETTLE_SECONDS may be an
    upload caught half-way (its JSON cut off): the next run takes it whole."""
    try:
        names = list(inbox.glob("*.json"))
    except OSError as exc:
        raise _storage_error("read", inbox, exc) from None
    now = time.time()
    aged, odd = [], []
    for path in names:
        if path.name.startswith("."):
            continue  # hidden: an editor's swap file or a half-copied upload, not a job
        try:
            # lstat: a link is not taken (run twice through two names, or broken once
            # moved to done/); it is reported as not a regular file, like a folder
            st = path.lstat()
        except FileNotFoundError:
            continue
        age = now - st.st_mtime
        if not stat.S_ISREG(st.st_mode):
            odd.append(f"skipped {path}: not a regular file")
        elif abs(age) < SETTLE_SECONDS:  # abs: a clock skewed a little ahead is "now" too
            odd.append(
                f"left {path} for the next run: modified {max(age, 0):.1f}s ago "
                "(an upload still being written?)"
            )
        else:
            aged.append((st.st_mtime, path.name, path))
    return [path for _, _, path in sorted(aged)], sorted(odd)


def _orphans(processing: Path) -> list[Claim]:
    out = []
    for path in sorted(processing.iterdir()):
        if path.suffix in (JOB_SUFFIX,) or path.name.startswith("."):
            continue
        fd = _lock(path)
        if fd is None:
            continue  # its run is alive
        name = path.name.rsplit(".", 1)[0]
        sidecar = path.with_name(path.name + JOB_SUFFIX)
        job_id = sidecar.read_text().strip() if sidecar.exists() else None
        out.append(Claim(name, path, fd, job_id or None))
    return out


def record_job(claim: Claim, job_id: str) -> None:
    claim.job_id = job_id
    claim.path.with_name(claim.path.name + JOB_SUFFIX).write_text(job_id + "\n")


def _unique(folder: Path, name: str, tag: str) -> Path:
    dest = folder / name
    if not dest.exists():
        return dest
    stem, dot, ext = name.rpartition(".")
    return folder / (f"{stem}-{tag}.{ext}" if dot else f"{name}-{tag}")


def finish_done(inbox: Path, claim: Claim) -> Path:
    """Move to DIR/done/ with the job id beside it (NAME.job)."""
    job_id = claim.job_id or "unknown"
    dest = _unique(inbox / DONE, claim.name, job_id)
    dest.with_name(dest.name + JOB_SUFFIX).write_text(job_id + "\n")
    os.rename(claim.path, dest)
    with contextlib.suppress(FileNotFoundError):
        claim.path.with_name(claim.path.name + JOB_SUFFIX).unlink()
    claim.release()
    return dest


def finish_rejected(inbox: Path, claim: Claim, problems: list[str]) -> Path:
    """Move to DIR/rejected/ with the reasons beside it (NAME.reason): one escaped line
    per problem (a job file's text can hold a lone surrogate, which UTF-8 cannot encode,
    or a newline that would forge a line), never an empty reason."""
    dest = _unique(inbox / REJECTED, claim.name, secrets.token_hex(3))
    lines = [safe(p) for p in problems if p] or ["rejected (no reason given)"]
    dest.with_name(dest.name + REASON_SUFFIX).write_text("\n".join(lines) + "\n", "utf-8")
    os.rename(claim.path, dest)
    claim.release()
    return dest
