"""Everything this package adds to the app, in one call from the app factory:

security = Security.build(settings.security, store, block_private=..., log=log)
security.install(app, store, queue_counts=dispatcher.counts)
...
security.close()   # at shutdown: last-used times written, callbacks stopped
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import Response

from retailpulse_cli.config.security_settings import SecuritySettings
from retailpulse_cli.errors import RetailpulseError
from retailpulse_cli.server import dashboard
from retailpulse_cli.server.errors import ApiError
from retailpulse_cli.server.metrics import Metrics
from retailpulse_cli.server.security import callbacks, dependencies, jwt_auth
from retailpulse_cli.server.security.authenticate import Authenticator
from retailpulse_cli.server.security.gate import Gate, GateMiddleware
from retailpulse_cli.server.security.rate_limit import ApiRateLimiter, parse_rate
from retailpulse_cli.server.security.roles import Action, Principal
from retailpulse_cli.server.security.tokens import TokenVerifier, tokens_path
from retailpulse_cli.storage.job_dir import Job, JobStore

CALLBACK_KEY = "callback_url"  # in a submit's body, and in meta.json


@dataclass
class Security:
    settings: SecuritySettings
    authenticator: Authenticator
    limiter: ApiRateLimiter
    metrics: Metrics
    callbacks: callbacks.CallbackSender | None
    block_private: bool
    log: Callable[[str], None]  # the server's log (callbacks' outcomes)
    access_log: Callable[[str], None]  # one line per request (--verbose), or nothing

    @classmethod
    def build(
        cls,
        settings: SecuritySettings,
        store: JobStore,
        *,
        block_private: bool,
        log: Callable[[str], None],
        access_log: Callable[[str], None] = lambda _line: None,
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
        limiter = ApiRateLimiter(parse_rate(settings.rate()), settings.api_burst)
        return cls(
            settings, authenticator, limiter, metrics, sender, block_private, log, access_log
        )

    def install(
        self,
        app: FastAPI,
        store: JobStore,
        *,
        queue_counts: Callable[[], dict[str, int]],
    ) -> None:
        gate = Gate(self.authenticator, self.limiter, self.metrics, self.access_log)
        app.add_middleware(GateMiddleware, gate=gate)
        dependencies.install(app)
        app.include_router(dashboard.router(store, self.authenticator))
        self.metrics.watch_jobs(store, queue_counts)
        metrics = self.metrics

        @app.get("/metrics", include_in_schema=False)
        def prometheus(_user: Principal = Depends(dependencies.require(Action.READ))) -> Response:
            body, content_type = metrics.exposition()
            return Response(body, media_type=content_type)

    def callback_meta(self, body: bytes) -> dict[str, Any]:
        """`callback_url` from a submit's body, checked, for meta.json; 400 if unusable."""
        if b"callback_url" not in body:  # most submits: no second parse
            return {}
        try:  # the job-file validator has read it already: valid JSON
            doc = json.loads(body)
        except ValueError:
            return {}
        url = doc.get(CALLBACK_KEY) if isinstance(doc, dict) else None
        if url is None:
            return {}
        if self.callbacks is None:
            problem: str | None = (
                "callbacks are off: the server runs without --callback-secret-file"
            )
        else:
            problem = callbacks.check_url(url, block_private=self.block_private)
        if problem is not None:
            raise ApiError(
                400, "invalid_callback_url", f"{CALLBACK_KEY}: {problem}", "$.callback_url"
            )
        return {CALLBACK_KEY: url}

    def job_ended(self, job: Job) -> None:
        """A job reached its end (completed, failed, cancelled): send its callback, if it
        asked for one. Called on the job's runner thread: only queues the delivery."""
        if self.callbacks is None:
            return
        from retailpulse_cli.jobs import read

        try:
            url = job.meta().get(CALLBACK_KEY)
            if isinstance(url, str) and url:
                self.callbacks.send(url, job.id, dict(read.read_status(job)))
        except RetailpulseError as exc:  # the job's files went bad: no callback, say why
            self.log(f"callback for job {job.id} not sent: {exc.message}")

    def close(self) -> None:
        if self.authenticator.tokens is not None:
            self.authenticator.tokens.flush()
        if self.callbacks is not None:
            self.callbacks.close()
