"""Opening the results database (SQLite or PostgreSQL through SQLAlchemy Core) and the
few statements that write it: upserts on the primary keys, so writing a row twice is
writing it once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.pool import NullPool

from retailpulse_cli.errors import ExitCode, RetailpulseError
from retailpulse_cli.storage.results_db import schema
from retailpulse_cli.storage.results_db import url as urls
from retailpulse_cli.storage.results_db.rows import RESULT_COLUMNS
from retailpulse_cli.text.redaction import scrub

SQLITE_BUSY_SECONDS = 30.0  # another process's write transaction: wait, do not fail
PG_CONNECT_SECONDS = 5  # an unreachable server is one line after this, not a hang


class ResultsDbError(RetailpulseError):
    """The results database cannot be reached, opened or used (exit 7, like the disk)."""

    exit_code = ExitCode.STORAGE
    hint = "check --results-db (the server is up, the folder exists, the user may write)"
    reason = ""  # the driver's words, for the follower's warning


class ResultsDbUnavailable(RetailpulseError):
    """--results-db names a database this installation cannot talk to (exit 2)."""

    exit_code = ExitCode.USAGE
    hint = urls.POSTGRES_EXTRA_HINT


_engines: dict[str, Engine] = {}
_ready: set[str] = set()  # URLs whose schema this process has checked
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per URL per process. NullPool: each job's writer thread holds its own
    connection for as long as it works, and a dead server leaves no pooled corpse."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        return engine


def _create(url: str) -> Engine:
    try:
        target = urls.parsed(url)
    except ValueError as exc:
        raise ResultsDbUnavailable(f"--results-db {urls.shown(url)}: {exc}", hint="") from None
    if target.get_backend_name() == "sqlite":
        engine = create_engine(
            target, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_SECONDS}
        )
        _sqlite_transactions(engine)
        return engine
    # psycopg logs a lost connection's pipeline on its own; we say it once, our way
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    try:
        return create_engine(
            target,
            poolclass=NullPool,
            connect_args={"connect_timeout": PG_CONNECT_SECONDS, "application_name": "retailpulse"},
        )
    except ImportError as exc:
        raise ResultsDbUnavailable(
            f"--results-db {urls.shown(url)} needs psycopg 3, which is not installed ({exc})"
        ) from None


def _sqlite_transactions(engine: Engine) -> None:
    """Real transactions for SQLite (Python's sqlite3 starts none before DDL) that take the
    write lock at BEGIN, so two writers queue on the busy timeout instead of deadlocking
    on a lock upgrade; WAL lets readers (report) run beside a writing job."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; the job dir is truth
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def failure(exc: BaseException, url: str) -> str:
    """A driver's exception as one line without the URL's or PGPASSWORD's secrets."""
    if isinstance(exc, ResultsDbError):
        return exc.reason or exc.message
    inner = getattr(exc, "orig", None) or exc
    text = " ".join(str(inner).split()) or type(inner).__name__
    text = text.split(" (Background on this error")[0]
    text = text.split("[SQL:")[0].strip()
    password = os.environ.get("PGPASSWORD", "")
    if len(password) >= 4:
        text = text.replace(password, "***")
    return scrub(text, url)


def driver_errors() -> tuple[type[Exception], ...]:
    """What a database call may raise when the database, not our code, is the cause."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    found: list[type[Exception]] = [SQLAlchemyError, sqlite3.Error]
    try:
        import psycopg

        found.append(psycopg.Error)
    except ImportError:
        pass
    return tuple(found)


def unusable(exc: BaseException, url: str, doing: str) -> ResultsDbError:
    """A database failure in the middle of a command, as one line (exit 7)."""
    error = ResultsDbError(f"results database {urls.shown(url)}: {doing}: {failure(exc, url)}")
    error.reason = failure(exc, url)
    return error


def open_db(url: str) -> Engine:
    """The engine, once the database answered and its schema is this tool's (created or
    migrated forward on first use). One clear error otherwise; nothing is made then."""
    engine = engine_for(url)
    if url in _ready:
        return engine
    try:
        with engine.begin() as conn:
            schema.migrate(conn)
    except schema.NewerSchema as exc:
        raise ResultsDbError(
            f"results database {urls.shown(url)} has schema version {exc.found}; this "
            f"retailpulse knows up to {schema.SCHEMA_VERSION}",
            hint="upgrade retailpulse, or give another --results-db",
        ) from None
    except Exception as exc:  # the driver's own errors: connection, auth, file, disk
        why = failure(exc, url)
        hint = (
            "a job keeps its --results-db without the password: set PGPASSWORD, use "
            "~/.pgpass, or give --results-db again"
            if "no password supplied" in why
            else None
        )
        error = ResultsDbError(f"cannot use results database {urls.shown(url)}: {why}", hint=hint)
        error.reason = why
        raise error from None
    _ready.add(url)
    return engine


def _insert(conn: Connection) -> Any:
    """The dialect's INSERT (both have the same on_conflict_do_update)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


@lru_cache(maxsize=4)
def _upsert_sql(dialect_name: str) -> str:
    """The results upsert, built once with SQLAlchemy Core for the engine's dialect, with
    positional parameters in RESULT_COLUMNS order."""
    from sqlalchemy.dialects import postgresql, sqlite

    table = schema.results
    insert: Any
    dialect: Any
    if dialect_name == "postgresql":
        insert, dialect = postgresql.insert, postgresql.psycopg.dialect(paramstyle="format")  # type: ignore[no-untyped-call]
    else:
        insert, dialect = sqlite.insert, sqlite.pysqlite.dialect(paramstyle="qmark")
    stmt = insert(table).values({c: bindparam(c) for c in RESULT_COLUMNS})
    keys = {c.name for c in table.primary_key.columns}
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.job_id, table.c.image_index],
        set_={c: stmt.excluded[c] for c in RESULT_COLUMNS if c not in keys},
    )
    compiled = stmt.compile(dialect=dialect)
    assert list(compiled.positiontup or []) == list(RESULT_COLUMNS)
    return str(compiled)


def upsert_results(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert or replace results rows (tuples from rows.result_values), executemany."""
    if rows:
        conn.exec_driver_sql(_upsert_sql(conn.dialect.name), list(rows))


_COLUMNS = ", ".join(RESULT_COLUMNS)
_LOAD_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS results_load (LIKE results INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS"
)
_FROM_LOAD = (
    f"INSERT INTO results ({_COLUMNS}) SELECT {_COLUMNS} FROM results_load "
    "ON CONFLICT (job_id, image_index) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in RESULT_COLUMNS[2:])
)


def upsert_results_bulk(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """As upsert_results, for `export`'s large batches: into PostgreSQL by COPY to a
    temporary table and one INSERT ... ON CONFLICT from it (half the server's CPU of a
    statement per row); SQLite's executemany is already a loop in C."""
    if conn.dialect.name != "postgresql" or not rows:
        upsert_results(conn, rows)
        return
    last = {(row[0], row[1]): row for row in rows}  # a key twice in one statement is refused
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute(_LOAD_TABLE)
        with cursor.copy(f"COPY results_load ({_COLUMNS}) FROM STDIN") as copy:
            for row in last.values():
                copy.write_row(row)
        cursor.execute(_FROM_LOAD)


def save_job(
    conn: Connection,
    row: dict[str, Any],
    errors: list[dict[str, Any]] | None,
    runs: list[dict[str, Any]] | None = None,
    *,
    level_at: str | None = None,
) -> None:
    """Insert or update the job's row, and replace its store errors and runs when given;
    a `level_at` marks every record of that status as written."""
    table = schema.jobs
    values = {**row, "level_at": level_at} if level_at else dict(row)
    stmt = _insert(conn)(table).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.job_id],
        set_={k: stmt.excluded[k] for k in values if k != "job_id"},
    )
    conn.execute(stmt)
    for child, rows in ((schema.store_errors, errors), (schema.job_runs, runs)):
        if rows is not None:
            conn.execute(delete(child).where(child.c.job_id == row["job_id"]))
            if rows:
                conn.execute(child.insert(), rows)


def level_of(conn: Connection, job_id: str) -> tuple[str | None, int]:
    """(level_at, rows) of a job: whether its rows were known complete, and how many."""
    level = conn.execute(
        select(schema.jobs.c.level_at).where(schema.jobs.c.job_id == job_id)
    ).scalar()
    count = conn.execute(
        select(func.count()).select_from(schema.results).where(schema.results.c.job_id == job_id)
    ).scalar()
    return (str(level) if level else None), int(count or 0)
