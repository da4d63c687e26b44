"""A real `retailpulse serve --port 0` in a subprocess on 127.0.0.1, found by the line it
writes to stderr once it accepts connections, and a few helpers for its clients."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

LISTENING = re.compile(r"retailpulse: listening on (http://127\.0\.0\.1:(\d+))$")


def clean_env(tmp: Path, jobs: Path) -> dict[str, str]:
    """The machine's RETAILPULSE_* settings and user config left out, as in conftest.env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAILPULSE_")}
    env.update(
        XDG_CONFIG_HOME=str(tmp / "xdg-config"), RETAILPULSE_JOBS_DIR=str(jobs), NO_COLOR="1"
    )
    return env


class Served:
    """One server process; `url` once it listens; stderr kept line by line."""

    def __init__(
        self, *args: str, env: dict[str, str], timeout: float = 60, auth: bool = False
    ) -> None:
        """`auth=False` serves in open mode (--no-auth: anyone is an admin), as the
        tests of the API itself want; the tests of authentication pass True."""
        self.jobs = Path(env["RETAILPULSE_JOBS_DIR"])
        open_mode = () if auth else ("--no-auth",)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "retailpulse_cli", "serve", "--port", "0", *open_mode, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._listening = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._listening.wait(timeout):
            self.kill()
            raise AssertionError(f"no listening line in {timeout}s; stderr: {self.stderr}")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = LISTENING.search(line.rstrip("\n"))
            if m and not self.url:
                self.url = m.group(1)
                self._listening.set()
        self._listening.set()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def __call__(self, path: str) -> str:
        return self.url + path

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self(path), timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return requests.post(self(path), timeout=30, **kw)

    def submit(self, doc: dict[str, Any], path: str = "/v1/jobs") -> str:
        r = self.post(path, data=json.dumps(doc))
        assert r.status_code in (201, 202), r.text
        return str(r.json()["job_id"])

    def wait(self, job_id: str, timeout: float = 60, until: tuple[str, ...] = ()) -> Any:
        """The job's /v1 status once it leaves queued/ongoing (or reaches `until`)."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.get(f"/v1/jobs/{job_id}").json()
            if doc["status"] in until or (not until and doc["status"] not in ("queued", "ongoing")):
                return doc
            assert time.monotonic() < deadline, f"job {job_id} still {doc['status']}"
            time.sleep(0.05)

    def signal(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; the exit code."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        return self.signal(signal.SIGTERM)


def job_doc(*visits: dict[str, Any]) -> dict[str, Any]:
    return {"count": len(visits), "visits": list(visits)}


def visit(store_id: str, *urls: str) -> dict[str, Any]:
    return {"store_id": store_id, "image_url": list(urls), "visit_time": "2026-11-28T10:15:00Z"}
