"""The on-disk job directory: ids, atomic writes, the worker lock, reading state back.

Layout of `<jobs_dir>/<job_id>/` (README, "The job directory", documents every field):
  job.json       the submitted job file, byte for byte
  meta.json      what was submitted, when, from where, with which settings
  status.json    status and counts, rewritten atomically as the job runs
  errors.json    one entry per store with a problem, rewritten atomically
  results.jsonl  a header line, then one line per image, appended and fsynced as images finish
  worker.log     log of a detached worker (submit --detach)
  .lock          flock()ed by the one process working on the job
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from retailpulse_cli.errors import JobBusy, JobDamaged, JobNotFound, StorageError
from retailpulse_cli.model import JobState
from retailpulse_cli.text.escape import without_surrogates

SCHEMA_VERSION = 1
ENV_VAR = "RETAILPULSE_JOBS_DIR"
RESULTS_HEADER = {"retailpulse": "results", "schema_version": SCHEMA_VERSION}


def now_iso() -> str:
    # milliseconds: `report` derives durations and speeds of sub-minute jobs from these
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: object) -> datetime | None:
    """A time `now_iso` wrote (or a hand-edited one): aware, UTC if it has no offset;
    None when missing or not a date."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def default_jobs_dir() -> Path:
    """--jobs-dir, else $RETAILPULSE_JOBS_DIR, else the per-user data dir."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("retailpulse", appauthor=False) / "jobs"


def _storage_error(action: str, path: Path, exc: OSError) -> StorageError:
    reason = {
        errno.ENOSPC: "no space left on device",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EDQUOT: "disk quota exceeded",
        errno.EMFILE: "too many open files (raise `ulimit -n` or lower --workers)",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return StorageError(f"cannot {action} {path}: {reason}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace: never half a file."""
    import secrets  # here, not at the top: `status` and `list` never write (start-up)

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _storage_error("write", path, exc) from None


def write_json(path: Path, obj: Any) -> None:
    # ensure_ascii: a file name that is not UTF-8 (a surrogate-escaped str) still encodes
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (POSIX needs the directory itself fsynced)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def new_job_id() -> str:
    """YYYYMMDD-HHMMSS-mmm-xxxx (UTC, milliseconds, 4 random hex digits): ids sort by
    creation time, and two submits in the same millisecond still differ."""
    import secrets

    now = datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}-{secrets.token_hex(2)}"


class Lock:
    """An exclusive flock on `<job>/.lock`: released by the kernel when its holder dies,
    so a SIGKILLed worker never leaves a stale lock and PID reuse cannot fool it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def acquire(cls, path: Path, *, wait: float = 1.0) -> Lock:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _storage_error("open lock file", path, exc) from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return cls(fd)
            except BlockingIOError:
                # `status` probes the lock for an instant; only a holder that stays is busy.
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise JobBusy(
                        f"job {path.parent.name} is being worked on by another process"
                    ) from None
                time.sleep(0.05)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def lock_is_held(path: Path) -> bool:
    """True while some live process holds the job's lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass(frozen=True)
class Job:
    """An existing job directory."""

    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def lock_path(self) -> Path:
        return self.dir / ".lock"

    @property
    def results_path(self) -> Path:
        return self.dir / "results.jsonl"

    @property
    def log_path(self) -> Path:
        return self.dir / "worker.log"

    def read_json(self, name: str) -> dict[str, Any]:
        path = self.dir / name
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise JobDamaged(f"job {self.id}: {name} is missing from {self.dir}") from None
        except (OSError, ValueError) as exc:
            raise JobDamaged(f"job {self.id}: {path} is unreadable: {exc}") from None
        if not isinstance(doc, dict):
            raise JobDamaged(f"job {self.id}: {path} is not a JSON object")
        check_schema(doc, path)
        return doc

    def meta(self) -> dict[str, Any]:
        return self.read_json("meta.json")

    def is_live(self) -> bool:
        return lock_is_held(self.lock_path)

    def status(self, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """status.json, with `ongoing` turned into `interrupted` when nobody holds the lock.
        `meta`: meta.json, if the caller read it already (it is checked either way)."""
        if meta is None:
            self.meta()  # a job whose meta.json is damaged cannot be resumed: say so now
        doc = _checked_status(self.read_json("status.json"), self.dir / "status.json")
        if doc.get("status") == JobState.ONGOING and not self.is_live():
            # Re-read: the worker may have finished between our two reads.
            doc = self.read_json("status.json")
            doc = _checked_status(doc, self.dir / "status.json")
            if doc.get("status") == JobState.ONGOING and not self.is_live():
                doc["status"] = JobState.INTERRUPTED.value
                doc["interrupted_by"] = doc.get("interrupted_by") or "worker died"
        return doc

    def errors(self) -> list[dict[str, Any]]:
        errors = self.read_json("errors.json").get("error", [])
        if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
            raise JobDamaged(f"job {self.id}: {self.dir / 'errors.json'} has no list of errors")
        return errors

    def write_state(self, status: Mapping[str, Any], errors: Sequence[Mapping[str, Any]]) -> None:
        # errors first: a reader that sees the new status also sees errors at least as new
        write_json(self.dir / "errors.json", {"schema_version": SCHEMA_VERSION, "error": errors})
        write_json(self.dir / "status.json", status)

    def job_file(self) -> bytes:
        try:
            return (self.dir / "job.json").read_bytes()
        except OSError as exc:
            raise JobDamaged(f"job {self.id}: job.json is missing or unreadable: {exc}") from None

    @property
    def retry_path(self) -> Path:
        return self.dir / "retry.jsonl"

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """The job's results as users see them: results.jsonl, with the records of a retry
        that has not been merged yet (it is running, or it was killed) laid over it.
        Streams; only the retry's line offsets are held in memory."""
        offsets = self._line_offsets(self.retry_path)
        try:
            retry_fh = self.retry_path.open("rb") if offsets else None
        except FileNotFoundError:  # merged and removed just now: results.jsonl has it all
            retry_fh = None
        if retry_fh is None:
            yield from self.iter_results()
            return
        with retry_fh as retry:
            for rec in self.iter_results():
                at = offsets.pop(rec.get("index"), None)  # type: ignore[arg-type]
                yield rec if at is None else self._record_at(retry, at)
            for at in sorted(offsets.values()):  # images the first run never recorded
                yield self._record_at(retry, at)

    def _line_offsets(self, path: Path) -> dict[int, int]:
        offsets: dict[int, int] = {}
        for offset, rec in self._scan(path):
            index = rec.get("index")
            if isinstance(index, int):
                offsets[index] = offset
        return offsets

    def _record_at(self, fh: IO[bytes], offset: int) -> dict[str, Any]:
        fh.seek(offset)
        rec = json.loads(fh.readline())
        return rec if isinstance(rec, dict) else {}

    def iter_results(self, path: Path | None = None) -> Iterator[dict[str, Any]]:
        """Stream the records of one results file; a torn last line is skipped."""
        for _, rec in self._scan(path or self.results_path):
            yield rec

    def _scan(self, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
        """(byte offset, record) for each complete line after the header."""
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JobDamaged(f"job {self.id}: cannot read {path}: {exc}") from None
        with fh:
            offset = 0
            for lineno, line in enumerate(fh, 1):
                start, offset = offset, offset + len(line)
                if not line.endswith(b"\n"):
                    return  # torn tail: the writer died mid-line
                try:
                    rec = json.loads(line)
                except ValueError:
                    raise JobDamaged(f"job {self.id}: {path} line {lineno} is not JSON") from None
                if lineno == 1 and isinstance(rec, dict) and rec.get("retailpulse") == "results":
                    check_schema(rec, path)
                    continue
                if isinstance(rec, dict):
                    yield start, rec


_COUNT_FIELDS = ("visits", "images_total", "images_done", "images_ok", "images_failed")


def _checked_status(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """A status.json edited by hand must be reported as damaged, not crash a table."""
    bad = [k for k in _COUNT_FIELDS if k in doc and type(doc[k]) is not int]
    if not isinstance(doc.get("status"), str):
        bad.append("status")
    for key in ("created_at", "started_at", "finished_at"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            bad.append(key)
    if not isinstance(doc.get("failures_by_code", {}), dict):
        bad.append("failures_by_code")
    if bad:
        raise JobDamaged(f"{path}: wrong type for {', '.join(bad)}")
    return doc


def check_schema(doc: dict[str, Any], path: Path) -> None:
    version = doc.get("schema_version")
    if not isinstance(version, int):
        raise JobDamaged(f"{path}: no schema_version; not a retailpulse file")
    if version > SCHEMA_VERSION:
        raise JobDamaged(
            f"{path} was written by a newer retailpulse (schema {version}, this one reads "
            f"up to {SCHEMA_VERSION})",
            hint="upgrade retailpulse to read this job",
        )


class ResultsWriter:
    """Appends result lines; `sync()` flushes and fsyncs (the runner calls it on a cadence)."""

    def __init__(self, path: Path, fh: IO[bytes]) -> None:
        self.path = path
        self.fh = fh
        self.unsynced = 0
        self.last_sync = time.monotonic()
        # Run after every sync with the bytes now durable: the results database follows
        # the file that far (storage/results_db/follower.py).
        self.after_sync: Callable[[int], None] | None = None

    @classmethod
    def open(cls, path: Path) -> ResultsWriter:
        try:
            _repair_tail(path)
            fh = path.open("ab")
            if fh.tell() == 0:
                fh.write(json.dumps(RESULTS_HEADER).encode() + b"\n")
        except OSError as exc:
            raise _storage_error("write", path, exc) from None
        return cls(path, fh)

    def append(self, record: dict[str, Any]) -> None:
        text = json.dumps(record, ensure_ascii=False)
        try:
            line = text.encode()
        except UnicodeEncodeError:  # e.g. an error naming a folder whose name is not UTF-8
            line = json.dumps(without_surrogates(record), ensure_ascii=False).encode()
        try:
            self.fh.write(line + b"\n")
        except OSError as exc:
            raise _storage_error("write", self.path, exc) from None
        self.unsynced += 1

    def sync(self) -> None:
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
        except OSError as exc:
            raise _storage_error("write", self.path, exc) from None
        self.unsynced = 0
        self.last_sync = time.monotonic()
        if self.after_sync is not None:
            self.after_sync(self.fh.tell())

    def close(self) -> None:
        if self.fh.closed:
            return
        try:
            self.sync()
        finally:
            # after a failed sync (disk full) closing would flush and fail again
            with contextlib.suppress(OSError):
                self.fh.close()


def _repair_tail(path: Path) -> None:
    """Cut a torn last line left by a crash, so the next append starts on a fresh line."""
    try:
        fh = path.open("r+b")
    except FileNotFoundError:
        return
    with fh:
        pos = fh.seek(0, os.SEEK_END)
        if pos == 0:
            return
        fh.seek(pos - 1)
        if fh.read(1) == b"\n":
            return
        while pos > 0:  # scan back block by block for the last complete line
            start = max(0, pos - (1 << 16))
            fh.seek(start)
            cut = fh.read(pos - start).rfind(b"\n")
            if cut != -1:
                fh.truncate(start + cut + 1)
                return
            pos = start
        fh.truncate(0)


class JobStore:
    """A jobs directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def job(self, job_id: str) -> Job:
        job_id = job_id.strip()
        if not _could_be_job_id(job_id):
            shown = job_id if len(job_id) <= 60 else f"{job_id[:40]}...({len(job_id)} chars)"
            raise JobNotFound(f"no job {shown!r} in {self.root}")
        path = self.root / job_id
        if not (path / "status.json").exists() and not (path / "meta.json").exists():
            if _is_job_dir(path):
                raise JobDamaged(f"job {job_id}: {path} has no status.json or meta.json")
            self._check_root()
            raise JobNotFound(f"no job {job_id!r} in {self.root}")
        return Job(path)

    def _check_root(self) -> None:
        """A jobs dir that is a file fails as `list` fails (exit 7), not as 'no job'."""
        try:
            os.scandir(self.root).close()
        except FileNotFoundError:
            return  # no jobs dir yet: simply no such job
        except OSError as exc:
            raise _storage_error("read", self.root, exc) from None

    def job_ids(self) -> list[str]:
        """Job ids, newest first (ids sort by creation time). Stray files, and folders
        holding none of a job's files (notes/, lost+found/), are not jobs."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _storage_error("read", self.root, exc) from None
        names = (
            e.name
            for e in entries
            if not e.name.startswith(".") and e.is_dir() and _is_job_dir(Path(e.path))
        )
        return sorted(names, reverse=True)

    def create(
        self, job_file: bytes, meta: dict[str, Any], status: Mapping[str, Any]
    ) -> tuple[Job, Lock]:
        """Create a job directory atomically (built under a temp name, then renamed) and
        return it locked, so no reader ever sees a half-made job and nobody can steal it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _storage_error("create jobs directory", self.root, exc) from None
        for _ in range(20):
            job_id = new_job_id()
            tmp = self.root / f".tmp-{job_id}-{os.getpid()}"
            try:
                tmp.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise _storage_error("create a job in", self.root, exc) from None
            lock = Lock.acquire(tmp / ".lock")
            try:
                meta = {**meta, "job_id": job_id}
                status = {**status, "job_id": job_id}
                write_atomic(tmp / "job.json", job_file)
                write_json(tmp / "meta.json", meta)
                write_json(tmp / "errors.json", {"schema_version": SCHEMA_VERSION, "error": []})
                write_json(tmp / "status.json", status)
                ResultsWriter.open(tmp / "results.jsonl").close()
                os.rename(tmp, self.root / job_id)
            except OSError as exc:
                lock.release()
                _remove_tree(tmp)
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue
                raise _storage_error("create a job in", self.root, exc) from None
            except BaseException:
                lock.release()
                _remove_tree(tmp)
                raise
            return Job(self.root / job_id), lock
        raise StorageError(f"could not find a free job id in {self.root}")


NAME_MAX = 255  # bytes in one file name on Linux and macOS file systems
# What `create` writes, and what runs add: a folder with any of them is a job (maybe a
# damaged one); a folder with none of them was never a job.
JOB_FILES = ("status.json", "meta.json", "job.json", "errors.json", "results.jsonl")


def _is_job_dir(path: Path) -> bool:
    return any(os.path.lexists(path / name) for name in JOB_FILES)


def _could_be_job_id(job_id: str) -> bool:
    """A name that can be a directory in the jobs dir. Anything else (too long for a file
    name, a NUL, a slash, a surrogate no file name can hold) is simply not a job: asking
    the file system would fail with an OSError instead of 'not found'."""
    if not job_id or job_id.startswith(".") or "/" in job_id or "\0" in job_id:
        return False
    try:
        return len(os.fsencode(job_id)) <= NAME_MAX
    except UnicodeError:
        return False


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def host_info() -> dict[str, Any]:
    import socket

    return {"pid": os.getpid(), "host": socket.gethostname()}
