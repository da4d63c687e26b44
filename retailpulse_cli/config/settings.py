"""All run settings as one frozen, keyword-only dataclass."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WORKERS = 32
# Downloads at once. They run ahead of the GPU stage, so they must cover the URLs that hang
# until --timeout (each holds a download slot) and still feed the GPU: at the default GPU
# pace (32 slots / 0.25 s = 128 images/s) a job where 4 % of the URLs hang for 10 s has ~50
# hanging at once. Measured on bench/faulty.py (bench/README.md): 64 downloads 28 s, 128
# 21-24 s, 256 18-20 s; the gain past 128 only comes from more 429 answers landing in one
# Retry-After hold of their host, at twice the threads and connections to that host.
DEFAULT_DOWNLOADS = 128
DEFAULT_GPU_DELAY = (0.1, 0.4)
DEFAULT_CLUSTER = "local"  # --cluster: images run in this process
DEFAULT_SHARD_SIZE = 1000  # images per Dask task (--cluster): one task per image was 2.5x slower
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_PIXELS = 100_000_000  # ~ a 12,000 x 8,000 photo; bombs declare far more


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How a job runs: pool size, simulated GPU, network limits and safety switches."""

    workers: int = DEFAULT_WORKERS  # images in the GPU stage at once
    downloads: int = DEFAULT_DOWNLOADS  # images being downloaded at once
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
    per_host: int = DEFAULT_DOWNLOADS  # concurrent connections to one host
    # --per-host was set (flag, variable, config file, or the job's own setting); if not, it
    # follows --downloads, also when a resume or retry changes --downloads (meta.json says)
    per_host_given: bool = False
    rate: float = 0.0  # requests per second per host; 0 = unlimited
    allow_local_files: bool = True
    block_private_networks: bool = False
    user_agent: str = ""
    save_images: str | None = None  # folder or fsspec URL for the image bytes (storage.py)
    results_db: str | None = None  # SQLAlchemy URL the records also go to (storage/results_db)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.downloads < 1:
            raise ValueError("downloads must be at least 1")
        lo, hi = self.gpu_delay
        if lo < 0 or hi < lo:
            raise ValueError("gpu delay must be 0 <= MIN <= MAX")
