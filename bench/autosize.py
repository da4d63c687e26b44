"""Issue 17, finding 1: does the default download stage size itself as well as the best
fixed `--downloads`? Side by side in one run, on the benchmark's image server:

    python bench/autosize.py                      # 4,000 photos, --gpu-delay 0, 3 rounds
    python bench/autosize.py --fixed 8,32,128 --rounds 5

Each round runs, each as a fresh process and in this order: the one-call-read `requests`
thread pool (bench/references.py, 32 threads), `retailpulse submit` with default flags,
then with N downloads at once for every N of `--fixed` (`--downloads N --workers N`: the
window starts at the GPU slots and never passes --downloads, so it stays at N). Rounds
alternate the clients, so a busy spell of the shared machine hits all of them; medians are
compared. Targets: default flags within 5 % of the best fixed N, and >= 1.25x the
reference. The load average is printed before and after: on a shared machine the figures
are indicative only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchutil import DEFAULT_WORKERS, say  # noqa: E402
from images import make_images  # noqa: E402
from imgserver import ImageServer  # noqa: E402
from jobfiles import make_job, pick_photo  # noqa: E402
from measure import Cli  # noqa: E402
from references import run_reference  # noqa: E402

WITHIN_BEST = 0.95  # default flags >= this x the best fixed --downloads
VS_ONE_READ = 1.25  # default flags >= this x the one-call-read requests pool


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fixed", default="8,16,32,64,128", help="fixed downloads to compare")
    ap.add_argument("--gpu-delay", default="0")
    ap.add_argument("--workers", type=int, default=None, help="--workers (default: its own)")
    args = ap.parse_args()
    fixed = [int(v) for v in args.fixed.split(",") if v.strip()]
    say(f"load average before: {load()} (1, 5, 15 min; {os.cpu_count()} CPUs)")
    images = make_images(4)
    with ImageServer(images.all(), 2) as server, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        job = make_job(
            tmp / "job.json", args.images, lambda rng: pick_photo(images, rng), server.url("")
        )
        cli = Cli(sys.executable, tmp / "jobs")
        base = ["--gpu-delay", args.gpu_delay]
        if args.workers:
            base += ["--workers", str(args.workers)]
        configs = {"default flags": base}
        # --downloads is the most the stage runs at once; with --workers as big, the window
        # starts there too, so it is fixed. At --gpu-delay 0 the GPU slots set nothing else.
        configs.update(
            {f"fixed {d}": [*base, "--downloads", str(d), "--workers", str(d)] for d in fixed}
        )
        rates: dict[str, list[float]] = {"one-read reference": [], **{k: [] for k in configs}}
        threads = args.workers or DEFAULT_WORKERS
        for rnd in range(1, args.rounds + 1):
            ref = run_reference(sys.executable, "one-read", job.urls, threads, tmp)
            if ref.errors or ref.images != len(job.urls):
                raise SystemExit(f"reference failed: {ref.first_error}")
            rates["one-read reference"].append(ref.rate)
            say(f"[{rnd}] {'one-read reference':<20} {ref.rate:7.0f} img/s")
            for label, flags in configs.items():
                m = cli.submit(job.path, *flags)
                if m.rc != 0:
                    raise SystemExit(f"submit {' '.join(flags)} exited {m.rc}: {m.stderr[-800:]}")
                rates[label].append(len(job.urls) / m.wall)
                say(f"[{rnd}] {label:<20} {rates[label][-1]:7.0f} img/s ({m.wall:.2f} s wall)")
    say(f"load average after: {load()}")
    med = {k: statistics.median(v) for k, v in rates.items()}
    say(f"medians of {args.rounds} ({args.images:,} photos, --gpu-delay {args.gpu_delay}):")
    for label, rate in med.items():
        say(f"  {label:<20} {rate:7.0f} img/s")
    best_label = max((k for k in med if k.startswith("fixed")), key=med.__getitem__)
    default, best, ref_rate = med["default flags"], med[best_label], med["one-read reference"]
    checks = [
        (default >= WITHIN_BEST * best, f"default {default:.0f} >= {WITHIN_BEST:g} x best "
         f"fixed ({best_label}: {best:.0f}): {default / best:.2f}x"),
        (default >= VS_ONE_READ * ref_rate, f"default {default:.0f} >= {VS_ONE_READ:g} x "
         f"one-read reference ({ref_rate:.0f}): {default / ref_rate:.2f}x"),
    ]  # fmt: skip
    for ok, text in checks:
        say(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
