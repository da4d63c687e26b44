"""A real S3 API server (moto's standalone server) on 127.0.0.1, started by the tests,
with a user whose keys are the only ones that work once it is made."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SECRET = "TopSecretValue-do-not-print-4711"


class S3Server:
    def __init__(self, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}  # then signatures count
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._wait()
        self.key_id, self.secret = self._make_user()

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                time.sleep(0.05)
        raise RuntimeError("moto server did not start")

    def _make_user(self) -> tuple[str, str]:
        """The 3 unauthenticated calls: a user with full access; then only its keys work."""
        iam = self.client("iam", "bootstrap", "bootstrap")
        iam.create_user(UserName="retailpulse")
        key = iam.create_access_key(UserName="retailpulse")["AccessKey"]
        iam.put_user_policy(
            UserName="retailpulse",
            PolicyName="all",
            PolicyDocument='{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}',
        )
        return key["AccessKeyId"], key["SecretAccessKey"]

    def client(self, service: str, key_id: str | None = None, secret: str | None = None) -> Any:
        import boto3

        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id or self.key_id,
            aws_secret_access_key=secret or self.secret,
        )

    def puts(self, key_part: str) -> int:
        """Successful PUTs the server logged for keys containing `key_part`."""
        lines = self.log.read_text().splitlines()
        return sum(1 for ln in lines if "PUT /" in ln and key_part in ln and '" 200 ' in ln)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    srv = S3Server(tmp_path_factory.mktemp("moto") / "requests.log")
    yield srv
    srv.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """Credentials and endpoint the standard way: the AWS environment variables."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))  # no profile of the host
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return s3_server
