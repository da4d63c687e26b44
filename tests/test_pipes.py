"""Losing the reader (issue 9, finding 5): a closed stderr or stdout, or a hang-up, never
stops or fails a job; it completes, with every result on disk. Real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import jobs_in, results_of, start_cli, unstamped, visit, write_job
from .imageserver import ImageServer

N = 40
SLOW = ("--gpu-delay", "0.03", "--workers", "2")  # ~0.6 s of work: the reader leaves early


def _job(server: ImageServer, tmp_path: Path, base: int) -> Path:
    urls = [server.url(f"/img/{base + i}x20.png") for i in range(N)]
    return write_job(tmp_path / f"job-{base}.json", [visit("S00339218", *urls)])


def _the_job(env: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    (job_id,) = jobs_in(env)
    status = json.loads((Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "status.json").read_text())
    return status, results_of(env, job_id)


def _assert_completed(env: dict[str, str]) -> None:
    status, records = _the_job(env)
    assert status["status"] == "completed", status
    assert "interrupted_by" not in status
    assert sorted(r["index"] for r in records) == list(range(N))
    assert all(r["status"] == "ok" for r in records)


def test_stderr_closed_after_two_lines_the_job_completes(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    proc = start_cli("submit", str(_job(server, tmp_path, 1100)), "-v", *SLOW, env=env)
    assert proc.stderr is not None and proc.stdout is not None
    lines = [unstamped(proc.stderr.readline()), unstamped(proc.stderr.readline())]
    assert all(line.startswith("retailpulse: job ") for line in lines), lines
    proc.stderr.close()  # the reader goes away while the job runs
    out = proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    _assert_completed(env)
    assert out.strip() == jobs_in(env)[0]  # stdout, still read, gets the job id


def test_stderr_and_stdout_into_head_the_job_completes_with_its_exit_code(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = _job(server, tmp_path, 1200)
    exe = f"{sys.executable} -m retailpulse_cli"
    r = subprocess.run(
        [
            "bash",
            "-c",
            f"{exe} submit {job} -v {' '.join(SLOW)} 2>&1 | head -n 2; "
            "echo exit=${PIPESTATUS[0]}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.stdout.splitlines()[-1] == "exit=0", r.stdout + r.stderr
    assert len(r.stdout.splitlines()) == 3
    _assert_completed(env)


def test_stdout_closed_before_the_end_the_job_completes(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    proc = start_cli("submit", str(_job(server, tmp_path, 1300)), "--json", *SLOW, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # e.g. `| head -c 0`: the status JSON has nowhere to go
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "error" not in err
    _assert_completed(env)


def test_sighup_does_not_stop_the_job_and_says_so(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    proc = start_cli("submit", str(_job(server, tmp_path, 1400)), *SLOW, env=env)
    assert proc.stderr is not None and proc.stdout is not None
    assert unstamped(proc.stderr.readline()).startswith("retailpulse: job ")
    proc.send_signal(signal.SIGHUP)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert "SIGHUP (terminal closed): the job goes on" in err
    _assert_completed(env)


def test_terminal_hang_up_sends_output_away_and_notes_it_in_the_job_log(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "retailpulse_cli",
            "submit",
            str(_job(server, tmp_path, 1500)),
            "-v",
            *SLOW,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    first = b""
    while b"\n" not in first:  # the job is running and writing to the terminal
        first += os.read(master, 1024)
    proc.send_signal(signal.SIGHUP)
    os.close(master)  # and the terminal is gone for good
    assert proc.wait(timeout=60) == 0
    _assert_completed(env)
    log = Path(env["RETAILPULSE_JOBS_DIR"]) / jobs_in(env)[0] / "worker.log"
    assert "SIGHUP (terminal closed): the job goes on" in log.read_text()


def test_started_with_stderr_or_stdout_closed_the_job_completes(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """`2>&-` in a crontab: Python starts with sys.stderr None; that must not kill the job."""
    job = _job(server, tmp_path, 2400)
    py = f"{sys.executable} -m retailpulse_cli"
    for redirect in ("2>&-", ">&-", "<&- >&- 2>&-"):
        script = f"{py} submit {job} --gpu-delay 0 {redirect}; echo rc=$?"
        r = subprocess.run(
            ["/bin/bash", "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert "rc=0" in r.stdout, (redirect, r.stdout, r.stderr)
    assert len(jobs_in(env)) == 3
    for job_id in jobs_in(env):
        records = results_of(env, job_id)
        assert sorted(r["index"] for r in records) == list(range(N))
