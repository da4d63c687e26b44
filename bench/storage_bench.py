"""Throughput of `ImageStore.put` (--save-images) for ~300 KB images, and what making them
durable costs in each way tried for issue 21.

    python bench/storage_bench.py                    # local folder and a local moto S3 server
    python bench/storage_bench.py --images 2000 --threads 1,32 --targets local
    python bench/storage_bench.py --durability --images 2000 --threads 32   # the ways, below

Each image is distinct random bytes (distinct sha256), put from a thread pool as the download
stage would. Prints images/s and MB/s for: the first write, a second pass over the same
images (dedupe: a stat or a HEAD, nothing written) and sha256 alone (the floor). The S3
server is moto's, started here on 127.0.0.1 and stopped at the end: it is a Python server on
the same cores, so its figure is a floor for real S3, not an estimate of it. Only talks to
127.0.0.1; temp folders are removed.

`--durability` puts the images from the thread pool into a fresh folder and makes them all
durable, each way in turn, alone and while the other writer of save_bench.py writes to the
same file system: `syncfs` (issue 13: no fsync in `put`; syncfs(2) every second, as before
each results fsync, and at the end), `fsync in put` (fdatasync, rename, folder fsync in the
calling thread), `batched` (LocalStore as shipped: a background thread per folder) and
`batched + sync_file_range` (the same, the write-back started by `put`). It prints images/s
until all are durable, the time a put holds its thread (the download threads' critical
path), CPU per image of this process and of the whole machine (/proc/stat: kernel threads
such as the journal's count there; noisy when other work runs).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retailpulse_cli.storage import image_archive, photo_sync
from retailpulse_cli.storage.image_archive import ImageStore, open_store

IMAGE_BYTES = 300_000


def timed(blobs: list[bytes], threads: int, work: Callable[[bytes], object]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(work, blobs):
            pass
    return time.perf_counter() - start


def report(label: str, n: int, seconds: float) -> None:
    mb = n * IMAGE_BYTES / 1e6
    print(f"  {label:<34} {n / seconds:8.0f} img/s {mb / seconds:8.1f} MB/s ({seconds:.2f} s)")


def bench_store(
    name: str, make: Callable[[], ImageStore], blobs: list[bytes], threads: int
) -> None:
    store = make()
    print(f"{name}, {threads} thread(s), {len(blobs)} images of {IMAGE_BYTES:,} bytes")
    report("put (write)", len(blobs), timed(blobs, threads, lambda b: store.put(b, "JPEG")))
    report(
        "put again (dedupe, no write)",
        len(blobs),
        timed(blobs, threads, lambda b: store.put(b, "JPEG")),
    )


@contextmanager
def moto_server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def s3_store(endpoint: str, bucket: str) -> ImageStore:
    import boto3

    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    boto3.session.Session().client("s3").create_bucket(Bucket=bucket)
    return open_store(f"s3://{bucket}/photos")


# -- durability: the ways tried for issue 21 -------------------------------------------------

SYNC_FILE_RANGE_WRITE = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def _write_temp(final: Path, data: bytes, start_writeback: bool = False) -> Path:
    temp = final.with_name(f".{final.name}.{os.urandom(6).hex()}.tmp")
    final.parent.mkdir(exist_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.write(fd, data)
        if start_writeback:
            _libc.sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)
    finally:
        os.close(fd)
    return temp


def _fsync(path: Path, sync: Callable[[int], None] = os.fsync) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        sync(fd)
    finally:
        os.close(fd)


def _final(root: Path, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return root / digest[:2] / f"{digest}.jpg"


class SyncfsEverySecond:
    """Issue 13's way: write and rename in put; syncfs(2) each second and at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stop = threading.Event()
        self.syncfs = _libc.syncfs
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(1.0):
            self._syncfs()

    def _syncfs(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            self.syncfs(fd)
        finally:
            os.close(fd)

    def put(self, data: bytes) -> None:
        final = _final(self.root, data)
        os.replace(_write_temp(final, data), final)

    def flush(self) -> None:
        self.stop.set()
        self.thread.join()
        self._syncfs()


class FsyncInPut:
    """Every put waits for its own bytes and name: fdatasync, rename, folder fsync."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, data: bytes) -> None:
        final = _final(self.root, data)
        temp = _write_temp(final, data)
        _fsync(temp, os.fdatasync)
        os.replace(temp, final)
        _fsync(final.parent)

    def flush(self) -> None:
        _fsync(self.root)


class Batched:
    """LocalStore as shipped (storage/photo_sync.py); or with `threads` fsync threads, or
    with the write-back started by `put` (sync_file_range)."""

    def __init__(self, root: Path, start_writeback: bool = False, threads: int = 0) -> None:
        self.shipped = image_archive._write_temp, photo_sync.SYNC_THREADS
        if start_writeback:
            image_archive._write_temp = lambda final, data: str(
                _write_temp(Path(final), data, True)
            )
        photo_sync.SYNC_THREADS = threads or photo_sync.SYNC_THREADS
        photo_sync._pool = None  # made again with that many threads
        self.store = open_store(str(root))

    def put(self, data: bytes) -> None:
        self.store.put(data, "JPEG")

    def flush(self) -> None:
        self.store.flush()
        image_archive._write_temp, photo_sync.SYNC_THREADS = self.shipped
        photo_sync._pool = None


def machine_busy() -> float:
    """Seconds of CPU the whole machine spent busy so far (every core, kernel threads too)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def durability_run(
    name: str, make: Callable[[Path], Any], blobs: list[bytes], threads: int
) -> None:
    root = Path(tempfile.mkdtemp(prefix="rp-durable-"))
    try:
        os.sync()
        held: list[float] = []
        way = make(root)

        def put(data: bytes) -> None:
            t0 = time.perf_counter()
            way.put(data)
            held.append(time.perf_counter() - t0)

        cpu0, busy0, t0 = time.process_time(), machine_busy(), time.perf_counter()
        timed(blobs, threads, put)
        way.flush()
        wall = time.perf_counter() - t0
        cpu, busy = time.process_time() - cpu0, machine_busy() - busy0
        n = len(blobs)
        print(
            f"  {name:<28} {n / wall:7.0f} img/s  put holds its thread"
            f" {sum(held) / n * 1e3:6.2f} ms"
            f"  CPU/image {cpu / n * 1e3:5.2f} ms (machine {busy / n * 1e3:5.2f} ms)",
            flush=True,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


WAYS: dict[str, Callable[[Path], Any]] = {
    "syncfs every second": SyncfsEverySecond,
    "fsync in put": FsyncInPut,
    "batched, 1 fsync thread": lambda root: Batched(root, threads=1),
    f"batched, {photo_sync.SYNC_THREADS} fsync threads": Batched,
    "batched + sync_file_range": lambda root: Batched(root, start_writeback=True),
}


def durability(n_images: int, threads: int) -> None:
    from save_bench import other_writer

    writer = argparse.Namespace(
        writer_mbps=100, writer_fsync_mb=1024, writer_mb=1024, writer_seconds=300
    )
    blobs = [os.urandom(IMAGE_BYTES) for _ in range(n_images)]
    print(f"{n_images} distinct images of {IMAGE_BYTES:,} bytes made durable, {threads} threads")
    for name, make in WAYS.items():
        durability_run(name, make, blobs, threads)
    print("... while another program writes 100 MB/s to the same file system (save_bench.py's)")
    for name, make in WAYS.items():
        with (
            tempfile.TemporaryDirectory(prefix="rp-writer-") as folder,
            other_writer(Path(folder), writer) as report,
        ):
            durability_run(name, make, blobs, threads)
        print(f"    (the other writer: {report[0]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", default="1,32", help="comma-separated pool sizes")
    parser.add_argument("--targets", default="local,s3", help="local, s3 or both")
    parser.add_argument("--durability", action="store_true", help="compare the ways (above)")
    args = parser.parse_args()
    if args.durability:
        for n in [int(t) for t in args.threads.split(",")]:
            durability(args.images, n)
        return
    threads = [int(t) for t in args.threads.split(",")]
    targets = args.targets.split(",")
    print("shared 2-core machine: figures are noisy; run twice and compare")
    for n in threads:
        blobs = [os.urandom(IMAGE_BYTES) for _ in range(args.images)]
        print(f"sha256 only, {n} thread(s)")
        report("hashlib.sha256", len(blobs), timed(blobs, n, lambda b: hashlib.sha256(b).digest()))
        if "local" in targets:
            folder = tempfile.mkdtemp(prefix="rp-store-bench-")
            try:
                bench_store(f"local folder {folder}", lambda f=folder: open_store(f), blobs, n)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        if "s3" in targets:
            with moto_server() as endpoint:
                bench_store(
                    f"moto S3 at {endpoint}", lambda e=endpoint: s3_store(e, "bench"), blobs, n
                )


if __name__ == "__main__":
    main()
