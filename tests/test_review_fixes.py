"""Regressions for what the round's adversarial review found: each test is one finding."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import Cli, dropped_earlier, jobs_in, run_cli, visit, write_job
from .imageserver import ImageServer


def one_job(tmp_path: Path, server: ImageServer, w: int = 700) -> Path:
    return write_job(tmp_path / "j.json", [visit("S00339218", server.url(f"/img/{w}x30.png"))])


def test_config_file_reaches_every_command_that_reads_jobs(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in env.items() if k != "RETAILPULSE_JOBS_DIR"}  # the file says it
    jobs = tmp_path / "elsewhere"
    conf = tmp_path / "c.toml"
    conf.write_text(f'jobs-dir = "{jobs}"\ngpu-delay = 0\n')
    r = run_cli("submit", str(one_job(tmp_path, server)), "--config", str(conf), env=env)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip()
    assert (jobs / job_id).is_dir()
    for args in (
        ["status", job_id],
        ["results", job_id],
        ["list"],
        ["report", job_id, "--json"],
        ["prune", "--older-than", "30d", "--dry-run"],
        ["validate", str(tmp_path / "j.json")],
    ):
        r = run_cli(*args, "--config", str(conf), env=env)
        assert r.returncode == 0, (args, r.stderr)
        if args[0] in ("status", "results", "list", "report"):
            assert job_id in r.stdout, args


@pytest.mark.parametrize("kind", ["symlink", "device"])
def test_report_html_never_replaces_what_is_not_a_regular_file(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path, kind: str
) -> None:
    cli("submit", str(one_job(tmp_path, server)), "--gpu-delay", "0")
    if kind == "symlink":
        target = tmp_path / "keep.txt"
        target.write_text("mine")
        path = tmp_path / "link.html"
        path.symlink_to(target)
    else:
        path = Path("/dev/null")
    r = cli("report", "--html", str(path))
    assert r.exit_code == 7
    assert f"--html {path}: exists and is not a regular file; not replaced" in r.stderr
    if kind == "symlink":
        assert path.is_symlink() and target.read_text() == "mine"
    else:
        assert Path("/dev/null").is_char_device()
    page = cli("report", "--html", "-")
    assert page.exit_code == 0 and page.stdout.startswith("<!DOCTYPE html>")


def test_report_of_the_latest_job_skips_a_stray_folder(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job_id = cli("submit", str(one_job(tmp_path, server)), "--gpu-delay", "0").stdout.strip()
    (Path(env["RETAILPULSE_JOBS_DIR"]) / "zz-lost+found").mkdir()
    r = cli("report", "--json")
    assert r.exit_code == 0, r.stderr
    assert [j["job_id"] for j in json.loads(r.stdout)["jobs"]] == [job_id]


def test_report_since_on_an_empty_jobs_dir_is_not_found(cli: Cli, env: dict[str, str]) -> None:
    r = cli("report", "--since", "7d")
    assert r.exit_code == 5 and "no jobs in" in r.stderr


def test_inbox_does_not_take_symbolic_links(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "box"
    box.mkdir()
    real = write_job(box / "z.json", [visit("S00339218", server.url("/img/701x30.png"))])
    (box / "a.json").symlink_to(real)
    dropped_earlier(box)
    r = cli("inbox", str(box), "--gpu-delay", "0")
    assert r.exit_code == 0, r.stderr
    assert len(jobs_in(env)) == 1  # z.json once, not again through a.json
    assert "skipped" in r.stderr and "a.json" in r.stderr
    assert (box / "a.json").is_symlink()  # left where it was


def test_file_url_without_an_absolute_path_is_refused(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    r = cli("submit", str(one_job(tmp_path, server)), "--save-images", "file://photos")
    assert r.exit_code == 2
    assert "a file: URL needs an absolute path" in r.stderr
    assert jobs_in(env) == []


def test_credentials_in_save_images_are_not_printed_or_kept(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    dest = f"file://u:PaSsWoRd9@localhost{tmp_path}/photos"
    shown = cli("config", "--save-images", dest, "--json")
    assert "PaSsWoRd9" not in shown.stdout
    r = cli("submit", str(one_job(tmp_path, server)), "--gpu-delay", "0", "--save-images", dest)
    assert r.exit_code == 0, r.stderr
    job_dir = Path(env["RETAILPULSE_JOBS_DIR"]) / r.stdout.strip()
    for name in os.listdir(job_dir):
        if (job_dir / name).is_file():
            assert "PaSsWoRd9" not in (job_dir / name).read_text(errors="replace"), name


@pytest.mark.parametrize(
    "args",
    [
        ["--gpu-delay", "nan"],
        ["--gpu-delay", "0.1:inf"],
        ["--gpu-delay", "1e10"],
        ["--rate", "1e-300"],
        ["--timeout", "1e300"],
    ],
)
def test_values_that_would_overflow_timers_are_refused(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path, args: list[str]
) -> None:
    r = cli("submit", str(one_job(tmp_path, server)), *args)
    assert r.exit_code == 2
    assert f"{args[0]}:" in r.stderr and "is not valid" in r.stderr
    assert jobs_in(env) == []


@pytest.mark.parametrize(
    "args",
    [["list", "--since", "1000000d"], ["prune", "--older-than", "99999999999d"]],
)
def test_huge_ages_are_a_usage_error_not_a_crash(cli: Cli, args: list[str]) -> None:
    r = cli(*args)
    assert r.exit_code == 2
    assert "more than 100 years" in r.stderr
