"""--results-db: the rows equal the job directory's records, on SQLite and on a real
PostgreSQL server; kill -9 then resume levels them; export is idempotent; report --from
equals the directory report; a bad database is refused before any job is made."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import dropped_earlier, jobs_in, run_cli, start_cli, unstamped
from .imageserver import ImageServer
from .pgserver import PASSWORD, PgServer
from .results_db_helpers import (
    assert_job_row_follows_status,
    assert_rows_equal_records,
    job_dir,
    mixed_job,
    new_db,
    query,
    wait_for_records,
    write,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    pg = None
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg_server")
        # resume and retry reuse the job's URL, kept without its password: the standard
        # PGPASSWORD supplies it, as it would for psql
        request.getfixturevalue("env")["PGPASSWORD"] = PASSWORD
    yield new_db(request.param, tmp_path, pg)


def submit(env: dict[str, str], job: Path, url: str, *extra: str) -> Any:
    return run_cli("submit", str(job), "--results-db", url, "--gpu-delay", "0", *extra, env=env)


def test_rows_equal_results_for_ok_failed_and_unknown_stores(
    env: dict[str, str], server: ImageServer, tmp_path: Path, db_url: str
) -> None:
    job = write(tmp_path / "job.json", mixed_job(server))
    r = submit(env, job, db_url)
    assert r.returncode == 1, r.stderr  # failed: a 404, a truncated image, an unknown store
    (job_id,) = jobs_in(env)
    assert assert_rows_equal_records(db_url, env, job_id) == 9
    assert_job_row_follows_status(db_url, env, job_id)
    codes = query(db_url, "SELECT error_code FROM results WHERE status = 'failed'")
    assert sorted(c["error_code"] for c in codes) == [
        "http_404",
        "store_not_found",
        "truncated_image",
    ]
    hosts = query(db_url, "SELECT DISTINCT host FROM results")
    assert [h["host"] for h in hosts] == [f"127.0.0.1:{server.port}"]


def test_a_local_cluster_job_writes_every_record_once(
    env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    """--cluster local:2 with --results-db: the shards' records reach results.jsonl through
    the driver, and the database follows that file exactly as without a cluster."""
    doc = mixed_job(server, n_ok=40)
    job = write(tmp_path / "job.json", doc)
    url = new_db("sqlite", tmp_path, None)
    r = submit(env, job, url, "--cluster", "local:2", "--shard-size", "8")
    assert r.returncode == 1, r.stderr  # the 404, the truncated image, the unknown store
    (job_id,) = jobs_in(env)
    assert assert_rows_equal_records(url, env, job_id) == 43
    assert_job_row_follows_status(url, env, job_id)


def test_retry_replaces_the_failed_rows(
    env: dict[str, str], server: ImageServer, tmp_path: Path, db_url: str
) -> None:
    key = f"/flaky/retry-{tmp_path.name}"
    flaky = server.url(f"{key}?fail=9&code=404")
    doc = {"count": 1, "visits": [{"store_id": "S00339218", "image_url": [flaky, server.url(
        "/img/20x20.png")], "visit_time": "2026-11-28T10:15:00Z"}]}  # fmt: skip
    job = write(tmp_path / "job.json", doc)
    assert submit(env, job, db_url, "--retries", "0").returncode == 1
    (job_id,) = jobs_in(env)
    server.hits[key] = 100  # from now on it answers with the image
    r = run_cli("retry", job_id, env=env)  # the database: the job's own settings
    assert r.returncode == 0, r.stderr
    assert_rows_equal_records(db_url, env, job_id)
    assert_job_row_follows_status(db_url, env, job_id)
    (row,) = query(db_url, "SELECT status FROM jobs WHERE job_id = :j", j=job_id)
    assert row["status"] == "completed"


def test_kill_9_then_resume_levels_the_database(
    env: dict[str, str], server: ImageServer, tmp_path: Path, db_url: str
) -> None:
    urls = [server.url(f"/img/{30 + i % 50}x{20 + i % 7}.png?n={i}") for i in range(300)]
    doc = {"count": 1, "visits": [{"store_id": "S00339218", "image_url": urls,
                                   "visit_time": "2026-11-28T10:15:00Z"}]}  # fmt: skip
    job = write(tmp_path / "job.json", doc)
    proc = start_cli("submit", str(job), "--results-db", db_url, "--gpu-delay", "0.02:0.05",
                     "--workers", "8", "--seed", "3", env=env)  # fmt: skip
    job_id = wait_for_records(env, 120)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    on_disk = {json.loads(x)["index"] for x in
               (job_dir(env, job_id) / "results.jsonl").read_text().splitlines()[1:]}  # fmt: skip
    in_db = {r["image_index"] for r in query(db_url, "SELECT image_index FROM results")}
    assert in_db <= on_disk, "a row is never ahead of the job directory"
    assert len(on_disk) < 300
    r = run_cli("resume", job_id, "--gpu-delay", "0", env=env)
    assert r.returncode == 0, r.stderr
    assert assert_rows_equal_records(db_url, env, job_id) == 300
    assert_job_row_follows_status(db_url, env, job_id)
    dupes = query(db_url, "SELECT image_index FROM results GROUP BY job_id, image_index "
                          "HAVING count(*) > 1")  # fmt: skip
    assert dupes == []
    # two runs (the killed submit, the resume): the report's runs and duration agree
    from_dir = run_cli("report", "--json", job_id, env=env)
    from_db = run_cli("report", "--json", "--from", db_url, job_id, env=env)
    assert json.loads(from_db.stdout) == json.loads(from_dir.stdout)
    assert json.loads(from_db.stdout)["jobs"][0]["runs"] == 2


def test_export_writes_existing_jobs_and_twice_changes_nothing(
    env: dict[str, str], server: ImageServer, tmp_path: Path, db_url: str
) -> None:
    job = write(tmp_path / "job.json", mixed_job(server))
    for _ in range(2):
        assert run_cli("submit", str(job), "--gpu-delay", "0", env=env).returncode == 1
    first, second = jobs_in(env)
    r = run_cli("export", "--to", db_url, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{first}\t9\twritten", f"{second}\t9\twritten"]
    for job_id in (first, second):
        assert_rows_equal_records(db_url, env, job_id)
        assert_job_row_follows_status(db_url, env, job_id)
    before = {t: query(db_url, f"SELECT * FROM {t}") for t in ("jobs", "results", "store_errors")}
    again = run_cli("export", "--to", db_url, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"{first}\t0\tlevel", f"{second}\t0\tlevel"]
    after = {t: query(db_url, f"SELECT * FROM {t}") for t in ("jobs", "results", "store_errors")}
    assert after == before
    one = run_cli("export", "--to", db_url, second, "--json", env=env)
    assert json.loads(one.stdout) == [{"job_id": second, "rows": 0, "level": True}]


def test_report_from_the_database_equals_the_directory_report(
    env: dict[str, str], server: ImageServer, tmp_path: Path, db_url: str
) -> None:
    job = write(tmp_path / "job.json", mixed_job(server))
    assert submit(env, job, db_url).returncode == 1
    assert submit(env, job, db_url, "--no-local-files").returncode == 1
    for args in ([], ["--since", "1d"], jobs_in(env)[:1]):
        from_dir = run_cli("report", "--json", *args, env=env)
        from_db = run_cli("report", "--json", "--from", db_url, *args, env=env)
        assert from_db.returncode == 0, from_db.stderr
        assert json.loads(from_db.stdout) == json.loads(from_dir.stdout)
    table = run_cli("report", "--from", db_url, "--since", "1d", env=env)
    assert table.stdout == run_cli("report", "--since", "1d", env=env).stdout


def test_unreachable_database_is_refused_before_any_job_is_made(
    env: dict[str, str], tmp_path: Path, pg_server: PgServer
) -> None:
    job = Path("examples/jobs/offline.json").resolve()
    closed = pg_server.url("nope").replace(f":{pg_server.port}/", ":9/")
    for url, why in (
        (f"sqlite:///{tmp_path}/no/such/folder/pulse.db", "unable to open database file"),
        (closed, "Connection refused"),
    ):
        r = run_cli("submit", str(job), "--results-db", url, env=env)
        assert r.returncode == 7, r.stderr
        lines = unstamped(r.stderr).splitlines()
        assert lines[0].startswith("retailpulse: error: cannot use results database ")
        assert why in lines[0] and len(lines) == 2  # the line and its hint
        assert jobs_in(env) == []
    r = run_cli("submit", str(job), "--results-db", "mysql://db/x", env=env)
    assert r.returncode == 2 and "mysql is not supported" in r.stderr


def test_a_newer_schema_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "pulse.db"
    url = f"sqlite:///{path}"
    assert (
        run_cli("submit", "examples/jobs/offline.json", "--results-db", url, env=env).returncode
        == 0
    )
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, '2030-01-01 00:00:00')")
    r = run_cli("submit", "examples/jobs/offline.json", "--results-db", url, env=env)
    assert r.returncode == 7
    assert unstamped(r.stderr).splitlines()[0] == (
        f"retailpulse: error: results database {url} has schema version 99; "
        "this retailpulse knows up to 2"
    )
    assert len(jobs_in(env)) == 1


def test_options_from_variable_and_config_file(
    env: dict[str, str], tmp_path: Path, pg_server: PgServer
) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    r = run_cli("submit", "examples/jobs/offline.json", env={**env, "RETAILPULSE_RESULTS_DB": url})
    assert r.returncode == 0, r.stderr
    assert query(url, "SELECT count(*) AS n FROM results")[0]["n"] == 6
    config = tmp_path / "config.toml"
    config.write_text('results-db = "sqlite:///relative.db"\n')
    r = run_cli("submit", str(Path("examples/jobs/offline.json").resolve()), "--config",
                str(config), env=env, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (
        query(f"sqlite:///{tmp_path / 'relative.db'}", "SELECT count(*) AS n FROM jobs")[0]["n"]
        == 1
    )
    shown = run_cli("config", "--results-db", pg_server.url("x"), env=env)
    row = [line.split() for line in shown.stdout.splitlines() if line.startswith("results-db")]
    assert row == [["results-db", f"postgresql://***@127.0.0.1:{pg_server.port}/x", "flag"]]
    assert PASSWORD not in shown.stdout


def test_inbox_writes_every_job_of_the_night(
    env: dict[str, str], server: ImageServer, tmp_path: Path, db_url: str
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("a", "b", "c"):
        write(inbox / f"{name}.json", mixed_job(server))
    dropped_earlier(inbox)
    r = run_cli("inbox", str(inbox), "--results-db", db_url, "--gpu-delay", "0", env=env)
    assert r.returncode == 1, r.stderr  # the jobs ran side by side, each with its own writer
    assert len(jobs_in(env)) == 3
    for job_id in jobs_in(env):
        assert assert_rows_equal_records(db_url, env, job_id) == 9
        assert_job_row_follows_status(db_url, env, job_id)


def test_export_of_a_results_file_with_a_record_twice(
    env: dict[str, str], server: ImageServer, tmp_path: Path, db_url: str
) -> None:
    job = write(tmp_path / "job.json", mixed_job(server))
    assert run_cli("submit", str(job), "--gpu-delay", "0", env=env).returncode == 1
    (job_id,) = jobs_in(env)
    results = job_dir(env, job_id) / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join([*lines, lines[1]]))  # a record written twice (a hand edit)
    r = run_cli("export", "--to", db_url, env=env)
    assert r.returncode == 0, r.stderr
    assert query(db_url, "SELECT count(*) AS n FROM results")[0]["n"] == 9
