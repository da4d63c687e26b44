"""Issue 12, "Logs and terminal" and "Output scripts can rely on": timestamped stderr and
--log-file, the live bar of `status --wait`, what `retry` counts, `<stdin>`, singulars,
file names on progress rows, `list`/`status` showing the source, validate's problem
objects. Real subprocesses (and a real pseudo-terminal where a terminal matters)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import Cli, jobs_in, run_cli, visit, write_job
from .imageserver import ImageServer

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ retailpulse: ")


def _images(server: ImageServer, tag: str, n: int) -> list[str]:
    return [server.url(f"/img/{400 + i}x{tag}.png") for i in range(n)]


def test_off_a_terminal_every_stderr_line_is_timestamped_and_the_log_file_gets_them(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "a.json", [visit("S00339218", *_images(server, "31", 12))])
    log = tmp_path / "retailpulse.log"
    r = run_cli("submit", str(job), "--gpu-delay", "0", "--log-file", str(log), env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) >= 2 and all(STAMPED.match(line) for line in lines), lines
    assert log.read_text().splitlines() == lines  # the same lines, timestamps and all
    # from the environment too, appended (a week of cron nights in one file)
    bad = tmp_path / "bad.json"
    bad.write_text('{"count": 1, "visits": []}')
    r2 = run_cli("submit", str(bad), env={**env, "RETAILPULSE_LOG_FILE": str(log)})
    assert r2.returncode == 3
    kept = log.read_text().splitlines()
    assert kept[: len(lines)] == lines and kept[len(lines) :] == r2.stderr.splitlines()
    assert any("visits: must hold at least one visit" in line for line in kept)
    assert all(STAMPED.match(line) for line in kept)


def test_log_file_from_the_config_file_and_one_that_cannot_be_opened(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "a.json", [visit("S00339218", *_images(server, "32", 1))])
    log = tmp_path / "from-config.log"
    conf = tmp_path / "c.toml"
    conf.write_text(f'log-file = "{log}"\ngpu-delay = 0\n')
    r = run_cli("submit", str(job), "--config", str(conf), env=env)
    assert r.returncode == 0 and "completed" in log.read_text()
    r = run_cli("submit", str(job), "--log-file", str(tmp_path / "no" / "x.log"), env=env)
    assert r.returncode == 7
    [line] = r.stderr.splitlines()[:1]
    assert STAMPED.match(line)
    assert f"error: --log-file: cannot open {tmp_path / 'no' / 'x.log'} for appending" in line
    assert "Traceback" not in r.stderr and len(jobs_in(env)) == 1  # nothing run, nothing made


def _on_terminal(*args: str, env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return (code, what it showed)."""
    master, slave = os.openpty()
    os.set_blocking(master, True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "retailpulse_cli", *args],
        env={**env, "TERM": "xterm", "COLUMNS": "120"},
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=timeout), b"".join(chunks).decode("utf-8", "replace")


def test_status_wait_on_a_terminal_shows_the_live_progress_bar(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "nightly.json", [visit("S00339218", *_images(server, "33", 12))])
    r = run_cli("submit", "-d", str(job), "--workers", "2", "--gpu-delay", "0.15", env=env)
    assert r.returncode == 0, r.stderr
    code, shown = _on_terminal("status", "--wait", r.stdout.strip(), env=env)
    assert code == 0, shown
    assert "nightly.json" in shown and "12/12" in shown and "img/s" in shown
    assert not re.search(r"^\d{4}-\d\d-\d\dT", shown, re.M)  # no timestamps on a terminal


def test_several_files_on_a_terminal_rows_are_file_names_in_input_order(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    big = write_job(tmp_path / "zeta-big.json", [visit("S00339218", *_images(server, "34", 8))])
    small = write_job(
        tmp_path / "alpha-small.json", [visit("S00339218", *_images(server, "35", 2))]
    )
    log = tmp_path / "by-hand.log"
    code, shown = _on_terminal(
        "submit", str(big), str(small), "--gpu-delay", "0.05", "--log-file", str(log), env=env
    )
    assert code == 0, shown
    assert not re.search(r"^\d{4}-\d\d-\d\dT", shown, re.M)  # no timestamps on a terminal
    logged = log.read_text().splitlines()  # the bar is not logged; the outcome lines are
    assert all(STAMPED.match(line) for line in logged) and len(logged) == 4, logged
    assert sum("completed: 8 ok, 0 failed of 8 images" in line for line in logged) == 1
    clean = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    lines = re.split(r"[\r\n]+", clean)  # the bars' rows, not the status tables' `source`
    rows = [line for line in lines if ".json" in line and not line.startswith("source ")]
    last = max(i for i, line in enumerate(rows) if "alpha-small.json" in line)
    assert last > 0 and "zeta-big.json" in rows[last - 1], rows  # the final frame
    assert "8/8" in rows[last - 1] and "2/2" in rows[last]


def test_retry_counts_and_rates_only_the_images_it_retries(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    flaky = [server.url(f"/flaky/ops-retry-{i}?fail=1") for i in range(3)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *_images(server, "36", 7), *flaky)])
    r = run_cli("submit", str(job), "--gpu-delay", "0", "--retries", "0", env=env)
    assert r.returncode == 1
    job_id = r.stdout.strip()
    r = run_cli("retry", job_id, "--gpu-delay", "0.1", "--workers", "1", "--retries", "0", env=env)
    assert r.returncode == 0, r.stderr
    said = [line.split("retailpulse: ", 1)[1] for line in r.stderr.splitlines()]
    assert said[0] == f"job {job_id} ({job}): retrying 3 of 10 images"
    progress = [s for s in said if " img/s" in s and "retried" in s and "completed" not in s]
    assert progress and all(
        re.search(r"\(j\.json\): [12]/3 images retried, 0 failed, [\d.]+ img/s$", p)
        for p in progress
    ), said
    assert re.fullmatch(
        rf"job {job_id} \(j\.json\) completed: 10 ok, 0 failed of 10 images in [\d.]+s "
        r"\(3 retried, [\d.]+ img/s\)",
        said[-1],
    ), said


def test_stdin_singulars_and_no_rate_before_there_is_one(
    server: ImageServer, env: dict[str, str], cli: Cli
) -> None:
    doc = json.dumps({"count": 1, "visits": [visit("S00339218", *_images(server, "37", 1))]})
    r = cli("validate", "-", input=doc)
    assert r.exit_code == 0 and r.stdout == "<stdin>: valid (1 visit, 1 image)\n"
    r = cli("validate", "-", "--json", input=doc)
    assert json.loads(r.stdout)[0]["file"] == "<stdin>"
    r = run_cli("submit", "-", "--gpu-delay", "0", input=doc, env=env)
    assert r.returncode == 0, r.stderr
    assert "job " in r.stderr and "(<stdin>): 1 of 1 image to process" in r.stderr
    assert "completed: 1 ok, 0 failed of 1 image in" in r.stderr
    assert " 0.0 img/s" not in r.stderr and "1 images" not in r.stderr


def test_list_and_status_show_the_source_file(
    server: ImageServer, env: dict[str, str], tmp_path: Path, cli: Cli
) -> None:
    a = write_job(tmp_path / "monday.json", [visit("S00339218", *_images(server, "38", 1))])
    b = write_job(tmp_path / "tuesday.json", [visit("S00339218", *_images(server, "39", 1))])
    r = cli("submit", str(a), str(b), "--gpu-delay", "0")
    assert r.exit_code == 0
    first, second = r.stdout.split()
    table = cli("list").stdout
    assert re.search(rf"^{second} .*completed .* tuesday\.json\s*$", table, re.M), table
    assert re.search(rf"^{first} .*completed .* monday\.json\s*$", table, re.M), table
    rows = json.loads(cli("list", "--json").stdout)
    assert {row["job_id"]: row["source"] for row in rows} == {first: str(a), second: str(b)}
    assert re.search(rf"^source\s+{re.escape(str(a))}\s*$", cli("status", first).stdout, re.M)
    st = json.loads(cli("status", first, "--json").stdout)
    assert st["source"] == str(a) and st["error"] == [] and st["job_id"] == first


def test_problems_are_objects_with_path_line_and_column(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"count": 2,\n'
        ' "visits": [\n'
        '   {"store_id": "  ", "visit_time": "x", "image_url": ["a.jpg", 7]},\n'
        '   {"visit_time": "y", "image_url": ["b.jpg"]}\n'
        " ]\n"
        "}\n"
    )
    r = cli("validate", str(bad), "--json")
    assert r.exit_code == 3
    assert json.loads(r.stdout)[0]["problems"] == [
        {"path": "$.visits[0].store_id", "message": "must not be empty", "line": 3, "column": 17},
        {
            "path": "$.visits[0].image_url[1]",
            "message": "expected a string, got integer",
            "line": 3,
            "column": 65,
        },
        # a missing field: the object that lacks it
        {
            "path": "$.visits[1].store_id",
            "message": "required field is missing",
            "line": 4,
            "column": 4,
        },
    ]
    text = cli("validate", str(bad)).stdout  # the text output is as it was
    assert f"{bad}: invalid: visits[0].store_id: must not be empty\n" in text
    syntax = tmp_path / "syntax.json"
    syntax.write_text('{"count": 1,\n "visits": [}\n')
    [problem] = json.loads(cli("validate", str(syntax), "--json").stdout)[0]["problems"]
    assert problem["path"] is None and (problem["line"], problem["column"]) == (2, 13)
    # submit --json lists a rejected file with the same objects
    good = write_job(tmp_path / "good.json", [visit("S00339218", "x.jpg")])
    r = cli("submit", str(good), str(bad), "--json", "--gpu-delay", "0", "--retries", "0")
    rows = json.loads(r.stdout)
    assert rows[1]["status"] == "rejected"
    assert (
        rows[1]["problems"] == json.loads(cli("validate", str(bad), "--json").stdout)[0]["problems"]
    )


def test_closing_lines_name_the_file_and_verbose_lines_count_progress(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 17 #21: with several files the closing lines did not say which file was which,
    each gave the time of the whole batch, and --verbose's [2/3] was the image's position
    (so it went [2/3], [3/3], [1/3])."""
    slow_first = [server.url("/slow/ops-verbose?seconds=3"), *_images(server, "44", 2)]
    a = write_job(tmp_path / "monday.json", [visit("S00339218", *slow_first)])
    b = write_job(tmp_path / "tuesday.json", [visit("S00339218", *_images(server, "45", 1))])
    r = run_cli("submit", str(a), str(b), "--gpu-delay", "0", "--verbose", env=env)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.split()
    said = [line.split("retailpulse: ", 1)[1] for line in r.stderr.splitlines()]
    closing = {
        job_id: re.fullmatch(
            rf"job {job_id} \({name}\) completed: (\d) ok, 0 failed of \1 images? "
            r"in ([\d.]+)s \([\d.]+ img/s\)",
            next(s for s in said if s.startswith(f"job {job_id} ({name}) completed")),
        )
        for job_id, name in ((first, "monday.json"), (second, "tuesday.json"))
    }
    assert all(closing.values()), said
    a_took, b_took = (float(m.group(2)) for m in closing.values() if m)
    assert a_took >= 3.0 and b_took <= a_took - 1.5, said  # each job's own time
    verbose = [s for s in said if s.startswith(f"job {first} ") and "perimeter=" in s]
    assert [re.search(r"\[(\d)/3\]", s).group(1) for s in verbose] == ["1", "2", "3"], verbose
    assert "image 1: " in verbose[-1] and "/slow/ops-verbose" in verbose[-1]  # position named
