"""--save-images end to end: the real CLI, the test image server, a real folder and a real
S3 API server (moto) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import requests

from .conftest import Cli, jobs_in, one_image_job, results_of, run_cli, start_cli, visit, write_job
from .imageserver import ImageServer
from .s3server import SECRET, S3Server


def stored_files(root: Path) -> list[Path]:
    """The stored images: not a hidden temp file a killed write may leave behind."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def status_of(cli: Cli, job_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cli("status", job_id, "--json").stdout)
    return doc


def test_folder_layout_bytes_and_records(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    urls = [server.url("/img/401x30.jpg"), server.url("/img/402x30.png")]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls), visit("S01408764", urls[0])])
    dest = tmp_path / "photos"
    r = cli("submit", str(job), "--gpu-delay", "0", "--save-images", str(dest))
    assert r.exit_code == 0, r.stderr
    job_id = r.stdout.strip()
    records = results_of(env, job_id)
    assert len(records) == 3 and all(rec["status"] == "ok" for rec in records)
    for rec in records:
        body = requests.get(urls[0] if rec["format"] == "JPEG" else urls[1], timeout=5).content
        digest = hashlib.sha256(body).hexdigest()
        ext = "jpg" if rec["format"] == "JPEG" else "png"
        assert rec["sha256"] == digest and rec["bytes"] == len(body)
        assert rec["stored_as"] == str(dest / digest[:2] / f"{digest}.{ext}")
        assert Path(rec["stored_as"]).read_bytes() == body  # as downloaded, not re-encoded
    # the same photo in two visits is stored once; no temp file is left behind
    assert len(stored_files(dest)) == 2
    assert status_of(cli, job_id)["images_stored"] == 3
    assert "3 (--save-images)" in cli("status", job_id).stdout
    csv_header = cli("results", job_id, "--format", "csv").stdout.splitlines()[0]
    assert "sha256,bytes,stored_as" in csv_header


def test_second_job_and_resume_do_not_write_again(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    dest = tmp_path / "photos"
    urls = [server.url(f"/img/{410 + i}x30.png") for i in range(40)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    args = ["--save-images", str(dest), "--gpu-delay", "0.3", "--workers", "2", "--seed", "1"]
    proc = start_cli("submit", str(job), *args, env=env)
    jobs = Path(env["RETAILPULSE_JOBS_DIR"])
    deadline = time.monotonic() + 30
    while not dest.exists() or len(stored_files(dest)) < 10:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = {p: p.stat().st_mtime_ns for p in stored_files(dest)}
    job_id = jobs_in(env)[0]
    r = run_cli("resume", job_id, "--gpu-delay", "0", env=env)
    assert r.returncode == 0, r.stderr
    records = results_of(env, job_id)
    assert sorted(rec["index"] for rec in records) == list(range(40))
    assert all(Path(rec["stored_as"]).is_file() for rec in records)
    for path, mtime in before.items():  # already there: not written again
        assert path.stat().st_mtime_ns == mtime
    # a write cut by the kill can only leave a hidden temp file, which no record names
    named = {rec["stored_as"] for rec in records}
    assert not [p for p in dest.rglob(".*") if str(p) in named]
    second = cli("submit", str(job), "--gpu-delay", "0", "--save-images", str(dest))
    assert second.exit_code == 0
    assert len(stored_files(dest)) == 40  # the same photos in another job: stored once
    assert jobs.exists()


def test_unwritable_destination_fails_before_any_job_is_made(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/450x30.png"))])
    r = cli("submit", str(job), "--save-images", str(blocker / "photos"))
    assert r.exit_code == 7
    assert f"cannot store image in {blocker / 'photos'}" in r.stderr
    assert jobs_in(env) == []


def test_a_store_failure_fails_that_image_as_store_failed(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    good, bad = server.url("/img/451x30.png"), server.url("/img/452x30.png")
    dest = tmp_path / "photos"
    digest = hashlib.sha256(requests.get(bad, timeout=5).content).hexdigest()
    dest.mkdir()
    (dest / digest[:2]).write_text("a file where the image's folder should be")
    job = write_job(tmp_path / "j.json", [visit("S00339218", good, bad)])
    r = cli("submit", str(job), "--gpu-delay", "0", "--save-images", str(dest), "--retries", "0")
    assert r.exit_code == 1
    by_url = {rec["image_url"]: rec for rec in results_of(env, r.stdout.strip())}
    assert by_url[good]["status"] == "ok"
    assert by_url[bad]["status"] == "failed" and by_url[bad]["error_code"] == "store_failed"
    assert "a part of the path is a file, not a folder" in by_url[bad]["error"]
    assert "stored_as" not in by_url[bad]


def test_s3_objects_match_downloads_and_resume_does_not_upload_again(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path, s3: S3Server
) -> None:
    client = s3.client("s3")
    client.create_bucket(Bucket="shelves")
    urls = [server.url(f"/img/{460 + i}x30.jpg") for i in range(3)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    dest = "s3://shelves/nightly"
    r = cli("submit", str(job), "--gpu-delay", "0", "--save-images", dest)
    assert r.exit_code == 0, r.stderr
    job_id = r.stdout.strip()
    for rec in results_of(env, job_id):
        digest = rec["sha256"]
        key = f"nightly/{digest[:2]}/{digest}.jpg"
        assert rec["stored_as"] == f"s3://shelves/{key}"
        body = client.get_object(Bucket="shelves", Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest
    puts = s3.puts("/shelves/nightly/")
    assert puts == 3
    # the same photos in another job: found by hash, not uploaded again
    again = cli("submit", str(job), "--gpu-delay", "0", "--save-images", dest)
    assert again.exit_code == 0
    assert s3.puts("/shelves/nightly/") == puts


def test_s3_missing_bucket_and_bad_secret_are_clear_and_secret_free(
    cli: Cli,
    server: ImageServer,
    env: dict[str, str],
    tmp_path: Path,
    s3: S3Server,
    monkeypatch: Any,
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/470x30.jpg"))])
    r = cli("submit", str(job), "--save-images", "s3://no-such-bucket/x")
    assert r.exit_code == 7
    assert "no-such-bucket" in r.stderr and "does not exist" in r.stderr
    s3.client("s3").create_bucket(Bucket="locked")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    r = cli("submit", str(job), "--save-images", "s3://locked/x")
    assert r.exit_code == 7
    assert "cannot store image in s3://locked/x" in r.stderr
    assert SECRET not in r.stderr + r.stdout
    assert jobs_in(env) == []


def test_cluster_workers_write_their_own_images(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    urls = [server.url(f"/img/{480 + i}x30.png") for i in range(12)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    dest = tmp_path / "shared"
    r = run_cli(
        "submit", str(job), "--gpu-delay", "0", "--cluster", "local:2", "--shard-size", "4",
        "--save-images", str(dest), env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    records = results_of(env, r.stdout.strip())
    assert sorted(rec["index"] for rec in records) == list(range(12))
    assert {Path(rec["stored_as"]) for rec in records} == set(stored_files(dest))
    for rec in records:
        assert hashlib.sha256(Path(rec["stored_as"]).read_bytes()).hexdigest() == rec["sha256"]


def test_file_url_without_an_absolute_path_is_refused(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    r = cli("submit", str(one_image_job(tmp_path, server)), "--save-images", "file://photos")
    assert r.exit_code == 2
    assert "a file: URL needs an absolute path" in r.stderr
    assert jobs_in(env) == []


def test_credentials_in_save_images_are_not_printed_or_kept(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    dest = f"file://u:PaSsWoRd9@localhost{tmp_path}/photos"
    shown = cli("config", "--save-images", dest, "--json")
    assert "PaSsWoRd9" not in shown.stdout
    r = cli(
        "submit", str(one_image_job(tmp_path, server)), "--gpu-delay", "0", "--save-images", dest
    )
    assert r.exit_code == 0, r.stderr
    job_dir = Path(env["RETAILPULSE_JOBS_DIR"]) / r.stdout.strip()
    for name in os.listdir(job_dir):
        if (job_dir / name).is_file():
            assert "PaSsWoRd9" not in (job_dir / name).read_text(errors="replace"), name
