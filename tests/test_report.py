"""`retailpulse report` and `--since`: real jobs run against the test image server, then
reported as JSON, CSV, text and an HTML page that is parsed back."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from retailpulse_cli.jobs.read import parse_since
from retailpulse_cli.jobs.report_counts import JobSummary, Summary, summarize
from retailpulse_cli.storage.job_dir import JobStore

from .conftest import (
    KNOWN,
    Cli,
    jobs_in,
    one_image_job,
    run_cli,
    start_cli,
    unstamped,
    visit,
    write_job,
)
from .imageserver import ImageServer

BAD_STORE = 'S9<script>alert("x")</script>'


def run_mixed_job(cli: Cli, server: ImageServer, tmp_path: Path, name: str = "a") -> str:
    """A real job: store 0 all ok, store 1 with five 404s and an ok, one unknown store."""
    urls_404 = [server.url(f"/status/404?{name}={i}") for i in range(5)]
    job = write_job(
        tmp_path / f"{name}.json",
        [
            visit(KNOWN[0], server.url("/img/40x30.png"), server.url("/img/41x30.png")),
            visit(KNOWN[1], server.url("/img/42x30.png"), *urls_404),
            visit(BAD_STORE, server.url("/img/43x30.png")),
        ],
    )
    r = cli("submit", str(job), "--gpu-delay", "0", "--retries", "0")
    assert r.exit_code == 1, r.stderr
    return str(r.stdout.strip())


def test_report_json_counts_per_store_codes_samples_and_totals(
    cli: Cli, server: ImageServer, tmp_path: Path
) -> None:
    job_id = run_mixed_job(cli, server, tmp_path)
    r = cli("report", "--json")  # default: the latest job
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["totals"] == {
        "jobs": 1,
        "stores": 3,
        "images": 9,
        "ok": 3,
        "failed": 6,
        "unknown_stores": 1,
        "duration_s": doc["jobs"][0]["duration_s"],
    }
    stores = {s["store_id"]: s for s in doc["stores"]}
    assert stores[KNOWN[0]] == {
        "store_id": KNOWN[0],
        "images": 2,
        "ok": 2,
        "failed": 0,
        "unknown_store": False,
    }
    assert (stores[KNOWN[1]]["images"], stores[KNOWN[1]]["failed"]) == (6, 5)
    assert stores[BAD_STORE]["unknown_store"] is True
    codes = {f["code"]: f for f in doc["failures_by_code"]}
    assert codes["http_404"]["count"] == 5 and codes["store_not_found"]["count"] == 1
    assert len(codes["http_404"]["samples"]) == 3  # at most three, as stored
    assert all("/status/404?a=" in u for u in codes["http_404"]["samples"])
    (job,) = doc["jobs"]
    assert job["job_id"] == job_id and job["status"] == "failed"
    assert job["duration_s"] is not None and job["duration_s"] >= 0


def test_report_csv_is_one_row_per_store_per_job(
    cli: Cli, server: ImageServer, tmp_path: Path
) -> None:
    a = run_mixed_job(cli, server, tmp_path, "a")
    b = run_mixed_job(cli, server, tmp_path, "b")
    r = cli("report", a, b, "--format", "CSV")
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 6
    assert {(row["job_id"], row["store_id"]) for row in rows} == {
        (j, s) for j in (a, b) for s in (KNOWN[0], KNOWN[1], BAD_STORE)
    }
    row = next(x for x in rows if x["job_id"] == b and x["store_id"] == KNOWN[1])
    assert (row["images"], row["ok"], row["failed"], row["unknown_store"]) == (
        "6",
        "1",
        "5",
        "false",
    )


def test_report_text_off_a_terminal_is_plain(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit(KNOWN[0], server.url("/status/404?t=1"))])
    run_cli("submit", str(job), "--gpu-delay", "0", "--retries", "0", env=env)
    r = run_cli("report", env={k: v for k, v in env.items() if k != "NO_COLOR"})
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout
    assert "1 job, 1 store, 1 image: 0 ok, 1 failed, 0 unknown stores" in r.stdout
    assert KNOWN[0] in r.stdout and "http_404" in r.stdout
    assert server.url("/status/404?t=1") in r.stdout  # sample URL, not cut


def test_report_exit_codes_and_one_line_errors(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    r = cli("report")
    assert r.exit_code == 5 and "no jobs in" in r.stderr
    job_id = run_mixed_job(cli, server, tmp_path)
    r = cli("report", "20990101-000000-000-dead")
    assert r.exit_code == 5 and "no job '20990101-000000-000-dead'" in r.stderr
    r = cli("report", "--since", "last tuesday")
    assert r.exit_code == 2
    assert (
        unstamped(r.stderr)
        .splitlines()[0]
        .startswith("retailpulse: error: --since: 'last tuesday'")
    )
    assert len(r.stderr.splitlines()) == 1
    r = cli("report", job_id, "--since", "24h")
    assert r.exit_code == 2
    r = cli("report", "--format", "xml")
    assert r.exit_code == 2
    target = tmp_path / "no-such-dir" / "r.html"
    r = cli("report", "--html", str(target))
    assert r.exit_code == 7
    assert f"cannot write {target}" in r.stderr and "Traceback" not in r.stderr
    assert not target.parent.exists()


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.cards: dict[str, str] = {}
        self._card: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.stack.append(dict(attrs).get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.stack and self.stack[-1] in ("n", "l") and "card" in " ".join(self.stack):
            self._card.append(data)
            if self.stack[-1] == "l":
                self.cards[data] = self._card[0]
                self._card = []


def test_html_page_is_self_contained_escaped_and_shows_the_numbers(
    cli: Cli, server: ImageServer, tmp_path: Path
) -> None:
    a = run_mixed_job(cli, server, tmp_path, "a")
    b = run_mixed_job(cli, server, tmp_path, "b")
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    r = cli("report", a, b, "--html", str(page))
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""  # --html alone: only the page
    parser = PageParser()
    parser.feed(page.read_text())
    assert parser.cards["images"] == "18" and parser.cards["failed"] == "12"
    assert parser.cards["ok"] == "6" and parser.cards["jobs"] == "2"
    assert parser.cards["unknown stores"] == "1"
    bars = [attrs for tag, attrs in parser.tags if tag == "rect" and attrs.get("class") == "bar"]
    assert len(bars) == 2  # http_404 and store_not_found
    assert not [t for t, _ in parser.tags if t == "script"]  # the store id stays text
    assert BAD_STORE in "".join(parser.text)
    for _tag, attrs in parser.tags:
        for key in ("src", "href"):
            assert not str(attrs.get(key) or "").startswith(("http:", "https:", "//"))
    text = "".join(parser.text)
    assert a in text and b in text
    assert [p.name for p in page.parent.iterdir()] == ["report.html"]  # no temp file left


def test_report_since_picks_jobs_by_created_at(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    old = run_mixed_job(cli, server, tmp_path, "a")
    new = run_mixed_job(cli, server, tmp_path, "b")
    status = Path(env["RETAILPULSE_JOBS_DIR"]) / old / "status.json"
    doc = json.loads(status.read_text())
    doc["created_at"] = (datetime.now(timezone.utc) - timedelta(days=3)).isoformat()
    status.write_text(json.dumps(doc))

    def reported(since: str) -> list[str]:
        doc = json.loads(cli("report", "--since", since, "--json").stdout)
        return [j["job_id"] for j in doc["jobs"]]

    assert reported("24h") == [new]
    assert reported("7d") == [old, new]
    listed = json.loads(cli("list", "--since", "yesterday", "--json").stdout)
    assert [row["job_id"] for row in listed] == [new]
    assert sorted(jobs_in(env)) == sorted([old, new])


NOW = datetime(2026, 12, 2, 15, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2w", NOW - timedelta(days=14)),
        ("today", datetime(2026, 12, 2, tzinfo=timezone.utc)),
        ("Yesterday", datetime(2026, 12, 1, tzinfo=timezone.utc)),
        ("2026-11-30", datetime(2026, 11, 30, tzinfo=timezone.utc)),
        ("2026-11-30T10:00:00Z", datetime(2026, 11, 30, 10, tzinfo=timezone.utc)),
    ],
)
def test_parse_since_accepts_ages_days_and_iso(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "-3d", "7 days", "tomorrow", "2026-13-01"])
def test_parse_since_rejects_with_one_clear_sentence(text: str) -> None:
    with pytest.raises(ValueError, match="24h, 7d"):
        parse_since(text, now=NOW)


def test_summary_memory_stays_flat_on_a_large_job(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """100,000 records appended to a real job's results: counters, not records, are kept."""
    job_id = run_mixed_job(cli, server, tmp_path)
    results = Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "results.jsonl"
    n = 100_000
    with results.open("a") as fh:
        for i in range(n):
            rec: dict[str, Any] = {"index": 100 + i, "store_id": KNOWN[i % 5], "status": "ok"}
            if i % 10 == 0:
                rec.update(status="failed", error_code="http_404", image_url=f"http://h/{i}")
            fh.write(json.dumps(rec) + "\n")
    assert os.path.getsize(results) > 5_000_000
    tracemalloc.start()
    try:
        summary = summarize(JobStore(Path(env["RETAILPULSE_JOBS_DIR"])), [job_id])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.totals()["images"] == n + 9
    assert summary.failures().counts["http_404"] == n // 10 + 5
    assert peak < 1_000_000, f"peak {peak:,} bytes"


def test_shell_completion_offers_job_ids_for_report(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job_id = run_mixed_job(cli, server, tmp_path)
    comp = {
        **env,
        "_RETAILPULSE_COMPLETE": "complete_bash",
        "COMP_WORDS": f"retailpulse report {job_id[:8]}",
        "COMP_CWORD": "2",
    }
    exe = Path(sys.executable).parent / "retailpulse"
    r = subprocess.run([str(exe)], env=comp, capture_output=True, text=True)
    assert r.stdout.split() == [job_id]


def test_total_duration_counts_overlapping_jobs_once() -> None:
    def job(job_id: str, start: str, end: str) -> JobSummary:
        return JobSummary(job_id, "completed", start, f"2026-12-0{start}", f"2026-12-0{end}")

    jobs = [
        job("a", "1T03:00:00Z", "1T03:00:10Z"),
        job("b", "1T03:00:05Z", "1T03:00:20Z"),  # ran beside a: 03:00:00-03:00:20 = 20 s
        job("c", "2T03:00:00Z", "2T03:00:30Z"),  # the next night: 30 s more
    ]
    assert Summary(jobs).totals()["duration_s"] == 50
    assert [j.duration_s for j in jobs] == [10, 15, 30]


IMAGES = Path(__file__).resolve().parent.parent / "examples" / "images"


def _status(env: dict[str, str], job_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "status.json").read_text()
    )
    return doc


def test_a_retried_jobs_duration_and_speed_cover_all_its_runs(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 17 #19: a retry of one image made the report show the retry's 0.1 s and an
    image rate ten times the job's."""
    photo = IMAGES / "shelf-640x480.jpg"
    late = tmp_path / "late.jpg"  # not there on the first run
    job = write_job(tmp_path / "j.json", [visit(KNOWN[0], *[str(photo)] * 8, str(late))])
    r = cli("submit", str(job), "--gpu-delay", "0.1", "--workers", "1")
    assert r.exit_code == 1, r.stderr
    job_id = r.stdout.strip()
    first_start = _status(env, job_id)["started_at"]
    late.write_bytes(photo.read_bytes())
    assert cli("retry", job_id).exit_code == 0  # the job's settings: 0.1 s, one GPU slot
    (report,) = json.loads(cli("report", job_id, "--json").stdout)["jobs"]
    # 9 images through one 0.1 s GPU slot, over two runs
    assert report["duration_s"] >= 0.9, report
    assert report["images_per_s"] <= 10.0, report
    assert report["runs"] == 2 and report["started_at"] == first_start
    runs = _status(env, job_id)["runs"]
    assert [run["mode"] for run in runs] == ["submit", "retry"]
    assert runs[0]["started_at"] == first_start
    assert runs[1]["ended_at"] == _status(env, job_id)["finished_at"]
    text = unstamped(cli("report", job_id).stdout)
    assert "runs" in text.split("\n\njobs\n")[1].split("\n")[0]  # the table says so


def test_a_resumed_jobs_duration_counts_the_run_that_was_interrupted(
    env: dict[str, str], tmp_path: Path
) -> None:
    photo = str(IMAGES / "shelf-640x480.jpg")
    job = write_job(tmp_path / "j.json", [visit(KNOWN[0], *[photo] * 20)])
    proc = start_cli("submit", str(job), "--gpu-delay", "0.1", "--workers", "1", env=env)
    deadline = datetime.now() + timedelta(seconds=30)
    while not (ids := jobs_in(env)) or _status(env, ids[0]).get("images_done", 0) < 8:
        assert datetime.now() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    job_id = ids[0]
    assert _status(env, job_id)["status"] == "interrupted"
    r = run_cli("resume", job_id, env=env)
    assert r.returncode == 0, r.stderr
    (report,) = json.loads(run_cli("report", job_id, "--json", env=env).stdout)["jobs"]
    assert report["duration_s"] >= 2.0, report  # 20 images x 0.1 s, in two runs
    assert report["images_per_s"] <= 10.0, report
    assert report["runs"] == 2


@pytest.mark.parametrize("kind", ["symlink", "device"])
def test_report_html_never_replaces_what_is_not_a_regular_file(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path, kind: str
) -> None:
    cli("submit", str(one_image_job(tmp_path, server)), "--gpu-delay", "0")
    if kind == "symlink":
        target = tmp_path / "keep.txt"
        target.write_text("mine")
        path = tmp_path / "link.html"
        path.symlink_to(target)
    else:
        path = Path("/dev/null")
    r = cli("report", "--html", str(path))
    assert r.exit_code == 7
    assert f"--html {path}: exists and is not a regular file; not replaced" in r.stderr
    if kind == "symlink":
        assert path.is_symlink() and target.read_text() == "mine"
    else:
        assert Path("/dev/null").is_char_device()
    page = cli("report", "--html", "-")
    assert page.exit_code == 0 and page.stdout.startswith("<!DOCTYPE html>")


def test_report_of_the_latest_job_skips_a_stray_folder(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job_id = cli("submit", str(one_image_job(tmp_path, server)), "--gpu-delay", "0").stdout.strip()
    (Path(env["RETAILPULSE_JOBS_DIR"]) / "zz-lost+found").mkdir()
    r = cli("report", "--json")
    assert r.exit_code == 0, r.stderr
    assert [j["job_id"] for j in json.loads(r.stdout)["jobs"]] == [job_id]


def test_report_since_on_an_empty_jobs_dir_is_not_found(cli: Cli, env: dict[str, str]) -> None:
    r = cli("report", "--since", "7d")
    assert r.exit_code == 5 and "no jobs in" in r.stderr
