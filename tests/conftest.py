from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from retailpulse_cli.cli.app import app

from .imageserver import ImageServer
from .pgserver import pg_server  # noqa: F401 (a real PostgreSQL, for tests that ask)
from .s3server import s3, s3_server  # noqa: F401 (fixtures for every test module)

KNOWN = ["S00339218", "S01408764", "S00339198", "S00339204", "S00339215"]


@pytest.fixture(scope="session")
def server() -> Iterator[ImageServer]:
    srv = ImageServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private jobs dir for each test, set through the environment as users would."""
    jobs = tmp_path / "jobs"
    for name in list(os.environ):  # the machine's own settings must not leak into tests
        if name.startswith("RETAILPULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))  # no user config.toml
    monkeypatch.setenv("RETAILPULSE_JOBS_DIR", str(jobs))
    monkeypatch.delenv("RETAILPULSE_STORE_MASTER", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return {**os.environ, "RETAILPULSE_JOBS_DIR": str(jobs)}


def write_job(path: Path, visits: list[dict[str, Any]], count: int | None = None) -> Path:
    path.write_text(
        json.dumps({"count": len(visits) if count is None else count, "visits": visits})
    )
    return path


def dropped_earlier(folder: Path, seconds: float = 60) -> None:
    """Date every file in an inbox folder `seconds` back, as if dropped before the cron
    run: `inbox` leaves files modified in the last few seconds for the next run."""
    when = time.time() - seconds
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            os.utime(path, (when, when))


def visit(store_id: str, *urls: str, when: str = "2026-11-28T10:15:00+05:30") -> dict[str, Any]:
    return {"store_id": store_id, "image_url": list(urls), "visit_time": when}


def one_image_job(tmp_path: Path, server: ImageServer, w: int = 700) -> Path:
    """tmp_path/j.json: one visit of a known store with one PNG, `w` pixels wide."""
    return write_job(tmp_path / "j.json", [visit("S00339218", server.url(f"/img/{w}x30.png"))])


class Cli:
    """Runs the real CLI in-process (Typer's CliRunner) with stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(app, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def cli(env: dict[str, str]) -> Cli:
    return Cli()


def run_cli(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m retailpulse_cli ...` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "retailpulse_cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


def start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start `python -m retailpulse_cli ...` as a real subprocess (for kills and signals)."""
    return subprocess.Popen(
        [sys.executable, "-m", "retailpulse_cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def jobs_in(env: dict[str, str]) -> list[str]:
    root = Path(env["RETAILPULSE_JOBS_DIR"])
    return (
        sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
        if root.exists()
        else []
    )


def results_of(env: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    lines = (Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]


def failures_in(env: dict[str, str]) -> list[dict[str, Any]]:
    """Every failed record of every job in the env's jobs dir: what an assertion message
    shows when a run that should have passed did not (a flake then explains itself)."""
    root = Path(env["RETAILPULSE_JOBS_DIR"])
    started = [j for j in jobs_in(env) if (root / j / "results.jsonl").exists()]
    return [r for j in started for r in results_of(env, j) if r.get("status") != "ok"]


STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", re.M)


def unstamped(text: str) -> str:
    """stderr off a terminal without the UTC timestamp that starts each line."""
    return STAMP.sub("", text)
