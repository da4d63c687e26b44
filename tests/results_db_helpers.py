"""Helpers for the results-database tests: a database per test (SQLite file or a fresh
PostgreSQL database on the session's real server), read back with SQLAlchemy."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from .conftest import jobs_in, results_of
from .imageserver import ImageServer
from .pgserver import PgServer

FIELDS = (
    "visit", "store_id", "image_url", "status", "width", "height", "perimeter", "format",
    "error_code", "attempts", "elapsed_ms", "sha256", "bytes", "stored_as",
)  # fmt: skip


def new_db(kind: str, tmp_path: Path, pg: PgServer | None) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'pulse.db'}"
    assert pg is not None
    return pg.create_db(f"t_{uuid.uuid4().hex[:12]}")


def query(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    from retailpulse_cli.storage.results_db.url import parsed

    engine = create_engine(parsed(url))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def rows_by_index(url: str, job_id: str) -> dict[int, dict[str, Any]]:
    rows = query(url, "SELECT * FROM results WHERE job_id = :j", j=job_id)
    return {r["image_index"]: r for r in rows}


def assert_rows_equal_records(url: str, env: dict[str, str], job_id: str) -> int:
    """Every record of the job directory is a row with the same values, and nothing else is."""
    records = {r["index"]: r for r in results_of(env, job_id)}
    rows = rows_by_index(url, job_id)
    assert sorted(rows) == sorted(records)
    for index, rec in records.items():
        row = rows[index]
        for name in FIELDS:
            assert row[name] == rec.get(name), (index, name, row[name], rec.get(name))
        assert row["error_message"] == rec.get("error")
        assert row["visit_time_text"] == rec["visit_time"]
        when = datetime.fromisoformat(rec["visit_time"])
        stored = row["visit_time"]
        if isinstance(stored, str):  # SQLite through a plain text() query
            stored = datetime.fromisoformat(stored)
        stored = stored if stored.tzinfo else stored.replace(tzinfo=timezone.utc)
        assert stored == when
        day = row["visit_day"]
        assert (day if isinstance(day, date) else date.fromisoformat(day)) == when.date()
    count = query(url, "SELECT count(*) AS n FROM results WHERE job_id = :j", j=job_id)
    assert count[0]["n"] == len(records)
    return len(records)


def job_dir(env: dict[str, str], job_id: str) -> Path:
    return Path(env["RETAILPULSE_JOBS_DIR"]) / job_id


def assert_job_row_follows_status(url: str, env: dict[str, str], job_id: str) -> None:
    status = json.loads((job_dir(env, job_id) / "status.json").read_text())
    errors = json.loads((job_dir(env, job_id) / "errors.json").read_text())["error"]
    (row,) = query(url, "SELECT * FROM jobs WHERE job_id = :j", j=job_id)
    assert row["status"] == status["status"]
    for key in ("visits", "images_total", "images_done", "images_ok", "images_failed"):
        assert row[key] == status[key], key
    got = query(url, "SELECT store_id, code, message FROM store_errors WHERE job_id = :j", j=job_id)
    assert sorted((e["store_id"], e["code"], e["error"]) for e in errors) == sorted(
        (r["store_id"], r["code"], r["message"]) for r in got
    )


def mixed_job(server: ImageServer, n_ok: int = 6) -> dict[str, Any]:
    """ok images, a 404, a truncated image and an unknown store."""
    urls = [server.url(f"/img/{40 + i}x{30 + i}.png") for i in range(n_ok)]
    visits = [
        {"store_id": "S00339218", "image_url": urls[: n_ok // 2],
         "visit_time": "2026-11-28T10:15:00+05:30"},
        {"store_id": "S01408764", "image_url": [*urls[n_ok // 2 :], server.url("/status/404")],
         "visit_time": "2026-11-29T23:40:00-03:00"},
        {"store_id": "S00339198", "image_url": [server.url("/truncated/64x48.jpg")],
         "visit_time": "2026-11-30T08:00:00Z"},
        {"store_id": "S99999999", "image_url": [server.url("/img/10x10.png")],
         "visit_time": "2026-11-30T09:00:00+01:00"},
    ]  # fmt: skip
    return {"count": len(visits), "visits": visits}


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def wait_for_records(env: dict[str, str], at_least: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = jobs_in(env)
        if ids:
            path = job_dir(env, ids[0]) / "results.jsonl"
            if path.exists() and path.read_bytes().count(b"\n") - 1 >= at_least:
                return ids[0]
        time.sleep(0.05)
    raise AssertionError(f"no {at_least} records within {timeout}s")
