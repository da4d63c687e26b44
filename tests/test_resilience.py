"""Issue 3: crashes, kills, signals, locking, background runs and disk problems, with
real subprocesses and real signals against the local image server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .conftest import jobs_in, results_of, run_cli, start_cli, visit, write_job
from .imageserver import ImageServer

N = 300  # a few hundred images, as the issue asks


def big_job(tmp_path: Path, server: ImageServer, offset: int, n: int = N) -> Path:
    """n distinct images (distinct paths, so server hits are counted per image)."""
    urls = [server.url(f"/img/{offset + i}x40.png") for i in range(n)]
    visits = [visit("S00339218", *urls[i : i + 3]) for i in range(0, n, 3)]
    return write_job(tmp_path / "big.json", visits)


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return start_cli(*args, env=env)


def wait_for_results(env: dict[str, str], at_least: int, timeout: float = 30) -> str:
    """Wait until the (only) job has at least `at_least` result lines on disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = jobs_in(env)
        if ids:
            path = Path(env["RETAILPULSE_JOBS_DIR"]) / ids[0] / "results.jsonl"
            if path.exists() and path.read_bytes().count(b"\n") - 1 >= at_least:
                return ids[0]
        time.sleep(0.05)
    raise AssertionError(f"job did not record {at_least} results within {timeout}s")


def status_json(env: dict[str, str], job_id: str) -> dict[str, Any]:
    r = run_cli("status", job_id, "--json", env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def assert_one_result_per_image(env: dict[str, str], job_id: str, n: int) -> list[dict[str, Any]]:
    records = results_of(env, job_id)
    counts = Counter(r["index"] for r in records)
    assert set(counts) == set(range(n)), "every image has a result"
    assert max(counts.values()) == 1, "no image has two results"
    return records


SLOW = ["--gpu-delay", "0.05:0.1", "--workers", "8", "--seed", "7"]


def killed_submit(job: Path, env: dict[str, str], after: int) -> str:
    """Submit `job` slowly, SIGKILL it once `after` results are on disk; return the job id."""
    proc = start(["submit", str(job), *SLOW], env)
    job_id = wait_for_results(env, after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return job_id


def test_sigkill_then_status_says_interrupted_and_resume_finishes(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    job = big_job(tmp_path, server, offset=1000)
    job_id = killed_submit(job, env, after=40)
    before = results_of(env, job_id)
    recorded_before = {r["index"] for r in before}

    st = status_json(env, job_id)  # within a few seconds: the lock died with the process
    assert st["status"] == "interrupted"
    assert st["images_total"] == N
    assert 0 < len(recorded_before) < N

    r = run_cli("resume", job_id, "--json", env=env)
    assert r.returncode == 0, r.stderr
    final = json.loads(r.stdout)
    assert final["status"] == "completed"
    assert final["images_done"] == N and final["images_ok"] == N
    records = assert_one_result_per_image(env, job_id, N)
    assert all(r["perimeter"] == 2 * (1000 + r["index"] + 40) for r in records)
    # images recorded before the kill were not downloaded again
    for i in recorded_before:
        assert server.hits[f"/img/{1000 + i}x40.png"] == 1
    assert status_json(env, job_id)["status"] == "completed"


@pytest.mark.parametrize(
    ("sig", "code", "name"), [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_signal_stops_gracefully_with_its_exit_code_and_resume_completes(
    tmp_path: Path, server: ImageServer, env: dict[str, str], sig: int, code: int, name: str
) -> None:
    offset = 2000 if sig == signal.SIGINT else 3000
    job = big_job(tmp_path, server, offset=offset)
    proc = start(["submit", str(job), *SLOW], env)
    job_id = wait_for_results(env, 30)
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    assert time.monotonic() - t0 < 10, "stops promptly"
    assert out.strip() == job_id  # the id is still printed for scripts
    st = status_json(env, job_id)
    assert st["status"] == "interrupted"
    assert st["interrupted_by"] == name
    assert st["images_done"] == len(results_of(env, job_id)) < N  # status matches the disk

    r = run_cli("resume", job_id, env=env)
    assert r.returncode == 0, r.stderr
    assert_one_result_per_image(env, job_id, N)


def test_two_resumes_at_once_second_refuses_with_busy_code(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    job = big_job(tmp_path, server, offset=4000)
    job_id = killed_submit(job, env, after=20)

    # slow enough (~5 s) that two more CLI starts fit in it on a loaded CI machine
    first = start(["resume", job_id, "--gpu-delay", "0.2:0.3", "--workers", "16"], env)
    deadline = time.monotonic() + 10
    while status_json(env, job_id)["status"] != "ongoing":  # first resume holds the lock
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = run_cli("resume", job_id, env=env)
    assert second.returncode == 6
    assert f"job {job_id} is being worked on by another process" in second.stderr
    assert "Traceback" not in second.stderr
    retry = run_cli("retry", job_id, env=env)
    assert retry.returncode == 6
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert_one_result_per_image(env, job_id, N)


def test_eight_concurrent_submits_each_get_their_own_job(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    procs = []
    for k in range(8):
        urls = [server.url(f"/img/{5000 + k * 10 + i}x30.jpg") for i in range(6)]
        job = write_job(tmp_path / f"job{k}.json", [visit("S00339218", *urls)])
        procs.append(start(["submit", str(job), "--gpu-delay", "0.01:0.03"], env))
    ids = []
    for k, p in enumerate(procs):
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        ids.append((k, out.strip()))
    assert len({i for _, i in ids}) == 8
    assert sorted(i for _, i in ids) == jobs_in(env)
    for k, job_id in ids:
        records = assert_one_result_per_image(env, job_id, 6)
        assert sorted(r["width"] for r in records) == [5000 + k * 10 + i for i in range(6)]


def test_detached_submit_returns_at_once_and_runs_in_background(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    n = 60
    job = big_job(tmp_path, server, offset=6000, n=n)
    t0 = time.monotonic()
    r = run_cli("submit", "--detach", str(job), "--gpu-delay", "0.1:0.2", "--workers", "4", env=env)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip()
    assert jobs_in(env) == [job_id]
    assert took < 5  # the job itself needs ~2 s of simulated GPU time per worker and more
    st = status_json(env, job_id)
    assert st["status"] == "ongoing"  # the worker holds the lock handed over by submit
    assert st["images_total"] == n

    # a second submit meanwhile works normally
    other = write_job(tmp_path / "other.json", [visit("S01408764", server.url("/img/33x44.gif"))])
    r2 = run_cli("submit", str(other), "--gpu-delay", "0", env=env)
    assert r2.returncode == 0, r2.stderr

    seen_partial = False
    deadline = time.monotonic() + 60
    while True:
        st = status_json(env, job_id)
        if st["status"] != "ongoing":
            break
        seen_partial |= 0 < st["images_done"] < n
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert st["status"] == "completed"
    assert seen_partial, "status showed live counts while the job ran"
    assert_one_result_per_image(env, job_id, n)
    log = (Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "worker.log").read_text()
    assert f"job {job_id} (big.json) completed" in log
    assert "\x1b[" not in log


def test_status_wait_follows_a_detached_job_to_its_outcome(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    job = write_job(
        tmp_path / "j.json",
        [
            visit("S00339218", server.url("/img/71x13.png")),
            visit("S99999999", server.url("/img/72x13.png")),
        ],
    )
    r = run_cli("submit", "-d", str(job), "--gpu-delay", "0.3", env=env)
    job_id = r.stdout.strip()
    w = run_cli("status", "--wait", job_id, "--json", env=env)
    assert w.returncode == 1  # the job's own outcome: failed (unknown store)
    assert json.loads(w.stdout)["status"] == "failed"


def unshare_works() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


def in_tmpfs(
    script: str, mount: Path, opts: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run `script` with a fresh tmpfs mounted at `mount` (private mount namespace)."""
    full = f"mount -t tmpfs -o {opts} tmpfs {mount} && {script}"
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", full], env=env, capture_output=True, text=True, timeout=120
    )


def test_read_only_jobs_dir_is_a_clear_error(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/81x13.png"))])
    jobs = tmp_path / "ro"
    jobs.mkdir()
    cmd = f"{sys.executable} -m retailpulse_cli submit {job} --gpu-delay 0 --jobs-dir {jobs}"
    if unshare_works():
        r = in_tmpfs(f"mount -o remount,ro {jobs} && {cmd}", jobs, "size=1m", env)
        expected = "read-only file system"
    else:  # not root: plain permissions make it read-only for us
        jobs.chmod(0o555)
        r = subprocess.run(cmd.split(), env=env, capture_output=True, text=True)
        expected = "permission denied"
    assert r.returncode == 7, r.stderr
    assert str(jobs) in r.stderr and expected in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_disk_full_mid_job_is_a_clear_error_and_status_stays_honest(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    job = big_job(tmp_path, server, offset=7000, n=300)
    jobs = tmp_path / "small"
    jobs.mkdir()
    run = f"{sys.executable} -m retailpulse_cli"
    script = (
        f"{run} submit {job} --gpu-delay 0 --jobs-dir {jobs}; echo EXIT=$?; "
        f"for j in {jobs}/*; do {run} status --json --jobs-dir {jobs} $(basename $j); done"
    )
    if unshare_works():
        r = in_tmpfs(script, jobs, "size=48k", env)
        expected = "no space left on device"
    else:  # a file-size limit fails writes the same way a full disk does
        r = subprocess.run(
            ["sh", "-c", f"ulimit -f 40; {script}"], env=env, capture_output=True, text=True
        )
        expected = "file too large"
    assert "EXIT=7" in r.stdout, r.stderr
    # whichever of the job's files the disk filled on is named (results or status): both
    # are written all the time, so which one comes first is a matter of timing
    named = [f for f in ("results.jsonl", "status.json", "errors.json") if f in r.stderr]
    assert named and expected in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr
    status = json.loads(r.stdout.split("EXIT=7", 1)[1])
    assert status["status"] == "interrupted"


def test_damaged_and_future_job_directories_are_clear_errors(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/91x13.png"))])
    r = run_cli("submit", str(job), "--gpu-delay", "0", env=env)
    job_id = r.stdout.strip()
    jdir = Path(env["RETAILPULSE_JOBS_DIR"]) / job_id

    st = json.loads((jdir / "status.json").read_text())
    (jdir / "status.json").write_text(json.dumps({**st, "schema_version": 99}))
    r = run_cli("status", job_id, env=env)
    assert r.returncode == 7
    assert "newer retailpulse (schema 99" in r.stderr and "upgrade retailpulse" in r.stderr

    (jdir / "status.json").write_text('{"schema_version": 1, "status": ')  # edited by hand
    r = run_cli("status", job_id, env=env)
    assert r.returncode == 7 and "status.json is unreadable" in r.stderr
    assert "Traceback" not in r.stderr

    (jdir / "status.json").unlink()
    (jdir / "errors.json").unlink()
    r = run_cli("status", job_id, "--json", env=env)
    assert r.returncode == 7 and "status.json is missing" in r.stderr
    assert r.stdout == ""

    r = run_cli("results", job_id, env=env)
    assert r.returncode == 7 and "Traceback" not in r.stderr


def test_retry_reruns_only_failed_images_and_keeps_unknown_store_failed(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    flaky = server.url("/flaky/retry-test?fail=2")
    job = write_job(
        tmp_path / "j.json",
        [
            visit("S00339218", server.url("/img/95x13.png"), flaky),
            visit("S99999999", server.url("/img/96x13.png")),
        ],
    )
    r = run_cli("submit", str(job), "--gpu-delay", "0", "--retries", "0", env=env)
    assert r.returncode == 1
    job_id = r.stdout.strip()
    st = status_json(env, job_id)
    assert st["failures_by_code"] == {"http_5xx": 1, "store_not_found": 1}

    r = run_cli("retry", job_id, "--retries", "0", "--json", env=env)  # 2nd failure of flaky
    assert r.returncode == 1
    r = run_cli("retry", job_id, "--retries", "0", "--json", env=env)  # now it serves
    assert r.returncode == 1  # the unknown store stays failed
    final = json.loads(r.stdout)
    assert final["failures_by_code"] == {"store_not_found": 1}
    assert final["images_ok"] == 2 and final["images_failed"] == 1
    assert [e["store_id"] for e in final["error"]] == ["S99999999"]
    records = assert_one_result_per_image(env, job_id, 3)
    assert {r["index"]: r["status"] for r in records} == {0: "ok", 1: "ok", 2: "failed"}
    assert server.hits["/img/95x13.png"] == 1  # the good image was not fetched again
    assert not (Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "retry.jsonl").exists()


def test_resume_detach_finishes_in_the_background(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    job = big_job(tmp_path, server, offset=8000, n=90)
    job_id = killed_submit(job, env, after=10)
    r = run_cli("resume", "--detach", job_id, "--gpu-delay", "0", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == job_id
    w = run_cli("status", "--wait", "--timeout", "60", job_id, "--json", env=env)
    assert w.returncode == 0, w.stderr
    assert json.loads(w.stdout)["run"]["mode"] == "resume"
    assert_one_result_per_image(env, job_id, 90)
    meta_settings = json.loads(
        (Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "meta.json").read_text()
    )
    assert meta_settings["settings"]["gpu_delay"] == [0.05, 0.1]  # the job's own stays on record
