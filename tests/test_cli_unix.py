"""Issue 4: stdin, several files, inbox, list, validate, --json everywhere, exit codes,
quiet/verbose, colour only on terminals, cron's minimal environment."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

from retailpulse_cli.cli.app import app, handle_errors
from retailpulse_cli.errors import EXIT_CODE_HELP

from .conftest import (
    Cli,
    dropped_earlier,
    jobs_in,
    results_of,
    run_cli,
    start_cli,
    visit,
    write_job,
)
from .imageserver import ImageServer

ANSI = re.compile(r"\x1b\[")
ROOT = Path(__file__).resolve().parent.parent


def ok_job(tmp_path: Path, server: ImageServer, name: str, w: int) -> Path:
    return write_job(tmp_path / name, [visit("S00339218", server.url(f"/img/{w}x21.png"))])


def test_submit_reads_the_job_from_stdin(
    cli: Cli, server: ImageServer, env: dict[str, str]
) -> None:
    doc = {"count": 1, "visits": [visit("S00339218", server.url("/img/401x21.png"))]}
    r = cli("submit", "-", "--gpu-delay", "0", input=json.dumps(doc))
    assert r.exit_code == 0, r.stderr
    job_id = r.stdout.strip()
    assert jobs_in(env) == [job_id]
    assert results_of(env, job_id)[0]["perimeter"] == 2 * (401 + 21)
    assert (Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "job.json").read_text() == json.dumps(doc)


def test_several_files_one_bad_are_reported_skipped_and_reflected_in_exit_code(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    a = ok_job(tmp_path, server, "a.json", 402)
    b = ok_job(tmp_path, server, "b.json", 403)
    bad = tmp_path / "bad.json"
    bad.write_text('{"count": 1, "visits": []}')
    r = cli("submit", str(a), str(bad), str(b), "--gpu-delay", "0")
    assert r.exit_code == 3
    ids = r.stdout.split()
    assert len(ids) == 2 and sorted(ids) == jobs_in(env)
    assert f"{bad}: visits: must hold at least one visit" in r.stderr
    assert f"skipped {bad}" in r.stderr
    widths = sorted(results_of(env, i)[0]["width"] for i in ids)
    assert widths == [402, 403]


def test_several_good_files_json_is_an_array_and_exit_code_is_worst_outcome(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    a = ok_job(tmp_path, server, "a.json", 404)
    b = write_job(tmp_path / "b.json", [visit("S99999999", server.url("/img/405x21.png"))])
    r = cli("submit", str(a), str(b), "--gpu-delay", "0", "--json")
    assert r.exit_code == 1
    docs = json.loads(r.stdout)
    assert [d["status"] for d in docs] == ["completed", "failed"]


def test_inbox_moves_files_records_ids_and_reasons(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "inbox"
    box.mkdir()
    ok_job(box, server, "good.json", 406)
    (box / "broken.json").write_text("{not json")
    (box / "notes.txt").write_text("not a job file: left alone")
    dropped_earlier(box)
    r = cli("inbox", str(box), "--gpu-delay", "0", "--json")
    assert r.exit_code == 3  # one rejected file
    rows = {row["file"]: row for row in json.loads(r.stdout)}
    assert rows["good.json"]["status"] == "completed"
    assert rows["broken.json"]["status"] == "rejected"
    job_id = rows["good.json"]["job_id"]
    assert (box / "done" / "good.json").exists()
    assert (box / "done" / "good.json.job").read_text().strip() == job_id
    assert "not valid JSON at line 1" in (box / "rejected" / "broken.json.reason").read_text()
    assert not (box / "good.json").exists() and (box / "notes.txt").exists()
    assert jobs_in(env) == [job_id]
    again = cli("inbox", str(box), "--json")  # nothing left: nothing taken twice
    assert again.exit_code == 0 and json.loads(again.stdout) == []


def test_inbox_leaves_a_file_still_being_uploaded_for_the_next_run(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 17, finding 6: a file caught mid-upload was rejected as invalid JSON."""
    box = tmp_path / "inbox"
    box.mkdir()
    whole = ok_job(tmp_path, server, "whole.json", 408).read_text()
    ok_job(box, server, "earlier.json", 407)
    for name in (".hidden.json", "upload.json.tmp", "upload.json.part"):
        (box / name).write_text(whole)  # temp names: never job files, however old
    dropped_earlier(box)
    (box / "uploading.json").write_text(whole[: len(whole) // 2])  # being written now
    r = cli("inbox", str(box), "--gpu-delay", "0", "--json")
    assert r.exit_code == 0, r.stderr
    assert [row["file"] for row in json.loads(r.stdout)] == ["earlier.json"]
    assert f"left {box / 'uploading.json'} for the next run: modified" in r.stderr
    assert list((box / "rejected").iterdir()) == []
    left = sorted(p.name for p in box.iterdir() if p.is_file())
    assert left == [".hidden.json", "upload.json.part", "upload.json.tmp", "uploading.json"]
    # The upload ends; the next run, a few seconds later, takes it.
    (box / "uploading.json").write_text(whole)
    dropped_earlier(box)
    again = cli("inbox", str(box), "--gpu-delay", "0", "--json")
    assert again.exit_code == 0, again.stderr
    rows = [(row["file"], row["status"]) for row in json.loads(again.stdout)]
    assert rows == [("uploading.json", "completed")]
    assert list((box / "rejected").iterdir()) == []


def test_two_inbox_runs_at_once_take_no_file_twice(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "inbox"
    box.mkdir()
    for k in range(12):
        ok_job(box, server, f"job{k:02}.json", 410 + k)
    dropped_earlier(box)
    procs = [
        start_cli("inbox", str(box), "--json", "--gpu-delay", "0.05", env=env) for _ in range(2)
    ]
    rows: list[dict[str, Any]] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        rows += json.loads(out)
    files = [r["file"] for r in rows]
    assert sorted(files) == [f"job{k:02}.json" for k in range(12)]  # each exactly once
    assert len(jobs_in(env)) == 12
    assert sorted(p.name for p in (box / "done").glob("*.json")) == sorted(files)


def test_inbox_picks_up_a_file_left_by_a_killed_run(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "inbox"
    box.mkdir()
    urls = [server.url(f"/img/{430 + i}x22.png") for i in range(60)]
    write_job(box / "big.json", [visit("S00339218", *urls)])
    dropped_earlier(box)
    p = start_cli("inbox", str(box), "--gpu-delay", "0.1", "--workers", "2", env=env)
    deadline = time.monotonic() + 20
    while not list((box / ".processing").glob("*.job")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    p.kill()
    p.wait()
    r = run_cli("inbox", str(box), "--json", "--gpu-delay", "0", env=env)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["file"] == "big.json" and row["status"] == "completed"
    assert jobs_in(env) == [row["job_id"]]  # resumed, not submitted twice
    assert sorted(x["index"] for x in results_of(env, row["job_id"])) == list(range(60))


def test_list_filters_and_json(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    ids = []
    for k, store in enumerate(["S00339218", "S99999999", "S00339218"]):
        job = write_job(
            tmp_path / f"{k}.json", [visit(store, server.url(f"/img/{450 + k}x21.png"))]
        )
        ids.append(cli("submit", str(job), "--gpu-delay", "0").stdout.strip())
    r = cli("list", "--json")
    rows = json.loads(r.stdout)
    assert [row["job_id"] for row in rows] == sorted(ids, reverse=True)  # newest first
    assert {row["status"] for row in rows} == {"completed", "failed"}
    failed = json.loads(cli("list", "--status", "failed", "--json").stdout)
    assert [row["job_id"] for row in failed] == [ids[1]]
    assert len(json.loads(cli("list", "--limit", "2", "--json").stdout)) == 2
    assert json.loads(cli("list", "--since", "2999-01-01", "--json").stdout) == []
    assert len(json.loads(cli("list", "--since", "2020-01-01T00:00:00Z", "--json").stdout)) == 3
    bad = cli("list", "--since", "next week")
    assert bad.exit_code == 2 and "'next week' is not a date or an age" in bad.stderr
    assert len(bad.stderr.splitlines()) == 1
    table = cli("list")
    assert all(i in table.stdout for i in ids) and "failed" in table.stdout


def test_validate_tells_valid_unknown_store_and_invalid_apart(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    good = write_job(tmp_path / "good.json", [visit("S00339218", "http://example.invalid/a.jpg")])
    unknown = write_job(
        tmp_path / "unknown.json", [visit("S99999999", "http://example.invalid/a.jpg")]
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"count": "1", "visits": [{"store_id": 5}]}')
    assert cli("validate", str(good)).exit_code == 0
    r = cli("validate", str(unknown), "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)[0]["unknown_stores"] == ["S99999999"]
    r = cli("validate", str(good), str(bad), "--json")
    assert r.exit_code == 3
    rows = json.loads(r.stdout)
    assert rows[0]["valid"] is True and rows[1]["valid"] is False
    said = [(p["path"], p["message"]) for p in rows[1]["problems"]]
    assert ("$.count", "expected an integer, got string") in said
    assert ("$.visits[0].store_id", "expected a string, got integer") in said
    assert jobs_in(env) == []  # nothing created, nothing downloaded


def test_every_json_flag_prints_only_json(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = ok_job(tmp_path, server, "a.json", 460)
    sub = run_cli("submit", str(job), "--gpu-delay", "0", "--json", env=env)
    job_id = json.loads(sub.stdout)["job_id"]
    for args in (
        ["status", job_id],
        ["list"],
        ["validate", str(job)],
        ["resume", job_id],
        ["retry", job_id],
        ["schema"],
        ["inbox", str(tmp_path / "empty")],
    ):
        (tmp_path / "empty").mkdir(exist_ok=True)
        r = run_cli(*args, *(["--json"] if args[0] != "schema" else []), env=env)
        assert r.returncode == 0, (args, r.stderr)
        json.loads(r.stdout)  # the whole of stdout is one JSON document
    r = run_cli("results", job_id, env=env)
    assert [json.loads(line)["perimeter"] for line in r.stdout.splitlines()] == [2 * (460 + 21)]


def test_piped_output_has_no_ansi_and_no_color_is_respected(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S99999999", server.url("/img/461x21.png"))])
    plain_env = {k: v for k, v in env.items() if k != "NO_COLOR"}
    sub = run_cli("submit", str(job), "--gpu-delay", "0", "--verbose", env=plain_env)
    job_id = sub.stdout.strip()
    outputs = [sub.stdout, sub.stderr]
    for args in (
        ["status", job_id],
        ["list"],
        ["validate", str(job)],
        ["results", job_id],
        ["status", "nope"],
        ["--help"],
    ):
        r = run_cli(*args, env=plain_env)
        outputs += [r.stdout, r.stderr]
    assert not any(ANSI.search(o) for o in outputs)
    # on a (pretend) terminal Rich colours the table, unless NO_COLOR or --no-color
    forced = {**plain_env, "FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"}
    assert ANSI.search(run_cli("status", job_id, env=forced).stdout)
    assert not ANSI.search(run_cli("status", job_id, "--no-color", env=forced).stdout)
    assert not ANSI.search(run_cli("status", job_id, env={**forced, "NO_COLOR": "1"}).stdout)


def test_status_wait_exit_codes(server: ImageServer, env: dict[str, str], tmp_path: Path) -> None:
    job = ok_job(tmp_path, server, "a.json", 462)
    job_id = run_cli("submit", "-d", str(job), "--gpu-delay", "2", env=env).stdout.strip()
    t0 = time.monotonic()
    r = run_cli("status", "--wait", "--timeout", "0.3", job_id, env=env)
    assert r.returncode == 8 and "still ongoing after 0.3s" in r.stderr
    assert time.monotonic() - t0 < 5
    r = run_cli("status", "--wait", job_id, "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "completed"
    failing = write_job(tmp_path / "f.json", [visit("S00339218", server.url("/status/404"))])
    fid = run_cli(
        "submit", str(failing), "--gpu-delay", "0", "--retries", "0", env=env
    ).stdout.strip()
    assert run_cli("status", "--wait", fid, env=env).returncode == 1


def test_quiet_and_verbose(server: ImageServer, env: dict[str, str], tmp_path: Path) -> None:
    urls = [server.url(f"/img/{470 + i}x21.png") for i in range(3)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    q = run_cli("submit", str(job), "--gpu-delay", "0", "--quiet", env=env)
    assert q.returncode == 0 and q.stderr == "" and re.fullmatch(r"\S+\n", q.stdout)
    v = run_cli("submit", str(job), "--gpu-delay", "0", "--verbose", env=env)
    per_image = [line for line in v.stderr.splitlines() if "perimeter=" in line]
    assert len(per_image) == 3
    assert any(
        f"/img/470x21.png ok 470x21 perimeter={2 * (470 + 21)}" in line for line in per_image
    )


def test_version() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "retailpulse_cli", "--version"], capture_output=True, text=True
    )
    from retailpulse_cli import __version__

    assert r.returncode == 0 and r.stdout.strip() == f"retailpulse {__version__}"


def test_shell_completion_completes_commands(env: dict[str, str]) -> None:
    comp = {
        **env,
        "_RETAILPULSE_COMPLETE": "complete_bash",
        "COMP_WORDS": "retailpulse sta",
        "COMP_CWORD": "1",
    }
    exe = Path(sys.executable).parent / "retailpulse"
    r = subprocess.run([str(exe)], env=comp, capture_output=True, text=True)
    assert r.stdout.split() == ["status"]


def test_under_cron_minimal_environment(server: ImageServer, tmp_path: Path) -> None:
    """No HOME, no TERM, cwd /, only PATH: the default jobs dir and a plain log."""
    job = ok_job(tmp_path, server, "a.json", 480)
    env = {"PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-m", "retailpulse_cli", "submit", str(job), "--gpu-delay", "0"],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip()
    try:
        assert f"job {job_id} (a.json) completed: 1 ok, 0 failed of 1 image " in r.stderr
        assert not ANSI.search(r.stderr)
        st = subprocess.run(
            [sys.executable, "-m", "retailpulse_cli", "status", job_id, "--json"],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
        )
        assert json.loads(st.stdout)["status"] == "completed"
    finally:
        import shutil

        # where the default put it (the user's data dir, found without HOME): clean it up
        default = Path(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from retailpulse_cli.storage.job_dir import default_jobs_dir as d; print(d())",
                ],
                env=env,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        assert default.is_absolute() and default.name == "jobs" and "retailpulse" in str(default)
        shutil.rmtree(default / job_id, ignore_errors=True)


def start_and_wait_ongoing(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start the CLI and return once its job reads `ongoing` with some images done."""
    p = start_cli(*args, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ids = jobs_in(env)
        if ids:
            st = json.loads(run_cli("status", max(ids), "--json", env=env).stdout)
            if st["status"] == "ongoing" and st["run"]["pid"] == p.pid and st["images_done"] > 0:
                return p
        time.sleep(0.1)
    raise AssertionError("job did not start")


def test_every_documented_exit_code_is_produced(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    seen: dict[int, str] = {}
    good = ok_job(tmp_path, server, "good.json", 490)
    seen[cli("submit", str(good), "--gpu-delay", "0").exit_code] = "completed"
    bad_store = write_job(tmp_path / "u.json", [visit("S99999999", server.url("/img/491x21.png"))])
    seen[cli("submit", str(bad_store), "--gpu-delay", "0").exit_code] = "failed"
    seen[cli("submit", "--workers", "0", str(good)).exit_code] = "usage"
    seen[cli("submit", str(tmp_path / "missing.json")).exit_code] = "invalid"
    seen[cli("submit", str(good), "--store-master", str(tmp_path / "nope.csv")).exit_code] = (
        "master"
    )
    seen[cli("status", "no-such-job").exit_code] = "not found"
    seen[
        cli(
            "status",
            "--wait",
            "--timeout",
            "0.2",
            run_cli("submit", "-d", str(good), "--gpu-delay", "1", env=env).stdout.strip(),
        ).exit_code
    ] = "wait"
    file_as_dir = tmp_path / "plainfile"
    file_as_dir.write_text("")
    seen[cli("submit", str(good), "--jobs-dir", str(file_as_dir / "jobs")).exit_code] = "storage"
    # busy (6), interrupted (130) and terminated (143) come from real processes and
    # signals in test_resilience.py; here the same codes through the same paths:
    urls = [server.url(f"/img/{500 + i}x21.png") for i in range(40)]
    slow = write_job(tmp_path / "slow.json", [visit("S00339218", *urls)])
    args = ["--gpu-delay", "0.2", "--workers", "2"]
    p = start_and_wait_ongoing(["submit", str(slow), *args], env)
    job_id = max(jobs_in(env))
    seen[run_cli("resume", job_id, env=env).returncode] = "busy"
    p.send_signal(signal.SIGINT)
    seen[p.wait(20)] = "interrupted"
    p = start_and_wait_ongoing(["resume", job_id, *args], env)
    p.send_signal(signal.SIGTERM)
    seen[p.wait(20)] = "terminated"

    @handle_errors
    def buggy() -> None:
        raise RuntimeError("boom")

    try:
        buggy()
    except typer.Exit as exc:  # the one mapping every command goes through
        seen[exc.exit_code] = "internal"
    assert set(seen) == {int(c) for c in EXIT_CODE_HELP}, seen


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    names = [
        c.name or (c.callback.__name__ if c.callback else "")
        for c in app.registered_commands
        if not c.hidden
    ]
    assert {
        "submit",
        "status",
        "results",
        "resume",
        "retry",
        "list",
        "validate",
        "inbox",
        "schema",
    } <= set(names)
    for name in names:
        r = subprocess.run(
            [sys.executable, "-m", "retailpulse_cli", name, "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
        )
        assert r.returncode == 0 and "Usage:" in r.stdout, name
        assert len(r.stdout.split()) > 20, name
        assert f"retailpulse {name}" in readme, f"README does not show `retailpulse {name}`"
    for code in EXIT_CODE_HELP:
        assert f"| {int(code)} |" in readme, f"exit code {int(code)} missing from README table"
