"""The durable queue: order, a full queue (503 + Retry-After), kill -9 and SIGTERM of a
real `retailpulse serve` then a restart: every job finishes exactly once."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .conftest import KNOWN, run_cli
from .imageserver import ImageServer
from .serveutil import Served, clean_env, job_doc, visit

FAST = ["--allow-private-networks", "--gpu-delay", "0"]


def records(jobs: Path, job_id: str) -> list[dict[str, Any]]:
    lines = (jobs / job_id / "results.jsonl").read_text().splitlines()[1:]
    return [json.loads(line) for line in lines]


def assert_exactly_once(jobs: Path, job_id: str, images: int) -> None:
    indices = Counter(r["index"] for r in records(jobs, job_id))
    assert sorted(indices) == list(range(images)), f"job {job_id}: images lost"
    assert max(indices.values()) == 1, f"job {job_id}: an image recorded twice"


def test_a_full_queue_is_503_with_retry_after_and_jobs_run_in_order(
    tmp_path: Path, server: ImageServer
) -> None:
    env = clean_env(tmp_path, tmp_path / "jobs")
    api = Served(*FAST, "--concurrent-jobs", "1", "--max-queued-jobs", "2", env=env)
    try:
        blocker = api.submit(job_doc(visit(KNOWN[0], server.url("/slow/q.png?seconds=1.5"))))
        api.wait(blocker, until=("ongoing",))
        queued = [
            api.submit(job_doc(visit(KNOWN[i], server.url("/img/64x48.png")))) for i in (1, 2)
        ]
        assert [api.get(f"/v1/jobs/{j}").json()["status"] for j in queued] == ["queued"] * 2
        assert api.get("/api/status", params={"jobid": queued[0]}).json()["status"] == "ongoing"
        doc = json.dumps(job_doc(visit(KNOWN[3], server.url("/img/64x48.png"))))
        for path in ("/v1/jobs", "/api/submit/"):
            full = api.post(path, data=doc)
            assert full.status_code == 503
            assert full.json()["error"]["code"] == "queue_full"
            assert int(full.headers["Retry-After"]) > 0
        waited = run_cli("status", "--wait", "--json", queued[1], env=env)  # waits while queued
        assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "completed"
        finals = [api.wait(j) for j in [blocker, *queued]]
        assert [f["status"] for f in finals] == ["completed"] * 3
        starts = [f["started_at"] for f in finals]
        assert starts == sorted(starts)  # first in, first run
        assert api.post("/v1/jobs", data=doc).status_code == 202  # room again
    finally:
        assert api.stop() == 0


def photo_files(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def test_after_kill_9_a_restart_finishes_every_job_exactly_once(
    tmp_path: Path, server: ImageServer
) -> None:
    env = clean_env(tmp_path, tmp_path / "jobs")
    photos = tmp_path / "photos"
    args = [
        "--allow-private-networks",
        "--gpu-delay",
        "0.15",
        "--workers",
        "3",
        "--concurrent-jobs",
        "2",
        "--save-images",
        str(photos),
    ]
    sizes = {j: [(40 + j * 50 + i, 30) for i in range(40)] for j in range(4)}
    docs = [
        job_doc(visit(KNOWN[j], *(server.url(f"/img/{w}x{h}.png") for w, h in sizes[j])))
        for j in range(4)
    ]
    paths = {j: [f"/img/{w}x{h}.png" for w, h in sizes[j]] for j in sizes}
    hits_before = {path: server.hits[path] for ps in paths.values() for path in ps}  # shared
    first = Served(*args, env=env)
    ids = [first.submit(doc) for doc in docs[:3]]
    keyed = first.post("/v1/jobs", data=json.dumps(docs[3]), headers={"Idempotency-Key": "k9"})
    first.wait(ids[0], until=("ongoing",))
    while len(records(first.jobs, ids[0])) < 6:
        time.sleep(0.05)
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(30)
    before = {j: {r["index"] for r in records(first.jobs, j)} for j in ids}
    kept = photo_files(photos)
    states = [json.loads(run_cli("status", j, "--json", env=env).stdout)["status"] for j in ids]
    assert states[:2] == ["interrupted", "interrupted"] and states[2] == "queued"
    assert len(before[ids[0]]) >= 6 and before[ids[2]] == set()

    second = Served(*args, env=env)
    try:
        assert "queued again" in second.stderr
        for job_id in [*ids, keyed.json()["job_id"]]:
            final = second.wait(job_id)
            assert final["status"] == "completed" and final["images_ok"] == 40
            assert_exactly_once(second.jobs, job_id, 40)
        for j, job_id in enumerate(ids):  # recorded before the kill: not downloaded again
            for index in before[job_id]:
                path = paths[j][index]
                assert server.hits[path] - hits_before[path] == 1, path
        after = photo_files(photos)
        assert {name: after[name] for name in kept} == kept  # no saved photo rewritten
        assert len(after) == 160
        again = second.post("/v1/jobs", data=json.dumps(docs[3]), headers={"Idempotency-Key": "k9"})
        assert again.status_code == 200 and again.json()["job_id"] == keyed.json()["job_id"]
    finally:
        assert second.stop() == 0


def test_sigterm_refuses_new_jobs_stops_within_grace_and_the_next_start_resumes(
    tmp_path: Path, server: ImageServer
) -> None:
    env = clean_env(tmp_path, tmp_path / "jobs")
    stuck = tmp_path / "stuck.png"
    os.mkfifo(stuck)  # reading it blocks until a writer comes: a job that will not stop
    args = [*FAST, "--allow-local-files", "--grace", "1"]
    api = Served(*args, env=env)
    urls = [server.url(f"/img/{30 + i}x30.png") for i in range(5)]
    job_id = api.submit(job_doc(visit(KNOWN[0], *urls, f"file://{stuck}")))
    while api.get(f"/v1/jobs/{job_id}").json()["images_done"] < 5:
        time.sleep(0.05)
    started = time.monotonic()
    api.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    refused = api.post("/v1/jobs", data=json.dumps(job_doc(visit(KNOWN[1], urls[0]))))
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_accepting"
    assert refused.headers["Retry-After"]
    assert api.get("/readyz").status_code == 503
    assert api.get("/healthz").status_code == 200
    assert api.get(f"/v1/jobs/{job_id}").status_code == 200  # reads still answered
    assert api.proc.wait(30) == 0
    assert time.monotonic() - started < 1 + 4  # --grace, then the HTTP side's own drain
    assert "SIGTERM: stopping" in api.stderr
    stuck.unlink()
    stuck.write_bytes(
        (Path(__file__).parent.parent / "examples/images/shelf-640x480.jpg").read_bytes()
    )
    assert (
        json.loads(run_cli("status", job_id, "--json", env=env).stdout)["status"] == "interrupted"
    )
    again = Served(*args, env=env)
    try:
        final = again.wait(job_id)
        assert final["status"] == "completed" and final["images_ok"] == 6
        assert_exactly_once(again.jobs, job_id, 6)
        assert final["run"]["mode"] == "resume"
    finally:
        assert again.stop() == 0


def test_ctrl_c_stops_the_same_way_and_the_job_reads_interrupted_by_sigint(
    tmp_path: Path, server: ImageServer
) -> None:
    env = clean_env(tmp_path, tmp_path / "jobs")
    api = Served("--allow-private-networks", "--gpu-delay", "0.3", "--workers", "2", env=env)
    job_id = api.submit(
        job_doc(visit(KNOWN[0], *(server.url(f"/img/{20 + i}x9.png") for i in range(40))))
    )
    while api.get(f"/v1/jobs/{job_id}").json()["images_done"] < 3:
        time.sleep(0.05)
    assert api.signal(signal.SIGINT) == 0  # Ctrl-C: the same graceful stop
    status = json.loads(run_cli("status", job_id, "--json", env=env).stdout)
    assert status["status"] == "interrupted" and status["interrupted_by"] == "SIGINT"
    again = Served("--allow-private-networks", "--gpu-delay", "0", env=env)
    try:
        assert again.wait(job_id)["status"] == "completed"
        assert_exactly_once(again.jobs, job_id, 40)
    finally:
        assert again.stop() == 0


@pytest.mark.parametrize("allow", [False, True])
def test_jobs_from_the_network_read_no_local_file_and_reach_no_private_address_unless_allowed(
    tmp_path: Path, server: ImageServer, allow: bool
) -> None:
    env = clean_env(tmp_path, tmp_path / "jobs")
    image = Path(__file__).parent.parent / "examples/images/shelf-640x480.jpg"
    args = ["--gpu-delay", "0", "--retries", "0"]
    if allow:
        args += ["--allow-local-files", "--allow-private-networks"]
    api = Served(*args, env=env)
    try:
        loopback = f"/img/{65 + allow}x47.png"
        hits_before = server.hits[loopback]  # the image server is shared by every test
        urls = [image.as_uri(), server.url(loopback), "http://[::1]:9/x.png"]
        job_id = api.submit(job_doc(visit(KNOWN[0], *urls)))
        api.wait(job_id)
        lines = api.get(f"/v1/jobs/{job_id}/results").text.splitlines()
        got = {json.loads(line)["index"]: json.loads(line) for line in lines}
        codes = [got[i].get("error_code") for i in range(3)]
        if allow:
            assert codes == [None, None, "connection_error"]
        else:
            assert codes == ["local_files_disabled", "blocked_address", "blocked_address"]
            assert server.hits[loopback] == hits_before  # not one request reached it
            meta = json.loads((api.jobs / job_id / "meta.json").read_text())
            assert meta["settings"]["allow_local_files"] is False
            assert meta["settings"]["block_private_networks"] is True
    finally:
        assert api.stop() == 0
