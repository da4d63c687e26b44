"""The issues' targets in one place (issue 10 tightened those of issue 6), so the main
benchmark and bench/faulty.py judge them the same way. Each returns (target, ok)."""

from __future__ import annotations

import random
from collections.abc import Iterable

MB = 1024  # KiB per MiB (RSS is measured in KiB)

# (images, --workers) -> the most wall/ideal may be; ideal = sum(delays)/workers.
CURVE = {(1000, 64): 1.10, (1000, 128): 1.20}
CURVE_WITH_STARTUP = {(4000, 32): 1.02}  # ... times ideal, plus the fixed start-up cost
FAULTY_FACTOR = 1.1  # wall <= this x (sum of good images' delays / workers + --timeout)
GPU_DELAY_0_VS_ONE_READ = 1.3  # --gpu-delay 0 img/s >= this x the one-read requests pool
SCALE_PEAK_RSS_MB = 150
SCALE_GROWTH_MB = 50
STATUS_S = 0.15
LIST_S = 0.25


def gpu_delays(seed: int, indices: Iterable[int], lo: float, hi: float) -> list[float]:
    """The simulated GPU time of each image, as retailpulse's runner.gpu_delay draws it."""
    return [random.Random(seed * 1_000_003 + i).uniform(lo, hi) for i in indices]


def curve(n: int, workers: int, wall: float, ideal: float, fixed: float) -> tuple[str, bool | None]:
    """The target of one GPU-curve run; report-only (ok None) for sizes without one."""
    if (n, workers) in CURVE_WITH_STARTUP:
        f = CURVE_WITH_STARTUP[n, workers]
        return f"{n:,} images, {workers} slots: <= {f:g}x ideal + start-up", (
            wall <= f * ideal + fixed
        )
    if (n, workers) in CURVE:
        f = CURVE[n, workers]
        return f"{n:,} images, {workers} slots: <= {f:g}x ideal", wall <= f * ideal
    return f"{n:,} images, {workers} slots (no target: report only)", None


def faulty(wall: float, good_delays: float, workers: int, timeout: float) -> tuple[str, bool]:
    bound = FAULTY_FACTOR * (good_delays / workers + timeout)
    text = (
        f"faulty job: wall <= {FAULTY_FACTOR:g} x (sum of good delays {good_delays:.1f} s / "
        f"{workers} + timeout {timeout:g} s) = {bound:.1f} s"
    )
    return text, wall <= bound
