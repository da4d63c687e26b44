"""What `--save-images` costs (issues 13 and 21): the same `--gpu-delay 0` job without saving,
to a local folder, and to a local folder while another program writes to the same file system.

    python bench/save_bench.py --images 2000 --variants 400 --rounds 3
    python bench/save_bench.py --s3                 # also to a real S3 API server (moto)

Every image URL is distinct, and `--variants` distinct photos are served (each stored once:
a folder of `--variants` files, as a night of real, different photos would be stored, up
to the variants). Each mode runs once per round into a fresh destination (`os.sync()` first,
so no round inherits the dirty pages of the one before); the best images/s of each mode over
`--rounds` is compared. Targets: saving to a folder costs at most 15 % of the throughput
without saving, and at most 20 % while the other writer runs.

The other writer is this script run again as a separate process (`--writer-only`): it writes
zeros to one file in the same temp folder, like `dd`, at `--writer-mbps` (default 100; 0 = as
fast as it can, which takes a core of its own here), fsyncs every `--writer-fsync-mb` (default
1024: like `dd`, it leaves write-back to the kernel between), wraps back to the start of the
file at `--writer-mb` (so the file never grows past it), stops after `--writer-seconds` or
when the run it shares the disk with ends, and its file is removed. "no saving + writer"
shows what the writer costs a job that saves nothing (its CPU and its I/O): the rest of the
"folder + writer" cost is what the writer does to saving. The S3 figure is reported without
a verdict (moto is a Python server on the same cores: a floor for S3, not an estimate).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from images import make_images  # noqa: E402
from imgserver import ImageServer  # noqa: E402
from jobfiles import make_job, pick_photo  # noqa: E402

CHUNK = 1 << 20
ALONE_TARGET = 0.15  # issue 13
WRITER_TARGET = 0.20  # issue 21


def run(job: Path, jobs: Path, extra: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds for one `submit --gpu-delay 0` of `job` (start-up included), and the CPU
    seconds the process used (user + system: steadier than the wall on a busy machine)."""
    cmd = [sys.executable, "-m", "retailpulse_cli", "submit", str(job), "--gpu-delay", "0"]
    os.sync()  # each run starts with no dirty pages of the runs before it
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(
        [*cmd, *extra], env={**env, "RETAILPULSE_JOBS_DIR": str(jobs)}, capture_output=True
    )
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"retailpulse failed: {r.stderr.decode()[-500:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


# -- the other writer ------------------------------------------------------------------------


def write_like_dd(path: Path, mbps: float, fsync_mb: int, cap_mb: int, seconds: float) -> None:
    """The other program: zeros into `path`, paced, fsynced now and then, never past `cap_mb`."""
    stopped = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    zeros = bytes(CHUNK)
    start = time.monotonic()
    written = 0
    with path.open("wb", buffering=0) as out:
        print("ready", flush=True)
        while not stopped and time.monotonic() - start < seconds:
            if written and written % (cap_mb * CHUNK) == 0:
                out.seek(0)
            out.write(zeros)
            written += CHUNK
            if written % (fsync_mb * CHUNK) == 0:
                os.fsync(out.fileno())
            if mbps:
                ahead = written / (mbps * CHUNK) - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    took = time.monotonic() - start
    print(f"{written / CHUNK:.0f} MB in {took:.1f} s", flush=True)


@contextmanager
def other_writer(folder: Path, a: argparse.Namespace) -> Iterator[list[str]]:
    """Run the other writer in `folder` while the body runs; yield its report (filled at exit)."""
    path = folder / "other-writer.bin"
    cmd = [sys.executable, __file__, "--writer-only", str(path)]
    cmd += ["--writer-mbps", str(a.writer_mbps), "--writer-fsync-mb", str(a.writer_fsync_mb)]
    cmd += ["--writer-mb", str(a.writer_mb), "--writer-seconds", str(a.writer_seconds)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    report: list[str] = []
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("bench: the other writer did not start")
        time.sleep(0.5)  # it has dirty pages out before the job starts
        yield report
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        report.append(out.strip())
        path.unlink(missing_ok=True)


# -- the comparison --------------------------------------------------------------------------


def one_round(
    k: int, job: Path, tmp: Path, a: argparse.Namespace, env: dict[str, str]
) -> dict[str, float]:
    rates: dict[str, float] = {}
    modes: list[tuple[str, bool, list[str]]] = [
        ("no saving", False, []),
        ("folder", False, ["--save-images", str(tmp / "photos")]),
        ("no saving + writer", True, []),
        ("folder + writer", True, ["--save-images", str(tmp / "photos")]),
    ]
    if a.s3:
        modes.append(("S3 (moto, loopback)", False, ["--save-images", f"s3://photos{k}/night"]))
    for name, with_writer, extra in modes:
        with ExitStack() as stack:
            report = stack.enter_context(other_writer(tmp, a)) if with_writer else None
            seconds, cpu = run(job, tmp / f"jobs-{k}-{len(rates)}", extra, env)
        shutil.rmtree(tmp / "photos", ignore_errors=True)
        rates[name] = a.images / seconds
        wrote = f"  (the other writer: {report[0]})" if report else ""
        print(
            f"round {k}: {name:<20} {rates[name]:7.1f} img/s"
            f"  CPU {cpu / a.images * 1e3:.2f} ms/image{wrote}",
            flush=True,
        )
    return rates


def verdict(best: dict[str, float]) -> None:
    base = best["no saving"]
    for name, rate in best.items():
        print(f"best {name:<20} {rate:7.1f} img/s  ({rate / base:.2f}x of no saving)")
    for label, rate, target in (
        ("to a folder", best["folder"], ALONE_TARGET),
        ("to a folder, other writer running", best["folder + writer"], WRITER_TARGET),
    ):
        cost = 1 - rate / base
        print(
            f"saving {label} costs {cost:.0%} of the --gpu-delay 0 throughput without saving "
            f"(target <= {target:.0%}): {'PASS' if cost <= target else 'FAIL'}"
        )
    alone = best["no saving + writer"]
    print(
        f"(against no saving with the writer running too: "
        f"{1 - best['folder + writer'] / alone:.0%})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--variants", type=int, default=400)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--s3", action="store_true", help="also save to a local moto S3 server")
    p.add_argument("--writer-mbps", type=float, default=100, help="0: as fast as it can")
    p.add_argument("--writer-fsync-mb", type=int, default=1024)
    p.add_argument("--writer-mb", type=int, default=1024, help="its file never grows past it")
    p.add_argument("--writer-seconds", type=float, default=120)
    p.add_argument("--writer-only", metavar="PATH", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.writer_only:
        write_like_dd(
            Path(a.writer_only), a.writer_mbps, a.writer_fsync_mb, a.writer_mb, a.writer_seconds
        )
        return
    images = make_images(a.variants)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rp-save-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        env = {**os.environ, "NO_COLOR": "1"}
        if a.s3:
            from tests.s3server import S3Server  # the tests' real moto server

            s3 = S3Server(tmp / "moto.log")
            stack.callback(s3.stop)
            env.update(
                AWS_ENDPOINT_URL=s3.endpoint,
                AWS_ACCESS_KEY_ID=s3.key_id,
                AWS_SECRET_ACCESS_KEY=s3.secret,
                AWS_DEFAULT_REGION="us-east-1",
            )
        server = stack.enter_context(ImageServer(images.all(), 2))
        job = make_job(
            tmp / "job.json", a.images, lambda rng: pick_photo(images, rng), server.url("")
        ).path
        best: dict[str, float] = {}
        for k in range(a.rounds):
            if a.s3:
                s3.client("s3").create_bucket(Bucket=f"photos{k}")
            for name, rate in one_round(k, job, tmp, a, env).items():
                best[name] = max(best.get(name, 0.0), rate)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    verdict(best)


if __name__ == "__main__":
    main()
