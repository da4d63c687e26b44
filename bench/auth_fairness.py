"""Fairness under a flood: does one client hammering `retailpulse serve` slow another's
status calls? (issue 19: the quiet client's p99 must stay within 2x its unloaded p99).

Starts a real `retailpulse serve --port 0` with two users' tokens, makes one job for the
quiet user, then measures the quiet user's `GET /v1/jobs/{id}` latency at a steady pace
(under its own rate limit): first alone, then while a flooding user sends as fast as
FLOOD_CONNECTIONS keep-alive connections allow from another process (most answers are
429). With --unlimited, a third run with --api-rate 0 shows the same flood unthrottled.

    python bench/auth_fairness.py [--samples 300] [--pace 10] [--connections 8] [--unlimited]
    python bench/auth_fairness.py --throughput [--seconds 10]

--throughput instead measures what authentication costs: GET /v1/jobs/{id} requests per
second from 3 client processes (keep-alive http.client) with a token (--api-rate 0, so
nothing is refused) and with --no-auth, alternately, twice each.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "examples" / "images" / "shelf-640x480.jpg"
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def start_server(jobs: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAILPULSE_")}
    env.update(RETAILPULSE_JOBS_DIR=str(jobs), NO_COLOR="1")
    cmd = [sys.executable, "-m", "retailpulse_cli", "serve", "--port", "0", "--gpu-delay", "0"]
    proc = subprocess.Popen(
        [*cmd, "--allow-local-files", *extra],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        found = LISTENING.search(line)
        if found:
            # keep draining stderr so the server never blocks on a full pipe
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, found.group(1)
    raise SystemExit(f"serve did not start: exit {proc.wait()}")


def make_tokens(jobs: Path) -> dict[str, str]:
    from retailpulse_cli.server.security import tokens
    from retailpulse_cli.server.security.roles import Role

    path = tokens.tokens_path(jobs)
    return {
        "quiet": tokens.create(path, "quiet", Role.SUBMITTER),
        "flood": tokens.create(path, "flood", Role.VIEWER),
    }


def make_job(url: str, token: str) -> str:
    doc = {
        "count": 1,
        "visits": [
            {"store_id": "S00339218", "image_url": [str(IMAGE)], "visit_time": "2026-11-28T10:15Z"}
        ],
    }
    headers = {"Authorization": f"Bearer {token}"}
    r = requests.post(f"{url}/v1/jobs", data=json.dumps(doc), headers=headers, timeout=30)
    r.raise_for_status()
    job_id = str(r.json()["job_id"])
    while requests.get(f"{url}/v1/jobs/{job_id}", headers=headers, timeout=30).json()["status"] in (
        "queued",
        "ongoing",
    ):
        time.sleep(0.05)
    return job_id


def quiet_latencies(url: str, token: str, job_id: str, samples: int, pace: float) -> list[float]:
    """`samples` status calls, one every 1/pace s, on one keep-alive connection (seconds)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    out: list[float] = []
    next_at = time.perf_counter()
    for _ in range(samples):
        next_at = max(next_at + 1 / pace, time.perf_counter())  # no catch-up burst after a stall
        started = time.perf_counter()
        r = session.get(f"{url}/v1/jobs/{job_id}", timeout=30)
        out.append(time.perf_counter() - started)
        if r.status_code != 200:
            raise SystemExit(f"the quiet client got {r.status_code}: {r.text}")
        time.sleep(max(0.0, next_at - time.perf_counter()))
    return out


def _flood_connection(url: str, token: str, stop: Any, counts: Any) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    seen: Counter[int] = Counter()
    while not stop.is_set():
        seen[session.get(f"{url}/v1/jobs", timeout=30).status_code] += 1
    counts.put(dict(seen))


def _flood_process(url: str, token: str, connections: int, stop: Any, counts: Any) -> None:
    threads = [
        threading.Thread(target=_flood_connection, args=(url, token, stop, counts))
        for _ in range(connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure_with_flood(
    url: str, tokens: dict[str, str], job_id: str, args: argparse.Namespace
) -> tuple[list[float], Counter[int], float]:
    ctx = multiprocessing.get_context("spawn")
    stop, counts = ctx.Event(), ctx.Queue()
    flood = ctx.Process(
        target=_flood_process, args=(url, tokens["flood"], args.connections, stop, counts)
    )
    flood.start()
    time.sleep(1.0)  # the flood is under way before the first sample
    started = time.perf_counter()
    times = quiet_latencies(url, tokens["quiet"], job_id, args.samples, args.pace)
    stop.set()
    elapsed = time.perf_counter() - started + 1.0
    total: Counter[int] = Counter()
    for _ in range(args.connections):
        total.update({int(k): v for k, v in counts.get(timeout=60).items()})
    flood.join(60)
    return times, total, elapsed


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def line(label: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return (
        f"{label:<28} n={len(ms)}  p50 {statistics.median(ms):6.2f} ms  "
        f"p99 {p99(ms):6.2f} ms  max {max(ms):6.2f} ms"
    )


def flood_line(counts: Counter[int], seconds: float) -> str:
    sent = sum(counts.values())
    parts = ", ".join(f"{code}: {n:,}" for code, n in sorted(counts.items()))
    return f"{'':<28} flood sent {sent:,} requests ({sent / seconds:,.0f}/s; {parts})"


def run(args: argparse.Namespace, extra: tuple[str, ...], label: str) -> None:
    with tempfile.TemporaryDirectory(prefix="rp-fairness-") as tmp:
        jobs = Path(tmp) / "jobs"
        tokens = make_tokens(jobs)
        proc, url = start_server(jobs, *extra)
        try:
            job_id = make_job(url, tokens["quiet"])
            quiet_latencies(url, tokens["quiet"], job_id, 30, args.pace)  # warm-up
            alone = quiet_latencies(url, tokens["quiet"], job_id, args.samples, args.pace)
            loaded, counts, seconds = measure_with_flood(url, tokens, job_id, args)
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"-- {label}")
    print(line("quiet client, alone", alone))
    print(line("quiet client, during flood", loaded))
    print(flood_line(counts, seconds))
    ratio = p99(loaded) / p99(alone)
    verdict = "PASS" if ratio <= 2.0 else "FAIL"
    print(f"{'':<28} p99 with flood / alone = {ratio:.2f}x (target <= 2x: {verdict})")


def _hammer(port: int, path: str, token: str | None, seconds: float, out: Any) -> None:
    import http.client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    done = bad = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        done += 1
        bad += response.status != 200
    out.put((done, bad))


def requests_per_second(url: str, path: str, token: str | None, seconds: float) -> float:
    ctx = multiprocessing.get_context("spawn")
    port = int(url.rsplit(":", 1)[1])
    out = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(port, path, token, seconds, out)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    if any(bad for _, bad in results):
        raise SystemExit(f"non-200 answers: {results}")
    return sum(done for done, _ in results) / seconds


def throughput(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rp-throughput-") as tmp:
        jobs = Path(tmp) / "jobs"
        tokens = make_tokens(jobs)
        proc, url = start_server(jobs)
        try:
            job_id = make_job(url, tokens["quiet"])
        finally:
            proc.terminate()
            proc.wait(30)
        path = f"/v1/jobs/{job_id}"
        for round_no in (1, 2):
            for label, extra, token in (
                ("token (--api-rate 0)", ("--api-rate", "0"), tokens["quiet"]),
                ("--no-auth", ("--no-auth",), None),
            ):
                proc, url = start_server(jobs, *extra)
                try:
                    rate = requests_per_second(url, path, token, args.seconds)
                finally:
                    proc.terminate()
                    proc.wait(30)
                print(f"round {round_no}: GET /v1/jobs/ID, {label:<22} {rate:8,.0f} req/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300, help="status calls per phase")
    parser.add_argument("--pace", type=float, default=10.0, help="quiet calls per second")
    parser.add_argument("--connections", type=int, default=8, help="flooding connections")
    parser.add_argument("--unlimited", action="store_true", help="also run with --api-rate 0")
    parser.add_argument("--throughput", action="store_true", help="cost of authentication")
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput run")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}; load average: {os.getloadavg()[0]:.2f} (others' work skews)")
    if args.throughput:
        throughput(args)
        return
    run(args, (), "default limits (--api-rate 20/s --api-burst 40)")
    if args.unlimited:
        run(args, ("--api-rate", "0"), "no limit (--api-rate 0)")


if __name__ == "__main__":
    main()
