"""The README's "Results in a database" output, made for real: two jobs of visits over the
last days (images from the tests' HTTP server on 127.0.0.1, some slow, some broken, one
unknown store) submitted with `--results-db sqlite:///FILE` (`--gpu-delay 0`: elapsed_ms is
then the download), then the four queries run
with the sqlite3 shell. Prints the commands and their output.

    python bench/results_db_demo.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.imageserver import ImageServer  # noqa: E402

QUERIES = {
    "Failures by code per store, last 7 days": """
SELECT store_id, error_code, count(*) AS failures
FROM results
WHERE status = 'failed' AND visit_time >= datetime('now', '-7 days')
GROUP BY store_id, error_code
ORDER BY failures DESC, store_id, error_code;""",
    "Perimeter per store per day": """
SELECT store_id, visit_day, count(*) AS images, sum(perimeter) AS perimeter
FROM results
WHERE status = 'ok'
GROUP BY store_id, visit_day
ORDER BY store_id, visit_day;""",
    "Visits with no ok image": """
SELECT job_id, visit, store_id, visit_time_text, count(*) AS images
FROM results
GROUP BY job_id, visit, store_id, visit_time_text
HAVING sum(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) = 0
ORDER BY job_id, visit;""",
    "Slowest hosts": """
SELECT host, count(*) AS images, round(avg(elapsed_ms)) AS avg_ms, max(elapsed_ms) AS max_ms,
       sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed
FROM results
WHERE elapsed_ms IS NOT NULL
GROUP BY host
ORDER BY avg_ms DESC
LIMIT 10;""",
}


def visits(server: ImageServer, day: datetime, night: int) -> list[dict[str, object]]:
    fast, slow = server.url(""), server.url("").replace("127.0.0.1", "localhost")
    when = [(day + timedelta(hours=9 + h)).strftime("%Y-%m-%dT%H:%M:00+05:30") for h in range(5)]
    return [
        {"store_id": "S00339218", "visit_time": when[0], "image_url": [
            f"{fast}/img/640x480.jpg?n={night}", f"{fast}/img/{800 - 160 * night}x600.png"]},
        {"store_id": "S01408764", "visit_time": when[1], "image_url": [
            f"{slow}/nap/demo/a{night}.png?seconds=0.4", f"{fast}/status/404?n={night}",
            f"{fast}/img/1024x768.webp?n={night}"]},
        {"store_id": "S00339198", "visit_time": when[2], "image_url": [
            f"{fast}/truncated/640x480.jpg?n={night}", f"{slow}/status/503?n={night}"]},
        {"store_id": "S99999999", "visit_time": when[3], "image_url": [
            f"{fast}/img/320x240.gif?n={night}"]},
        {"store_id": "S00339204", "visit_time": when[4], "image_url": [
            f"{slow}/nap/demo/b{night}.jpg?seconds=0.25",
            f"{fast}/img/{1600 + 400 * night}x1200.jpg"]},
    ]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", type=Path, help="leave the jobs and pulse.db in this folder")
    a = p.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="rp-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "pulse.db"
    env = {**os.environ, "RETAILPULSE_JOBS_DIR": str(work / "jobs"), "NO_COLOR": "1"}
    server = ImageServer().start()
    try:
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        for night, days_ago in enumerate((2, 1)):
            job = work / f"night-{night}.json"
            doc = visits(server, today - timedelta(days=days_ago), night)
            job.write_text(json.dumps({"count": len(doc), "visits": doc}))
            subprocess.run(
                [sys.executable, "-m", "retailpulse_cli", "submit", str(job), "-q",
                 "--results-db", f"sqlite:///{db}", "--retries", "0", "--gpu-delay", "0"],
                env=env, check=False, cwd=work,
            )  # fmt: skip
    finally:
        server.stop()
    for title, sql in QUERIES.items():
        print(f"-- {title}{sql}")
        out = subprocess.run(
            ["sqlite3", "-header", "-column", str(db), sql], capture_output=True, text=True
        )
        print(out.stdout + out.stderr)


if __name__ == "__main__":
    main()
