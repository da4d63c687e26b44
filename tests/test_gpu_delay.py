"""The simulated GPU pause: on by default, off with --gpu-delay 0, reproducible with --seed.
Timing is measured, with bounds the pause itself guarantees (a sleep is never shorter)."""

from __future__ import annotations

import time
from pathlib import Path

from retailpulse_cli.config.settings import Settings
from retailpulse_cli.processing.download import gpu_delay

from .conftest import Cli, results_of, visit, write_job
from .imageserver import ImageServer

N, WORKERS, SEED = 16, 2, 11  # ideal ~2 s: a loaded CI machine still sees the difference


def timed_submit(cli: Cli, job: Path, *extra: str) -> float:
    t0 = time.monotonic()
    r = cli("submit", str(job), "--workers", str(WORKERS), "--seed", str(SEED), *extra)
    assert r.exit_code == 0, r.stderr
    return time.monotonic() - t0


def test_default_delay_costs_its_sum_over_workers_and_zero_turns_it_off(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    urls = [server.url(f"/img/{600 + i}x30.png") for i in range(N)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    delays = [gpu_delay(Settings(seed=SEED), i) for i in range(N)]
    assert all(0.1 <= d <= 0.4 for d in delays)  # the default range
    ideal = sum(delays) / WORKERS

    with_delay = timed_submit(cli, job)
    without = timed_submit(cli, job, "--gpu-delay", "0")
    assert with_delay >= ideal  # no worker can finish its pauses sooner
    assert without < ideal  # local PNGs of a few hundred bytes take far less
    assert with_delay - without >= 0.8 * ideal


def test_custom_range_and_fixed_delay(cli: Cli, server: ImageServer, tmp_path: Path) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/640x31.png"))])
    assert timed_submit(cli, job, "--gpu-delay", "0.5:0.6") >= 0.5
    assert timed_submit(cli, job, "--gpu-delay", "0.7") >= 0.7
    bad = cli("submit", str(job), "--gpu-delay", "0.4:0.1")
    assert bad.exit_code == 2 and "need 0 <= MIN <= MAX" in bad.stderr


def test_seed_makes_delays_reproducible_whatever_the_thread_order() -> None:
    a = [gpu_delay(Settings(seed=5), i) for i in range(50)]
    b = [gpu_delay(Settings(seed=5), i) for i in reversed(range(50))][::-1]
    c = [gpu_delay(Settings(seed=6), i) for i in range(50)]
    assert a == b and a != c
    assert gpu_delay(Settings(gpu_delay=(0.0, 0.0)), 3) == 0.0


def test_results_are_the_same_with_and_without_delay(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/641x32.png"))])
    ids = [cli("submit", str(job), "--gpu-delay", d).stdout.strip() for d in ("0", "0.1")]
    assert [results_of(env, i)[0]["perimeter"] for i in ids] == [2 * (641 + 32)] * 2
