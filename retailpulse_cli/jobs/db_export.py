"""`export --to URL`: write existing jobs to a results database, idempotently.

Each job's records are streamed from its directory and upserted in batches; its row and
store errors follow, marked level with the status they were read with, so a second export
(or a resume) of an unchanged job finds nothing to do. Nothing here prints: progress goes
to a callback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from retailpulse_cli.errors import RetailpulseError
from retailpulse_cli.storage.job_dir import Job, JobStore, parse_time

if TYPE_CHECKING:
    from sqlalchemy import Engine

BATCH_RECORDS = 5000  # a transaction each; the job's own writer batches by 1,000
Progress = Callable[[int], None]  # rows just written


@dataclass
class JobExport:
    job_id: str
    rows: int  # rows written (0: already level)
    level: bool  # the database already had every record of the job


@dataclass
class ExportPlan:
    """Jobs to export, with their status as read now, and the rows they should have."""

    jobs: list[tuple[Job, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # damaged jobs left out, with why

    @property
    def records(self) -> int:
        return sum(int(st.get("images_done") or 0) for _, st, _ in self.jobs)


def plan(store: JobStore, job_ids: list[str], since: datetime | None) -> ExportPlan:
    """The jobs named (each must exist), else those created at or after `since`, else every
    job in the jobs directory; oldest first. Damaged jobs are skipped, not fatal."""
    out = ExportPlan()
    if job_ids:
        chosen = [store.job(j) for j in dict.fromkeys(job_ids)]
    else:
        chosen = [Job(store.root / j) for j in reversed(store.job_ids())]
    for job in chosen:
        try:
            status, meta = job.status(), job.meta()
        except RetailpulseError as exc:
            if job_ids:
                raise
            out.skipped.append(exc.message)
            continue
        created = parse_time(status.get("created_at"))
        if since is not None and (created is None or created < since):
            continue
        out.jobs.append((job, status, meta))
    return out


def export(url: str, export_plan: ExportPlan, progress: Progress | None = None) -> list[JobExport]:
    """Write every planned job that the database is not level with; report what was done."""
    from retailpulse_cli.storage.results_db import database as db

    engine = db.open_db(url)
    done: list[JobExport] = []
    try:
        _export_jobs(engine, export_plan, done, progress)
    except db.driver_errors() as exc:  # gone mid-way: what is written stays, and counts
        raise db.unusable(exc, url, "export stopped (run it again: it goes on)") from None
    return done


def _export_jobs(
    engine: Engine, export_plan: ExportPlan, done: list[JobExport], progress: Progress | None
) -> None:
    from retailpulse_cli.storage.results_db import database as db
    from retailpulse_cli.storage.results_db import rows as to_rows

    with engine.connect() as conn:
        pg = conn.dialect.name == "postgresql"
        for job, status, meta in export_plan.jobs:
            level_at, count = db.level_of(conn, job.id)
            conn.rollback()
            updated = str(status.get("updated_at") or "")
            live = job.is_live()  # still being written: its own run marks it level
            if not live and level_at == updated and count == status.get("images_done"):
                done.append(JobExport(job.id, 0, True))
                continue
            written = 0
            for batch in _batches(job):
                rows = [
                    r for rec in batch if (r := to_rows.result_values(job.id, rec, postgres=pg))
                ]
                with conn.begin():
                    db.upsert_results_bulk(conn, rows)
                written += len(rows)
                if progress is not None:
                    progress(len(rows))
            row = to_rows.job_row({**status, "job_id": job.id}, meta)
            errors = to_rows.error_rows(job.id, job.errors())
            runs = to_rows.run_rows(job.id, status)
            with conn.begin():
                db.save_job(conn, row, errors, runs, level_at=None if live else updated)
            done.append(JobExport(job.id, written, False))


def _batches(job: Job) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for rec in job.iter_records():
        batch.append(rec)
        if len(batch) >= BATCH_RECORDS:
            yield batch
            batch = []
    if batch:
        yield batch
