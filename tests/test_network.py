"""Downloads that behave on the real internet (issue 5): retries, timeouts, size limits,
redirects, safety switches, redaction and politeness, all through the real CLI against a
real HTTP server on 127.0.0.1.

The server is shared by the whole session, so every test that counts requests uses paths
with a fresh key (`_key()`): the server counts hits, arrival times and headers per path.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from retailpulse_cli import __version__

from .conftest import KNOWN, Cli, jobs_in, results_of, run_cli, visit, write_job
from .imageserver import ImageServer, image_bytes

STORE = KNOWN[0]


def _key() -> str:
    return uuid.uuid4().hex[:10]


class Run:
    """One `submit` through the in-process CLI, with its records sorted by image index."""

    def __init__(self, res: Any, job_id: str, records: list[dict[str, Any]], wall: float):
        self.res = res
        self.job_id = job_id
        self.records = records
        self.wall = wall

    @property
    def one(self) -> dict[str, Any]:
        assert len(self.records) == 1, self.records
        return self.records[0]


def submit(cli: Cli, env: dict[str, str], tmp_path: Path, urls: list[str], *flags: str) -> Run:
    job = write_job(tmp_path / f"job-{_key()}.json", [visit(STORE, *urls)])
    before = set(jobs_in(env))
    t0 = time.monotonic()
    res = cli("submit", str(job), "--gpu-delay", "0", *flags)
    wall = time.monotonic() - t0
    new = sorted(set(jobs_in(env)) - before)
    assert len(new) == 1, (res.exit_code, res.stdout, res.stderr)
    job_id = new[0]
    assert res.stdout.strip() == job_id
    records = sorted(results_of(env, job_id), key=lambda r: r["index"])
    assert len(records) == len(urls)
    return Run(res, job_id, records, wall)


# -- retries -----------------------------------------------------------------------------


def test_flaky_503_twice_then_ok_takes_three_attempts(cli, env, tmp_path, server: ImageServer):
    path = f"/flaky/{_key()}"
    run = submit(cli, env, tmp_path, [server.url(path + "?fail=2")])
    rec = run.one
    assert run.res.exit_code == 0, run.res.stderr
    assert rec["status"] == "ok"
    assert (rec["width"], rec["height"]) == (120, 80)
    assert rec["attempts"] == 3
    assert server.hits[path] == 3


def test_flaky_with_one_retry_fails_http_5xx_after_two_attempts(
    cli, env, tmp_path, server: ImageServer
):
    path = f"/flaky/{_key()}"
    run = submit(cli, env, tmp_path, [server.url(path + "?fail=2")], "--retries", "1")
    rec = run.one
    assert run.res.exit_code == 1
    assert rec["status"] == "failed"
    assert rec["error_code"] == "http_5xx"
    assert rec["attempts"] == 2
    assert server.hits[path] == 2


def test_429_retry_after_is_honoured(cli, env, tmp_path, server: ImageServer):
    path = f"/ratelimited/{_key()}"
    run = submit(cli, env, tmp_path, [server.url(path + "?after=1")])
    rec = run.one
    assert rec["status"] == "ok", rec
    assert rec["attempts"] == 2
    first, second = server.times[path]
    # Retry-After: 1 -> the second request waits at least a second (small clock slack).
    assert second - first >= 0.95


def test_404_is_not_retried(cli, env, tmp_path, server: ImageServer):
    path = f"/status/404/{_key()}"
    run = submit(cli, env, tmp_path, [server.url(path)], "--retries", "3")
    rec = run.one
    assert rec["error_code"] == "http_404"
    assert rec["attempts"] == 1
    assert server.hits[path] == 1


def test_408_is_retried(cli, env, tmp_path, server: ImageServer):
    path = f"/flaky/{_key()}"
    run = submit(cli, env, tmp_path, [server.url(path + "?fail=1&code=408")], "--retries", "2")
    rec = run.one
    assert rec["status"] == "ok", rec
    assert rec["attempts"] == 2
    assert server.hits[path] == 2


# -- timeouts ----------------------------------------------------------------------------


def test_slow_drip_is_cut_at_the_total_deadline(cli, env, tmp_path, server: ImageServer):
    # A byte every 0.5 s never trips a read timeout; only the per-image deadline stops it.
    run = submit(cli, env, tmp_path, [server.url(f"/drip/{_key()}?every=0.5")], "--timeout", "2")
    rec = run.one
    assert rec["error_code"] == "timeout", rec
    assert run.wall < 5.0


def test_many_hanging_urls_finish_in_bounded_time(cli, env, tmp_path, server: ImageServer):
    urls = [server.url(f"/slow/{_key()}?seconds=10") for _ in range(10)]
    urls += [server.url(f"/drip/{_key()}?every=0.5") for _ in range(10)]
    run = submit(cli, env, tmp_path, urls, "--timeout", "2", "--workers", "8")
    assert [r["error_code"] for r in run.records] == ["timeout"] * 20
    # 20 images, 8 at a time, 2 s each: about 6 s; never the servers' 10 s or more.
    assert run.wall < 15.0
    assert run.res.exit_code == 1


# -- size limits -------------------------------------------------------------------------


def test_endless_body_is_too_large(cli, env, tmp_path, server: ImageServer):
    run = submit(cli, env, tmp_path, [server.url(f"/endless/{_key()}")], "--max-bytes", "1000000")
    rec = run.one
    assert rec["error_code"] == "too_large", rec
    assert run.wall < 10.0


def test_content_length_over_max_bytes_fails_without_reading_body(
    cli, env, tmp_path, server: ImageServer
):
    # The server declares 5 MB and then sends nothing for 5 s: reading the body would wait.
    path = f"/biglength/{_key()}"
    run = submit(
        cli,
        env,
        tmp_path,
        [server.url(path + "?length=5000000&hold=5")],
        "--max-bytes",
        "1000000",
        "--timeout",
        "20",
    )
    rec = run.one
    assert rec["error_code"] == "too_large", rec
    assert "Content-Length" in rec["error"]
    assert run.wall < 3.5
    assert server.hits[path] == 1


def test_lying_content_length_is_truncated_body(cli, env, tmp_path, server: ImageServer):
    run = submit(cli, env, tmp_path, [server.url(f"/lying-length/{_key()}")], "--retries", "0")
    rec = run.one
    assert rec["error_code"] == "truncated_body", rec
    assert rec["attempts"] == 1


# -- redirects ---------------------------------------------------------------------------


def test_redirect_chain_within_limit_is_followed(cli, env, tmp_path, server: ImageServer):
    run = submit(cli, env, tmp_path, [server.url("/chain/3"), server.url("/chain/5")])
    for rec in run.records:
        assert rec["status"] == "ok", rec
        assert (rec["width"], rec["height"]) == (90, 60)


def test_too_many_redirects(cli, env, tmp_path, server: ImageServer):
    run = submit(cli, env, tmp_path, [server.url("/chain/6"), server.url("/chain/8")])
    assert [r["error_code"] for r in run.records] == ["too_many_redirects"] * 2


def test_redirect_loop(cli, env, tmp_path, server: ImageServer):
    rec = submit(cli, env, tmp_path, [server.url("/loop")]).one
    assert rec["error_code"] == "redirect_loop", rec


def test_redirect_to_local_file_is_refused(cli, env, tmp_path, server: ImageServer):
    secret_file = tmp_path / "secret.png"
    secret_file.write_bytes(image_bytes(33, 22, "png"))  # a readable image: must not be read
    url = server.url(f"/redirect?to={secret_file.as_uri()}")
    run = submit(cli, env, tmp_path, [url, server.url("/redirect?to=file:///etc/passwd")])
    for rec in run.records:
        assert rec["status"] == "failed"
        assert rec["error_code"] == "redirect_refused", rec
        assert "width" not in rec
        assert "root:" not in rec["error"]


# -- images ------------------------------------------------------------------------------


def test_decompression_bomb_png(cli, env, tmp_path, server: ImageServer):
    rec = submit(cli, env, tmp_path, [server.url("/bomb/30000x30000.png")]).one
    assert rec["error_code"] == "decompression_bomb", rec


def test_max_pixels_can_be_tightened(cli, env, tmp_path, server: ImageServer):
    url = server.url("/img/200x200.png")
    rec = submit(cli, env, tmp_path, [url], "--max-pixels", "1000").one
    assert rec["error_code"] == "decompression_bomb", rec
    rec = submit(cli, env, tmp_path, [url], "--max-pixels", "40000").one
    assert rec["status"] == "ok", rec


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "gif", "bmp", "tiff", "avif"])
def test_each_format_is_measured(cli, env, tmp_path, server: ImageServer, ext):
    rec = submit(cli, env, tmp_path, [server.url(f"/img/123x45.{ext}")]).one
    assert rec["status"] == "ok", rec
    assert (rec["width"], rec["height"], rec["perimeter"]) == (123, 45, 336)


def test_exif_rotated_jpeg_reports_stored_size_orientation_not_applied(
    cli, env, tmp_path, server: ImageServer
):
    # Stored 200x100 with EXIF orientation 6 (displayed 100x200): the stored size is kept.
    rec = submit(cli, env, tmp_path, [server.url("/rotated.jpg")]).one
    assert rec["status"] == "ok", rec
    assert (rec["width"], rec["height"]) == (200, 100)
    assert rec["perimeter"] == 600


# -- safety ------------------------------------------------------------------------------

SECRETS = ("s3cret", "abc123")


def _assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {where}: {text!r}"


def _cred_url(server: ImageServer, path: str) -> str:
    return f"http://user:s3cret@127.0.0.1:{server.port}{path}?token=abc123"


def test_credentials_are_used_but_never_shown(cli, env, tmp_path, server: ImageServer):
    path = f"/status/404/{_key()}"
    run = submit(cli, env, tmp_path, [_cred_url(server, path)], "--verbose", "--retries", "0")
    rec = run.one
    assert rec["error_code"] == "http_404"
    # The credentials reached the server...
    expected = "Basic " + base64.b64encode(b"user:s3cret").decode()
    assert [hdr.get("Authorization") for hdr in server.headers[path]] == [expected]
    # ...and appear nowhere the tool writes or prints.
    assert str(server.port) in rec["image_url"]  # redacted, not dropped
    _assert_no_secret("results.jsonl", json.dumps(run.records))
    _assert_no_secret("submit stderr (--verbose)", run.res.stderr)
    _assert_no_secret("submit stdout", run.res.stdout)
    assert "404" in run.res.stderr  # the verbose line was printed
    for fmt in ("jsonl", "csv"):
        out = cli("results", run.job_id, "--format", fmt)
        assert out.exit_code == 0 and "127.0.0.1" in out.stdout
        _assert_no_secret(f"results --format {fmt}", out.stdout + out.stderr)
    status = cli("status", run.job_id, "--json")
    _assert_no_secret("status --json", status.stdout + status.stderr)
    plain = cli("status", run.job_id)
    _assert_no_secret("status", plain.stdout + plain.stderr)
    job_dir = Path(env["RETAILPULSE_JOBS_DIR"]) / run.job_id
    for name in ("errors.json", "status.json", "results.jsonl"):
        _assert_no_secret(name, (job_dir / name).read_text())


def test_credentials_not_in_detached_worker_log(env, tmp_path, server: ImageServer):
    paths = [f"/status/404/{_key()}", f"/img/64x48.png/{_key()}", f"/status/503/{_key()}"]
    job = write_job(tmp_path / "job.json", [visit(STORE, *(_cred_url(server, p) for p in paths))])
    common = ("--gpu-delay", "0", "--retries", "0")
    sub = run_cli("submit", str(job), "--detach", "--verbose", *common, env=env, timeout=60)
    assert sub.returncode == 0, sub.stderr
    job_id = sub.stdout.strip()
    wait = run_cli("status", job_id, "--wait", "--timeout", "30", "--json", env=env, timeout=60)
    assert json.loads(wait.stdout)["status"] == "failed", wait.stdout
    _assert_no_secret("status --wait --json", wait.stdout + wait.stderr)
    _assert_no_secret("submit --detach output", sub.stdout + sub.stderr)
    log = (Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "worker.log").read_text()
    assert job_id in log
    _assert_no_secret("worker.log", log)
    _assert_no_secret("results", json.dumps(results_of(env, job_id)))
    assert all(len(server.headers[p]) == 1 for p in paths)


def test_no_local_files_refuses_a_local_image(cli, env, tmp_path):
    (tmp_path / "shelf.png").write_bytes(image_bytes(64, 48, "png"))
    rec = submit(cli, env, tmp_path, ["shelf.png"], "--no-local-files").one
    assert rec["status"] == "failed"
    assert rec["error_code"] == "local_files_disabled", rec


def test_local_image_is_read_without_no_local_files(cli, env, tmp_path):
    (tmp_path / "shelf.png").write_bytes(image_bytes(64, 48, "png"))
    rec = submit(cli, env, tmp_path, ["shelf.png"]).one
    assert rec["status"] == "ok", rec
    assert (rec["width"], rec["height"]) == (64, 48)


def test_block_private_networks_refuses_loopback_before_connecting(
    cli, env, tmp_path, server: ImageServer
):
    path = f"/img/64x48.png/{_key()}"
    rec = submit(cli, env, tmp_path, [server.url(path)], "--block-private-networks").one
    assert rec["error_code"] == "blocked_address", rec
    assert server.hits[path] == 0
    # Without the flag the same URL is fetched.
    rec = submit(cli, env, tmp_path, [server.url(path)]).one
    assert rec["status"] == "ok", rec
    assert server.hits[path] == 1


# -- politeness --------------------------------------------------------------------------


def test_per_host_caps_concurrent_connections(cli, env, tmp_path, server: ImageServer):
    group = _key()
    urls = [server.url(f"/nap/{group}/{i}?seconds=0.3") for i in range(16)]
    run = submit(cli, env, tmp_path, urls, "--per-host", "2", "--workers", "8")
    assert all(r["status"] == "ok" for r in run.records)
    assert server.group_max[group] <= 2
    assert server.group_max[group] == 2  # the cap is reached, not serialised to 1


def test_without_per_host_workers_run_in_parallel(cli, env, tmp_path, server: ImageServer):
    # Control for the test above: the same load does overlap more than 2 when allowed.
    group = _key()
    urls = [server.url(f"/nap/{group}/{i}?seconds=0.3") for i in range(16)]
    run = submit(cli, env, tmp_path, urls, "--workers", "8")
    assert all(r["status"] == "ok" for r in run.records)
    assert server.group_max[group] > 2


def test_rate_limits_requests_per_second(cli, env, tmp_path, server: ImageServer):
    group = _key()
    urls = [server.url(f"/nap/{group}/{i}?seconds=0") for i in range(10)]
    run = submit(cli, env, tmp_path, urls, "--rate", "5", "--workers", "8")
    assert all(r["status"] == "ok" for r in run.records)
    times = sorted(server.group_times[group])
    assert len(times) == 10
    # 5/s: 10 requests span at least 9 intervals of 0.2 s.
    assert times[-1] - times[0] >= 1.7
    assert run.wall >= 1.7


def test_user_agent_names_tool_and_version(cli, env, tmp_path, server: ImageServer):
    path = f"/img/64x48.png/{_key()}"
    rec = submit(cli, env, tmp_path, [server.url(path)]).one
    assert rec["status"] == "ok"
    (headers,) = server.headers[path]
    ua = headers.get("User-Agent", "")
    assert "retailpulse" in ua.lower()
    assert __version__ in ua


# -- reporting ---------------------------------------------------------------------------


def test_status_groups_failures_by_code(cli, env, tmp_path, server: ImageServer):
    k = _key()
    urls = [
        server.url(f"/status/404/{k}a"),
        server.url(f"/status/404/{k}b"),
        server.url(f"/status/503/{k}"),
        server.url(f"/notimage/{k}"),
        server.url(f"/img/64x48.png/{k}"),
    ]
    run = submit(cli, env, tmp_path, urls, "--retries", "0")
    assert run.res.exit_code == 1
    out = cli("status", run.job_id, "--json")
    assert out.exit_code == 0
    doc = json.loads(out.stdout)
    assert doc["status"] == "failed"
    assert doc["failures_by_code"] == {"http_404": 2, "http_5xx": 1, "not_an_image": 1}
    assert (doc["images_ok"], doc["images_failed"]) == (1, 4)
    (err,) = doc["error"]
    assert err["store_id"] == STORE
    assert err["codes"] == {"http_404": 2, "http_5xx": 1, "not_an_image": 1}


def test_connections_are_kept_alive_for_images_and_errors(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """One keep-alive connection serves a whole sequential job, error answers included."""
    urls = [server.url(f"/img/{700 + i}x12.png") for i in range(10)]
    urls += [server.url("/status/404")] * 5 + [server.url("/chain/2")]
    job = write_job(tmp_path / "ka.json", [visit("S00339218", *urls)])
    before = server.connections
    r = cli(
        "submit", str(job), "--workers", "1", "--downloads", "1", "--gpu-delay", "0",
        "--retries", "0",
    )  # fmt: skip
    assert r.exit_code == 1, r.stderr  # the 404s fail the job
    assert server.connections - before == 1


def test_a_back_off_does_not_hold_a_worker(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """With one worker, an image told to come back in 2 s (429 Retry-After) waits in the
    queue while the worker goes on with images of another host (the 429 holds back its
    own host); then it is tried again and succeeds."""
    key = uuid.uuid4().hex
    slow = server.url(f"/ratelimited/{key}?after=2")
    other_host = f"http://localhost:{server.port}"  # same server, another host to the client
    others = [f"{other_host}/img/{900 + i}x10.png" for i in range(5)]
    job = write_job(tmp_path / "j.json", [visit(KNOWN[0], slow, *others)])
    r = cli("submit", str(job), "--workers", "1", "--gpu-delay", "0", "--per-host", "1")
    assert r.exit_code == 0, r.stderr
    records = results_of(env, r.stdout.strip())
    assert [rec["index"] for rec in records][-1] == 0  # recorded last: it did not block
    first = next(rec for rec in records if rec["index"] == 0)
    assert first["status"] == "ok" and first["attempts"] == 2
    assert first["elapsed_ms"] >= 1900  # elapsed counts from its first attempt
