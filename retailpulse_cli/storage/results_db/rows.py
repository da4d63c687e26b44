"""Job-directory documents (records, status.json, errors) as rows of the results database."""

from __future__ import annotations

from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

# record field -> column, for the fields kept as they are
_SAME = (
    "visit",
    "store_id",
    "image_url",
    "status",
    "width",
    "height",
    "perimeter",
    "format",
    "error_code",
    "attempts",
    "elapsed_ms",
    "sha256",
    "bytes",
    "stored_as",
)
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


@lru_cache(maxsize=4096)  # the images of one visit share its time
def _visit_times(text: str) -> tuple[datetime | None, date | None]:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None, None
    day = when.date()  # the visit's own day, in its own offset: what the agent called today
    aware = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc), day


@lru_cache(maxsize=1024)
def host_of(url: str) -> str | None:
    """`host[:port]` of an image URL; `file` for a local path or file:// URL."""
    try:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https"):
            host = parts.hostname or ""
            return f"{host}:{parts.port}" if parts.port else host or None
    except ValueError:
        return None
    return "file" if parts.scheme in ("", "file") else None


def result_row(job_id: str, rec: dict[str, Any]) -> dict[str, Any] | None:
    """A results row (every column present, for executemany); None for a line that is
    not an image record."""
    index = rec.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        return None
    row = {name: rec.get(name) for name in _SAME}
    row["store_id"] = str(row["store_id"])
    row["image_url"] = str(row["image_url"] or "")
    when = rec.get("visit_time")
    row["visit_time"], row["visit_day"] = (
        _visit_times(when) if isinstance(when, str) else (None,) * 2
    )
    row["visit_time_text"] = when if isinstance(when, str) else None
    row["error_message"] = rec.get("error")
    row["host"] = host_of(row["image_url"])
    row["job_id"] = job_id
    row["image_index"] = index
    return row


def job_row(status: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
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


def error_rows(job_id: str, errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
