"""`--timeout` holds for every response shape (issue 9, finding 1): a server that trickles
its status line, its headers or its body a byte per 0.2 s never trips a read timeout, so
only the per-image deadline can stop it, whether the body is framed by Content-Length
(keep-alive or `Connection: close`), chunked, or read until close (HTTP/1.0), and after a
redirect. Each runs the real CLI against a raw-socket server on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import KNOWN, Cli, jobs_in, results_of, visit, write_job
from .rawserver import RawServer

TIMEOUT = 2.0
GRACE = 1.5  # the watchdog sweeps every 0.25 s; the rest is start-up and slack under load


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    srv = RawServer().start()
    yield srv
    srv.stop()


def submit_one(cli: Cli, env: dict[str, str], tmp_path: Path, url: str) -> tuple[dict, float]:
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], url)])
    t0 = time.monotonic()
    res = cli("submit", str(job), "--gpu-delay", "0", "--timeout", f"{TIMEOUT:g}")
    wall = time.monotonic() - t0
    (job_id,) = jobs_in(env)
    assert res.stdout.strip() == job_id
    (record,) = results_of(env, job_id)
    return record, wall


@pytest.mark.parametrize(
    "shape",
    [
        "/head-trickle",  # status line and headers a byte at a time
        "/close-trickle",  # Content-Length + Connection: close
        "/chunked-trickle",  # chunked + Connection: close
        "/http10-trickle",  # no Content-Length, read until close
        "/keepalive-trickle",  # Content-Length, keep-alive: the one shape cut before too
        "/redirect-trickle",  # a 302 whose target trickles
    ],
)
def test_timeout_holds_for_every_response_shape(cli, env, tmp_path, raw: RawServer, shape):
    record, wall = submit_one(cli, env, tmp_path, raw.url(shape))
    assert record["error_code"] == "timeout", record
    assert wall < TIMEOUT + GRACE, f"{shape}: the worker was held {wall:.1f}s"


def test_a_fast_image_from_the_same_server_is_measured(cli, env, tmp_path, raw: RawServer):
    # The guard must not get in the way of an ordinary response.
    record, wall = submit_one(cli, env, tmp_path, raw.url("/image"))
    assert record["status"] == "ok", record
    assert (record["width"], record["height"]) == (64, 48)
    assert wall < TIMEOUT


def test_timeout_holds_during_the_tls_handshake(cli, env, tmp_path):
    # The server answers the ClientHello with a TLS record a byte at a time. (A guard, not
    # a regression test: Python's ssl already bounds the whole handshake by the connect
    # timeout; this keeps the watchdog's duplicate socket honest.)
    srv = RawServer(tls_trickle=True).start()
    try:
        record, wall = submit_one(cli, env, tmp_path, f"https://127.0.0.1:{srv.port}/x.png")
    finally:
        srv.stop()
    assert record["error_code"] == "timeout", record
    assert wall < TIMEOUT + GRACE, f"the worker was held {wall:.1f}s"
