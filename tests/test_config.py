"""Every run option from the flag, RETAILPULSE_<NAME>, a TOML config file or the default;
a bad value names its source; inbox/resume/retry take the same options as submit."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    Cli,
    dropped_earlier,
    jobs_in,
    one_image_job,
    results_of,
    run_cli,
    start_cli,
    visit,
    write_job,
)
from .imageserver import ImageServer


def settings_rows(cli: Cli, *args: str) -> dict[str, dict[str, Any]]:
    r = cli("config", "--json", *args)
    assert r.exit_code == 0, r.stderr
    return {row["option"]: row for row in json.loads(r.stdout)["settings"]}


def meta_settings(env: dict[str, str], job_id: str) -> dict[str, Any]:
    meta = json.loads((Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "meta.json").read_text())
    settings: dict[str, Any] = meta["settings"]
    return settings


def test_flag_beats_env_beats_file_beats_default(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "nightly.toml"
    conf.write_text('rate = 2.5\nworkers = 8\ntimeout = 30\ngpu-delay = "0.2:0.3"\n')
    monkeypatch.setenv("RETAILPULSE_WORKERS", "16")
    monkeypatch.setenv("RETAILPULSE_TIMEOUT", "12")
    rows = settings_rows(cli, "--config", str(conf), "--timeout", "5")
    assert rows["timeout"]["value"] == 5.0 and rows["timeout"]["source"] == "flag"
    assert rows["workers"]["value"] == 16
    assert rows["workers"]["source"] == "env RETAILPULSE_WORKERS"
    assert rows["rate"]["value"] == 2.5 and rows["rate"]["source"] == f"config {conf}"
    assert rows["gpu-delay"]["value"] == [0.2, 0.3]
    assert rows["retries"]["value"] == 3 and rows["retries"]["source"] == "default"


def test_config_file_from_variable_and_from_the_user_config_folder(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "xdg-config" / "retailpulse" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("per-host = 3\n")
    assert settings_rows(cli)["per-host"]["source"] == f"config {user}"
    other = tmp_path / "other.toml"
    other.write_text("per-host = 4\n")
    monkeypatch.setenv("RETAILPULSE_CONFIG", str(other))
    assert settings_rows(cli)["per-host"]["value"] == 4  # the variable wins over the folder


def test_text_output_names_the_file_and_sources(cli: Cli, tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("rate = 1.5\nno-local-files = true\n")
    r = cli("config", "--config", str(conf))
    assert r.exit_code == 0
    assert f"config file: {conf}" in r.stdout
    rate = next(line for line in r.stdout.splitlines() if line.startswith("rate "))
    assert "1.5" in rate and f"config {conf}" in rate
    assert "no-local-files" in r.stdout


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("RETAILPULSE_WORKERS", "0", "RETAILPULSE_WORKERS: '0' is not valid for --workers"),
        ("RETAILPULSE_RATE", "fast", "RETAILPULSE_RATE: 'fast' is not valid for --rate"),
        ("RETAILPULSE_GPU_DELAY", "0.4:0.1", "RETAILPULSE_GPU_DELAY: '0.4:0.1'"),
        ("RETAILPULSE_NO_LOCAL_FILES", "maybe", "RETAILPULSE_NO_LOCAL_FILES: 'maybe'"),
    ],
)
def test_bad_variable_names_itself_and_exits_2(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", "x.png")])
    monkeypatch.setenv(var, value)
    r = cli("submit", str(job))
    assert r.exit_code == 2
    assert expected in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('rate = "fast"\n', "key 'rate': 'fast' is not valid for --rate"),
        ("workers = 2.5\n", "key 'workers': 2.5 is not valid for --workers"),
        ("rat = 2\n", "unknown key 'rat'"),
        ("rate = \n", "not valid TOML"),
    ],
)
def test_bad_config_file_names_file_and_key(
    cli: Cli, tmp_path: Path, text: str, expected: str
) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    r = cli("inbox", str(tmp_path), "--config", str(conf))
    assert r.exit_code == 2
    assert f"{conf}: {expected}" in r.stderr


def test_missing_config_file_given_explicitly_is_an_error(cli: Cli, tmp_path: Path) -> None:
    r = cli("config", "--config", str(tmp_path / "nope.toml"))
    assert r.exit_code == 2
    assert f"{tmp_path / 'nope.toml'}: config file not found" in r.stderr


def test_inbox_takes_the_politeness_and_limit_options_of_submit(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "inbox"
    box.mkdir()
    write_job(box / "a.json", [visit("S00339218", server.url("/img/301x20.png"))])
    dropped_earlier(box)
    r = cli(
        "inbox", str(box), "--gpu-delay", "0", "--rate", "7", "--per-host", "3",
        "--read-timeout", "4", "--max-bytes", "900000", "--max-pixels", "5000000",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    job_id = r.stdout.split("\t")[1]
    s = meta_settings(env, job_id)
    assert (s["rate"], s["per_host"], s["read_timeout"]) == (7.0, 3, 4.0)
    assert (s["max_bytes"], s["max_pixels"]) == (900000, 5000000)
    assert results_of(env, job_id)[0]["perimeter"] == 2 * (301 + 20)


def test_environment_and_config_reach_a_submitted_job(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    conf = tmp_path / "c.toml"
    conf.write_text("retries = 1\nmax-pixels = 4000000\n")
    monkeypatch.setenv("RETAILPULSE_CONFIG", str(conf))
    monkeypatch.setenv("RETAILPULSE_RATE", "9")
    monkeypatch.setenv("RETAILPULSE_GPU_DELAY", "0")
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/302x20.png"))])
    r = cli("submit", str(job))
    assert r.exit_code == 0, r.stderr
    s = meta_settings(env, r.stdout.strip())
    assert (s["retries"], s["max_pixels"], s["rate"], s["gpu_delay"]) == (1, 4000000, 9.0, [0, 0])


def test_resume_takes_the_config_file_over_the_job_settings(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    urls = [server.url(f"/img/{310 + i}x20.png") for i in range(4)]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    proc = start_cli("submit", str(job), "--gpu-delay", "30", "--workers", "1", env=env)
    jobs = Path(env["RETAILPULSE_JOBS_DIR"])
    deadline = time.monotonic() + 20
    while not (jobs_in(env) and (jobs / jobs_in(env)[0] / "status.json").exists()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    job_id = jobs_in(env)[0]
    assert meta_settings(env, job_id)["gpu_delay"] == [30, 30]
    conf = tmp_path / "c.toml"
    conf.write_text("gpu-delay = 0\n")
    t0 = time.monotonic()
    r = run_cli("resume", job_id, env={**env, "RETAILPULSE_CONFIG": str(conf)})
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 20  # four images at the stored 30 s each would take 120 s
    assert sorted(rec["perimeter"] for rec in results_of(env, job_id)) == [
        2 * (310 + i + 20) for i in range(4)
    ]


def test_status_json_always_has_an_error_list(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/320x20.png"))])
    job_id = cli("submit", str(job), "--gpu-delay", "0").stdout.strip()
    doc = json.loads(cli("status", job_id, "--json").stdout)
    assert doc["status"] == "completed" and doc["error"] == []


def test_status_wait_timeout_json_prints_the_current_status(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", server.url("/img/321x20.png"))])
    job_id = run_cli("submit", "-d", str(job), "--gpu-delay", "3", env=env).stdout.strip()
    r = run_cli("status", "--wait", "--timeout", "0.3", "--json", job_id, env=env)
    assert r.returncode == 8
    doc = json.loads(r.stdout)
    assert doc["job_id"] == job_id and doc["status"] == "ongoing"
    assert "still ongoing after 0.3s" in r.stderr
    assert run_cli("status", "--wait", job_id, env=env).returncode == 0


def test_submit_json_lists_rejected_files_in_input_order(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    a = write_job(tmp_path / "a.json", [visit("S00339218", server.url("/img/322x20.png"))])
    bad = tmp_path / "bad.json"
    bad.write_text('{"count": 1, "visits": [{"store_id": "S00339218"}]}')
    b = write_job(tmp_path / "b.json", [visit("S00339218", server.url("/img/323x20.png"))])
    r = cli("submit", str(a), str(bad), str(b), "--gpu-delay", "0", "--json")
    assert r.exit_code == 3
    rows = json.loads(r.stdout)
    assert [row["status"] for row in rows] == ["completed", "rejected", "completed"]
    assert rows[1]["file"] == str(bad)
    assert any(p["path"] == "$.visits[0].image_url" for p in rows[1]["problems"])
    only_bad = cli("submit", str(bad), str(bad), "--json")
    assert only_bad.exit_code == 3
    assert [row["file"] for row in json.loads(only_bad.stdout)] == [str(bad), str(bad)]


@pytest.mark.parametrize("fmt", ["csv", "CSV", "jsonl", "JSONL"])
def test_results_carry_job_id_and_csv_has_every_jsonl_field(
    cli: Cli, server: ImageServer, env: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    import csv
    import io

    job = write_job(
        tmp_path / "j.json",
        [visit("S00339218", server.url("/img/324x20.png"), server.url("/status/404"))],
    )
    job_id = cli("submit", str(job), "--gpu-delay", "0").stdout.strip()
    jsonl = [json.loads(line) for line in cli("results", job_id).stdout.splitlines()]
    assert {rec["job_id"] for rec in jsonl} == {job_id}
    r = cli("results", job_id, "--format", fmt)
    assert r.exit_code == 0, r.stderr
    if fmt.lower() == "csv":
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        keys = set().union(*(rec.keys() for rec in jsonl))
        assert keys <= set(rows[0].keys()), keys - set(rows[0].keys())
        assert {row["job_id"] for row in rows} == {job_id}
        assert {row["visit"] for row in rows} == {"0"}
        assert all(row["elapsed_ms"] != "" for row in rows)


def test_help_at_80_columns_shows_whole_option_names_and_ends_with_examples(
    env: dict[str, str],
) -> None:
    from retailpulse_cli.cli.app import app

    names = [c.name or c.callback.__name__ for c in app.registered_commands if not c.hidden]  # type: ignore[union-attr]
    assert "config" in names
    for name in names:
        r = run_cli(name.rstrip("_"), "--help", env={**env, "COLUMNS": "80", "TERM": "dumb"})
        assert r.returncode == 0, (name, r.stderr)
        lines = [line for line in r.stdout.splitlines() if line.strip()]
        assert max(len(line) for line in lines) <= 80
        tail = "\n".join(lines[-5:])
        assert "Examples" in tail and "retailpulse " in lines[-1], (name, tail)
        cmd = next(c for c in app.registered_commands if (c.name or c.callback.__name__) == name)  # type: ignore[union-attr]
        import typer.main

        click_cmd = typer.main.get_command_from_info(
            cmd, pretty_exceptions_short=True, rich_markup_mode="markdown"
        )
        for param in click_cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in r.stdout, (name, opt)


def test_config_file_reaches_every_command_that_reads_jobs(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in env.items() if k != "RETAILPULSE_JOBS_DIR"}  # the file says it
    jobs = tmp_path / "elsewhere"
    conf = tmp_path / "c.toml"
    conf.write_text(f'jobs-dir = "{jobs}"\ngpu-delay = 0\n')
    r = run_cli("submit", str(one_image_job(tmp_path, server)), "--config", str(conf), env=env)
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
        ["resume", job_id],  # issue 16: resume looked for the job without the file's jobs-dir
    ):
        r = run_cli(*args, "--config", str(conf), env=env)
        assert r.returncode == 0, (args, r.stderr)
        if args[0] in ("status", "results", "list", "report"):
            assert job_id in r.stdout, args


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
    r = cli("submit", str(one_image_job(tmp_path, server)), *args)
    assert r.exit_code == 2
    assert f"{args[0]}:" in r.stderr and "is not valid" in r.stderr
    assert jobs_in(env) == []
