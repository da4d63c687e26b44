"""`GET /metrics`: what operators watch, in Prometheus' text format (prometheus-client).

Requests are counted as they end (by method, route template and status); jobs, images
and the queue are read when Prometheus scrapes, from the jobs directory itself (the
source of truth, so jobs made by the CLI count too). A scrape re-reads only the status
files that changed since the last one: 10,000 finished jobs cost 10,000 stat calls.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram as PromHistogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from retailpulse_cli.storage.job_dir import Job, JobStore

# seconds; status calls take ~1 ms, a submit with a large body ~100 ms
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "unmatched"  # 404s for made-up paths share one label, not one each


@dataclass(frozen=True)
class _Seen:
    """One job's status.json as last read: its identity, state and counts."""

    stamp: tuple[int, int, int]
    state: str
    ok: int
    failed: int
    pending: int
    failures: dict[str, int]


class JobsCollector(Collector):
    """Jobs by state, images by status and failures by error code, over the jobs dir."""

    def __init__(self, store: JobStore, queue: Callable[[], dict[str, int]]) -> None:
        self.store = store
        self.queue = queue  # the dispatcher's counts: {"queued": n, "running": n}
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()  # two scrapes at once share one cache

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            seen = self._refresh()
        states = Counter(s.state for s in seen)
        jobs = GaugeMetricFamily("retailpulse_jobs", "Jobs in the jobs directory", labels=["state"])
        for state, n in sorted(states.items()):
            jobs.add_metric([state], n)
        yield jobs
        images = GaugeMetricFamily(
            "retailpulse_images", "Images of all jobs, by outcome", labels=["status"]
        )
        for label, n in (
            ("ok", sum(s.ok for s in seen)),
            ("failed", sum(s.failed for s in seen)),
            ("pending", sum(s.pending for s in seen)),
        ):
            images.add_metric([label], n)
        yield images
        failures: Counter[str] = Counter()
        for s in seen:
            failures.update(s.failures)
        by_code = GaugeMetricFamily(
            "retailpulse_image_failures",
            "Failed images of all jobs, by error code",
            labels=["code"],
        )
        for code, n in sorted(failures.items()):
            by_code.add_metric([code], n)
        yield by_code
        counts = self.queue()
        yield GaugeMetricFamily(
            "retailpulse_queue_length", "Jobs accepted and not started", value=counts["queued"]
        )
        yield GaugeMetricFamily(
            "retailpulse_jobs_running", "Jobs running in this server", value=counts["running"]
        )

    def _refresh(self) -> list[_Seen]:
        fresh: dict[str, _Seen] = {}
        for job_id in self.store.job_ids():
            job = Job(self.store.root / job_id)
            try:
                st = os.stat(job.dir / "status.json")
            except OSError:
                continue  # being made, or removed by prune just now
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            known = self._seen.get(job_id)
            if known is None or known.stamp != stamp or known.state == "ongoing":
                known = _read(job, stamp)
            if known is not None:
                fresh[job_id] = known
        self._seen = fresh
        return list(fresh.values())


def _read(job: Job, stamp: tuple[int, int, int]) -> _Seen | None:
    from retailpulse_cli.errors import RetailpulseError

    try:
        doc = job.status()  # `ongoing` without a live worker reads `interrupted`
    except RetailpulseError:
        return _Seen(stamp, "damaged", 0, 0, 0, {})
    ok, failed = _count(doc, "images_ok"), _count(doc, "images_failed")
    pending = max(0, _count(doc, "images_total") - _count(doc, "images_done"))
    failures = doc.get("failures_by_code") or {}
    codes = {str(k): v for k, v in failures.items() if isinstance(v, int)}
    return _Seen(stamp, str(doc.get("status")), ok, failed, pending, codes)


def _count(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    return value if isinstance(value, int) else 0


class Metrics:
    """One registry per app (tests start several apps in one process)."""

    def __init__(self) -> None:
        # `*_created` series double the output and no dashboard reads them (process-wide:
        # the server process is ours)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["method", "route", "status"]
        self.requests = PromCounter(
            "retailpulse_http_requests", "HTTP requests answered", labels, registry=self.registry
        )
        self.latency = PromHistogram(
            "retailpulse_http_request_duration_seconds",
            "Time from request to the end of the answer",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = PromCounter(
            "retailpulse_rate_limited",
            "Requests refused with 429 by the per-caller rate limit",
            registry=self.registry,
        )
        self.callbacks = PromCounter(
            "retailpulse_callbacks",
            "Callback deliveries that ended, by outcome",
            ["outcome"],
            registry=self.registry,
        )

    def watch_jobs(self, store: JobStore, queue: Callable[[], dict[str, int]]) -> None:
        self.registry.register(JobsCollector(store, queue))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        values = (method, route, str(status))
        self.requests.labels(*values).inc()
        self.latency.labels(*values).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
