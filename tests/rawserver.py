"""Adversarial HTTP servers on raw sockets (127.0.0.1, port 0), for what a well-behaved
server library cannot do: trickle a status line, headers or a body one byte at a time in
every framing (Content-Length with keep-alive or `Connection: close`, chunked, HTTP/1.0
read-until-close), and count every connection and byte it receives."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from .imageserver import image_bytes

BODY = image_bytes(64, 48, "png")  # real image bytes, trickled
STEP = 0.2  # seconds between two trickled bytes
GIVE_UP = 15.0  # a trickle ends here, so even a client without a deadline finishes


class RawServer:
    """One thread per connection; the path of the first request picks the shape. With
    `tls_trickle`, every connection instead answers the TLS ClientHello a byte at a time."""

    def __init__(self, *, tls_trickle: bool = False) -> None:
        self.tls_trickle = tls_trickle
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self.received = 0  # bytes, all connections
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def start(self) -> RawServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the accept thread, then close the socket. Closed under a thread blocked in
        accept(), the descriptor number goes to the next socket opened (the image server's,
        say), and a restarted accept() then takes that socket's connections: a stopped
        server answered 404 for the image server minutes later (issue 17, finding 17)."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # a blocked accept() returns at once
        self._thread.join(10)
        self.sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.tls_trickle:  # a handshake record that never completes
                    _trickle(conn, b"\x16\x03\x03\x40\x00" + b"\x02" * 0x4000)
                    return
                path = self._read_request(conn)
                if path is not None and path.startswith("/big/"):
                    _big(conn, path)
                elif path is not None:
                    SHAPES.get(path.split("?")[0], _not_found)(self, conn)
            except OSError:  # the client cut us off: that is what the tests want
                pass

    def _read_request(self, conn: socket.socket) -> str | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            with self._lock:
                self.received += len(chunk)
            data += chunk
        return data.split(b" ", 2)[1].decode("ascii", "replace")


def _trickle(conn: socket.socket, data: bytes) -> None:
    """Send `data` a byte per STEP, at most GIVE_UP seconds, then close."""
    end = time.monotonic() + GIVE_UP
    for i in range(len(data)):
        if time.monotonic() > end:
            return
        conn.sendall(data[i : i + 1])
        time.sleep(STEP)


def _head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def head_trickle(srv: RawServer, conn: socket.socket) -> None:
    """The status line and headers themselves, a byte at a time."""
    _trickle(conn, _head("HTTP/1.1 200 OK", f"Content-Length: {len(BODY)}") + BODY)


def close_trickle(srv: RawServer, conn: socket.socket) -> None:
    """Content-Length with `Connection: close`: http.client hands the socket to the
    response and forgets it on the connection."""
    conn.sendall(_head("HTTP/1.1 200 OK", f"Content-Length: {len(BODY)}", "Connection: close"))
    _trickle(conn, BODY)


def keepalive_trickle(srv: RawServer, conn: socket.socket) -> None:
    conn.sendall(_head("HTTP/1.1 200 OK", f"Content-Length: {len(BODY)}"))
    _trickle(conn, BODY)


def chunked_trickle(srv: RawServer, conn: socket.socket) -> None:
    """Chunked, and the connection closes after it (keep-alive chunked was always cut)."""
    conn.sendall(_head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Connection: close"))
    _trickle(conn, b"".join(b"1\r\n" + BODY[i : i + 1] + b"\r\n" for i in range(len(BODY))))


def http10_trickle(srv: RawServer, conn: socket.socket) -> None:
    """HTTP/1.0, no Content-Length: the body ends when the connection closes."""
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\n")
    _trickle(conn, BODY)


def redirect_to_trickle(srv: RawServer, conn: socket.socket) -> None:
    target = srv.url("/close-trickle")
    # Connection: close, as the server does close it: a client must not reuse it.
    conn.sendall(
        _head("HTTP/1.1 302 Found", f"Location: {target}", "Content-Length: 0", "Connection: close")
    )


def _big(conn: socket.socket, path: str) -> None:
    """/big/<framing>/<MB>: a large body at full speed, framed by Content-Length (`cl`),
    chunks of 1 MB (`chunked`) or the end of the connection (`close`)."""
    _, _, framing, mb = path.split("/")
    block, n = b"\xab" * (1 << 20), int(mb)
    if framing == "cl":
        conn.sendall(_head("HTTP/1.1 200 OK", f"Content-Length: {n << 20}"))
        pieces = [block] * n
    elif framing == "chunked":
        conn.sendall(_head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"))
        pieces = [b"100000\r\n" + block + b"\r\n"] * n + [b"0\r\n\r\n"]
    else:
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
        pieces = [block] * n
    for piece in pieces:
        conn.sendall(piece)


def image(srv: RawServer, conn: socket.socket) -> None:
    conn.sendall(
        _head("HTTP/1.1 200 OK", f"Content-Length: {len(BODY)}", "Connection: close") + BODY
    )


def _not_found(srv: RawServer, conn: socket.socket) -> None:
    conn.sendall(_head("HTTP/1.1 404 Not Found", "Content-Length: 0", "Connection: close"))


SHAPES: dict[str, Callable[[RawServer, socket.socket], None]] = {
    "/head-trickle": head_trickle,
    "/close-trickle": close_trickle,
    "/keepalive-trickle": keepalive_trickle,
    "/chunked-trickle": chunked_trickle,
    "/http10-trickle": http10_trickle,
    "/redirect-trickle": redirect_to_trickle,
    "/image": image,
}
