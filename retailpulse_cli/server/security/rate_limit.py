"""Per-caller request limits: a token bucket per user (or per client address).

`--api-rate 20/s --api-burst 40`: a caller's bucket holds up to 40 tokens and refills at
20 a second; a request takes one, and finds none: 429, Retry-After the seconds until the
next token (at least 1). So a client may send 40 at once, and 20/s for ever.

Hand-written rather than the `limits` library, for reasons measured in
bench/rate_limiter_bench.py: limits' in-memory storage starts a fresh 10-ms timer thread
again and again while any key exists (9-31 threads a second measured under a flood), a
refused hit cost 18-45 us against 3-5 us here, and its windows count whole seconds, so a
rate and a burst whose ratio is not a whole number of seconds could not be said exactly.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass

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
    """A token bucket per key ("user:NAME", or "addr:IP" without good credentials).
    O(1) per hit under one lock, no thread; buckets that have filled up again (idle
    callers) are dropped when the table grows past MAX_KEYS."""

    MAX_KEYS = 10_000

    def __init__(self, rate_per_second: float, burst: int) -> None:
        if burst < 1:
            raise ConfigError(f"--api-burst {burst}: must be at least 1")
        self.enabled = rate_per_second > 0
        self.rate = rate_per_second
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)
        self._lock = threading.Lock()

    def hit(self, key: str) -> Over | None:
        """Take a token for `key`; an `Over` when there is none."""
        if not self.enabled:
            return None
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                if key not in self._buckets and len(self._buckets) >= self.MAX_KEYS:
                    self._forget_full(now)
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
        return Over(retry_after=max(1, math.ceil((1.0 - tokens) / self.rate)))

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that are full again: to the caller, the same as no bucket."""
        refill = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}
