"""Rate limits, queue shares and signed callbacks, on their own (real sockets, no server)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from retailpulse_cli.config.security_settings import default_queue_share
from retailpulse_cli.errors import ConfigError
from retailpulse_cli.server.security import callbacks
from retailpulse_cli.server.security.rate_limit import ApiRateLimiter, parse_rate

from .callbackserver import CallbackServer

SECRET = b"callback-secret"


@pytest.fixture
def receiver() -> Iterator[CallbackServer]:
    srv = CallbackServer().start()
    yield srv
    srv.stop()


def test_rate_parsing() -> None:
    assert parse_rate("20/s") == 20 and parse_rate("600/m") == 10 and parse_rate("5") == 5
    assert parse_rate("3600 / hour") == 1 and parse_rate("0") == 0
    for bad in ("fast", "20/d", "-1/s", ""):
        with pytest.raises(ConfigError, match="--api-rate"):
            parse_rate(bad)


def test_burst_then_refused_with_retry_after_per_key() -> None:
    limiter = ApiRateLimiter(20, 40)
    assert all(limiter.hit("user:a") is None for _ in range(40))
    over = limiter.hit("user:a")
    assert over is not None and over.retry_after == 1  # a token comes back in 0.05 s
    assert limiter.hit("user:b") is None  # another caller is not affected


def test_the_bucket_refills_at_the_rate() -> None:
    limiter = ApiRateLimiter(20, 40)
    assert all(limiter.hit("k") is None for _ in range(40))
    time.sleep(0.26)  # ~5 tokens
    allowed = sum(limiter.hit("k") is None for _ in range(10))
    assert 4 <= allowed <= 6


def test_retry_after_says_when_the_next_token_comes() -> None:
    limiter = ApiRateLimiter(0.5, 1)  # one request every 2 s
    assert limiter.hit("k") is None
    over = limiter.hit("k")
    assert over is not None and over.retry_after == 2
    time.sleep(0.05)
    assert limiter.hit("k") is not None  # refused hits do not reset the refill


def test_idle_callers_are_forgotten_when_the_table_is_full() -> None:
    limiter = ApiRateLimiter(1000, 1)
    limiter.MAX_KEYS = 100
    for i in range(100):
        assert limiter.hit(f"addr:{i}") is None
    time.sleep(0.01)  # every bucket is full again
    assert limiter.hit("addr:new") is None
    assert len(limiter._buckets) == 1


def test_rate_zero_turns_limits_off_and_burst_must_be_positive() -> None:
    limiter = ApiRateLimiter(0, 1)
    assert all(limiter.hit("k") is None for _ in range(1000))
    with pytest.raises(ConfigError, match="--api-burst"):
        ApiRateLimiter(20, 0)


def test_default_queue_share() -> None:
    assert default_queue_share(1000) == 250 and default_queue_share(3) == 1


def test_callback_is_signed_and_retried_after_a_500(receiver: CallbackServer) -> None:
    receiver.answers = [500, 503]
    lines: list[str] = []
    sender = callbacks.CallbackSender(
        SECRET, block_private=False, log=lines.append, first_backoff=0.2
    )
    try:
        status = {"job_id": "J1", "status": "completed", "images_ok": 2}
        delivery_id = sender.send(receiver.url + "/hook?x=1", "J1", status)
        got = receiver.wait_for(3)
        assert len(got) == 3
    finally:
        sender.close()
    for req in got:
        assert req.path == "/hook?x=1" and json.loads(req.body) == status
        want = "sha256=" + hmac.new(SECRET, req.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(req.headers[callbacks.SIGNATURE_HEADER], want)
        assert req.headers[callbacks.DELIVERY_HEADER] == delivery_id
    assert got[1].at - got[0].at >= 0.18 and got[2].at - got[1].at >= 0.38  # back-off doubles
    deadline = time.monotonic() + 5
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lines == ["callback for job J1 delivered (try 3)"]


def test_callback_gives_up_after_five_tries(receiver: CallbackServer) -> None:
    receiver.answers = [500] * 10
    lines: list[str] = []
    sender = callbacks.CallbackSender(
        SECRET, block_private=False, log=lines.append, first_backoff=0.02
    )
    try:
        sender.send(receiver.url, "J2", {"job_id": "J2"})
        receiver.wait_for(5)
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
    finally:
        sender.close()
    assert len(receiver.received) == 5
    assert lines == ["callback for job J2 not delivered after 5 tries: HTTP 500"]


def test_a_slow_receiver_does_not_hold_up_another(receiver: CallbackServer) -> None:
    import socket

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(1)  # accepts, never answers
    sender = callbacks.CallbackSender(SECRET, block_private=False, log=lambda _: None)
    try:
        sender.send(f"http://127.0.0.1:{hung.getsockname()[1]}/", "slow", {})
        started = time.monotonic()
        sender.send(receiver.url, "fast", {"job_id": "fast"})
        receiver.wait_for(1, timeout=5)
        assert time.monotonic() - started < 2
    finally:
        sender.close()
        hung.close()


def test_private_addresses_are_refused_at_submit_and_at_connect(
    receiver: CallbackServer,
) -> None:
    assert callbacks.check_url(receiver.url, block_private=False) is None
    refused = callbacks.check_url(receiver.url, block_private=True)
    assert refused is not None and "127.0.0.1" in refused and "private" in refused
    for bad in ("ftp://x/y", "file:///etc/passwd", "http://", 5, "x" * 3000):
        assert callbacks.check_url(bad, block_private=False) is not None
    lines: list[str] = []
    sender = callbacks.CallbackSender(SECRET, block_private=True, log=lines.append)
    try:
        sender.send(receiver.url, "J3", {})  # e.g. a name that turned private after submit
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sender.close()
    assert receiver.received == []
    assert len(lines) == 1 and "not delivered after 1 try:" in lines[0]
    assert "private" in lines[0]


def test_secret_file_loses_its_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "cb.secret"
    path.write_bytes(b"abc\n")
    assert callbacks.read_secret(path) == b"abc"
    path.write_bytes(b"\n")
    with pytest.raises(ConfigError, match="empty"):
        callbacks.read_secret(path)
    with pytest.raises(ConfigError, match="cannot read"):
        callbacks.read_secret(tmp_path / "none")
