"""`retailpulse prune`: real job directories made by real runs, aged by editing the dates
in status.json; a lock held by a real process keeps its job."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from .conftest import KNOWN, Cli, jobs_in, visit, write_job
from .imageserver import ImageServer


def make_job(cli: Cli, server: ImageServer, tmp_path: Path, name: str, *, ok: bool) -> str:
    url = server.url(f"/img/30x20.png?{name}" if ok else f"/status/404?{name}")
    job = write_job(tmp_path / f"{name}.json", [visit(KNOWN[0], url)])
    r = cli("submit", str(job), "--gpu-delay", "0", "--retries", "0")
    assert r.exit_code == (0 if ok else 1), r.stderr
    return str(r.stdout.strip())


def age(env: dict[str, str], job_id: str, days: float, **changes: object) -> None:
    """Make a job look `days` old: finished_at (and created_at) moved into the past."""
    path = Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "status.json"
    doc = json.loads(path.read_text())
    when = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()
    doc.update({"created_at": when, "finished_at": when, **changes})
    path.write_text(json.dumps(doc))


def test_prune_removes_old_completed_and_failed_only(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    old_ok = make_job(cli, server, tmp_path, "a", ok=True)
    old_failed = make_job(cli, server, tmp_path, "b", ok=False)
    young = make_job(cli, server, tmp_path, "c", ok=True)
    dead = make_job(cli, server, tmp_path, "d", ok=True)
    age(env, old_ok, 40)
    age(env, old_failed, 31)
    age(env, young, 29)
    age(env, dead, 90, status="ongoing", finished_at=None)  # worker died: interrupted
    r = cli("prune", "--older-than", "30d", "--json")
    assert r.exit_code == 0, r.stderr
    removed = json.loads(r.stdout)
    assert [(x["job_id"], x["status"]) for x in removed] == [
        (old_ok, "completed"),
        (old_failed, "failed"),
    ]
    assert all(x["bytes"] > 0 and x["created_at"] for x in removed)
    assert set(removed[0]) == {"job_id", "status", "created_at", "bytes"}
    assert jobs_in(env) == sorted([young, dead])
    r = cli("prune", "--older-than", "30d", "--status", "interrupted")
    assert r.exit_code == 0
    assert r.stdout.startswith(f"removed {dead}\tinterrupted\t")
    assert "freed " in r.stderr and " KiB (1 job)" in r.stderr
    assert jobs_in(env) == [young]


def test_dry_run_lists_and_removes_nothing(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job_id = make_job(cli, server, tmp_path, "a", ok=True)
    age(env, job_id, 10)
    r = cli("prune", "--older-than", "1w", "--dry-run")
    assert r.exit_code == 0 and r.stdout.startswith(f"would remove {job_id}\tcompleted")
    assert "would free" in r.stderr
    assert jobs_in(env) == [job_id]
    assert cli("prune", "--older-than", "2w").stdout == ""  # not old enough for 2 weeks


def test_a_locked_job_is_never_removed(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job_id = make_job(cli, server, tmp_path, "a", ok=True)
    age(env, job_id, 60)
    lock = Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / ".lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        r = cli("prune", "--older-than", "30d", "--json")
        assert r.exit_code == 0
        assert json.loads(r.stdout) == []
        assert f"skipped {job_id}: being worked on" in r.stderr
        assert jobs_in(env) == [job_id]
    finally:
        holder.kill()
        holder.wait()
    r = cli("prune", "--older-than", "30d", "--json")
    assert [x["job_id"] for x in json.loads(r.stdout)] == [job_id]


def test_trash_left_by_a_crash_is_hidden_and_cleared_next_time(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """A prune killed between its rename and the end of its rmtree leaves `.trash-<id>`."""
    kept = make_job(cli, server, tmp_path, "a", ok=True)
    gone = make_job(cli, server, tmp_path, "b", ok=True)
    root = Path(env["RETAILPULSE_JOBS_DIR"])
    (root / gone).rename(root / f".trash-{gone}")
    listed = json.loads(cli("list", "--json").stdout)
    assert [row["job_id"] for row in listed] == [kept]
    r = cli("prune", "--older-than", "30d")
    assert r.exit_code == 0 and r.stdout == ""
    assert "freed 0" not in r.stderr and "(0 jobs)" in r.stderr
    assert sorted(p.name for p in root.iterdir()) == [kept]


def test_bad_arguments_are_usage_errors_in_one_line(cli: Cli) -> None:
    r = cli("prune", "--older-than", "a month")
    assert r.exit_code == 2
    assert r.stderr == (
        "retailpulse: error: --older-than: 'a month' is not a duration such as "
        "30s, 30m, 24h, 7d or 2w\n"
    )
    r = cli("prune", "--older-than", "30d", "--status", "ongoing")
    assert r.exit_code == 2
    assert cli("prune").exit_code == 2  # --older-than is required: no accidental sweep


def test_prune_takes_little_time_on_many_young_jobs(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    for i in range(3):
        make_job(cli, server, tmp_path, f"j{i}", ok=True)
    t0 = time.monotonic()
    r = cli("prune", "--older-than", "1d", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    assert time.monotonic() - t0 < 5
    assert len(jobs_in(env)) == 3


@pytest.mark.parametrize(
    "args",
    [["list", "--since", "1000000d"], ["prune", "--older-than", "99999999999d"]],
)
def test_huge_ages_are_a_usage_error_not_a_crash(cli: Cli, args: list[str]) -> None:
    r = cli(*args)
    assert r.exit_code == 2
    assert "more than 100 years" in r.stderr
