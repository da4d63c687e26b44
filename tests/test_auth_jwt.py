"""JWTs signed in the test, checked by a real `retailpulse serve`: HS256 with a shared
secret, RS256 with a public key; expired, not yet valid, `alg: none`, algorithm
confusion, a bad signature and a wrong audience or issuer are all 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .authutil import Client, small_job
from .conftest import run_cli
from .imageserver import ImageServer
from .serveutil import Served, clean_env

SECRET = b"0123456789abcdef0123456789abcdef-hs256"
AUDIENCE = "retailpulse-api"
ISSUER = "https://idp.example.test"


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "dana@example.test", "role": "submitter", "aud": AUDIENCE, "iss": ISSUER}
    body = {**base, "iat": now, "exp": now + 600, **changes}
    return {k: v for k, v in body.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_hs256(body: dict[str, Any], key: bytes) -> str:
    """An HS256 token MACed with `key` by hand (PyJWT refuses a PEM key as a secret)."""
    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(body).encode())
    return signing + "." + b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def unsigned(body: dict[str, Any]) -> str:
    return b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(json.dumps(body).encode()) + "."


@pytest.fixture(scope="module")
def hs_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("jwt-hs")
    secret = tmp / "jwt.secret"
    secret.write_bytes(SECRET + b"\n")
    args = ["--jwt-secret-file", str(secret), "--jwt-audience", AUDIENCE, "--jwt-issuer", ISSUER]
    api = Served(
        "--allow-private-networks", "--gpu-delay", "0", *args,
        env=clean_env(tmp, tmp / "jobs"), auth=True,
    )  # fmt: skip
    yield api
    assert api.stop() == 0


@pytest.fixture(scope="module")
def rsa_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Any, bytes]]:
    tmp = tmp_path_factory.mktemp("jwt-rs")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp / "idp.pem").write_bytes(pem)
    api = Served(
        "--jwt-public-key", str(tmp / "idp.pem"), env=clean_env(tmp, tmp / "jobs"), auth=True
    )
    yield api, key, pem
    assert api.stop() == 0


def test_hs256_subject_owns_the_jobs_it_submits(hs_api: Served, server: ImageServer) -> None:
    dana = Client(hs_api, jwt.encode(claims(), SECRET, algorithm="HS256"))
    job_id = dana.submit(small_job(server, "dana"))
    assert dana.wait(job_id)["owner"] == "dana@example.test"
    listed = dana.get("/v1/jobs").json()["jobs"]
    assert [(j["job_id"], j["owner"]) for j in listed] == [(job_id, "dana@example.test")]
    # another subject with the same secret is another user
    eve = Client(hs_api, jwt.encode(claims(sub="eve"), SECRET, algorithm="HS256"))
    assert eve.get(f"/v1/jobs/{job_id}").status_code == 404
    assert eve.get("/v1/jobs").json()["jobs"] == []


def test_role_comes_from_role_or_the_first_known_of_roles(hs_api: Served) -> None:
    viewer = jwt.encode(
        claims(role=None, roles=["auditor", "viewer", "admin"]), SECRET, algorithm="HS256"
    )
    r = Client(hs_api, viewer).post("/v1/jobs", data="{}")
    assert r.status_code == 403 and "role viewer may not submit" in r.text
    no_role = jwt.encode(claims(role="auditor"), SECRET, algorithm="HS256")
    r = Client(hs_api, no_role).get("/v1/jobs")
    assert r.status_code == 403 and "names no role" in r.text


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("expired", lambda: jwt.encode(claims(exp=int(time.time()) - 120), SECRET), "expired"),
        ("not yet valid", lambda: jwt.encode(claims(nbf=int(time.time()) + 120), SECRET), "yet"),
        ("alg none", lambda: unsigned(claims()), "alg"),
        ("bad signature", lambda: jwt.encode(claims(), b"x" * 40), "Signature"),
        ("wrong audience", lambda: jwt.encode(claims(aud="other"), SECRET), "Audience"),
        ("wrong issuer", lambda: jwt.encode(claims(iss="https://evil.test"), SECRET), "Issuer"),
        ("no expiry", lambda: jwt.encode(claims(exp=None), SECRET), "exp"),
    ],
)
def test_bad_tokens_are_401(hs_api: Served, name: str, make: Any, reason: str) -> None:
    token = make()
    r = Client(hs_api, token).get("/v1/jobs")
    assert r.status_code == 401, (name, r.text)
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert reason.lower() in r.json()["error"]["message"].lower(), (name, r.text)
    assert token not in r.text and token not in hs_api.stderr


def test_rs256_and_the_algorithm_confusion_attack(
    rsa_api: tuple[Served, Any, bytes],
) -> None:
    api, key, pem = rsa_api
    good = jwt.encode(claims(role="viewer", aud=None, iss=None), key, algorithm="RS256")
    assert Client(api, good).get("/v1/jobs").status_code == 200
    forged = forged_hs256(claims(role="admin", aud=None, iss=None), pem)
    r = Client(api, forged).get("/v1/jobs")
    assert r.status_code == 401 and "not allowed" in r.json()["error"]["message"]
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = jwt.encode(claims(aud=None, iss=None), other_key, algorithm="RS256")
    assert Client(api, stranger).get("/v1/jobs").status_code == 401


def test_a_bad_key_file_stops_serve_with_one_line(tmp_path: Path) -> None:
    short = tmp_path / "short.secret"
    short.write_text("too short\n")
    env = clean_env(tmp_path, tmp_path / "jobs")
    r = run_cli("serve", "--port", "0", "--jwt-secret-file", str(short), env=env)
    assert r.returncode == 2
    assert "--jwt-secret-file" in r.stderr and "at least 32" in r.stderr
    assert "Traceback" not in r.stderr and "listening" not in r.stderr
