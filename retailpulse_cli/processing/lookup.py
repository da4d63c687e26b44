"""Name lookups bounded by the image's deadline (--timeout), and the address policy.

`socket.getaddrinfo` takes no timeout and cannot be cancelled: with a resolver that never
answers it blocks for the resolver's own timeouts times its attempts (90.6 s measured with
`--timeout 3 --retries 1`, issue 17). So lookups run in daemon threads, and a download
waits for the answer only until its deadline: a lookup still running then holds a lookup
thread, not a download slot, and never keeps the process from exiting. Lookups of the same
name at the same time share one answer, so a dead resolver costs a thread per name, not
one per image. Nothing is cached: each connection still resolves afresh and is pinned to
the address it checked (DNS rebinding, see `connections`).
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import queue
import socket
import threading
from typing import Any, Protocol

from retailpulse_cli.processing.fetch_failure import FetchFailure, dns_failure, invalid_host

MAX_LOOKUP_THREADS = 64  # names looked up at once; more wait their turn, within their deadline
_POLL = 0.25  # how often a download waiting for an answer checks for Ctrl-C

_Key = tuple[str, int, int, int, int]  # getaddrinfo's arguments


class Budget(Protocol):
    def remaining(self) -> float: ...


def is_blocked_address(address: str) -> bool:
    """Loopback, private, link-local (cloud metadata), CGNAT, multicast or unspecified."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
        or ip in ipaddress.ip_network("100.64.0.0/10")
    )


class _Lookups:
    """A pool of daemon threads calling getaddrinfo, grown on demand up to a cap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[_Key, concurrent.futures.Future[list[Any]]] = {}
        self._queue: queue.SimpleQueue[_Key] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0  # threads waiting for work that no queued lookup has claimed yet

    def submit(self, key: _Key) -> concurrent.futures.Future[list[Any]]:
        with self._lock:
            future = self._pending.get(key)
            if future is None:
                future = self._pending[key] = concurrent.futures.Future()
                if self._idle:
                    self._idle -= 1
                elif self._threads < MAX_LOOKUP_THREADS:
                    self._threads += 1
                    threading.Thread(target=self._work, name="rp-lookup", daemon=True).start()
                self._queue.put(key)
            return future

    def _work(self) -> None:
        while True:
            key = self._queue.get()
            try:
                answer, error = socket.getaddrinfo(*key), None
            except BaseException as exc:  # handed to whoever waits, if anyone still does
                answer, error = [], exc
            with self._lock:
                # Forgotten before it is answered: a lookup asked after this answer is a
                # new lookup (a second answer may differ, and must be checked again).
                future = self._pending.pop(key)
                self._idle += 1
            if error is None:
                future.set_result(answer)
            else:
                future.set_exception(error)


_LOOKUPS = _Lookups()


def _is_numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def resolve(
    host: str,
    port: int,
    family: int = 0,
    kind: int = 0,
    proto: int = 0,
    *,
    deadline: Budget,
    stop: threading.Event,
    limit: float,
) -> list[Any]:
    """getaddrinfo's answer, or a FetchFailure: dns_error, invalid_url, or timeout once
    `deadline` passes (`limit` is the --timeout it stands for, for the message)."""
    if not host or "\0" in host:
        raise invalid_host(host, "empty, or holds a NUL byte")
    if _is_numeric(host):  # no resolver involved: nothing to wait for
        return socket.getaddrinfo(host, port, family, kind, proto)
    future = _LOOKUPS.submit((host, port, family, kind, proto))
    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise FetchFailure(
                "timeout", f"no answer from the resolver for {host} within --timeout {limit:g}s"
            )
        try:
            return future.result(timeout=min(remaining, _POLL))
        except concurrent.futures.TimeoutError:
            if stop.is_set():
                raise FetchFailure("interrupted", "stopped while looking up the host") from None
        except socket.gaierror as exc:
            raise dns_failure(host, exc) from None
        except UnicodeError as exc:  # the IDNA codec: an empty label, or one over 63 bytes
            reason = "a label is empty, longer than 63 characters or not valid IDNA"
            raise invalid_host(host, reason) from exc
