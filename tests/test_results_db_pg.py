"""--results-db on a real PostgreSQL server: the server stopped mid-run and started again,
passwords kept out of every output and job file, the postgres extra missing."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import jobs_in, run_cli, start_cli, unstamped
from .imageserver import ImageServer
from .pgserver import PASSWORD, PgServer
from .results_db_helpers import (
    assert_job_row_follows_status,
    assert_rows_equal_records,
    job_dir,
    mixed_job,
    new_db,
    wait_for_records,
    write,
)


def long_job(server: ImageServer, tmp_path: Path, n: int) -> Path:
    urls = [
        server.url(f"/img/{30 + i % 40}x{20 + i % 9}.png?k={tmp_path.name}{i}") for i in range(n)
    ]
    doc = {"count": 1, "visits": [{"store_id": "S00339218", "image_url": urls,
                                   "visit_time": "2026-11-28T10:15:00Z"}]}  # fmt: skip
    return write(tmp_path / "job.json", doc)


SLOW = ("--gpu-delay", "0.02:0.05", "--workers", "4", "--seed", "5")


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=180)
    return proc.returncode, unstamped(err)


def test_database_stopped_mid_run_then_back(
    env: dict[str, str], server: ImageServer, tmp_path: Path, pg_server: PgServer
) -> None:
    url = new_db("postgresql", tmp_path, pg_server)
    job = long_job(server, tmp_path, 1000)
    proc = start_cli("submit", str(job), "--results-db", url, *SLOW, env=env)
    wait_for_records(env, 100)
    pg_server.stop()
    try:
        time.sleep(2.0)  # records keep going to the job directory meanwhile
        assert proc.poll() is None, "the job goes on without its database"
    finally:
        pg_server.start()
    code, err = finish(proc)
    assert code == 0, err
    gone = [line for line in err.splitlines() if "is unreachable" in line]
    back = [line for line in err.splitlines() if "is back; catching up" in line]
    assert len(gone) == 1 and len(back) <= 1, err
    assert gone[0].startswith(
        f"retailpulse: results database postgresql://***@127.0.0.1:{pg_server.port}/"
    )
    assert "records keep going to the job directory" in gone[0]
    (job_id,) = jobs_in(env)
    assert assert_rows_equal_records(url, env, job_id) == 1000
    assert_job_row_follows_status(url, env, job_id)


def test_database_away_at_the_end_is_levelled_by_export(
    env: dict[str, str], server: ImageServer, tmp_path: Path, pg_server: PgServer
) -> None:
    url = new_db("postgresql", tmp_path, pg_server)
    job = long_job(server, tmp_path, 300)
    proc = start_cli("submit", str(job), "--results-db", url, *SLOW, env=env)
    wait_for_records(env, 50)
    pg_server.stop()
    try:
        code, err = finish(proc)
    finally:
        pg_server.start()
    assert code == 0, err  # the job's outcome is the job's, not the database's
    (job_id,) = jobs_in(env)
    assert f"job {job_id}: results database postgresql://***@" in err
    assert f"`retailpulse export --to URL {job_id}` writes the rest" in err
    r = run_cli("export", "--to", url, job_id, env=env)
    assert r.returncode == 0, r.stderr
    assert assert_rows_equal_records(url, env, job_id) == 300
    assert_job_row_follows_status(url, env, job_id)


def test_passwords_never_in_output_or_job_files(
    env: dict[str, str], server: ImageServer, tmp_path: Path, pg_server: PgServer
) -> None:
    url = new_db("postgresql", tmp_path, pg_server)
    job = write(tmp_path / "job.json", mixed_job(server))
    outputs = [
        run_cli("submit", str(job), "--results-db", url, "--gpu-delay", "0", env=env),
        run_cli("submit", str(job), "-d", "--json", "--results-db", url, env=env),
        run_cli("config", "--results-db", url, "--json", env=env),
        run_cli("report", "--from", url, "--since", "1d", env=env),
        run_cli("export", "--to", url, env=env),
        run_cli("submit", str(job), "--results-db", url.replace(PASSWORD, "wrong"), env=env),
        run_cli("submit", str(job), "--results-db", url + "-missing", env=env),
    ]
    assert "password authentication failed" in outputs[-2].stderr
    assert 'database "t_' in outputs[-1].stderr and outputs[-1].returncode == 7
    for first in jobs_in(env):
        run_cli("status", "--wait", first, "--timeout", "60", env=env)
    for r in outputs:
        assert PASSWORD not in r.stdout + r.stderr
    files = [p for p in Path(env["RETAILPULSE_JOBS_DIR"]).rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        assert PASSWORD.encode() not in path.read_bytes(), path
    meta = json.loads((job_dir(env, jobs_in(env)[0]) / "meta.json").read_text())
    assert meta["settings"]["results_db"] == url.replace(f":{PASSWORD}@", "@")


def test_missing_postgres_extra_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    # an installation without psycopg: a package of that name that cannot be imported
    fake = tmp_path / "site" / "psycopg"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'psycopg'\")\n")
    without = {**env, "PYTHONPATH": str(fake.parent)}
    url = "postgresql://rp@127.0.0.1:5/db"
    r = run_cli("submit", "examples/jobs/offline.json", "--results-db", url, env=without)
    assert r.returncode == 2
    assert unstamped(r.stderr).splitlines() == [
        "retailpulse: error: --results-db postgresql://***@127.0.0.1:5/db needs psycopg 3, "
        "which is not installed (No module named 'psycopg')",
        "retailpulse: hint: pip install 'retailpulse[postgres]'",
    ]
    assert jobs_in(env) == []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_schema_migrates_from_the_previous_version(
    env: dict[str, str],
    server: ImageServer,
    tmp_path: Path,
    kind: str,
    request: pytest.FixtureRequest,
) -> None:
    from sqlalchemy import create_engine, text

    from retailpulse_cli.storage.results_db import schema
    from retailpulse_cli.storage.results_db.url import parsed

    pg = request.getfixturevalue("pg_server") if kind == "postgresql" else None
    url = new_db(kind, tmp_path, pg)
    engine = create_engine(parsed(url))
    with engine.begin() as conn:  # a database made by the version before (no results.host)
        schema.migrate(conn, upto=1)
        conn.execute(text(
            "INSERT INTO results (job_id, image_index, visit, store_id, image_url, status) "
            "VALUES ('old-job', 0, 0, 'S1', 'https://cdn.example.com:8443/a.jpg', 'ok'), "
            "('old-job', 1, 0, 'S1', 'photos/b.jpg', 'ok')"
        ))  # fmt: skip
    engine.dispose()
    job = write(tmp_path / "job.json", mixed_job(server))
    r = run_cli("submit", str(job), "--results-db", url, "--gpu-delay", "0",
                env={**env, "PGPASSWORD": PASSWORD})  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert_rows_equal_records(url, env, jobs_in(env)[0])
    from .results_db_helpers import query

    assert [v["version"] for v in query(url, "SELECT version FROM schema_version ORDER BY 1")] == [
        1,
        2,
    ]
    old = query(url, "SELECT image_index, host FROM results WHERE job_id = 'old-job' ORDER BY 1")
    assert old == [
        {"image_index": 0, "host": "cdn.example.com:8443"},
        {"image_index": 1, "host": "file"},
    ]


def test_serve_writes_its_jobs_to_the_database(
    server: ImageServer, tmp_path: Path, pg_server: PgServer
) -> None:
    from .serveutil import Served, clean_env, job_doc, visit

    url = new_db("postgresql", tmp_path, pg_server)
    env = clean_env(tmp_path, tmp_path / "jobs")
    srv = Served("--allow-private-networks", "--gpu-delay", "0", "--results-db", url, env=env)
    try:
        doc = job_doc(visit("S00339218", server.url("/img/64x48.png")),
                      visit("S99999999", server.url("/img/80x60.jpg")))  # fmt: skip
        job_id = srv.submit(doc)
        srv.wait(job_id)
    finally:
        assert srv.stop() == 0
    assert assert_rows_equal_records(url, env, job_id) == 2
    assert_job_row_follows_status(url, env, job_id)
