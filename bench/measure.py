"""Measured subprocesses: wall, peak RSS and CPU of exactly one command."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchutil import REPO, fmt_mb, fmt_s, say

# -- measured subprocesses -------------------------------------------------------------------


@dataclass
class Measured:
    argv: list[str]
    rc: int
    wall: float
    maxrss_kib: int
    cpu_user: float
    cpu_sys: float
    stdout: str
    stderr: str
    rss_samples: list[tuple[float, int]] = field(default_factory=list)

    def rss_at(self, fraction: float) -> int | None:
        if not self.rss_samples:
            return None
        t = self.wall * fraction
        return min(self.rss_samples, key=lambda s: abs(s[0] - t))[1]


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


# A small launcher between the benchmark and each measured command. Linux charges a process
# created by fork/vfork + exec with the RSS its parent had at the exec (ru_maxrss is kept
# across exec), so a child of this benchmark (tens of MB of images) would report at least
# that. The launcher is a bare interpreter (~10 MB): its forked child is charged ~10 MB at
# most, the floor of every peak RSS printed here. It times the child from fork to reaping.
LAUNCHER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None)
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    libc.prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM: never outlive the launcher
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{code} {wall} {ru.ru_maxrss} {ru.ru_utime} {ru.ru_stime}")
sys.exit(code if 0 <= code < 256 else 1)
"""


def _child_pid(launcher: int) -> int | None:
    try:
        with open(f"/proc/{launcher}/task/{launcher}/children", encoding="ascii") as fh:
            pids = fh.read().split()
    except OSError:
        return None
    return int(pids[0]) if pids else None


def run_measured(
    argv: list[str],
    *,
    capture_stdout: bool = True,
    sample_rss: bool = False,
    env: dict[str, str] | None = None,
) -> Measured:
    """Run a command; its wall time, and the peak RSS and CPU time of exactly that process."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as report:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER, report.name, *argv],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            stderr=err,
        )
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        sampler: threading.Thread | None = None
        if sample_rss:

            def sample() -> None:
                child = None
                while not stop.wait(0.2):
                    child = child or _child_pid(proc.pid)
                    rss = _rss_kib(child) if child else None
                    if rss is not None:
                        samples.append((time.perf_counter() - t0, rss))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
        try:
            out = proc.stdout.read() if proc.stdout is not None else b""
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            stop.set()
            if proc.stdout is not None:
                proc.stdout.close()
        if sampler is not None:
            sampler.join()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        fields = report.read().split()
    if len(fields) != 5:
        raise RuntimeError(f"launcher failed ({proc.returncode}) for {argv}: {stderr[-500:]}")
    code, wall, maxrss, utime, stime = fields
    return Measured(
        argv,
        int(code),
        float(wall),
        int(maxrss),
        float(utime),
        float(stime),
        out.decode(errors="replace"),
        stderr,
        samples,
    )


class Cli:
    """`retailpulse` as a user runs it: a new process per command."""

    def __init__(self, python: str, jobs_dir: Path) -> None:
        self.base = [python, "-m", "retailpulse_cli"]
        self.jobs_dir = jobs_dir

    def argv(self, *args: str, jobs_dir: bool = True) -> list[str]:
        extra = ["--jobs-dir", str(self.jobs_dir)] if jobs_dir else []
        return [*self.base, *args, *extra]

    def submit(self, job: Path, *flags: str) -> Measured:
        return run_measured(self.argv("submit", str(job), "--quiet", *flags), sample_rss=True)

    def status_json(self, job_id: str) -> dict[str, Any]:
        m = run_measured(self.argv("status", job_id, "--json"))
        if m.rc != 0:
            raise RuntimeError(f"status {job_id} exited {m.rc}: {m.stderr.strip()[-500:]}")
        doc: dict[str, Any] = json.loads(m.stdout)
        return doc

    def has_command(self, name: str) -> bool:
        m = run_measured([*self.base, name, "--help"])
        return m.rc == 0


@dataclass
class Timed:
    label: str
    walls: list[float]
    rc: int
    maxrss_kib: int
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.walls) if self.walls else float("nan")

    @property
    def best(self) -> float:
        return min(self.walls) if self.walls else float("nan")


def time_command(
    label: str, argv: list[str], repeat: int, *, ok_codes: Sequence[int] = (0,)
) -> Timed:
    walls: list[float] = []
    rc = 0
    maxrss = 0
    for _ in range(repeat):
        m = run_measured(argv, capture_stdout=False)
        walls.append(m.wall)
        rc = m.rc
        maxrss = max(maxrss, m.maxrss_kib)
        note = m.stderr.strip()[-300:] if m.rc != 0 else ""
        if m.rc not in ok_codes:
            return Timed(label, walls, m.rc, maxrss, note=note)
    return Timed(label, walls, rc, maxrss, note=note if rc not in (0, *ok_codes) else "")


def show_timed(t: Timed, target: float | None = None) -> None:
    verdict = ""
    if target is not None:
        verdict = f"  target < {target:g}s: {'PASS' if t.median < target else 'FAIL'}"
    runs = ", ".join(f"{w:.3f}" for w in t.walls)
    say(
        f"  {t.label:<34} median {fmt_s(t.median)}  (runs: {runs}; exit {t.rc}; "
        f"peak RSS {fmt_mb(t.maxrss_kib)}){verdict}"
    )
    if t.note:
        say(f"    stderr: {t.note}")
