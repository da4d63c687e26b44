"""Kill Dask worker processes and the driver of `--cluster local:2` runs, resume, and
count: every image must end with exactly one record.

    python bench/cluster_chaos.py --rounds 5 --images 300

Each round submits a job on `--cluster local:2`, SIGKILLs one worker process once some
results are on disk, then SIGKILLs the driver, checks `status` reads `interrupted`, and
resumes (alternately with and without `--cluster`). Prints the kills and the missing and
duplicated indices (both must be 0). Talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.imageserver import ImageServer  # noqa: E402 (the tests' real image server)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "retailpulse_cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def records(jobs: Path, job_id: str) -> list[int]:
    lines = (jobs / job_id / "results.jsonl").read_text().splitlines()[1:]
    return [json.loads(line)["index"] for line in lines if line.strip()]


def wait_for(predicate: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting")
        time.sleep(0.05)


def one_round(n: int, k: int, server: ImageServer, base: Path) -> tuple[int, int, int]:
    """(worker kills, missing, duplicates) of one round."""
    jobs = base / f"jobs{k}"
    env = {**os.environ, "RETAILPULSE_JOBS_DIR": str(jobs), "NO_COLOR": "1"}
    urls = [server.url(f"/img/{100 + k * 1000 + i}x20.png") for i in range(n)]
    job = base / f"job{k}.json"
    visits = [{"store_id": "S00339218", "image_url": urls, "visit_time": "2026-12-01T03:00Z"}]
    job.write_text(json.dumps({"count": 1, "visits": visits}))
    args = ["--cluster", "local:2", "--shard-size", "20", "--workers", "4", "--gpu-delay", "0.05"]
    cmd = [sys.executable, "-m", "retailpulse_cli", "submit", str(job), *args]
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = lambda: list(jobs.glob("*/results.jsonl"))  # noqa: E731
    wait_for(lambda: results() and len(results()[0].read_text().splitlines()) > n // 5, 120)
    workers = [
        c
        for c in psutil.Process(driver.pid).children(recursive=True)
        if "spawn_main" in " ".join(c.cmdline()) or "forkserver" in " ".join(c.cmdline())
    ]
    kills = 0
    if workers:
        os.kill(workers[0].pid, signal.SIGKILL)
        kills = 1
    wait_for(lambda: len(results()[0].read_text().splitlines()) > n // 2, 120)
    driver.send_signal(signal.SIGKILL)
    driver.wait(30)
    job_id = results()[0].parent.name
    status = json.loads(cli("status", job_id, "--json", env=env).stdout)
    assert status["status"] == "interrupted", status
    resume = ["resume", job_id, "--gpu-delay", "0"]
    if k % 2 == 0:
        resume += ["--cluster", "local:2"]
    r = cli(*resume, env=env)
    assert r.returncode == 0, r.stderr
    seen = records(jobs, job_id)
    missing = len(set(range(n)) - set(seen))
    return kills, missing, len(seen) - len(set(seen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=300)
    a = parser.parse_args()
    server = ImageServer().start()
    # a killed client resets its connections: expected here, not worth a traceback each
    server.httpd.handle_error = lambda *_: None  # type: ignore[method-assign]
    totals = [0, 0, 0, 0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(a.rounds):
                kills, missing, dups = one_round(a.images, k, server, Path(tmp))
                totals = [totals[0] + kills, totals[1] + 1, totals[2] + missing, totals[3] + dups]
                print(
                    f"round {k}: worker killed {kills}, driver killed 1, missing {missing}, "
                    f"duplicated {dups}"
                )
    finally:
        server.stop()
    print(
        f"worker kills {totals[0]}, driver kills {totals[1]}, images {a.rounds * a.images}, "
        f"missing {totals[2]}, duplicated {totals[3]}: "
        f"{'PASS' if totals[2] == totals[3] == 0 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
