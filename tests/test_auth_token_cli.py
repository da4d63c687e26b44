"""`retailpulse token create|list|revoke` as users run them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from retailpulse_cli.server.security import tokens

from .conftest import Cli


def test_create_prints_the_token_once_and_keeps_only_its_hash(
    cli: Cli, env: dict[str, str]
) -> None:
    created = cli("token", "create", "alice", "--role", "submitter")
    assert created.exit_code == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("rp_") and "\n" not in token
    assert "not shown again" in created.stderr and token not in created.stderr
    path = Path(env["RETAILPULSE_JOBS_DIR"]) / "tokens.json"
    assert token not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    verifier = tokens.TokenVerifier(path)
    assert verifier.verify(token).role.value == "submitter"  # type: ignore[union-attr]

    listed = cli("token", "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["name", "role", "created", "last", "used"]
    assert lines[1].split()[:2] == ["alice", "submitter"] and lines[1].endswith("never")
    assert token not in listed.stdout
    rows = json.loads(cli("token", "list", "--json").stdout)
    assert [(r["name"], r["role"], r["last_used_at"]) for r in rows] == [
        ("alice", "submitter", None)
    ]
    assert "sha256" not in rows[0]


def test_json_create_and_revoke(cli: Cli, env: dict[str, str]) -> None:
    made = json.loads(cli("token", "create", "bot", "--role", "ADMIN", "--json").stdout)
    assert made["name"] == "bot" and made["role"] == "admin" and made["token"].startswith("rp_")
    revoked = cli("token", "revoke", "bot")
    assert revoked.exit_code == 0 and "revoked the token of bot (admin)" in revoked.stderr
    assert json.loads(cli("token", "list", "--json").stdout) == []
    again = cli("token", "revoke", "bot")
    assert again.exit_code == 5 and "no token named 'bot'" in again.stderr


def test_bad_role_taken_name_and_bad_name_exit_2(cli: Cli) -> None:
    bad_role = cli("token", "create", "x", "--role", "root")
    assert bad_role.exit_code == 2 and "use viewer, submitter, admin" in bad_role.stderr
    assert cli("token", "create", "x", "--role", "viewer").exit_code == 0
    taken = cli("token", "create", "x", "--role", "admin")
    assert taken.exit_code == 2 and "exists already" in taken.stderr
    bad_name = cli("token", "create", "a/b", "--role", "admin")
    assert bad_name.exit_code == 2 and "is not allowed" in bad_name.stderr
    assert "Traceback" not in taken.stderr + bad_name.stderr


def test_jobs_dir_option_picks_the_file(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    assert cli("token", "create", "y", "--role", "viewer", "--jobs-dir", str(other)).exit_code == 0
    assert (other / "tokens.json").is_file()
    assert json.loads(cli("token", "list", "--json").stdout) == []
