"""What `--save-images` costs (issue 13): the same `--gpu-delay 0` job without saving, to a
local folder, and to a real S3 API server (moto) on 127.0.0.1.

    python bench/save_bench.py --images 2000 --variants 400 --rounds 2

Every image URL is distinct, and `--variants` distinct photos are served (each stored once:
a folder of `--variants` files, as a night of real, different photos would be stored, up
to the variants). Each mode runs `--rounds` times into a fresh destination; the best
images/s of each is compared. Target: saving to a folder costs at most 15 % of the
throughput. The S3 figure is reported (moto is a Python server on the same cores: a floor).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from images import make_images  # noqa: E402
from imgserver import ImageServer  # noqa: E402
from jobfiles import make_job, pick_photo  # noqa: E402

from tests.s3server import S3Server  # noqa: E402 (the tests' real moto server)


def run(job: Path, jobs: Path, extra: list[str], env: dict[str, str]) -> float:
    """Seconds for one `submit --gpu-delay 0` of `job` (start-up included)."""
    cmd = [sys.executable, "-m", "retailpulse_cli", "submit", str(job), "--gpu-delay", "0"]
    t0 = time.monotonic()
    r = subprocess.run(
        [*cmd, *extra], env={**env, "RETAILPULSE_JOBS_DIR": str(jobs)}, capture_output=True
    )
    if r.returncode != 0:
        raise SystemExit(f"retailpulse failed: {r.stderr.decode()[-500:]}")
    return time.monotonic() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--variants", type=int, default=400)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    images = make_images(a.variants)
    with tempfile.TemporaryDirectory(prefix="rp-save-") as tmp_name:
        tmp = Path(tmp_name)
        s3 = S3Server(tmp / "moto.log")
        env = {
            **os.environ,
            "NO_COLOR": "1",
            "AWS_ENDPOINT_URL": s3.endpoint,
            "AWS_ACCESS_KEY_ID": s3.key_id,
            "AWS_SECRET_ACCESS_KEY": s3.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        try:
            with ImageServer(images.all(), 2) as server:
                job = make_job(
                    tmp / "job.json", a.images, lambda rng: pick_photo(images, rng), server.url("")
                ).path
                best: dict[str, float] = {}
                for k in range(a.rounds):
                    bucket = f"photos{k}"
                    s3.client("s3").create_bucket(Bucket=bucket)
                    modes = {
                        "no saving": [],
                        "folder": ["--save-images", str(tmp / f"folder{k}")],
                        "S3 (moto, loopback)": ["--save-images", f"s3://{bucket}/night"],
                    }
                    for name, extra in modes.items():
                        rate = a.images / run(job, tmp / f"jobs-{k}", extra, env)
                        best[name] = max(best.get(name, 0.0), rate)
                        print(f"round {k}: {name:<20} {rate:7.1f} img/s", flush=True)
        finally:
            s3.stop()
    base = best["no saving"]
    for name, rate in best.items():
        print(f"best {name:<20} {rate:7.1f} img/s  ({rate / base:.2f}x of no saving)")
    cost = 1 - best["folder"] / base
    print(
        f"saving to a folder costs {cost:.0%} of the --gpu-delay 0 throughput "
        f"(target <= 15%): {'PASS' if cost <= 0.15 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
