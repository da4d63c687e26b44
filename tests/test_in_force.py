"""Issue 17, second field trial: settings in force on resume/retry, what `config` checks
and shows, quiet runs with a log file, `--detach --json`, and usage errors in a cron log.
Real subprocesses and a real image server; nothing mocked."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Cli, jobs_in, run_cli, start_cli, visit, write_job
from .imageserver import ImageServer

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "


def _naps(server: ImageServer, group: str, n: int, seconds: float = 0.3) -> list[str]:
    return [server.url(f"/nap/{group}/{i}?seconds={seconds}") for i in range(n)]


def _status(env: dict[str, str], job_id: str) -> dict[str, Any]:
    path = Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "status.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


# -- #5: a --per-host never set follows --downloads, on resume and retry too ----------------


def test_resume_with_more_downloads_opens_more_connections_to_the_host(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", *_naps(server, "resume5", 40))])
    proc = start_cli("submit", str(job), "--downloads", "2", "--gpu-delay", "0", env=env)
    deadline = time.monotonic() + 30
    while not jobs_in(env) or _status(env, jobs_in(env)[0])["images_done"] < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert server.group_max["resume5"] == 2  # the first run: two at once
    r = run_cli("resume", jobs_in(env)[0], "--downloads", "8", env=env)
    assert r.returncode == 0, r.stderr
    assert server.group_max["resume5"] > 4  # the resume's --downloads 8, not the stored 2


def test_retry_with_more_downloads_opens_more_connections_to_the_host(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", *_naps(server, "retry5", 24))])
    common = ["--gpu-delay", "0", "--retries", "0"]
    r = run_cli("submit", str(job), "--downloads", "2", "--max-bytes", "20", *common, env=env)
    assert r.returncode == 1, r.stderr  # every image too_large
    assert server.group_max["retry5"] == 2
    job_id = r.stdout.strip()
    r = run_cli("retry", job_id, "--downloads", "8", "--max-bytes", "100000", env=env)
    assert r.returncode == 0, r.stderr
    assert server.group_max["retry5"] > 4


def test_a_per_host_that_was_set_is_kept_on_resume(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", *_naps(server, "kept5", 16))])
    common = ["--gpu-delay", "0", "--retries", "0"]
    r = run_cli("submit", str(job), "--per-host", "2", "--max-bytes", "20", *common, env=env)
    assert r.returncode == 1, r.stderr
    r = run_cli("retry", r.stdout.strip(), "--downloads", "8", "--max-bytes", "100000", env=env)
    assert r.returncode == 0, r.stderr
    assert server.group_max["kept5"] == 2  # the user's --per-host 2 stands


# -- #7: quiet is for the terminal; the log file still gets the start and end lines --------


def test_quiet_run_still_writes_its_start_and_end_lines_to_the_log_file(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "nightly.json", [visit("S00339218", *_naps(server, "q7", 3, 0))])
    log = tmp_path / "rp.log"
    r = run_cli("submit", str(job), "-q", "--gpu-delay", "0", "--log-file", str(log), env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    job_id = r.stdout.strip()
    lines = log.read_text().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(
        rf"{STAMP}retailpulse: job {job_id} \({re.escape(str(job))}\): 3 of 3 images to process",
        lines[0],
    ), lines
    assert re.fullmatch(
        rf"{STAMP}retailpulse: job {job_id} \(nightly\.json\) completed: 3 ok, 0 failed of 3 "
        r"images in [\d.]+s \([\d.,]+ img/s\)",
        lines[1],
    ), lines


# -- #13: submit --json lists every file, with or without --detach ----------------------


def test_detached_submit_json_lists_rejected_files_as_the_attached_one_does(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    good = write_job(tmp_path / "good.json", [visit("S00339218", *_naps(server, "d13", 1, 0))])
    bad = tmp_path / "bad.json"
    bad.write_text('{"count": 1, "visits": [{"store_id": "S00339218"}]}')
    attached = run_cli("submit", str(good), str(bad), "--json", "--gpu-delay", "0", env=env)
    detached = run_cli("submit", str(good), str(bad), "--json", "--detach", env=env)
    assert attached.returncode == detached.returncode == 3, detached.stderr
    rows_attached, rows_detached = json.loads(attached.stdout), json.loads(detached.stdout)
    assert [row.get("file", row.get("source")) for row in rows_detached] == [str(good), str(bad)]
    assert rows_detached[1] == rows_attached[1]  # the rejected file, problems and all
    assert rows_detached[0]["status"] in ("ongoing", "completed")
    run_cli("status", "--wait", rows_detached[0]["job_id"], env=env)


# -- #14: `config` checks every value the way a run does ----------------------------------


@pytest.mark.parametrize(
    "cluster", ["local:0", "local:100000", "bogus", "tcp://u:p@127.0.0.1:8786", "tls://h:1"]
)
def test_config_refuses_the_cluster_values_submit_refuses(
    cli: Cli, tmp_path: Path, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", "x.jpg")])
    submitted = cli("submit", str(job), "--cluster", cluster)
    assert submitted.exit_code == 2
    refusal = submitted.stderr.splitlines()[0].split("error: ", 1)[1]
    for args in (["--cluster", cluster], []):
        if not args:
            monkeypatch.setenv("RETAILPULSE_CLUSTER", cluster)
        r = cli("config", *args)
        assert r.exit_code == 2, r.stdout
        said = r.stderr.splitlines()[0].split("error: ", 1)[1]
        assert said.endswith(refusal.split(": ", 1)[-1]), (said, refusal)
        assert "u:p@" not in r.stderr
    assert jobs_in({"RETAILPULSE_JOBS_DIR": str(tmp_path / "jobs")}) == []


# -- #21: -w; `config` shows the values in force; usage errors in a cron log ---------------


def test_w_is_short_for_workers(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", *_naps(server, "w21", 1, 0))])
    r = cli("submit", str(job), "-w", "3", "--gpu-delay", "0")
    assert r.exit_code == 0, r.stderr
    meta = json.loads(
        (Path(env["RETAILPULSE_JOBS_DIR"]) / r.stdout.strip() / "meta.json").read_text()
    )
    assert meta["settings"]["workers"] == 3


def test_config_shows_the_values_in_force_not_dashes(cli: Cli, env: dict[str, str]) -> None:
    rows = {row["option"]: row for row in json.loads(cli("config", "--json").stdout)["settings"]}
    assert rows["per-host"]["value"] == rows["downloads"]["value"] == 128
    assert rows["jobs-dir"]["value"] == env["RETAILPULSE_JOBS_DIR"]
    assert rows["jobs-dir"]["source"] == "env RETAILPULSE_JOBS_DIR"
    shipped = Path(rows["store-master"]["value"])
    assert shipped.name == "store_master.csv" and shipped.is_file()
    rows = {
        row["option"]: row
        for row in json.loads(cli("config", "--json", "--downloads", "8").stdout)["settings"]
    }
    assert rows["per-host"]["value"] == 8  # follows --downloads
    text = cli("config", "--downloads", "8").stdout
    assert re.search(r"^per-host +8 +as --downloads$", text, re.M), text
    assert re.search(rf"^jobs-dir +{re.escape(env['RETAILPULSE_JOBS_DIR'])} ", text, re.M), text


def test_usage_errors_off_a_terminal_are_plain_timestamped_lines(
    env: dict[str, str], tmp_path: Path
) -> None:
    r = run_cli("submit", "--workers", "abc", str(tmp_path / "j.json"), env=env)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert not any(ch in r.stderr for ch in "╭╮╰╯│─"), r.stderr  # no box in a cron log
    assert all(re.match(rf"{STAMP}retailpulse: ", line) for line in lines), lines
    assert re.search(r"retailpulse: error: .*'--workers'.*'abc' is not a valid int", lines[0])
    assert any("retailpulse submit --help" in line or "-h" in line for line in lines)
    r = run_cli("submit", "--no-such-flag", env=env)
    assert r.returncode == 2 and "No such option: --no-such-flag" in r.stderr
    assert not any(ch in r.stderr for ch in "╭╮╰╯│─"), r.stderr


@pytest.mark.parametrize(
    ("stored", "per_host"),
    [
        ({"downloads": 2, "per_host": 2, "per_host_given": False}, 8),  # followed: follows
        ({"downloads": 2, "per_host": 2, "per_host_given": True}, 2),  # set to 2: kept
        ({"downloads": 2, "per_host": 2}, 8),  # a job from before the marker, by default
        ({"downloads": 4, "per_host": 1}, 1),  # ... and one whose --per-host was set
    ],
)
def test_stored_per_host_follows_this_runs_downloads_unless_it_was_set(
    stored: dict[str, Any], per_host: int, env: dict[str, str]
) -> None:
    from retailpulse_cli.config import options

    resolved = options.resolve({"downloads": 8}, stored=stored, env={})
    assert options.settings_from(resolved).per_host == per_host
