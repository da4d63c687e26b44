"""Regressions found by review: crash-safe retry merges, honest counts during a retry,
per-job store master, odd inbox entries, hostile text in job files, politeness vs
deadlines, pipes closed early."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

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


def status_of(env: dict[str, str], job_id: str) -> dict[str, Any]:
    r = run_cli("status", job_id, "--json", env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def shown_results(env: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    r = run_cli("results", job_id, env=env)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_a_stale_merge_file_from_a_dead_merge_never_duplicates_records(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    urls = [server.url(f"/flaky/stale{i}?fail=1") for i in range(5)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    job_id = cli("submit", str(job), "--gpu-delay", "0", "--retries", "0").stdout.strip()
    jdir = Path(env["RETAILPULSE_JOBS_DIR"]) / job_id
    # what a merge killed half-way leaves behind: a temp file full of records
    (jdir / ".results.jsonl.merge").write_bytes((jdir / "results.jsonl").read_bytes())
    r = cli("retry", job_id, "--retries", "0", "--json")
    assert r.exit_code == 0, r.stderr
    records = shown_results(env, job_id)
    assert sorted(rec["index"] for rec in records) == list(range(5))
    assert json.loads(r.stdout)["images_done"] == 5
    assert not (jdir / ".results.jsonl.merge").exists()


def test_counts_match_results_after_a_retry_is_killed_and_resume_goes_on_retrying(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    n = 60
    urls = [server.url(f"/flaky/killretry{i}?fail=1") for i in range(n)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    job_id = run_cli(
        "submit", str(job), "--gpu-delay", "0", "--retries", "0", env=env
    ).stdout.strip()
    assert status_of(env, job_id)["images_failed"] == n
    p = start_cli(
        "retry", job_id, "--gpu-delay", "0.2", "--workers", "2", "--retries", "0", env=env
    )
    deadline = time.monotonic() + 20
    while status_of(env, job_id)["images_ok"] < 6:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    st = status_of(env, job_id)
    shown = Counter(rec["status"] for rec in shown_results(env, job_id))
    assert st["status"] == "interrupted"
    # status.json is rewritten every half second, after the records it counts are on
    # disk: a kill can leave it behind the records (more so on a loaded machine: issue
    # 17, finding 17, saw (9, 51) against (15, 45)), never ahead of them. Each record
    # is counted once: a retried image's new record replaces its failed one.
    assert 6 <= st["images_ok"] <= shown["ok"], (st, shown)
    assert st["images_ok"] + st["images_failed"] == sum(shown.values()) == n

    r = run_cli("resume", job_id, "--json", "--gpu-delay", "0", "--retries", "0", env=env)
    assert r.returncode == 0, r.stderr  # it went on retrying the failed images
    final = json.loads(r.stdout)
    assert final["images_ok"] == n and final["images_failed"] == 0
    records = results_of(env, job_id)
    assert sorted(rec["index"] for rec in records) == list(range(n))


def test_resume_uses_the_store_master_the_job_was_submitted_with(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    master = tmp_path / "custom.csv"
    master.write_text("AreaCode,StoreName,StoreID\n1,Corner shop,CUSTOM1\n")
    urls = [server.url(f"/img/{800 + i}x20.png") for i in range(40)]
    job = write_job(tmp_path / "j.json", [visit("CUSTOM1", *urls)])
    p = start_cli(
        "submit",
        str(job),
        "--store-master",
        str(master),
        "--gpu-delay",
        "0.2",
        "--workers",
        "2",
        env=env,
    )
    deadline = time.monotonic() + 20
    while not jobs_in(env) or status_of(env, jobs_in(env)[0])["images_done"] < 4:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    assert p.wait(20) == 130
    job_id = jobs_in(env)[0]
    r = run_cli("resume", job_id, "--json", "--gpu-delay", "0", env=env, cwd=Path("/"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["images_ok"] == 40


def test_inbox_survives_odd_entries_and_bad_text(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "inbox"
    box.mkdir()
    write_job(box / "good.json", [visit("S00339218", server.url("/img/820x20.png"))])
    (box / "folder.json").mkdir()
    os.mkfifo(box / "pipe.json")
    (box / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    (box / "deep.json").write_text("[" * 100_000)
    (box / "surrogate.json").write_text(
        '{"count": 1, "visits": [{"store_id": "S00339218", "visit_time": "x", '
        '"image_url": ["http://127.0.0.1:9/\\ud800.jpg"]}]}'
    )
    dropped_earlier(box)
    r = run_cli("inbox", str(box), "--json", "--gpu-delay", "0", env=env, timeout=60)
    assert r.returncode == 3, r.stderr  # two files rejected
    rows = {row["file"]: row for row in json.loads(r.stdout)}
    assert rows["good.json"]["status"] == "completed"
    assert [p["message"] for p in rows["deep.json"]["problems"]] == [
        "nested too deeply to be a job file"
    ]
    assert "invalid character" in rows["surrogate.json"]["problems"][0]["message"]
    assert set(rows) == {"good.json", "deep.json", "surrogate.json"}
    for odd in ("folder.json", "pipe.json", "dangling.json"):
        assert f"skipped {box / odd}: not a regular file" in r.stderr
    assert "Traceback" not in r.stderr and list((box / ".processing").iterdir()) == []


def test_markup_and_escape_codes_in_job_files_are_shown_not_obeyed(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(
        tmp_path / "j.json",
        [
            visit("[/]", server.url("/img/821x20.png")),
            visit("S00339218", server.url("/img/822x20.png") + "?a=\x1b[31mRED\x1b[0m"),
        ],
    )
    plain = {k: v for k, v in env.items() if k != "NO_COLOR"}
    sub = run_cli("submit", str(job), "--gpu-delay", "0", "--verbose", env=plain)
    assert sub.returncode == 1, sub.stderr
    assert "\x1b" not in sub.stderr and "\\x1b[31mRED" in sub.stderr
    st = run_cli("status", sub.stdout.strip(), env=plain)
    assert st.returncode == 0, st.stderr
    assert "[/]" in st.stdout


def test_job_ids_sort_in_creation_order_within_a_second(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/823x20.png"))])
    ids = [cli("submit", "-d", str(job), "--gpu-delay", "0").stdout.strip() for _ in range(6)]
    assert all(re.fullmatch(r"\d{8}-\d{6}-\d{3}-[0-9a-f]{4}", i) for i in ids)
    assert ids == sorted(ids)
    for i in ids:
        assert run_cli("status", "--wait", i, env=env).returncode == 0
    listed = json.loads(cli("list", "--json").stdout)
    assert [row["job_id"] for row in listed] == ids[::-1]


def test_hand_edited_job_dirs_are_reported_not_crashed_on(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/824x20.png"))])
    job_id = cli("submit", str(job), "--gpu-delay", "0").stdout.strip()
    root = Path(env["RETAILPULSE_JOBS_DIR"])
    (root / "stray.txt").write_text("not a job")
    st_path = root / job_id / "status.json"
    st_path.write_text(json.dumps({**json.loads(st_path.read_text()), "images_total": "300"}))
    r = cli("status", job_id)
    assert r.exit_code == 7 and "wrong type for images_total" in r.stderr
    rows = json.loads(cli("list", "--json").stdout)
    assert [(row["job_id"], row["status"]) for row in rows] == [(job_id, "damaged")]


def test_folders_that_were_never_jobs_are_not_listed_as_damaged(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 17, finding 8: `notes/` and `lost+found/` in the jobs dir showed as damaged."""
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/825x20.png"))])
    good, broken = (cli("submit", str(job), "--gpu-delay", "0").stdout.strip() for _ in "ab")
    root = Path(env["RETAILPULSE_JOBS_DIR"])
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("not a job")
    (root / "lost+found").mkdir()
    (root / broken / "status.json").write_text("{")  # a job, with a broken file: damaged
    rows = json.loads(cli("list", "--json").stdout)
    assert [(row["job_id"], row["status"]) for row in rows] == [
        (broken, "damaged"),
        (good, "completed"),
    ]
    damaged = json.loads(cli("list", "--status", "damaged", "--json").stdout)
    assert [row["job_id"] for row in damaged] == [broken]
    r = cli("status", "notes")
    assert r.exit_code == 5 and "no job 'notes'" in r.stderr, r.stderr
    assert cli("status", broken).exit_code == 7
    report = json.loads(cli("report", "--since", "7d", "--json").stdout)
    assert [j["job_id"] for j in report["jobs"]] == [good]
    assert len(report["skipped"]) == 1 and broken in report["skipped"][0]


def test_rate_limit_waits_do_not_count_against_the_timeout(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    urls = [server.url(f"/img/{830 + i}x20.png") for i in range(6)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    t0 = time.monotonic()
    r = cli("submit", str(job), "--gpu-delay", "0", "--rate", "3", "--timeout", "1", "--json")
    assert r.exit_code == 0, r.stdout
    assert json.loads(r.stdout)["images_ok"] == 6
    assert time.monotonic() - t0 >= 5 / 3 - 0.1  # the rate was still applied


def test_empty_body_and_unparsable_redirect_have_their_codes(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    empty = server.url("/empty")
    bad_redirect = server.url("/redirect?to=http://[::1")
    job = write_job(tmp_path / "j.json", [visit("S00339218", empty, bad_redirect)])
    r = cli("submit", str(job), "--gpu-delay", "0", "--retries", "1")
    codes = {
        rec["image_url"]: (rec["error_code"], rec["attempts"])
        for rec in results_of(env, r.stdout.strip())
    }
    assert codes[empty] == ("empty_body", 2)
    assert codes[bad_redirect][0] == "invalid_url"


def test_a_reader_closing_the_pipe_early_is_not_an_error(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    urls = [server.url(f"/img/{840 + i}x20.png") for i in range(300)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    job_id = run_cli("submit", str(job), "--gpu-delay", "0", env=env).stdout.strip()
    exe = f"{sys.executable} -m retailpulse_cli"
    for cmd in (f"results {job_id}", f"results {job_id} --format csv", f"status {job_id} --json"):
        r = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"{exe} {cmd} | head -1"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, (cmd, r.stderr)
        assert r.stderr == "" and len(r.stdout.splitlines()) == 1


def test_hand_typed_job_file_mistakes_get_pointed_messages(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    cases = {
        "trailing.json": (
            '{"count": 1, "visits": [1,]}',
            "(a trailing comma before the closing bracket?)",
        ),
        "dup.json": (
            '{"count": 1, "count": 2, "visits": []}',
            "key 'count' appears twice in one object",
        ),
        "typo.json": (
            '{"count": 1, "visits": [{"store_id": "S1", "image_urls": ["a"], "visit_time": "x"}]}',
            "visits[0].image_url: required field is missing (found 'image_urls': a typo?)",
        ),
        "string.json": (
            '{"count": 1, "visits": [{"store_id": "S1", "image_url": "a.jpg", "visit_time": "x"}]}',
            "expected an array of URLs, got string (put the URL in [ ])",
        ),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        r = cli("validate", str(tmp_path / name))
        assert r.exit_code == 3 and expected in r.stdout, (name, r.stdout)
    (tmp_path / "utf16.json").write_text('{"count": 1}', encoding="utf-16")
    r = cli("submit", str(tmp_path / "utf16.json"))
    assert r.exit_code == 3 and "is UTF-16 text; save it as UTF-8" in r.stderr
    assert jobs_in(env) == []


def test_deep_nesting_and_huge_numbers_are_invalid_input_not_a_crash_later(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    def deep(n: int) -> str:
        visit_text = (
            '{"store_id": "S00339218", "visit_time": "t", "image_url": ["'
            + server.url("/img/850x20.png")
            + '"], "x": '
            + "[" * n
            + "]" * n
            + "}"
        )
        return '{"count": 1, "visits": [' + visit_text + "]}"

    # 975 levels break json's scanner at some stack depths and not at others; 100 never
    # does: both must be refused up front, whatever the stack, not crash later in the run
    (tmp_path / "deep975.json").write_text(deep(975))
    (tmp_path / "deep100.json").write_text(deep(100))
    (tmp_path / "huge.json").write_text('{"count": 1, "n": ' + "9" * 5000 + ', "visits": []}')
    for name, expected in (
        ("deep975.json", "nested too deeply"),
        ("deep100.json", "visits[0].x: nested too deeply (over 32 levels)"),
        ("huge.json", "not a usable JSON value"),
    ):
        for command in ("validate", "submit"):
            r = cli(command, str(tmp_path / name))
            assert r.exit_code == 3, (name, command, r.stderr)
            assert expected in r.stdout + r.stderr
    assert jobs_in(env) == []


def test_rich_output_into_a_closed_pipe_keeps_the_exit_code(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"count": "1"}')
    good = write_job(tmp_path / "good.json", [visit("S00339218", server.url("/img/851x20.png"))])
    exe = f"{sys.executable} -m retailpulse_cli"
    big = " ".join([str(good)] * 200)  # enough lines that the reader is gone before the end
    r = subprocess.run(
        [
            "bash",
            "-c",
            f"{exe} validate {bad} {big} | head -c 1 > /dev/null; echo ${{PIPESTATUS[0]}}",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == "3", r.stderr
    r = subprocess.run(
        ["bash", "-c", f"{exe} validate {good} > /dev/full; echo $?"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == "7" and "cannot write to standard output" in r.stderr


def test_text_from_job_files_cannot_forge_lines_or_emoji(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(
        tmp_path / ":thumbs_up:.json",
        [visit("S:warning:1\nretailpulse: job X completed", server.url("/img/852x20.png"))],
    )
    r = cli("validate", str(job))
    assert r.exit_code == 1
    assert ":thumbs_up:.json" in r.stdout and "S:warning:1\\x0aretailpulse" in r.stdout
    assert len(r.stdout.splitlines()) == 1


def test_inbox_ignores_hidden_files(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "inbox"
    box.mkdir()
    write_job(box / ".partial-upload.json", [visit("S00339218", server.url("/img/853x20.png"))])
    r = run_cli("inbox", str(box), "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout) == []
    assert (box / ".partial-upload.json").exists() and jobs_in(env) == []


def test_resume_of_a_finished_job_changes_nothing(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S99999999", server.url("/img/854x20.png"))])
    job_id = cli("submit", str(job), "--gpu-delay", "0").stdout.strip()
    path = Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "status.json"
    before = path.read_bytes()
    r = cli("resume", job_id, "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["status"] == "failed"
    assert path.read_bytes() == before


def test_inbox_does_not_take_symbolic_links(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "box"
    box.mkdir()
    real = write_job(box / "z.json", [visit("S00339218", server.url("/img/701x30.png"))])
    (box / "a.json").symlink_to(real)
    dropped_earlier(box)
    r = cli("inbox", str(box), "--gpu-delay", "0")
    assert r.exit_code == 0, r.stderr
    assert len(jobs_in(env)) == 1  # z.json once, not again through a.json
    assert "skipped" in r.stderr and "a.json" in r.stderr
    assert (box / "a.json").is_symlink()  # left where it was
