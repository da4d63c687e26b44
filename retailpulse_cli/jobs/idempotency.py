"""Idempotency keys: a retried submit returns the job the first one made.

The key (hashed) and the hash of the body are written into the job's meta.json, in the
same rename that creates the job, so a job can never exist without its key (a crash
between "job made" and "key recorded" would let a retry make a second job). The index in
memory is only a cache of those meta files: rebuilt at start-up from the jobs of the last
`KEY_LIFETIME`, which the job ids (creation times) pick out without reading older jobs.
Nothing here prints.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from retailpulse_cli.errors import RetailpulseError
from retailpulse_cli.jobs.job_pages import id_time
from retailpulse_cli.storage.job_dir import Job, JobStore

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255
META_FIELD = "idempotency"


class IdempotencyConflict(RetailpulseError):
    """The key was used, within its lifetime, for a different body."""

    hint = "use a new Idempotency-Key for a different job"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Claim:
    """What a keyed submit stores with its job (meta.json `idempotency`)."""

    key_sha256: str
    body_sha256: str

    def to_meta(self) -> dict[str, Any]:
        return {META_FIELD: {"key_sha256": self.key_sha256, "body_sha256": self.body_sha256}}


def claim_for(key: str, body: bytes, scope: str) -> Claim:
    """A key is scoped by the caller (the user, once there are users): two users may pick
    the same key without seeing each other's jobs."""
    return Claim(digest(f"{scope}\0{key}".encode()), digest(body))


@dataclass(frozen=True)
class _Entry:
    job_id: str
    body_sha256: str
    made: datetime


class IdempotencyIndex:
    """key hash -> the job it made; `lock` serialises keyed submits (look up, create, record)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def load(self, store: JobStore, now: datetime | None = None) -> int:
        """Index the keys of jobs made within KEY_LIFETIME; return how many."""
        now = now or datetime.now(timezone.utc)
        for job_id in store.job_ids():  # newest first: stop at the first old one
            made = id_time(job_id)
            if made is None:
                continue
            if made < now - KEY_LIFETIME:
                break
            try:
                stored = Job(store.root / job_id).meta().get(META_FIELD)
            except RetailpulseError:
                continue
            if isinstance(stored, dict) and isinstance(stored.get("key_sha256"), str):
                entry = _Entry(job_id, str(stored.get("body_sha256")), made)
                self._entries.setdefault(stored["key_sha256"], entry)
        return len(self._entries)

    def find(self, claim: Claim, now: datetime | None = None) -> str | None:
        """The job this key made, if the body is the same; None for a new (or expired) key;
        IdempotencyConflict for the same key with another body. Call with `lock` held."""
        entry = self._entries.get(claim.key_sha256)
        now = now or datetime.now(timezone.utc)
        if entry is None or entry.made < now - KEY_LIFETIME:
            return None
        if entry.body_sha256 != claim.body_sha256:
            raise IdempotencyConflict(
                f"Idempotency-Key was used within {KEY_LIFETIME.total_seconds() / 3600:g} h "
                f"for a different request body (job {entry.job_id})"
            )
        return entry.job_id

    def record(self, claim: Claim, job_id: str) -> None:
        """Call with `lock` held, once the job (with the claim in its meta.json) exists."""
        made = id_time(job_id) or datetime.now(timezone.utc)
        self._entries[claim.key_sha256] = _Entry(job_id, claim.body_sha256, made)
        self._prune(made)

    def _prune(self, now: datetime) -> None:
        if len(self._entries) % 1024 == 0:  # now and then: old keys must not pile up
            old = [k for k, e in self._entries.items() if e.made < now - KEY_LIFETIME]
            for key in old:
                del self._entries[key]
