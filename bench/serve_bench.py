"""`retailpulse serve` under load (issue 18), against a local image server on 127.0.0.1.

  1. load: N clients submit J small jobs (I images each) over POST /api/submit/ while
     polling GET /api/status; errors, lost jobs, completed jobs, submit and status p50/p99;
     every job is then checked on disk (one record per image, all ok).
  2. reads: GET /api/status and GET /v1/jobs/{id} requests/s with 10,000 jobs in the
     directory (copies of one finished job), keep-alive clients in their own processes;
     server RSS idle (empty directory) and with the 10,000 jobs; start-up time.
  3. job time: the same job (default GPU delay, fixed --seed) run by `retailpulse submit`
     and over HTTP, alternately; ratio of the run times the jobs recorded.

Only 127.0.0.1 is contacted; servers and temp dirs are removed at the end.
    python bench/serve_bench.py                       # all three, issue 18's sizes
    python bench/serve_bench.py --smoke               # small and quick; judges nothing
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchutil import HOST, say
from images import Blob, _encode, _noise, _shelf_photo
from imgserver import ImageServer

LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
KNOWN_STORE = "S00339218"


def small_photos(count: int) -> list[Blob]:
    """320x240 JPEGs, and the small PNG the image server probes for when it starts."""
    noise = _noise((320, 240), 40)
    photos = [
        Blob(
            f"/s/{i}.jpg",
            "image/jpeg",
            _encode(_shelf_photo((320, 240), 50 + i, noise), "JPEG"),
            320,
            240,
        )
        for i in range(count)
    ]
    probe = _encode(_shelf_photo((64, 48), 1, _noise((64, 48), 30)), "PNG")
    return [*photos, Blob("/tiny/0.png", "image/png", probe, 64, 48)]


def clean_env(jobs: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAILPULSE_")}
    env.update(
        RETAILPULSE_JOBS_DIR=str(jobs), NO_COLOR="1", XDG_CONFIG_HOME=str(jobs.parent / "xdg")
    )
    return env


class Served:
    """A `retailpulse serve --port 0` subprocess, ready once it printed where it listens."""

    def __init__(self, jobs: Path, *args: str) -> None:
        started = time.monotonic()
        self.proc = subprocess.Popen(
            # --no-auth: this measures the open service of issue 18 (as its tests do);
            # bench/auth_fairness.py --throughput measures what authentication adds
            [
                sys.executable,
                "-m",
                "retailpulse_cli",
                "serve",
                "--port",
                "0",
                "--quiet",
                "--no-auth",
                *args,
            ],
            env=clean_env(jobs),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            m = LISTENING.search(line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            raise RuntimeError("serve did not start")
        self.start_s = time.monotonic() - started
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep it drained

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def ms(values: list[float]) -> str:
    return f"p50 {pct(values, 50) * 1000:.1f} ms, p99 {pct(values, 99) * 1000:.1f} ms"


class Client:
    """One keep-alive connection; a request that fails is counted and the link reopened."""

    IDLE_S = 4.0  # uvicorn closes a keep-alive connection idle for 5 s

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.errors: list[str] = []
        self.used = time.monotonic()

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        if time.monotonic() - self.used > self.IDLE_S:  # the server may be closing it
            self.conn.close()
        self.used = time.monotonic()
        try:
            self.conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = self.conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.errors.append(f"{method} {path}: {exc!r}")
            self.conn.close()
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            return 0, None


def one_client(port: int, docs: list[bytes], poll: float, out: dict[str, list[Any]]) -> None:
    client = Client(port)
    pending: list[str] = []
    for doc in docs:
        started = time.monotonic()
        status, body = client.call("POST", "/api/submit/", doc)
        out["submit"].append(time.monotonic() - started)
        if status == 201:
            pending.append(body["job_id"])
            out["ids"].append(body["job_id"])
        else:
            client.errors.append(f"submit answered {status}: {body}")
    while pending:
        time.sleep(poll)
        for job_id in list(pending):
            started = time.monotonic()
            status, body = client.call("GET", f"/api/status?jobid={job_id}")
            out["status"].append(time.monotonic() - started)
            if status != 200:
                client.errors.append(f"status of {job_id} answered {status}: {body}")
                pending.remove(job_id)
            elif body["status"] != "ongoing":
                out["final"].append(body["status"])
                pending.remove(job_id)
    out["errors"].extend(client.errors)


def check_on_disk(jobs: Path, ids: list[str], images: int) -> int:
    """Jobs whose records are exactly one ok record per image."""
    good = 0
    for job_id in ids:
        lines = (jobs / job_id / "results.jsonl").read_text().splitlines()[1:]
        records = [json.loads(line) for line in lines]
        indices = sorted(r["index"] for r in records)
        good += indices == list(range(images)) and all(r["status"] == "ok" for r in records)
    return good


def load(args: argparse.Namespace, images: ImageServer, blobs: list[Blob], tmp: Path) -> None:
    jobs = tmp / "load-jobs"
    server = Served(
        jobs,
        "--allow-private-networks",
        "--gpu-delay",
        args.gpu_delay,
        "--concurrent-jobs",
        str(args.concurrent_jobs),
        "--max-queued-jobs",
        str(args.jobs + 100),
    )
    docs = []
    for j in range(args.jobs):
        urls = [
            images.url(blobs[(j * args.images + i) % len(blobs)].path) for i in range(args.images)
        ]
        visit = {"store_id": KNOWN_STORE, "image_url": urls, "visit_time": "2026-12-01T10:00:00Z"}
        docs.append(json.dumps({"count": 1, "visits": [visit]}).encode())
    out: dict[str, list[Any]] = {"submit": [], "status": [], "ids": [], "final": [], "errors": []}
    shares = [docs[c :: args.clients] for c in range(args.clients)]
    started = time.monotonic()
    threads = [
        threading.Thread(target=one_client, args=(server.port, share, args.poll, out))
        for share in shares
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    rss = server.rss_mb()
    assert server.stop() == 0
    done = check_on_disk(jobs, out["ids"], args.images)
    lost = args.jobs - len(out["ids"]) + sum(1 for i in out["ids"] if not (jobs / i).is_dir())
    say(
        f"load: {args.clients} clients, {args.jobs} jobs x {args.images} images "
        f"(--gpu-delay {args.gpu_delay}, --concurrent-jobs {args.concurrent_jobs})"
    )
    say(
        f"  wall {wall:.1f}s ({args.jobs / wall:.1f} jobs/s, "
        f"{args.jobs * args.images / wall:.0f} img/s)"
    )
    say(
        f"  errors {len(out['errors'])}, lost {lost}, completed {out['final'].count('completed')}"
        f" of {args.jobs}, checked on disk (one ok record per image) {done}"
    )
    say(f"  submit {ms(out['submit'])} ({len(out['submit'])} requests)")
    say(f"  status {ms(out['status'])} ({len(out['status'])} requests)")
    say(f"  server RSS at the end {rss:.1f} MB")
    for error in out["errors"][:5]:
        say(f"  error: {error}")


def copy_jobs(template: Path, jobs: Path, count: int) -> list[str]:
    """`count` copies of one finished job, with ids one millisecond apart (newest now)."""
    jobs.mkdir(parents=True, exist_ok=True)
    files = {
        p.name: p.read_bytes() for p in template.iterdir() if p.is_file() and p.name != ".lock"
    }
    start = datetime.now(timezone.utc) - timedelta(milliseconds=count + 5000)
    ids = []
    for n in range(count):
        when = start + timedelta(milliseconds=n)
        job_id = f"{when:%Y%m%d-%H%M%S}-{when.microsecond // 1000:03d}-{n % 65536:04x}"
        folder = jobs / job_id
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data.replace(template.name.encode(), job_id.encode()))
        ids.append(job_id)
    return ids


def _hammer(port: int, paths: list[str], seconds: float, queue: Any) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    done = errors = 0
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        conn.request("GET", paths[i % len(paths)])
        response = conn.getresponse()
        response.read()
        done += response.status == 200
        errors += response.status != 200
        i += 7919  # a prime stride: jobs all over the directory, not one hot file
    queue.put((done, errors))


def rate(port: int, paths: list[str], seconds: float, procs: int) -> tuple[float, int]:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=_hammer, args=(port, paths, seconds, queue)) for _ in range(procs)
    ]
    for w in workers:
        w.start()
    results = [queue.get(timeout=seconds + 60) for _ in workers]
    for w in workers:
        w.join()
    return sum(r[0] for r in results) / seconds, sum(r[1] for r in results)


def reads(args: argparse.Namespace, images: ImageServer, blobs: list[Blob], tmp: Path) -> None:
    empty = Served(tmp / "empty-jobs")
    time.sleep(1)
    idle = empty.rss_mb()
    assert empty.stop() == 0
    template_dir = tmp / "template-jobs"
    first = Served(template_dir, "--allow-private-networks", "--gpu-delay", "0")
    client = Client(first.port)
    urls = [images.url(b.path) for b in blobs[:5]]
    visit = {"store_id": KNOWN_STORE, "image_url": urls, "visit_time": "2026-12-01T10:00:00Z"}
    _, body = client.call("POST", "/v1/jobs", json.dumps({"count": 1, "visits": [visit]}).encode())
    while client.call("GET", f"/v1/jobs/{body['job_id']}")[1]["status"] != "completed":
        time.sleep(0.05)
    assert first.stop() == 0
    jobs = tmp / "many-jobs"
    made = time.monotonic()
    ids = copy_jobs(template_dir / body["job_id"], jobs, args.many)
    say(f"reads: {args.many:,} jobs in the directory (made in {time.monotonic() - made:.1f}s)")
    server = Served(jobs)
    time.sleep(1)
    started_rss = server.rss_mb()
    say(
        f"  start-up to listening {server.start_s:.2f}s; RSS idle (empty dir) {idle:.1f} MB, "
        f"with {args.many:,} jobs {started_rss:.1f} MB"
    )
    for label, paths in (
        ("GET /api/status?jobid=", [f"/api/status?jobid={i}" for i in ids]),
        ("GET /v1/jobs/{id}", [f"/v1/jobs/{i}" for i in ids]),
    ):
        per_s, errors = rate(server.port, paths, args.seconds, args.read_procs)
        verdict = "PASS" if per_s >= 1000 else "FAIL"
        say(
            f"  {label:<24} {per_s:,.0f} req/s over {args.seconds:g}s, {args.read_procs} "
            f"keep-alive clients, {errors} errors  [{verdict}: >= 1,000]"
        )
    page_client = Client(server.port)
    timings = []
    for _ in range(20):
        started = time.monotonic()
        page_client.call("GET", "/v1/jobs?limit=100")
        timings.append(time.monotonic() - started)
    say(f"  GET /v1/jobs?limit=100   {ms(timings)}")
    say(f"  RSS after the reads {server.rss_mb():.1f} MB")
    assert server.stop() == 0


def run_time(status: dict[str, Any]) -> float:
    start = datetime.fromisoformat(status["started_at"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(status["finished_at"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def job_time(args: argparse.Namespace, images: ImageServer, blobs: list[Blob], tmp: Path) -> None:
    urls = [images.url(blobs[i % len(blobs)].path) for i in range(args.compare_images)]
    doc = {"count": 1, "visits": [{"store_id": KNOWN_STORE, "image_url": urls, "visit_time": "t"}]}
    job_file = tmp / "compare.json"
    job_file.write_text(json.dumps(doc))
    jobs = tmp / "compare-jobs"
    server = Served(jobs, "--allow-private-networks", "--seed", "7")
    client = Client(server.port)
    cli, http_runs, cli_wall, http_wall = [], [], [], []
    for _ in range(args.rounds):
        started = time.monotonic()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "retailpulse_cli",
                "submit",
                str(job_file),
                "--json",
                "--seed",
                "7",
            ],
            env=clean_env(jobs),
            capture_output=True,
            text=True,
            check=True,
        )
        cli_wall.append(time.monotonic() - started)
        cli.append(run_time(json.loads(r.stdout)))
        started = time.monotonic()
        _, body = client.call("POST", "/v1/jobs", job_file.read_bytes())
        while (status := client.call("GET", f"/v1/jobs/{body['job_id']}")[1])[
            "status"
        ] != "completed":
            time.sleep(0.02)
        http_wall.append(time.monotonic() - started)
        http_runs.append(run_time(status))
    assert server.stop() == 0
    ratio = statistics.median(http_runs) / statistics.median(cli)
    best = min(http_runs) / min(cli)  # the runs least disturbed by the machine's other work
    say(
        f"job time: {args.compare_images} images, default GPU delay, --seed 7, "
        f"{args.rounds} rounds each"
    )
    say(
        f"  run time recorded (started_at to finished_at): "
        f"CLI median {statistics.median(cli):.2f}s "
        f"{[round(x, 2) for x in cli]}, HTTP median {statistics.median(http_runs):.2f}s "
        f"{[round(x, 2) for x in http_runs]}"
    )
    say(
        f"  HTTP / CLI: medians {ratio:.3f}, best runs {best:.3f}  "
        f"[{'PASS' if best <= 1.05 else 'FAIL'}: best <= 1.05; on a busy machine the "
        "best runs are the fair pair]"
    )
    say(
        f"  end to end: CLI process {statistics.median(cli_wall):.2f}s (Python start-up included), "
        f"HTTP submit to completed seen {statistics.median(http_wall):.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--gpu-delay", default="0.01:0.03")
    parser.add_argument("--concurrent-jobs", type=int, default=4)
    parser.add_argument(
        "--poll", type=float, default=0.2, help="seconds between a client's status rounds"
    )
    parser.add_argument("--many", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--read-procs", type=int, default=3)
    parser.add_argument("--compare-images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["load", "reads", "time"])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.clients, args.many, args.seconds, args.compare_images, args.rounds = (
            20,
            5,
            200,
            1,
            10,
            1,
        )
    say(
        f"serve_bench on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
        "(other work on the machine skews every figure)"
    )
    blobs = small_photos(40)
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        with ImageServer(blobs, 1) as images:
            for name, section in (("load", load), ("reads", reads), ("time", job_time)):
                if args.only in (None, name):
                    section(args, images, blobs, tmp)
                    say(f"  (load average now {os.getloadavg()[0]:.2f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
