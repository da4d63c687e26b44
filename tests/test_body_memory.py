"""A large body is held once (issue 9, finding 7): with --max-bytes raised, reading a
body must not peak at twice its size, whatever its framing. The download runs in a child
process (the real Fetcher against a raw server on 127.0.0.1), which reports its own peak
RSS, so nothing the test process holds is counted."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from .rawserver import RawServer

MB = 200
SLACK = 60  # interpreter, imports and one 16 MB read piece

CHILD = """
import sys
from pathlib import Path
from retailpulse_cli.processing.fetch import Fetcher
from retailpulse_cli.config.settings import Settings
fetcher = Fetcher(Settings(max_bytes=512 << 20, timeout=60, read_timeout=30))
data, _ = fetcher.fetch(sys.argv[1], Path("."))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a child forked from a
# large pytest process reported the parent's size (344 MB late in a full run)
hwm = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
print(len(data), int(hwm.split()[1]) // 1024)
"""


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    srv = RawServer().start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("framing", ["cl", "chunked", "close"])
def test_a_200_mb_body_is_held_once(raw: RawServer, framing: str) -> None:
    url = raw.url(f"/big/{framing}/{MB}")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    size, peak_mb = map(int, out.stdout.split())
    assert size == MB << 20
    assert peak_mb < MB + SLACK, f"{framing}: peak RSS {peak_mb} MB for a {MB} MB body"
