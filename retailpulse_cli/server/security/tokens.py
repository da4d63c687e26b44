"""API tokens: made once by `retailpulse token create`, kept only as a hash in the jobs
directory, checked in constant time by the server, revoked without a restart.

`<jobs_dir>/tokens.json` (mode 0600, replaced atomically; `.tokens.lock` serialises
writers: the CLI's create/revoke and the server's batched last-used updates):

    {"schema_version": 1, "tokens": [{"name": "alice", "role": "submitter",
      "sha256": "<hex of the token>", "created_at": "...", "last_used_at": null}]}

A token is `rp_` + 43 random URL-safe characters (256 bits): a plain SHA-256 is enough to
keep the file useless to a reader (a slow password hash protects guessable secrets; there
is nothing to guess here), and costs a microsecond per request.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from retailpulse_cli.errors import ConfigError, ExitCode, RetailpulseError, StorageError
from retailpulse_cli.server.security.roles import Role, parse_role
from retailpulse_cli.storage.job_dir import fsync_dir, now_iso

TOKENS_FILE = "tokens.json"
LOCK_FILE = ".tokens.lock"
TOKEN_PREFIX = "rp_"
SCHEMA_VERSION = 1
# last-used times are kept in memory and written at most this often (and at shutdown):
# rewriting the file on every request would cost an fsync per call
LAST_USED_FLUSH_SECONDS = 30.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class TokenFileError(StorageError):
    """tokens.json cannot be read or written, or is not ours."""


class TokenNameError(ConfigError):
    """A token name that is taken or malformed (exit 2)."""


class TokenNotFound(RetailpulseError):
    exit_code = ExitCode.NOT_FOUND
    hint = "`retailpulse token list` shows the names"


@dataclass(frozen=True)
class TokenEntry:
    """One token as stored: never the token itself."""

    name: str
    role: Role
    sha256: str
    created_at: str
    last_used_at: str | None = None

    def public(self) -> dict[str, Any]:
        """What `token list` shows: everything but the hash."""
        return {
            "name": self.name,
            "role": self.role.value,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
        }


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise TokenNameError(
            f"token name {name[:80]!r} is not allowed: use 1-64 letters, digits, '.', '_', "
            "'-' or '@', starting with a letter or digit",
            hint="the name is the user its jobs are recorded under",
        )
    return name


def tokens_path(jobs_dir: Path) -> Path:
    return jobs_dir / TOKENS_FILE


# -- the file ------------------------------------------------------------------------------


def read_entries(path: Path) -> list[TokenEntry]:
    """The tokens in `path`; none when it does not exist yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise TokenFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw)
        rows = doc["tokens"] if isinstance(doc, dict) else None
        if not isinstance(rows, list) or not isinstance(doc.get("schema_version"), int):
            raise ValueError("no tokens list")
        return [_entry(row) for row in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenFileError(
            f"{path} is damaged ({exc}); no token is accepted until it is fixed",
            hint="restore it, or remove it and create the tokens again",
        ) from None


def _entry(row: Any) -> TokenEntry:
    role = parse_role(row.get("role")) if isinstance(row, dict) else None
    if role is None or not isinstance(row.get("name"), str):
        raise ValueError(f"bad entry {str(row)[:60]}")
    sha = row.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError(f"entry {row['name']!r} has no sha256")
    return TokenEntry(
        name=row["name"],
        role=role,
        sha256=sha,
        created_at=str(row.get("created_at") or ""),
        last_used_at=row.get("last_used_at") if isinstance(row.get("last_used_at"), str) else None,
    )


def _write_private(path: Path, entries: list[TokenEntry]) -> None:
    """Temp file created 0600 in the same folder, fsynced, renamed over: a reader sees the
    old file or the new one, and the hashes are never readable by other users."""
    rows = [{**e.public(), "sha256": e.sha256} for e in entries]
    data = (
        json.dumps({"schema_version": SCHEMA_VERSION, "tokens": rows}, indent=2) + "\n"
    ).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise TokenFileError(f"cannot write {path}: {exc.strerror or exc}") from None
    fsync_dir(path.parent)  # a revocation must survive a power cut


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of tokens.json between processes (flock: released by
    the kernel if the holder dies)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise TokenFileError(f"cannot lock {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def update(path: Path, change: Callable[[list[TokenEntry]], list[TokenEntry]]) -> None:
    """Read, change and write tokens.json under the lock."""
    with _locked(path):
        entries = read_entries(path)
        _write_private(path, change(entries))


# -- the CLI's use cases -------------------------------------------------------------------


def create(path: Path, name: str, role: Role) -> str:
    """Make a token for `name`; return it (the only time it exists outside the caller)."""
    check_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    entry = TokenEntry(name=name, role=role, sha256=digest(token), created_at=now_iso())

    def add(entries: list[TokenEntry]) -> list[TokenEntry]:
        if any(e.name == name for e in entries):
            raise TokenNameError(
                f"a token named {name!r} exists already",
                hint=f"`retailpulse token revoke {name}` first, or pick another name",
            )
        return [*entries, entry]

    update(path, add)
    return token


def revoke(path: Path, name: str) -> TokenEntry:
    """Remove the token named `name`; a running server refuses it on its next request."""
    removed: list[TokenEntry] = []

    def drop(entries: list[TokenEntry]) -> list[TokenEntry]:
        removed.extend(e for e in entries if e.name == name)
        if not removed:
            raise TokenNotFound(f"no token named {name!r} in {path}")
        return [e for e in entries if e.name != name]

    update(path, drop)
    return removed[0]


# -- the server's side ---------------------------------------------------------------------


class TokenVerifier:
    """Checks bearer tokens against tokens.json, re-reading the file whenever it changed
    (inode, size or mtime: `os.replace` always gives a new inode), so a token revoked by
    the CLI is refused on the very next request. Thread-safe."""

    def __init__(self, path: Path, *, flush_seconds: float = LAST_USED_FLUSH_SECONDS) -> None:
        self.path = path
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._entries: list[TokenEntry] = []
        self._damage: RetailpulseError | None = None
        self._used: dict[str, float] = {}  # name -> time.time() of its last request
        self._last_flush = time.monotonic()
        self._flushing = False

    def verify(self, token: str) -> TokenEntry | None:
        """The entry whose hash matches `token`, or None. Every entry is compared (no early
        exit) with hmac.compare_digest, so the time taken says nothing about the hashes.
        Raises TokenFileError while tokens.json is damaged (fail closed)."""
        wanted = digest(token)
        entries = self._current()
        found: TokenEntry | None = None
        for entry in entries:
            if hmac.compare_digest(wanted, entry.sha256):
                found = entry
        if found is not None:
            self._note_use(found.name)
        return found

    def _current(self) -> list[TokenEntry]:
        try:
            st = os.stat(self.path)
            seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            seen = (0, 0, 0)
        except OSError as exc:
            raise TokenFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        with self._lock:
            if seen != self._seen:
                try:
                    self._entries, self._damage = read_entries(self.path), None
                except RetailpulseError as exc:
                    self._entries, self._damage = [], exc
                self._seen = seen
            if self._damage is not None:
                raise self._damage
            return self._entries

    def _note_use(self, name: str) -> None:
        with self._lock:
            self._used[name] = time.time()  # formatted at the flush, not per request
            due = not self._flushing and time.monotonic() - self._last_flush >= self.flush_seconds
            self._flushing = self._flushing or due
        if due:  # the fsync happens off the request's path
            threading.Thread(target=self._flush_in_background, name="rp-token-flush").start()

    def _flush_in_background(self) -> None:
        try:
            self.flush()
        finally:
            with self._lock:
                self._flushing = False

    def flush(self) -> None:
        """Write the batched last-used times (tokens revoked meanwhile stay revoked). A
        failure is not the request's problem: the times wait for the next flush."""
        with self._lock:
            used, self._used = self._used, {}
            self._last_flush = time.monotonic()
        if not used:
            return

        def stamp(entries: list[TokenEntry]) -> list[TokenEntry]:
            return [
                replace(e, last_used_at=_iso(used[e.name])) if e.name in used else e
                for e in entries
            ]

        try:
            update(self.path, stamp)
        except RetailpulseError:
            with self._lock:
                self._used = {**used, **self._used}


def _iso(when: float) -> str:
    """A time.time() as now_iso() writes times."""
    from datetime import datetime, timezone

    stamp = datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
