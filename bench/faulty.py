"""Wall time of a job where a share of the URLs misbehave, against the same job with none.

    python bench/faulty.py --images 1000 --faulty 0.2

Uses the test suite's threaded image server on 127.0.0.1 (tests/imageserver.py). The
faulty fifth is spread over the failure kinds a real CDN shows: 404, 503 that recovers,
503 that never does, 429 with Retry-After, a server that never answers, a byte-a-second
drip, a truncated image, HTML instead of an image, a lying Content-Length, a redirect loop.
Runs `retailpulse submit` as a subprocess with default settings except where given, and
judges issue 10's target: the faulty job's wall <= 1.1 x (sum of the GPU delays of the images
that end ok / --workers + --timeout): the faulty URLs may cost one --timeout, not GPU slots.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import targets  # noqa: E402  (bench/targets.py: this script's folder is on sys.path)

from tests.imageserver import ImageServer  # noqa: E402

DELAY = (0.1, 0.4)  # retailpulse's default --gpu-delay

FAULTS = [
    "/status/404",
    "/flaky/{i}?fail=1",
    "/status/503",
    "/ratelimited/{i}?after=1",
    "/slow?seconds=30",
    "/drip?every=1",
    "/truncated/640x480.jpg",
    "/notimage",
    "/lying-length",
    "/loop",
]


def make_job(
    server: ImageServer, path: Path, n: int, faulty: float, tag: str, without: str = ""
) -> None:
    every = round(1 / faulty) if faulty else 0
    urls = []
    for i in range(n):
        if every and i % every == every - 1:
            fault = FAULTS[(i // every) % len(FAULTS)]
            if without and fault.startswith(f"/{without}"):
                fault = "/status/404"  # --without: the same share faulty, that kind excluded
            urls.append(server.url(fault.format(i=f"{tag}{i}")))
        else:
            urls.append(server.url(f"/img/{400 + i % 600}x300.jpg"))
    visits = [
        {"store_id": "S00339218", "image_url": urls[i : i + 4], "visit_time": "night"}
        for i in range(0, n, 4)
    ]
    path.write_text(json.dumps({"count": len(visits), "visits": visits}))


def run(job: Path, jobs: Path, extra: list[str]) -> tuple[float, dict[str, object]]:
    t0 = time.monotonic()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "retailpulse_cli",
            "submit",
            str(job),
            "--json",
            "--quiet",
            "--jobs-dir",
            str(jobs),
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    if r.returncode not in (0, 1):
        raise SystemExit(f"submit exited {r.returncode}: {r.stderr}")
    return wall, json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--faulty", type=float, default=0.2)
    ap.add_argument("--timeout", default="10", help="--timeout for retailpulse (default 10 s)")
    ap.add_argument("--workers", default="32", help="--workers for retailpulse (default 32)")
    ap.add_argument("--seed", default="42", help="--seed for retailpulse (default 42)")
    ap.add_argument(
        "--without",
        default="",
        help="replace one fault kind by 404s, e.g. --without ratelimited (what it costs)",
    )
    ap.add_argument("extra", nargs="*", help="more retailpulse flags, after --")
    args = ap.parse_args()
    server = ImageServer().start()
    extra = ["--timeout", args.timeout, "--workers", args.workers, "--seed", args.seed]
    extra += args.extra
    verdicts = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            for label, share in (("clean", 0.0), ("faulty", args.faulty)):
                job = base / f"{label}.json"
                make_job(server, job, args.images, share, label, args.without)
                wall, status = run(job, base / "jobs", extra)
                codes = Counter(status.get("failures_by_code") or {})  # type: ignore[arg-type]
                print(
                    f"{label:7} {args.images:,} images, {share:.0%} faulty: {wall:6.1f} s wall, "
                    f"{status['images_ok']:,} ok, {status['images_failed']:,} failed "
                    f"{dict(codes) if codes else ''}  (retailpulse submit {' '.join(extra)})"
                )
                if share:
                    ok = ok_indices(base / "jobs" / str(status["job_id"]))
                    good = sum(targets.gpu_delays(int(args.seed), ok, *DELAY))
                    workers, timeout = int(args.workers), float(args.timeout)
                    verdicts.append(targets.faulty(wall, good, workers, timeout))
    finally:
        server.stop()
    for text, passed in verdicts:
        print(f"{'PASS' if passed else 'FAIL'}  {text}")


def ok_indices(job_dir: Path) -> list[int]:
    """Indices of the images recorded ok (results.jsonl: a header line, then records)."""
    lines = (job_dir / "results.jsonl").read_text().splitlines()[1:]
    records = [json.loads(line) for line in lines]
    return [r["index"] for r in records if r.get("status") == "ok"]


if __name__ == "__main__":
    main()
