"""`--cluster`: jobs on Dask distributed, against real worker processes and a real scheduler.

Kept few and bounded: each LocalCluster start costs ~1-2 s on the 2-core CI machine."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from retailpulse_cli.processing import dask_engine, dask_worker

from .conftest import (
    Cli,
    jobs_in,
    results_of,
    run_cli,
    start_cli,
    visit,
    write_job,
)
from .imageserver import ImageServer

DASK = Path(sys.executable).parent / "dask"


def image_job(tmp_path: Path, server: ImageServer, n: int, *, tag: int, per_visit: int = 5) -> Path:
    urls = [server.url(f"/img/{tag + i}x{7 + i % 3}.png") for i in range(n)]
    visits = [visit("S00339218", *urls[i : i + per_visit]) for i in range(0, n, per_visit)]
    return write_job(tmp_path / f"job{tag}.json", visits)


def assert_exactly_once(records: list[dict[str, Any]], n: int, tag: int) -> None:
    counts = Counter(r["index"] for r in records)
    assert sorted(counts) == list(range(n)) and set(counts.values()) == {1}
    for r in records:
        assert r["status"] == "ok", r
        assert (r["width"], r["height"]) == (tag + r["index"], 7 + r["index"] % 3)


def status_of(env: dict[str, str], job_id: str) -> dict[str, Any]:
    return dict(json.loads(run_cli("status", job_id, "--json", env=env).stdout))


def wait_some_done(env: dict[str, str], pid: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = jobs_in(env)
        if ids:
            st = status_of(env, ids[-1])
            if st["status"] == "ongoing" and st["run"]["pid"] == pid and st["images_done"] > 0:
                return ids[-1]
        time.sleep(0.1)
    raise AssertionError("the cluster job did not start")


def test_local_cluster_end_to_end_and_unknown_stores_stay_on_the_driver(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = image_job(tmp_path, server, 40, tag=300)
    data = json.loads(job.read_text())
    data["visits"].append(visit("S99999999", server.url("/img/never.png")))
    data["count"] += 1
    job.write_text(json.dumps(data))
    r = run_cli("submit", str(job), "--cluster", "local:2", "--shard-size", "7", env=env)
    assert r.returncode == 1, r.stderr  # `failed`: one unknown store
    assert "Traceback" not in r.stderr and "distributed" not in r.stderr  # Dask's logs silenced
    records = results_of(env, jobs_in(env)[0])
    assert_exactly_once([x for x in records if x["index"] < 40], 40, 300)
    (unknown,) = [x for x in records if x["index"] == 40]
    assert unknown["error_code"] == "store_not_found"
    assert server.hits["/img/never.png"] == 0
    st = status_of(env, jobs_in(env)[0])
    assert (st["images_done"], st["images_ok"], st["status"]) == (41, 40, "failed")


def test_default_local_never_imports_dask(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = image_job(tmp_path, server, 3, tag=350)
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['retailpulse', 'submit', {str(job)!r}, '--gpu-delay', '0']\n"
        "try:\n    runpy.run_module('retailpulse_cli', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_missing_extra_and_bad_value_are_one_line_usage_errors(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    stub = tmp_path / "stub" / "distributed"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('No module named distributed')\n")
    job = image_job(tmp_path, server, 2, tag=360)
    no_dask = {**env, "PYTHONPATH": str(stub.parent), "RETAILPULSE_CLUSTER": "local:2"}
    r = run_cli("submit", str(job), env=no_dask)
    assert r.returncode == 2
    assert "pip install 'retailpulse[dask]'" in r.stderr and "Traceback" not in r.stderr
    assert "pip install -e '.[dask]'" in r.stderr  # the form that works in a checkout
    assert jobs_in(env) == []  # refused before any job was made
    r = run_cli("submit", str(job), "--cluster", "lokal:2", env=env)
    assert r.returncode == 2 and "local, local:N or tcp://HOST:PORT" in r.stderr
    assert jobs_in(env) == []


def crashing_shard(tasks: list[Any], *args: Any) -> Any:
    """A shard whose process dies on one poisoned image, as a native crash would."""
    if any(t.url.endswith("/poison.png") for t in tasks):
        os._exit(9)
    return dask_worker.run_shard(tasks, *args)


def test_a_shard_that_keeps_killing_workers_is_split_until_the_culprit_is_alone(
    server: ImageServer,
    env: dict[str, str],
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dask
    import distributed  # noqa: F401  (its defaults loaded first, so the `set` below restores them)

    urls = [server.url(f"/img/{370 + i}x9.png") for i in range(6)]
    urls[3] = server.url("/img/poison.png")
    job = write_job(tmp_path / "poison.json", [visit("S00339218", *urls)])
    monkeypatch.setattr(dask_worker, "run_shard", crashing_shard)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        r = cli("submit", str(job), "--cluster", "local:2", "--shard-size", "2", "--gpu-delay", "0")
    assert r.exit_code == 1, r.stderr
    records = results_of(env, jobs_in(env)[0])
    assert sorted(x["index"] for x in records) == list(range(6))
    bad = {x["index"]: x["error_code"] for x in records if x["status"] != "ok"}
    assert bad == {3: "worker_crashed"}
    assert server.hits["/img/poison.png"] == 0


def worker_pids(driver: int) -> list[int]:
    """The LocalCluster's worker processes: forked by the driver's forkserver child (whose
    command line they share), or spawned."""
    kids = psutil.Process(driver).children(recursive=True)
    return [
        k.pid
        for k in kids
        if "spawn_main" in " ".join(k.cmdline())
        or ("forkserver" in " ".join(k.cmdline()) and k.ppid() != driver)
    ]


def test_killed_worker_reruns_its_shard_and_killed_driver_resumes_exactly_once(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    n, tag = 80, 400
    job = image_job(tmp_path, server, n, tag=tag)
    args = ["--cluster", "local:2", "--shard-size", "5", "--workers", "4", "--gpu-delay", "0.3"]
    p = start_cli("submit", str(job), *args, env=env)
    job_id = wait_some_done(env, p.pid)
    pids = worker_pids(p.pid)
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)  # a worker dies mid-shard: Dask reruns it elsewhere
    deadline = time.monotonic() + 30
    while status_of(env, job_id)["images_done"] < n // 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    p.kill()  # then the driver dies, cluster and all
    p.communicate(timeout=10)
    st = status_of(env, job_id)
    assert st["status"] == "interrupted" and st["images_done"] < n
    r = run_cli("resume", job_id, "--cluster", "local:2", "--shard-size", "5", env=env)
    assert r.returncode == 0, r.stderr
    assert_exactly_once(results_of(env, job_id), n, tag)
    assert status_of(env, job_id)["images_ok"] == n


@pytest.fixture
def scheduler(dask_procs: tuple[str, list[subprocess.Popen[bytes]]]) -> str:
    return dask_procs[0]


@pytest.fixture
def dask_procs(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1: the
    scheduler's address, and the processes (the scheduler first)."""
    file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs: list[subprocess.Popen[bytes]] = [
        subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(file)],
            **quiet,
        )
    ]  # fmt: skip
    try:
        address = ""
        deadline = time.monotonic() + 30
        while not address and time.monotonic() < deadline:
            time.sleep(0.1)
            try:  # the scheduler may be half-way through writing the file
                address = json.loads(file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                continue
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [str(DASK), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                     "--no-dashboard", "--no-nanny"],
                    **quiet,
                )
            )  # fmt: skip
        yield address, procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_scheduler_cluster_holds_the_per_host_budget_and_checks_versions(
    scheduler: str,
    server: ImageServer,
    env: dict[str, str],
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = 24
    urls = [server.url(f"/nap/cluster/{i}?seconds=0.15") for i in range(n)]
    job = write_job(tmp_path / "nap.json", [visit("S00339218", *urls)])
    args = ["--cluster", scheduler, "--shard-size", "4", "--workers", "8", "--per-host", "2"]
    r = run_cli("submit", str(job), *args, "--gpu-delay", "0", env=env)
    assert r.returncode == 0, r.stderr
    records = results_of(env, jobs_in(env)[0])
    assert sorted(x["index"] for x in records) == list(range(n))
    assert {x["status"] for x in records} == {"ok"}
    assert 1 <= server.group_max["cluster"] <= 2  # 8 threads on each worker; 2 in all

    import retailpulse_cli

    monkeypatch.setattr(retailpulse_cli, "__version__", "0.0.1")
    r2 = cli("submit", str(job), "--cluster", scheduler)
    assert r2.exit_code == 2, r2.stderr
    assert "version mismatch: this driver is 0.0.1" in r2.stderr
    assert "Traceback" not in r2.stderr


def test_ctrl_c_stops_running_shards_within_the_grace_and_resume_finishes_without_dask(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    n, tag = 60, 500
    job = image_job(tmp_path, server, n, tag=tag)
    args = ["--cluster", "local:2", "--shard-size", "10", "--workers", "2", "--gpu-delay", "0.3"]
    p = start_cli("submit", str(job), *args, env=env)
    job_id = wait_some_done(env, p.pid)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    assert p.wait(20) == 130
    assert time.monotonic() - t0 < dask_engine.GRACE + 3  # not the ~4 s the rest of the job takes
    st = status_of(env, job_id)
    assert st["status"] == "interrupted" and 0 < st["images_done"] < n
    r = run_cli("resume", job_id, "--workers", "16", env=env)  # no --cluster: same job dir
    assert r.returncode == 0, r.stderr
    assert_exactly_once(results_of(env, job_id), n, tag)


def test_bad_scheduler_addresses_are_one_line_usage_errors_without_the_password(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = image_job(tmp_path, server, 2, tag=380)
    for value, says in [
        ("tls://127.0.0.1:1", "tls:// scheduler addresses are not supported"),
        ("tcp://[::1", "not a scheduler address"),
        ("tcp://alice:s3cret@127.0.0.1:1", "cannot carry a user name or password"),
        ("tcp://127.0.0.1:99999", "not a scheduler address"),
    ]:
        r = run_cli("submit", str(job), "--cluster", value, env=env)
        assert r.returncode == 2, (value, r.stderr)
        errors = [line for line in r.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and says in errors[0], (value, r.stderr)
        assert "Traceback" not in r.stderr and "s3cret" not in r.stderr and "alice" not in r.stderr
        assert jobs_in(env) == []


def test_losing_the_scheduler_mid_job_interrupts_it_and_resume_finishes_it(
    dask_procs: tuple[str, list[subprocess.Popen[bytes]]],
    server: ImageServer,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    address, procs = dask_procs
    n, tag = 40, 600
    job = image_job(tmp_path, server, n, tag=tag)
    args = ["--cluster", address, "--shard-size", "2", "--workers", "2", "--gpu-delay", "0.2"]
    p = start_cli("submit", str(job), *args, env=env)
    job_id = wait_some_done(env, p.pid)
    procs[0].kill()  # the scheduler dies; the workers and the driver lose it
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2, err  # a usage/cluster error, not "internal error" (70)
    assert "Traceback" not in err and "distributed." not in err, err
    assert "lost the Dask cluster" in err and f"retailpulse resume {job_id}" in err, err
    st = status_of(env, job_id)
    assert st["status"] == "interrupted" and 0 < st["images_done"] < n, st
    kept = results_of(env, job_id)
    r = run_cli("resume", job_id, "--gpu-delay", "0", env=env)  # no --cluster: here
    assert r.returncode == 0, r.stderr
    records = results_of(env, job_id)
    assert records[: len(kept)] == kept  # what the cluster finished is kept, not redone
    assert_exactly_once(records, n, tag)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A real TCP listener on 127.0.0.1 that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


def test_a_scheduler_address_that_accepts_and_never_answers_is_refused_in_bounded_time(
    silent_listener: int, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 17: Dask's handshake waited for the first message with no timeout, so this
    hung for good (no output after 120 s)."""
    job = image_job(tmp_path, server, 2, tag=390)
    address = f"tcp://127.0.0.1:{silent_listener}"
    t0 = time.monotonic()
    r = run_cli("submit", str(job), "--cluster", address, env=env, timeout=60)
    assert time.monotonic() - t0 < 30
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and address in errors[0] and "did not answer" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    assert jobs_in(env) == []


def resource_tracker_of(driver: int) -> psutil.Process:
    """The driver's multiprocessing resource tracker (a child process it starts)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for kid in psutil.Process(driver).children():
            with contextlib.suppress(psutil.Error):
                if "resource_tracker" in " ".join(kid.cmdline()):
                    return kid
        time.sleep(0.05)
    raise AssertionError("no resource tracker under the driver")


def test_a_killed_helper_process_ends_in_progress_or_a_clean_stop_without_a_traceback(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 17: killing the driver's resource tracker mid-job printed a `KeyError: '/mp-…'`
    traceback per semaphore (and left some runs stuck). Now the job either goes on to the
    end, exactly once, or stops cleanly: interrupted, exit 2, a resume hint."""
    n, tag = 120, 700
    job = image_job(tmp_path, server, n, tag=tag)
    args = ["--cluster", "local:2", "--shard-size", "20", "--workers", "4", "--gpu-delay", "0.1"]
    p = start_cli("submit", str(job), *args, env=env)
    job_id = wait_some_done(env, p.pid)
    resource_tracker_of(p.pid).kill()
    _, err = p.communicate(timeout=90)
    assert "Traceback" not in err and "KeyError" not in err and "resource_tracker" not in err, err
    st = status_of(env, job_id)
    if p.returncode == 0:
        assert st["status"] == "completed"
        assert_exactly_once(results_of(env, job_id), n, tag)
    else:
        assert p.returncode == 2 and st["status"] == "interrupted", (p.returncode, err)
        assert f"retailpulse resume {job_id}" in err


def recording_shard(tasks: list[Any], settings: Any, base_dir: Path, *rest: Any) -> Any:
    """run_shard, noting in the job's folder which worker process ran how many images,
    and when (the folder is the shard's `base_dir`, seen by every local worker)."""
    began = time.time()
    result = dask_worker.run_shard(tasks, settings, base_dir, *rest)
    with open(base_dir / "shards.log", "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {len(tasks)} {began} {time.time()}\n")
    return result


def test_shards_are_sized_from_the_job_so_every_worker_gets_work_and_they_overlap(
    server: ImageServer,
    env: dict[str, str],
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 17: with 1,000-image shards, a job of 1,200 made shards of 1,000 and 200 and one
    of two workers idled most of the run; a 120-image job was one shard on one worker. Now
    shards follow the job's size and the cluster's, and a worker starts its next shard
    while the last images of one go through the GPU stage."""
    n, tag = 120, 900
    job = image_job(tmp_path, server, n, tag=tag)
    monkeypatch.setattr(dask_worker, "run_shard", recording_shard)
    r = cli("submit", str(job), "--cluster", "local:2", "--workers", "4", "--gpu-delay", "0.05")
    assert r.exit_code == 0, r.stderr
    assert_exactly_once(results_of(env, jobs_in(env)[0]), n, tag)
    runs = [line.split() for line in (tmp_path / "shards.log").read_text().splitlines()]
    images_by_worker = Counter[str]()
    for pid, size, _, _ in runs:
        images_by_worker[pid] += int(size)
    assert sum(images_by_worker.values()) == n
    assert len(images_by_worker) == 2, f"not every worker got work: {images_by_worker}"
    overlapped = any(
        float(b[2]) < float(a[3])
        for pid in images_by_worker
        for a, b in itertools.pairwise(
            sorted((x for x in runs if x[0] == pid), key=lambda x: float(x[2]))
        )
    )
    assert overlapped, "a worker waited between two shards"
