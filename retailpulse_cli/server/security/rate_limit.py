"""Per-caller request limits (the `limits` library) and each user's share of the queue.

`--api-rate 20/s --api-burst 40` becomes "at most 40 requests in any 2-second window"
(limits' moving window, in memory): a client may send 40 at once, and 20/s for ever.
limits counts windows in whole seconds, so the window is burst/rate rounded up to a
second; the sustained rate is then a little under --api-rate, never over it.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from retailpulse_cli.errors import ConfigError

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*", re.I)
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(text: str) -> float:
    """`20/s`, `600/m`, `5` (per second) -> requests per second; `0` turns limits off."""
    match = _RATE.fullmatch(text)
    if match is None:
        raise ConfigError(f"--api-rate {text!r}: use N/s, N/m or N/h, e.g. 20/s (0: no limit)")
    per = _PER[(match.group(2) or "s").lower()]
    return float(match.group(1)) / per


@dataclass(frozen=True)
class Over:
    """A refused request: how long until one more would be let through."""

    retry_after: int  # whole seconds, at least 1 (the Retry-After header)


class ApiRateLimiter:
    """One moving window per key ("user:NAME", or "addr:IP" for unauthenticated calls).
    Thread-safe (limits' memory storage locks)."""

    def __init__(self, rate_per_second: float, burst: int) -> None:
        if burst < 1:
            raise ConfigError(f"--api-burst {burst}: must be at least 1")
        self.enabled = rate_per_second > 0
        window = max(1, math.ceil(burst / rate_per_second)) if self.enabled else 1
        self.item = RateLimitItemPerSecond(burst, window)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> Over | None:
        """Count one request for `key`; an `Over` when it is one too many."""
        if not self.enabled or self.limiter.hit(self.item, key):
            return None
        stats = self.limiter.get_window_stats(self.item, key)
        return Over(retry_after=max(1, math.ceil(stats.reset_time - time.time())))
