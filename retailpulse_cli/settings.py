"""All run settings as one frozen, keyword-only dataclass."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WORKERS = 32
DEFAULT_GPU_DELAY = (0.1, 0.4)
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_PIXELS = 100_000_000  # ~ a 12,000 x 8,000 photo; bombs declare far more


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How a job runs: pool size, simulated GPU, network limits and safety switches."""

    workers: int = DEFAULT_WORKERS
    gpu_delay: tuple[float, float] = DEFAULT_GPU_DELAY
    seed: int | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 20.0  # longest silence between two reads of one response
    timeout: float = 60.0  # total per-image deadline, all attempts included
    retries: int = 3  # extra attempts after the first, for transient failures only
    backoff: float = 0.5  # first retry waits ~this, doubling each time, with jitter
    backoff_max: float = 30.0
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_redirects: int = 5
    per_host: int = DEFAULT_WORKERS  # concurrent connections to one host
    rate: float = 0.0  # requests per second per host; 0 = unlimited
    allow_local_files: bool = True
    block_private_networks: bool = False
    user_agent: str = ""
    save_images: str | None = None  # folder or fsspec URL for the image bytes (storage.py)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        lo, hi = self.gpu_delay
        if lo < 0 or hi < lo:
            raise ValueError("gpu delay must be 0 <= MIN <= MAX")
