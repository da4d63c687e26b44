"""The service's security switches: one frozen dataclass, each default once (imported by
the CLI at start-up: nothing heavy here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_API_RATE = "20/s"
DEFAULT_API_BURST = 40
QUEUE_SHARE_DIVISOR = 4  # --max-queued-per-user default: a quarter of --max-queued-jobs


def default_queue_share(max_queued_jobs: int) -> int:
    return max(1, max_queued_jobs // QUEUE_SHARE_DIVISOR)


@dataclass(frozen=True, kw_only=True)
class SecuritySettings:
    no_auth: bool = False  # open mode, for a trusted loopback setup only
    jwt_secret_file: Path | None = None  # HS256
    jwt_public_key: Path | None = None  # RS256 / ES256 PEM
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    api_rate: str = DEFAULT_API_RATE  # per user (per address when unauthenticated)
    api_burst: int = DEFAULT_API_BURST
    max_queued_per_user: int | None = None  # None: a quarter of --max-queued-jobs
    callback_secret_file: Path | None = None  # None: callback_url is refused

    def queue_share(self, max_queued_jobs: int) -> int:
        if self.max_queued_per_user is not None:
            return self.max_queued_per_user
        return default_queue_share(max_queued_jobs)
