"""The seed's HTTP API, case by case, against a real `retailpulse serve` subprocess:
existing clients of POST /api/submit/ and GET /api/status must work unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .conftest import KNOWN
from .imageserver import ImageServer
from .serveutil import Served, clean_env, job_doc, visit


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, server: ImageServer) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("seed")
    srv = Served("--allow-private-networks", "--gpu-delay", "0", env=clean_env(tmp, tmp / "jobs"))
    yield srv
    assert srv.stop() == 0


def job_dirs(api: Served) -> set[str]:
    return {p.name for p in api.jobs.iterdir() if not p.name.startswith(".")}


@pytest.mark.parametrize("path", ["/api/submit/", "/api/submit"])
def test_submit_answers_201_with_the_job_id_as_a_string_once_the_job_is_on_disk(
    api: Served, server: ImageServer, path: str
) -> None:
    doc = job_doc(visit(KNOWN[0], server.url("/img/64x48.png"), server.url("/img/80x60.jpg")))
    r = api.post(path, data=json.dumps(doc), allow_redirects=False)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["job_id"] and isinstance(body["job_id"], str)
    assert (api.jobs / body["job_id"] / "job.json").read_bytes() == json.dumps(doc).encode()
    api.wait(body["job_id"])
    status = api.get("/api/status", params={"jobid": body["job_id"]})
    assert status.status_code == 200
    assert status.json() == {"status": "completed", "job_id": body["job_id"]}


def test_an_unknown_store_fails_the_job_for_that_store_and_the_rest_is_processed(
    api: Served, server: ImageServer
) -> None:
    doc = job_doc(
        visit(KNOWN[1], server.url("/img/64x48.png")),
        visit("S99999999", server.url("/img/80x60.jpg")),
        visit(KNOWN[2], server.url("/img/90x60.webp")),
    )
    job_id = api.submit(doc, "/api/submit/")
    api.wait(job_id)
    r = api.get("/api/status", params={"jobid": job_id})
    assert r.status_code == 200
    assert r.json() == {
        "status": "failed",
        "job_id": job_id,
        "error": [
            {"store_id": "S99999999", "error": "store id S99999999 is not in the store master"}
        ],
    }
    records = [json.loads(line) for line in api.get(f"/v1/jobs/{job_id}/results").text.splitlines()]
    by_store = {r["store_id"]: r["status"] for r in records}
    assert by_store == {KNOWN[1]: "ok", "S99999999": "failed", KNOWN[2]: "ok"}


def test_a_job_that_is_still_running_reads_ongoing(api: Served, server: ImageServer) -> None:
    job_id = api.submit(job_doc(visit(KNOWN[0], server.url("/slow/x.png?seconds=2"))))
    assert api.get("/api/status", params={"jobid": job_id}).json() == {
        "status": "ongoing",
        "job_id": job_id,
    }
    api.wait(job_id)


GOOD_VISIT = {"store_id": KNOWN[0], "image_url": ["http://127.0.0.1:9/a.jpg"], "visit_time": "t"}
BAD_BODIES = [
    ({"visits": [GOOD_VISIT]}, "count: required field is missing"),
    ({"count": 1}, "visits: required field is missing"),
    ({"count": 2, "visits": [GOOD_VISIT]}, "count: says 2 but visits holds 1"),
    ({"count": "1", "visits": [GOOD_VISIT]}, "count: expected an integer, got string"),
    ({"count": 0, "visits": []}, "visits: must hold at least one visit"),
    (
        {"count": 1, "visits": [{"image_url": ["x"], "visit_time": "t"}]},
        "visits[0].store_id: required field is missing",
    ),
    (
        {"count": 1, "visits": [{"store_id": KNOWN[0], "visit_time": "t"}]},
        "visits[0].image_url: required field is missing",
    ),
    (
        {"count": 1, "visits": [{"store_id": KNOWN[0], "image_url": [], "visit_time": "t"}]},
        "visits[0].image_url: must hold at least one image URL",
    ),
    (
        {"count": 1, "visits": [{"store_id": KNOWN[0], "image_url": ["x"]}]},
        "visits[0].visit_time: required field is missing",
    ),
    ([], "(top level): expected an object, got array"),
]


@pytest.mark.parametrize(("doc", "message"), BAD_BODIES, ids=[m for _, m in BAD_BODIES])
@pytest.mark.parametrize("path", ["/api/submit/", "/api/submit"])
def test_each_problem_is_400_with_an_error_naming_its_json_path_and_no_job(
    api: Served, path: str, doc: object, message: str
) -> None:
    before = job_dirs(api)
    r = api.post(path, data=json.dumps(doc))
    assert r.status_code == 400
    assert r.json() == {"error": message}
    assert job_dirs(api) == before


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"count": 1,', "not valid JSON at line 1 column 13: Expecting property name"),
        (b"", "empty request body, expected a job file (JSON)"),
        (b'{"count": 1, "count": 1}', "key 'count' appears twice in one object"),
    ],
)
def test_malformed_json_is_400_the_same_way(api: Served, raw: bytes, message: str) -> None:
    before = job_dirs(api)
    r = api.post("/api/submit/", data=raw)
    assert r.status_code == 400
    assert r.json()["error"].startswith(message)
    assert list(r.json()) == ["error"]
    assert job_dirs(api) == before


@pytest.mark.parametrize(
    "params", [{"jobid": "20261130-015222-900-0000"}, {}, {"jobid": ""}, {"jobid": "../jobs"}]
)
def test_an_unknown_or_missing_job_id_is_400_with_an_empty_object(
    api: Served, params: dict[str, str]
) -> None:
    r = api.get("/api/status", params=params)
    assert r.status_code == 400
    assert r.json() == {}


def test_jobs_made_over_http_are_visible_to_the_cli(api: Served, server: ImageServer) -> None:
    from .conftest import run_cli

    job_id = api.submit(job_doc(visit(KNOWN[3], server.url("/img/64x48.png"))), "/api/submit/")
    api.wait(job_id)
    env = clean_env(Path(api.jobs.parent), api.jobs)
    shown = run_cli("status", job_id, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "completed"
    listed = run_cli("list", "--json", env=env)
    assert job_id in [row["job_id"] for row in json.loads(listed.stdout)]


def test_requests_follow_no_redirect_for_either_path(api: Served) -> None:
    for path in ("/api/submit", "/api/submit/"):
        r = requests.post(api(path), data=b"{}", allow_redirects=False, timeout=30)
        assert r.status_code == 400 and not r.is_redirect
