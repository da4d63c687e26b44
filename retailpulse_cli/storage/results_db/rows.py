"""Job-directory documents (records, status.json, errors) as rows of the results database."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

_COUNTS = ("visits", "images_total", "images_done", "images_ok", "images_failed", "stores_unknown")


def utc(text: object) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (no offset: taken as UTC); None if not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


# The results columns in the order `result_values` gives them (executemany with tuples:
# SQLAlchemy's per-row parameter processing was half of `export`'s time).
RESULT_COLUMNS = (
    "job_id", "image_index", "visit", "store_id", "visit_time", "visit_day", "visit_time_text",
    "image_url", "status", "width", "height", "perimeter", "format", "error_code",
    "error_message", "attempts", "elapsed_ms", "sha256", "bytes", "stored_as", "host",
)  # fmt: skip
_TEXT_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DATETIME text, naive UTC


@lru_cache(maxsize=4096)  # the images of one visit share its time
def _visit_times(text: str, with_offset: bool) -> tuple[str | None, str | None]:
    """(UTC time, the visit's own calendar date) as text both engines take: SQLite keeps
    it as is, PostgreSQL casts it (the `+00:00` makes the server's time zone irrelevant)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None, None
    day = when.date().isoformat()  # in its own offset: the day the agent called today
    aware = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    stamp = aware.astimezone(timezone.utc).strftime(_TEXT_TIME)
    return (stamp + "+00:00" if with_offset else stamp), day


_NETLOC = re.compile(r"(?i)^(https?)://(?:[^/?#@]*@)?([^/?#]*)")


@lru_cache(maxsize=1024)
def _host(netloc: str) -> str | None:
    try:
        parts = urlsplit("//" + netloc)
        host = parts.hostname or ""
        return f"{host}:{parts.port}" if parts.port else host or None
    except ValueError:
        return None


def host_of(url: str) -> str | None:
    """`host[:port]` of an image URL; `file` for a local path or file:// URL."""
    m = _NETLOC.match(url)
    if m:
        return _host(m.group(2))
    scheme = url.split(":", 1)[0].lower() if ":" in url.split("/", 1)[0] else ""
    return "file" if scheme in ("", "file") else None


def result_values(job_id: str, rec: dict[str, Any], *, postgres: bool) -> tuple[Any, ...] | None:
    """A results row as a tuple in RESULT_COLUMNS order; None for a line that is not an
    image record."""
    index = rec.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        return None
    when = rec.get("visit_time")
    if isinstance(when, str):
        visit_time, visit_day = _visit_times(when, postgres)
    else:
        visit_time = visit_day = when = None
    url = str(rec.get("image_url") or "")
    get = rec.get
    return (
        job_id, index, get("visit"), str(get("store_id")), visit_time, visit_day, when,
        url, get("status"), get("width"), get("height"), get("perimeter"), get("format"),
        get("error_code"), get("error"), get("attempts"), get("elapsed_ms"), get("sha256"),
        get("bytes"), get("stored_as"), host_of(url),
    )  # fmt: skip


def job_row(status: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    """A jobs row from status.json and meta.json (source, owner)."""
    run = status.get("run")
    row: dict[str, Any] = {
        "job_id": str(status.get("job_id") or meta.get("job_id")),
        "status": str(status.get("status")),
        "owner": meta.get("owner"),
        "source": meta.get("source"),
        "mode": run.get("mode") if isinstance(run, dict) else None,
        "interrupted_by": status.get("interrupted_by"),
    }
    for key in ("created_at", "started_at", "updated_at", "finished_at"):
        row[key] = utc(status.get(key))
    for key in _COUNTS:
        value = status.get(key)
        row[key] = value if isinstance(value, int) else None
    return row


def error_rows(job_id: str, errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """store_errors rows: one per store with a problem."""
    rows = {}
    for err in errors:
        store_id = str(err.get("store_id"))
        images = err.get("images", err.get("failed_images"))
        rows[store_id] = {
            "job_id": job_id,
            "store_id": store_id,
            "code": str(err.get("code") or ""),
            "message": str(err.get("error") or ""),
            "images": images if isinstance(images, int) else None,
        }
    return list(rows.values())


def run_rows(job_id: str, status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """job_runs rows from status.json's `runs` (none for a job written before them)."""
    runs = status.get("runs")
    if not isinstance(runs, list):
        return []
    return [
        {
            "job_id": job_id,
            "run": number,
            "mode": run.get("mode"),
            "started_at": utc(run.get("started_at")),
            "ended_at": utc(run.get("ended_at")),
        }
        for number, run in enumerate(r for r in runs if isinstance(r, dict))
    ]
