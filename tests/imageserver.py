"""A real threaded HTTP server on 127.0.0.1 (port 0) serving Pillow-made images and
misbehaving routes. Used by the tests; every byte it serves is real."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from collections import Counter, defaultdict
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

FORMATS = {
    "jpg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
    "avif": "AVIF",
}
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "avif": "image/avif",
}


@lru_cache(maxsize=256)
def image_bytes(width: int, height: int, ext: str) -> bytes:
    """A real image of the given size and format, with some structure so it compresses
    like a photo rather than a flat colour."""
    im = Image.new("RGB", (width, height), (200, 180, 160))
    for x in range(0, width, max(1, width // 16)):
        im.paste((x % 255, 90, 200 - x % 200), (x, 0, min(width, x + max(1, width // 32)), height))
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": 85} if ext == "jpg" else {}
    im.save(buf, FORMATS[ext], **kwargs)
    return buf.getvalue()


@lru_cache(maxsize=4)
def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A small PNG that declares a huge canvas (1-bit, so it stays a few hundred KB)."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


@lru_cache(maxsize=4)
def bomb_png_fast(width: int, height: int) -> bytes:
    """The same kind of bomb as `bomb_png`, written chunk by chunk: a valid 1-bit PNG whose
    IDAT really inflates to width x height pixels, built in a fraction of a second without
    holding the canvas in memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    deflate = zlib.compressobj(9)
    full, rest = divmod(height, 256)
    block = row * 256
    idat = [deflate.compress(block) for _ in range(full)]
    idat += [deflate.compress(row * rest), deflate.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(idat))
        + chunk(b"IEND", b"")
    )


def exif_rotated_jpeg(width: int, height: int) -> bytes:
    """A JPEG stored width x height whose EXIF orientation (6) says 'rotate 90 degrees'."""
    im = Image.new("RGB", (width, height), (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


class ImageServer:
    """Start with `ImageServer().start()`; `url(path)` gives a full URL."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.user_agents: list[str] = []
        self.auth_headers: list[str] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0  # TCP connections accepted: tells keep-alive from reconnects
        # Per path (query excluded): when each request arrived and the headers it carried.
        self.times: defaultdict[str, list[float]] = defaultdict(list)
        self.headers: defaultdict[str, list[dict[str, str]]] = defaultdict(list)
        # Per /nap/<group>: requests being served right now, the most at once, start times.
        self.group_in_flight: Counter[str] = Counter()
        self.group_max: Counter[str] = Counter()
        self.group_times: defaultdict[str, list[float]] = defaultdict(list)
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                with server.lock:
                    server.connections += 1
                super().setup()

            def do_GET(self) -> None:
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server.handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> ImageServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- routes ------------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        with self.lock:
            self.hits[path] += 1
            hits = self.hits[path]
            self.times[path].append(time.monotonic())
            self.headers[path].append(dict(h.headers.items()))
            self.user_agents.append(h.headers.get("User-Agent", ""))
            if h.headers.get("Authorization"):
                self.auth_headers.append(h.headers["Authorization"])
        seg = path.strip("/").split("/")
        kind = seg[0]
        if kind == "img":  # /img/<w>x<h>.<ext>
            size, ext = seg[1].rsplit(".", 1)
            w, hh = (int(v) for v in size.split("x"))
            self.send(h, 200, image_bytes(w, hh, ext), CONTENT_TYPES[ext])
        elif kind == "status":  # /status/<code>
            code = int(seg[1])
            headers = {"Retry-After": q["retry_after"]} if "retry_after" in q else {}
            self.send(h, code, b"nope", "text/plain", headers)
        elif kind == "empty":  # 200 with no body at all
            self.send(h, 200, b"", "image/png")
        elif kind == "notimage":
            self.send(h, 200, b"<html><body>not an image</body></html>", "text/html")
        elif kind == "truncated":  # /truncated/<w>x<h>.<ext>: first half of a real image
            size, ext = seg[1].rsplit(".", 1)
            w, hh = (int(v) for v in size.split("x"))
            data = image_bytes(w, hh, ext)
            self.send(h, 200, data[: len(data) // 2], CONTENT_TYPES[ext])
        elif kind == "slow":  # headers only after ?seconds=
            time.sleep(float(q.get("seconds", "5")))
            self.send(h, 200, image_bytes(64, 48, "png"), "image/png")
        elif kind == "hang":  # /hang/<key>: never answers (until the server stops)
            self.stopping.wait()
        elif kind == "drip":  # a byte every ?every= seconds, forever-ish
            self.drip(h, float(q.get("every", "0.5")))
        elif kind == "endless":  # claims nothing, sends forever
            self.endless(h)
        elif kind == "lying-length":  # Content-Length larger than the body, then close
            data = image_bytes(64, 48, "png")
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(len(data) + 1000))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
            h.close_connection = True
        elif kind == "flaky":  # /flaky/<key>?fail=N&code=C: N x C (default 503), then the image
            if hits <= int(q.get("fail", "2")):
                self.send(h, int(q.get("code", "503")), b"try again", "text/plain")
            else:
                self.send(h, 200, image_bytes(120, 80, "jpg"), "image/jpeg")
        elif kind == "ratelimited":  # /ratelimited/<key>?after=S: one 429, then the image
            if hits == 1:
                self.send(h, 429, b"slow down", "text/plain", {"Retry-After": q.get("after", "1")})
            else:
                self.send(h, 200, image_bytes(120, 80, "png"), "image/png")
        elif kind == "redirect":  # /redirect?to=URL
            self.send(h, 302, b"", "text/plain", {"Location": q["to"]})
        elif kind == "chain":  # /chain/<n>: n redirects then an image
            n = int(seg[1])
            if n <= 0:
                self.send(h, 200, image_bytes(90, 60, "png"), "image/png")
            else:
                self.send(h, 301, b"", "text/plain", {"Location": f"/chain/{n - 1}"})
        elif kind == "loop":
            self.send(h, 302, b"", "text/plain", {"Location": "/loop"})
        elif kind == "motion":  # /motion/<w>x<h>.jpg: a JPEG, then 2 MB as a motion photo's video
            w, hh = (int(v) for v in seg[1].rsplit(".", 1)[0].split("x"))
            video = b"\0\0\0\x18ftypmp42" + bytes(range(256)) * 8192
            self.send(h, 200, image_bytes(w, hh, "jpg") + video, "image/jpeg")
        elif kind == "bomb.png":
            self.send(h, 200, bomb_png(), "image/png")
        elif kind == "rotated.jpg":
            self.send(h, 200, exif_rotated_jpeg(200, 100), "image/jpeg")
        elif kind == "bomb":  # /bomb/<w>x<h>.png: a real PNG that inflates to w x h pixels
            w, hh = (int(v) for v in seg[1].rsplit(".", 1)[0].split("x"))
            self.send(h, 200, bomb_png_fast(w, hh), "image/png")
        elif kind == "nap":  # /nap/<group>/<name>?seconds=S: sleep, then a small PNG
            self.nap(h, seg[1], float(q.get("seconds", "0.3")))
        elif kind == "biglength":  # /biglength/<key>?length=N&hold=S: headers, S s pause, body
            self.big_length(h, int(q.get("length", "5000000")), float(q.get("hold", "5")))
        else:
            self.send(h, 404, b"not found", "text/plain")

    @staticmethod
    def send(
        h: BaseHTTPRequestHandler,
        code: int,
        body: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def nap(self, h: BaseHTTPRequestHandler, group: str, seconds: float) -> None:
        """Counts the group's requests in flight only while sleeping, i.e. strictly between
        the client sending the request and reading the response, so a count above N really
        means more than N requests at once."""
        with self.lock:
            self.group_times[group].append(time.monotonic())
            self.group_in_flight[group] += 1
            self.group_max[group] = max(self.group_max[group], self.group_in_flight[group])
        try:
            time.sleep(seconds)
        finally:
            with self.lock:
                self.group_in_flight[group] -= 1
        self.send(h, 200, image_bytes(64, 48, "png"), "image/png")

    @staticmethod
    def big_length(h: BaseHTTPRequestHandler, length: int, hold: float) -> None:
        """Declares `length` bytes, sends nothing for `hold` seconds, then the body: a
        client that reads the body before checking Content-Length waits `hold` seconds."""
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(length))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.flush()
        time.sleep(hold)
        chunk = b"\0" * 65536
        sent = 0
        while sent < length:
            n = min(len(chunk), length - sent)
            h.wfile.write(chunk[:n])
            sent += n
        h.close_connection = True

    @staticmethod
    def drip(h: BaseHTTPRequestHandler, every: float) -> None:
        data = image_bytes(64, 48, "png")
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        for i in range(len(data)):
            h.wfile.write(data[i : i + 1])
            h.wfile.flush()
            time.sleep(every)

    @staticmethod
    def endless(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Connection", "close")
        h.end_headers()
        chunk = b"\0" * 65536
        for _ in range(100_000):
            h.wfile.write(chunk)
        h.close_connection = True
