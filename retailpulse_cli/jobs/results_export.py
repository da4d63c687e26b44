"""Streaming a job's result records out as JSON Lines or CSV (never the whole job in memory)."""

from __future__ import annotations

import csv
import json
from typing import TextIO

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
    writer: csv.DictWriter[str] | None = None
    if fmt == "csv":
        writer = csv.DictWriter(
            out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
    for stored in job.iter_records():
        if only_failed and stored.get("status") == "ok":
            continue
        rec = {"job_id": job.id, **stored}  # records on disk leave out what the folder says
        if writer is not None:
            writer.writerow(rec)
        else:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        n += 1
    out.flush()
    return n
