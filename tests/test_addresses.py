"""`--block-private-networks` sends not one byte to a refused address, even when the
resolver changes its answer between the check and the connect (DNS rebinding), and a
name that does not resolve is `dns_error` (issue 9, findings 2 and 8). The resolver is
replaced in-process (socket.getaddrinfo); the HTTP side is a raw server on 127.0.0.1 that
counts every connection and byte it receives."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import KNOWN, Cli, jobs_in, results_of, visit, write_job
from .rawserver import RawServer

PUBLIC = "93.184.215.14"  # any public address: it is never connected to


@pytest.fixture
def raw() -> Iterator[RawServer]:
    srv = RawServer().start()
    yield srv
    srv.stop()


def submit_one(cli: Cli, env: dict[str, str], tmp_path: Path, url: str, *flags: str) -> dict:
    job = write_job(tmp_path / f"job-{len(jobs_in(env))}.json", [visit(KNOWN[0], url)])
    before = set(jobs_in(env))
    res = cli("submit", str(job), "--gpu-delay", "0", *flags)
    (job_id,) = set(jobs_in(env)) - before
    assert res.stdout.strip() == job_id
    (record,) = results_of(env, job_id)
    return record


def fake_resolver(monkeypatch: pytest.MonkeyPatch, name: str, answer: Any) -> list[str]:
    """Answer lookups of `name` with answer(n) for the n-th lookup (an address, or an
    exception to raise); every other name goes to the real resolver. Returns the log."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = answer(len(asked))
        if isinstance(address, BaseException):
            raise address
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_dns_rebinding_reaches_no_private_address(cli, env, tmp_path, raw, monkeypatch):
    # The first lookup says public, every later one says loopback (where the server is).
    asked = fake_resolver(monkeypatch, "rebind.test", lambda n: PUBLIC if n == 1 else "127.0.0.1")
    url = raw.url("/image", host="rebind.test")
    record = submit_one(cli, env, tmp_path, url, "--block-private-networks")
    assert record["error_code"] == "blocked_address", record
    assert "127.0.0.1" in record["error"]
    assert len(asked) >= 2  # the second answer was the one that mattered
    assert (raw.connections, raw.received) == (0, 0)


def test_a_name_resolving_to_loopback_gets_not_one_byte(cli, env, tmp_path, raw):
    url = raw.url("/image", host="localhost")
    record = submit_one(cli, env, tmp_path, url, "--block-private-networks")
    assert record["error_code"] == "blocked_address", record
    assert (raw.connections, raw.received) == (0, 0)
    # Without the flag the same URL is fetched from the same server.
    record = submit_one(cli, env, tmp_path, url)
    assert record["status"] == "ok", record
    assert raw.connections == 1


@pytest.mark.parametrize("flags", [(), ("--block-private-networks",)])
def test_a_name_that_does_not_exist_is_dns_error_and_not_retried(cli, env, tmp_path, flags):
    # RFC 2606: .invalid never resolves, no network needed.
    record = submit_one(cli, env, tmp_path, "http://retailpulse-test.invalid/shelf.png", *flags)
    assert record["error_code"] == "dns_error", record
    assert "retailpulse-test.invalid" in record["error"]
    # A box with no reachable resolver at all answers "temporary failure" (retried once).
    assert record["attempts"] == (2 if "Temporary failure" in record["error"] else 1), record


def test_a_temporary_resolver_failure_is_retried_once(cli, env, tmp_path, monkeypatch):
    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    asked = fake_resolver(monkeypatch, "flaky-dns.test", lambda n: again)
    record = submit_one(cli, env, tmp_path, "http://flaky-dns.test/shelf.png", "--retries", "3")
    assert record["error_code"] == "dns_error", record
    assert "Temporary failure" in record["error"]
    assert record["attempts"] == 2
    assert len(asked) == 2
