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
    # per user (per address when unauthenticated); None: DEFAULT_API_RATE, or no limit
    # with --no-auth (today's open mode, for one trusted client: no limit unless asked)
    api_rate: str | None = None
    api_burst: int = DEFAULT_API_BURST
    max_queued_per_user: int | None = None  # None: a quarter of --max-queued-jobs (all: --no-auth)
    callback_secret_file: Path | None = None  # None: callback_url is refused

    def rate(self) -> str:
        if self.api_rate is not None:
            return self.api_rate
        return "0" if self.no_auth else DEFAULT_API_RATE

    def queue_share(self, max_queued_jobs: int) -> int:
        if self.max_queued_per_user is not None:
            return self.max_queued_per_user
        if self.no_auth:  # one (anonymous) user: a share of the queue would only shrink it
            return max_queued_jobs
        return default_queue_share(max_queued_jobs)
