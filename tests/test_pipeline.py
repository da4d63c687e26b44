"""Issue 10: downloads run ahead of the GPU stage, each with its own concurrency, through a
bounded buffer. Real server on 127.0.0.1, real job directories, real subprocesses."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from retailpulse_cli.config.settings import Settings
from retailpulse_cli.processing.download import KeepFailure, StopFlag
from retailpulse_cli.processing.download_window import SLOW_FLOOR
from retailpulse_cli.processing.fetch import Fetcher
from retailpulse_cli.processing.gpu import SimulatedGpu
from retailpulse_cli.processing.pipeline import BUFFER_PER_SLOT, Pipeline
from retailpulse_cli.processing.spec import ImageTask

from .conftest import Cli, results_of, run_cli, start_cli, visit, write_job
from .imageserver import ImageServer
from .test_resilience import assert_one_result_per_image, wait_for_results


def test_hanging_urls_cost_the_timeout_once_not_a_gpu_slot_each(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    """A quarter of the URLs never answer. With 2 GPU slots, the old one-pool design took
    (10 hangs / 2 workers) x 3 s = 15 s; now the hangs wait in download slots."""
    urls = []
    for i in range(40):
        path = f"/hang/h{i}" if i % 4 == 3 else f"/img/{700 + i}x31.png"
        urls.append(server.url(path))
    job = write_job(
        tmp_path / "j.json", [visit("S00339218", *urls[i : i + 4]) for i in range(0, 40, 4)]
    )
    args = ["--workers", "2", "--gpu-delay", "0.1", "--timeout", "3", "--retries", "0"]
    t0 = time.monotonic()
    r = cli("submit", str(job), *args)
    wall = time.monotonic() - t0
    assert r.exit_code == 1, r.stderr  # failed: the hanging images time out
    records = results_of(env, r.stdout.strip())
    assert Counter(rec.get("error_code", "ok") for rec in records) == {"ok": 30, "timeout": 10}
    gpu_time = 30 * 0.1 / 2
    assert wall < 3 + gpu_time + 2.0, f"{wall:.1f} s: hangs held GPU slots"


def tasks(server: ImageServer, n: int, group: str) -> list[ImageTask]:
    return [
        ImageTask(i, i // 4, "S00339218", "night", server.url(f"/nap/{group}/{i}?seconds=0.01"))
        for i in range(n)
    ]


def test_gpu_stage_never_gets_more_than_workers_and_the_buffer_bound_holds(
    server: ImageServer, tmp_path: Path
) -> None:
    """Fast downloads, a slow GPU: the buffer fills up to its bound and no further; the
    server's own count of requests answered says how far downloads ran ahead."""
    settings = Settings(workers=3, downloads=4, gpu_delay=(0.06, 0.06))
    stop = StopFlag()
    fetcher = Fetcher(settings, stop)
    gpu = SimulatedGpu(settings, stop)
    pipeline = Pipeline(settings, fetcher, tmp_path, stop, gpu=gpu)
    group = f"buf{time.monotonic_ns()}"
    records: list[dict[str, Any]] = []
    ahead: list[int] = []

    def sink(rec: dict[str, Any]) -> None:
        records.append(rec)
        with server.lock:
            fetched = server.hits.total() - base
        ahead.append(fetched - len(records))  # fetched but not yet recorded

    with server.lock:
        base = server.hits.total()
    try:
        assert pipeline.run(tasks(server, 90, group), sink, lambda: None)
    finally:
        fetcher.close()
    assert sorted(r["index"] for r in records) == list(range(90))
    assert all(r["status"] == "ok" for r in records)
    assert gpu.most_active == 3, "the GPU stage is used fully, never beyond --workers"
    assert server.group_max[group] <= 4, "never more downloads at once than --downloads"
    # downloads in flight + buffer <= downloads + BUFFER_PER_SLOT x workers; + those in the GPU
    hold = 4 + BUFFER_PER_SLOT * 3
    assert pipeline.hold == hold
    assert max(ahead) <= hold + 3
    assert max(ahead) >= hold - 1, "downloads do run ahead of the GPU, up to the bound"
    assert pipeline.counts.held <= hold


def test_stop_abandons_buffer_and_hanging_downloads_within_grace(
    server: ImageServer, tmp_path: Path
) -> None:
    settings = Settings(workers=2, downloads=6, gpu_delay=(0.2, 0.2), timeout=60)
    stop = StopFlag()
    fetcher = Fetcher(settings, stop)
    urls = [
        server.url(f"/hang/s{i}") if i % 2 else server.url(f"/img/{300 + i}x20.png")
        for i in range(40)
    ]
    work = [ImageTask(i, i, "S00339218", "night", u) for i, u in enumerate(urls)]
    records: list[dict[str, Any]] = []
    threading.Timer(0.8, stop.request, args=("SIGINT",)).start()
    t0 = time.monotonic()
    try:
        complete = Pipeline(settings, fetcher, tmp_path, stop).run(
            work, records.append, lambda: None
        )
    finally:
        fetcher.close()
    assert not complete
    assert time.monotonic() - t0 < 0.8 + 2.0 + 0.5, "stopped within the grace"
    assert records and all(r["status"] == "ok" for r in records), "nothing cut short is failed"


def test_kill_9_with_both_stages_busy_then_resume_is_exact(
    tmp_path: Path, server: ImageServer, env: dict[str, str]
) -> None:
    n = 240
    urls = [
        server.url(f"/nap/k9/{i}?seconds=0.3" if i % 3 == 0 else f"/img/{2000 + i}x33.png")
        for i in range(n)
    ]
    job = write_job(
        tmp_path / "j.json", [visit("S00339218", *urls[i : i + 3]) for i in range(0, n, 3)]
    )
    flags = ["--workers", "4", "--downloads", "8", "--gpu-delay", "0.02:0.06", "--seed", "3"]
    proc = start_cli("submit", str(job), *flags, env=env)
    job_id = wait_for_results(env, 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = len(results_of(env, job_id))
    assert before < n
    r = run_cli("resume", job_id, env=env)
    assert r.returncode == 0, r.stderr
    records = assert_one_result_per_image(env, job_id, n)
    assert all(rec["status"] == "ok" for rec in records)


def test_downloads_must_be_at_least_one(cli: Cli, tmp_path: Path) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", "a.png")])
    r = cli("submit", str(job), "--downloads", "0")
    assert r.exit_code == 2
    assert "--downloads: 0 is not valid for --downloads: must be at least 1" in r.stderr


def test_keep_step_adds_fields_or_fails_one_image_with_its_code(
    server: ImageServer, tmp_path: Path
) -> None:
    """The seam for storing bytes (issue 13): runs after measure, in the download stage."""
    settings = Settings(workers=2, downloads=2, gpu_delay=(0.0, 0.0))
    stop = StopFlag()
    fetcher = Fetcher(settings, stop)
    seen: list[int] = []

    def keep(task: ImageTask, data: bytes, size: Any) -> dict[str, Any]:
        if task.image_index == 1:
            raise KeepFailure("store_failed", "disk full")
        seen.append(len(data))
        return {"bytes": len(data)}

    work = [
        ImageTask(i, 0, "S00339218", "night", server.url(f"/img/{90 + i}x9.png")) for i in range(3)
    ]
    records: list[dict[str, Any]] = []
    try:
        Pipeline(settings, fetcher, tmp_path, stop, keep=keep).run(
            work, records.append, lambda: None
        )
    finally:
        fetcher.close()
    by_index = {r["index"]: r for r in records}
    assert by_index[1]["status"] == "failed"
    assert (by_index[1]["error_code"], by_index[1]["error"]) == ("store_failed", "disk full")
    assert sorted(by_index[i]["bytes"] for i in (0, 2)) == sorted(seen)
    assert all(by_index[i]["status"] == "ok" and by_index[i]["bytes"] > 0 for i in (0, 2))


def test_a_run_starts_one_download_per_gpu_slot_then_widens_even_if_none_finish(
    server: ImageServer, tmp_path: Path
) -> None:
    """The window starts at one download per GPU slot. Downloads that wait on a host where
    nothing finishes (2 s here) each get a replacement once past SLOW_FLOOR, so a dead host
    still gets --downloads at once and cannot starve the run."""
    settings = Settings(workers=4, downloads=16, gpu_delay=(0.0, 0.0))
    stop = StopFlag()
    fetcher = Fetcher(settings, stop)
    group = f"ramp{time.monotonic_ns()}"
    work = [
        ImageTask(i, i, "S00339218", "night", server.url(f"/nap/{group}/{i}?seconds=2.0"))
        for i in range(16)
    ]
    early: list[int] = []

    def sample() -> None:
        with server.lock:
            early.append(server.group_in_flight[group])

    threading.Timer(SLOW_FLOOR / 2, sample).start()
    records: list[dict[str, Any]] = []
    t0 = time.monotonic()
    try:
        assert Pipeline(settings, fetcher, tmp_path, stop).run(work, records.append, lambda: None)
    finally:
        fetcher.close()
    assert len(records) == 16 and all(r["status"] == "ok" for r in records)
    assert early[0] <= settings.workers, f"{early[0]} downloads at the start"
    assert server.group_max[group] == 16, "widened to --downloads with nothing finished"
    assert time.monotonic() - t0 < 2.0 + 4 * SLOW_FLOOR + 1.0, "the replacements came early"


def test_downloads_in_flight_follow_what_the_gpu_stage_takes_not_the_downloads_flag(
    server: ImageServer, tmp_path: Path
) -> None:
    """Issue 17: a GPU stage of 2 slots x 0.1 s takes 20 images/s; a download takes 0.02 s,
    so about one in flight feeds it (Little's law; a few on a busy machine, where downloads
    take longer). `--downloads 64` used to put up to 64 at once on the host (and as many
    threads on the cores) for no gain; now the window stays near the need, and the run is
    as fast as the GPU stage allows."""
    settings = Settings(workers=2, downloads=64, gpu_delay=(0.1, 0.1))
    stop = StopFlag()
    fetcher = Fetcher(settings, stop)
    group = f"need{time.monotonic_ns()}"
    n = 40
    work = [
        ImageTask(i, i, "S00339218", "night", server.url(f"/nap/{group}/{i}?seconds=0.02"))
        for i in range(n)
    ]
    records: list[dict[str, Any]] = []
    pipeline = Pipeline(settings, fetcher, tmp_path, stop)
    t0 = time.monotonic()
    try:
        assert pipeline.run(work, records.append, lambda: None)
    finally:
        fetcher.close()
    wall = time.monotonic() - t0
    assert sorted(r["index"] for r in records) == list(range(n))
    assert all(r["status"] == "ok" for r in records)
    assert server.group_max[group] <= 4 * settings.workers, server.group_max[group]
    assert pipeline.counts.downloading <= 4 * settings.workers
    assert wall < n * 0.1 / 2 + 1.0, f"{wall:.2f} s: the GPU stage was kept waiting"
