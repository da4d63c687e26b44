"""URL or local path -> bytes, with timeouts, retries, size caps and safety checks.

Failures are data: `FetchFailure` carries a stable code (see README, "Error codes"), a
message with any credentials redacted, and how many attempts were made. Connections keep
the image's deadline from the name lookup to the last body byte (`connections`, `lookup`).
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit
from urllib.request import url2pathname

import requests
import urllib3

from retailpulse_cli import __version__
from retailpulse_cli.config.settings import Settings
from retailpulse_cli.processing.connections import Call, GuardedAdapter, Watchdog, guarded
from retailpulse_cli.processing.fetch_failure import FetchFailure as FetchFailure
from retailpulse_cli.processing.fetch_failure import blocked, dns_failure
from retailpulse_cli.processing.lookup import is_blocked_address, resolve
from retailpulse_cli.text.redaction import (
    redact as redact,  # re-exported: runner imports both from here
)
from retailpulse_cli.text.redaction import scrub as scrub

# Web servers refuse request lines over 8-16 KB (414) and paths stop at 4 KB; a longer
# "URL" is a mistake or an attack, and each image in flight held several copies of it
# (a 200 MB job file of 1 MB URLs peaked at 812 MB).
MAX_URL_LENGTH = 16_384
DNS_ATTEMPTS = 2  # a temporary resolver failure gets one more try, not --retries
_BODY_PIECE = 16 * 1024 * 1024  # the most a body read holds twice (see _read_all)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504}) | frozenset(range(505, 600))


class RetryLater(Exception):  # a request to the caller, not an error
    """Another attempt is due at `not_before` (monotonic); `tries` carries the state."""

    def __init__(self, not_before: float, tries: Tries, failure: FetchFailure) -> None:
        super().__init__(failure.message)
        self.not_before = not_before
        self.tries = tries
        self.failure = failure


@dataclass
class Tries:
    """One image's attempts so far and its network-time budget, kept across re-queues."""

    deadline: Deadline
    attempt: int = 0
    started: float = field(default_factory=time.monotonic)


class Deadline:
    """The per-image budget of network time (--timeout). Waits we impose ourselves (the
    per-host rate, Retry-After, back-off between attempts) move it forward: politeness
    must not turn a healthy image into a timeout."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def extend(self, seconds: float) -> None:
        self.at += seconds


@dataclass
class _Host:
    """Per-host politeness: a connection cap, an optional request rate, and 429 back-off."""

    slots: threading.BoundedSemaphore
    interval: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_start: float = 0.0

    def reserve_start(self) -> float:
        """Book the next start time allowed by the rate and any Retry-After; return the wait."""
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
            return start - now

    def hold_off(self, seconds: float) -> None:
        with self.lock:
            self.next_start = max(self.next_start, time.monotonic() + seconds)


class Fetcher:
    """Downloads images. One instance per run: one connection pool shared by all workers."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.watchdog = Watchdog()
        self.session = requests.Session()
        adapter = GuardedAdapter(
            pool_connections=16, pool_maxsize=max(settings.downloads, 1), max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        ua = settings.user_agent or f"retailpulse/{__version__} (+shelf-photo measurement)"
        self.session.headers["User-Agent"] = ua
        # With trust_env, requests scans the environment for proxies and stats ~/.netrc on
        # every request: 20 % of the CPU per image in profiles. Keep it only when there is
        # something to find, so proxy settings and .netrc still work where they are used.
        self.session.trust_env = _environment_matters()
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()
        self._rng = random.Random()

    def close(self) -> None:
        self.session.close()

    def fetch(self, url: str, base_dir: Path, tries: Tries | None = None) -> tuple[bytes, int]:
        """Return (body, attempts); raise FetchFailure (with `.attempts` set) when it failed
        for good, or RetryLater when another attempt is due after a pause. The pause is not
        slept here: the caller queues the image, so a worker never idles in a back-off."""
        tries = tries or Tries(Deadline(self.settings.timeout))
        if len(url) > MAX_URL_LENGTH:  # before any copy: requests alone makes several
            raise FetchFailure(
                "invalid_url",
                f"the URL is {len(url):,} characters long, longer than the "
                f"{MAX_URL_LENGTH:,} any server or file system takes",
            )
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise FetchFailure("invalid_url", f"not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            return self._fetch_http(url, tries)
        if scheme == "file" or scheme == "" or (len(scheme) == 1 and url[1:2] == ":"):
            return self._read_local(url, parts, base_dir), 1
        raise FetchFailure(
            "unsupported_scheme", f"scheme {scheme!r} is not supported (use http, https or a file)"
        )

    # -- local files ---------------------------------------------------------------------

    def _read_local(self, url: str, parts: SplitResult, base_dir: Path) -> bytes:
        if not self.settings.allow_local_files:
            raise FetchFailure(
                "local_files_disabled", "local files are turned off (--no-local-files)"
            )
        if parts.scheme.lower() == "file":
            if parts.netloc not in ("", "localhost"):
                raise FetchFailure(
                    "unsupported_scheme", redact(f"file URL on host {parts.netloc!r}")
                )
            path = Path(url2pathname(parts.path))
        else:
            path = Path(url)  # no ~ expansion: a job file is not a shell
        if not path.is_absolute():
            path = base_dir / path
        shown = redact(str(path))  # a path is a string derived from the URL too
        if "\0" in str(path):  # no file name holds one; open() would raise ValueError
            raise FetchFailure("invalid_url", f"a file path cannot hold a NUL byte: {shown}")
        try:
            with path.open("rb") as fh:
                data = fh.read(self.settings.max_bytes + 1)
        except FileNotFoundError:
            raise FetchFailure("file_not_found", f"no such file: {shown}") from None
        except IsADirectoryError:
            raise FetchFailure("file_not_found", f"is a directory: {shown}") from None
        except OSError as exc:
            raise FetchFailure("file_unreadable", f"cannot read {shown}: {exc.strerror}") from None
        if len(data) > self.settings.max_bytes:
            raise FetchFailure("too_large", f"file is over --max-bytes {self.settings.max_bytes:,}")
        return data

    # -- HTTP ----------------------------------------------------------------------------

    def _fetch_http(self, url: str, tries: Tries) -> tuple[bytes, int]:
        s = self.settings
        tries.attempt += 1
        try:
            return self._follow(url, tries.deadline), tries.attempt
        except FetchFailure as failure:
            failure.attempts = tries.attempt
            if not failure.retryable or tries.attempt > s.retries or self.stop.is_set():
                raise
            if failure.code == "dns_error" and tries.attempt >= DNS_ATTEMPTS:
                raise
            if tries.deadline.remaining() < 0.05:
                raise  # the network-time budget is spent: another attempt cannot help
            pause = min(s.backoff_max, s.backoff * 2 ** (tries.attempt - 1))
            pause *= 0.5 + self._rng.random()  # jitter: spread out a thundering herd
            if failure.retry_after is not None:
                pause = max(pause, failure.retry_after)
            tries.deadline.extend(pause)  # waiting is not network time
            raise RetryLater(time.monotonic() + pause, tries, failure) from None

    def _host(self, parts: SplitResult) -> _Host:
        key = f"{parts.scheme}://{parts.netloc.rpartition('@')[2].lower()}"
        with self._hosts_lock:
            host = self._hosts.get(key)
            if host is None:
                rate = self.settings.rate
                host = _Host(
                    slots=threading.BoundedSemaphore(max(1, self.settings.per_host)),
                    interval=1.0 / rate if rate > 0 else 0.0,
                )
                self._hosts[key] = host
            return host

    def _follow(self, url: str, deadline: Deadline) -> bytes:
        """One attempt: request, following redirects by hand so each hop is checked."""
        seen = {url}
        current = url
        for _hop in range(self.settings.max_redirects + 1):
            outcome = self._request_once(current, deadline)
            if isinstance(outcome, bytes):
                return outcome
            try:
                nxt = urljoin(current, outcome)
                scheme = urlsplit(nxt).scheme.lower()
            except ValueError:
                raise FetchFailure(
                    "invalid_url", "redirect to a URL that cannot be parsed"
                ) from None
            if scheme not in ("http", "https"):
                raise FetchFailure(
                    "redirect_refused",
                    f"redirect to a {scheme or 'relative'}: URL refused ({redact(nxt)})",
                )
            if nxt in seen:
                raise FetchFailure("redirect_loop", f"redirect loop at {redact(nxt)}")
            seen.add(nxt)
            current = nxt
        raise FetchFailure(
            "too_many_redirects", f"more than {self.settings.max_redirects} redirects"
        )

    def _request_once(self, url: str, deadline: Deadline) -> bytes | str:
        """GET one URL: the body, or the Location of a redirect."""
        parts = urlsplit(url)
        if self.settings.block_private_networks:
            self._check_resolves_public(parts, deadline)
        host = self._host(parts)
        wait = host.reserve_start()
        if wait > 0:
            if self.stop.wait(wait):
                raise FetchFailure("interrupted", "stopped before the request was sent")
            deadline.extend(wait)
        with host.slots:
            return self._get(url, parts, host, deadline)

    def _get(self, url: str, parts: SplitResult, host: _Host, deadline: Deadline) -> bytes | str:
        s = self.settings
        remaining = deadline.remaining()
        if remaining <= 0:
            raise FetchFailure("timeout", f"gave up after --timeout {s.timeout:g}s")
        timeout = (min(s.connect_timeout, remaining), min(s.read_timeout, remaining))
        call = Call(
            deadline,
            self.watchdog,
            block_private=s.block_private_networks,
            stop=self.stop,
            limit=s.timeout,
        )
        with guarded(call):  # the watchdog covers every phase until the response is closed
            try:
                r = self.session.get(url, stream=True, timeout=timeout, allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                if deadline.passed():
                    raise FetchFailure(
                        "timeout", f"no response within --timeout {s.timeout:g}s"
                    ) from None
                raise _classify_request_error(exc, url) from None
            except ValueError as exc:  # the URL, or a redirect's Location (requests parses
                # it even when not following), that urllib3 or the IDNA codec cannot take
                raise FetchFailure("invalid_url", scrub(f"not a valid URL: {exc}", url)) from None
            try:
                if r.is_redirect:
                    _drain(r)
                    return str(r.headers["location"])
                if r.status_code != 200:
                    _drain(r)
                    raise _http_failure(r, host)
                return self._read_body(r, url, deadline)
            finally:
                r.close()

    def _read_body(self, r: requests.Response, url: str, deadline: Deadline) -> bytes:
        s = self.settings
        declared = r.headers.get("content-length")
        length = int(declared) if declared and declared.isdigit() else None
        if length is not None and length > s.max_bytes:
            raise FetchFailure(
                "too_large", f"Content-Length {length:,} is over --max-bytes {s.max_bytes:,}"
            )
        try:
            data = _read_all(r, length, s.max_bytes)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if deadline.passed():
                raise FetchFailure(
                    "timeout", f"body not received within --timeout {s.timeout:g}s"
                ) from None
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                raise FetchFailure(
                    "timeout", f"no data for {s.read_timeout:g}s", retryable=True
                ) from None
            raise FetchFailure(
                "truncated_body",
                scrub(f"connection broken while reading the body: {_reason(exc)}", url),
                retryable=True,
            ) from None
        if deadline.passed():
            raise FetchFailure("timeout", f"body not received within --timeout {s.timeout:g}s")
        if len(data) > s.max_bytes:
            raise FetchFailure("too_large", f"body is over --max-bytes {s.max_bytes:,}")
        if not data:  # e.g. the server closed the connection in the middle of its headers
            raise FetchFailure("empty_body", "HTTP 200 with an empty body", retryable=True)
        if length is not None and len(data) < length and "content-encoding" not in r.headers:
            raise FetchFailure(
                "truncated_body",
                f"got {len(data):,} of {length:,} bytes (Content-Length)",
                retryable=True,
            )
        return data

    def _check_resolves_public(self, parts: SplitResult, deadline: Deadline) -> None:
        hostname = parts.hostname or ""
        port = parts.port or 443
        infos = resolve(
            hostname,
            port,
            proto=socket.IPPROTO_TCP,
            deadline=deadline,
            stop=self.stop,
            limit=self.settings.timeout,
        )
        for info in infos:
            if is_blocked_address(str(info[4][0])):
                raise blocked(hostname, str(info[4][0]))


def guarded_session() -> requests.Session:
    """A session whose connections go through the guard of the block they are used in
    (`guarded_request`); for other outgoing calls than image downloads (callbacks)."""
    session = requests.Session()
    adapter = GuardedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = _environment_matters()
    return session


@contextlib.contextmanager
def guarded_request(watchdog: Watchdog, seconds: float, *, block_private: bool) -> Iterator[None]:
    """Requests on a `guarded_session` in this block connect only to addresses the policy
    allows (checked after resolving, so a name that turns private later is caught) and
    are cut when `seconds` have passed. Raises FetchFailure("blocked_address") if not."""
    call = Call(
        Deadline(seconds),
        watchdog,
        block_private=block_private,
        stop=threading.Event(),
        limit=seconds,
    )
    with guarded(call):
        yield


def _environment_matters() -> bool:
    import os
    import urllib.request

    if urllib.request.getproxies() or any(k.lower() == "no_proxy" for k in os.environ):
        return True
    netrc = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    return os.path.exists(netrc) or any(
        k in os.environ for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    )


def _drain(r: requests.Response, limit: int = 64 * 1024) -> None:
    """Read a small error or redirect body so its connection can be reused: a half-broken
    server answering thousands of 404s should not cost a new TCP connection each."""
    declared = r.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= limit:
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
            r.raw.read(limit + 1, decode_content=False)


def _read_all(r: requests.Response, length: int | None, max_bytes: int) -> bytes:
    """The body (up to max_bytes + 1 bytes), held once: urllib3's read(amt) with decoding
    on gathers the body in a second buffer, twice the body at the peak.

    With a Content-Length and no content-encoding, http.client reads straight into one
    bytes object of that size (one call). Otherwise io.BufferedReader.read(n) allocates
    one bytes object of n, has the raw stream fill it in big pieces (the untouched pages of
    the allowance cost no memory) and trims it: the peak is the body plus one piece.
    Reading in small chunks from many threads measured about half as fast (GIL
    contention), see README "Performance"."""
    if length is not None and "content-encoding" not in r.headers:
        data: bytes = r.raw.read(length, decode_content=False)
        return data
    return io.BufferedReader(_RawBody(r), buffer_size=64 * 1024).read(max_bytes + 1)


class _RawBody(io.RawIOBase):
    """The response body as a raw stream, decoded only when it is content-encoded."""

    def __init__(self, r: requests.Response) -> None:
        super().__init__()
        self._raw = r.raw
        self._decode = "content-encoding" in r.headers

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(min(len(buffer), _BODY_PIECE), decode_content=self._decode)
        buffer[: len(data)] = data
        return len(data)


def _reason(exc: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 error, without the URL."""
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if m:
        return m.group(0).strip()
    for marker in ("IncompleteRead", "Connection aborted", "RemoteDisconnected", "timed out"):
        if marker in text:
            return marker
    return type(exc).__name__


def _classify_request_error(exc: requests.exceptions.RequestException, url: str) -> FetchFailure:
    gai = _gaierror_in(exc)
    if gai is not None:  # resolved by urllib3 itself (a SOCKS proxy's name), not by Call
        return dns_failure(urlsplit(url).hostname or "", gai)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return FetchFailure("timeout", "connect timed out", retryable=True)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return FetchFailure(
            "timeout", "no response headers before the read timeout", retryable=True
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return FetchFailure("tls_error", scrub(f"TLS error: {_reason(exc)}", url))
    if isinstance(exc, requests.exceptions.ConnectionError):
        return FetchFailure(
            "connection_error", scrub(f"connection failed: {_reason(exc)}", url), retryable=True
        )
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
        return FetchFailure("invalid_url", scrub(f"not a valid URL: {exc}", url))
    return FetchFailure(
        "connection_error", scrub(f"request failed: {_reason(exc)}", url), retryable=True
    )


def _gaierror_in(exc: BaseException) -> socket.gaierror | None:
    """The resolver error under requests' and urllib3's wrappers, if that is the cause."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(seen) < 8:
        item = todo.pop()
        if isinstance(item, socket.gaierror):
            return item
        if isinstance(item, BaseException) and item not in seen:
            seen.append(item)
            todo += [getattr(item, "reason", None), item.__cause__, item.__context__]
            todo += list(item.args[:1])
    return None


def _http_failure(r: requests.Response, host: _Host) -> FetchFailure:
    status = r.status_code
    reason = r.reason or ""
    if 500 <= status <= 599:
        failure = FetchFailure("http_5xx", f"HTTP {status} {reason}".strip(), retryable=True)
    else:
        failure = FetchFailure(
            f"http_{status}",
            f"HTTP {status} {reason}".strip(),
            retryable=status in RETRYABLE_STATUS,
        )
    if status in (429, 503):
        retry_after = _retry_after(r.headers.get("retry-after"))
        if retry_after is not None:
            failure.retry_after = retry_after
            host.hold_off(retry_after)  # slow the whole host down, not just this image
        elif status == 429:
            host.hold_off(1.0)
    return failure


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), 300.0)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), 300.0))
