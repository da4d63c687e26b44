"""`report --from URL`: the same Summary as report_counts, built from the results database
instead of job directories (how a team with many machines gets one report). Counts are
GROUP BYs in the database; sample URLs are the first few in job order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from retailpulse_cli.errors import JobNotFound
from retailpulse_cli.jobs.report_counts import SAMPLES_PER_CODE, JobSummary, StoreCounts, Summary
from retailpulse_cli.storage.job_dir import parse_time


def summarize(url: str, job_ids: list[str], since: datetime | None = None) -> Summary:
    """The report of the jobs named (each must be in the database), else of those created
    at or after `since`, else of the latest job; oldest first, like the directory report."""
    from retailpulse_cli.storage.results_db.database import driver_errors, open_db, unusable

    wanted = list(dict.fromkeys(job_ids))
    engine = open_db(url)
    try:
        return _summarize(engine, url, wanted, since)
    except driver_errors() as exc:
        raise unusable(exc, url, "cannot read the report") from None


def _summarize(engine: Any, url: str, wanted: list[str], since: datetime | None) -> Summary:
    from retailpulse_cli.storage.results_db import reading
    from retailpulse_cli.storage.results_db.url import shown

    with engine.connect() as conn:
        found = reading.job_rows(conn, wanted, since)
        missing = [j for j in wanted if j not in {r["job_id"] for r in found}]
        if missing:
            raise JobNotFound(
                f"no job {missing[0]!r} in results database {shown(url)}",
                hint="`retailpulse export --to URL JOB_ID` writes a job there",
            )
        if not found and since is None:
            raise JobNotFound(f"no jobs in results database {shown(url)}")
        ids = [r["job_id"] for r in found]
        summaries = {r["job_id"]: _job(r) for r in found}
        if ids:
            _fill(summaries, reading, conn, ids)
    return Summary(jobs=[summaries[i] for i in ids])


def _job(row: dict[str, Any]) -> JobSummary:
    from retailpulse_cli.storage.results_db.reading import iso

    return JobSummary(
        job_id=row["job_id"],
        status=str(row["status"]),
        created_at=iso(row["created_at"]),
        started_at=iso(row["started_at"]),
        ended_at=iso(row["finished_at"]) or iso(row["updated_at"]),
    )


def _fill(summaries: dict[str, JobSummary], reading: Any, conn: Any, ids: list[str]) -> None:
    for row in reading.runs(conn, ids):  # as the directory report reads status.json's `runs`
        summary = summaries[row["job_id"]]
        start, end = reading.iso(row["started_at"]), reading.iso(row["ended_at"])
        if summary.runs is None:
            summary.runs, summary.started_at = [], start
        span = (parse_time(start), parse_time(end))
        if span[0] is not None and span[1] is not None and span[1] >= span[0]:
            summary.runs.append((span[0], span[1]))
    for row in reading.store_counts(conn, ids):
        images, ok = int(row["images"]), int(row["ok"] or 0)
        counts = StoreCounts(images, ok, images - ok, bool(row["unknown"]))
        summaries[row["job_id"]].stores[str(row["store_id"])] = counts
    for row in reading.failure_counts(conn, ids):
        summaries[row["job_id"]].failures.counts[str(row["code"])] = int(row["count"])
    for row in reading.failure_samples(conn, ids, SAMPLES_PER_CODE):
        samples = summaries[row["job_id"]].failures.samples
        samples.setdefault(str(row["code"]), []).append(str(row["image_url"]))
