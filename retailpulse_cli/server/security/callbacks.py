"""Signed callbacks: when a job submitted with `callback_url` ends, POST its status there.

The body is the job's status object (as `GET /v1/jobs/{id}` answers); the receiver checks

    X-Retailpulse-Signature: sha256=<hex HMAC-SHA256 of the raw body, key: the secret file>
    X-Retailpulse-Delivery:  <a uuid, the same on every try of one delivery>

Deliveries run on their own threads, never on a job's: a slow or dead receiver delays
only its own callback. A failed try (connection error, timeout, any status but 2xx) is
tried again after 1, 2, 4, 8 s (5 tries in all). The URL passes the same address guard
as image URLs: refused at submit when it names a private address (unless the server
runs with --allow-private-networks), and checked again at connect time.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from retailpulse_cli import __version__
from retailpulse_cli.errors import ConfigError

SIGNATURE_HEADER = "X-Retailpulse-Signature"
DELIVERY_HEADER = "X-Retailpulse-Delivery"
EVENT_HEADER = "X-Retailpulse-Event"
TRIES = 5
FIRST_BACKOFF_SECONDS = 1.0  # then 2, 4, 8
TIMEOUT_SECONDS = 10.0  # per try, connect to last byte
SENDER_THREADS = 4
MAX_URL_CHARS = 2048


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def read_secret(path: Path) -> bytes:
    """--callback-secret-file: its content without the trailing newline."""
    try:
        secret = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(
            f"--callback-secret-file: cannot read {path}: {exc.strerror or exc}"
        ) from None
    if not secret:
        raise ConfigError(
            f"--callback-secret-file: {path} is empty",
            hint="make one with `openssl rand -hex 32 > FILE`",
        )
    return secret


def check_url(url: object, *, block_private: bool) -> str | None:
    """Why `url` cannot be a callback URL (a message for a 400), or None when it can."""
    from retailpulse_cli.processing.lookup import is_blocked_address

    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        return f"must be an http(s) URL of at most {MAX_URL_CHARS} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL: {exc}"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL with a host"
    if not block_private:
        return None
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        return f"cannot resolve {parts.hostname}: {exc.strerror or exc}"
    for info in infos:
        if is_blocked_address(str(info[4][0])):
            return (
                f"{parts.hostname} resolves to {info[4][0]}, a private/loopback/link-local "
                "address (the server blocks private networks)"
            )
    return None


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    job_id: str = field(compare=False)
    delivery_id: str = field(compare=False)
    tries: int = field(default=0, compare=False)


Log = Callable[[str], None]


class CallbackSender:
    """A heap of due deliveries and a few threads that send them."""

    def __init__(
        self,
        secret: bytes,
        *,
        block_private: bool,
        log: Log,
        first_backoff: float = FIRST_BACKOFF_SECONDS,
        tries: int = TRIES,
        on_end: Callable[[bool], None] | None = None,
    ) -> None:
        from retailpulse_cli.processing.connections import Watchdog
        from retailpulse_cli.processing.fetch import guarded_session

        self.secret = secret
        self.block_private = block_private
        self.log = log
        self.first_backoff = first_backoff
        self.tries = tries
        self.on_end = on_end  # told True (delivered) or False (given up) per delivery
        self._heap: list[_Delivery] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._closed = False
        self._watchdog = Watchdog()
        self._session = guarded_session()
        self._session.headers["User-Agent"] = f"retailpulse/{__version__} (callback)"
        self._threads = [
            threading.Thread(target=self._work, name=f"rp-callback-{i}", daemon=True)
            for i in range(SENDER_THREADS)
        ]
        for thread in self._threads:
            thread.start()

    def send(self, url: str, job_id: str, status: dict[str, Any]) -> str:
        """Queue the delivery of `status` to `url`; returns its delivery id at once."""
        body = json.dumps(status, ensure_ascii=False).encode()
        delivery = _Delivery(
            time.monotonic(), next(self._seq), url, body, job_id, str(uuid.uuid4())
        )
        self._push(delivery)
        return delivery.delivery_id

    def pending(self) -> int:
        with self._wake:
            return len(self._heap)

    def close(self) -> None:
        """Stop sending (deliveries still waiting are logged as dropped)."""
        with self._wake:
            self._closed = True
            dropped, self._heap = self._heap, []
            self._wake.notify_all()
        for d in dropped:
            self.log(f"callback for job {d.job_id} dropped at shutdown after {d.tries} tries")
        self._session.close()

    def _push(self, delivery: _Delivery) -> None:
        with self._wake:
            heapq.heappush(self._heap, delivery)
            self._wake.notify()

    def _next(self) -> _Delivery | None:
        with self._wake:
            while not self._closed:
                if self._heap and self._heap[0].due <= time.monotonic():
                    return heapq.heappop(self._heap)
                timeout = self._heap[0].due - time.monotonic() if self._heap else None
                self._wake.wait(timeout)
            return None

    def _work(self) -> None:
        while (delivery := self._next()) is not None:
            delivery.tries += 1
            failure = self._try(delivery)
            if failure is None:
                self.log(f"callback for job {delivery.job_id} delivered (try {delivery.tries})")
                self._ended(True)
            elif failure.final or delivery.tries >= self.tries:
                tries = f"{delivery.tries} {'try' if delivery.tries == 1 else 'tries'}"
                self.log(
                    f"callback for job {delivery.job_id} not delivered after {tries}: "
                    f"{failure.reason}"
                )
                self._ended(False)
            else:
                pause = self.first_backoff * 2 ** (delivery.tries - 1)
                delivery.due = time.monotonic() + pause
                self._push(delivery)

    def _ended(self, delivered: bool) -> None:
        if self.on_end is not None:
            self.on_end(delivered)

    def _try(self, delivery: _Delivery) -> _Failure | None:
        import requests

        from retailpulse_cli.processing.fetch import FetchFailure, guarded_request

        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, delivery.body),
            DELIVERY_HEADER: delivery.delivery_id,
            EVENT_HEADER: "job.finished",
        }
        try:
            with guarded_request(self._watchdog, TIMEOUT_SECONDS, block_private=self.block_private):
                r = self._session.post(
                    delivery.url,
                    data=delivery.body,
                    headers=headers,
                    timeout=TIMEOUT_SECONDS,
                    allow_redirects=False,  # a redirect would dodge the address guard
                )
                r.close()
        except FetchFailure as exc:
            return _Failure(exc.message, final=exc.code == "blocked_address")
        except requests.RequestException as exc:
            return _Failure(type(exc).__name__)
        if 200 <= r.status_code < 300:
            return None
        return _Failure(f"HTTP {r.status_code}")


@dataclass(frozen=True)
class _Failure:
    reason: str  # never the URL: it may carry a secret in its query
    final: bool = False
