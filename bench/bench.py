"""retailpulse benchmark: a local image server, reference clients, and retailpulse itself.

Run from the repository root with the project's Python (see bench/README.md):

    python bench/bench.py --images 4000                          # vs reference clients
    python bench/bench.py --images 1000 --gpu-curve 16,32,64,128  # default GPU delay
    python bench/bench.py --images 0 --scale 20000,200000        # memory, status, validation
    python bench/bench.py --smoke                                # seconds; exit 0 if all worked

Everything talks to 127.0.0.1 only. The image server runs in separate processes (its CPU
does not share a GIL with any client); every client runs in its own process too, started
fresh, so each one is measured alone. Human-readable lines go to stdout, or to stderr
with --json, which prints one summary object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STORE_MASTER = REPO / "store_master.csv"
HOST = "127.0.0.1"
DEFAULT_WORKERS = 32  # retailpulse's default pool size (settings.DEFAULT_WORKERS)
DEFAULT_DELAY = (0.1, 0.4)  # retailpulse's default --gpu-delay
JPEG_TARGET_BYTES = 300_000
DEFAULT_MIX = {"jpeg": 85.0, "png": 10.0, "webp": 5.0}

# -- output ----------------------------------------------------------------------------------

_OUT: TextIO = sys.stdout


def say(text: str = "") -> None:
    _OUT.write(text + "\n")
    _OUT.flush()


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f}s"


def fmt_mb(kib: float) -> str:
    return f"{kib / 1024:.1f} MB"


# -- images ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """One image the server holds: its HTTP response is built once, sent from memory."""

    path: str
    content_type: str
    body: bytes
    width: int
    height: int

    def response(self) -> bytes:
        head = (
            "HTTP/1.1 200 OK\r\n"
            f"Content-Type: {self.content_type}\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            "Connection: keep-alive\r\n\r\n"
        )
        return head.encode() + self.body


def _shelf_photo(size: tuple[int, int], seed: int, noise: Any) -> Any:
    """A photo-like shelf: gradient, products on planks, sensor noise, a little blur, so that
    JPEG sizes are those of real photos rather than of flat cartoons."""
    from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

    w, h = size
    rng = random.Random(seed)
    gradient = Image.linear_gradient("L").resize((w, h))
    dark = (rng.randrange(30, 110),) * 3
    light = (rng.randrange(180, 250), rng.randrange(170, 240), rng.randrange(150, 230))
    im = ImageOps.colorize(gradient, dark, light)
    draw = ImageDraw.Draw(im)
    rows = rng.randint(4, 6)
    for r in range(rows):
        y = (r + 1) * h // (rows + 1)
        draw.rectangle([0, y, w, y + max(2, h // 60)], fill=(110, 80, 50))
        x = rng.randrange(0, 20)
        while x < w:
            bw_min, bh_min = max(2, w // 40), max(2, h // 14)
            bw = rng.randrange(bw_min, max(bw_min + 1, w // 12))
            bh = rng.randrange(bh_min, max(bh_min + 1, h // (rows + 1) - 4))
            colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            draw.rectangle([x, y - bh, x + bw, y - 1], fill=colour, outline=(20, 20, 20))
            label = (255 - colour[0], 255 - colour[1], 255 - colour[2])
            draw.rectangle([x + bw // 5, y - bh * 2 // 3, x + bw * 4 // 5, y - bh // 3], fill=label)
            x += bw + rng.randrange(1, 8)
    im = ImageChops.add(im, noise, scale=1.0, offset=-128)
    return im.filter(ImageFilter.GaussianBlur(0.6))


def _noise(size: tuple[int, int], sigma: float) -> Any:
    from PIL import Image, ImageFilter

    channels = [
        Image.effect_noise(size, sigma).filter(ImageFilter.GaussianBlur(0.8)) for _ in range(3)
    ]
    return Image.merge("RGB", channels)


def _encode(im: Any, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def _jpeg_near(im: Any, target: int) -> bytes:
    """The JPEG quality whose size is closest to `target` bytes (bisection)."""
    lo, hi = 20, 95
    best = _encode(im, "JPEG", quality=75)
    while lo <= hi:
        q = (lo + hi) // 2
        data = _encode(im, "JPEG", quality=q)
        if abs(len(data) - target) < abs(len(best) - target):
            best = data
        if len(data) < target:
            lo = q + 1
        else:
            hi = q - 1
    return best


@dataclass
class ImageSet:
    photos: dict[str, list[Blob]]  # "jpeg"/"png"/"webp" -> variants
    tiny: list[Blob]
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))

    def all(self) -> list[Blob]:
        return [b for blobs in self.photos.values() for b in blobs] + self.tiny


def make_images(variants: int) -> ImageSet:
    """Real image bytes made with Pillow: ~1600x1200 JPEG of ~300 KB (the bulk), 640x480 PNG,
    1600x1200 WebP, and 64x48 PNG for the memory-scaling runs."""
    big, small = (1600, 1200), (640, 480)
    big_noise, small_noise = _noise(big, 40), _noise(small, 40)
    photos: dict[str, list[Blob]] = {"jpeg": [], "png": [], "webp": []}
    for i in range(variants):
        im = _shelf_photo(big, 1000 + i, big_noise)
        photos["jpeg"].append(
            Blob(f"/img/{i}.jpg", "image/jpeg", _jpeg_near(im, JPEG_TARGET_BYTES), *big)
        )
    for i in range(max(1, variants // 3)):
        im = _shelf_photo(small, 2000 + i, small_noise)
        photos["png"].append(Blob(f"/img/{i}.png", "image/png", _encode(im, "PNG"), *small))
        im = _shelf_photo(big, 3000 + i, big_noise)
        webp = _encode(im, "WEBP", quality=70, method=2)
        photos["webp"].append(Blob(f"/img/{i}.webp", "image/webp", webp, *big))
    tiny_noise = _noise((64, 48), 30)
    tiny = [
        Blob(
            f"/tiny/{i}.png",
            "image/png",
            _encode(_shelf_photo((64, 48), 4000 + i, tiny_noise), "PNG"),
            64,
            48,
        )
        for i in range(4)
    ]
    return ImageSet(photos, tiny)


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


# -- job files -------------------------------------------------------------------------------


def store_ids(path: Path = STORE_MASTER) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        ids = [row["StoreID"].strip() for row in csv.DictReader(fh) if row.get("StoreID")]
    if not ids:
        raise SystemExit(f"bench: no store ids in {path}")
    return ids


@dataclass
class Job:
    path: Path
    urls: list[str]
    bytes_total: int
    visits: int


def pick_photo(images: ImageSet, rng: random.Random) -> Blob:
    """A photo drawn by the format mix (--mix; 85% JPEG, 10% PNG, 5% WebP by default)."""
    r = rng.random() * sum(images.mix.values())
    for kind, weight in images.mix.items():
        if r < weight:
            return rng.choice(images.photos[kind])
        r -= weight
    return rng.choice(images.photos["jpeg"])


def make_job(
    path: Path,
    n_images: int,
    pick: Callable[[random.Random], Blob],
    base_url: str,
    *,
    seed: int = 7,
    count_offset: int = 0,
    n_visits: int | None = None,
) -> Job:
    """Visits of 2-4 images at known stores; every URL distinct (query string). With
    `n_visits`, exactly that many visits (and as many images as they draw)."""
    rng = random.Random(seed)
    ids = store_ids()
    visits: list[dict[str, Any]] = []
    urls: list[str] = []
    total = 0
    index = 0
    while len(visits) < n_visits if n_visits is not None else index < n_images:
        k = rng.randint(2, 4) if n_visits is not None else min(rng.randint(2, 4), n_images - index)
        v = len(visits)
        visit_urls = []
        for _ in range(k):
            blob = pick(rng)
            visit_urls.append(f"{base_url}{blob.path}?visit={v}&img={index}")
            total += len(blob.body)
            index += 1
        urls.extend(visit_urls)
        minute = v % (60 * 24)
        visits.append(
            {
                "store_id": rng.choice(ids),
                "image_url": visit_urls,
                "visit_time": f"2026-11-28T{minute // 60:02d}:{minute % 60:02d}:00+05:30",
            }
        )
    doc = {"count": len(visits) + count_offset, "visits": visits}
    path.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    return Job(path, urls, total, len(visits))


# -- measured subprocesses -------------------------------------------------------------------


@dataclass
class Measured:
    argv: list[str]
    rc: int
    wall: float
    maxrss_kib: int
    cpu_user: float
    cpu_sys: float
    stdout: str
    stderr: str
    rss_samples: list[tuple[float, int]] = field(default_factory=list)

    def rss_at(self, fraction: float) -> int | None:
        if not self.rss_samples:
            return None
        t = self.wall * fraction
        return min(self.rss_samples, key=lambda s: abs(s[0] - t))[1]


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


# A small launcher between the benchmark and each measured command. Linux charges a process
# created by fork/vfork + exec with the RSS its parent had at the exec (ru_maxrss is kept
# across exec), so a child of this benchmark (tens of MB of images) would report at least
# that. The launcher is a bare interpreter (~10 MB): its forked child is charged ~10 MB at
# most, the floor of every peak RSS printed here. It times the child from fork to reaping.
LAUNCHER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None)
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    libc.prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM: never outlive the launcher
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{code} {wall} {ru.ru_maxrss} {ru.ru_utime} {ru.ru_stime}")
sys.exit(code if 0 <= code < 256 else 1)
"""


def _child_pid(launcher: int) -> int | None:
    try:
        with open(f"/proc/{launcher}/task/{launcher}/children", encoding="ascii") as fh:
            pids = fh.read().split()
    except OSError:
        return None
    return int(pids[0]) if pids else None


def run_measured(
    argv: list[str],
    *,
    capture_stdout: bool = True,
    sample_rss: bool = False,
    env: dict[str, str] | None = None,
) -> Measured:
    """Run a command; its wall time, and the peak RSS and CPU time of exactly that process."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as report:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER, report.name, *argv],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            stderr=err,
        )
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        sampler: threading.Thread | None = None
        if sample_rss:

            def sample() -> None:
                child = None
                while not stop.wait(0.2):
                    child = child or _child_pid(proc.pid)
                    rss = _rss_kib(child) if child else None
                    if rss is not None:
                        samples.append((time.perf_counter() - t0, rss))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
        try:
            out = proc.stdout.read() if proc.stdout is not None else b""
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            stop.set()
            if proc.stdout is not None:
                proc.stdout.close()
        if sampler is not None:
            sampler.join()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        fields = report.read().split()
    if len(fields) != 5:
        raise RuntimeError(f"launcher failed ({proc.returncode}) for {argv}: {stderr[-500:]}")
    code, wall, maxrss, utime, stime = fields
    return Measured(
        argv,
        int(code),
        float(wall),
        int(maxrss),
        float(utime),
        float(stime),
        out.decode(errors="replace"),
        stderr,
        samples,
    )


class Cli:
    """`retailpulse` as a user runs it: a new process per command."""

    def __init__(self, python: str, jobs_dir: Path) -> None:
        self.base = [python, "-m", "retailpulse_cli"]
        self.jobs_dir = jobs_dir

    def argv(self, *args: str, jobs_dir: bool = True) -> list[str]:
        extra = ["--jobs-dir", str(self.jobs_dir)] if jobs_dir else []
        return [*self.base, *args, *extra]

    def submit(self, job: Path, *flags: str) -> Measured:
        return run_measured(self.argv("submit", str(job), "--quiet", *flags), sample_rss=True)

    def status_json(self, job_id: str) -> dict[str, Any]:
        m = run_measured(self.argv("status", job_id, "--json"))
        if m.rc != 0:
            raise RuntimeError(f"status {job_id} exited {m.rc}: {m.stderr.strip()[-500:]}")
        doc: dict[str, Any] = json.loads(m.stdout)
        return doc

    def has_command(self, name: str) -> bool:
        m = run_measured([*self.base, name, "--help"])
        return m.rc == 0


@dataclass
class Timed:
    label: str
    walls: list[float]
    rc: int
    maxrss_kib: int
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.walls) if self.walls else float("nan")

    @property
    def best(self) -> float:
        return min(self.walls) if self.walls else float("nan")


def time_command(
    label: str, argv: list[str], repeat: int, *, ok_codes: Sequence[int] = (0,)
) -> Timed:
    walls: list[float] = []
    rc = 0
    maxrss = 0
    for _ in range(repeat):
        m = run_measured(argv, capture_stdout=False)
        walls.append(m.wall)
        rc = m.rc
        maxrss = max(maxrss, m.maxrss_kib)
        note = m.stderr.strip()[-300:] if m.rc != 0 else ""
        if m.rc not in ok_codes:
            return Timed(label, walls, m.rc, maxrss, note=note)
    return Timed(label, walls, rc, maxrss, note=note if rc not in (0, *ok_codes) else "")


def show_timed(t: Timed, target: float | None = None) -> None:
    verdict = ""
    if target is not None:
        verdict = f"  target < {target:g}s: {'PASS' if t.median < target else 'FAIL'}"
    runs = ", ".join(f"{w:.3f}" for w in t.walls)
    say(
        f"  {t.label:<34} median {fmt_s(t.median)}  (runs: {runs}; exit {t.rc}; "
        f"peak RSS {fmt_mb(t.maxrss_kib)}){verdict}"
    )
    if t.note:
        say(f"    stderr: {t.note}")


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
    argv = [python, str(Path(__file__).resolve()), "--_reference", kind]
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
        argv = [python, str(Path(__file__).resolve()), "--_reference", "asyncio"]
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


# -- sections --------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    python: str
    tmp: Path
    server: ImageServer
    images: ImageSet
    summary: dict[str, Any]
    problems: list[str]
    targets: list[tuple[str, str, str]]  # (target, measured, verdict)

    def target(self, name: str, measured: str, ok: bool | None) -> None:
        if self.args.smoke:
            ok = None  # 50 images measure start-up, not speed: a smoke run judges nothing
        verdict = "n/a" if ok is None else "PASS" if ok else "FAIL"
        self.targets.append((name, measured, verdict))


def startup_baseline(ctx: Context, cli: Cli) -> None:
    say("== process start (context for the `status`/`list` targets)")
    repeat = ctx.args.repeat
    bare = time_command("python -c pass", [ctx.python, "-c", "pass"], repeat)
    version = time_command("retailpulse --version", [*cli.base, "--version"], repeat)
    show_timed(bare)
    show_timed(version)
    ctx.summary["startup"] = {"python": bare.median, "retailpulse_version": version.median}


def submit_checked(
    ctx: Context, cli: Cli, job: Job, *flags: str
) -> tuple[Measured, str, dict[str, Any]]:
    m = cli.submit(job.path, *flags)
    job_id = m.stdout.strip().splitlines()[-1] if m.stdout.strip() else ""
    status: dict[str, Any] = {}
    if m.rc != 0 or not job_id:
        ctx.problems.append(f"submit {job.path.name} {' '.join(flags)} exited {m.rc}")
        say(f"  !! submit exited {m.rc}; stderr tail:\n{m.stderr.strip()[-1500:]}")
        return m, job_id, status
    status = cli.status_json(job_id)
    ok = status.get("images_ok", 0)
    if ok != len(job.urls):
        ctx.problems.append(f"job {job_id}: {ok} ok of {len(job.urls)}")
        say(f"  !! only {ok} of {len(job.urls)} images ok: {json.dumps(status)[:1500]}")
    return m, job_id, status


def command_times(ctx: Context, cli: Cli, job_id: str, prefix: str) -> dict[str, Any]:
    """Wall time of status, results and list, process start included."""
    repeat = ctx.args.repeat
    out: dict[str, Any] = {}
    status = time_command("status JOB", cli.argv("status", job_id), repeat)
    show_timed(status, 0.25)
    out["status_s"] = status.median
    out["status_rss_kib"] = status.maxrss_kib
    results = time_command("results JOB > /dev/null", cli.argv("results", job_id), repeat)
    show_timed(results)
    out["results_s"] = results.median
    out["results_rss_kib"] = results.maxrss_kib
    listing = time_command("list", cli.argv("list"), repeat, ok_codes=(0, 2))
    if listing.rc == 2 and "no such command" in listing.note.lower():
        say("  list                               skipped: this retailpulse has no `list` command")
        out["list_s"] = None
    else:
        show_timed(listing, 0.25)
        out["list_s"] = listing.median
        out["list_rss_kib"] = listing.maxrss_kib
    ctx.summary.setdefault("commands", {})[prefix] = out
    return out


def fixed_cost(ctx: Context, cli: Cli) -> float:
    """Wall of submitting a 1-image job: process start, imports, job creation, fsyncs."""
    job = make_job(ctx.tmp / "one.json", 1, lambda rng: ctx.images.tiny[0], ctx.server.url(""))
    walls = []
    for _ in range(ctx.args.repeat):
        m, _, _ = submit_checked(ctx, cli, job, "--gpu-delay", "0")
        walls.append(m.wall)
    cost = statistics.median(walls)
    say(f"  fixed cost: submit of a 1-image job takes {fmt_s(cost)} (median of {len(walls)})")
    ctx.summary["fixed_cost_s"] = cost
    return cost


def compare(ctx: Context, cli: Cli, fixed: float) -> float | None:
    """retailpulse --gpu-delay 0 vs the reference clients, same URLs, same run."""
    args = ctx.args
    n = args.images
    workers = args.workers or DEFAULT_WORKERS
    job = make_job(
        ctx.tmp / f"job-{n}.json", n, lambda rng: pick_photo(ctx.images, rng), ctx.server.url("")
    )
    mb = job.bytes_total / 1e6
    say(
        f"== download comparison: {n:,} images, {mb:,.0f} MB "
        f"(avg {job.bytes_total / n / 1e3:.0f} KB), {job.visits:,} visits, {workers} workers"
    )
    out: dict[str, Any] = {"images": n, "mb": mb, "workers": workers}

    say("  server ceiling (asyncio download-only clients, no Pillow):")
    ceilings = []
    for clients, conns in ((1, 64), (2, 32)):
        c = server_ceiling(ctx.python, job.urls, ctx.tmp, clients, conns)
        ceilings.append(c)
        say(
            f"    {clients} client process(es) x {conns} connections: {c['img_per_s']:,.0f} img/s, "
            f"{c['mb_per_s']:,.0f} MB/s ({c['errors']} errors)"
        )
    out["server_ceiling"] = ceilings

    flags = ["--gpu-delay", "0"]
    if args.workers:
        flags += ["--workers", str(args.workers)]
    rounds = max(1, args.rounds)
    say(
        f"  {rounds} round(s), each: every reference client, then `retailpulse submit JOB "
        f"{' '.join(flags)}`; each client is a fresh process; references download, then "
        "read the size with Pillow Image.open(...).size"
    )
    refs: dict[str, list[RefResult]] = {kind: [] for kind in REFERENCES}
    runs: list[tuple[Measured, str]] = []
    for rnd in range(1, rounds + 1):
        for kind in REFERENCES:
            urls = job.urls[: args.seq_cap] if kind == "sequential" else job.urls
            r = run_reference(
                ctx.python, kind, urls, 1 if kind == "sequential" else workers, ctx.tmp
            )
            refs[kind].append(r)
            capped = f" (first {len(urls):,}, rate extrapolated)" if len(urls) < n else ""
            say(
                f"    [{rnd}] {r.label:<46} {r.rate:>6,.0f} img/s {r.mb_per_s:>5,.0f} MB/s "
                f"{r.elapsed:6.2f}s CPU {r.cpu:4.1f}s RSS {fmt_mb(r.maxrss_kib)}{capped}"
            )
            if r.errors or r.images != len(urls):
                ctx.problems.append(f"reference {kind}: {r.images}/{len(urls)} ({r.first_error})")
                say(f"      !! {r.images}/{len(urls)} images; {r.first_error}")
        m, job_id, _ = submit_checked(ctx, cli, job, *flags)
        runs.append((m, job_id))
        say(
            f"    [{rnd}] {'retailpulse submit (whole process)':<46} {n / m.wall:>6,.0f} img/s "
            f"{mb / m.wall:>5,.0f} MB/s {m.wall:6.2f}s CPU {m.cpu_user + m.cpu_sys:4.1f}s "
            f"RSS {fmt_mb(m.maxrss_kib)} (user {m.cpu_user:.1f}s, sys {m.cpu_sys:.1f}s, "
            f"{(m.cpu_user + m.cpu_sys) / n * 1e3:.2f} ms CPU/image; "
            f"{n / max(m.wall - fixed, 1e-9):,.0f} img/s without the {fixed:.2f}s fixed cost)"
        )

    def median_rate(results: list[RefResult]) -> float:
        return statistics.median(r.rate for r in results)

    rp_walls = [m.wall for m, _ in runs]
    rp_wall = statistics.median(rp_walls)
    rp_rate = n / rp_wall
    job_id = runs[-1][1]
    out["references"] = {
        kind: {
            "label": REFERENCES[kind][0],
            "img_per_s": median_rate(results),
            "img_per_s_runs": [r.rate for r in results],
            "mb_per_s": statistics.median(r.mb_per_s for r in results),
            "peak_rss_kib": max(r.maxrss_kib for r in results),
            "cpu_s": statistics.median(r.cpu for r in results),
        }
        for kind, results in refs.items()
    }
    out["retailpulse"] = {
        "runs_s": rp_walls,
        "img_per_s": rp_rate,
        "img_per_s_runs": [n / w for w in rp_walls],
        "img_per_s_without_fixed_cost": n / max(rp_wall - fixed, 1e-9),
        "mb_per_s": mb / rp_wall,
        "peak_rss_kib": max(m.maxrss_kib for m, _ in runs),
        "cpu_s": statistics.median(m.cpu_user + m.cpu_sys for m, _ in runs),
        "job_id": job_id,
    }
    say(
        f"  median of {rounds}: retailpulse {rp_rate:,.0f} img/s, {mb / rp_wall:,.0f} MB/s, "
        f"peak RSS {fmt_mb(out['retailpulse']['peak_rss_kib'])}; ratio to each reference "
        "(median rates):"
    )
    for kind, results in refs.items():
        rate = median_rate(results)
        ratio = rp_rate / rate if rate else float("nan")
        say(f"    {ratio:5.2f}x  {REFERENCES[kind][0]} ({rate:,.0f} img/s)")
        out["retailpulse"][f"ratio_{kind}"] = ratio
    best_ceiling = max(c["img_per_s"] for c in ceilings)
    say(
        f"    {rp_rate / best_ceiling:5.2f}x  server ceiling ({best_ceiling:,.0f} img/s, no Pillow)"
    )
    one_read = median_rate(refs["one-read"])
    ctx.target(
        "gpu-delay 0: >= 0.9x one-call-read requests",
        f"{rp_rate / one_read:.2f}x ({rp_rate:,.0f} vs {one_read:,.0f} img/s, medians; "
        f"{out['retailpulse']['img_per_s_without_fixed_cost'] / one_read:.2f}x without "
        "retailpulse's fixed cost)",
        rp_rate >= 0.9 * one_read,
    )
    ctx.target(
        "ratio to http.client ceiling (report only)",
        f"{rp_rate / median_rate(refs['http.client']):.2f}x",
        None,
    )
    if job_id:
        say("  commands on the finished job (process start included):")
        times = command_times(ctx, cli, job_id, "compare")
        out["commands"] = times
    ctx.summary["compare"] = out
    return float(rp_rate)


def list_schedule(delays: Sequence[float], workers: int) -> float:
    """Makespan when images start in job order on the first free worker, downloads free:
    the best a pool that hands out images in order can do (sum/workers plus the tail)."""
    import heapq

    free = [0.0] * workers
    for d in delays:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def gpu_curve(ctx: Context, cli: Cli, fixed: float) -> None:
    args = ctx.args
    n = args.curve_images
    lo, hi = DEFAULT_DELAY
    seed = args.seed
    delays = [random.Random(seed * 1_000_003 + i).uniform(lo, hi) for i in range(n)]
    total = sum(delays)
    job = make_job(
        ctx.tmp / f"curve-{n}.json",
        n,
        lambda rng: pick_photo(ctx.images, rng),
        ctx.server.url(""),
        seed=11,
    )
    say(
        f"== GPU-delay curve: {n:,} images, --gpu-delay {lo:g}:{hi:g} --seed {seed} "
        f"(sum of delays {total:.1f}s, longest {max(delays):.3f}s)"
    )
    m0, _, _ = submit_checked(ctx, cli, job, "--gpu-delay", "0")
    say(
        f"  the same job at --gpu-delay 0 (download and measure only, default workers): "
        f"{m0.wall:.2f}s ({n / m0.wall:,.0f} img/s)"
    )
    say(
        "  ideal = sum(delays)/workers; in-order = list-scheduling makespan (images start in "
        "order on the first free worker, downloads free)"
    )
    rows = []
    for w in args.gpu_curve:
        ideal = total / w
        in_order = list_schedule(delays, w)
        m, _, _ = submit_checked(
            ctx, cli, job, "--workers", str(w), "--seed", str(seed), "--gpu-delay", f"{lo:g}:{hi:g}"
        )
        net = m.wall - fixed
        row = {
            "workers": w,
            "ideal_s": ideal,
            "in_order_s": in_order,
            "wall_s": m.wall,
            "ratio": m.wall / ideal,
            "ratio_without_fixed_cost": net / ideal,
            "ratio_to_in_order": m.wall / in_order,
            "peak_rss_kib": m.maxrss_kib,
            "cpu_s": m.cpu_user + m.cpu_sys,
        }
        rows.append(row)
        within = m.wall <= ideal * 1.10
        say(
            f"  workers {w:>4}: ideal {ideal:6.2f}s  in-order {in_order:6.2f}s  actual "
            f"{m.wall:6.2f}s  actual/ideal {m.wall / ideal:5.3f} (w/o {fixed:.2f}s fixed cost "
            f"{net / ideal:5.3f}; /in-order {m.wall / in_order:5.3f})  RSS "
            f"{fmt_mb(m.maxrss_kib)}  CPU {row['cpu_s']:.1f}s{'' if within else '  > 10% over'}"
        )
        ctx.target(
            f"gpu-delay default, {w} workers: within 10% of ideal",
            f"{m.wall / ideal:.3f}x ideal ({net / ideal:.3f}x w/o fixed cost; "
            f"{m.wall / in_order:.3f}x in-order)",
            within,
        )
    ctx.summary["gpu_curve"] = {
        "images": n,
        "seed": seed,
        "sum_delays_s": total,
        "download_only_s": m0.wall,
        "rows": rows,
    }


def scale(ctx: Context, cli: Cli) -> None:
    sizes = ctx.args.scale
    say(
        f"== memory scaling: --gpu-delay 0 on jobs of {', '.join(f'{s:,}' for s in sizes)} "
        "tiny (64x48 PNG) images, one jobs dir"
    )
    rows = []
    last_id = ""
    for n in sizes:
        job = make_job(
            ctx.tmp / f"scale-{n}.json",
            n,
            lambda rng: rng.choice(ctx.images.tiny),
            ctx.server.url(""),
            seed=13,
        )
        m, job_id, _ = submit_checked(ctx, cli, job, "--gpu-delay", "0")
        last_id = job_id or last_id
        quarters = [m.rss_at(f) for f in (0.25, 0.5, 0.75, 1.0)]
        shown = ", ".join(fmt_mb(q) if q else "-" for q in quarters)
        say(
            f"  {n:>9,} images: wall {m.wall:7.1f}s ({n / m.wall:,.0f} img/s), peak RSS "
            f"{fmt_mb(m.maxrss_kib)}; RSS at 25/50/75/100% of the run: {shown}; "
            f"job file {job.path.stat().st_size / 1e6:.1f} MB"
        )
        rows.append(
            {
                "images": n,
                "wall_s": m.wall,
                "peak_rss_kib": m.maxrss_kib,
                "rss_quarters_kib": quarters,
                "job_id": job_id,
            }
        )
    if len(rows) >= 2:
        grow = rows[-1]["peak_rss_kib"] - rows[0]["peak_rss_kib"]
        say(f"  peak RSS grows by {fmt_mb(grow)} from {sizes[0]:,} to {sizes[-1]:,} images")
        ctx.target(
            f"RSS growth {sizes[0]:,} -> {sizes[-1]:,} < 50 MB", fmt_mb(grow), grow < 50 * 1024
        )
    biggest = rows[-1]
    ctx.target(
        f"peak RSS of a {sizes[-1]:,}-image job < 250 MB",
        fmt_mb(biggest["peak_rss_kib"]),
        biggest["peak_rss_kib"] < 250 * 1024,
    )
    out: dict[str, Any] = {"rows": rows}
    if last_id:
        say(f"  commands on the {sizes[-1]:,}-image job, jobs dir holding all of these jobs:")
        times = command_times(ctx, cli, last_id, "scale")
        out["commands"] = times
        ctx.target(
            "status on the biggest job < 0.25 s", fmt_s(times["status_s"]), times["status_s"] < 0.25
        )
        if times.get("list_s") is not None:
            ctx.target(
                "list with the biggest job < 0.25 s", fmt_s(times["list_s"]), times["list_s"] < 0.25
            )
        else:
            ctx.target("list with the biggest job < 0.25 s", "no `list` command", None)
    ctx.summary["scale"] = out


def validation(ctx: Context, cli: Cli) -> None:
    visits = ctx.args.validate_visits
    say(f"== validation of a {visits:,}-visit job file")
    rng_urls = ctx.images.tiny
    bad = make_job(
        ctx.tmp / f"validate-{visits}-bad.json",
        0,
        lambda rng: rng.choice(rng_urls),
        ctx.server.url(""),
        seed=17,
        count_offset=1,
        n_visits=visits,
    )
    out: dict[str, Any] = {
        "visits": bad.visits,
        "images": len(bad.urls),
        "file_mb": bad.path.stat().st_size / 1e6,
    }
    say(f"  job file: {bad.visits:,} visits, {len(bad.urls):,} image URLs, {out['file_mb']:.1f} MB")
    if cli.has_command("validate"):
        good = make_job(
            ctx.tmp / f"validate-{visits}.json",
            0,
            lambda rng: rng.choice(rng_urls),
            ctx.server.url(""),
            seed=17,
            n_visits=visits,
        )
        t = time_command(
            "validate JOB_FILE", [*cli.base, "validate", str(good.path)], ctx.args.repeat
        )
        show_timed(t, 2.0)
        out["validate_s"] = t.median
        ctx.target(
            f"validation of {visits:,} visits < 2 s (validate)",
            fmt_s(t.median),
            t.median < 2.0 and t.rc == 0,
        )
    else:
        say("  (no `validate` command: timing a submit whose count is off by one instead)")
    t = time_command(
        "submit JOB_FILE (wrong count, exit 3)",
        cli.argv("submit", str(bad.path)),
        ctx.args.repeat,
        ok_codes=(3,),
    )
    show_timed(t, 2.0)
    if t.rc != 3:
        ctx.problems.append(f"invalid submit exited {t.rc}, expected 3")
    out["submit_invalid_s"] = t.median
    out["submit_invalid_rss_kib"] = t.maxrss_kib
    ctx.target(
        f"submit validation of {visits:,} visits < 2 s",
        fmt_s(t.median),
        t.median < 2.0 and t.rc == 3,
    )
    ctx.summary["validation"] = out


# -- main ------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers like 16,32,64") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers")
    return values


def _mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    try:
        for part in text.split(","):
            kind, _, weight = part.partition("=")
            if kind.strip() not in DEFAULT_MIX:
                raise ValueError(kind)
            mix[kind.strip()] = float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. jpeg=85,png=10,webp=5") from None
    if sum(mix.values()) <= 0 or min(mix.values()) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: weights must be >= 0, not all 0")
    return mix


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark retailpulse against reference download clients on 127.0.0.1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--images",
        type=int,
        default=4000,
        help="images in the comparison run (--gpu-delay 0); 0 skips it",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"workers for retailpulse and the thread pools [{DEFAULT_WORKERS}]",
    )
    p.add_argument(
        "--seq-cap",
        type=int,
        default=1000,
        help="the sequential reference fetches at most this many images",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="comparison rounds (references then retailpulse); medians are compared",
    )
    p.add_argument(
        "--gpu-curve",
        type=_int_list,
        default=None,
        metavar="W1,W2,...",
        help="run the default GPU delay at these --workers values",
    )
    p.add_argument("--curve-images", type=int, default=1000, help="images per curve run")
    p.add_argument("--seed", type=int, default=42, help="--seed for the curve's GPU delays")
    p.add_argument(
        "--scale",
        type=_int_list,
        default=None,
        metavar="N1,N2,...",
        help="memory scaling: job sizes (tiny images, --gpu-delay 0)",
    )
    p.add_argument(
        "--validate-visits",
        type=int,
        default=None,
        help="time validation of a job file of this many visits [100000 with --scale, else off]",
    )
    p.add_argument("--repeat", type=int, default=3, help="runs of each timed command")
    p.add_argument("--server-procs", type=int, default=2, help="image server processes")
    p.add_argument("--variants", type=int, default=6, help="distinct JPEG images served")
    p.add_argument(
        "--mix",
        type=_mix,
        default=dict(DEFAULT_MIX),
        metavar="jpeg=85,png=10,webp=5",
        help="share of each format among the photos",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs retailpulse and the references",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run (50 images) for CI: exit 0 when everything worked",
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="only start the server and write a job of --images images; wait for "
        "Ctrl-C (for profiling retailpulse by hand)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print a summary object on stdout (the text goes to stderr)",
    )
    p.add_argument("--_reference", help=argparse.SUPPRESS)
    p.add_argument("--_url-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--_no-decode", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.images = 50
        args.seq_cap = 50
        args.repeat = 1
        args.rounds = 1
        args.variants = 1
        args.curve_images = min(args.curve_images, 40)
    if args.validate_visits is None:
        args.validate_visits = 100_000 if args.scale else 0
    return args


def serve_forever(ctx: Context) -> None:
    """Keep the server up with a job file (and one of tiny images) in the temp dir, e.g. to
    run retailpulse under a profiler by hand; Ctrl-C or SIGTERM stops and cleans up."""
    n = ctx.args.images or 4000
    job = make_job(
        ctx.tmp / f"job-{n}.json", n, lambda rng: pick_photo(ctx.images, rng), ctx.server.url("")
    )
    tiny = make_job(
        ctx.tmp / f"tiny-{n}.json", n, lambda rng: rng.choice(ctx.images.tiny), ctx.server.url("")
    )
    say(f"serving on {ctx.server.url('/')} (pid {os.getpid()})")
    say(f"job file: {job.path} ({len(job.urls):,} images, {job.bytes_total / 1e6:.0f} MB)")
    say(f"tiny-image job file: {tiny.path}")
    say("Ctrl-C (or kill -TERM the pid above) stops the server and removes these files.")
    try:
        while all(p.is_alive() for p in ctx.server.procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def git_state() -> str:
    """The commit measured, and whether the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "retailpulse_cli"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = len(dirty.splitlines())
    return f"{head}" + (f" + {changed} uncommitted file(s) in retailpulse_cli/" if changed else "")


def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    summary: dict[str, Any] = {
        "argv": sys.argv[1:],
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    say(
        f"retailpulse benchmark: {os.cpu_count()} CPUs, Python {summary['python']}, "
        f"server {args.server_procs} processes on {HOST}"
    )
    summary["git"] = git_state()
    say(f"retailpulse source: {summary['git']}")
    t0 = time.perf_counter()
    images = make_images(args.variants)
    images.mix = args.mix
    sizes = {k: [len(b.body) for b in v] for k, v in images.photos.items()}
    say(
        f"images made in {time.perf_counter() - t0:.1f}s: "
        + "; ".join(f"{k} {len(v)}x ~{statistics.mean(v) / 1e3:.0f} KB" for k, v in sizes.items())
        + f"; tiny PNG ~{statistics.mean(len(b.body) for b in images.tiny) / 1e3:.1f} KB"
    )
    summary["image_bytes"] = sizes
    problems: list[str] = []
    targets: list[tuple[str, str, str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="rp-bench-") as tmp_name,
        ImageServer(images.all(), args.server_procs) as server,
    ):
        tmp = Path(tmp_name)
        ctx = Context(args, args.python, tmp, server, images, summary, problems, targets)
        if args.serve:
            serve_forever(ctx)
            return 0
        cli = Cli(args.python, tmp / "jobs")
        startup_baseline(ctx, cli)
        fixed = fixed_cost(ctx, cli)
        if args.images > 0:
            compare(ctx, cli, fixed)
        if args.gpu_curve:
            gpu_curve(ctx, cli, fixed)
        if args.scale:
            scale(ctx, cli)
        if args.validate_visits:
            validation(ctx, cli)
    say("== targets (issue 6)")
    for name, measured, verdict in targets:
        say(f"  {verdict:<4}  {name}: {measured}")
    summary["targets"] = [{"target": t, "measured": m, "verdict": v} for t, m, v in targets]
    summary["problems"] = problems
    summary["seconds"] = time.perf_counter() - t_start
    say(
        f"== done in {summary['seconds']:.0f}s; "
        + ("no problems" if not problems else f"PROBLEMS: {'; '.join(problems)}")
    )
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    global _OUT
    args = parse_args(argv)
    if args._reference:
        reference_main(
            args._reference, args._url_file, args.workers or DEFAULT_WORKERS, not args._no_decode
        )
        return 0
    if args.json:
        _OUT = sys.stderr

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # runs the cleanup: servers stopped, temp dir removed

    signal.signal(signal.SIGTERM, terminate)
    try:
        return run(args)
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
