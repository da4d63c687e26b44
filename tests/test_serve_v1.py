"""/v1 against a real `retailpulse serve`: submit (idempotent), list (paginated), read,
results (streamed, CSV), retry, cancel, report, probes, the one error shape, 413."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import KNOWN, run_cli
from .imageserver import ImageServer
from .serveutil import Served, clean_env, job_doc, visit

MAX_BODY = 200_000


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, server: ImageServer) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("v1")
    env = clean_env(tmp, tmp / "jobs")
    args = ["--allow-private-networks", "--gpu-delay", "0", "--retries", "0"]
    srv = Served(*args, "--concurrent-jobs", "1", "--max-request-bytes", str(MAX_BODY), env=env)
    srv.env = env  # type: ignore[attr-defined]
    yield srv
    assert srv.stop() == 0


def cli_json(api: Served, *args: str) -> Any:
    r = run_cli(*args, env=api.env)  # type: ignore[attr-defined]
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout) if "--json" in args else r.stdout


def small_job(server: ImageServer, store: str = KNOWN[0], n: int = 2) -> dict[str, Any]:
    return job_doc(visit(store, *(server.url(f"/img/{60 + i}x40.png") for i in range(n))))


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "path"}
    assert body["error"]["code"] == code
    return dict(body["error"])


def test_submit_is_202_with_the_status_object_and_its_location(
    api: Served, server: ImageServer
) -> None:
    r = api.post("/v1/jobs", data=json.dumps(small_job(server)))
    assert r.status_code == 202
    doc = r.json()
    assert doc["status"] in ("queued", "ongoing") and doc["images_total"] == 2
    assert r.headers["Location"] == f"/v1/jobs/{doc['job_id']}"
    final = api.wait(doc["job_id"])
    assert final["status"] == "completed" and final["images_ok"] == 2
    assert final == cli_json(api, "status", doc["job_id"], "--json")


def test_an_invalid_job_file_is_400_naming_the_path(api: Served) -> None:
    bad = {"count": 1, "visits": [{"store_id": KNOWN[0], "image_url": [], "visit_time": "t"}]}
    error = assert_error(api.post("/v1/jobs", data=json.dumps(bad)), 400, "invalid_job_file")
    assert error["path"] == "$.visits[0].image_url"
    assert error["message"] == "visits[0].image_url: must hold at least one image URL"


def test_the_same_idempotency_key_and_body_return_the_first_job(
    api: Served, server: ImageServer
) -> None:
    body = json.dumps(small_job(server, KNOWN[1]))
    first = api.post("/v1/jobs", data=body, headers={"Idempotency-Key": "visit-42"})
    assert first.status_code == 202
    jobs_before = sorted(p.name for p in api.jobs.iterdir())
    again = api.post("/v1/jobs", data=body, headers={"Idempotency-Key": "visit-42"})
    assert again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert sorted(p.name for p in api.jobs.iterdir()) == jobs_before
    other = api.post("/v1/jobs", data=body + " ", headers={"Idempotency-Key": "visit-42"})
    error = assert_error(other, 409, "idempotency_key_reused")
    assert first.json()["job_id"] in error["message"]
    fresh = api.post("/v1/jobs", data=body, headers={"Idempotency-Key": "visit-43"})
    assert fresh.status_code == 202 and fresh.json()["job_id"] != first.json()["job_id"]
    api.wait(fresh.json()["job_id"])


def test_listing_pages_newest_first_with_a_cursor_until_the_end(
    api: Served, server: ImageServer
) -> None:
    for _ in range(5):
        api.wait(api.submit(small_job(server, n=1)))
    on_disk = sorted(
        (p.name for p in api.jobs.iterdir() if not p.name.startswith(".")), reverse=True
    )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/jobs", params=params).json()
        assert len(page["jobs"]) <= 3
        seen += [row["job_id"] for row in page["jobs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == on_disk and pages == -(-len(on_disk) // 3)
    all_rows = api.get("/v1/jobs", params={"limit": 1000}).json()
    assert all_rows["jobs"] == cli_json(api, "list", "--json")


def test_listing_filters_by_status_and_since(api: Served, server: ImageServer) -> None:
    failed = api.submit(job_doc(visit("S99999999", server.url("/img/64x48.png"))))
    api.wait(failed)
    rows = api.get("/v1/jobs", params={"status": "failed"}).json()["jobs"]
    assert failed in [r["job_id"] for r in rows] and {r["status"] for r in rows} == {"failed"}
    assert api.get("/v1/jobs", params={"since": "2999-01-01"}).json() == {
        "jobs": [],
        "next_cursor": None,
    }
    assert len(api.get("/v1/jobs", params={"since": "1h"}).json()["jobs"]) >= 1


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"since": "last tuesday"}, "since"),
        ({"status": "sleeping"}, "status"),
    ],
)
def test_bad_list_parameters_are_400_naming_them(
    api: Served, params: dict[str, Any], word: str
) -> None:
    error = assert_error(api.get("/v1/jobs", params=params), 400, "invalid_parameter")
    assert error["message"].startswith(word)


def test_an_unknown_job_is_404_in_the_error_shape(api: Served) -> None:
    for path in ("/v1/jobs/{}", "/v1/jobs/{}/results", "/v1/jobs/{}/cancel", "/v1/jobs/{}/retry"):
        url = path.format("20261130-015222-900-0000")
        r = api.get(url) if "cancel" not in url and "retry" not in url else api.post(url)
        error = assert_error(r, 404, "job_not_found")
        assert error["message"] == "no job '20261130-015222-900-0000'"  # no server path


def test_results_stream_as_json_lines_and_csv_as_the_cli_prints_them(
    api: Served, server: ImageServer
) -> None:
    job_id = api.submit(
        job_doc(
            visit(KNOWN[0], *(server.url(f"/img/{50 + i}x30.jpg") for i in range(40))),
            visit("S99999999", server.url("/img/64x48.png")),
        )
    )
    api.wait(job_id)
    r = api.get(f"/v1/jobs/{job_id}/results", stream=True)
    assert r.headers["content-type"] == "application/x-ndjson"
    assert "content-length" not in r.headers  # streamed, not built whole first
    assert r.text == cli_json(api, "results", job_id)
    assert len(r.text.splitlines()) == 41
    csv = api.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text == cli_json(api, "results", job_id, "--format", "csv")
    failed = api.get(f"/v1/jobs/{job_id}/results", params={"failed": "true"}).text.splitlines()
    assert [json.loads(line)["store_id"] for line in failed] == ["S99999999"]


def test_retry_runs_the_failed_images_again(api: Served, server: ImageServer) -> None:
    flaky = server.url("/flaky/v1-retry.png?fail=1")
    job_id = api.submit(job_doc(visit(KNOWN[2], flaky, server.url("/img/64x48.png"))))
    assert api.wait(job_id)["images_failed"] == 1  # --retries 0: the 503 stays a failure
    r = api.post(f"/v1/jobs/{job_id}/retry")
    assert r.status_code == 202 and r.headers["Location"] == f"/v1/jobs/{job_id}"
    final = api.wait(job_id)
    assert final["status"] == "completed" and final["images_ok"] == 2
    assert final["run"]["mode"] == "retry"
    records = cli_json(api, "results", job_id).splitlines()
    assert sorted(json.loads(line)["index"] for line in records) == [0, 1]


def test_a_queued_job_that_is_cancelled_never_starts(api: Served, server: ImageServer) -> None:
    blocker = api.submit(job_doc(visit(KNOWN[0], server.url("/slow/block.png?seconds=2"))))
    api.wait(blocker, until=("ongoing",))
    hits_before = server.hits["/img/33x33.png"]  # the image server is shared by every test
    waiting = api.submit(job_doc(visit(KNOWN[1], server.url("/img/33x33.png"))))
    r = api.post(f"/v1/jobs/{waiting}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    api.wait(blocker)
    time.sleep(0.5)  # the runner is free now: it must not take the cancelled job
    assert api.get(f"/v1/jobs/{waiting}").json()["status"] == "cancelled"
    assert server.hits["/img/33x33.png"] == hits_before
    assert cli_json(api, "status", waiting, "--json")["status"] == "cancelled"
    listed = cli_json(api, "list", "--status", "cancelled", "--json")
    assert waiting in [row["job_id"] for row in listed]
    waited = run_cli("status", "--wait", waiting, env=api.env)  # type: ignore[attr-defined]
    assert waited.returncode == 130  # not completed: `resume` can finish it
    assert api.get("/api/status", params={"jobid": waiting}).json()["status"] == "failed"
    assert_error(api.post(f"/v1/jobs/{blocker}/cancel"), 409, "job_finished")


def test_a_running_job_stops_at_a_safe_point_and_resume_finishes_it(
    api: Served, server: ImageServer
) -> None:
    # 3 s per image, all downloading at once: the job is running, with nothing recorded,
    # when the cancel comes, however fast or busy the machine
    urls = [server.url(f"/slow/v1-cancel-{i}.png?seconds=3") for i in range(60)]
    job_id = api.submit(job_doc(visit(KNOWN[3], *urls)))
    api.wait(job_id, until=("ongoing",))
    r = api.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "cancelled" and doc["images_done"] < 60
    listed = {row["job_id"]: row["status"] for row in cli_json(api, "list", "--json")}
    assert listed[job_id] == "cancelled"
    assert api.get("/api/status", params={"jobid": job_id}).json()["status"] == "failed"
    resumed = run_cli("resume", job_id, "--json", env=api.env)  # type: ignore[attr-defined]
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "completed"
    indices = [json.loads(line)["index"] for line in cli_json(api, "results", job_id).splitlines()]
    assert sorted(indices) == list(range(60))


def test_the_report_as_json_and_as_a_page(api: Served) -> None:
    report = api.get("/v1/report", params={"since": "24h"}).json()
    assert report == cli_json(api, "report", "--since", "24h", "--json")
    page = api.get("/report", params={"since": "24h"})
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>retailpulse report</h1>" in page.text and "<script" not in page.text
    assert_error(api.get("/v1/report", params={"since": "soon"}), 400, "invalid_parameter")


def test_probes_and_unknown_routes(api: Served) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["status"] == "ready" and set(ready) == {"status", "queued", "running"}
    assert_error(api.get("/v2/nothing"), 404, "not_found")
    assert_error(api.get("/v1/jobs/x/cancel"), 405, "method_not_allowed")


def test_a_body_over_the_cap_is_413_at_once(api: Served) -> None:
    big = b'{"count": 1, "pad": "' + b"x" * MAX_BODY + b'"}'
    assert_error(api.post("/v1/jobs", data=big), 413, "request_too_large")
    assert_error(api.post("/api/submit/", data=big), 413, "request_too_large")


def raw_request(api: Served, head: bytes, body_chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send a request by hand, and its body piece by piece until the server answers (or
    stops reading): (the answer's head, body bytes sent)."""
    host, port = api.url.removeprefix("http://").split(":")
    sent = 0
    answer = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable or not writable:
                break
            try:
                sent += sock.send(chunk)  # a partial send only spoils what is refused anyway
            except OSError:
                break
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer, sent


def test_a_chunked_body_is_cut_off_once_it_passes_the_cap(api: Served) -> None:
    total = 50 * 1024 * 1024
    head = b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer, sent = raw_request(api, head, iter([chunk] * (total // len(piece))))
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert sent < total // 4


def test_a_declared_length_over_the_cap_is_refused_before_the_body(api: Served) -> None:
    head = b"POST /api/submit/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n"
    answer, sent = raw_request(api, head, iter([b""]))
    assert answer.startswith(b"HTTP/1.1 413 ") and sent == 0


def test_jobs_from_submit_detach_are_listed_and_read_over_http(
    api: Served, server: ImageServer, tmp_path: Path
) -> None:
    job_file = tmp_path / "detached.json"
    job_file.write_text(json.dumps(small_job(server, KNOWN[4])))
    made = run_cli("submit", "--detach", str(job_file), env=api.env)  # type: ignore[attr-defined]
    assert made.returncode == 0, made.stderr
    job_id = made.stdout.strip()
    assert job_id in [row["job_id"] for row in api.get("/v1/jobs").json()["jobs"]]
    final = api.wait(job_id)
    assert final["status"] == "completed" and final["source"] == str(job_file)
    assert "by" not in final["run"]  # the CLI's job: a restarted service leaves it alone
