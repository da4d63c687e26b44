"""The image server: asyncio processes sharing one listening socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import socket
import time
from collections.abc import Sequence

from benchutil import HOST
from images import Blob

# -- the image server ------------------------------------------------------------------------

NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"


class _HttpResponder(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive responder: GET path -> prebuilt response bytes."""

    def __init__(self, responses: dict[bytes, bytes]) -> None:
        self.responses = responses
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.transport.close()
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            request_line, _, headers = head.partition(b"\r\n")
            parts = request_line.split(b" ")
            target = parts[1] if len(parts) >= 2 else b"/"
            response = self.responses.get(target.split(b"?", 1)[0], NOT_FOUND)
            self.transport.write(response)
            closing = b"connection: close" in headers.lower() or request_line.endswith(b"1.0")
            if closing:
                self.transport.close()
                return


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the benchmark dies, so no server outlives it."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _serve(listener: socket.socket, responses: dict[bytes, bytes]) -> None:
    _die_with_parent()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _HttpResponder(responses), sock=listener, backlog=1024
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class ImageServer:
    """Several processes accepting on one listening socket on 127.0.0.1 (port 0)."""

    def __init__(self, blobs: Sequence[Blob], processes: int) -> None:
        self.responses = {b.path.encode(): b.response() for b in blobs}
        self.processes = processes
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.port = 0

    def __enter__(self) -> ImageServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(1024)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        ctx = multiprocessing.get_context("fork")  # the children share the socket and images
        try:
            for i in range(self.processes):
                proc = ctx.Process(
                    target=_serve, args=(listener, self.responses), name=f"bench-server-{i}"
                )
                proc.daemon = True
                proc.start()
                self.procs.append(proc)
        finally:
            listener.close()  # the children hold their own copies
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    s.sendall(b"GET /tiny/0.png HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(16).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the image server did not start")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"
