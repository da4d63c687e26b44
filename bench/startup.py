"""Start-up time of the commands that read, side by side with Python and Typer alone.

    python bench/startup.py [--runs 30]

Makes one small job (examples/jobs/with-failures.json, offline, --gpu-delay 0) in a
temporary jobs directory, then runs each command `--runs` times, interleaved (so a burst
of load from elsewhere hits every command alike), like hyperfine: wall time of the whole
process, median and spread. Issue 16's target: `status --json` within 1.3x of
`python -c 'import typer'`, the floor of any Typer CLI. It also lists the heavy modules
(Rich, requests, Pillow, Dask) each command imported, read from `python -X importtime`.
It prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JOB_FILE = REPO / "examples" / "jobs" / "with-failures.json"
HEAVY = ("rich", "requests", "urllib3", "PIL", "dask", "distributed", "fsspec")
TARGET = 1.3
TYPER = "python -c 'import typer'"
STATUS = "status --json"


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of `argv`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def heavy_imports(argv: list[str], env: dict[str, str]) -> list[str]:
    """Top-level packages among HEAVY that the command imported (`-X importtime`)."""
    traced = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    err = subprocess.run(argv, env=traced, capture_output=True, text=True, check=False).stderr
    found = set()
    for line in err.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[-1].strip().split(".")[0]
            if name in HEAVY:
                found.add(name)
    return sorted(found)


def retailpulse_command() -> list[str]:
    """The `retailpulse` script installed beside this Python, as users run it; else
    `python -m retailpulse_cli` (about a millisecond more: runpy)."""
    script = Path(sys.executable).parent / "retailpulse"
    return [str(script)] if script.exists() else [sys.executable, "-m", "retailpulse_cli"]


def make_job(env: dict[str, str]) -> str:
    argv = [*retailpulse_command(), "submit", str(JOB_FILE), "--gpu-delay", "0"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    job_id = done.stdout.strip()
    if not job_id:
        sys.exit(f"could not make a job: {done.stderr.strip()}")
    return job_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per command")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RETAILPULSE_JOBS_DIR": tmp, "NO_COLOR": "1"}
        env.pop("RETAILPULSE_CONFIG", None)
        # an installed package has its .pyc files: measure that, not compiling every run
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        job_id = make_job(env)
        rp = retailpulse_command()
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            TYPER: [sys.executable, "-c", "import typer"],
            STATUS: [*rp, "status", job_id, "--json"],
            "list --json": [*rp, "list", "--json"],
            "results": [*rp, "results", job_id],
            "status (table)": [*rp, "status", job_id],
        }
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():
            run_once(argv, env)  # warm the page cache and .pyc files
        for _ in range(args.runs):
            for name, argv in commands.items():
                w, c = run_once(argv, env)
                wall[name].append(w)
                cpu[name].append(c)
        report(commands, wall, cpu, env, args.runs)


def report(
    commands: dict[str, list[str]],
    wall: dict[str, list[float]],
    cpu: dict[str, list[float]],
    env: dict[str, str],
    runs: int,
) -> None:
    typer_wall = statistics.median(wall[TYPER])
    typer_cpu = statistics.median(cpu[TYPER])
    print(f"start-up, {runs} interleaved runs each: whole process, wall and CPU (user + system)")
    header = ("wall", "min", "x typer", "cpu", "x typer")
    print(f"{'command':<26} " + " ".join(f"{h:>8}" for h in header) + "  heavy imports")
    for name, argv in commands.items():
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        heavy = "" if name.startswith("python") else ", ".join(heavy_imports(argv, env))
        print(
            f"{name:<26} {w * 1000:>6.1f}ms {min(wall[name]) * 1000:>6.1f}ms "
            f"{w / typer_wall:>7.2f}x {c * 1000:>6.1f}ms {c / typer_cpu:>7.2f}x  {heavy or '-'}"
        )
    ratio = statistics.median(wall[STATUS]) / typer_wall
    cpu_ratio = statistics.median(cpu[STATUS]) / typer_cpu
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(
        f"status --json / import typer: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU (medians; "
        f"target <= {TARGET}x wall): {verdict}"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end: {load} (on a busy machine the CPU ratio is the steadier)")


if __name__ == "__main__":
    main()
