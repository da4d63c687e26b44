"""Throughput of `ImageStore.put` (--save-images) for ~300 KB images.

    python bench/storage_bench.py                    # local folder and a local moto S3 server
    python bench/storage_bench.py --images 2000 --threads 1,32 --targets local

Each image is distinct random bytes (distinct sha256), put from a thread pool as the download
stage would. Prints images/s and MB/s for: the first write, a second pass over the same
images (dedupe: a stat or a HEAD, nothing written) and sha256 alone (the floor). The S3
server is moto's, started here on 127.0.0.1 and stopped at the end: it is a Python server on
the same cores, so its figure is a floor for real S3, not an estimate of it. Only talks to
127.0.0.1; temp folders are removed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", default="1,32", help="comma-separated pool sizes")
    parser.add_argument("--targets", default="local,s3", help="local, s3 or both")
    args = parser.parse_args()
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
