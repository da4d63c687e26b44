"""Running the service: bind (loopback only), start the queue, serve HTTP with uvicorn,
and on SIGTERM or Ctrl-C drain: refuse new jobs (503, readyz not ready) while running
jobs reach a safe point within --grace seconds, then stop serving and return.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from retailpulse_cli.config.serve_settings import ServeSettings
from retailpulse_cli.errors import ExitCode
from retailpulse_cli.jobs.dispatcher import Dispatcher
from retailpulse_cli.server.app import create_app
from retailpulse_cli.server.planner import OptionPlanner
from retailpulse_cli.server.security.gate import write_access_line
from retailpulse_cli.server.security.install import Security
from retailpulse_cli.server.state import Service
from retailpulse_cli.storage.job_dir import JobStore
from retailpulse_cli.ui import output as console

HTTP_DRAIN_SECONDS = 2.0  # after the jobs: open connections get this long to finish


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (the kernel says which)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def url_of(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _LogLines(logging.Handler):
    """uvicorn's warnings (bad requests, closed connections) as our own stderr lines."""

    def emit(self, record: logging.LogRecord) -> None:
        console.info_line(f"http: {record.getMessage()}")


class _Server(uvicorn.Server):
    """uvicorn, with our start line and our way of stopping (see module doc)."""

    def __init__(self, config: uvicorn.Config, dispatcher: Dispatcher, grace: float, url: str):
        super().__init__(config)
        self.dispatcher = dispatcher
        self.grace = grace
        self.url = url
        self._draining = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            console.info_line(f"listening on {self.url}")

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining:  # a second signal: quit now; the next start resumes the jobs
            os._exit(int(ExitCode.TERMINATED if sig == signal.SIGTERM else ExitCode.INTERRUPTED))
        self._draining = True
        threading.Thread(target=self._drain, args=(sig,), name="rp-drain", daemon=True).start()

    def _drain(self, sig: int) -> None:
        name = signal.Signals(sig).name
        console.info_line(
            f"{name}: stopping; new jobs are refused, running ones stop at a safe point "
            f"(up to {self.grace:g}s; again to quit now)"
        )
        if not self.dispatcher.stop(name, self.grace):
            console.info_line(
                f"jobs still running after {self.grace:g}s; the next start resumes them"
            )
        self.should_exit = True


def _security(
    settings: ServeSettings, store: JobStore, log: Callable[[str], None], verbose: bool
) -> Security:
    """Tokens, JWT keys, limits, callbacks (server/security/): the key files are read now,
    so a bad one is one line and exit 2 before any job is touched."""
    return Security.build(
        settings.security,
        store,
        block_private=not settings.allow_private_networks,
        log=log,
        access_log=write_access_line if verbose else (lambda _line: None),
    )


def run(
    settings: ServeSettings,
    planner: OptionPlanner,
    store: JobStore,
    sock: socket.socket,
    *,
    engine: Any = None,
    quiet: bool = False,
    verbose: bool = False,
) -> None:
    """Serve on `sock` (bound first: a port in use fails before any job is touched) until
    stopped by a signal."""
    log = (lambda _line: None) if quiet else console.info_line
    security = _security(settings, store, log, verbose)
    dispatcher = Dispatcher(
        store,
        planner,
        concurrent_jobs=settings.concurrent_jobs,
        max_queued=settings.max_queued_jobs,
        max_queued_per_user=settings.security.queue_share(settings.max_queued_jobs),
        on_end=security.job_ended,
        log=log,
        engine=engine,
    )
    recovered = dispatcher.recover()
    if recovered:
        console.info_line(f"{recovered} job(s) left queued or interrupted: queued again")
    dispatcher.start()
    app = create_app(Service(store, dispatcher, settings, base_dir=Path.cwd(), security=security))
    handler = _LogLines(logging.INFO if verbose else logging.WARNING)
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(handler.level)
        logger.propagate = False
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,  # the gate writes the access lines (route, user; never a token)
        lifespan="off",
        timeout_graceful_shutdown=int(HTTP_DRAIN_SECONDS),
        server_header=False,
    )
    server = _Server(config, dispatcher, settings.grace, url_of(settings.host, sock))
    try:
        server.run(sockets=[sock])
    finally:
        security.close()
    console.info_line("stopped")
