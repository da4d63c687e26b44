"""The security pieces on their own: token file, JWT verifier, roles, the authenticator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from retailpulse_cli.errors import ConfigError
from retailpulse_cli.server.security import jwt_auth, tokens
from retailpulse_cli.server.security.authenticate import Authenticator, AuthFailure
from retailpulse_cli.server.security.roles import Action, Principal, Role

SECRET = b"s" * 40


def make_verifier(tmp_path: Path) -> tuple[tokens.TokenVerifier, Path]:
    path = tmp_path / "jobs" / tokens.TOKENS_FILE
    return tokens.TokenVerifier(path, flush_seconds=3600), path


# -- token file ---------------------------------------------------------------------------


def test_created_token_is_kept_only_as_a_hash_in_a_private_file(tmp_path: Path) -> None:
    verifier, path = make_verifier(tmp_path)
    token = tokens.create(path, "alice", Role.SUBMITTER)
    assert token.startswith("rp_") and len(token) > 40
    text = path.read_text()
    assert token not in text and token[3:] not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    row = json.loads(text)["tokens"][0]
    assert row["name"] == "alice" and row["role"] == "submitter" and row["last_used_at"] is None
    entry = verifier.verify(token)
    assert entry is not None and entry.name == "alice" and entry.role is Role.SUBMITTER
    assert verifier.verify(token + "x") is None
    assert verifier.verify("") is None
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_two_tokens_each_name_their_own_user(tmp_path: Path) -> None:
    verifier, path = make_verifier(tmp_path)
    a = tokens.create(path, "alice", Role.VIEWER)
    b = tokens.create(path, "bob", Role.ADMIN)
    assert a != b
    assert verifier.verify(a).name == "alice"  # type: ignore[union-attr]
    assert verifier.verify(b).name == "bob"  # type: ignore[union-attr]


def test_a_taken_or_malformed_name_is_refused(tmp_path: Path) -> None:
    _, path = make_verifier(tmp_path)
    tokens.create(path, "alice", Role.VIEWER)
    with pytest.raises(tokens.TokenNameError, match="exists already"):
        tokens.create(path, "alice", Role.ADMIN)
    for bad in ("", "-x", "a b", "a/b", "x" * 65, "é"):
        with pytest.raises(tokens.TokenNameError, match="not allowed"):
            tokens.create(path, bad, Role.VIEWER)
    with pytest.raises(tokens.TokenNotFound, match="no token named 'carol'"):
        tokens.revoke(path, "carol")


def test_revoked_token_is_refused_by_a_verifier_that_already_loaded_it(tmp_path: Path) -> None:
    verifier, path = make_verifier(tmp_path)
    token = tokens.create(path, "alice", Role.ADMIN)
    assert verifier.verify(token) is not None
    tokens.revoke(path, "alice")  # as the CLI does: another process, no signal to the server
    assert verifier.verify(token) is None


def test_a_token_made_after_the_server_started_works_at_once(tmp_path: Path) -> None:
    verifier, path = make_verifier(tmp_path)
    assert verifier.verify("rp_nothing") is None  # no file yet
    token = tokens.create(path, "late", Role.VIEWER)
    assert verifier.verify(token) is not None


def test_last_used_is_batched_not_written_per_request(tmp_path: Path) -> None:
    verifier, path = make_verifier(tmp_path)
    token = tokens.create(path, "alice", Role.VIEWER)
    inode = path.stat().st_ino
    for _ in range(50):
        verifier.verify(token)
    assert path.stat().st_ino == inode  # not rewritten yet
    assert tokens.read_entries(path)[0].last_used_at is None
    verifier.flush()
    used = tokens.read_entries(path)[0].last_used_at
    assert used is not None and used.endswith("Z")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_flush_is_due_after_the_interval(tmp_path: Path) -> None:
    path = tmp_path / tokens.TOKENS_FILE
    verifier = tokens.TokenVerifier(path, flush_seconds=0.0)
    token = tokens.create(path, "alice", Role.VIEWER)
    verifier.verify(token)
    deadline = time.monotonic() + 5  # written by a background thread
    while tokens.read_entries(path)[0].last_used_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tokens.read_entries(path)[0].last_used_at is not None


def test_flush_does_not_bring_back_a_revoked_token(tmp_path: Path) -> None:
    verifier, path = make_verifier(tmp_path)
    token = tokens.create(path, "alice", Role.VIEWER)
    tokens.create(path, "bob", Role.VIEWER)
    verifier.verify(token)
    tokens.revoke(path, "alice")
    verifier.flush()
    assert [e.name for e in tokens.read_entries(path)] == ["bob"]


def test_damaged_file_refuses_everyone_until_fixed(tmp_path: Path) -> None:
    verifier, path = make_verifier(tmp_path)
    token = tokens.create(path, "alice", Role.VIEWER)
    good = path.read_bytes()
    path.write_text("{not json")
    with pytest.raises(tokens.TokenFileError, match="damaged"):
        verifier.verify(token)
    auth = Authenticator(tokens=verifier)
    with pytest.raises(AuthFailure) as failure:
        auth.principal(f"Bearer {token}")
    assert failure.value.status == 503 and token not in failure.value.message
    path.write_bytes(good)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert verifier.verify(token) is not None


# -- JWT ----------------------------------------------------------------------------------


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "carol", "role": "viewer", "iat": now, "exp": now + 300, **extra}


def hs_verifier(tmp_path: Path, **kw: Any) -> jwt_auth.JwtVerifier:
    secret = tmp_path / "jwt.secret"
    secret.write_bytes(SECRET + b"\n")  # the trailing newline an editor adds is not key
    verifier = jwt_auth.from_files(secret_file=secret, public_key_file=None, **kw)
    assert verifier is not None
    return verifier


def rsa_pair(tmp_path: Path) -> tuple[rsa.RSAPrivateKey, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "idp.pem"
    path.write_bytes(pem)
    return key, path


def test_hs256_token_gives_its_subject_and_role(tmp_path: Path) -> None:
    verifier = hs_verifier(tmp_path)
    who = verifier.principal(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert who == Principal(name="carol", role=Role.VIEWER, via="jwt")
    roles = claims(role=None, roles=["auditor", "Submitter", "admin"])
    assert verifier.principal(jwt.encode(roles, SECRET, algorithm="HS256")).role is Role.SUBMITTER


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": -60}, "expired"),  # exp and nbf: seconds from now, when the test runs
        ({"nbf": 60}, "not yet valid"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
    ],
)
def test_time_and_required_claims_are_enforced(
    tmp_path: Path, changes: dict[str, Any], reason: str
) -> None:
    now = int(time.time())
    timed = {k: now + v if k in ("exp", "nbf") and v is not None else v for k, v in changes.items()}
    body = {k: v for k, v in {**claims(), **timed}.items() if v is not None}
    with pytest.raises(jwt_auth.InvalidToken, match=reason):
        hs_verifier(tmp_path).principal(jwt.encode(body, SECRET, algorithm="HS256"))


def test_small_clock_skew_is_forgiven(tmp_path: Path) -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 3), SECRET, algorithm="HS256")
    assert hs_verifier(tmp_path).principal(token).name == "carol"


def test_bad_signature_alg_none_and_audience_are_refused(tmp_path: Path) -> None:
    verifier = hs_verifier(tmp_path, audience="retailpulse", issuer="https://idp.example")
    good = claims(aud="retailpulse", iss="https://idp.example")
    assert verifier.principal(jwt.encode(good, SECRET, algorithm="HS256")).name == "carol"
    cases = {
        "signature": jwt.encode(good, b"t" * 40, algorithm="HS256"),
        "not allowed": jwt.encode(good, None, algorithm="none"),
        "audience": jwt.encode({**good, "aud": "other"}, SECRET, algorithm="HS256"),
        "issuer": jwt.encode({**good, "iss": "https://evil.example"}, SECRET, algorithm="HS256"),
    }
    for reason, token in cases.items():
        with pytest.raises(jwt_auth.InvalidToken, match=f"(?i){reason}"):
            verifier.principal(token)


def hs256_by_hand(body: dict[str, Any], key: bytes) -> str:
    """What an attacker writes: PyJWT itself refuses a PEM key as an HMAC secret."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(body).encode())
    mac = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(mac)


def test_rs256_and_algorithm_confusion(tmp_path: Path) -> None:
    key, pem_path = rsa_pair(tmp_path)
    verifier = jwt_auth.from_files(secret_file=None, public_key_file=pem_path)
    assert verifier is not None and verifier.algorithms == ("RS256",)
    assert verifier.principal(jwt.encode(claims(), key, algorithm="RS256")).name == "carol"
    # the attack: HMAC-sign with the public key's PEM text, hoping the server uses it as secret
    forged = hs256_by_hand(claims(), pem_path.read_bytes())
    with pytest.raises(jwt_auth.InvalidToken, match="not allowed"):
        verifier.principal(forged)


def test_ec_key_pins_es256(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    verifier = jwt_auth.from_files(secret_file=None, public_key_file=path)
    assert verifier is not None and verifier.algorithms == ("ES256",)
    assert verifier.principal(jwt.encode(claims(), key, algorithm="ES256")).role is Role.VIEWER


def test_no_known_role_is_its_own_error(tmp_path: Path) -> None:
    token = jwt.encode(claims(role="auditor"), SECRET, algorithm="HS256")
    with pytest.raises(jwt_auth.NoRole):
        hs_verifier(tmp_path).principal(token)
    auth = Authenticator(tokens=None, jwt=hs_verifier(tmp_path))
    with pytest.raises(AuthFailure) as failure:
        auth.principal(f"Bearer {token}")
    assert failure.value.status == 403


def test_bad_key_files_are_one_line_config_errors(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("tiny\n")
    with pytest.raises(ConfigError, match="at least 32"):
        jwt_auth.from_files(secret_file=short, public_key_file=None)
    with pytest.raises(ConfigError, match="not a PEM public key"):
        jwt_auth.from_files(secret_file=None, public_key_file=short)
    with pytest.raises(ConfigError, match="cannot read"):
        jwt_auth.from_files(secret_file=tmp_path / "missing", public_key_file=None)
    with pytest.raises(ConfigError, match="not both"):
        jwt_auth.from_files(secret_file=short, public_key_file=short)
    with pytest.raises(ConfigError, match="need --jwt-secret-file"):
        jwt_auth.from_files(secret_file=None, public_key_file=None, audience="x")


# -- roles and the authenticator ----------------------------------------------------------


def test_roles_rights_and_ownership() -> None:
    viewer = Principal("v", Role.VIEWER, "token")
    submitter = Principal("s", Role.SUBMITTER, "token")
    admin = Principal("a", Role.ADMIN, "token")
    assert viewer.may(Action.READ) and not viewer.may(Action.SUBMIT)
    assert all(submitter.may(a) for a in Action)
    assert submitter.sees("s") and not submitter.sees("v") and not submitter.sees(None)
    assert admin.sees("v") and admin.sees(None)


def test_authenticator_tokens_and_jwts_side_by_side(tmp_path: Path) -> None:
    verifier, path = make_verifier(tmp_path)
    token = tokens.create(path, "alice", Role.SUBMITTER)
    auth = Authenticator(tokens=verifier, jwt=hs_verifier(tmp_path))
    assert auth.principal(f"Bearer {token}").name == "alice"
    assert auth.principal(f"bearer   {token} ").name == "alice"
    assert auth.principal(None, cookie_token=token).via == "token"
    jwt_token = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert auth.principal(f"Bearer {jwt_token}").name == "carol"
    for header in (None, "", f"Basic {token}", "Bearer", f"Bearer {token} extra", "Bearer rp_x"):
        with pytest.raises(AuthFailure) as failure:
            auth.principal(header)
        assert failure.value.status == 401 and token not in failure.value.message


def test_open_mode_lets_everyone_in_as_admin() -> None:
    who = Authenticator(tokens=None, open_mode=True).principal(None)
    assert who.role is Role.ADMIN and who.via == "open"
