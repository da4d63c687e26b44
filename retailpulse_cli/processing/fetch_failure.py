"""How a download fails: a stable code (README, "Error codes"), a message with any
credentials redacted, and whether another attempt may help."""

from __future__ import annotations

import socket


class FetchFailure(Exception):
    """A download that failed for good; `retryable` says whether another attempt may help."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after: float | None = None
        self.attempts = 1


def blocked(hostname: str, address: str) -> FetchFailure:
    return FetchFailure(
        "blocked_address",
        f"{hostname} resolves to {address}, a private/loopback/link-local address "
        "(--block-private-networks)",
    )


def dns_failure(hostname: str, exc: socket.gaierror) -> FetchFailure:
    """EAI_AGAIN ("temporary failure") may pass and is retried (once, see DNS_ATTEMPTS);
    "name or service not known" and the rest are answers, not accidents."""
    return FetchFailure(
        "dns_error",
        f"cannot resolve {hostname}: {exc.strerror or exc}",
        retryable=exc.errno == socket.EAI_AGAIN,
    )


def invalid_host(hostname: str, reason: str) -> FetchFailure:
    """A host name no resolver can be asked about (a NUL, an empty or 64-byte label)."""
    return FetchFailure("invalid_url", f"not a valid host name {hostname!r}: {reason}")
