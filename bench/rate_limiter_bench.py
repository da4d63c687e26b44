"""Why the service's rate limiter is a hand-written token bucket, not the `limits` library:
the cost of one hit on a caller that is over its limit (a flood), and the threads each
starts. Needs `pip install limits` for the comparison (the service does not use it).

    python bench/rate_limiter_bench.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from collections.abc import Callable
from typing import Any

started_threads = 0


def _count_thread_starts() -> None:
    original = threading.Thread.start

    def counting(self: threading.Thread) -> None:
        global started_threads
        started_threads += 1
        original(self)

    threading.Thread.start = counting  # type: ignore[method-assign]


def measure(name: str, hit: Callable[[], bool], seconds: float) -> None:
    global started_threads
    started_threads = 0
    hits = refused = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        refused += not hit()
        hits += 1
    elapsed = time.perf_counter() - t0
    print(
        f"{name:<34} {elapsed / hits * 1e6:6.1f} us/hit  {hits / elapsed:>9,.0f} hits/s  "
        f"refused {refused / hits:5.1%}  threads started {started_threads / elapsed:5.1f}/s"
    )


def limits_moving_window(rate: float, burst: int) -> Callable[[], bool] | None:
    try:
        from limits import RateLimitItemPerSecond
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter
    except ImportError:
        print("limits is not installed (pip install limits): its line is left out")
        return None
    item = RateLimitItemPerSecond(burst, max(1, math.ceil(burst / rate)))
    limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit() -> bool:  # what the service would do: hit, and on refusal read Retry-After
        if limiter.hit(item, "user:flood"):
            return True
        limiter.get_window_stats(item, "user:flood")
        return False

    return hit


def token_bucket(rate: float, burst: int) -> Callable[[], bool]:
    from retailpulse_cli.server.security.rate_limit import ApiRateLimiter

    limiter: Any = ApiRateLimiter(rate, burst)
    return lambda: limiter.hit("user:flood") is None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    _count_thread_starts()
    rate, burst = 20.0, 40
    print(f"one caller hitting as fast as it can, --api-rate {rate:g}/s --api-burst {burst}")
    moving = limits_moving_window(rate, burst)
    if moving is not None:
        measure("limits, moving window, memory", moving, args.seconds)
    measure("retailpulse token bucket", token_bucket(rate, burst), args.seconds)


if __name__ == "__main__":
    main()
