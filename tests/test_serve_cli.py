"""`retailpulse serve` as a command: what stops it from starting (one line, exit 2), and
the run options reaching its jobs through the same table as the CLI's."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import KNOWN, unstamped
from .imageserver import ImageServer
from .serveutil import Served, clean_env, job_doc, visit


def serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retailpulse_cli", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_without_authentication_an_address_other_than_loopback_is_refused(
    tmp_path: Path, host: str
) -> None:
    env = clean_env(tmp_path, tmp_path / "jobs")
    r = serve("--no-auth", "--host", host, "--port", "0", env=env)
    assert r.returncode == 2
    lines = unstamped(r.stderr).splitlines()
    assert lines == [
        f"retailpulse: error: --host {host}: --no-auth serves anyone who can connect, so it "
        "listens only on loopback addresses (127.0.0.1, ::1, localhost)",
        "retailpulse: hint: drop --no-auth and give clients tokens (`retailpulse token create`)",
    ]
    assert not (tmp_path / "jobs").exists()


def test_without_the_server_extra_one_line_names_the_install_command(tmp_path: Path) -> None:
    hidden = tmp_path / "no-fastapi"
    hidden.mkdir()
    (hidden / "fastapi.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'fastapi'\", name='fastapi')\n"
    )
    env = clean_env(tmp_path, tmp_path / "jobs")
    env["PYTHONPATH"] = str(hidden)
    r = serve("--port", "0", env=env)
    assert r.returncode == 2
    assert unstamped(r.stderr).splitlines() == [
        "retailpulse: error: serve needs the server extra: pip install 'retailpulse[server]'"
    ]


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = serve("--port", str(port), env=clean_env(tmp_path, tmp_path / "jobs"))
    assert r.returncode == 2
    assert unstamped(r.stderr).splitlines() == [
        f"retailpulse: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_run_options_from_flags_variables_and_the_config_file_reach_the_jobs(
    tmp_path: Path, server: ImageServer
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('timeout = 7\nrate = 50\ngpu-delay = "0"\n')
    env = clean_env(tmp_path, tmp_path / "jobs")
    env["RETAILPULSE_RETRIES"] = "1"
    api = Served("--config", str(config), "--workers", "3", "--allow-private-networks", env=env)
    try:
        job_id = api.submit(job_doc(visit(KNOWN[0], server.url("/img/64x48.png"))))
        assert api.wait(job_id)["status"] == "completed"
        settings = json.loads((api.jobs / job_id / "meta.json").read_text())["settings"]
        assert settings["workers"] == 3  # flag
        assert settings["retries"] == 1  # RETAILPULSE_RETRIES
        assert settings["timeout"] == 7 and settings["rate"] == 50  # config file
        assert settings["gpu_delay"] == [0, 0]
        assert settings["allow_local_files"] is False  # forced: no --allow-local-files
        assert settings["block_private_networks"] is False  # allowed by the operator
    finally:
        assert api.stop() == 0


def test_a_bad_run_option_stops_the_start_naming_where_it_came_from(tmp_path: Path) -> None:
    env = clean_env(tmp_path, tmp_path / "jobs")
    env["RETAILPULSE_WORKERS"] = "0"
    r = serve("--port", "0", env=env)
    assert r.returncode == 2
    assert "RETAILPULSE_WORKERS: '0' is not valid for --workers" in r.stderr
