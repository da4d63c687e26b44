"""Authentication, roles and ownership against a real `retailpulse serve` subprocess:
each user sees only its own jobs, another's answers exactly as an unknown id, a weak role
is 403, no credentials 401, a revoked token is refused on the next request, and no token
ever reaches a file or a log line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .authutil import Client, files_holding, make_tokens, small_job
from .conftest import run_cli
from .imageserver import ImageServer
from .serveutil import Served, clean_env

ROLES = {"alice": "submitter", "bob": "submitter", "vic": "viewer", "root": "admin"}


class Site:
    def __init__(self, api: Served, tokens: dict[str, str], env: dict[str, str]) -> None:
        self.api = api
        self.tokens = tokens
        self.env = env
        self.users = {name: Client(api, token) for name, token in tokens.items()}
        self.anonymous = Client(api, None)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("auth")
    env = clean_env(tmp, tmp / "jobs")
    tokens = make_tokens(tmp / "jobs", **ROLES)
    api = Served("--allow-private-networks", "--gpu-delay", "0", "-v", env=env, auth=True)
    yield Site(api, tokens, env)
    assert api.stop() == 0


@pytest.fixture(scope="module")
def jobs(site: Site, server: ImageServer) -> dict[str, str]:
    """alice's job over /v1, bob's over the seed's path; both finished."""
    made = {
        "alice": site.users["alice"].submit(small_job(server, "alice")),
        "bob": site.users["bob"].submit(small_job(server, "bob"), path="/api/submit/"),
    }
    for user, job_id in made.items():
        assert site.users[user].wait(job_id)["status"] == "completed"
    return made


def test_each_user_lists_only_its_own_jobs_and_an_admin_all(
    site: Site, jobs: dict[str, str]
) -> None:
    def listed(user: str, query: str = "") -> list[tuple[str, str]]:
        r = site.users[user].get(f"/v1/jobs{query}")
        assert r.status_code == 200, r.text
        return [(j["job_id"], j["owner"]) for j in r.json()["jobs"]]

    assert listed("alice") == [(jobs["alice"], "alice")]
    assert listed("bob") == [(jobs["bob"], "bob")]
    assert listed("vic") == []
    assert set(listed("root")) == {(jobs["alice"], "alice"), (jobs["bob"], "bob")}
    assert listed("root", "?owner=bob") == [(jobs["bob"], "bob")]
    assert listed("alice", "?owner=bob") == [(jobs["alice"], "alice")]  # not an admin: own
    status = site.users["alice"].get(f"/v1/jobs/{jobs['alice']}").json()
    assert status["owner"] == "alice" and status["status"] == "completed"


def test_another_users_job_answers_exactly_as_an_unknown_id(
    site: Site, jobs: dict[str, str]
) -> None:
    alice = site.users["alice"]
    unknown = "20260101-000000-000-dead"
    for suffix, method in (
        ("", "get"),
        ("/results", "get"),
        ("/retry", "post"),
        ("/cancel", "post"),
    ):
        theirs = getattr(alice, method)(f"/v1/jobs/{jobs['bob']}{suffix}")
        missing = getattr(alice, method)(f"/v1/jobs/{unknown}{suffix}")
        assert theirs.status_code == missing.status_code == 404, (suffix, theirs.text)
        assert theirs.json()["error"]["code"] == missing.json()["error"]["code"]
        assert theirs.text.replace(jobs["bob"], "ID") == missing.text.replace(unknown, "ID")
    seed = alice.get("/api/status", params={"jobid": jobs["bob"]})
    assert seed.status_code == 400 and seed.json() == {}
    assert alice.get("/report", params={"job": jobs["bob"]}).status_code == 404
    mine = alice.get("/api/status", params={"jobid": jobs["alice"]})
    assert mine.json() == {"status": "completed", "job_id": jobs["alice"]}
    assert site.users["root"].get(f"/v1/jobs/{jobs['bob']}/results").status_code == 200


def test_a_role_too_weak_is_403(site: Site, jobs: dict[str, str], server: ImageServer) -> None:
    vic = site.users["vic"]
    body = json.dumps(small_job(server, "vic"))
    for path in ("/v1/jobs", "/api/submit/", "/api/submit"):
        r = vic.post(path, data=body)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"] == {
            "code": "forbidden",
            "message": "role viewer may not submit (user vic)",
            "path": None,
        }
    assert vic.post(f"/v1/jobs/{jobs['alice']}/cancel").status_code == 403
    assert vic.post(f"/v1/jobs/{jobs['alice']}/retry").status_code == 403
    assert vic.get("/v1/jobs").status_code == 200  # reading is a viewer's right


@pytest.mark.parametrize(
    "method_path",
    [
        ("get", "/v1/jobs"),
        ("get", "/v1/jobs/20260101-000000-000-dead"),
        ("post", "/v1/jobs"),
        ("post", "/api/submit/"),
        ("get", "/api/status?jobid=x"),
        ("get", "/report"),
        ("get", "/v1/report"),
        ("get", "/metrics"),
    ],
)
def test_no_credentials_is_401_with_a_bearer_challenge(
    site: Site, method_path: tuple[str, str]
) -> None:
    method, path = method_path
    r = getattr(site.anonymous, method)(path)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthenticated"
    bad = Client(site.api, "rp_not-a-token")
    r = getattr(bad, method)(path)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "rp_not-a-token" not in r.text


def test_probes_and_the_api_document_answer_without_credentials(site: Site) -> None:
    assert site.anonymous.get("/healthz").json() == {"status": "ok"}
    assert site.anonymous.get("/readyz").status_code == 200
    doc = site.anonymous.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    submit = doc["paths"]["/v1/jobs"]["post"]
    assert submit["security"] == [{"bearer": []}]
    assert {"401", "403", "429"} <= set(submit["responses"])
    assert "security" not in doc["paths"]["/healthz"]["get"]


def test_a_revoked_token_is_refused_on_the_very_next_request(site: Site) -> None:
    made = run_cli("token", "create", "carol", "--role", "viewer", env=site.env)
    assert made.returncode == 0, made.stderr
    carol = Client(site.api, made.stdout.strip())
    assert carol.get("/v1/jobs").status_code == 200  # a token made while it runs works
    revoked = run_cli("token", "revoke", "carol", env=site.env)
    assert revoked.returncode == 0, revoked.stderr
    r = carol.get("/v1/jobs")
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid or revoked token"


def test_the_cli_shows_each_jobs_owner(site: Site, jobs: dict[str, str]) -> None:
    status = run_cli("status", jobs["bob"], "--json", env=site.env)
    assert json.loads(status.stdout)["owner"] == "bob"
    text = run_cli("status", jobs["bob"], env=site.env)
    assert re.search(r"^owner\s+bob\s*$", text.stdout, re.M), text.stdout
    table = run_cli("list", env=site.env).stdout.splitlines()
    assert table[0].split() == [
        "job_id",
        "created",
        "status",
        "images",
        "failed",
        "owner",
        "source",
    ]
    owners = {line.split()[0]: line.split()[5] for line in table[1:]}
    assert owners[jobs["alice"]] == "alice" and owners[jobs["bob"]] == "bob"
    listed = run_cli("list", "--owner", "alice", "--json", env=site.env)
    assert [(r["job_id"], r["owner"]) for r in json.loads(listed.stdout)] == [
        (jobs["alice"], "alice")
    ]


def test_access_lines_name_route_status_and_user_never_a_token(
    site: Site, jobs: dict[str, str]
) -> None:
    site.users["alice"].get(f"/v1/jobs/{jobs['alice']}")
    line = re.compile(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ retailpulse: GET /v1/jobs/\{job_id\} 200 "
        r"user=alice \d+\.\dms$"
    )
    assert any(line.match(x) for x in site.api.lines), site.api.stderr[-2000:]
    assert any(" 401 user=- " in x for x in site.api.lines)


def test_no_token_in_any_file_or_log_line(site: Site, jobs: dict[str, str]) -> None:
    secrets = list(site.tokens.values())
    assert files_holding(site.api.jobs, secrets) == []
    assert not [s for s in secrets if s in site.api.stderr]


def test_no_auth_is_refused_off_loopback_and_auth_binds_any_address(tmp_path: Path) -> None:
    env = clean_env(tmp_path, tmp_path / "jobs")
    refused = run_cli("serve", "--no-auth", "--host", "0.0.0.0", "--port", "0", env=env)
    assert refused.returncode == 2
    assert "--no-auth serves anyone who can connect" in refused.stderr
    assert "Traceback" not in refused.stderr
    tokens = make_tokens(tmp_path / "jobs", ops="viewer")
    proc = subprocess.Popen(
        [sys.executable, "-m", "retailpulse_cli", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            m = re.search(r"listening on http://0\.0\.0\.0:(\d+)$", line.strip())
            if m:
                break
        else:
            raise AssertionError("no listening line")
        api = Served.__new__(Served)
        api.url = f"http://127.0.0.1:{m.group(1)}"
        assert Client(api, tokens["ops"]).get("/v1/jobs").status_code == 200
        assert Client(api, None).get("/v1/jobs").status_code == 401
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
