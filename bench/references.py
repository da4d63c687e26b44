"""Reference download clients, each run in its own process (`bench.py --_reference KIND`)."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchutil import HERE, HOST, REPO
from measure import run_measured

# -- reference clients (each runs in its own process: `bench.py --_reference KIND`) ----------


def _size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        size: tuple[int, int] = im.size
        return size


def _ref_sequential(urls: list[str], workers: int, decode: bool) -> Iterator[int]:
    import requests

    for url in urls:
        r = requests.get(url, timeout=30)
        r.raise_for_status()
        if decode:
            _size(r.content)
        yield len(r.content)


def _thread_pool(
    urls: list[str], workers: int, make: Callable[[], Any], get: Callable[[Any, str], bytes]
) -> Iterator[int]:
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()

    def one(url: str) -> int:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = make()
        data = get(client, url)
        _size(data)
        return len(data)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(one, urls)


def _ref_content(urls: list[str], workers: int, decode: bool) -> Iterator[int]:
    import requests

    def get(s: requests.Session, url: str) -> bytes:
        r = s.get(url, timeout=30)
        r.raise_for_status()
        return r.content

    return _thread_pool(urls, workers, requests.Session, get)


def _ref_one_read(urls: list[str], workers: int, decode: bool) -> Iterator[int]:
    import requests

    def get(s: requests.Session, url: str) -> bytes:
        with s.get(url, timeout=30, stream=True) as r:
            r.raise_for_status()
            data: bytes = r.raw.read()
            return data

    return _thread_pool(urls, workers, requests.Session, get)


def _ref_http_client(urls: list[str], workers: int, decode: bool) -> Iterator[int]:
    import http.client

    netloc = urlsplit(urls[0]).netloc

    def make() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(netloc, timeout=30)

    def get(conn: http.client.HTTPConnection, url: str) -> bytes:
        parts = urlsplit(url)
        conn.request("GET", f"{parts.path}?{parts.query}")
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        return data

    return _thread_pool(urls, workers, make, get)


def _ref_asyncio(urls: list[str], workers: int, decode: bool) -> Iterator[int]:
    """Raw HTTP/1.1 over asyncio streams, `workers` keep-alive connections."""
    parts = urlsplit(urls[0])
    host, port = parts.hostname or HOST, parts.port or 80
    requests_ = [
        f"GET {p.path}?{p.query} HTTP/1.1\r\nHost: {p.netloc}\r\n\r\n".encode()
        for p in map(urlsplit, urls)
    ]
    sizes: list[int] = []

    async def conn(todo: Iterator[bytes]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for req in todo:
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(head[:40].decode(errors="replace"))
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                if decode:
                    _size(body)
                sizes.append(len(body))
        finally:
            writer.close()

    async def main() -> None:
        todo = iter(requests_)
        await asyncio.gather(*(conn(todo) for _ in range(min(workers, len(requests_)))))

    asyncio.run(main())
    return iter(sizes)


REFERENCES: dict[str, tuple[str, Callable[[list[str], int, bool], Iterator[int]]]] = {
    "sequential": ("sequential requests.get loop (floor)", _ref_sequential),
    "content": ("thread pool, requests r.content", _ref_content),
    "one-read": ("thread pool, requests stream + one raw.read()", _ref_one_read),
    "http.client": ("thread pool, http.client keep-alive", _ref_http_client),
    "asyncio": ("asyncio raw HTTP (not a thread pool)", _ref_asyncio),
}


def reference_main(kind: str, url_file: Path, workers: int, decode: bool) -> None:
    """Child process: fetch every URL, print one JSON line with the timing."""
    urls = url_file.read_text(encoding="utf-8").split()
    _, fn = REFERENCES[kind]
    import requests  # noqa: F401  (imports outside the timed part, as for every client)
    from PIL import Image  # noqa: F401

    t_start = time.time()
    t0 = time.perf_counter()
    n = total = errors = 0
    first_error = ""
    try:
        for size in fn(urls, workers, decode):
            n += 1
            total += size
    except Exception as exc:  # report, do not hide: the parent shows it
        errors += 1
        first_error = f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - t0
    out = {
        "kind": kind,
        "images": n,
        "bytes": total,
        "elapsed": elapsed,
        "start": t_start,
        "end": t_start + elapsed,
        "errors": errors,
        "first_error": first_error,
    }
    sys.stdout.write(json.dumps(out) + "\n")


@dataclass
class RefResult:
    kind: str
    label: str
    images: int
    bytes: int
    elapsed: float
    maxrss_kib: int
    cpu: float
    errors: int
    first_error: str

    @property
    def rate(self) -> float:
        return self.images / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.elapsed / 1e6 if self.elapsed > 0 else 0.0


def run_reference(
    python: str, kind: str, urls: list[str], workers: int, tmp: Path, *, decode: bool = True
) -> RefResult:
    url_file = tmp / f"urls-{kind}-{len(urls)}.txt"
    url_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
    argv = [python, str(HERE / "bench.py"), "--_reference", kind]
    argv += ["--_url-file", str(url_file), "--workers", str(workers)]
    if not decode:
        argv.append("--_no-decode")
    m = run_measured(argv)
    if m.rc != 0 or not m.stdout.strip():
        return RefResult(
            kind, REFERENCES[kind][0], 0, 0, 0.0, m.maxrss_kib, 0.0, 1, m.stderr[-300:]
        )
    doc = json.loads(m.stdout.strip().splitlines()[-1])
    return RefResult(
        kind,
        REFERENCES[kind][0],
        doc["images"],
        doc["bytes"],
        doc["elapsed"],
        m.maxrss_kib,
        m.cpu_user + m.cpu_sys,
        doc["errors"],
        doc["first_error"],
    )


def server_ceiling(
    python: str, urls: list[str], tmp: Path, clients: int, conns: int
) -> dict[str, Any]:
    """Download-only asyncio clients in `clients` processes at once: what the server and the
    loopback deliver on this box (client CPU included: everything shares the same cores)."""
    procs: list[subprocess.Popen[str]] = []
    for i in range(clients):
        shard = urls[i::clients]
        url_file = tmp / f"ceiling-{i}.txt"
        url_file.write_text("\n".join(shard) + "\n", encoding="utf-8")
        argv = [python, str(HERE / "bench.py"), "--_reference", "asyncio"]
        argv += ["--_url-file", str(url_file), "--workers", str(conns), "--_no-decode"]
        procs.append(subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True))
    docs = []
    for proc in procs:
        out, _ = proc.communicate()
        docs.append(json.loads(out.strip().splitlines()[-1]))
    images = sum(d["images"] for d in docs)
    nbytes = sum(d["bytes"] for d in docs)
    span = max(d["end"] for d in docs) - min(d["start"] for d in docs)
    return {
        "clients": clients,
        "connections_each": conns,
        "images": images,
        "seconds": span,
        "img_per_s": images / span,
        "mb_per_s": nbytes / span / 1e6,
        "errors": sum(d["errors"] for d in docs),
    }
