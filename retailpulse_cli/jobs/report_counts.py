"""The report: per-store and per-code counts of one or more jobs, read from their job
directories. Records are streamed and folded into counters (per store, per code, at most
three sample URLs per code), so a 200,000-image job costs as much memory as its stores.
Nothing here prints; summary_render.py and summary_html.py show the result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from retailpulse_cli.errors import JobDamaged, JobNotFound, RetailpulseError
from retailpulse_cli.processing.tally import STORE_NOT_FOUND
from retailpulse_cli.storage.job_dir import Job, JobStore, parse_time

SAMPLES_PER_CODE = 3


@dataclass
class StoreCounts:
    images: int = 0
    ok: int = 0
    failed: int = 0
    unknown_store: bool = False

    def add(self, other: StoreCounts) -> None:
        self.images += other.images
        self.ok += other.ok
        self.failed += other.failed
        self.unknown_store = self.unknown_store or other.unknown_store

    def to_json(self, store_id: str) -> dict[str, Any]:
        return {"store_id": store_id, **self.__dict__}


@dataclass
class Failures:
    """Failures by error code, with the first few image URLs of each (as stored: redacted)."""

    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, code: str, url: str, n: int = 1) -> None:
        self.counts[code] += n
        urls = self.samples.setdefault(code, [])
        if len(urls) < SAMPLES_PER_CODE and url not in urls:
            urls.append(url)

    def merge(self, other: Failures) -> None:
        for code, n in other.counts.items():
            self.counts[code] += n
            for url in other.samples.get(code, []):
                self.add(code, url, 0)

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"code": code, "count": n, "samples": self.samples.get(code, [])}
            for code, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ]


Span = tuple[datetime, datetime]


def run_spans(status: dict[str, Any]) -> list[Span]:
    """When the job's runs (submit, each resume and retry) ran, from status.json's `runs`;
    a job written before `runs` existed has its last run only (started_at to its end)."""
    runs = status.get("runs")
    if not isinstance(runs, list) or not runs:
        end = status.get("finished_at") or status.get("updated_at")
        runs = [{"started_at": status.get("started_at"), "ended_at": end}]
    spans = []
    for run in runs:
        if not isinstance(run, dict):
            continue
        start, end = parse_time(run.get("started_at")), parse_time(run.get("ended_at"))
        if start is not None and end is not None and end >= start:
            spans.append((start, end))
    return spans


@dataclass
class JobSummary:
    job_id: str
    status: str
    created_at: str | None
    started_at: str | None  # the first run's start
    ended_at: str | None  # finished_at, else the last status update of an unfinished job
    stores: dict[str, StoreCounts] = field(default_factory=dict)
    failures: Failures = field(default_factory=Failures)
    runs: list[Span] | None = None  # None: the span started_at..ended_at is the one run

    @property
    def images(self) -> int:
        return sum(s.images for s in self.stores.values())

    @property
    def ok(self) -> int:
        return sum(s.ok for s in self.stores.values())

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.stores.values())

    @property
    def spans(self) -> list[Span]:
        if self.runs is not None:
            return self.runs
        start, end = parse_time(self.started_at), parse_time(self.ended_at)
        return [(start, end)] if start is not None and end is not None and end >= start else []

    @property
    def duration_s(self) -> float | None:
        """The time its runs took, together: a resumed or retried job's speed is that of
        all its runs, not of the last one (which may have redone a single image)."""
        spans = self.spans
        return sum((end - start).total_seconds() for start, end in spans) if spans else None

    @property
    def images_per_s(self) -> float | None:
        seconds = self.duration_s
        return round(self.images / seconds, 2) if seconds else None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "runs": len(self.spans),
            "duration_s": self.duration_s,
            "images_per_s": self.images_per_s,
            "images": self.images,
            "ok": self.ok,
            "failed": self.failed,
            "stores": [c.to_json(s) for s, c in sorted(self.stores.items())],
            "failures_by_code": self.failures.to_json(),
        }


@dataclass
class Summary:
    jobs: list[JobSummary]
    skipped: list[str] = field(default_factory=list)  # damaged jobs left out, with why

    def stores(self) -> dict[str, StoreCounts]:
        """Per store over all jobs."""
        out: dict[str, StoreCounts] = {}
        for job in self.jobs:
            for store_id, counts in job.stores.items():
                out.setdefault(store_id, StoreCounts()).add(counts)
        return out

    def failures(self) -> Failures:
        out = Failures()
        for job in self.jobs:
            out.merge(job.failures)
        return out

    def totals(self) -> dict[str, Any]:
        stores = self.stores()
        return {
            "jobs": len(self.jobs),
            "stores": len(stores),
            "images": sum(j.images for j in self.jobs),
            "ok": sum(j.ok for j in self.jobs),
            "failed": sum(j.failed for j in self.jobs),
            "unknown_stores": sum(1 for c in stores.values() if c.unknown_store),
            "duration_s": self.busy_seconds(),
        }

    def busy_seconds(self) -> float | None:
        """Time during which at least one of the jobs ran: jobs that ran side by side (one
        `inbox` run) are not counted twice, nights apart add up."""
        spans = sorted(span for j in self.jobs for span in j.spans)
        if not spans:
            return None
        total, (cur_start, cur_end) = 0.0, spans[0]
        for start, end in spans[1:]:
            if start > cur_end:
                total += (cur_end - cur_start).total_seconds()
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        return total + (cur_end - cur_start).total_seconds()

    def to_json(self) -> dict[str, Any]:
        stores = self.stores()
        return {
            "totals": self.totals(),
            "jobs": [j.to_json() for j in self.jobs],
            "stores": [c.to_json(s) for s, c in sorted(stores.items())],
            "failures_by_code": self.failures().to_json(),
            "skipped": self.skipped,
        }


def summarize_job(job: Job, status: dict[str, Any] | None = None) -> JobSummary:
    """One job's counts, streamed from its records (a retry not yet merged included)."""
    st = status or job.status()
    ended = st.get("finished_at") or st.get("updated_at")
    spans = run_spans(st)
    out = JobSummary(
        job_id=job.id,
        status=str(st.get("status")),
        created_at=st.get("created_at"),
        started_at=_first_start(st),
        ended_at=ended if isinstance(ended, str) else None,
        runs=spans,
    )
    for rec in job.iter_records():
        counts = out.stores.setdefault(str(rec.get("store_id")), StoreCounts())
        counts.images += 1
        if rec.get("status") == "ok":
            counts.ok += 1
            continue
        counts.failed += 1
        code = str(rec.get("error_code") or "unknown")
        counts.unknown_store = counts.unknown_store or code == STORE_NOT_FOUND
        out.failures.add(code, str(rec.get("image_url", "")))
    return out


def _first_start(status: dict[str, Any]) -> str | None:
    runs = status.get("runs")
    first = runs[0] if isinstance(runs, list) and runs else None
    started = first.get("started_at") if isinstance(first, dict) else status.get("started_at")
    return started if isinstance(started, str) else None


def _latest_readable(store: JobStore, ids: list[str]) -> Job:
    """The newest job that reads: a stray folder (lost+found, a copy) is not "the latest"."""
    for job_id in ids:
        job = Job(store.root / job_id)
        try:
            job.status()
        except RetailpulseError:
            continue
        return job
    raise JobNotFound(f"no readable job in {store.root}", hint="`retailpulse list` shows them")


def summarize(store: JobStore, job_ids: list[str], since: datetime | None = None) -> Summary:
    """The report of the jobs named (each must exist and be readable), else of those created
    at or after `since` (damaged ones are left out and listed in `skipped`), else of the
    latest job. Jobs come oldest first."""
    if job_ids:
        return Summary(jobs=[summarize_job(store.job(j)) for j in dict.fromkeys(job_ids)])
    ids = store.job_ids()  # newest first
    if not ids:
        raise JobNotFound(f"no jobs in {store.root}", hint="submit a job first")
    if since is None:
        return Summary(jobs=[summarize_job(_latest_readable(store, ids))])
    summary = Summary(jobs=[])
    for job_id in reversed(ids):
        job = Job(store.root / job_id)
        try:
            st = job.status()
            created = parse_time(st.get("created_at"))
            if created is None:
                raise JobDamaged(f"job {job_id}: status.json has no valid created_at")
            if created >= since:
                summary.jobs.append(summarize_job(job, st))
        except RetailpulseError as exc:
            summary.skipped.append(exc.message)
    return summary
