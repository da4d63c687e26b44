"""`--cluster local:2` against the single process, on the benchmark's image server.

    python bench/cluster_bench.py                 # 4,000 images, default GPU delay and 0
    python bench/cluster_bench.py --images 1000   # quicker, same shape

Prints wall time and CPU per image of `retailpulse submit` (32 slots per process) in this
process and on a 2-worker LocalCluster, their ratio against the issue's targets (>= 1.8x
with the default GPU delay, >= 0.8x with `--gpu-delay 0`), and the start-up time of a
2-worker LocalCluster (target < 2 s). On a shared or busy machine the numbers are
indicative only: run it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench as B  # noqa: E402  (bench/bench.py: the image server and job maker)


def submit(job: Path, jobs: Path, extra: list[str]) -> tuple[float, float, dict[str, object]]:
    """Wall seconds, CPU seconds (the CLI and every process under it), final status.

    The LocalCluster's workers are forked by a forkserver the CLI never waits for, so
    RUSAGE_CHILDREN misses them and the forkserver: their CPU is sampled (psutil, every
    0.05 s, so the last <= 0.05 s of each is missed) and added."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(
        [sys.executable, "-m", "retailpulse_cli", "submit", str(job), "--json", "--quiet",
         "--jobs-dir", str(jobs), "--workers", "32", "--seed", "1", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    forked: dict[int, float] = {}  # the forkserver's and its workers' CPU, last seen
    while p.poll() is None:
        with contextlib.suppress(psutil.Error):
            for kid in psutil.Process(p.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if "forkserver" in " ".join(kid.cmdline()):
                        t = kid.cpu_times()
                        forked[kid.pid] = t.user + t.system
        time.sleep(0.05)
    out, err = p.communicate()
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"submit {' '.join(extra)} exited {p.returncode}: {err}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu + sum(forked.values()), json.loads(out)


def startup() -> float:
    """Seconds from nothing to a 2-worker LocalCluster that answered the version check."""
    code = (
        "import time; t=time.monotonic()\n"
        "from retailpulse_cli.processing.dask_engine import DaskEngine, parse_cluster\n"
        "e = DaskEngine(parse_cluster('local:2')); e.open(); print(time.monotonic()-t); e.close()"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(r.stdout.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each; the best is judged")
    ap.add_argument("--delays", default="0.1:0.4,0", help="--gpu-delay values, comma-separated")
    args = ap.parse_args()
    targets = {"0.1:0.4": 1.8, "0": 0.8}
    images = B.make_images(4)
    with B.ImageServer(images.all(), 2) as server, tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for delay in args.delays.split(","):
            job = B.make_job(
                base / f"job{delay}.json",
                args.images,
                lambda rng: rng.choice(images.photos["jpeg"]),
                server.url(""),
            )
            walls: dict[str, list[float]] = {"local": [], "local:2": []}
            for _ in range(args.repeat):  # alternated, so a busy spell hits both
                for where in walls:
                    wall, cpu, st = submit(job.path, base / "jobs", ["--gpu-delay", delay,
                                                                   "--cluster", where])  # fmt: skip
                    assert st["images_ok"] == args.images, st
                    walls[where].append(wall)
                    print(
                        f"--gpu-delay {delay:7} --cluster {where:8} {args.images:,} images: "
                        f"{wall:6.2f} s wall, {args.images / wall:7.1f} img/s, "
                        f"CPU {cpu / args.images * 1000:5.2f} ms/image"
                    )
            ratio = min(walls["local"]) / min(walls["local:2"])
            target = targets.get(delay)
            verdict = "" if target is None else "PASS" if ratio >= target else "FAIL"
            print(
                f"{verdict:4}  --gpu-delay {delay}: local:2 / single process speed {ratio:.2f}x "
                f"(best of {args.repeat} each; target >= {target}x)"
            )
    took = sorted(startup() for _ in range(3))[1]
    print(f"{'PASS' if took < 2 else 'FAIL'}  LocalCluster local:2 start-up: {took:.2f} s "
          "(median of 3; target < 2 s)")  # fmt: skip


if __name__ == "__main__":
    main()
