"""The store master (issue 2, "The store master"): default lookup, overrides, loader quirks,
errors with their own exit code, and unknown store ids inside a job."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from retailpulse_cli.storage import store_master

from .conftest import KNOWN, Cli, jobs_in, results_of, run_cli, unstamped, visit, write_job
from .imageserver import ImageServer

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "store_master.csv"
FIXTURES = Path(__file__).parent / "fixtures" / "stores"
VARIANT = FIXTURES / "rp_ids_variant.csv"  # the real second edition: RP00001..RP04944
STORE_MASTER_EXIT = 4
JOB_FAILED_EXIT = 1

FIRST_200 = {f"RP{n:05d}" for n in range(1, 201)}


def shipped_ids() -> list[str]:
    with SHIPPED.open(newline="", encoding="utf-8") as fh:
        return [row["StoreID"] for row in csv.DictReader(fh)]


# -- the shipped store master --------------------------------------------------------------


def test_shipped_store_master_is_the_real_one() -> None:
    ids = shipped_ids()
    assert len(ids) == 4944
    assert len(set(ids)) == 4944
    assert {"S00339218", "S01408764"} <= set(ids)
    assert SHIPPED.read_text(encoding="utf-8").splitlines()[0] == "AreaCode,StoreName,StoreID"


def test_loader_reads_every_shipped_id() -> None:
    master = store_master.load(SHIPPED)
    assert len(master) == 4944
    assert master.ids == frozenset(shipped_ids())


def test_default_store_master_found_from_another_directory(
    env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    """A real subprocess started in an unrelated folder, no override: the shipped file."""
    last = shipped_ids()[-1]
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    job = write_job(
        elsewhere / "job.json",
        [
            visit("S00339218", server.url("/img/61x43.png")),
            visit(last, server.url("/img/61x43.jpg")),
        ],
    )
    proc = run_cli("submit", "job.json", "--gpu-delay", "0", env=env, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip()
    assert jobs_in(env) == [job_id]
    records = results_of(env, job_id)
    assert sorted(r["store_id"] for r in records) == sorted(["S00339218", last])
    assert all(r["status"] == "ok" and r["perimeter"] == 208 for r in records)
    assert job.exists()


def test_env_var_overrides_default(
    env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    """With the second edition as store master, the original ids are unknown: job fails."""
    job = write_job(
        tmp_path / "job.json",
        [
            visit("S00339218", server.url("/img/62x44.png")),
            visit("RP00001", server.url("/img/62x44.jpg")),
        ],
    )
    proc = run_cli(
        "submit",
        str(job),
        "--gpu-delay",
        "0",
        env={**env, "RETAILPULSE_STORE_MASTER": str(VARIANT)},
        cwd=tmp_path,
    )
    assert proc.returncode == JOB_FAILED_EXIT, proc.stderr
    records = {r["store_id"]: r for r in results_of(env, proc.stdout.strip())}
    assert records["RP00001"]["status"] == "ok"
    assert records["RP00001"]["perimeter"] == 212
    assert records["S00339218"]["status"] == "failed"


def test_option_overrides_default(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.json", [visit("RP04944", server.url("/img/63x45.png"))])
    result = cli("submit", str(job), "--gpu-delay", "0", "--store-master", str(VARIANT))
    assert result.exit_code == 0, result.stderr
    [rec] = results_of(env, result.stdout.strip())
    assert (rec["store_id"], rec["status"], rec["perimeter"]) == ("RP04944", "ok", 216)


def test_option_wins_over_env_var(
    cli: Cli,
    env: dict[str, str],
    server: ImageServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETAILPULSE_STORE_MASTER", str(tmp_path / "does-not-exist.csv"))
    job = write_job(tmp_path / "job.json", [visit("S00339218", server.url("/img/64x46.png"))])
    result = cli("submit", str(job), "--gpu-delay", "0", "--store-master", str(SHIPPED))
    assert result.exit_code == 0, result.stderr


def test_env_var_is_used_by_the_in_process_cli(
    cli: Cli,
    env: dict[str, str],
    server: ImageServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETAILPULSE_STORE_MASTER", str(FIXTURES / "crlf.csv"))
    job = write_job(tmp_path / "job.json", [visit("RP00200", server.url("/img/65x47.png"))])
    result = cli("submit", str(job), "--gpu-delay", "0")
    assert result.exit_code == 0, result.stderr


# -- the loader's accepted spellings ---------------------------------------------------------


def test_second_edition_loads_whole() -> None:
    """The real later edition: no trailing newline, RP ids; every id read, none lost."""
    master = store_master.load(VARIANT)
    assert len(master) == 4944
    assert master.ids == {f"RP{n:05d}" for n in range(1, 4945)}


@pytest.mark.parametrize(
    "name",
    ["lowercase-header.csv", "crlf.csv", "bom.csv", "stray-spaces.csv", "all-quirks.csv"],
)
def test_loader_accepts_header_spellings_and_quirks(name: str) -> None:
    master = store_master.load(FIXTURES / name)
    assert master.ids == FIRST_200
    assert "RP00001" in master
    assert " RP00001" not in master.ids


@pytest.mark.parametrize(
    "name",
    ["lowercase-header.csv", "crlf.csv", "bom.csv", "stray-spaces.csv", "all-quirks.csv"],
)
def test_quirky_store_master_works_end_to_end(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path, name: str
) -> None:
    job = write_job(
        tmp_path / "job.json",
        [
            visit("RP00001", server.url("/img/66x48.png")),
            visit("RP00200", server.url("/img/66x48.gif")),
        ],
    )
    result = cli("submit", str(job), "--gpu-delay", "0", "--store-master", str(FIXTURES / name))
    assert result.exit_code == 0, result.stderr
    records = results_of(env, result.stdout.strip())
    assert sorted(r["store_id"] for r in records) == ["RP00001", "RP00200"]
    assert all(r["status"] == "ok" and r["perimeter"] == 228 for r in records)


# -- a store master that cannot be used: exit 4, one line naming the path, no job ----------


def assert_store_master_error(result: Any, env: dict[str, str], path: Path, why: str) -> None:
    output = result.stdout + result.stderr
    assert result.exit_code == STORE_MASTER_EXIT, output
    assert "Traceback" not in output
    assert result.stdout == ""
    errors = [
        ln for ln in unstamped(result.stderr).splitlines() if ln.startswith("retailpulse: error:")
    ]
    assert len(errors) == 1, result.stderr
    assert str(path) in errors[0]
    assert why.lower() in errors[0].lower(), errors[0]
    assert jobs_in(env) == []


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("missing.csv", "not found"),
        ("no-store-id-column.csv", "column"),
        ("empty.csv", "empty"),
        ("header-only.csv", "no store ids"),
    ],
)
def test_bad_store_master_option(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path, name: str, why: str
) -> None:
    path = FIXTURES / name
    url_path = "/img/67x49.png"
    before = server.hits[url_path]
    job = write_job(tmp_path / "job.json", [visit("RP00001", server.url(url_path))])
    result = cli("submit", str(job), "--gpu-delay", "0", "--store-master", str(path))
    assert_store_master_error(result, env, path, why)
    assert server.hits[url_path] == before


def test_store_master_is_a_directory(cli: Cli, env: dict[str, str], tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.json", [visit("RP00001", "a.png")])
    result = cli("submit", str(job), "--gpu-delay", "0", "--store-master", str(FIXTURES))
    assert_store_master_error(result, env, FIXTURES, "directory")


def test_bad_store_master_from_env_var_in_subprocess(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "stores.csv"
    job = write_job(tmp_path / "job.json", [visit("S00339218", "a.png")])
    proc = run_cli(
        "submit",
        str(job),
        "--gpu-delay",
        "0",
        env={**env, "RETAILPULSE_STORE_MASTER": str(missing)},
        cwd=tmp_path,
    )
    assert proc.returncode == STORE_MASTER_EXIT, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [
        ln for ln in unstamped(proc.stderr).splitlines() if ln.startswith("retailpulse: error:")
    ]
    assert len(errors) == 1 and str(missing) in errors[0], proc.stderr
    assert proc.stdout == ""
    assert jobs_in(env) == []


# -- unknown store ids inside a job ---------------------------------------------------------


def test_unknown_store_fails_job_without_download_and_others_go_on(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    unknown = f"S-NOPE-{uuid.uuid4().hex[:6]}"
    unknown_paths = ["/img/101x99.png", "/img/101x98.jpg"]
    known_paths = ["/img/103x97.png", "/img/103x96.webp"]
    before = {p: server.hits[p] for p in unknown_paths + known_paths}
    job = write_job(
        tmp_path / "job.json",
        [
            visit(KNOWN[0], server.url(known_paths[0])),
            visit(unknown, *(server.url(p) for p in unknown_paths)),
            visit(KNOWN[1], server.url(known_paths[1])),
        ],
    )
    result = cli("submit", str(job), "--gpu-delay", "0", "--retries", "0")
    assert result.exit_code == JOB_FAILED_EXIT, result.stderr
    job_id = result.stdout.strip()

    # the unknown store's images were never requested; the others were, once each
    for p in unknown_paths:
        assert server.hits[p] == before[p], p
    for p in known_paths:
        assert server.hits[p] == before[p] + 1, p

    records = results_of(env, job_id)
    assert len(records) == 4
    ok = {r["store_id"]: r for r in records if r["status"] == "ok"}
    assert set(ok) == {KNOWN[0], KNOWN[1]}
    assert ok[KNOWN[0]]["perimeter"] == 2 * (103 + 97)
    assert ok[KNOWN[1]]["perimeter"] == 2 * (103 + 96)
    failed = [r for r in records if r["status"] != "ok"]
    assert [r["store_id"] for r in failed] == [unknown, unknown]
    assert all("width" not in r and r.get("error") for r in failed)

    status = cli("status", job_id, "--json")
    assert status.exit_code == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["job_id"] == job_id
    assert doc["status"] == "failed"
    entries = [e for e in doc["error"] if e["store_id"] == unknown]
    assert len(entries) == 1
    assert isinstance(entries[0]["error"], str) and entries[0]["error"]
    assert {e["store_id"] for e in doc["error"]} == {unknown}


def test_only_unknown_stores(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    before = server.hits["/img/105x95.png"]
    job = write_job(
        tmp_path / "job.json",
        [visit("X1", server.url("/img/105x95.png")), visit("X2", server.url("/img/105x95.png"))],
    )
    result = cli("submit", str(job), "--gpu-delay", "0", "--json")
    assert result.exit_code == JOB_FAILED_EXIT, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "failed"
    assert sorted(e["store_id"] for e in doc["error"]) == ["X1", "X2"]
    assert server.hits["/img/105x95.png"] == before
    assert len(results_of(env, doc["job_id"])) == 2
