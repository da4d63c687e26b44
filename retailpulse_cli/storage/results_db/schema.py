"""The results database's tables, and the numbered steps that build them.

`schema_version` holds one row per step applied. `migrate` runs the missing steps in
order, in one transaction that holds the database's write lock (two runs starting at once
on a new database do not both create it), and refuses a database a newer retailpulse
made. A step is never edited once released: a change is a new step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
    text,
)

SCHEMA_VERSION = 2
_PG_LOCK_KEY = 0x52504442  # "RPDB": one advisory lock for every retailpulse migration


def _jobs(md: MetaData) -> Table:
    return Table(
        "jobs",
        md,
        Column("job_id", String(64), primary_key=True),
        Column("status", String(16), nullable=False),
        Column("owner", Text),  # who submitted it, when a front end knows (serve)
        Column("source", Text),  # the job file as given
        Column("mode", String(16)),  # the last run: submit, resume or retry
        Column("created_at", DateTime(timezone=True)),
        Column("started_at", DateTime(timezone=True)),
        Column("updated_at", DateTime(timezone=True)),
        Column("finished_at", DateTime(timezone=True)),
        Column("interrupted_by", Text),
        Column("visits", Integer),
        Column("images_total", Integer),
        Column("images_done", Integer),
        Column("images_ok", Integer),
        Column("images_failed", Integer),
        Column("stores_unknown", Integer),
        # status.json's updated_at when every record of the job was known to be here:
        # a run or an export that finds it unchanged has nothing to catch up
        Column("level_at", String(40)),
        Index("ix_jobs_created_at", "created_at"),
    )


def _results(md: MetaData, *, version: int) -> Table:
    columns: list[Column[Any]] = [
        Column("job_id", String(64), primary_key=True),
        Column("image_index", Integer, primary_key=True, autoincrement=False),
        Column("visit", Integer, nullable=False),
        Column("store_id", Text, nullable=False),
        Column("visit_time", DateTime(timezone=True)),  # UTC; NULL when not ISO 8601
        Column("visit_day", Date),  # the visit's own calendar date (its local offset)
        Column("visit_time_text", Text),  # as written in the job file
        Column("image_url", Text, nullable=False),  # redacted, as in results.jsonl
        Column("status", String(16), nullable=False),
        Column("width", Integer),
        Column("height", Integer),
        Column("perimeter", Integer),
        Column("format", String(16)),
        Column("error_code", Text),
        Column("error_message", Text),
        Column("attempts", Integer),
        Column("elapsed_ms", Integer),
        Column("sha256", String(64)),
        Column("bytes", BigInteger),
        Column("stored_as", Text),
    ]
    if version >= 2:
        columns.append(Column("host", Text))  # the image URL's host[:port]; `file` for paths
    return Table(
        "results",
        md,
        *columns,
        Index("ix_results_status_time", "status", "visit_time"),  # failures in the last N days
        Index("ix_results_store_day", "store_id", "visit_day"),  # per store per day
        Index("ix_results_job_visit", "job_id", "visit"),  # visits with no ok image
    )


def _store_errors(md: MetaData) -> Table:
    return Table(
        "store_errors",
        md,
        Column("job_id", String(64), primary_key=True),
        Column("store_id", Text, primary_key=True),
        Column("code", String(32), nullable=False),
        Column("message", Text, nullable=False),
        Column("images", Integer),  # images of an unknown store, or failed images
    )


def _job_runs(md: MetaData) -> Table:
    return Table(
        "job_runs",
        md,
        Column("job_id", String(64), primary_key=True),
        Column("run", Integer, primary_key=True, autoincrement=False),  # 0: the submit
        Column("mode", String(16)),  # submit, resume or retry
        Column("started_at", DateTime(timezone=True)),
        Column("ended_at", DateTime(timezone=True)),  # or its last status, if it was killed
    )


def _schema_version(md: MetaData) -> Table:
    return Table(
        "schema_version",
        md,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("applied_at", DateTime(timezone=True), nullable=False),
    )


metadata = MetaData()
jobs = _jobs(metadata)
results = _results(metadata, version=SCHEMA_VERSION)
store_errors = _store_errors(metadata)
job_runs = _job_runs(metadata)
schema_version = _schema_version(metadata)


def _step_1(conn: Connection) -> None:
    """jobs, job_runs, results, store_errors and the indexes of the README's queries."""
    md = MetaData()
    for table in (_jobs(md), _job_runs(md), _results(md, version=1), _store_errors(md)):
        table.create(conn)


def _step_2(conn: Connection) -> None:
    """results.host, filled from the image URLs already there, for the slowest-hosts query."""
    from retailpulse_cli.storage.results_db.rows import host_of

    conn.execute(text("ALTER TABLE results ADD COLUMN host TEXT"))
    old = MetaData()
    v1 = _results(old, version=1)
    urls = conn.execute(select(v1.c.image_url).distinct()).scalars().all()
    if urls:
        conn.execute(
            results.update()
            .where(results.c.image_url == bindparam("old_url"))
            .values(host=bindparam("new_host")),
            [{"old_url": url, "new_host": host_of(url)} for url in urls],
        )
    Index("ix_results_host", results.c.host).create(conn)


STEPS: dict[int, Callable[[Connection], None]] = {1: _step_1, 2: _step_2}


class NewerSchema(Exception):
    """The database was made by a newer retailpulse (its schema version is higher)."""

    def __init__(self, found: int) -> None:
        super().__init__(found)
        self.found = found


def current_version(conn: Connection) -> int:
    """The highest step applied; 0 for a database retailpulse has not touched yet."""
    if not conn.dialect.has_table(conn, "schema_version"):
        return 0
    found = conn.execute(select(func.max(schema_version.c.version))).scalar()
    return int(found or 0)


def migrate(conn: Connection, *, upto: int = SCHEMA_VERSION) -> int:
    """Apply the missing steps (inside the caller's transaction); return the version
    found before. NewerSchema if the database is ahead of this retailpulse."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
    found = current_version(conn)
    if found > SCHEMA_VERSION:
        raise NewerSchema(found)
    if found == 0:
        schema_version.create(conn)
    for step in range(found + 1, upto + 1):
        STEPS[step](conn)
        conn.execute(schema_version.insert().values(version=step, applied_at=func.now()))
    return found
