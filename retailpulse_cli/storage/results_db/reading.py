"""What `report --from URL` reads back: jobs, and per job the counts per store, per error
code and a few sample URLs, each one GROUP BY in the database (no record is fetched)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Integer, and_, case, cast, func, literal, select

from retailpulse_cli.storage.results_db.schema import job_runs, jobs, results

STORE_NOT_FOUND = "store_not_found"


def iso(value: Any) -> str | None:
    """A stored time as status.json writes it (UTC, milliseconds, Z)."""
    if not isinstance(value, datetime):
        return None
    when = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = when.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def job_rows(conn: Connection, job_ids: list[str], since: datetime | None) -> list[dict[str, Any]]:
    """The jobs named, else those created at or after `since`, else the latest; oldest first."""
    query = select(jobs)
    if job_ids:
        query = query.where(jobs.c.job_id.in_(job_ids))
    elif since is not None:
        stored = since.astimezone(timezone.utc)
        if conn.dialect.name == "sqlite":  # stored as naive UTC text
            stored = stored.replace(tzinfo=None)
        query = query.where(jobs.c.created_at >= stored)
    else:
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc()).limit(1)
    found = [dict(r._mapping) for r in conn.execute(query)]
    return sorted(found, key=lambda r: r["job_id"])  # ids sort by creation time


def _failed() -> Any:
    return results.c.status != "ok"


def _code() -> Any:
    return func.coalesce(func.nullif(results.c.error_code, ""), literal("unknown"))


def store_counts(conn: Connection, job_ids: list[str]) -> list[dict[str, Any]]:
    """Per job and store: images, ok, failed, and whether the store was unknown."""
    ok = func.sum(case((results.c.status == "ok", 1), else_=0))
    unknown = func.max(case((results.c.error_code == STORE_NOT_FOUND, 1), else_=0))
    query = (
        select(
            results.c.job_id,
            results.c.store_id,
            func.count().label("images"),
            cast(ok, Integer).label("ok"),
            cast(unknown, Integer).label("unknown"),
        )
        .where(results.c.job_id.in_(job_ids))
        .group_by(results.c.job_id, results.c.store_id)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def failure_counts(conn: Connection, job_ids: list[str]) -> list[dict[str, Any]]:
    """Per job and error code: how many images failed so."""
    code = _code().label("code")
    query = (
        select(results.c.job_id, code, func.count().label("count"))
        .where(and_(results.c.job_id.in_(job_ids), _failed()))
        .group_by(results.c.job_id, code)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def failure_samples(conn: Connection, job_ids: list[str], per_code: int) -> list[dict[str, Any]]:
    """Per job and error code, the first `per_code` distinct image URLs (job order)."""
    code = _code().label("code")
    urls = (
        select(
            results.c.job_id,
            code,
            results.c.image_url,
            func.min(results.c.image_index).label("first"),
        )
        .where(and_(results.c.job_id.in_(job_ids), _failed()))
        .group_by(results.c.job_id, code, results.c.image_url)
        .subquery()
    )
    rank = (
        func.row_number()
        .over(partition_by=(urls.c.job_id, urls.c.code), order_by=urls.c.first)
        .label("rank")
    )
    ranked = select(urls.c.job_id, urls.c.code, urls.c.image_url, rank).subquery()
    query = (
        select(ranked.c.job_id, ranked.c.code, ranked.c.image_url)
        .where(ranked.c.rank <= per_code)
        .order_by(ranked.c.job_id, ranked.c.code, ranked.c.rank)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def runs(conn: Connection, job_ids: list[str]) -> list[dict[str, Any]]:
    """Each job's runs (submit, resumes, retries), in order."""
    query = (
        select(job_runs)
        .where(job_runs.c.job_id.in_(job_ids))
        .order_by(job_runs.c.job_id, job_runs.c.run)
    )
    return [dict(r._mapping) for r in conn.execute(query)]
