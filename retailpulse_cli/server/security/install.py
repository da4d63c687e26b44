"""Everything this package adds to the app, in one call from the app factory:

security = Security.build(settings.security, store, block_private=..., log=log)
security.install(app, store, queue_counts=dispatcher.counts)
...
security.close()   # at shutdown: last-used times written, callbacks stopped
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import Response

from retailpulse_cli.errors import ConfigError
from retailpulse_cli.server import dashboard
from retailpulse_cli.server.metrics import Metrics
from retailpulse_cli.server.security import callbacks, dependencies, jwt_auth
from retailpulse_cli.server.security.authenticate import Authenticator
from retailpulse_cli.server.security.gate import Gate, GateMiddleware
from retailpulse_cli.server.security.rate_limit import ApiRateLimiter, parse_rate
from retailpulse_cli.server.security.roles import Action, Principal
from retailpulse_cli.server.security.settings import SecuritySettings
from retailpulse_cli.server.security.tokens import TokenVerifier, tokens_path
from retailpulse_cli.storage.job_dir import JobStore


def check_host(host: str, settings: SecuritySettings) -> None:
    """--no-auth only on loopback: an open server on a network is anyone's server."""
    if settings.no_auth and not is_loopback(host):
        raise ConfigError(
            f"--no-auth with --host {host}: an open server may only listen on loopback",
            hint="drop --no-auth and give clients tokens (`retailpulse token create`), "
            "or listen on 127.0.0.1",
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Security:
    settings: SecuritySettings
    authenticator: Authenticator
    limiter: ApiRateLimiter
    metrics: Metrics
    callbacks: callbacks.CallbackSender | None
    block_private: bool

    @classmethod
    def build(
        cls,
        settings: SecuritySettings,
        store: JobStore,
        *,
        block_private: bool,
        log: Callable[[str], None],
    ) -> Security:
        """Read the key and secret files (ConfigError: one line, exit 2, before listening)."""
        verifier = jwt_auth.from_files(
            secret_file=settings.jwt_secret_file,
            public_key_file=settings.jwt_public_key,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
        authenticator = Authenticator(
            tokens=TokenVerifier(tokens_path(store.root)), jwt=verifier, open_mode=settings.no_auth
        )
        metrics = Metrics()
        sender = None
        if settings.callback_secret_file is not None:
            secret = callbacks.read_secret(settings.callback_secret_file)

            def count(delivered: bool) -> None:
                metrics.callbacks.labels("delivered" if delivered else "failed").inc()

            sender = callbacks.CallbackSender(
                secret, block_private=block_private, log=log, on_end=count
            )
        limiter = ApiRateLimiter(parse_rate(settings.api_rate), settings.api_burst)
        return cls(settings, authenticator, limiter, metrics, sender, block_private)

    def install(
        self,
        app: FastAPI,
        store: JobStore,
        *,
        queue_counts: Callable[[], dict[str, int]],
        access_log: Callable[[str], None],
    ) -> None:
        gate = Gate(self.authenticator, self.limiter, self.metrics, access_log, app.router.routes)
        app.add_middleware(GateMiddleware, gate=gate)
        dependencies.install(app)
        app.include_router(dashboard.router(store, self.authenticator))
        self.metrics.watch_jobs(store, queue_counts)
        metrics = self.metrics

        @app.get("/metrics", include_in_schema=False)
        def prometheus(_user: Principal = Depends(dependencies.require(Action.READ))) -> Response:
            body, content_type = metrics.exposition()
            return Response(body, media_type=content_type)

    def callback_problem(self, url: Any) -> str | None:
        """Why `callback_url` cannot be accepted (a 400 message), or None."""
        if self.callbacks is None:
            return "callbacks are off: the server was started without --callback-secret-file"
        problem = callbacks.check_url(url, block_private=self.block_private)
        return f"callback_url {problem}" if problem else None

    def job_ended(self, job_id: str, status: dict[str, Any], callback_url: object) -> None:
        """A job reached its end: send its callback, if it asked for one."""
        if self.callbacks is not None and isinstance(callback_url, str) and callback_url:
            self.callbacks.send(callback_url, job_id, status)

    def close(self) -> None:
        if self.authenticator.tokens is not None:
            self.authenticator.tokens.flush()
        if self.callbacks is not None:
            self.callbacks.close()
