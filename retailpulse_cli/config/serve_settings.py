"""How `retailpulse serve` listens and queues: one frozen dataclass, each default once.

How the jobs themselves run is `Settings` (settings.py), from the same option table as
the CLI; these are the service's own switches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from retailpulse_cli.config.security_settings import SecuritySettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_CONCURRENT_JOBS = 2
DEFAULT_MAX_QUEUED_JOBS = 1000
DEFAULT_GRACE = 10.0  # seconds SIGTERM gives running jobs to reach a safe point
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
SERVER_EXTRA = "pip install 'retailpulse[server]'"


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    concurrent_jobs: int = DEFAULT_CONCURRENT_JOBS
    max_queued_jobs: int = DEFAULT_MAX_QUEUED_JOBS
    grace: float = DEFAULT_GRACE
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # Jobs from the network may not read the server's files or reach its private
    # networks unless the operator says so.
    allow_local_files: bool = False
    allow_private_networks: bool = False
    security: SecuritySettings = field(default_factory=SecuritySettings)
