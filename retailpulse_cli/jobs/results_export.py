"""Streaming a job's result records out as JSON Lines or CSV (never the whole job in memory)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from retailpulse_cli.storage.job_dir import Job

# Every field a record can carry, so CSV has what JSON Lines has (tests check the union).
CSV_COLUMNS = (
    "job_id",
    "index",
    "visit",
    "store_id",
    "visit_time",
    "image_url",
    "status",
    "width",
    "height",
    "perimeter",
    "format",
    "attempts",
    "elapsed_ms",
    "sha256",
    "bytes",
    "stored_as",
    "error_code",
    "error",
)


def write(job: Job, *, fmt: str, only_failed: bool, out: TextIO) -> int:
    """Write records to `out`; return how many were written."""
    n = 0
    for text, is_record in _texts(job, fmt=fmt, only_failed=only_failed):
        out.write(text)
        n += is_record
    out.flush()
    return n


def chunks(job: Job, *, fmt: str, only_failed: bool, size: int = 64 * 1024) -> Iterator[bytes]:
    """The same output in pieces of about `size` bytes (an HTTP response body)."""
    parts: list[str] = []
    held = 0
    for text, _ in _texts(job, fmt=fmt, only_failed=only_failed):
        parts.append(text)
        held += len(text)
        if held >= size:
            yield "".join(parts).encode()
            parts, held = [], 0
    if parts:
        yield "".join(parts).encode()


def _texts(job: Job, *, fmt: str, only_failed: bool) -> Iterator[tuple[str, bool]]:
    """(text, is a record) for the output: a CSV header first, then a line per record."""
    to_text = _csv_rows() if fmt == "csv" else None
    if to_text is not None:
        yield to_text(None), False
    for stored in job.iter_records():
        if only_failed and stored.get("status") == "ok":
            continue
        rec = {"job_id": job.id, **stored}  # records on disk leave out what the folder says
        yield (to_text(rec) if to_text else json.dumps(rec, ensure_ascii=False) + "\n"), True


def _csv_rows() -> Callable[[dict[str, Any] | None], str]:
    """A row's CSV text (the header for None), written as csv.DictWriter writes it."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")

    def row(rec: dict[str, Any] | None) -> str:
        if rec is None:
            writer.writeheader()
        else:
            writer.writerow(rec)
        text = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return text

    return row
