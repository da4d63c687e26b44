"""retailpulse benchmark: a local image server, reference clients, and retailpulse itself.

Run from the repository root with the project's Python (see bench/README.md):

    python bench/bench.py --images 4000                          # vs reference clients
    python bench/bench.py --images 1000 --gpu-curve 16,32,64,128  # default GPU delay
    python bench/bench.py --images 0 --scale 20000,200000        # memory, status, validation
    python bench/bench.py --smoke                                # seconds; exit 0 if all worked

Everything talks to 127.0.0.1 only. The image server runs in separate processes (its CPU
does not share a GIL with any client); every client runs in its own process too, started
fresh, so each one is measured alone. Human-readable lines go to stdout, or to stderr
with --json, which prints one summary object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchutil import DEFAULT_MIX, DEFAULT_WORKERS, HOST, REPO, say, set_output
from curve import gpu_curve
from images import make_images
from imgserver import ImageServer
from jobfiles import make_job, pick_photo
from measure import Cli
from references import reference_main
from scaling import scale, validation
from sections import Context, compare, fixed_cost, startup_baseline

# -- main ------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers like 16,32,64") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers")
    return values


def _mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    try:
        for part in text.split(","):
            kind, _, weight = part.partition("=")
            if kind.strip() not in DEFAULT_MIX:
                raise ValueError(kind)
            mix[kind.strip()] = float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. jpeg=85,png=10,webp=5") from None
    if sum(mix.values()) <= 0 or min(mix.values()) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: weights must be >= 0, not all 0")
    return mix


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark retailpulse against reference download clients on 127.0.0.1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--images",
        type=int,
        default=4000,
        help="images in the comparison run (--gpu-delay 0); 0 skips it",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"workers for retailpulse and the thread pools [{DEFAULT_WORKERS}]",
    )
    p.add_argument(
        "--downloads",
        type=int,
        default=None,
        help="--downloads for retailpulse [its default]",
    )
    p.add_argument(
        "--seq-cap",
        type=int,
        default=1000,
        help="the sequential reference fetches at most this many images",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="comparison rounds (references then retailpulse); medians are compared",
    )
    p.add_argument(
        "--gpu-curve",
        type=_int_list,
        default=None,
        metavar="W1,W2,...",
        help="run the default GPU delay at these --workers values",
    )
    p.add_argument("--curve-images", type=int, default=1000, help="images per curve run")
    p.add_argument("--seed", type=int, default=42, help="--seed for the curve's GPU delays")
    p.add_argument(
        "--scale",
        type=_int_list,
        default=None,
        metavar="N1,N2,...",
        help="memory scaling: job sizes (tiny images, --gpu-delay 0)",
    )
    p.add_argument(
        "--validate-visits",
        type=int,
        default=None,
        help="time validation of a job file of this many visits [100000 with --scale, else off]",
    )
    p.add_argument("--repeat", type=int, default=3, help="runs of each timed command")
    p.add_argument("--server-procs", type=int, default=2, help="image server processes")
    p.add_argument("--variants", type=int, default=6, help="distinct JPEG images served")
    p.add_argument(
        "--mix",
        type=_mix,
        default=dict(DEFAULT_MIX),
        metavar="jpeg=85,png=10,webp=5",
        help="share of each format among the photos",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs retailpulse and the references",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run (50 images) for CI: exit 0 when everything worked",
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="only start the server and write a job of --images images; wait for "
        "Ctrl-C (for profiling retailpulse by hand)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print a summary object on stdout (the text goes to stderr)",
    )
    p.add_argument("--_reference", help=argparse.SUPPRESS)
    p.add_argument("--_url-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--_no-decode", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.images = 50
        args.seq_cap = 50
        args.repeat = 1
        args.rounds = 1
        args.variants = 1
        args.curve_images = min(args.curve_images, 40)
    if args.validate_visits is None:
        args.validate_visits = 100_000 if args.scale else 0
    return args


def serve_forever(ctx: Context) -> None:
    """Keep the server up with a job file (and one of tiny images) in the temp dir, e.g. to
    run retailpulse under a profiler by hand; Ctrl-C or SIGTERM stops and cleans up."""
    n = ctx.args.images or 4000
    job = make_job(
        ctx.tmp / f"job-{n}.json", n, lambda rng: pick_photo(ctx.images, rng), ctx.server.url("")
    )
    tiny = make_job(
        ctx.tmp / f"tiny-{n}.json", n, lambda rng: rng.choice(ctx.images.tiny), ctx.server.url("")
    )
    say(f"serving on {ctx.server.url('/')} (pid {os.getpid()})")
    say(f"job file: {job.path} ({len(job.urls):,} images, {job.bytes_total / 1e6:.0f} MB)")
    say(f"tiny-image job file: {tiny.path}")
    say("Ctrl-C (or kill -TERM the pid above) stops the server and removes these files.")
    try:
        while all(p.is_alive() for p in ctx.server.procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def git_state() -> str:
    """The commit measured, and whether the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "retailpulse_cli"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = len(dirty.splitlines())
    return f"{head}" + (f" + {changed} uncommitted file(s) in retailpulse_cli/" if changed else "")


def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    summary: dict[str, Any] = {
        "argv": sys.argv[1:],
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    say(
        f"retailpulse benchmark: {os.cpu_count()} CPUs, Python {summary['python']}, "
        f"server {args.server_procs} processes on {HOST}"
    )
    summary["git"] = git_state()
    say(f"retailpulse source: {summary['git']}")
    t0 = time.perf_counter()
    images = make_images(args.variants)
    images.mix = args.mix
    sizes = {k: [len(b.body) for b in v] for k, v in images.photos.items()}
    say(
        f"images made in {time.perf_counter() - t0:.1f}s: "
        + "; ".join(f"{k} {len(v)}x ~{statistics.mean(v) / 1e3:.0f} KB" for k, v in sizes.items())
        + f"; tiny PNG ~{statistics.mean(len(b.body) for b in images.tiny) / 1e3:.1f} KB"
    )
    summary["image_bytes"] = sizes
    problems: list[str] = []
    targets: list[tuple[str, str, str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="rp-bench-") as tmp_name,
        ImageServer(images.all(), args.server_procs) as server,
    ):
        tmp = Path(tmp_name)
        ctx = Context(args, args.python, tmp, server, images, summary, problems, targets)
        if args.serve:
            serve_forever(ctx)
            return 0
        cli = Cli(args.python, tmp / "jobs")
        startup_baseline(ctx, cli)
        fixed = fixed_cost(ctx, cli)
        if args.images > 0:
            compare(ctx, cli, fixed)
        if args.gpu_curve:
            gpu_curve(ctx, cli, fixed)
        if args.scale:
            scale(ctx, cli)
        if args.validate_visits:
            validation(ctx, cli)
    say("== targets (issues 6 and 10)")
    for name, measured, verdict in targets:
        say(f"  {verdict:<4}  {name}: {measured}")
    summary["targets"] = [{"target": t, "measured": m, "verdict": v} for t, m, v in targets]
    summary["problems"] = problems
    summary["seconds"] = time.perf_counter() - t_start
    say(
        f"== done in {summary['seconds']:.0f}s; "
        + ("no problems" if not problems else f"PROBLEMS: {'; '.join(problems)}")
    )
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args._reference:
        reference_main(
            args._reference, args._url_file, args.workers or DEFAULT_WORKERS, not args._no_decode
        )
        return 0
    if args.json:
        set_output(sys.stderr)

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # runs the cleanup: servers stopped, temp dir removed

    signal.signal(signal.SIGTERM, terminate)
    try:
        return run(args)
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
