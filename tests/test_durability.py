"""The power-cut rule of --save-images, checked on the system calls of a real run (issue 21):
a photo's bytes reach the disk before its final name does, its name is made durable (its
folder fsynced) before results.jsonl is written a record that names it, and nothing syncs
the whole file system (syncfs/sync: other programs' writes are not ours to wait for)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .conftest import results_of, run_cli, visit, write_job
from .imageserver import ImageServer

TRACED = "fsync,fdatasync,syncfs,sync,sync_file_range,write,rename,renameat,renameat2,mkdir"
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
FD_PATH = re.compile(r"^\w+\(\d+<(.*?)>")


@dataclass(frozen=True)
class Call:
    """One system call of the trace: where it starts and ends in the trace's order."""

    start: int
    end: int
    name: str
    text: str  # the whole call, an unfinished line and its resumed part joined

    @property
    def ok(self) -> bool:
        return self.text.rstrip().endswith("= 0")

    @property
    def fd_path(self) -> str:
        m = FD_PATH.match(self.text)
        return m.group(1) if m else ""

    @property
    def strings(self) -> list[str]:
        return QUOTED.findall(self.text)


def parse_trace(text: str) -> list[Call]:
    """strace -f output: an unfinished call's position is its start, its resumed line's its end."""
    calls: list[Call] = []
    unfinished: dict[str, tuple[int, str]] = {}
    for pos, line in enumerate(text.splitlines()):
        pid, _, rest = line.partition(" ")
        rest = rest.lstrip()
        resumed = re.match(r"<\.\.\. (\w+) resumed>(.*)", rest)
        if resumed:
            start, head = unfinished.pop(pid)
            calls.append(Call(start, pos, resumed.group(1), head + resumed.group(2)))
        elif rest.endswith("<unfinished ...>"):
            unfinished[pid] = (pos, rest.removesuffix("<unfinished ...>"))
        elif re.match(r"\w+\(", rest):
            calls.append(Call(pos, pos, rest.split("(", 1)[0], rest))
    return sorted(calls, key=lambda c: c.start)


def first_end(
    calls: list[Call], before: int, after: int, want: Callable[[Call], bool]
) -> int | None:
    """Where the first successful call matching `want` ends, inside (after, before)."""
    for call in calls:
        if after < call.start and call.end < before and call.ok and want(call):
            return call.end
    return None


def traced_submit(job: Path, dest: Path, trace: Path, env: dict[str, str]) -> str:
    strace = shutil.which("strace")
    assert strace, "strace is needed (.ci/run installs it: apt-get install strace)"
    cmd = [strace, "-f", "-qq", "-y", "-s", "1000000", "-e", f"trace={TRACED}"]
    cmd += ["-e", "signal=none", "-o", str(trace), sys.executable, "-m", "retailpulse_cli"]
    cmd += ["submit", str(job), "--gpu-delay", "0", "--save-images", str(dest), "--quiet"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_records_are_written_only_after_their_photos_are_durable(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    dest = tmp_path / "photos"
    urls = [server.url(f"/img/{500 + i}x{40 + i % 3}.{('jpg', 'png')[i % 2]}") for i in range(30)]
    # Half of the photos were kept by an earlier job: found on disk, synced, not rewritten.
    earlier = write_job(tmp_path / "earlier.json", [visit("S00339218", *urls[:15])])
    assert run_cli("submit", str(earlier), "--gpu-delay", "0", "--save-images", str(dest),
                   env=env).returncode == 0  # fmt: skip
    # Each photo twice in the traced job: the second put finds the first one in flight.
    visits = [visit("S01408764", *urls[i : i + 5], *urls[i : i + 5]) for i in range(0, 30, 5)]
    job = write_job(tmp_path / "job.json", visits)
    trace = tmp_path / "trace.txt"
    job_id = traced_submit(job, dest, trace, env)

    records = results_of(env, job_id)
    assert len(records) == 60 and all(rec["status"] == "ok" for rec in records)
    calls = parse_trace(trace.read_text(errors="replace"))
    assert not [c.text for c in calls if c.name in ("syncfs", "sync")]
    results = str(Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "results.jsonl")
    writes = [c for c in calls if c.name == "write" and c.fd_path == results]
    for rec in records:
        assert_durable_before_written(rec, dest, calls, writes)
    renames = [c for c in calls if c.name.startswith("rename") and str(dest) in c.text]
    assert renames, "the traced job wrote new photos"
    for call in renames:  # no final name over bytes that are not on disk
        temp = call.strings[0]
        assert first_end(calls, call.start, -1, lambda c, t=temp: data_synced(c, t)), call.text


def data_synced(call: Call, path: str) -> bool:
    return call.name in ("fsync", "fdatasync") and call.fd_path == path


def assert_durable_before_written(
    rec: dict[str, object], dest: Path, calls: list[Call], writes: list[Call]
) -> None:
    final = str(rec["stored_as"])
    folder = os.path.dirname(final)
    written = next(c.start for c in writes if str(rec["sha256"]) in c.text)
    # the bytes: the temp file renamed to the final name, or the file found already there
    renamed = first_end(
        calls, written, -1, lambda c: c.name.startswith("rename") and c.strings[-1:] == [final]
    )
    if renamed is not None:
        temp = next(c.strings[0] for c in calls if c.end == renamed)
        assert first_end(calls, renamed, -1, lambda c: data_synced(c, temp)), final
        named = renamed
    else:
        synced = first_end(calls, written, -1, lambda c: data_synced(c, final))
        assert synced is not None, f"{final} named in results.jsonl, never synced"
        named = synced
    # the name: its folder fsynced after the rename, before the record was written
    assert first_end(calls, written, named, lambda c: data_synced(c, folder)), final
    # the folder's own name in dest, if this run made the folder
    made = first_end(calls, written, -1, lambda c: c.name == "mkdir" and c.strings == [folder])
    if made is not None:
        assert first_end(calls, written, made, lambda c: data_synced(c, str(dest))), folder
